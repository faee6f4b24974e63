#include "vmm/enlightenments.h"

#include "support/log.h"
#include "vm/hyperv/cpuid.h"

#include <x86intrin.h>

namespace vmgen::vmm {

namespace {
__extension__ typedef unsigned __int128 uint128;
constexpr uint8_t invalid_opcode = 6;
constexpr uint32_t synthetic_msr_base = 0x40000000;
constexpr uint32_t synthetic_msr_count = 0x200; // 0x40000000-0x400001FF, 0x40000118 included
} // namespace

Result<std::unique_ptr<Enlightenments>> Enlightenments::create(const vm::GuestMemory& memory, unsigned vcpus,
                                                               uint64_t tsc_hz, int64_t tsc_offset,
                                                               InterruptRouter& router, vm::VmbusHostSide* vmbus)
{
    auto e = std::unique_ptr<Enlightenments>(new Enlightenments(tsc_hz, tsc_offset, router));
    vm::hyperv::PartitionConfig config;
    config.vp_count = vcpus;
    config.tsc_hz = tsc_hz;
    config.apic_hz = apic_timer_hz;
    config.hypercall_port = hypercall_port;
    e->m_partition = TRY_CTX(vm::hyperv::Partition::create(memory, config, *e, *e, vmbus), "Hyper-V partition");
    return e;
}

void Enlightenments::add_hyperv_cpuid(std::vector<hv::CpuidEntry>& cpuid, unsigned vcpus)
{
    for (auto& entry : cpuid) {
        if (entry.function != 1 && entry.function != 0x80000007)
            continue;
        vm::hyperv::HvCpuidLeaf leaf{entry.function, entry.eax, entry.ebx, entry.ecx, entry.edx};
        vm::hyperv::add_standard_hyperv_bits(leaf);
        entry.ecx = leaf.ecx;
        entry.edx = leaf.edx;
    }
    for (const auto& leaf : vm::hyperv::hyperv_cpuid_leaves(vcpus))
        cpuid.push_back(hv::CpuidEntry{leaf.function, 0, 0, leaf.eax, leaf.ebx, leaf.ecx, leaf.edx});
}

std::vector<hv::Vm::MsrRange> Enlightenments::msr_ranges() { return {{synthetic_msr_base, synthetic_msr_count}}; }

Result<void> Enlightenments::hypercall(hv::Vcpu& vcpu)
{
    auto regs = TRY(vcpu.registers());
    auto sregs = TRY(vcpu.special_registers());
    bool user_mode = (sregs.cs.selector & 3) != 0 || (sregs.cr0 & 1) == 0;
    uint64_t rax = m_partition->hypercall(vcpu.id(), user_mode, regs.rcx, regs.rdx, regs.r8);
    if (rax == vm::hyperv::hypercall_inject_ud)
        return vcpu.inject_exception(invalid_opcode);
    regs.rax = rax;
    return vcpu.set_registers(regs);
}

void Enlightenments::inject(uint32_t vp_index, uint8_t vector)
{
    // VP index = vCPU index = APIC id: a fixed, edge-triggered MSI to that local APIC.
    m_router.signal_msi(0xfee00000ull | (uint64_t{vp_index} << 12), vector);
}

uint64_t Enlightenments::guest_tsc() { return static_cast<uint64_t>(static_cast<int64_t>(__rdtsc()) + m_tsc_offset); }

uint64_t Enlightenments::reference_time()
{
    // 100 ns units from the guest TSC, so the MSR and the reference TSC page agree exactly.
    return static_cast<uint64_t>(static_cast<uint128>(guest_tsc()) * 10'000'000u / m_tsc_hz);
}

} // namespace vmgen::vmm
