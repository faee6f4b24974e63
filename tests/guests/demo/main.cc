// demo: what `./setup.sh` boots. Reports, in plain words, what a guest finds in the virtual machine:
// memory, processors, ACPI tables, which generation's hardware model it sees, which legacy devices
// answer, and the wall-clock time from the CMOS RTC. Then powers off through ACPI.
#include "kit/kit.h"

namespace {

using kit::inb;
using kit::outb;

// A device is absent when nothing decodes its ports: every read returns all ones.
bool answers(const uint16_t* ports, unsigned n)
{
    for (unsigned i = 0; i < n; ++i)
        if (inb(ports[i]) != 0xff)
            return true;
    return false;
}

struct LegacyDevice {
    const char* name;
    uint16_t ports[4];
    unsigned count;
};

// The PIC's mask registers are read/write; an absent one reads 0xff whatever was written.
bool pic_answers()
{
    uint8_t saved = inb(0x21);
    outb(0x21, 0x5a);
    bool present = inb(0x21) == 0x5a;
    outb(0x21, saved);
    return present;
}

bool com_present(uint16_t base)
{
    outb(static_cast<uint16_t>(base + 7), 0x5a);
    return inb(static_cast<uint16_t>(base + 7)) == 0x5a;
}

uint8_t cmos(uint8_t index)
{
    outb(0x70, index);
    return inb(0x71);
}

unsigned from_bcd(uint8_t v, bool binary) { return binary ? v : (v >> 4) * 10u + (v & 0xfu); }

} // namespace

extern "C" void guest_main(const kit::StartInfo* start)
{
    // Memory, from the PVH memory map.
    uint64_t ram = 0;
    unsigned ranges = 0;
    if (start != nullptr && start->version >= 1 && start->memmap_paddr != 0) {
        const auto* map = reinterpret_cast<const vmgen::protocols::pvh::MemmapEntry*>(start->memmap_paddr);
        for (uint32_t i = 0; i < start->memmap_entries && i < 128; ++i) {
            if (map[i].type == vmgen::protocols::pvh::memmap_type_ram) {
                ram += map[i].size;
                ++ranges;
            }
        }
    }
    kit::line("memory: %u MiB of RAM in %u ranges (PVH memory map)", static_cast<unsigned>(ram >> 20), ranges);

    // ACPI.
    const kit::Acpi& acpi = kit::acpi();
    bool checksums = acpi.rsdp != nullptr && acpi.rsdp_checksum_ok && acpi.rsdp_extended_checksum_ok &&
                     acpi.root != nullptr;
    kit::printf("vmgen-guest: ACPI: RSDP revision %u at 0x%lx, tables:", acpi.rsdp_revision,
                reinterpret_cast<unsigned long>(acpi.rsdp));
    const uint8_t* all[kit::acpi_max_tables + 2] = {acpi.root};
    unsigned n = 1;
    for (unsigned i = 0; i < acpi.table_count; ++i)
        all[n++] = acpi.tables[i];
    if (acpi.dsdt != nullptr)
        all[n++] = acpi.dsdt;
    for (unsigned i = 0; i < n; ++i) {
        char sig[5];
        kit::signature_string(all[i], sig);
        bool ok = kit::checksum_ok(all[i], kit::table_length(all[i]));
        checksums &= ok;
        kit::printf(" %s%s", sig, ok ? "" : "(bad checksum)");
    }
    kit::print(checksums ? " (all checksums valid)\n" : "\n");

    // Processors.
    kit::Madt madt = kit::parse_madt(acpi.madt);
    if (!madt.valid)
        kit::finish(false, "no MADT");
    kit::SmpResult smp = kit::start_aps(madt, 10000);
    kit::printf("vmgen-guest: processors: %u of %u online (APIC ids", smp.online, smp.expected);
    for (unsigned i = 0; i < smp.online && i < kit::madt_max_lapics; ++i)
        kit::printf(" %u", smp.online_ids[i]);
    kit::print(")\n");

    // Which hardware model: generation 2 has VMBus in the DSDT and no 8259s in the MADT.
    bool vmbus = acpi.dsdt != nullptr && kit::table_contains(acpi.dsdt, "VMBus", 5);
    if (vmbus && !madt.pcat_compat)
        kit::line("hardware model: generation 2 virtual machine (DSDT has \\_SB.VMOD.VMBS with _HID \"VMBus\"; "
                  "MADT without PC/AT 8259s)");
    else
        kit::line("hardware model: generation 1 virtual machine (PC/AT compatible: MADT declares 8259 PICs)");

    // Legacy devices.
    static const LegacyDevice devices[] = {
        {"PIT", {0x40, 0x41, 0x42}, 3},     {"i8042", {0x60, 0x64}, 2},  {"IDE", {0x1f7, 0x177, 0x3f6}, 3},
        {"floppy", {0x3f4, 0x3f2}, 2},      {"VGA", {0x3cc, 0x3da}, 2},  {"DMA", {0x08, 0xd0}, 2},
        {"POST port 0x80", {0x80}, 1},      {"port 0x92", {0x92}, 1},
    };
    kit::printf("vmgen-guest: legacy hardware: PIC %s", pic_answers() ? "present" : "absent");
    for (const auto& d : devices)
        kit::printf(", %s %s", d.name, answers(d.ports, d.count) ? "present" : "absent");
    kit::outl(0xcf8, 0x80000000u);
    bool pci = kit::inl(0xcf8) == 0x80000000u;
    kit::printf(", PCI %s\n", pci ? "present" : "absent");
    kit::line("serial: COM1 %s, COM2 %s", com_present(0x3f8) ? "present" : "absent",
              com_present(0x2f8) ? "present" : "absent");

    // Wall-clock time from the CMOS RTC.
    bool binary = (cmos(0x0b) & 0x04) != 0;
    kit::line("clock: CMOS RTC says %02u%02u-%02u-%02u %02u:%02u:%02u", from_bcd(cmos(0x32), binary),
              from_bcd(cmos(0x09), binary), from_bcd(cmos(0x08), binary), from_bcd(cmos(0x07), binary),
              from_bcd(cmos(0x04), binary), from_bcd(cmos(0x02), binary), from_bcd(cmos(0x00), binary));

    bool pass = checksums && smp.online == smp.expected;
    kit::finish(pass, pass ? nullptr : "see above");
}
