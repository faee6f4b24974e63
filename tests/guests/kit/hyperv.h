// Test-guest kit: the Hyper-V enlightenments a Linux guest uses (Hyper-V TLFS; what Linux 6.1's
// arch/x86/kernel/cpu/mshyperv.c, arch/x86/hyperv/hv_init.c and drivers/hv/hv.c do): detection through
// CPUID, the hypercall page and the x64 hypercall ABI, the reference TSC page, the SynIC (message and event
// flag pages, SINTs, EOM). Freestanding; bootstrap processor only.
//
// Errors: functions that can fail return false after recording a one-line description (error()), so that
// a guest can print "result FAIL <error()>" after whatever cleanup it wants to do.
// Pages: pages_init() hands the library a zero-filled, page-aligned region (a static array in the guest:
// the kit folds .bss into the loaded image, so it is zero without any guest work); alloc_pages() carves
// zeroed pages from it.
// Waits: every wait has a deadline (time_init() says how fast the TSC runs); idle() is one step of a wait
// (sti; hlt; cli when a wake-up timer ticks, else sti; pause; cli).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kit::hv {

// ---- CPUID (TLFS 2.4; Linux: include/asm-generic/hyperv-tlfs.h, arch/x86/include/asm/hyperv-tlfs.h) ----
inline constexpr uint32_t cpuid_vendor = 0x40000000;    // EAX max leaf, EBX:ECX:EDX "Microsoft Hv"
inline constexpr uint32_t cpuid_interface = 0x40000001; // EAX "Hv#1"
inline constexpr uint32_t cpuid_version = 0x40000002;
inline constexpr uint32_t cpuid_features = 0x40000003; // EAX partition privileges, EBX flags, EDX misc
inline constexpr uint32_t cpuid_hints = 0x40000004;    // EAX recommendations
inline constexpr uint32_t cpuid_limits = 0x40000005;   // EAX max VPs, EBX max LPs
inline constexpr uint32_t cpuid_min_max_leaf = 0x40000005; // Linux's HYPERV_CPUID_MIN
inline constexpr uint32_t cpuid_max_max_leaf = 0x4000ffff; // Linux's HYPERV_CPUID_MAX

// 0x40000003 EAX
inline constexpr uint32_t feature_time_ref_count = 1u << 1;
inline constexpr uint32_t feature_synic = 1u << 2;
inline constexpr uint32_t feature_synthetic_timers = 1u << 3;
inline constexpr uint32_t feature_hypercall_msrs = 1u << 5;
inline constexpr uint32_t feature_vp_index = 1u << 6;
inline constexpr uint32_t feature_reference_tsc = 1u << 9;
inline constexpr uint32_t feature_frequency_msrs = 1u << 11;
inline constexpr uint32_t feature_tsc_invariant = 1u << 15;
// 0x40000003 EBX
inline constexpr uint32_t privilege_post_messages = 1u << 4;
inline constexpr uint32_t privilege_signal_events = 1u << 5;
inline constexpr uint32_t privilege_cpu_management = 1u << 12;
// 0x40000003 EDX
inline constexpr uint32_t misc_frequency_msrs_available = 1u << 8;
// 0x40000004 EAX
inline constexpr uint32_t hint_deprecating_aeoi = 1u << 9;

// ---- MSRs ----
inline constexpr uint32_t msr_guest_os_id = 0x40000000;
inline constexpr uint32_t msr_hypercall = 0x40000001;
inline constexpr uint32_t msr_vp_index = 0x40000002;
inline constexpr uint32_t msr_time_ref_count = 0x40000020;
inline constexpr uint32_t msr_reference_tsc = 0x40000021;
inline constexpr uint32_t msr_tsc_frequency = 0x40000022;
inline constexpr uint32_t msr_apic_frequency = 0x40000023;
inline constexpr uint32_t msr_vp_assist_page = 0x40000073;
inline constexpr uint32_t msr_scontrol = 0x40000080;
inline constexpr uint32_t msr_sversion = 0x40000081;
inline constexpr uint32_t msr_siefp = 0x40000082;
inline constexpr uint32_t msr_simp = 0x40000083;
inline constexpr uint32_t msr_eom = 0x40000084;
inline constexpr uint32_t msr_sint0 = 0x40000090;

inline constexpr uint64_t sint_masked = 1ull << 16;
inline constexpr uint64_t sint_auto_eoi = 1ull << 17;
inline constexpr uint64_t sint_polling = 1ull << 18;

// Linux's guest id (hv_generate_guest_id): vendor 0x8100 (Linux) in bits 63:48, the kernel version
// (LINUX_VERSION_CODE) in bits 47:16.
inline constexpr uint64_t linux_guest_os_id(uint32_t major, uint32_t minor, uint32_t sublevel)
{
    uint64_t version = (uint64_t{major} << 16) | (uint64_t{minor} << 8) | (sublevel > 255 ? 255 : sublevel);
    return (uint64_t{0x8100} << 48) | (version << 16);
}

// ---- hypercalls (TLFS 3) ----
inline constexpr uint16_t call_post_message = 0x5c;
inline constexpr uint16_t call_signal_event = 0x5d;
inline constexpr uint64_t call_fast = 1ull << 16;
inline constexpr uint16_t status_success = 0;
inline constexpr uint16_t status_invalid_code = 2;
inline constexpr uint16_t status_invalid_parameter = 5;
inline constexpr uint16_t status_insufficient_memory = 11;
inline constexpr uint16_t status_invalid_connection_id = 18;
inline constexpr uint16_t status_insufficient_buffers = 19;

// ---- SynIC ----
inline constexpr unsigned message_payload_bytes = 240;
struct Message { // struct hv_message
    uint32_t type;   // 0: slot free
    uint8_t size;    // payload bytes
    uint8_t flags;   // bit 0: message pending (write EOM after freeing the slot)
    uint16_t reserved;
    uint64_t sender; // port / origination id
    uint8_t payload[message_payload_bytes];
};
static_assert(sizeof(Message) == 256);
inline constexpr uint8_t message_flag_pending = 1;

// ---- errors ----
// Records the description of what went wrong (replacing the previous one); returns false.
bool fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
const char* error();

// ---- memory ----
void pages_init(void* zero_region, size_t pages);
// `count` zeroed, physically contiguous pages, or nullptr (recorded as an error) when the region is used up.
void* alloc_pages(size_t count);
inline uint64_t gpa(const void* p) { return reinterpret_cast<uint64_t>(p); } // identity mapped
inline uint64_t pfn(const void* p) { return gpa(p) >> 12; }

// ---- time ----
// TSC ticks per second used for every deadline (the Hyper-V TSC frequency MSR when advertised).
void time_init(uint64_t tsc_hz);
uint64_t tsc_per_ms();
uint64_t deadline_ms(uint64_t ms);
bool expired(uint64_t deadline);
uint64_t elapsed_ms(uint64_t since_tsc);
// Starts the local APIC timer (periodic, about every 10 ms, with `vector`) so that idle() can halt; returns
// whether it ticks. apic_hz: the APIC timer's input clock if known (0: assume 1 GHz, KVM's).
bool start_wakeup_timer(uint8_t vector, uint64_t apic_hz);
void stop_wakeup_timer();
uint64_t wakeup_ticks();
// One step of a wait: lets pending interrupts in, then halts until the next one (or just pauses).
void idle();
// Waits until done() is true or `ms` pass; returns done()'s last value.
template <class F> bool wait_until(F&& done, uint64_t ms)
{
    uint64_t deadline = deadline_ms(ms);
    for (;;) {
        if (done())
            return true;
        if (expired(deadline))
            return done();
        idle();
    }
}

// ---- detection (Linux: ms_hyperv_platform, ms_hyperv_init_platform) ----
struct Info {
    uint32_t max_leaf = 0;
    uint32_t features = 0;   // 0x40000003 EAX
    uint32_t privileges = 0; // 0x40000003 EBX
    uint32_t misc = 0;       // 0x40000003 EDX
    uint32_t hints = 0;      // 0x40000004 EAX
    uint32_t max_vp = 0, max_lp = 0;
    uint32_t version_build = 0; // 0x40000002 EAX
    uint32_t version_number = 0; // 0x40000002 EBX (major.minor)
};
// Checks everything Linux needs to take the machine for Hyper-V: CPUID.1:ECX[31], "Microsoft Hv" with a
// max leaf in [0x40000005, 0x4000ffff], "Hv#1", the hypercall and VP index MSRs; no KVM signature at
// 0x40000000 or 0x40000100.
bool detect(Info& info);

// ---- hypercall page (Linux: hyperv_init) ----
// Allocates the hypercall page, writes GPFN | 1 to the hypercall MSR, reads it back (enable and GPFN must
// stick) and checks that the host put code in the page.
bool enable_hypercalls();
void* hypercall_page();
// x64 ABI: RCX control, RDX input GPA (or value when fast), R8 output GPA; returns RAX.
uint64_t hypercall(uint64_t control, uint64_t input, uint64_t output);
// HvPostMessage through a page-aligned input page (Linux's per-cpu post_msg_page): returns the status.
uint16_t post_message(uint32_t connection_id, uint32_t message_type, const void* payload, uint32_t size);
// HvSignalEvent, fast: RDX = connection id | flag number << 32. Returns the status.
uint16_t signal_event(uint32_t connection_id, uint16_t flag);

// ---- reference TSC page ----
struct ReferenceTscPage {
    volatile uint32_t sequence; // 0: invalid
    uint32_t reserved;
    volatile uint64_t scale;
    volatile int64_t offset;
};
// Allocates the page and enables it through MSR 0x40000021 (GPFN << 12 | 1).
bool enable_reference_tsc();
ReferenceTscPage* reference_tsc_page();
// The partition reference time (100 ns units) from the page; false when its sequence is 0 (invalid).
bool reference_time(uint64_t& time);

// ---- SynIC (Linux: hv_synic_alloc, hv_synic_enable_regs, vmbus_signal_eom) ----
struct SynicConfig {
    unsigned sint = 2;     // VMBUS_MESSAGE_SINT
    uint8_t vector = 0xf3; // HYPERVISOR_CALLBACK_VECTOR
    bool auto_eoi = false;
};
// Allocates the message and event flag pages, enables SIMP and SIEFP, programs the SINT (unmasked) and
// sets SCONTROL.enable; installs an interrupt handler for the vector that counts and EOIs.
bool synic_enable(const SynicConfig& config);
Message* message_slot(unsigned sint);
// Takes the message in the SINT's slot, if any: copies it, frees the slot (message_type = 0) and writes
// EOM when the host marked another message pending. Returns false when the slot is empty.
bool take_message(unsigned sint, Message& out);
// The SINT's event flags (SIEFP page + sint * 256): atomically tests and clears flag `n`.
bool test_and_clear_event(unsigned sint, unsigned n);
bool test_event(unsigned sint, unsigned n);
uint64_t sint_interrupts(); // deliveries of the SINT vector so far

} // namespace kit::hv
