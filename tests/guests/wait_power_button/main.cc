// wait_power_button: stays running until the ACPI power button is pressed (`vmgen stop-vm`), then powers
// off. Polls PWRBTN_STS in the FADT's PM1a event block, as an OS's SCI handler would find it.
// Prints:
//   vmgen-guest: waiting for the power button
//   vmgen-guest: power button pressed
#include "kit/kit.h"

namespace {

constexpr unsigned fadt_pm1a_evt_blk_offset = 56; // ACPI 6.5 table 5.9: PM1a_EVT_BLK (u32 port)
constexpr uint16_t pwrbtn_sts = 1u << 8;

uint32_t read_u32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24; }

} // namespace

extern "C" void guest_main(const kit::StartInfo*)
{
    const uint8_t* fadt = kit::acpi().fadt;
    if (fadt == nullptr || kit::table_length(fadt) < fadt_pm1a_evt_blk_offset + 4)
        kit::finish(false, "no FADT");
    auto status_port = static_cast<uint16_t>(read_u32(fadt + fadt_pm1a_evt_blk_offset));
    if (status_port == 0)
        kit::finish(false, "no PM1a event block");
    kit::line("waiting for the power button");
    while ((kit::inw(status_port) & pwrbtn_sts) == 0) {
        for (int i = 0; i < 1000; ++i)
            asm volatile("pause");
    }
    kit::outw(status_port, pwrbtn_sts); // write 1 to clear, as an OS does
    kit::line("power button pressed");
    kit::finish(true);
}
