// Test-guest kit: Hyper-V enlightenments (see hyperv.h).
#include "kit/hyperv.h"

#include <cstdarg>

#include "kit/apic.h"
#include "kit/cpu.h"
#include "kit/format.h"
#include "kit/traps.h"

namespace kit::hv {

namespace {

char g_error[320];

uint8_t* g_pool = nullptr;
size_t g_pool_pages = 0;
size_t g_pool_used = 0;

uint64_t g_tsc_per_ms = 3000000;
uint8_t g_timer_vector = 0;
bool g_use_hlt = false;
volatile uint64_t g_ticks = 0;

uint8_t* g_hypercall_page = nullptr;
uint8_t* g_post_page = nullptr;
ReferenceTscPage* g_tsc_page = nullptr;

Message* g_simp = nullptr;
uint8_t* g_siefp = nullptr;
volatile uint64_t g_sint_interrupts = 0;

// Local APIC timer (Intel SDM vol. 3, 11.5.4).
constexpr uint32_t lapic_lvt_timer = 0x320;
constexpr uint32_t lapic_timer_initial = 0x380;
constexpr uint32_t lapic_timer_divide = 0x3e0;
constexpr uint32_t lvt_masked = 1u << 16;
constexpr uint32_t lvt_periodic = 1u << 17;

void timer_handler(unsigned)
{
    g_ticks = g_ticks + 1;
    lapic_eoi();
}

void sint_handler(unsigned)
{
    g_sint_interrupts = g_sint_interrupts + 1;
    lapic_eoi(); // no auto-EOI: the guest EOIs (Linux: deprecating-AEOI hosts)
}

void spurious_handler(unsigned) {}

bool signature_is(const CpuidResult& r, const char* sig) // EBX:ECX:EDX, 12 bytes
{
    uint32_t w[3] = {r.ebx, r.ecx, r.edx};
    return __builtin_memcmp(w, sig, 12) == 0;
}

void signature_text(const CpuidResult& r, char out[13])
{
    uint32_t w[3] = {r.ebx, r.ecx, r.edx};
    __builtin_memcpy(out, w, 12);
    for (int i = 0; i < 12; ++i)
        if (out[i] < 0x20 || out[i] > 0x7e)
            out[i] = '.';
    out[12] = '\0';
}

} // namespace

bool fail(const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(g_error, sizeof g_error, fmt, ap);
    va_end(ap);
    return false;
}

const char* error() { return g_error; }

// ---- memory ----

void pages_init(void* zero_region, size_t pages)
{
    g_pool = static_cast<uint8_t*>(zero_region);
    g_pool_pages = pages;
    g_pool_used = 0;
}

void* alloc_pages(size_t count)
{
    if (!g_pool || g_pool_used + count > g_pool_pages) {
        fail("page pool exhausted: %lu pages wanted, %lu of %lu used", static_cast<unsigned long>(count),
             static_cast<unsigned long>(g_pool_used), static_cast<unsigned long>(g_pool_pages));
        return nullptr;
    }
    void* p = g_pool + g_pool_used * 4096;
    g_pool_used += count;
    return p;
}

// ---- time ----

void time_init(uint64_t tsc_hz)
{
    g_tsc_per_ms = tsc_hz / 1000 ? tsc_hz / 1000 : 1;
}

uint64_t tsc_per_ms() { return g_tsc_per_ms; }
uint64_t deadline_ms(uint64_t ms) { return rdtsc() + ms * g_tsc_per_ms; }
bool expired(uint64_t deadline) { return static_cast<int64_t>(rdtsc() - deadline) >= 0; }
uint64_t elapsed_ms(uint64_t since_tsc) { return (rdtsc() - since_tsc) / g_tsc_per_ms; }

bool start_wakeup_timer(uint8_t vector, uint64_t apic_hz)
{
    g_timer_vector = vector;
    set_interrupt_handler(vector, timer_handler);
    set_interrupt_handler(0xff, spurious_handler);
    lapic_enable(0xff);
    uint64_t count = (apic_hz ? apic_hz : 1000000000ull) / 100; // about 10 ms
    if (count > 0xffffffffull)
        count = 0xffffffffull;
    lapic_write(lapic_timer_divide, 0xb); // divide by 1
    lapic_write(lapic_lvt_timer, lvt_periodic | vector);
    lapic_write(lapic_timer_initial, static_cast<uint32_t>(count));
    g_use_hlt = false; // probe with pauses: a timer that never ticks must not hang a hlt
    uint64_t start = g_ticks;
    wait_until([&] { return g_ticks >= start + 2; }, 2000);
    g_use_hlt = g_ticks >= start + 2;
    return g_use_hlt;
}

void stop_wakeup_timer()
{
    lapic_write(lapic_timer_initial, 0);
    lapic_write(lapic_lvt_timer, lvt_masked | g_timer_vector);
    g_use_hlt = false;
}

uint64_t wakeup_ticks() { return g_ticks; }

void idle()
{
    if (g_use_hlt)
        asm volatile("sti; hlt; cli" ::: "memory");
    else
        asm volatile("sti; pause; cli" ::: "memory");
}

// ---- detection ----

bool detect(Info& info)
{
    if (!(cpuid(1).ecx & (1u << 31)))
        return fail("detect: CPUID.1:ECX[31] (hypervisor present) expected 1, got 0");
    CpuidResult v = cpuid(cpuid_vendor);
    char sig[13];
    signature_text(v, sig);
    if (!signature_is(v, "Microsoft Hv"))
        return fail("detect: CPUID 0x40000000 signature expected \"Microsoft Hv\", got \"%s\" (ebx=0x%x ecx=0x%x "
                    "edx=0x%x eax=0x%x)",
                    sig, v.ebx, v.ecx, v.edx, v.eax);
    info.max_leaf = v.eax;
    if (v.eax < cpuid_min_max_leaf || v.eax > cpuid_max_max_leaf)
        return fail("detect: CPUID 0x40000000 EAX (max leaf) expected 0x40000005..0x4000ffff, got 0x%x", v.eax);
    CpuidResult kvm = cpuid(0x40000100);
    if (signature_is(kvm, "KVMKVMKVM\0\0\0"))
        return fail("detect: KVM signature at CPUID 0x40000100 (Linux would prefer KVM to Hyper-V)");
    uint32_t iface = cpuid(cpuid_interface).eax;
    if (iface != 0x31237648) // "Hv#1"
        return fail("detect: CPUID 0x40000001 EAX expected 0x31237648 (\"Hv#1\"), got 0x%x", iface);
    CpuidResult f = cpuid(cpuid_features);
    info.features = f.eax;
    info.privileges = f.ebx;
    info.misc = f.edx;
    info.hints = cpuid(cpuid_hints).eax;
    CpuidResult l = cpuid(cpuid_limits);
    info.max_vp = l.eax;
    info.max_lp = l.ebx;
    CpuidResult ver = cpuid(cpuid_version);
    info.version_build = ver.eax;
    info.version_number = ver.ebx;
    if (!(info.features & feature_hypercall_msrs))
        return fail("detect: CPUID 0x40000003 EAX=0x%x lacks bit 5 (hypercall MSRs): Linux ignores Hyper-V",
                    info.features);
    if (!(info.features & feature_vp_index))
        return fail("detect: CPUID 0x40000003 EAX=0x%x lacks bit 6 (VP index MSR): Linux ignores Hyper-V",
                    info.features);
    return true;
}

// ---- hypercalls ----

bool enable_hypercalls()
{
    g_hypercall_page = static_cast<uint8_t*>(alloc_pages(1));
    g_post_page = static_cast<uint8_t*>(alloc_pages(1));
    if (!g_hypercall_page || !g_post_page)
        return false;
    uint64_t msr = rdmsr(msr_hypercall);
    msr = (msr & 0xffe) | gpa(g_hypercall_page) | 1; // keep the reserved bits 11:1, GPFN, enable
    wrmsr(msr_hypercall, msr);
    uint64_t back = rdmsr(msr_hypercall);
    if (!(back & 1))
        return fail("hypercall: MSR 0x40000001 wrote 0x%lx, read back 0x%lx: enable (bit 0) expected 1, got 0", msr,
                    back);
    if ((back >> 12) != pfn(g_hypercall_page))
        return fail("hypercall: MSR 0x40000001 wrote 0x%lx, read back 0x%lx: GPFN expected 0x%lx", msr, back,
                    pfn(g_hypercall_page));
    bool code = false;
    for (int i = 0; i < 16; ++i)
        code = code || g_hypercall_page[i] != 0;
    if (!code)
        return fail("hypercall: the host wrote no code into the hypercall page at 0x%lx (first 16 bytes zero)",
                    gpa(g_hypercall_page));
    return true;
}

void* hypercall_page() { return g_hypercall_page; }

uint64_t hypercall(uint64_t control, uint64_t input, uint64_t output)
{
    uint64_t status;
    register uint64_t r8 asm("r8") = output;
    asm volatile("call *%[page]"
                 : "=a"(status), "+c"(control), "+d"(input), "+r"(r8)
                 : [page] "r"(g_hypercall_page)
                 : "memory", "cc", "rsi", "rdi", "r9", "r10", "r11");
    return status;
}

uint16_t post_message(uint32_t connection_id, uint32_t message_type, const void* payload, uint32_t size)
{
    // struct hv_input_post_message: connection id, reserved, message type, payload size, payload.
    auto* words = reinterpret_cast<uint32_t*>(g_post_page);
    words[0] = connection_id;
    words[1] = 0;
    words[2] = message_type;
    words[3] = size;
    __builtin_memcpy(g_post_page + 16, payload, size);
    return static_cast<uint16_t>(hypercall(call_post_message, gpa(g_post_page), 0));
}

uint16_t signal_event(uint32_t connection_id, uint16_t flag)
{
    return static_cast<uint16_t>(
        hypercall(call_signal_event | call_fast, uint64_t{connection_id} | (uint64_t{flag} << 32), 0));
}

// ---- reference TSC ----

bool enable_reference_tsc()
{
    g_tsc_page = static_cast<ReferenceTscPage*>(alloc_pages(1));
    if (!g_tsc_page)
        return false;
    uint64_t msr = rdmsr(msr_reference_tsc);
    msr = (msr & 0xffe) | gpa(g_tsc_page) | 1;
    wrmsr(msr_reference_tsc, msr);
    uint64_t back = rdmsr(msr_reference_tsc);
    if (!(back & 1) || (back >> 12) != pfn(g_tsc_page))
        return fail("reference tsc: MSR 0x40000021 wrote 0x%lx, read back 0x%lx", msr, back);
    return true;
}

ReferenceTscPage* reference_tsc_page() { return g_tsc_page; }

bool reference_time(uint64_t& time)
{
    for (;;) {
        uint32_t seq = g_tsc_page->sequence;
        if (seq == 0)
            return false;
        asm volatile("" ::: "memory");
        uint64_t scale = g_tsc_page->scale;
        int64_t offset = g_tsc_page->offset;
        uint64_t tsc = rdtsc();
        asm volatile("" ::: "memory");
        if (g_tsc_page->sequence != seq)
            continue;
        time = static_cast<uint64_t>((static_cast<unsigned __int128>(tsc) * scale) >> 64) +
               static_cast<uint64_t>(offset);
        return true;
    }
}

// ---- SynIC ----

bool synic_enable(const SynicConfig& config)
{
    if (config.sint > 15)
        return fail("synic: SINT %u out of range", config.sint);
    g_simp = static_cast<Message*>(alloc_pages(1));
    g_siefp = static_cast<uint8_t*>(alloc_pages(1));
    if (!g_simp || !g_siefp)
        return false;
    set_interrupt_handler(config.vector, sint_handler);

    uint64_t simp = rdmsr(msr_simp);
    simp = (simp & 0xffe) | gpa(g_simp) | 1;
    wrmsr(msr_simp, simp);
    uint64_t back = rdmsr(msr_simp);
    if (back != simp)
        return fail("synic: SIMP (MSR 0x40000083) wrote 0x%lx, read back 0x%lx", simp, back);

    uint64_t siefp = rdmsr(msr_siefp);
    siefp = (siefp & 0xffe) | gpa(g_siefp) | 1;
    wrmsr(msr_siefp, siefp);
    back = rdmsr(msr_siefp);
    if (back != siefp)
        return fail("synic: SIEFP (MSR 0x40000082) wrote 0x%lx, read back 0x%lx", siefp, back);

    uint64_t sint = rdmsr(msr_sint0 + config.sint);
    sint = (sint & ~(0xffull | sint_masked | sint_auto_eoi)) | config.vector | (config.auto_eoi ? sint_auto_eoi : 0);
    wrmsr(msr_sint0 + config.sint, sint);
    back = rdmsr(msr_sint0 + config.sint);
    if (back != sint)
        return fail("synic: SINT%u (MSR 0x%x) wrote 0x%lx, read back 0x%lx", config.sint, msr_sint0 + config.sint,
                    sint, back);

    uint64_t scontrol = rdmsr(msr_scontrol) | 1;
    wrmsr(msr_scontrol, scontrol);
    back = rdmsr(msr_scontrol);
    if (!(back & 1))
        return fail("synic: SCONTROL (MSR 0x40000080) wrote 0x%lx, read back 0x%lx: enable expected 1", scontrol,
                    back);
    return true;
}

Message* message_slot(unsigned sint) { return g_simp + sint; }

bool take_message(unsigned sint, Message& out)
{
    Message* slot = g_simp + sint;
    uint32_t type = __atomic_load_n(&slot->type, __ATOMIC_ACQUIRE);
    if (type == 0)
        return false;
    __builtin_memcpy(&out, slot, sizeof out);
    out.type = type;
    // Free the slot (Linux: cmpxchg of message_type to HVMSG_NONE), then EOM if another one waits.
    uint32_t expected = type;
    if (__atomic_compare_exchange_n(&slot->type, &expected, 0u, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        if (__atomic_load_n(&slot->flags, __ATOMIC_SEQ_CST) & message_flag_pending)
            wrmsr(msr_eom, 0);
    }
    return true;
}

bool test_and_clear_event(unsigned sint, unsigned n)
{
    auto* word = reinterpret_cast<uint64_t*>(g_siefp + sint * 256) + (n / 64);
    uint64_t bit = 1ull << (n % 64);
    return __atomic_fetch_and(word, ~bit, __ATOMIC_SEQ_CST) & bit;
}

bool test_event(unsigned sint, unsigned n)
{
    auto* word = reinterpret_cast<uint64_t*>(g_siefp + sint * 256) + (n / 64);
    return __atomic_load_n(word, __ATOMIC_SEQ_CST) & (1ull << (n % 64));
}

uint64_t sint_interrupts() { return g_sint_interrupts; }

} // namespace kit::hv
