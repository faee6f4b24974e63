// The CPUID a vCPU sees: what KVM supports, minus KVM's own identity, plus per-vCPU topology.
#pragma once

#include "hv/kvm.h"

#include <vector>

namespace vmgen::vmm {

// `supported` is hv::Kvm::supported_cpuid(); `apic_id` this vCPU's APIC id; `vcpu_count` all vCPUs.
[[nodiscard]] std::vector<hv::CpuidEntry> vcpu_cpuid(const std::vector<hv::CpuidEntry>& supported, uint32_t apic_id,
                                                     uint32_t vcpu_count);

} // namespace vmgen::vmm
