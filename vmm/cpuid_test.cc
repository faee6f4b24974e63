#include "vmm/cpuid.h"

#include <gtest/gtest.h>

namespace vmgen::vmm {
namespace {

const hv::CpuidEntry* find(const std::vector<hv::CpuidEntry>& v, uint32_t fn, uint32_t index = 0)
{
    for (const auto& e : v)
        if (e.function == fn && e.index == index)
            return &e;
    return nullptr;
}

TEST(Cpuid, PerVcpuApicIdAndHypervisorBit)
{
    std::vector<hv::CpuidEntry> supported{{1, 0, 0, 0x806f8, 0x00010800, 0x7ffa3203, 0x178bfbff},
                                          {0xb, 0, 1, 1, 1, 0x100, 0},
                                          {0xb, 1, 1, 4, 4, 0x201, 0}};
    auto cpuid = vcpu_cpuid(supported, 3, 4);
    auto* leaf1 = find(cpuid, 1);
    ASSERT_NE(leaf1, nullptr);
    EXPECT_EQ(leaf1->ebx >> 24, 3u);
    EXPECT_EQ((leaf1->ebx >> 16) & 0xff, 4u);
    EXPECT_EQ(leaf1->ebx & 0xffff, 0x0800u); // brand index / CLFLUSH size kept
    EXPECT_NE(leaf1->ecx & (1u << 31), 0u);
    EXPECT_NE(leaf1->edx & (1u << 28), 0u);
    auto* smt = find(cpuid, 0xb, 0);
    auto* core = find(cpuid, 0xb, 1);
    ASSERT_TRUE(smt && core);
    EXPECT_EQ(smt->edx, 3u);
    EXPECT_EQ(core->edx, 3u);
    EXPECT_EQ(core->ebx, 4u);
    EXPECT_EQ(core->eax, 2u); // 2 bits of APIC id for 4 cores
}

TEST(Cpuid, SingleVcpuHasNoHtt)
{
    std::vector<hv::CpuidEntry> supported{{1, 0, 0, 0, 0, 0, 1u << 28}};
    auto cpuid = vcpu_cpuid(supported, 0, 1);
    EXPECT_EQ(find(cpuid, 1)->edx & (1u << 28), 0u);
}

} // namespace
} // namespace vmgen::vmm
