// The Hyper-V CPUID leaves (0x40000000 upwards) that make an unmodified guest detect Hyper-V and use the
// enlightenments this library implements (vm/hyperv/partition.h). See protocols/hyperv/tlfs.h for the bits and
// /work/shared/docs/vmbus-guest-contract.md section 1 for what Linux needs.
#pragma once

#include "protocols/hyperv/tlfs.h"

#include <cstdint>
#include <vector>

namespace vmgen::vm::hyperv {

struct HvCpuidLeaf {
    uint32_t function = 0;
    uint32_t eax = 0;
    uint32_t ebx = 0;
    uint32_t ecx = 0;
    uint32_t edx = 0;
};

// The leaves a Hyper-V host reports for a partition of `vp_count` virtual processors:
// 0x40000000-0x4000000A (unused ones zero) and zeroed 0x40000081/0x40000082.
//   0x40000000  EAX 0x4000000A, "Microsoft Hv"
//   0x40000001  "Hv#1"
//   0x40000003  EAX TIME_REF_COUNT, SYNIC, HYPERCALL, VP_INDEX, REFERENCE_TSC, frequency MSRs, TSC invariant;
//               EBX PostMessages, SignalEvents (never CPU management: that means "root partition");
//               EDX frequency MSRs available, guest crash MSRs available
//   0x40000004  EAX deprecating AutoEOI; EBX 0xFFFFFFFF (never notify long spin waits)
//   0x40000005  EAX max VPs, EBX max LPs (= vp_count)
// The caller must not also expose a KVM signature (0x40000000 or 0x40000100).
[[nodiscard]] std::vector<HvCpuidLeaf> hyperv_cpuid_leaves(unsigned vp_count);

// Standard-leaf bits to OR into every vCPU's CPUID together with the leaves above:
//   CPUID.1:ECX         |= standard_leaf1_ecx   (bit 31: hypervisor present)
//   CPUID.80000007H:EDX |= standard_leaf_80000007_edx (bit 8: invariant TSC; advertised with TSC_INVARIANT)
inline constexpr uint32_t standard_leaf1_ecx = protocols::hyperv::standard_cpuid::leaf1_ecx_hypervisor;
inline constexpr uint32_t standard_leaf_80000007_edx =
    protocols::hyperv::standard_cpuid::leaf_80000007_edx_invariant_tsc;

// Applies those standard bits to a leaf of the caller's table (a no-op for other functions).
void add_standard_hyperv_bits(HvCpuidLeaf& leaf);

} // namespace vmgen::vm::hyperv
