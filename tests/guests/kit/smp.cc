#include "kit/smp.h"

#include "kit/cpu.h"
#include "kit/layout.h"
#include "kit/traps.h"

extern "C" {
extern const char kit_trampoline_start[];
extern const char kit_trampoline_end[];
}

namespace kit {

namespace {

constexpr uint64_t lapic_base = 0xfee00000;
constexpr uint32_t lapic_id_reg = 0x20;
constexpr uint32_t lapic_svr = 0xf0;
constexpr uint32_t lapic_icr_low = 0x300;
constexpr uint32_t lapic_icr_high = 0x310;

unsigned ap_slots_taken = 0; // next free slot in ap_ids
unsigned aps_online = 0;
uint32_t ap_ids[madt_max_lapics];

void wait_icr_idle()
{
    for (unsigned i = 0; i < 100000; ++i) {
        if (!(mmio_read32(lapic_base + lapic_icr_low) & (1u << 12)))
            return;
        pause();
    }
}

void send_ipi(uint32_t apic_id, uint32_t icr_low)
{
    mmio_write32(lapic_base + lapic_icr_high, apic_id << 24);
    mmio_write32(lapic_base + lapic_icr_low, icr_low);
    wait_icr_idle();
}

} // namespace

SmpResult start_aps(const Madt& madt, uint64_t timeout_ms)
{
    SmpResult r;
    r.expected = madt.lapic_count;
    uint32_t self = mmio_read32(lapic_base + lapic_id_reg) >> 24;
    r.online_ids[0] = self;

    // The trampoline runs in real mode from KIT_TRAMPOLINE_BASE (SIPI vector = base >> 12).
    __builtin_memcpy(reinterpret_cast<void*>(KIT_TRAMPOLINE_BASE), kit_trampoline_start,
                     static_cast<size_t>(kit_trampoline_end - kit_trampoline_start));
    mmio_write32(lapic_base + lapic_svr, 0x1ff); // software enable, spurious vector 0xff

    unsigned targets = 0;
    for (unsigned i = 0; i < madt.lapic_count; ++i) {
        uint32_t id = madt.lapic_ids[i];
        if (id == self || id > 0xff || targets + 1 >= KIT_MAX_CPUS)
            continue;
        send_ipi(id, 0x4500); // INIT, level assert
        ++targets;
    }
    if (targets) {
        delay_us(10000);
        for (int round = 0; round < 2; ++round) {
            for (unsigned i = 0; i < madt.lapic_count; ++i) {
                uint32_t id = madt.lapic_ids[i];
                if (id == self || id > 0xff)
                    continue;
                send_ipi(id, 0x4600 | (KIT_TRAMPOLINE_BASE >> 12)); // Startup IPI
            }
            delay_us(200);
        }
        uint64_t deadline = rdtsc() + timeout_ms * (tsc_hz() / 1000);
        while (__atomic_load_n(&aps_online, __ATOMIC_ACQUIRE) < targets && rdtsc() < deadline)
            pause();
    }
    unsigned n = __atomic_load_n(&aps_online, __ATOMIC_ACQUIRE);
    r.online = 1 + n;
    for (unsigned i = 0; i < n && i + 1 < madt_max_lapics; ++i)
        r.online_ids[i + 1] = __atomic_load_n(&ap_ids[i], __ATOMIC_RELAXED);
    return r;
}

} // namespace kit

// Each AP arrives here in long mode on its own stack (entry.S), then halts forever.
extern "C" void kit_ap_main()
{
    kit::traps_load_idt();
    unsigned slot = __atomic_fetch_add(&kit::ap_slots_taken, 1, __ATOMIC_RELAXED);
    if (slot < kit::madt_max_lapics)
        __atomic_store_n(&kit::ap_ids[slot], kit::apic_id(), __ATOMIC_RELAXED);
    __atomic_fetch_add(&kit::aps_online, 1, __ATOMIC_RELEASE);
}
