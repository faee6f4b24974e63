#include "vm/devices/post_code/post_code.h"

#include <gtest/gtest.h>

#include <array>

namespace vmgen::vm {
namespace {

TEST(PostCode, LatchesLastWrittenByte)
{
    PostCode port;
    std::array<uint8_t, 1> byte {};
    port.read(0, byte);
    EXPECT_EQ(byte[0], 0);
    EXPECT_EQ(port.last_code(), 0);

    const std::array<uint8_t, 1> code { 0x3c };
    port.write(0, code);
    EXPECT_EQ(port.last_code(), 0x3c);
    port.read(0, byte);
    EXPECT_EQ(byte[0], 0x3c);

    const std::array<uint8_t, 1> code2 { 0xaa };
    port.write(0, code2);
    port.read(0, byte);
    EXPECT_EQ(byte[0], 0xaa);
}

TEST(PostCode, WideWriteLatchesLowByteAndBadAccessesAreHarmless)
{
    PostCode port;
    const std::array<uint8_t, 2> word { 0x12, 0x34 };
    port.write(0, word);
    EXPECT_EQ(port.last_code(), 0x12);

    const std::array<uint8_t, 1> other { 0x99 };
    port.write(1, other);
    EXPECT_EQ(port.last_code(), 0x12);

    std::array<uint8_t, 4> wide {};
    port.read(0, wide);
    EXPECT_EQ(io_value(wide), 0xffffffffu);
    std::array<uint8_t, 1> off {};
    port.read(3, off);
    EXPECT_EQ(off[0], 0xff);
}

} // namespace
} // namespace vmgen::vm
