#include "vm/acpi/aml_builder.h"

#include <gtest/gtest.h>

#include <vector>

namespace vmgen::vm::acpi {
namespace {

using Bytes = std::vector<uint8_t>;
using namespace aml;

Bytes encoded(const Aml& aml)
{
    auto bytes = aml.finish();
    EXPECT_TRUE(bytes) << bytes.error().message();
    return bytes ? *bytes : Bytes {};
}

Bytes pkg_length(uint32_t value)
{
    auto bytes = encode_pkg_length(value);
    EXPECT_TRUE(bytes) << bytes.error().message();
    return bytes ? *bytes : Bytes {};
}

TEST(AmlPkgLength, OneByteUpTo63)
{
    EXPECT_EQ(pkg_length(0), (Bytes { 0x00 }));
    EXPECT_EQ(pkg_length(5), (Bytes { 0x05 }));
    EXPECT_EQ(pkg_length(63), (Bytes { 0x3f }));
}

TEST(AmlPkgLength, MultiByteBoundaries)
{
    // Lead byte: follow-count in bits 7:6, low nibble in bits 3:0; then the next 8 bits per byte.
    EXPECT_EQ(pkg_length(64), (Bytes { 0x40, 0x04 }));
    EXPECT_EQ(pkg_length(0x123), (Bytes { 0x43, 0x12 }));
    EXPECT_EQ(pkg_length(4095), (Bytes { 0x4f, 0xff }));
    EXPECT_EQ(pkg_length(4096), (Bytes { 0x80, 0x00, 0x01 }));
    EXPECT_EQ(pkg_length(0xfffff), (Bytes { 0x8f, 0xff, 0xff }));
    EXPECT_EQ(pkg_length(0x100000), (Bytes { 0xc0, 0x00, 0x00, 0x01 }));
    EXPECT_EQ(pkg_length(0x0fffffff), (Bytes { 0xcf, 0xff, 0xff, 0xff }));
}

TEST(AmlPkgLength, RejectsMoreThan28Bits)
{
    EXPECT_FALSE(encode_pkg_length(0x10000000));
}

TEST(AmlPkgLength, CountsItsOwnBytes)
{
    // 62 payload bytes + 1 length byte = 63 fits the one-byte form.
    auto small = with_pkg_length(Bytes(62, 0xaa));
    ASSERT_TRUE(small);
    EXPECT_EQ(small->size(), 63u);
    EXPECT_EQ((*small)[0], 0x3f);
    // 63 payload bytes need two length bytes: 65.
    auto two = with_pkg_length(Bytes(63, 0xaa));
    ASSERT_TRUE(two);
    EXPECT_EQ(two->size(), 65u);
    EXPECT_EQ((*two)[0], 0x41);
    EXPECT_EQ((*two)[1], 0x04);
    // 4093 + 2 = 4095 still fits two bytes; 4094 needs three (4097).
    auto edge = with_pkg_length(Bytes(4093, 0));
    ASSERT_TRUE(edge);
    EXPECT_EQ(Bytes(edge->begin(), edge->begin() + 2), (Bytes { 0x4f, 0xff }));
    auto three = with_pkg_length(Bytes(4094, 0));
    ASSERT_TRUE(three);
    EXPECT_EQ(Bytes(three->begin(), three->begin() + 3), (Bytes { 0x81, 0x00, 0x01 }));
}

TEST(AmlNameString, SingleSegmentsArePadded)
{
    EXPECT_EQ(encoded(name_string("_S5")), (Bytes { '_', 'S', '5', '_' }));
    EXPECT_EQ(encoded(name_string("COM1")), (Bytes { 'C', 'O', 'M', '1' }));
    EXPECT_EQ(encoded(name_string("A")), (Bytes { 'A', '_', '_', '_' }));
}

TEST(AmlNameString, RootAndParentPrefixes)
{
    EXPECT_EQ(encoded(name_string("\\_SB")), (Bytes { '\\', '_', 'S', 'B', '_' }));
    EXPECT_EQ(encoded(name_string("\\")), (Bytes { '\\', 0x00 }));
    EXPECT_EQ(encoded(name_string("^FOO")), (Bytes { '^', 'F', 'O', 'O', '_' }));
    EXPECT_EQ(encoded(name_string("^^X")), (Bytes { '^', '^', 'X', '_', '_', '_' }));
}

TEST(AmlNameString, DualAndMultiNamePaths)
{
    EXPECT_EQ(encoded(name_string("\\_SB.COM1")), (Bytes { '\\', 0x2e, '_', 'S', 'B', '_', 'C', 'O', 'M', '1' }));
    EXPECT_EQ(encoded(name_string("^A.B")), (Bytes { '^', 0x2e, 'A', '_', '_', '_', 'B', '_', '_', '_' }));
    EXPECT_EQ(encoded(name_string("\\_SB.PCI0.ISA")),
        (Bytes { '\\', 0x2f, 0x03, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'I', 'S', 'A', '_' }));
}

TEST(AmlNameString, RejectsInvalidNames)
{
    for (const char* bad : { "", "^", "ABCDE", "1ABC", "abc", "A..B", "A.", ".A", "\\^A", "A-B", "\\_SB.CO M" }) {
        const Aml aml = name_string(bad);
        EXPECT_FALSE(aml.ok()) << "'" << bad << "' accepted";
        EXPECT_FALSE(aml.finish()) << bad;
    }
}

TEST(AmlInteger, ChoosesTheSmallestEncoding)
{
    EXPECT_EQ(encoded(integer(0)), (Bytes { 0x00 }));
    EXPECT_EQ(encoded(integer(1)), (Bytes { 0x01 }));
    EXPECT_EQ(encoded(integer(2)), (Bytes { 0x0a, 0x02 }));
    EXPECT_EQ(encoded(integer(0xff)), (Bytes { 0x0a, 0xff }));
    EXPECT_EQ(encoded(integer(0x100)), (Bytes { 0x0b, 0x00, 0x01 }));
    EXPECT_EQ(encoded(integer(0xffff)), (Bytes { 0x0b, 0xff, 0xff }));
    EXPECT_EQ(encoded(integer(0x10000)), (Bytes { 0x0c, 0x00, 0x00, 0x01, 0x00 }));
    EXPECT_EQ(encoded(integer(0xfec00000)), (Bytes { 0x0c, 0x00, 0x00, 0xc0, 0xfe }));
    EXPECT_EQ(encoded(integer(0x100000000)), (Bytes { 0x0e, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00 }));
    EXPECT_EQ(encoded(integer(0x0123456789abcdef)), (Bytes { 0x0e, 0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01 }));
    EXPECT_EQ(encoded(integer(~uint64_t { 0 })), (Bytes { 0xff }));
    EXPECT_EQ(encoded(integer(~uint64_t { 0 } - 1)), (Bytes { 0x0e, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }));
}

TEST(AmlString, IsNulTerminatedAscii)
{
    EXPECT_EQ(encoded(string("VMBus")), (Bytes { 0x0d, 'V', 'M', 'B', 'u', 's', 0x00 }));
    EXPECT_EQ(encoded(string("")), (Bytes { 0x0d, 0x00 }));
    EXPECT_FALSE(string("caf\xc3\xa9").ok());
    EXPECT_FALSE(string(std::string_view("a\0b", 3)).ok());
}

TEST(AmlBuffer, HasLengthSizeAndBytes)
{
    const Bytes data { 1, 2, 3 };
    EXPECT_EQ(encoded(buffer(data)), (Bytes { 0x11, 0x06, 0x0a, 0x03, 1, 2, 3 }));
    EXPECT_EQ(encoded(buffer({})), (Bytes { 0x11, 0x02, 0x00 }));
}

TEST(AmlPackage, EncodesS5)
{
    EXPECT_EQ(encoded(package({ integer(5), integer(0), integer(0), integer(0) })),
        (Bytes { 0x12, 0x07, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00 }));
    EXPECT_EQ(encoded(name("\\_S5", package({ integer(5), integer(0), integer(0), integer(0) }))),
        (Bytes { 0x08, '\\', '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00 }));
}

TEST(AmlPackage, LimitsAndErrorsPropagate)
{
    EXPECT_TRUE(package(std::vector<Aml>(255, integer(0))).ok());
    EXPECT_FALSE(package(std::vector<Aml>(256, integer(0))).ok());
    const Aml bad = package({ integer(1), string("\xff") });
    EXPECT_FALSE(bad.ok());
    EXPECT_NE(bad.error().find("0xff"), std::string::npos) << bad.error();
}

TEST(AmlName, NameWithInteger)
{
    EXPECT_EQ(encoded(name("_UID", integer(1))), (Bytes { 0x08, '_', 'U', 'I', 'D', 0x01 }));
    EXPECT_FALSE(name("_uid", integer(1)).ok());
}

TEST(AmlEisaId, CompressesPnpIds)
{
    // 'P' = 0x10, 'N' = 0x0E: byte 0 = 0x10 << 2 | 0x0E >> 3 = 0x41, byte 1 = (0x0E & 7) << 5 | 0x10 = 0xD0.
    EXPECT_EQ(encoded(eisa_id("PNP0501")), (Bytes { 0x0c, 0x41, 0xd0, 0x05, 0x01 }));
    EXPECT_EQ(encoded(eisa_id("PNP0B00")), (Bytes { 0x0c, 0x41, 0xd0, 0x0b, 0x00 }));
    EXPECT_EQ(encoded(eisa_id("PNP0C02")), (Bytes { 0x0c, 0x41, 0xd0, 0x0c, 0x02 }));
    EXPECT_EQ(encoded(eisa_id("PNP0000")), (Bytes { 0x0b, 0x41, 0xd0 }));
    // 'A' = 1, 'B' = 2, 'C' = 3: 0x04 | 0 = 0x04, (2 & 7) << 5 | 3 = 0x43.
    EXPECT_EQ(encoded(eisa_id("ABC1234")), (Bytes { 0x0c, 0x04, 0x43, 0x12, 0x34 }));
    for (const char* bad : { "PNP050", "PNP05011", "pnp0501", "PNP05G1", "P1P0501", "PNP0a01" })
        EXPECT_FALSE(eisa_id(bad).ok()) << bad;
}

TEST(AmlMethod, FlagsAndBody)
{
    // Method (_STA, 0, NotSerialized) { Return (0x0F) }
    EXPECT_EQ(encoded(method("_STA", 0, false, { return_value(integer(0x0f)) })),
        (Bytes { 0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f }));
    // Method (_CRS, 2, Serialized) { Return (One) }
    EXPECT_EQ(encoded(method("_CRS", 2, true, { return_value(integer(1)) })),
        (Bytes { 0x14, 0x08, '_', 'C', 'R', 'S', 0x0a, 0xa4, 0x01 }));
    EXPECT_FALSE(method("_CRS", 8, false, {}).ok());
}

TEST(AmlScopeAndDevice, NestWithPkgLengths)
{
    const Aml dev = device("COM1", { name("_UID", integer(1)) });
    const Bytes dev_bytes { 0x5b, 0x82, 0x0b, 'C', 'O', 'M', '1', 0x08, '_', 'U', 'I', 'D', 0x01 };
    EXPECT_EQ(encoded(dev), dev_bytes);
    Bytes scope_bytes { 0x10, 0x13, '\\', '_', 'S', 'B', '_' };
    scope_bytes.insert(scope_bytes.end(), dev_bytes.begin(), dev_bytes.end());
    EXPECT_EQ(encoded(scope("\\_SB", { dev })), scope_bytes);
}

TEST(AmlScopeAndDevice, LargeBodiesUseLongerPkgLengths)
{
    std::vector<Aml> names;
    for (int i = 0; i < 20; ++i)
        names.push_back(name(fmt::format("N{:03}", i), integer(0x12345678))); // 10 bytes each
    const Bytes bytes = encoded(device("BIG", names));
    ASSERT_EQ(bytes.size(), 2u + 2u + 4u + 200u);
    // PkgLength = 2 + 4 + 200 = 206 = 0xCE: lead 0x4E, then 0x0C.
    EXPECT_EQ(bytes[2], 0x4e);
    EXPECT_EQ(bytes[3], 0x0c);
}

TEST(AmlScopeAndDevice, ChildErrorsPropagateToTheTop)
{
    const Aml top = scope("\\_SB", { device("OK", {}), device("BAD!", {}) });
    ASSERT_FALSE(top.ok());
    EXPECT_NE(top.error().find("BAD!"), std::string::npos) << top.error();
    auto result = top.finish();
    ASSERT_FALSE(result);
}

TEST(AmlResources, IoAndIrqTemplate)
{
    // ResourceTemplate () { IO (Decode16, 0x3F8, 0x3F8, 0x01, 0x08) IRQNoFlags () {4} }
    EXPECT_EQ(encoded(resource_template({ io(0x3f8, 8), irq(4) })),
        (Bytes {
            0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00, 0x79, 0x00 }));
    EXPECT_EQ(encoded(resource_template({})), (Bytes { 0x11, 0x05, 0x0a, 0x02, 0x79, 0x00 }));
}

TEST(AmlResources, IrqForms)
{
    EXPECT_EQ(irq(0).bytes(), (Bytes { 0x22, 0x01, 0x00 }));
    EXPECT_EQ(irq(15).bytes(), (Bytes { 0x22, 0x00, 0x80 }));
    // IRQ (Level, ActiveLow, Shared) {9}: _HE clear, _LL bit 3, _SHR bit 4.
    EXPECT_EQ(
        irq(9, { .trigger = Trigger::Level, .polarity = Polarity::ActiveLow, .sharing = Sharing::Shared }).bytes(),
        (Bytes { 0x23, 0x00, 0x02, 0x18 }));
    EXPECT_EQ(irq(4, IrqFlags {}).bytes(), (Bytes { 0x23, 0x10, 0x00, 0x01 }));
    EXPECT_FALSE(irq(16).ok());
    EXPECT_FALSE(irq(16, IrqFlags {}).ok());
}

TEST(AmlResources, ExtendedInterrupt)
{
    // Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) {5}
    EXPECT_EQ(extended_interrupt({ 5 }, { .trigger = Trigger::Level }).bytes(),
        (Bytes { 0x89, 0x06, 0x00, 0x01, 0x01, 0x05, 0x00, 0x00, 0x00 }));
    // Interrupt (ResourceConsumer, Edge, ActiveLow, Shared, , , ) {32, 0x10000}
    EXPECT_EQ(
        extended_interrupt({ 32, 0x10000 }, { .polarity = Polarity::ActiveLow, .sharing = Sharing::Shared }).bytes(),
        (Bytes { 0x89, 0x0a, 0x00, 0x0f, 0x02, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00 }));
    EXPECT_FALSE(extended_interrupt({}, {}).ok());
}

TEST(AmlResources, DWordMemory)
{
    // DWordMemory (ResourceConsumer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
    //              0, 0xFEC00000, 0xFEC00FFF, 0, 0x1000)
    EXPECT_EQ(dword_memory({ .base = 0xfec00000, .length = 0x1000 }).bytes(),
        (Bytes { 0x87, 0x17, 0x00, 0x00, 0x0d, 0x01, 0, 0, 0, 0, 0x00, 0x00, 0xc0, 0xfe, 0xff, 0x0f, 0xc0, 0xfe, 0, 0,
            0, 0, 0x00, 0x10, 0x00, 0x00 }));
    EXPECT_FALSE(dword_memory({ .base = 0xfffff000, .length = 0x2000 }).ok());
    EXPECT_FALSE(dword_memory({ .base = 0x1000, .length = 0 }).ok());
}

TEST(AmlResources, QWordMemory)
{
    // QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,
    //              0, 0x1_0000_0000, 0x1_3FFF_FFFF, 0, 0x4000_0000)
    const Bytes bytes = qword_memory({ .base = 0x100000000,
                                         .length = 0x40000000,
                                         .usage = ResourceUsage::Producer,
                                         .cacheability = Cacheability::Cacheable })
                            .bytes();
    const Bytes expected { 0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, // granularity
        0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, // min
        0xff, 0xff, 0xff, 0x3f, 0x01, 0x00, 0x00, 0x00, // max
        0, 0, 0, 0, 0, 0, 0, 0, // translation
        0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00 }; // length
    EXPECT_EQ(bytes, expected);
    EXPECT_TRUE(qword_memory({ .base = ~uint64_t { 0 } - 0xfff, .length = 0x1000 }).ok());
    EXPECT_FALSE(qword_memory({ .base = ~uint64_t { 0 } - 0xfff, .length = 0x1001 }).ok());
}

TEST(AmlResources, BadDescriptorFailsTheTemplate)
{
    const Aml bad = resource_template({ io(0x3f8, 8), irq(20) });
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().find("20"), std::string::npos);
    EXPECT_FALSE(io(0xfffc, 8).ok());
    EXPECT_FALSE(io(0x80, 0).ok());
}

} // namespace
} // namespace vmgen::vm::acpi
