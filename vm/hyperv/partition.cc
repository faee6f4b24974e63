#include "vm/hyperv/partition.h"

#include "support/log.h"

#include <cstring>

namespace vmgen::vm::hyperv {

namespace tlfs = protocols::hyperv;
namespace msr = protocols::hyperv::msr;
namespace hc = protocols::hyperv::hypercall;
namespace hv_st = protocols::hyperv::status;

namespace {

constexpr std::string_view component = "hyperv";
constexpr uint32_t crash_param_count = msr::crash_p4 - msr::crash_p0 + 1;

// Bytes of the hypercall page: `endbr64` (for guests with IBT: Linux calls the page indirectly), then
// `out %al, $port` (an immediate port, so RDX survives) and `ret`. The rest of the page is int3.
constexpr uint8_t endbr64[] = {0xf3, 0x0f, 0x1e, 0xfa};
constexpr uint8_t opcode_out_imm8_al = 0xe6;
constexpr uint8_t opcode_ret = 0xc3;
constexpr uint8_t opcode_int3 = 0xcc;

uint64_t page_gpa(uint64_t value) { return value & msr::page_gpa_mask; }
bool page_enabled(uint64_t value) { return (value & msr::page_enable) != 0; }

uint64_t result_rax(uint16_t status) { return status; }

// The guest sees these bytes concurrently: plain loads and stores through __atomic builtins.
uint32_t* message_type_of(uint8_t* slot) { return reinterpret_cast<uint32_t*>(slot + offsetof(tlfs::MessageHeader, message_type)); }
uint8_t* message_flags_of(uint8_t* slot) { return slot + offsetof(tlfs::MessageHeader, flags); }

} // namespace

void Partition::VpState::reset()
{
    vp_assist = 0;
    scontrol = 0;
    simp = 0;
    siefp = 0;
    simp_host = nullptr;
    siefp_host = nullptr;
    sint.fill(msr::sint_power_on);
    irq_held.fill(false);
    for (auto& q : queue)
        q.clear();
}

Result<std::unique_ptr<Partition>> Partition::create(const GuestMemory& memory, const PartitionConfig& config,
                                                     SynicInterrupt& interrupt, ReferenceClock& clock,
                                                     VmbusHostSide* vmbus)
{
    if (config.vp_count == 0 || config.vp_count > max_vp_count)
        return fail("Hyper-V partition: {} virtual processors (1..{} supported)", config.vp_count, max_vp_count);
    if (config.tsc_hz == 0 || config.apic_hz == 0)
        return fail("Hyper-V partition: TSC ({} Hz) and APIC ({} Hz) frequencies must be known", config.tsc_hz,
                    config.apic_hz);
    if (config.tsc_hz <= tlfs::reference_time_hz)
        log_warn(component, "TSC at {} Hz is too slow for a reference TSC page: the guest will read the MSR",
                 config.tsc_hz);
    return std::unique_ptr<Partition>(new Partition(memory, config, interrupt, clock, vmbus));
}

Partition::Partition(const GuestMemory& memory, const PartitionConfig& config, SynicInterrupt& interrupt,
                     ReferenceClock& clock, VmbusHostSide* vmbus)
    : m_memory(memory), m_config(config), m_interrupt(interrupt), m_clock(clock), m_vmbus(vmbus)
{
    m_vps.reserve(config.vp_count);
    for (uint32_t i = 0; i < config.vp_count; ++i) {
        m_vps.push_back(std::make_unique<VpState>());
        m_vps.back()->reset();
    }
}

Partition::~Partition() = default;

void Partition::connect_vmbus(VmbusHostSide* vmbus) { m_vmbus.store(vmbus, std::memory_order_release); }

bool Partition::handles_msr(uint32_t number)
{
    switch (number) {
    case msr::guest_os_id:
    case msr::hypercall:
    case msr::vp_index:
    case msr::time_ref_count:
    case msr::reference_tsc:
    case msr::tsc_frequency:
    case msr::apic_frequency:
    case msr::vp_assist_page:
    case msr::scontrol:
    case msr::sversion:
    case msr::siefp:
    case msr::simp:
    case msr::eom:
    case msr::crash_ctl:
    case msr::tsc_invariant_control:
        return true;
    default:
        return (number >= msr::sint0 && number <= msr::sint15) ||
               (number >= msr::crash_p0 && number <= msr::crash_p4);
    }
}

// ---- MSRs ----

Result<uint64_t> Partition::read_msr(uint32_t vp, uint32_t number)
{
    if (vp >= m_vps.size())
        return fail("RDMSR {:#x} on VP {} of {}", number, vp, m_vps.size());
    switch (number) {
    case msr::vp_index:
        return uint64_t{vp};
    case msr::time_ref_count:
        return m_clock.reference_time();
    case msr::tsc_frequency:
        return m_config.tsc_hz;
    case msr::apic_frequency:
        return m_config.apic_hz;
    case msr::guest_os_id:
    case msr::hypercall:
    case msr::reference_tsc:
    case msr::crash_ctl:
    case msr::tsc_invariant_control: {
        std::lock_guard lock(m_lock);
        switch (number) {
        case msr::guest_os_id:
            return m_guest_os_id;
        case msr::hypercall:
            return m_hypercall;
        case msr::reference_tsc:
            return m_reference_tsc;
        case msr::crash_ctl:
            return msr::crash_ctl_notify; // the capabilities: crash notification, no message page
        default:
            return m_tsc_invariant_control;
        }
    }
    default:
        break;
    }
    if (number >= msr::crash_p0 && number <= msr::crash_p4) {
        std::lock_guard lock(m_lock);
        return m_crash_params[number - msr::crash_p0];
    }
    VpState& state = *m_vps[vp];
    std::lock_guard lock(state.lock);
    return read_vp_msr(state, number);
}

Result<uint64_t> Partition::read_vp_msr(VpState& vp, uint32_t number)
{
    switch (number) {
    case msr::vp_assist_page:
        return vp.vp_assist;
    case msr::scontrol:
        return vp.scontrol;
    case msr::sversion:
        return msr::synic_version;
    case msr::siefp:
        return vp.siefp;
    case msr::simp:
        return vp.simp;
    case msr::eom:
        return uint64_t{0}; // write-only: reads as zero
    default:
        if (number >= msr::sint0 && number <= msr::sint15)
            return vp.sint[number - msr::sint0];
        return fail("RDMSR {:#x}: not a Hyper-V synthetic MSR", number);
    }
}

Result<void> Partition::write_msr(uint32_t vp, uint32_t number, uint64_t value)
{
    if (vp >= m_vps.size())
        return fail("WRMSR {:#x} on VP {} of {}", number, vp, m_vps.size());
    switch (number) {
    case msr::vp_index:
    case msr::time_ref_count:
    case msr::tsc_frequency:
    case msr::apic_frequency:
    case msr::sversion:
        log_debug(component, "VP {}: WRMSR {:#x} <- {:#x}: read-only", vp, number, value);
        return fail("WRMSR {:#x}: read-only Hyper-V MSR", number);
    case msr::guest_os_id:
    case msr::hypercall:
    case msr::reference_tsc:
    case msr::crash_ctl:
    case msr::tsc_invariant_control:
        if (auto result = write_partition_msr(number, value); !result) {
            log_debug(component, "VP {}: WRMSR {:#x} <- {:#x}: {}", vp, number, value, result.error().message());
            return result;
        }
        return {};
    default:
        break;
    }
    Result<void> result;
    if (number >= msr::crash_p0 && number <= msr::crash_p4) {
        result = write_partition_msr(number, value);
    } else {
        VpState& state = *m_vps[vp];
        Injections injections;
        {
            std::lock_guard lock(state.lock);
            result = write_vp_msr(state, number, value, injections);
        }
        inject(vp, injections);
    }
    if (!result)
        log_debug(component, "VP {}: WRMSR {:#x} <- {:#x}: {}", vp, number, value, result.error().message());
    return result;
}

Result<void> Partition::write_partition_msr(uint32_t number, uint64_t value)
{
    std::lock_guard lock(m_lock);
    switch (number) {
    case msr::guest_os_id:
        m_guest_os_id = value;
        if (value == 0 && page_enabled(m_hypercall)) {
            // TLFS 3.13: clearing the guest OS identity disables the hypercall page.
            m_hypercall &= ~msr::page_enable;
            m_hypercall_enabled.store(false, std::memory_order_release);
        }
        return {};
    case msr::hypercall:
        return write_hypercall_msr(value);
    case msr::reference_tsc:
        return write_reference_tsc_msr(value);
    case msr::tsc_invariant_control:
        m_tsc_invariant_control = value;
        return {};
    case msr::crash_ctl:
        if ((value & msr::crash_ctl_notify) != 0) {
            GuestCrash crash;
            crash.params = m_crash_params;
            m_crash = crash;
            log_error(component, "guest crash reported: P0 {:#x} P1 {:#x} P2 {:#x} P3 {:#x} P4 {:#x}",
                      crash.params[0], crash.params[1], crash.params[2], crash.params[3], crash.params[4]);
        }
        return {};
    default:
        if (number >= msr::crash_p0 && number <= msr::crash_p4) {
            m_crash_params[number - msr::crash_p0] = value;
            return {};
        }
        return fail("WRMSR {:#x}: not a partition-wide Hyper-V MSR", number);
    }
}

Result<void> Partition::write_hypercall_msr(uint64_t value)
{
    if ((m_hypercall & msr::hypercall_locked) != 0) {
        log_debug(component, "HYPERCALL MSR is locked: write {:#x} ignored", value);
        return {};
    }
    if (page_enabled(value)) {
        if (m_guest_os_id == 0) {
            // TLFS 3.13: the page cannot be enabled before the guest identifies itself; the bit stays clear.
            log_debug(component, "HYPERCALL enable before GUEST_OS_ID: left disabled");
            value &= ~msr::page_enable;
        } else {
            TRY(write_hypercall_page(page_gpa(value)));
        }
    }
    m_hypercall = value;
    m_hypercall_enabled.store(page_enabled(value), std::memory_order_release);
    return {};
}

Result<void> Partition::write_hypercall_page(uint64_t gpa)
{
    auto page = m_memory.span(gpa, tlfs::page_size);
    if (!page)
        return fail("hypercall page at {:#x} is not RAM", gpa);
    std::array<uint8_t, tlfs::page_size> code;
    code.fill(opcode_int3);
    size_t at = 0;
    for (uint8_t byte : endbr64)
        code[at++] = byte;
    code[at++] = opcode_out_imm8_al;
    code[at++] = m_config.hypercall_port;
    code[at++] = opcode_ret;
    std::memcpy(page->data(), code.data(), code.size());
    return {};
}

Result<void> Partition::write_reference_tsc_msr(uint64_t value)
{
    if (page_enabled(value))
        TRY(write_reference_tsc_page(page_gpa(value)));
    m_reference_tsc = value;
    return {};
}

Result<void> Partition::write_reference_tsc_page(uint64_t gpa)
{
    auto page = m_memory.span(gpa, tlfs::page_size);
    if (!page)
        return fail("reference TSC page at {:#x} is not RAM", gpa);
    uint8_t* base = page->data();
    auto* sequence = reinterpret_cast<uint32_t*>(base + offsetof(tlfs::ReferenceTscPage, sequence));
    // Invalidate first so that a reader on another VP retries or falls back to the MSR while we update.
    __atomic_store_n(sequence, 0u, __ATOMIC_SEQ_CST);
    if (m_config.tsc_hz <= tlfs::reference_time_hz)
        return {}; // the scale would not fit in 64 bits: leave the page invalid (sequence 0)

    // scale = 10^7 * 2^64 / tsc_hz, exactly (truncated); time = ((tsc * scale) >> 64) + offset.
    const uint64_t scale = tlfs::reference_tsc_scale(m_config.tsc_hz);
    const uint64_t now = m_clock.reference_time();
    const uint64_t tsc = m_clock.guest_tsc();
    const uint64_t scaled = tlfs::reference_tsc_time(tsc, scale, 0);
    const auto offset = static_cast<int64_t>(now - scaled); // two's complement difference

    std::memcpy(base + offsetof(tlfs::ReferenceTscPage, scale), &scale, sizeof(scale));
    std::memcpy(base + offsetof(tlfs::ReferenceTscPage, offset), &offset, sizeof(offset));
    std::memset(base + offsetof(tlfs::ReferenceTscPage, reserved), 0, sizeof(uint32_t));
    // A new sequence number every time: never 0 (invalid) nor 0xFFFFFFFF (invalid for older guests).
    m_tsc_sequence = m_tsc_sequence + 1;
    if (m_tsc_sequence == 0 || m_tsc_sequence == 0xffffffffu)
        m_tsc_sequence = 1;
    __atomic_store_n(sequence, m_tsc_sequence, __ATOMIC_RELEASE);
    return {};
}

Result<void> Partition::write_vp_msr(VpState& vp, uint32_t number, uint64_t value, Injections& out)
{
    switch (number) {
    case msr::vp_assist_page:
        // An overlay page the host never touches here: stored and read back.
        vp.vp_assist = value;
        return {};
    case msr::scontrol: {
        const bool was_enabled = (vp.scontrol & msr::scontrol_enable) != 0;
        vp.scontrol = value;
        if (!was_enabled && (value & msr::scontrol_enable) != 0) {
            try_deliver_all(vp, out);
            flush_held(vp, out);
        }
        return {};
    }
    case msr::simp:
    case msr::siefp: {
        uint8_t* host = nullptr;
        if (page_enabled(value)) {
            auto page = m_memory.span(page_gpa(value), tlfs::page_size);
            if (!page)
                return fail("{} page at {:#x} is not RAM", number == msr::simp ? "SIMP" : "SIEFP", page_gpa(value));
            host = page->data();
        }
        if (number == msr::simp) {
            vp.simp = value;
            vp.simp_host = host;
            try_deliver_all(vp, out);
        } else {
            vp.siefp = value;
            vp.siefp_host = host;
        }
        return {};
    }
    case msr::eom:
        // End of message: rescan every SINT for a queued message whose slot is now free.
        try_deliver_all(vp, out);
        return {};
    default:
        break;
    }
    if (number >= msr::sint0 && number <= msr::sint15) {
        const uint32_t sint = number - msr::sint0;
        const auto vector = static_cast<uint8_t>(value & msr::sint_vector_mask);
        const bool masked = (value & msr::sint_masked) != 0;
        // TLFS 11.8.4: vectors 0-15 are invalid. Like KVM, a masked SINT may carry one (Linux rewrites the
        // power-on value, masked with vector 0, when it tears the SynIC down).
        if (!masked && vector < msr::sint_first_valid_vector)
            return fail("SINT{} vector {} is below 16", sint, vector);
        vp.sint[sint] = value;
        if (!masked) {
            try_deliver(vp, sint, out);
            if (vp.irq_held[sint])
                raise(vp, sint, out);
        }
        return {};
    }
    return fail("WRMSR {:#x}: not a Hyper-V synthetic MSR", number);
}

// ---- SynIC ----

void Partition::raise(VpState& vp, uint32_t sint, Injections& out)
{
    const uint64_t reg = vp.sint[sint];
    if ((vp.scontrol & msr::scontrol_enable) == 0 || (reg & msr::sint_masked) != 0) {
        vp.irq_held[sint] = true;
        return;
    }
    vp.irq_held[sint] = false;
    const auto vector = static_cast<uint8_t>(reg & msr::sint_vector_mask);
    for (size_t i = 0; i < out.count; ++i) {
        if (out.vectors[i] == vector)
            return; // one interrupt per vector per batch is enough
    }
    out.vectors[out.count++] = vector;
}

void Partition::flush_held(VpState& vp, Injections& out)
{
    for (uint32_t sint = 0; sint < sint_count; ++sint) {
        if (vp.irq_held[sint])
            raise(vp, sint, out);
    }
}

void Partition::try_deliver(VpState& vp, uint32_t sint, Injections& out)
{
    auto& queue = vp.queue[sint];
    if (queue.empty() || (vp.scontrol & msr::scontrol_enable) == 0 || vp.simp_host == nullptr)
        return;
    uint8_t* slot = vp.simp_host + tlfs::simp_slot_offset(sint);
    uint32_t* type = message_type_of(slot);
    if (__atomic_load_n(type, __ATOMIC_ACQUIRE) != tlfs::message_type_none) {
        // Busy: ask the guest for an EOM. The guest clears the type and then reads the flag; we set the flag
        // and then read the type again (both sequentially consistent), so one of us sees the other.
        __atomic_fetch_or(message_flags_of(slot), tlfs::message_flag_pending, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(type, __ATOMIC_SEQ_CST) != tlfs::message_type_none)
            return;
    }
    const QueuedMessage message = queue.front();
    queue.pop_front();
    tlfs::MessageHeader header{};
    header.payload_size = message.size;
    header.flags = queue.empty() ? 0 : tlfs::message_flag_pending;
    // Payload and the rest of the header first, the type last (release): the guest polls the type.
    std::memcpy(slot + sizeof(tlfs::MessageHeader), message.payload.data(), message.payload.size());
    std::memcpy(slot + sizeof(uint32_t), reinterpret_cast<const uint8_t*>(&header) + sizeof(uint32_t),
                sizeof(header) - sizeof(uint32_t));
    __atomic_store_n(type, message.type, __ATOMIC_RELEASE);
    raise(vp, sint, out);
}

void Partition::try_deliver_all(VpState& vp, Injections& out)
{
    for (uint32_t sint = 0; sint < sint_count; ++sint)
        try_deliver(vp, sint, out);
}

void Partition::inject(uint32_t vp_index, const Injections& injections)
{
    for (size_t i = 0; i < injections.count; ++i)
        m_interrupt.inject(vp_index, injections.vectors[i]);
}

bool Partition::post_message(uint32_t vp_index, uint8_t sint, uint32_t message_type,
                             std::span<const uint8_t> payload)
{
    if (vp_index >= m_vps.size() || sint >= sint_count || message_type == tlfs::message_type_none ||
        payload.size() > tlfs::message_payload_bytes)
        return false;
    VpState& vp = *m_vps[vp_index];
    Injections injections;
    {
        std::lock_guard lock(vp.lock);
        auto& queue = vp.queue[sint];
        if (queue.size() >= message_queue_depth) {
            log_debug(component, "VP {} SINT {}: message queue full, type {} dropped", vp_index, sint,
                      message_type);
            return false;
        }
        QueuedMessage message;
        message.type = message_type;
        message.size = static_cast<uint8_t>(payload.size());
        if (!payload.empty())
            std::memcpy(message.payload.data(), payload.data(), payload.size());
        queue.push_back(message);
        try_deliver(vp, sint, injections);
    }
    inject(vp_index, injections);
    return true;
}

bool Partition::signal_event(uint32_t vp_index, uint8_t sint, uint32_t flag)
{
    if (vp_index >= m_vps.size() || sint >= sint_count || flag >= tlfs::event_flags_per_sint)
        return false;
    VpState& vp = *m_vps[vp_index];
    Injections injections;
    {
        std::lock_guard lock(vp.lock);
        if (vp.siefp_host == nullptr) {
            log_debug(component, "VP {} SINT {}: event flag {} with the SIEFP disabled: dropped", vp_index, sint,
                      flag);
            return true;
        }
        auto* word = reinterpret_cast<uint64_t*>(vp.siefp_host + tlfs::siefp_offset(sint) + (flag / 64) * 8);
        const uint64_t bit = uint64_t{1} << (flag % 64);
        const uint64_t before = __atomic_fetch_or(word, bit, __ATOMIC_SEQ_CST);
        if ((before & bit) == 0)
            raise(vp, sint, injections);
    }
    inject(vp_index, injections);
    return true;
}

// ---- Hypercalls ----

uint64_t Partition::hypercall(uint32_t vp, bool user_mode, uint64_t rcx, uint64_t rdx, [[maybe_unused]] uint64_t r8)
{
    if (user_mode || !m_hypercall_enabled.load(std::memory_order_acquire))
        return hypercall_inject_ud;
    const auto code = static_cast<uint16_t>(rcx & hc::code_mask);
    uint16_t status = hv_st::invalid_hypercall_code;
    switch (code) {
    case hc::post_message:
        status = post_message_call(rcx, rdx);
        break;
    case hc::signal_event:
        status = signal_event_call(rcx, rdx);
        break;
    default:
        break;
    }
    if (status != hv_st::success)
        log_debug(component, "VP {}: hypercall {:#x} (control {:#x}) -> status {:#x}", vp, code, rcx, status);
    return result_rax(status);
}

namespace {

// Checks the control word of a simple (non-rep, no variable header) call.
uint16_t check_simple_control(uint64_t control)
{
    if ((control & (hc::reserved_mask | hc::varhead_mask | hc::rep_count_mask | hc::rep_start_mask)) != 0)
        return hv_st::invalid_hypercall_input;
    return hv_st::success;
}

// An input block of `len` bytes at `gpa`: 8-byte aligned and within one page (TLFS 3.6).
uint16_t check_input_gpa(uint64_t gpa, uint64_t len)
{
    if (gpa % hc::input_alignment != 0)
        return hv_st::invalid_alignment;
    if ((gpa % tlfs::page_size) + len > tlfs::page_size)
        return hv_st::invalid_alignment;
    return hv_st::success;
}

} // namespace

uint16_t Partition::post_message_call(uint64_t control, uint64_t input_gpa)
{
    if (uint16_t s = check_simple_control(control); s != hv_st::success)
        return s;
    if ((control & hc::fast) != 0)
        return hv_st::invalid_hypercall_input;
    if (uint16_t s = check_input_gpa(input_gpa, sizeof(tlfs::PostMessageInput)); s != hv_st::success)
        return s;
    // Copy the header out of guest memory once, then validate the copy.
    constexpr uint64_t header_bytes = offsetof(tlfs::PostMessageInput, payload);
    std::array<uint8_t, sizeof(tlfs::PostMessageInput)> raw{};
    if (!m_memory.read(input_gpa, std::span(raw).first(header_bytes)))
        return hv_st::invalid_hypercall_input;
    tlfs::PostMessageInput input;
    std::memcpy(&input, raw.data(), header_bytes);
    if (input.reserved != 0)
        return hv_st::invalid_hypercall_input;
    if (input.payload_size > tlfs::message_payload_bytes)
        return hv_st::invalid_parameter;
    if (input.message_type == tlfs::message_type_none || input.message_type >= tlfs::message_type_hypervisor_first)
        return hv_st::invalid_parameter;
    if ((input.connection_id & ~tlfs::connection_id_mask) != 0)
        return hv_st::invalid_connection_id;
    std::span<uint8_t> payload = std::span(raw).subspan(header_bytes, input.payload_size);
    if (!m_memory.read(input_gpa + header_bytes, payload))
        return hv_st::invalid_hypercall_input;
    VmbusHostSide* host = m_vmbus.load(std::memory_order_acquire);
    if (host == nullptr)
        return hv_st::invalid_connection_id;
    return host->on_post_message(input.connection_id, input.message_type, payload);
}

uint16_t Partition::signal_event_call(uint64_t control, uint64_t input)
{
    if (uint16_t s = check_simple_control(control); s != hv_st::success)
        return s;
    uint64_t value = input; // fast: the input block is RDX itself
    if ((control & hc::fast) == 0) {
        if (uint16_t s = check_input_gpa(input, sizeof(tlfs::SignalEventInput)); s != hv_st::success)
            return s;
        auto read = m_memory.read_obj<uint64_t>(input);
        if (!read)
            return hv_st::invalid_hypercall_input;
        value = *read;
    }
    const auto connection_id = static_cast<uint32_t>(value);
    const auto flag = static_cast<uint16_t>(value >> 32);
    const auto reserved = static_cast<uint16_t>(value >> 48);
    if (reserved != 0)
        return hv_st::invalid_hypercall_input;
    if ((connection_id & ~tlfs::connection_id_mask) != 0)
        return hv_st::invalid_connection_id;
    if (flag >= tlfs::event_flags_per_sint)
        return hv_st::invalid_parameter;
    VmbusHostSide* host = m_vmbus.load(std::memory_order_acquire);
    if (host == nullptr)
        return hv_st::invalid_connection_id;
    return host->on_signal_event(connection_id, flag);
}

// ---- Crash, reset ----

std::optional<GuestCrash> Partition::crash() const
{
    std::lock_guard lock(m_lock);
    return m_crash;
}

void Partition::reset_partition_locked()
{
    m_guest_os_id = 0;
    m_hypercall = 0;
    m_hypercall_enabled.store(false, std::memory_order_release);
    m_reference_tsc = 0;
    m_tsc_invariant_control = 0;
    m_crash_params.fill(0);
}

void Partition::reset()
{
    {
        std::lock_guard lock(m_lock);
        reset_partition_locked();
    }
    for (auto& vp : m_vps) {
        std::lock_guard lock(vp->lock);
        vp->reset();
    }
}

static_assert(crash_param_count == std::tuple_size_v<decltype(GuestCrash::params)>);

} // namespace vmgen::vm::hyperv
