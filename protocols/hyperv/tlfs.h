// Hyper-V Top-Level Functional Specification (TLFS 6.0) wire formats and numbers used by the enlightenments
// (vm/hyperv): CPUID leaves and feature bits, synthetic MSRs, hypercall control word and status codes, the
// SynIC message and event-flag pages, the reference TSC page and the HvPostMessage / HvSignalEvent inputs.
// Cross-checked against Linux 6.1: arch/x86/include/asm/hyperv-tlfs.h, include/asm-generic/hyperv-tlfs.h,
// drivers/hv/hyperv_vmbus.h (hv_input_post_message, hv_input_signal_event). Little-endian, packed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmgen::protocols::hyperv {

// ---- CPUID (TLFS chapter 2 "Feature and Interface Discovery") ----
namespace cpuid {
inline constexpr uint32_t vendor_and_max = 0x40000000; // EAX highest leaf, EBX:ECX:EDX "Microsoft Hv"
inline constexpr uint32_t interface = 0x40000001;      // EAX "Hv#1"
inline constexpr uint32_t version = 0x40000002;        // host build / version
inline constexpr uint32_t features = 0x40000003;       // EAX/EBX partition privileges, EDX misc features
inline constexpr uint32_t enlightenment_info = 0x40000004; // EAX hints, EBX spinlock retries
inline constexpr uint32_t implementation_limits = 0x40000005; // EAX max VPs, EBX max LPs
inline constexpr uint32_t hardware_features = 0x40000006;
inline constexpr uint32_t cpu_management = 0x40000007; // only for the root partition: keep zero
inline constexpr uint32_t nested_features = 0x4000000A;
inline constexpr uint32_t virt_stack_interface = 0x40000081; // Linux probes it (msi_ext_dest_id): keep zero
inline constexpr uint32_t virt_stack_properties = 0x40000082;
inline constexpr uint32_t minimum_max_leaf = 0x40000005; // Linux: HYPERV_CPUID_MIN

// "Microsoft Hv" as EBX, ECX, EDX; "Hv#1" as EAX of the interface leaf.
inline constexpr uint32_t signature_ebx = 0x7263694d; // "Micr"
inline constexpr uint32_t signature_ecx = 0x666f736f; // "osof"
inline constexpr uint32_t signature_edx = 0x76482074; // "t Hv"
inline constexpr uint32_t interface_hv1 = 0x31237648; // "Hv#1"

// 0x40000003 EAX: partition privilege mask, low half (TLFS 2.4.2; Linux HV_MSR_*_AVAILABLE).
inline constexpr uint32_t eax_vp_runtime = 1u << 0;
inline constexpr uint32_t eax_time_ref_count = 1u << 1;
inline constexpr uint32_t eax_synic = 1u << 2;
inline constexpr uint32_t eax_synthetic_timers = 1u << 3;
inline constexpr uint32_t eax_apic_access = 1u << 4;
inline constexpr uint32_t eax_hypercall = 1u << 5; // HYPERCALL and GUEST_OS_ID
inline constexpr uint32_t eax_vp_index = 1u << 6;
inline constexpr uint32_t eax_reset = 1u << 7;
inline constexpr uint32_t eax_reference_tsc = 1u << 9;
inline constexpr uint32_t eax_guest_idle = 1u << 10;
inline constexpr uint32_t eax_frequency_msrs = 1u << 11;
inline constexpr uint32_t eax_reenlightenment = 1u << 13;
inline constexpr uint32_t eax_tsc_invariant = 1u << 15;
// 0x40000003 EBX: partition privilege mask, high half.
inline constexpr uint32_t ebx_access_partition_id = 1u << 1;
inline constexpr uint32_t ebx_post_messages = 1u << 4;
inline constexpr uint32_t ebx_signal_events = 1u << 5;
inline constexpr uint32_t ebx_cpu_management = 1u << 12; // makes Linux believe it is the root partition
inline constexpr uint32_t ebx_extended_hypercalls = 1u << 20;
inline constexpr uint32_t ebx_isolation = 1u << 22;
// 0x40000003 EDX: miscellaneous features.
inline constexpr uint32_t edx_frequency_msrs_available = 1u << 8;
inline constexpr uint32_t edx_guest_crash_msrs_available = 1u << 10;
// 0x40000004 EAX: implementation recommendations.
inline constexpr uint32_t hint_deprecating_auto_eoi = 1u << 9;
} // namespace cpuid

// Standard (non-Hyper-V) CPUID bits a Hyper-V guest expects alongside the leaves above.
namespace standard_cpuid {
inline constexpr uint32_t leaf1_ecx_hypervisor = 1u << 31;      // CPUID.1:ECX[31]
inline constexpr uint32_t leaf_80000007_edx_invariant_tsc = 1u << 8; // CPUID.80000007H:EDX[8]
} // namespace standard_cpuid

// ---- Synthetic MSRs (TLFS appendix "Hypervisor Synthetic MSRs") ----
namespace msr {
inline constexpr uint32_t guest_os_id = 0x40000000;
inline constexpr uint32_t hypercall = 0x40000001;
inline constexpr uint32_t vp_index = 0x40000002;
inline constexpr uint32_t time_ref_count = 0x40000020;
inline constexpr uint32_t reference_tsc = 0x40000021;
inline constexpr uint32_t tsc_frequency = 0x40000022;
inline constexpr uint32_t apic_frequency = 0x40000023;
inline constexpr uint32_t vp_assist_page = 0x40000073;
inline constexpr uint32_t scontrol = 0x40000080;
inline constexpr uint32_t sversion = 0x40000081;
inline constexpr uint32_t siefp = 0x40000082;
inline constexpr uint32_t simp = 0x40000083;
inline constexpr uint32_t eom = 0x40000084;
inline constexpr uint32_t sint0 = 0x40000090;
inline constexpr uint32_t sint15 = 0x4000009f;
inline constexpr uint32_t crash_p0 = 0x40000100;
inline constexpr uint32_t crash_p4 = 0x40000104;
inline constexpr uint32_t crash_ctl = 0x40000105;
inline constexpr uint32_t tsc_invariant_control = 0x40000118;

// Fields shared by the "page" MSRs (HYPERCALL, REFERENCE_TSC, VP_ASSIST_PAGE, SIMP, SIEFP):
// bit 0 enable, bits 11:1 reserved/preserved, bits 63:12 guest physical page number.
inline constexpr uint64_t page_enable = 1ull << 0;
inline constexpr unsigned page_shift = 12;
inline constexpr uint64_t page_gpa_mask = ~((1ull << page_shift) - 1);
inline constexpr uint64_t hypercall_locked = 1ull << 1; // HYPERCALL only

inline constexpr uint64_t scontrol_enable = 1ull << 0;
inline constexpr uint64_t synic_version = 1; // SVERSION (HV_SYNIC_VERSION_1)

// SINTx: vector 7:0, masked 16, auto-EOI 17, polling 18 (Linux union hv_synic_sint).
inline constexpr uint64_t sint_vector_mask = 0xff;
inline constexpr uint64_t sint_masked = 1ull << 16;
inline constexpr uint64_t sint_auto_eoi = 1ull << 17;
inline constexpr uint64_t sint_polling = 1ull << 18;
inline constexpr uint64_t sint_power_on = sint_masked; // every SINT starts masked, vector 0
inline constexpr uint8_t sint_first_valid_vector = 16;  // HV_SYNIC_FIRST_VALID_VECTOR

inline constexpr uint64_t crash_ctl_notify_msg = 1ull << 62; // P3 = GPA, P4 = size of a message page
inline constexpr uint64_t crash_ctl_notify = 1ull << 63;
} // namespace msr

inline constexpr uint32_t sint_count = 16;
inline constexpr uint64_t page_size = 4096;

// ---- Hypercalls (TLFS chapter 3) ----
namespace hypercall {
// Call codes.
inline constexpr uint16_t post_message = 0x005c;
inline constexpr uint16_t signal_event = 0x005d;

// The x64 control word (RCX): code 15:0, fast 16, variable header size 26:17, rep count 43:32, rep start
// 59:48; bits 31:27, 47:44 and 63:60 reserved (must be zero).
inline constexpr uint64_t code_mask = 0xffff;
inline constexpr uint64_t fast = 1ull << 16;
inline constexpr unsigned varhead_shift = 17;
inline constexpr uint64_t varhead_mask = 0x3ffull << varhead_shift;
inline constexpr unsigned rep_count_shift = 32;
inline constexpr uint64_t rep_count_mask = 0xfffull << rep_count_shift;
inline constexpr unsigned rep_start_shift = 48;
inline constexpr uint64_t rep_start_mask = 0xfffull << rep_start_shift;
inline constexpr uint64_t reserved_mask = (0x1full << 27) | (0xfull << 44) | (0xfull << 60);

// The result (RAX): status 15:0, reps completed 43:32.
inline constexpr unsigned reps_completed_shift = 32;

inline constexpr uint64_t input_alignment = 8;
} // namespace hypercall

// HV_STATUS_* codes (TLFS appendix "Hypercall Status Codes"; Linux include/asm-generic/hyperv-tlfs.h).
namespace status {
inline constexpr uint16_t success = 0x0000;
inline constexpr uint16_t invalid_hypercall_code = 0x0002;
inline constexpr uint16_t invalid_hypercall_input = 0x0003;
inline constexpr uint16_t invalid_alignment = 0x0004;
inline constexpr uint16_t invalid_parameter = 0x0005;
inline constexpr uint16_t access_denied = 0x0006;
inline constexpr uint16_t operation_denied = 0x0008;
inline constexpr uint16_t insufficient_memory = 0x000b;
inline constexpr uint16_t invalid_port_id = 0x0011;
inline constexpr uint16_t invalid_connection_id = 0x0012;
inline constexpr uint16_t insufficient_buffers = 0x0013;
} // namespace status

#pragma pack(push, 1)

// ---- SynIC messages (TLFS 11.x "SynIC Messages"; Linux struct hv_message) ----
inline constexpr size_t message_payload_bytes = 240; // HV_MESSAGE_PAYLOAD_BYTE_COUNT
inline constexpr uint8_t message_flag_pending = 1u << 0; // hv_message_flags.msg_pending
// Message types with bit 31 set are reserved for the hypervisor; a guest may post 1..0x7fffffff.
inline constexpr uint32_t message_type_none = 0;
inline constexpr uint32_t message_type_hypervisor_first = 0x80000000;

struct MessageHeader {
    uint32_t message_type; // 0 = slot free (HVMSG_NONE)
    uint8_t payload_size;
    uint8_t flags;         // bit 0: message pending
    uint8_t reserved[2];
    uint64_t sender;       // port id / sender (unused by Linux)
};
static_assert(sizeof(MessageHeader) == 16);
static_assert(offsetof(MessageHeader, message_type) == 0);
static_assert(offsetof(MessageHeader, payload_size) == 4);
static_assert(offsetof(MessageHeader, flags) == 5);
static_assert(offsetof(MessageHeader, sender) == 8);

struct Message {
    MessageHeader header;
    uint8_t payload[message_payload_bytes];
};
static_assert(sizeof(Message) == 256);
static_assert(offsetof(Message, payload) == 16);

// The SIMP page: one message slot per SINT (struct hv_message_page).
inline constexpr uint64_t simp_slot_offset(uint32_t sint) { return uint64_t{sint} * sizeof(Message); }
static_assert(sint_count * sizeof(Message) == page_size);

// The SIEFP page: one 2048-bit event-flag bitmap (256 bytes) per SINT (union hv_synic_event_flags).
inline constexpr uint32_t event_flags_per_sint = 256 * 8; // HV_EVENT_FLAGS_COUNT
inline constexpr uint64_t event_flags_bytes = 256;
inline constexpr uint64_t siefp_offset(uint32_t sint) { return uint64_t{sint} * event_flags_bytes; }
static_assert(sint_count * event_flags_bytes == page_size);

// ---- Reference TSC page (TLFS 12.7 "Partition Reference TSC Mechanism"; Linux ms_hyperv_tsc_page) ----
// Reference time (100 ns units) = ((tsc * scale) >> 64) + offset, valid while sequence != 0 and unchanged
// across the read.
struct ReferenceTscPage {
    uint32_t sequence; // 0: invalid, the guest falls back to the TIME_REF_COUNT MSR
    uint32_t reserved;
    uint64_t scale;
    int64_t offset;
};
static_assert(sizeof(ReferenceTscPage) == 24);
static_assert(offsetof(ReferenceTscPage, sequence) == 0);
static_assert(offsetof(ReferenceTscPage, scale) == 8);
static_assert(offsetof(ReferenceTscPage, offset) == 16);
inline constexpr uint64_t reference_time_hz = 10'000'000; // 100 ns units

__extension__ typedef unsigned __int128 uint128; // GCC/clang extension, as Linux's mul_u64_u64_shr

// scale = 10^7 * 2^64 / tsc_hz (truncated): fits in 64 bits only for tsc_hz > 10 MHz (0 otherwise).
inline constexpr uint64_t reference_tsc_scale(uint64_t tsc_hz)
{
    if (tsc_hz <= reference_time_hz)
        return 0;
    return static_cast<uint64_t>((uint128{reference_time_hz} << 64) / tsc_hz);
}
// The page's reference time for `tsc`: ((tsc * scale) >> 64) + offset.
inline constexpr uint64_t reference_tsc_time(uint64_t tsc, uint64_t scale, int64_t offset)
{
    return static_cast<uint64_t>((uint128{tsc} * scale) >> 64) + static_cast<uint64_t>(offset);
}

// ---- HvPostMessage input (TLFS "HvPostMessage"; Linux struct hv_input_post_message) ----
inline constexpr uint32_t connection_id_mask = 0x00ffffff; // hv_connection_id: 24-bit id, 8 reserved bits

struct PostMessageInput {
    uint32_t connection_id;
    uint32_t reserved; // must be zero
    uint32_t message_type;
    uint32_t payload_size; // <= 240
    uint8_t payload[message_payload_bytes];
};
static_assert(sizeof(PostMessageInput) == 256);
static_assert(offsetof(PostMessageInput, connection_id) == 0);
static_assert(offsetof(PostMessageInput, reserved) == 4);
static_assert(offsetof(PostMessageInput, message_type) == 8);
static_assert(offsetof(PostMessageInput, payload_size) == 12);
static_assert(offsetof(PostMessageInput, payload) == 16);

// ---- HvSignalEvent input (Linux struct hv_input_signal_event); as a fast call it is RDX ----
struct SignalEventInput {
    uint32_t connection_id;
    uint16_t flag_number;
    uint16_t reserved; // must be zero
};
static_assert(sizeof(SignalEventInput) == 8);
static_assert(offsetof(SignalEventInput, flag_number) == 4);
static_assert(offsetof(SignalEventInput, reserved) == 6);

#pragma pack(pop)

} // namespace vmgen::protocols::hyperv
