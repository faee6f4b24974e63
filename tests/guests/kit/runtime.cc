// Test-guest kit: the C++ side of the entry (kit_entry -> guest_main), the few library functions the
// compiler may call, and TSC timing.
#include "kit/kit.h"

extern "C" {

void* memcpy(void* dst, const void* src, size_t n)
{
    auto* d = static_cast<unsigned char*>(dst);
    const auto* s = static_cast<const unsigned char*>(src);
    asm volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return dst;
}

void* memmove(void* dst, const void* src, size_t n)
{
    auto* d = static_cast<unsigned char*>(dst);
    const auto* s = static_cast<const unsigned char*>(src);
    if (d < s || d >= s + n)
        return memcpy(dst, src, n);
    while (n--)
        d[n] = s[n];
    return dst;
}

void* memset(void* dst, int c, size_t n)
{
    auto* d = static_cast<unsigned char*>(dst);
    asm volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return dst;
}

int memcmp(const void* a, const void* b, size_t n)
{
    const auto* x = static_cast<const unsigned char*>(a);
    const auto* y = static_cast<const unsigned char*>(b);
    for (size_t i = 0; i < n; ++i)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

// entry.S calls this on the bootstrap processor in long mode with the kit stack.
void kit_entry(const kit::StartInfo* start_info)
{
    kit::serial_init();
    kit::traps_init();
    if (start_info && start_info->magic == vmgen::protocols::pvh::start_info_magic)
        kit::set_rsdp_hint(start_info->rsdp_paddr);
    guest_main(start_info);
    kit::finish(false, "guest_main returned");
}

} // extern "C"

namespace kit {

namespace {
uint64_t cached_tsc_hz = 0;
}

uint64_t tsc_hz()
{
    if (cached_tsc_hz)
        return cached_tsc_hz;
    uint64_t hz = 0;
    if (cpuid(0).eax >= 0x16) {
        uint32_t mhz = cpuid(0x16).eax & 0xffff; // processor base frequency
        hz = uint64_t{mhz} * 1000000;
    }
    if (!hz && (cpuid(1).ecx & (1u << 31)) && cpuid(0x40000000).eax >= 0x40000010)
        hz = uint64_t{cpuid(0x40000010).eax} * 1000; // hypervisor timing leaf: TSC kHz
    if (!hz)
        hz = 3000000000ull;
    cached_tsc_hz = hz;
    return hz;
}

void delay_us(uint64_t us)
{
    uint64_t end = rdtsc() + us * (tsc_hz() / 1000000);
    while (rdtsc() < end)
        pause();
}

[[noreturn]] void finish(bool pass, const char* reason)
{
    if (pass)
        line("result PASS");
    else
        line("result FAIL %s", reason ? reason : "unknown");
    power_off();
}

} // namespace kit
