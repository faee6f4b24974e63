// Enlightenments: the Hyper-V interface of one boot of a machine, on KVM without in-kernel Hyper-V support.
// Owns the vm::hyperv::Partition (synthetic MSRs, hypercalls, SynIC) and gives it what it needs from KVM:
// SynIC interrupts as MSIs to the target VP's local APIC, and a reference clock derived from the guest TSC.
// Both generations present it, as Hyper-V does.
//
// Wiring in the vCPU loop (KvmMachine): CPUID leaves 0x40000000+ from hyperv_cpuid(); the MSR filter
// (msr_ranges) sends every synthetic MSR to read_msr/write_msr; the hypercall page holds `out %al, $0xE0;
// ret`, whose port-I/O exit goes to hypercall().
#pragma once

#include "hv/kvm.h"
#include "vm/hyperv/partition.h"
#include "vm/memory/guest_memory.h"
#include "vmm/interrupt_router.h"

#include <memory>
#include <vector>

namespace vmgen::vmm {

class Enlightenments final : public vm::hyperv::SynicInterrupt, public vm::hyperv::ReferenceClock {
public:
    static constexpr uint8_t hypercall_port = 0xe0;
    static constexpr uint64_t apic_timer_hz = 1'000'000'000; // KVM's local APIC timer runs at 1 GHz

    // `tsc_hz` and `tsc_offset` (guest TSC = host TSC + offset) come from KVM for this boot's vCPUs.
    static Result<std::unique_ptr<Enlightenments>> create(const vm::GuestMemory& memory, unsigned vcpus,
                                                          uint64_t tsc_hz, int64_t tsc_offset,
                                                          InterruptRouter& router, vm::VmbusHostSide* vmbus);

    // Adds the Hyper-V identity leaves and the hypervisor-present / invariant-TSC bits to a vCPU's CPUID.
    static void add_hyperv_cpuid(std::vector<hv::CpuidEntry>& cpuid, unsigned vcpus);
    // The MSR ranges KVM must leave to userspace.
    static std::vector<hv::Vm::MsrRange> msr_ranges();

    vm::hyperv::Partition& partition() { return *m_partition; }

    // Services the hypercall port exit of `vcpu`: reads RCX/RDX/R8, writes RAX, or injects #UD.
    Result<void> hypercall(hv::Vcpu& vcpu);

    void inject(uint32_t vp_index, uint8_t vector) override;
    uint64_t reference_time() override;
    uint64_t guest_tsc() override;

private:
    Enlightenments(uint64_t tsc_hz, int64_t tsc_offset, InterruptRouter& router)
        : m_tsc_hz(tsc_hz), m_tsc_offset(tsc_offset), m_router(router)
    {
    }

    uint64_t m_tsc_hz;
    int64_t m_tsc_offset;
    InterruptRouter& m_router;
    std::unique_ptr<vm::hyperv::Partition> m_partition;
};

} // namespace vmgen::vmm
