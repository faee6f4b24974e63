// smp: starts every processor of the MADT and reports which came up.
#include "kit/kit.h"

extern "C" void guest_main(const kit::StartInfo*)
{
    kit::Madt madt = kit::parse_madt(kit::acpi().madt);
    if (!madt.valid)
        kit::finish(false, "no MADT");
    kit::SmpResult r = kit::start_aps(madt, 10000);
    kit::line("cpus online %u/%u", r.online, r.expected);
    unsigned listed_online = 0;
    for (unsigned i = 0; i < madt.lapic_count; ++i) {
        bool up = false;
        for (unsigned j = 0; j < r.online && j < kit::madt_max_lapics; ++j)
            up |= r.online_ids[j] == madt.lapic_ids[i];
        listed_online += up ? 1 : 0;
        kit::line("cpu apic_id=%u %s", madt.lapic_ids[i], up ? "online" : "offline");
    }
    if (r.online != r.expected || listed_online != r.expected)
        kit::finish(false, "not every processor came up");
    kit::finish(true);
}
