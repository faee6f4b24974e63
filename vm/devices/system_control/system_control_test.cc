#include "vm/devices/system_control/system_control.h"

#include <gtest/gtest.h>

#include <array>

namespace vmgen::vm {
namespace {

uint8_t read_port(SystemControlA& dev)
{
    std::array<uint8_t, 1> b {};
    dev.read(0, b);
    return b[0];
}

void write_port(SystemControlA& dev, uint8_t v)
{
    const std::array<uint8_t, 1> b { v };
    dev.write(0, b);
}

TEST(SystemControlA, A20StoredAndReadBack)
{
    int resets = 0;
    SystemControlA dev([&] { ++resets; });
    EXPECT_TRUE(dev.a20_enabled());
    EXPECT_EQ(read_port(dev), 0x02);
    write_port(dev, 0x00);
    EXPECT_FALSE(dev.a20_enabled());
    EXPECT_EQ(read_port(dev), 0x00);
    write_port(dev, 0x02);
    EXPECT_TRUE(dev.a20_enabled());
    EXPECT_EQ(read_port(dev), 0x02);
    EXPECT_EQ(resets, 0);
}

TEST(SystemControlA, FastResetOnRisingEdgeOnly)
{
    int resets = 0;
    SystemControlA dev([&] { ++resets; });
    write_port(dev, 0x03);
    EXPECT_EQ(resets, 1);
    EXPECT_EQ(read_port(dev), 0x03);
    write_port(dev, 0x03); // bit already set: no new edge
    EXPECT_EQ(resets, 1);
    write_port(dev, 0x02);
    EXPECT_EQ(resets, 1);
    write_port(dev, 0x03);
    EXPECT_EQ(resets, 2);
}

TEST(SystemControlA, BadAccessesIgnored)
{
    int resets = 0;
    SystemControlA dev([&] { ++resets; });
    const std::array<uint8_t, 2> word { 0x01, 0x00 };
    dev.write(0, word);
    const std::array<uint8_t, 1> byte { 0x01 };
    dev.write(1, byte);
    EXPECT_EQ(resets, 0);
    std::array<uint8_t, 4> wide {};
    dev.read(0, wide);
    EXPECT_EQ(io_value(wide), 0xffffffffu);
    EXPECT_EQ(read_port(dev), 0x02);
}

TEST(SystemControlA, NullCallbackIsSafe)
{
    SystemControlA dev({});
    write_port(dev, 0x01);
    EXPECT_EQ(read_port(dev), 0x01);
}

} // namespace
} // namespace vmgen::vm
