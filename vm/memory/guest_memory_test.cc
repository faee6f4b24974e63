#include "vm/memory/guest_memory.h"

#include <gtest/gtest.h>

namespace vmgen::vm {
namespace {

TEST(GuestMemory, X86LayoutSkipsTheHole)
{
    auto mem = GuestMemory::create_x86(8ull << 20, 4ull << 20);
    ASSERT_TRUE(mem);
    ASSERT_EQ(mem->regions().size(), 2u);
    EXPECT_EQ(mem->regions()[0].gpa, 0u);
    EXPECT_EQ(mem->regions()[0].size, 4ull << 20);
    EXPECT_EQ(mem->regions()[1].gpa, 4ull << 30);
    EXPECT_EQ(mem->total_bytes(), 8ull << 20);
}

TEST(GuestMemory, ReadWriteRoundTrip)
{
    auto mem = GuestMemory::create_x86(1ull << 20);
    ASSERT_TRUE(mem);
    ASSERT_TRUE(mem->write_obj<uint32_t>(0x1000, 0xdeadbeef));
    EXPECT_EQ(*mem->read_obj<uint32_t>(0x1000), 0xdeadbeefu);
}

TEST(GuestMemory, RejectsRangesOutsideRam)
{
    auto mem = GuestMemory::create_x86(1ull << 20);
    ASSERT_TRUE(mem);
    EXPECT_FALSE(mem->read_obj<uint32_t>((1ull << 20) - 2)); // straddles the end
    EXPECT_FALSE(mem->span(~0ull - 1, 4));                      // wraps around
    EXPECT_FALSE(mem->write_obj<uint8_t>(1ull << 30, 1));
    EXPECT_FALSE(mem->contains(0, (1ull << 20) + 1));
    EXPECT_TRUE(mem->contains(0, 1ull << 20));
}

TEST(GuestMemory, RejectsBadLayouts)
{
    EXPECT_FALSE(GuestMemory::create({{0, 4096}, {0, 4096}}));
    EXPECT_FALSE(GuestMemory::create({{1, 4096}}));
    EXPECT_FALSE(GuestMemory::create_x86(0));
}

} // namespace
} // namespace vmgen::vm
