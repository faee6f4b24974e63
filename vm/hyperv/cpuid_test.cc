#include "vm/hyperv/cpuid.h"

#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <set>

namespace vmgen::vm::hyperv {
namespace {

std::optional<HvCpuidLeaf> find(const std::vector<HvCpuidLeaf>& leaves, uint32_t function)
{
    for (const auto& leaf : leaves) {
        if (leaf.function == function)
            return leaf;
    }
    return std::nullopt;
}

TEST(HypervCpuid, SignatureAndInterface)
{
    auto leaves = hyperv_cpuid_leaves(4);
    auto vendor = find(leaves, 0x40000000);
    ASSERT_TRUE(vendor);
    EXPECT_EQ(vendor->eax, 0x4000000Au);
    char signature[13] = {};
    std::memcpy(signature, &vendor->ebx, 4);
    std::memcpy(signature + 4, &vendor->ecx, 4);
    std::memcpy(signature + 8, &vendor->edx, 4);
    EXPECT_STREQ(signature, "Microsoft Hv");

    auto interface = find(leaves, 0x40000001);
    ASSERT_TRUE(interface);
    char hv1[5] = {};
    std::memcpy(hv1, &interface->eax, 4);
    EXPECT_STREQ(hv1, "Hv#1");
}

TEST(HypervCpuid, EveryLeafUpToTheMaximumAndTheVirtStackLeaves)
{
    auto leaves = hyperv_cpuid_leaves(1);
    std::set<uint32_t> functions;
    for (const auto& leaf : leaves)
        EXPECT_TRUE(functions.insert(leaf.function).second) << "duplicate " << leaf.function;
    for (uint32_t f = 0x40000000; f <= 0x4000000A; ++f)
        EXPECT_TRUE(functions.contains(f)) << std::hex << f;
    for (uint32_t f : {0x40000081u, 0x40000082u}) {
        auto leaf = find(leaves, f);
        ASSERT_TRUE(leaf);
        EXPECT_EQ(leaf->eax | leaf->ebx | leaf->ecx | leaf->edx, 0u);
    }
    EXPECT_FALSE(functions.contains(0x40000100u)); // no KVM signature leaf
    auto management = find(leaves, 0x40000007);
    ASSERT_TRUE(management);
    EXPECT_EQ(management->eax | management->ebx | management->ecx | management->edx, 0u);
}

TEST(HypervCpuid, Features)
{
    auto features = find(hyperv_cpuid_leaves(2), 0x40000003);
    ASSERT_TRUE(features);
    // EAX: TIME_REF_COUNT 1, SYNIC 2, HYPERCALL 5, VP_INDEX 6, REFERENCE_TSC 9, frequency MSRs 11, invariant 15.
    EXPECT_EQ(features->eax, (1u << 1) | (1u << 2) | (1u << 5) | (1u << 6) | (1u << 9) | (1u << 11) | (1u << 15));
    // Never synthetic timers (3), APIC access (4), guest idle (10), reenlightenment (13).
    EXPECT_EQ(features->eax & ((1u << 3) | (1u << 4) | (1u << 10) | (1u << 13)), 0u);
    // EBX: PostMessages, SignalEvents; never partition id (1), CPU management (12), extended calls (20),
    // isolation (22).
    EXPECT_EQ(features->ebx, (1u << 4) | (1u << 5));
    // EDX: frequency MSRs available (8), guest crash MSRs (10).
    EXPECT_EQ(features->edx, (1u << 8) | (1u << 10));
}

TEST(HypervCpuid, HintsAndLimits)
{
    auto leaves = hyperv_cpuid_leaves(6);
    auto hints = find(leaves, 0x40000004);
    ASSERT_TRUE(hints);
    EXPECT_EQ(hints->eax, 1u << 9); // deprecating AutoEOI only: no TLB-flush, APIC-MSR or IPI hints
    auto limits = find(leaves, 0x40000005);
    ASSERT_TRUE(limits);
    EXPECT_EQ(limits->eax, 6u);
    EXPECT_EQ(limits->ebx, 6u);
}

TEST(HypervCpuid, StandardBits)
{
    HvCpuidLeaf leaf1{1, 0, 0, 0x1234, 0};
    add_standard_hyperv_bits(leaf1);
    EXPECT_EQ(leaf1.ecx, 0x1234u | (1u << 31));
    HvCpuidLeaf power{0x80000007, 0, 0, 0, 0};
    add_standard_hyperv_bits(power);
    EXPECT_EQ(power.edx, 1u << 8);
    HvCpuidLeaf other{7, 1, 2, 3, 4};
    add_standard_hyperv_bits(other);
    EXPECT_EQ(other.eax + other.ebx + other.ecx + other.edx, 10u);
}

} // namespace
} // namespace vmgen::vm::hyperv
