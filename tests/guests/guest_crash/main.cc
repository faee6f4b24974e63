// guest_crash: reports a crash through the Hyper-V crash MSRs, as Linux's hyperv_report_panic() does
// (P0-P4 = 0x40000100-0x40000104, then CRASH_CTL 0x40000105 with CRASH_NOTIFY, bit 63), then waits for the
// ACPI power button so the host can be inspected while the VM runs. Prints:
//   vmgen-guest: crash reported
//   vmgen-guest: power button pressed
#include "kit/kit.h"

namespace {

constexpr uint32_t crash_p0 = 0x40000100;
constexpr uint32_t crash_ctl = 0x40000105;
constexpr uint64_t crash_notify = 1ull << 63;
constexpr unsigned fadt_pm1a_evt_blk_offset = 56;
constexpr uint16_t pwrbtn_sts = 1u << 8;

} // namespace

extern "C" void guest_main(const kit::StartInfo*)
{
    if ((kit::cpuid(0x40000003).edx & (1u << 10)) == 0)
        kit::finish(false, "the host does not advertise the guest crash MSRs (CPUID 0x40000003 EDX bit 10)");
    const uint64_t params[5] = {0x1e, 0xffffffffc0000005ull, 0xfffff80000001234ull, 0, 0xdeadbeef};
    for (uint32_t i = 0; i < 5; ++i)
        kit::wrmsr(crash_p0 + i, params[i]);
    kit::wrmsr(crash_ctl, crash_notify);
    kit::line("crash reported");

    const uint8_t* fadt = kit::acpi().fadt;
    if (fadt == nullptr)
        kit::finish(false, "no FADT");
    uint32_t port = fadt[fadt_pm1a_evt_blk_offset] | fadt[fadt_pm1a_evt_blk_offset + 1] << 8;
    while ((kit::inw(static_cast<uint16_t>(port)) & pwrbtn_sts) == 0) {
        for (int i = 0; i < 1000; ++i)
            asm volatile("pause");
    }
    kit::outw(static_cast<uint16_t>(port), pwrbtn_sts);
    kit::line("power button pressed");
    kit::finish(true);
}
