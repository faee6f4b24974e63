// Test-guest kit: x86 instructions the guests need (port I/O, MSRs, CPUID, TSC, halting).
// Freestanding: no library, everything inline.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kit {

inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline uint16_t inw(uint16_t port)
{
    uint16_t v;
    asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline void outb(uint16_t port, uint8_t v) { asm volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
inline void outw(uint16_t port, uint16_t v) { asm volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
inline void outl(uint16_t port, uint32_t v) { asm volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }

inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (uint64_t{hi} << 32) | lo;
}
inline void wrmsr(uint32_t msr, uint64_t v)
{
    asm volatile("wrmsr" : : "c"(msr), "a"(static_cast<uint32_t>(v)), "d"(static_cast<uint32_t>(v >> 32)));
}

struct CpuidResult {
    uint32_t eax, ebx, ecx, edx;
};
inline CpuidResult cpuid(uint32_t leaf, uint32_t subleaf = 0)
{
    CpuidResult r;
    asm volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(subleaf));
    return r;
}

inline uint64_t rdtsc()
{
    uint32_t lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t{hi} << 32) | lo;
}

inline void pause() { asm volatile("pause"); }
inline void hlt() { asm volatile("hlt"); }
inline void cli() { asm volatile("cli"); }

[[noreturn]] inline void halt_forever()
{
    for (;;)
        asm volatile("cli; hlt");
}

// Initial APIC id of the running CPU (CPUID leaf 1, EBX[31:24]).
inline uint32_t apic_id() { return cpuid(1).ebx >> 24; }

// MMIO accessors (the low 4 GiB are identity mapped).
inline uint32_t mmio_read32(uint64_t addr) { return *reinterpret_cast<volatile uint32_t*>(addr); }
inline void mmio_write32(uint64_t addr, uint32_t v) { *reinterpret_cast<volatile uint32_t*>(addr) = v; }

// Unaligned little-endian loads from ACPI tables and the like.
inline uint8_t load8(const void* p) { return *static_cast<const uint8_t*>(p); }
inline uint16_t load16(const void* p)
{
    uint16_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
inline uint32_t load32(const void* p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
inline uint64_t load64(const void* p)
{
    uint64_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

// Approximate TSC frequency (for timeouts only): CPUID 0x16, the hypervisor timing leaf, else 3 GHz.
uint64_t tsc_hz();
// Busy-waits about `us` microseconds (TSC based, accuracy as good as tsc_hz()).
void delay_us(uint64_t us);

} // namespace kit
