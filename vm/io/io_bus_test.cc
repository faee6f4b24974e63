#include "vm/io/io_bus.h"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace vmgen::vm {
namespace {

class Recorder final : public IoHandler {
public:
    std::string_view name() const override { return "recorder"; }
    void read(uint64_t offset, std::span<uint8_t> data) override
    {
        last_read_offset = offset;
        io_fill(data, 0x11223344);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override
    {
        writes.emplace_back(offset, io_value(data));
    }
    uint64_t last_read_offset = ~0ull;
    std::vector<std::pair<uint64_t, uint64_t>> writes;
};

TEST(IoBus, DispatchesWithOffsetsRelativeToBase)
{
    IoBus bus("pio");
    auto dev = std::make_shared<Recorder>();
    ASSERT_TRUE(bus.add(0x3f8, 8, dev));
    std::array<uint8_t, 2> data{};
    EXPECT_TRUE(bus.read(0x3fd, data));
    EXPECT_EQ(dev->last_read_offset, 5u);
    EXPECT_EQ(io_value(data), 0x3344u);
    const std::array<uint8_t, 1> byte{0x5a};
    EXPECT_TRUE(bus.write(0x3f8, byte));
    ASSERT_EQ(dev->writes.size(), 1u);
    EXPECT_EQ(dev->writes[0], (std::pair<uint64_t, uint64_t>{0, 0x5a}));
}

TEST(IoBus, UnclaimedReadsAllOnesAndWritesAreDropped)
{
    IoBus bus("pio");
    auto dev = std::make_shared<Recorder>();
    ASSERT_TRUE(bus.add(0x70, 2, dev));
    std::array<uint8_t, 4> data{};
    EXPECT_FALSE(bus.read(0x72, data));
    EXPECT_EQ(io_value(data), 0xffffffffu);
    EXPECT_FALSE(bus.read(0x6f, data));
    const std::array<uint8_t, 1> byte{1};
    EXPECT_FALSE(bus.write(0x60, byte));
    EXPECT_TRUE(dev->writes.empty());
}

TEST(IoBus, RejectsOverlapsAndRemoves)
{
    IoBus bus("mmio");
    auto dev = std::make_shared<Recorder>();
    ASSERT_TRUE(bus.add(0x1000, 0x100, dev));
    EXPECT_FALSE(bus.add(0x10ff, 1, dev));
    EXPECT_FALSE(bus.add(0x0f00, 0x101, dev));
    EXPECT_FALSE(bus.add(0x0, 0, dev));
    EXPECT_FALSE(bus.add(~0ull, 2, dev));
    EXPECT_TRUE(bus.add(0x1100, 0x10, dev));
    EXPECT_TRUE(bus.add(0x0f00, 0x100, dev));
    EXPECT_TRUE(bus.remove(0x1000));
    EXPECT_FALSE(bus.is_claimed(0x1000));
    EXPECT_FALSE(bus.remove(0x1000));
    EXPECT_EQ(bus.ranges().size(), 2u);
}

} // namespace
} // namespace vmgen::vm
