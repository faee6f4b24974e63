#include "vmm/boot/memory_map.h"

#include "vmm/boot/layout.h"

#include <gtest/gtest.h>

namespace vmgen::vmm {
namespace {

using Type = MemoryMapEntry::Type;

TEST(MemoryMap, LowRamOnly)
{
    auto mem = vm::GuestMemory::create_x86(64ull << 20);
    ASSERT_TRUE(mem);
    auto map = x86_memory_map(*mem);
    ASSERT_EQ(map.size(), 3u);
    EXPECT_EQ(map[0], (MemoryMapEntry{0, layout::ebda_start, Type::Ram}));
    EXPECT_EQ(map[1], (MemoryMapEntry{layout::ebda_start, 0x100000 - layout::ebda_start, Type::Reserved}));
    EXPECT_EQ(map[2], (MemoryMapEntry{0x100000, (64ull << 20) - 0x100000, Type::Ram}));
}

TEST(MemoryMap, RamAboveTheHoleIsListed)
{
    auto mem = vm::GuestMemory::create_x86(4ull << 30);
    ASSERT_TRUE(mem);
    auto map = x86_memory_map(*mem);
    ASSERT_EQ(map.size(), 4u);
    EXPECT_EQ(map[2], (MemoryMapEntry{0x100000, (3ull << 30) - 0x100000, Type::Ram}));
    EXPECT_EQ(map[3], (MemoryMapEntry{4ull << 30, 1ull << 30, Type::Ram}));
}

TEST(MemoryMap, OnlyBackedAddressesAppear)
{
    auto mem = vm::GuestMemory::create({{0, 0x80000}, {0x200000, 0x100000}});
    ASSERT_TRUE(mem);
    auto map = x86_memory_map(*mem);
    ASSERT_EQ(map.size(), 2u);
    EXPECT_EQ(map[0], (MemoryMapEntry{0, 0x80000, Type::Ram}));
    EXPECT_EQ(map[1], (MemoryMapEntry{0x200000, 0x100000, Type::Ram}));
}

TEST(MemoryMap, AdjacentRegionsAcrossOneMibKeepTheReservedGap)
{
    auto mem = vm::GuestMemory::create({{0, 0x100000}, {0x100000, 0x100000}, {0x200000, 0x100000}});
    ASSERT_TRUE(mem);
    auto map = x86_memory_map(*mem);
    ASSERT_EQ(map.size(), 3u);
    EXPECT_EQ(map[1].type, Type::Reserved);
    EXPECT_EQ(map[2], (MemoryMapEntry{0x100000, 0x200000, Type::Ram})); // contiguous RAM merged
}

} // namespace
} // namespace vmgen::vmm
