// Test-guest kit: the xAPIC local APIC (Intel SDM vol. 3, chapter 11) and the I/O APIC (Intel 82093AA
// datasheet) through MMIO, for guests that take device interrupts. Freestanding, everything inline.
#pragma once

#include <cstdint>

#include "kit/cpu.h"

namespace kit {

// Local APIC (xAPIC mode, the default base; the MADT's lapic_address says the same on every VMM we boot).
inline constexpr uint64_t lapic_default_base = 0xfee00000;
inline constexpr uint32_t lapic_reg_id = 0x20;
inline constexpr uint32_t lapic_reg_eoi = 0xb0;
inline constexpr uint32_t lapic_reg_svr = 0xf0; // spurious interrupt vector; bit 8 = software enable
inline constexpr uint32_t lapic_reg_isr = 0x100; // in-service bits, 8 registers 0x10 apart
inline constexpr uint32_t lapic_reg_irr = 0x200; // request bits, 8 registers 0x10 apart

inline uint32_t lapic_read(uint32_t reg) { return mmio_read32(lapic_default_base + reg); }
inline void lapic_write(uint32_t reg, uint32_t v) { mmio_write32(lapic_default_base + reg, v); }
// Software-enables the local APIC with `spurious_vector` (also the kit's choice in start_aps: 0xff).
inline void lapic_enable(uint8_t spurious_vector = 0xff) { lapic_write(lapic_reg_svr, 0x100u | spurious_vector); }
inline void lapic_eoi() { lapic_write(lapic_reg_eoi, 0); }
inline uint32_t lapic_id() { return lapic_read(lapic_reg_id) >> 24; }
// Whether `vector` is in service (ISR) or requested (IRR) at this CPU's local APIC.
inline bool lapic_in_service(uint8_t vector)
{
    return (lapic_read(lapic_reg_isr + (vector / 32u) * 0x10u) >> (vector % 32u)) & 1u;
}
inline bool lapic_requested(uint8_t vector)
{
    return (lapic_read(lapic_reg_irr + (vector / 32u) * 0x10u) >> (vector % 32u)) & 1u;
}

// I/O APIC: IOREGSEL at +0x00, IOWIN at +0x10; registers 0 ID, 1 version, 0x10 + 2 * pin redirection.
inline constexpr uint32_t ioapic_reg_id = 0x00;
inline constexpr uint32_t ioapic_reg_version = 0x01;
inline constexpr uint32_t ioapic_reg_redirection = 0x10;

// Redirection entry fields.
inline constexpr uint64_t ioapic_rte_delivery_status = 1ull << 12;
inline constexpr uint64_t ioapic_rte_active_low = 1ull << 13;
inline constexpr uint64_t ioapic_rte_remote_irr = 1ull << 14;
inline constexpr uint64_t ioapic_rte_level = 1ull << 15;
inline constexpr uint64_t ioapic_rte_masked = 1ull << 16;

inline uint32_t ioapic_read(uint64_t base, uint32_t reg)
{
    mmio_write32(base, reg);
    return mmio_read32(base + 0x10);
}
inline void ioapic_write(uint64_t base, uint32_t reg, uint32_t v)
{
    mmio_write32(base, reg);
    mmio_write32(base + 0x10, v);
}
inline uint64_t ioapic_entry(uint64_t base, unsigned pin)
{
    uint32_t lo = ioapic_read(base, ioapic_reg_redirection + 2 * pin);
    uint32_t hi = ioapic_read(base, ioapic_reg_redirection + 2 * pin + 1);
    return (uint64_t{hi} << 32) | lo;
}
// Writes an entry: the high half (destination) first while the low half is written masked, so that a
// half-written entry never delivers.
inline void ioapic_set_entry(uint64_t base, unsigned pin, uint64_t entry)
{
    ioapic_write(base, ioapic_reg_redirection + 2 * pin, ioapic_rte_masked);
    ioapic_write(base, ioapic_reg_redirection + 2 * pin + 1, static_cast<uint32_t>(entry >> 32));
    ioapic_write(base, ioapic_reg_redirection + 2 * pin, static_cast<uint32_t>(entry));
}
// A fixed-delivery, physical-destination entry for `vector` to the local APIC `apic_id`.
inline uint64_t ioapic_fixed_entry(uint8_t vector, uint32_t apic_id, bool level, bool active_low, bool masked = false)
{
    return uint64_t{vector} | (level ? ioapic_rte_level : 0) | (active_low ? ioapic_rte_active_low : 0) |
           (masked ? ioapic_rte_masked : 0) | (uint64_t{apic_id & 0xff} << 56);
}

} // namespace kit
