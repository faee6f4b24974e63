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

extern kit::LinuxEntryState kit_linux_entry_state; // entry.S

namespace {
kit::BootProtocol g_protocol = kit::BootProtocol::pvh;
const vmgen::protocols::linux_boot::BootParams* g_boot_params = nullptr;
} // namespace

// entry.S calls this on the bootstrap processor in long mode with the kit stack; info is the PVH start
// info or the Linux zero page, depending on protocol (KIT_BOOT_*).
void kit_entry(uint32_t protocol, uint64_t info)
{
    kit::serial_init();
    kit::traps_init();
    const kit::StartInfo* start_info = nullptr;
    if (protocol == KIT_BOOT_LINUX64) {
        g_protocol = kit::BootProtocol::linux64;
        g_boot_params = reinterpret_cast<const vmgen::protocols::linux_boot::BootParams*>(info);
        if (g_boot_params)
            kit::set_rsdp_hint(g_boot_params->acpi_rsdp_addr);
    } else {
        start_info = reinterpret_cast<const kit::StartInfo*>(info);
        if (start_info && start_info->magic == vmgen::protocols::pvh::start_info_magic)
            kit::set_rsdp_hint(start_info->rsdp_paddr);
    }
    guest_main(start_info);
    kit::finish(false, "guest_main returned");
}

} // extern "C"

namespace kit {

namespace {
uint64_t cached_tsc_hz = 0;
}

BootProtocol boot_protocol() { return g_protocol; }
const vmgen::protocols::linux_boot::BootParams* linux_boot_params() { return g_boot_params; }
const LinuxEntryState& linux_entry_state() { return kit_linux_entry_state; }

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
