// Partition: the Hyper-V enlightenments of one VM, done entirely in the VMM (the host KVM has no Hyper-V
// support): the synthetic MSRs, the hypercall page and the HvPostMessage / HvSignalEvent hypercalls, the
// reference TSC page, and a per-VP synthetic interrupt controller (SynIC) that delivers VMBus messages and
// event flags into guest pages. KVM-free: the machine feeds it MSR exits and hypercall port-I/O exits and
// injects the interrupts it asks for (SynicInterrupt).
//
// References: Hyper-V TLFS 6.0 (chapters 2, 3, 11, 12), Linux 6.1 arch/x86/hyperv/hv_init.c,
// arch/x86/kernel/cpu/mshyperv.c, drivers/hv/hv.c, hv_common.c, connection.c; the wire formats are in
// protocols/hyperv/tlfs.h.
//
// Guest input is hostile: every MSR value and hypercall input is validated; guest pages are reached only
// through GuestMemory (bounds-checked) and must be wholly inside RAM.
//
// Thread safety: every public function may be called from any thread (vCPU threads for MSRs and hypercalls,
// VMBus server threads for post_message / signal_event). Per-VP state has its own lock; SynicInterrupt::inject
// and VmbusHostSide callbacks are called with no lock held (so they may call back into the Partition).
#pragma once

#include "protocols/hyperv/tlfs.h"
#include "support/result.h"
#include "vm/memory/guest_memory.h"
#include "vm/vmbus/synic_link.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

namespace vmgen::vm::hyperv {

// Delivers a SynIC interrupt: a fixed, edge-triggered interrupt with `vector` to virtual processor `vp_index`
// (the machine sends an MSI to that VP's APIC id with KVM_SIGNAL_MSI).
class SynicInterrupt {
public:
    virtual ~SynicInterrupt() = default;
    virtual void inject(uint32_t vp_index, uint8_t vector) = 0;
};

// The partition's clocks.
class ReferenceClock {
public:
    virtual ~ReferenceClock() = default;
    // Partition reference time (TIME_REF_COUNT): 100 ns units, monotonic, starts near 0 at power-on.
    virtual uint64_t reference_time() = 0;
    // The guest TSC now (all VPs share one synchronized TSC). Sampled together with reference_time() when the
    // guest enables the reference TSC page, to place the page's offset. A clock that derives reference_time()
    // from the guest TSC (guest_tsc * 10^7 / tsc_hz) keeps the MSR and the page exactly in step.
    virtual uint64_t guest_tsc() = 0;
};

struct PartitionConfig {
    uint32_t vp_count = 1;        // 1..max_vp_count; VP index = vCPU index
    uint64_t tsc_hz = 0;          // TSC_FREQUENCY MSR; > 10 MHz for a valid reference TSC page
    uint64_t apic_hz = 0;         // APIC_FREQUENCY MSR (APIC timer input clock)
    uint8_t hypercall_port = 0xe0; // the hypercall page executes `out %al, $hypercall_port`
};

// A guest crash notification (CRASH_CTL written with CRASH_NOTIFY): the five crash parameters. Linux puts
// the panic/die reason in P0 (and its registers in P1-P4 for a die, or the kmsg page in P3/P4).
struct GuestCrash {
    std::array<uint64_t, 5> params{};
};

// hypercall()'s answer when the guest must get #UD instead of a result: a call from CPL > 0, or while the
// hypercall page is disabled. Never a valid RAX (its reserved bits 63:44 are set).
inline constexpr uint64_t hypercall_inject_ud = ~uint64_t{0};

class Partition final : public SynicGuestSide {
public:
    static constexpr uint32_t max_vp_count = 1024;
    static constexpr size_t message_queue_depth = 64; // per (VP, SINT)

    // Fails on a bad configuration (vp_count out of range, a zero frequency). `memory`, `interrupt` and
    // `clock` must outlive the Partition; `vmbus` may be null (HvPostMessage / HvSignalEvent then answer
    // HV_STATUS_INVALID_CONNECTION_ID) and can be set later with connect_vmbus().
    static Result<std::unique_ptr<Partition>> create(const GuestMemory& memory, const PartitionConfig& config,
                                                     SynicInterrupt& interrupt, ReferenceClock& clock,
                                                     VmbusHostSide* vmbus);

    Partition(const Partition&) = delete;
    Partition& operator=(const Partition&) = delete;
    ~Partition() override;

    // Sets (or clears, with null) the VMBus server that receives the guest's messages and events.
    void connect_vmbus(VmbusHostSide* vmbus);

    [[nodiscard]] const PartitionConfig& config() const { return m_config; }

    // Whether `msr` is one of the synthetic MSRs implemented here (others in 0x40000000-0x400001FF: #GP).
    [[nodiscard]] static bool handles_msr(uint32_t msr);
    // RDMSR / WRMSR on virtual processor `vp`. An error means: inject #GP (bad value, bad GPA, read-only MSR,
    // unknown MSR or VP). Errors are guest mistakes: logged at debug level only.
    [[nodiscard]] Result<uint64_t> read_msr(uint32_t vp, uint32_t msr);
    [[nodiscard]] Result<void> write_msr(uint32_t vp, uint32_t msr, uint64_t value);

    // A hypercall from the hypercall page (x64 ABI: RCX control, RDX input GPA or fast input, R8 output GPA).
    // Returns the new RAX (status in 15:0, reps completed in 43:32), or hypercall_inject_ud when the caller
    // runs at CPL > 0 (`user_mode`) or hypercalls are disabled: then inject #UD and leave RAX alone.
    [[nodiscard]] uint64_t hypercall(uint32_t vp, bool user_mode, uint64_t rcx, uint64_t rdx, uint64_t r8);

    // SynicGuestSide (called by the VMBus server from any thread).
    bool post_message(uint32_t vp_index, uint8_t sint, uint32_t message_type,
                      std::span<const uint8_t> payload) override;
    bool signal_event(uint32_t vp_index, uint8_t sint, uint32_t flag) override;

    // The last crash the guest reported, if any. Host-side diagnostics: reset() keeps it.
    [[nodiscard]] std::optional<GuestCrash> crash() const;

    // Everything guest-visible back to power-on: MSRs, hypercall and TSC pages disabled, SynIC disabled with
    // all SINTs masked, queued messages and held interrupts dropped.
    void reset();

private:
    static constexpr uint32_t sint_count = protocols::hyperv::sint_count;

    struct QueuedMessage {
        uint32_t type = 0;
        uint8_t size = 0;
        std::array<uint8_t, protocols::hyperv::message_payload_bytes> payload{};
    };

    struct VpState {
        std::mutex lock;
        uint64_t vp_assist = 0;
        uint64_t scontrol = 0;
        uint64_t simp = 0;
        uint64_t siefp = 0;
        uint8_t* simp_host = nullptr;  // the SIMP page's host view while enabled
        uint8_t* siefp_host = nullptr; // the SIEFP page's host view while enabled
        std::array<uint64_t, sint_count> sint{};
        std::array<bool, sint_count> irq_held{}; // an interrupt is owed once the SINT is unmasked
        std::array<std::deque<QueuedMessage>, sint_count> queue;

        void reset();
    };

    // Vectors to inject after the VP's lock is released.
    struct Injections {
        std::array<uint8_t, sint_count> vectors{};
        size_t count = 0;
    };

    Partition(const GuestMemory& memory, const PartitionConfig& config, SynicInterrupt& interrupt,
              ReferenceClock& clock, VmbusHostSide* vmbus);

    void reset_partition_locked();
    Result<uint64_t> read_vp_msr(VpState& vp, uint32_t msr);
    Result<void> write_vp_msr(VpState& vp, uint32_t msr, uint64_t value, Injections& out);
    Result<void> write_partition_msr(uint32_t msr, uint64_t value);
    Result<void> write_hypercall_msr(uint64_t value);
    Result<void> write_reference_tsc_msr(uint64_t value);
    Result<void> write_hypercall_page(uint64_t gpa);
    Result<void> write_reference_tsc_page(uint64_t gpa);

    // SynIC, with the VP's lock held.
    void raise(VpState& vp, uint32_t sint, Injections& out);
    void try_deliver(VpState& vp, uint32_t sint, Injections& out);
    void try_deliver_all(VpState& vp, Injections& out);
    void flush_held(VpState& vp, Injections& out);
    void inject(uint32_t vp_index, const Injections& injections);

    uint16_t post_message_call(uint64_t control, uint64_t input_gpa);
    uint16_t signal_event_call(uint64_t control, uint64_t input);

    const GuestMemory& m_memory;
    const PartitionConfig m_config;
    SynicInterrupt& m_interrupt;
    ReferenceClock& m_clock;
    std::atomic<VmbusHostSide*> m_vmbus;
    std::vector<std::unique_ptr<VpState>> m_vps;

    // Partition-wide state.
    mutable std::mutex m_lock;
    uint64_t m_guest_os_id = 0;
    uint64_t m_hypercall = 0;
    std::atomic<bool> m_hypercall_enabled{false};
    uint64_t m_reference_tsc = 0;
    uint32_t m_tsc_sequence = 0;
    uint64_t m_tsc_invariant_control = 0;
    std::array<uint64_t, 5> m_crash_params{};
    std::optional<GuestCrash> m_crash;
};

} // namespace vmgen::vm::hyperv
