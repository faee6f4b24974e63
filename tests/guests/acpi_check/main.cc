// acpi_check: validates the ACPI tables the VMM builds and prints what the tests compare.
#include "kit/kit.h"

namespace {

bool report_table(const uint8_t* t)
{
    char name[5];
    kit::signature_string(t, name);
    uint32_t len = kit::table_length(t);
    bool ok = len >= 36 && len < (16u << 20) && kit::checksum_ok(t, len);
    kit::line("table %s len=%u checksum=%s", name, len, ok ? "ok" : "bad");
    return ok;
}

} // namespace

extern "C" void guest_main(const kit::StartInfo*)
{
    const kit::Acpi& a = kit::acpi();
    if (!a.rsdp)
        kit::finish(false, "no RSDP");
    kit::line("rsdp at 0x%lx revision=%u checksum=%s extended_checksum=%s", reinterpret_cast<uint64_t>(a.rsdp),
              a.rsdp_revision, a.rsdp_checksum_ok ? "ok" : "bad", a.rsdp_extended_checksum_ok ? "ok" : "bad");
    bool ok = a.rsdp_checksum_ok && a.rsdp_extended_checksum_ok;
    if (!a.root)
        kit::finish(false, "no XSDT or RSDT");
    ok &= report_table(a.root);
    for (unsigned i = 0; i < a.table_count; ++i)
        ok &= report_table(a.tables[i]);
    if (a.dsdt)
        ok &= report_table(a.dsdt);
    if (a.facs)
        kit::line("facs len=%u signature=%s", kit::table_length(a.facs),
                  kit::table_signature(a.facs) == 0x53434146 ? "ok" : "bad");
    else
        kit::line("facs absent");

    kit::Madt madt = kit::parse_madt(a.madt);
    kit::line("madt lapics=%u ioapics=%u pcat_compat=%u", madt.lapic_count, madt.ioapic_count,
              madt.pcat_compat ? 1u : 0u);
    for (unsigned i = 0; i < madt.lapic_count; ++i)
        kit::line("madt lapic apic_id=%u", madt.lapic_ids[i]);
    for (unsigned i = 0; i < madt.ioapic_count; ++i)
        kit::line("madt ioapic id=%u address=0x%x", madt.ioapic_ids[i], madt.ioapic_addresses[i]);

    kit::line("dsdt vmbus=%s", kit::table_contains(a.dsdt, "VMBus", 5) ? "yes" : "no");
    kit::Fadt fadt = kit::parse_fadt(a.fadt);
    kit::line("fadt sci=%u pm1a_cnt=0x%x boot_arch=0x%x", fadt.sci_int, fadt.pm1a_cnt, fadt.boot_arch);
    kit::line("fadt flags=0x%x reset_reg=%u:0x%lx reset_value=0x%x", fadt.flags, fadt.reset_space,
              fadt.reset_address, fadt.reset_value);
    int slp = kit::s5_slp_typ(a.dsdt);
    kit::line("s5 slp_typ=%d", slp);

    if (!a.fadt)
        kit::finish(false, "no FADT");
    if (!a.madt || !madt.valid)
        kit::finish(false, "no MADT");
    if (!a.dsdt)
        kit::finish(false, "no DSDT");
    if (slp < 0)
        kit::finish(false, "no _S5_ in the DSDT");
    if (!ok)
        kit::finish(false, "bad checksum");
    kit::finish(true);
}
