// KVM: the hypervisor layer. The only code in the project that includes <linux/kvm.h>.
//
//   auto kvm = TRY(hv::Kvm::open());
//   auto vm = TRY(kvm.create_vm({.irqchip = hv::IrqchipMode::Split}));
//   TRY(vm->map_memory(0, gpa, size, host));
//   TRY(vm->create_irqchip());
//   auto vcpu = TRY(vm->create_vcpu(0));
//   auto exit = TRY(vcpu->run());
//
// A VcpuExit points into the vCPU's shared kvm_run page and is valid until the next run() on that vCPU.
#pragma once

#include "hv/vcpu_state.h"
#include "support/result.h"
#include "support/unique_fd.h"

#include <atomic>
#include <pthread.h>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace vmgen::hv {

struct CpuidEntry {
    uint32_t function = 0;
    uint32_t index = 0;
    uint32_t flags = 0; // KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1
    uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

enum class IrqchipMode {
    Kernel, // PIC + I/O APIC + LAPIC in the kernel (generation 1), with the in-kernel PIT
    Split,  // LAPIC in the kernel, I/O APIC in userspace, no PIC/PIT (generation 2)
};

struct VmOptions {
    IrqchipMode irqchip = IrqchipMode::Kernel;
    bool pit = false;            // in-kernel 8254 (Kernel mode only)
    unsigned ioapic_pins = 24;   // Split mode: GSIs reserved for the userspace I/O APIC
    bool user_space_msr = true;  // unknown/invalid MSR accesses exit to userspace instead of #GP in KVM
};

struct VcpuExit {
    enum class Kind {
        Io,           // port I/O: port, size, write, data (count * size bytes)
        Mmio,         // MMIO: address, size, write, data
        Hlt,          // HLT with no interrupt pending (only without an in-kernel LAPIC)
        Shutdown,     // triple fault
        SystemEvent,  // KVM_EXIT_SYSTEM_EVENT (system_event: 1 shutdown, 2 reset, 3 crash)
        IoapicEoi,    // split irqchip: EOI of a level-triggered vector (vector)
        MsrRead,      // RDMSR KVM did not handle (msr_index); answer with complete_msr_read()
        MsrWrite,     // WRMSR KVM did not handle (msr_index, msr_value); answer with complete_msr_write()
        Interrupted,  // KVM_RUN returned EINTR / immediate exit (a kick)
        InternalError,// KVM internal error (suberror, details)
        FailEntry,    // hardware entry failure (details)
        Unknown,      // any other exit reason (reason)
    };
    Kind kind = Kind::Unknown;
    uint64_t address = 0;   // port or MMIO address
    uint32_t size = 0;      // access width in bytes
    uint32_t count = 1;     // repetitions for string port I/O
    bool write = false;
    std::span<uint8_t> data;// count * size bytes inside kvm_run: read exits fill it, write exits read it
    uint32_t reason = 0;    // raw KVM exit reason
    uint32_t suberror = 0;
    uint32_t event_type = 0;
    uint8_t vector = 0;
    uint32_t msr_index = 0;
    uint64_t msr_value = 0;
    std::string details;
};

class Vcpu;

class Vm {
public:
    Vm(const Vm&) = delete;
    Vm& operator=(const Vm&) = delete;
    ~Vm();

    Result<void> map_memory(uint32_t slot, uint64_t gpa, uint64_t size, void* host);
    // Creates the interrupt controllers of VmOptions::irqchip (and the PIT). Call after map_memory():
    // memory slots registered while an in-kernel irqchip exists cost KVM milliseconds each; before the
    // first vCPU is created.
    Result<void> create_irqchip();
    Result<std::unique_ptr<Vcpu>> create_vcpu(uint32_t id);

    // Kernel irqchip: drives a GSI line (PIC + I/O APIC input).
    Result<void> set_irq_line(uint32_t gsi, bool level);
    // Delivers an MSI to the in-kernel local APICs (both modes).
    Result<void> signal_msi(uint64_t address, uint32_t data);
    // Split irqchip: mirrors the userspace I/O APIC's redirection entries as MSI routes for GSIs
    // 0..ioapic_pins-1, so KVM knows which vectors are level-triggered and reports their EOIs.
    struct MsiRoute {
        uint32_t gsi;
        uint64_t address;
        uint32_t data;
    };
    Result<void> set_msi_routes(std::span<const MsiRoute> routes);

    // MSR ranges KVM must not handle itself: every RDMSR/WRMSR in them exits to userspace (MsrRead /
    // MsrWrite), even for MSRs KVM knows. Replaces any previous filter; everything else stays with KVM.
    struct MsrRange {
        uint32_t base;
        uint32_t count;
    };
    Result<void> set_userspace_msr_ranges(std::span<const MsrRange> ranges);

    // The guest TSC frequency KVM uses for this VM's vCPUs, in kHz.
    Result<uint32_t> tsc_khz(const Vcpu& vcpu) const;

    [[nodiscard]] const VmOptions& options() const { return m_options; }
    [[nodiscard]] int fd() const { return m_fd.get(); }

private:
    friend class Kvm;
    Vm(UniqueFd fd, VmOptions options, size_t run_size, std::vector<CpuidEntry> cpuid)
        : m_fd(std::move(fd)), m_options(options), m_run_size(run_size), m_supported_cpuid(std::move(cpuid))
    {
    }

    UniqueFd m_fd;
    VmOptions m_options;
    size_t m_run_size;
    std::vector<CpuidEntry> m_supported_cpuid;
};

class Vcpu {
public:
    Vcpu(const Vcpu&) = delete;
    Vcpu& operator=(const Vcpu&) = delete;
    ~Vcpu();

    [[nodiscard]] uint32_t id() const { return m_id; }

    Result<void> set_cpuid(std::span<const CpuidEntry> entries);
    Result<Registers> registers() const;
    Result<void> set_registers(const Registers& regs);
    Result<SpecialRegisters> special_registers() const;
    Result<void> set_special_registers(const SpecialRegisters& sregs);
    Result<void> set_msrs(std::span<const std::pair<uint32_t, uint64_t>> msrs);
    // Reads one MSR through KVM (the vCPU must not be running on another thread).
    Result<uint64_t> msr(uint32_t index) const;
    // Makes the guest take exception `vector` (no error code) before its next instruction.
    Result<void> inject_exception(uint8_t vector);
    // Puts an AP back into wait-for-SIPI (after a reset); the BSP into runnable.
    Result<void> set_runnable(bool runnable);

    // Answers the pending MsrRead/MsrWrite exit: `ok` false makes the guest's RDMSR/WRMSR raise #GP.
    void complete_msr_read(bool ok, uint64_t value);
    void complete_msr_write(bool ok);

    // Runs the vCPU until the next exit that needs userspace.
    Result<VcpuExit> run();
    // Records the thread that calls run(), so kick() can interrupt a blocked KVM_RUN.
    void bind_to_current_thread();
    // Forgets the bound thread (call from that thread before it exits).
    void unbind_thread();
    // Makes a concurrent or the next run() return Interrupted. Callable from any thread.
    void kick();
    // Clears a pending kick.
    void clear_kick();

    // A one-line register dump for crash reports.
    [[nodiscard]] std::string describe_state() const;

private:
    friend class Vm;
    Vcpu(UniqueFd fd, uint32_t id, void* run, size_t run_size)
        : m_fd(std::move(fd)), m_id(id), m_run(run), m_run_size(run_size)
    {
    }

    UniqueFd m_fd;
    uint32_t m_id;
    void* m_run; // struct kvm_run*
    size_t m_run_size;
    std::atomic<unsigned long> m_thread{0}; // pthread_t of the running thread, 0 if none
};

class Kvm {
public:
    static Result<Kvm> open(const char* path = "/dev/kvm");

    Result<std::unique_ptr<Vm>> create_vm(const VmOptions& options) const;

    // KVM_GET_SUPPORTED_CPUID with the leaves a guest should not see filtered out (KVM's own signature
    // leaves 0x40000000+): the machine adds per-vCPU topology on top.
    [[nodiscard]] const std::vector<CpuidEntry>& supported_cpuid() const { return m_cpuid; }
    [[nodiscard]] unsigned max_vcpus() const { return m_max_vcpus; }

private:
    Kvm(UniqueFd fd, size_t run_size, std::vector<CpuidEntry> cpuid, unsigned max_vcpus)
        : m_fd(std::move(fd)), m_run_size(run_size), m_cpuid(std::move(cpuid)), m_max_vcpus(max_vcpus)
    {
    }

    UniqueFd m_fd;
    size_t m_run_size;
    std::vector<CpuidEntry> m_cpuid;
    unsigned m_max_vcpus;
};

// Installs the no-op signal handler used to kick vCPU threads out of KVM_RUN (once per process).
void install_kick_signal();
// The signal number used for kicks; a vCPU thread must have it unblocked.
int kick_signal();

} // namespace vmgen::hv
