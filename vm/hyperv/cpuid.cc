#include "vm/hyperv/cpuid.h"

namespace vmgen::vm::hyperv {

namespace c = protocols::hyperv::cpuid;

std::vector<HvCpuidLeaf> hyperv_cpuid_leaves(unsigned vp_count)
{
    std::vector<HvCpuidLeaf> leaves;
    leaves.push_back({c::vendor_and_max, c::nested_features, c::signature_ebx, c::signature_ecx, c::signature_edx});
    leaves.push_back({c::interface, c::interface_hv1, 0, 0, 0});
    // Version: reported as build 17763 of 10.0 (Windows Server 2019); Linux only prints it.
    leaves.push_back({c::version, 17763, 10u << 16, 0, 0});
    leaves.push_back({c::features,
                      c::eax_time_ref_count | c::eax_synic | c::eax_hypercall | c::eax_vp_index |
                          c::eax_reference_tsc | c::eax_frequency_msrs | c::eax_tsc_invariant,
                      c::ebx_post_messages | c::ebx_signal_events, 0,
                      c::edx_frequency_msrs_available | c::edx_guest_crash_msrs_available});
    leaves.push_back({c::enlightenment_info, c::hint_deprecating_auto_eoi, 0xffffffffu, 0, 0});
    leaves.push_back({c::implementation_limits, vp_count, vp_count, 0, 0});
    for (uint32_t function = c::hardware_features; function <= c::nested_features; ++function)
        leaves.push_back({function, 0, 0, 0, 0});
    leaves.push_back({c::virt_stack_interface, 0, 0, 0, 0});
    leaves.push_back({c::virt_stack_properties, 0, 0, 0, 0});
    return leaves;
}

void add_standard_hyperv_bits(HvCpuidLeaf& leaf)
{
    if (leaf.function == 1)
        leaf.ecx |= standard_leaf1_ecx;
    else if (leaf.function == 0x80000007)
        leaf.edx |= standard_leaf_80000007_edx;
}

} // namespace vmgen::vm::hyperv
