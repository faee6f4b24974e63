#include "vmm/cpuid.h"

#include <bit>

namespace vmgen::vmm {

namespace {
constexpr uint32_t leaf1_ecx_hypervisor = 1u << 31;
constexpr uint32_t leaf1_edx_htt = 1u << 28;
} // namespace

std::vector<hv::CpuidEntry> vcpu_cpuid(const std::vector<hv::CpuidEntry>& supported, uint32_t apic_id,
                                       uint32_t vcpu_count)
{
    // Topology: one package, one thread per core, `vcpu_count` cores; APIC ids are 0..n-1.
    uint32_t core_bits = vcpu_count <= 1 ? 0 : static_cast<uint32_t>(std::bit_width(vcpu_count - 1));
    std::vector<hv::CpuidEntry> out;
    out.reserve(supported.size());
    for (auto e : supported) {
        switch (e.function) {
        case 0x1:
            e.ebx = (e.ebx & 0x0000ffffu) | (apic_id << 24) | (std::min(vcpu_count, 255u) << 16);
            e.ecx |= leaf1_ecx_hypervisor;
            if (vcpu_count > 1)
                e.edx |= leaf1_edx_htt;
            else
                e.edx &= ~leaf1_edx_htt;
            break;
        case 0x4:
            // Cores per package - 1 in EAX[31:26]; threads sharing this cache - 1 in EAX[25:14].
            e.eax = (e.eax & 0x3fffu) | ((vcpu_count - 1) << 26);
            if (((e.eax >> 5) & 7) == 3) // L3 shared by the package
                e.eax |= (vcpu_count - 1) << 14;
            break;
        case 0xb:
        case 0x1f:
            // Extended topology: subleaf 0 = SMT level (1 thread), subleaf 1 = core level.
            e.edx = apic_id;
            if (e.index == 0) {
                e.eax = 0;
                e.ebx = 1;
                e.ecx = (1u << 8) | 0;
            } else if (e.index == 1) {
                e.eax = core_bits;
                e.ebx = vcpu_count;
                e.ecx = (2u << 8) | 1;
            } else {
                e.eax = 0;
                e.ebx = 0;
                e.ecx = e.index;
            }
            break;
        default:
            break;
        }
        out.push_back(e);
    }
    return out;
}

} // namespace vmgen::vmm
