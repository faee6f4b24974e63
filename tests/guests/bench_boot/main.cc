// bench_boot: the guest of the VMM core benchmark (bench/boot_bench.cc). Its PVH entry (entry.S) writes
// '<' to COM1 as its very first instruction. Then:
//   - command line contains "wait": prints "vmgen-guest: ready" and halts forever with interrupts off,
//     so that the benchmark can read the VMM's memory use of a booted, idle guest;
//   - otherwise: looks up the ACPI power-off register, prints "vmgen-guest: result PASS", writes '>' to
//     COM1 and, with nothing in between, requests the power off (PM1a_CNT, SLP_TYP of \_S5_ | SLP_EN).
#include "kit/kit.h"

namespace {

bool contains(const char* haystack, const char* needle)
{
    for (; *haystack; ++haystack) {
        const char* h = haystack;
        const char* n = needle;
        while (*n && *h == *n) {
            ++h;
            ++n;
        }
        if (!*n)
            return true;
    }
    return false;
}

const char* command_line(const kit::StartInfo* start_info)
{
    if (!start_info || start_info->magic != vmgen::protocols::pvh::start_info_magic || !start_info->cmdline_paddr ||
        start_info->cmdline_paddr >= (1ull << 32))
        return "";
    return reinterpret_cast<const char*>(start_info->cmdline_paddr);
}

} // namespace

extern "C" void guest_main(const kit::StartInfo* start_info)
{
    if (contains(command_line(start_info), "wait")) {
        kit::line("ready");
        kit::halt_forever();
    }

    // Everything the power off needs is looked up first, so that '>' is immediately followed by the
    // power-off write: PM1a_CNT (vmgen, QEMU pc) or, in a hardware-reduced FADT (QEMU microvm), the sleep
    // control register, in I/O or memory space.
    const kit::Acpi& acpi = kit::acpi();
    kit::Fadt fadt = kit::parse_fadt(acpi.fadt);
    int slp_typ = kit::s5_slp_typ(acpi.dsdt);
    if (!fadt.valid || slp_typ < 0)
        kit::finish(false, "no FADT or no \\_S5_");
    auto typ = static_cast<uint16_t>(slp_typ & 7);
    if (fadt.hw_reduced && fadt.sleep_control_address) {
        auto value = static_cast<uint8_t>(typ << 2 | 1u << 5);
        if (fadt.sleep_control_space == 1) {
            kit::line("result PASS");
            kit::outb(kit::com1, '>');
            kit::outb(static_cast<uint16_t>(fadt.sleep_control_address), value);
        } else if (fadt.sleep_control_space == 0 && fadt.sleep_control_address < (1ull << 32)) {
            kit::line("result PASS");
            kit::outb(kit::com1, '>');
            *reinterpret_cast<volatile uint8_t*>(fadt.sleep_control_address) = value;
        }
    } else if (fadt.pm1a_cnt && !fadt.pm1b_cnt) {
        kit::line("result PASS");
        kit::outb(kit::com1, '>');
        kit::outw(static_cast<uint16_t>(fadt.pm1a_cnt), static_cast<uint16_t>(typ << 10 | 1u << 13));
    }
    kit::power_off(); // reached only when the VMM ignored the write (or there was none): reports the failure
}
