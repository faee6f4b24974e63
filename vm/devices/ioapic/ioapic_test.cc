#include "vm/devices/ioapic/ioapic.h"

#include <gtest/gtest.h>

#include <array>
#include <utility>
#include <vector>

namespace vmgen::vm {
namespace {

class FakeMsi final : public MsiTarget {
public:
    void signal_msi(uint64_t address, uint32_t data) override { messages.emplace_back(address, data); }
    std::vector<std::pair<uint64_t, uint32_t>> messages;
};

class IoApicTest : public ::testing::Test {
protected:
    IoApicTest()
        : apic(msi, [this](unsigned pin, const IoApicRoute& route) { routes.emplace_back(pin, route); })
    {
    }

    uint32_t mmio_read(uint64_t offset)
    {
        std::array<uint8_t, 4> d {};
        apic.read(offset, d);
        return static_cast<uint32_t>(io_value(d));
    }
    void mmio_write(uint64_t offset, uint32_t value)
    {
        std::array<uint8_t, 4> d {};
        io_fill(d, value);
        apic.write(offset, d);
    }
    uint32_t reg(uint8_t index)
    {
        mmio_write(IoApic::ioregsel_offset, index);
        return mmio_read(IoApic::iowin_offset);
    }
    void set_reg(uint8_t index, uint32_t value)
    {
        mmio_write(IoApic::ioregsel_offset, index);
        mmio_write(IoApic::iowin_offset, value);
    }
    void set_entry(unsigned pin, uint64_t entry)
    {
        set_reg(static_cast<uint8_t>(0x10 + 2 * pin + 1), static_cast<uint32_t>(entry >> 32));
        set_reg(static_cast<uint8_t>(0x10 + 2 * pin), static_cast<uint32_t>(entry));
    }

    FakeMsi msi;
    std::vector<std::pair<unsigned, IoApicRoute>> routes;
    IoApic apic;
};

TEST_F(IoApicTest, RegisterWindowAndIdentification)
{
    mmio_write(IoApic::ioregsel_offset, 0x01);
    EXPECT_EQ(mmio_read(IoApic::ioregsel_offset), 0x01u);
    EXPECT_EQ(mmio_read(IoApic::iowin_offset), 0x00170020u);

    EXPECT_EQ(reg(IoApic::reg_id), 0u);
    set_reg(IoApic::reg_id, 0xffffffff);
    EXPECT_EQ(reg(IoApic::reg_id), 0x0f000000u);
    EXPECT_EQ(reg(IoApic::reg_arbitration), 0x0f000000u);
    set_reg(IoApic::reg_version, 0);
    EXPECT_EQ(reg(IoApic::reg_version), 0x00170020u);

    // Undefined registers and entries past pin 23 read all ones.
    EXPECT_EQ(reg(0x03), 0xffffffffu);
    EXPECT_EQ(reg(0x40), 0xffffffffu);
    EXPECT_EQ(reg(0xff), 0xffffffffu);
}

TEST_F(IoApicTest, BadAccessSizesAndOffsetsReadAllOnes)
{
    std::array<uint8_t, 1> b {};
    apic.read(0x00, b);
    EXPECT_EQ(b[0], 0xff);
    std::array<uint8_t, 8> q {};
    apic.read(0x10, q);
    EXPECT_EQ(io_value(q), ~0ull);
    EXPECT_EQ(mmio_read(0x20), 0xffffffffu);
    EXPECT_EQ(mmio_read(0x40), 0xffffffffu); // EOI is write-only
    EXPECT_EQ(mmio_read(0xffc), 0xffffffffu);

    mmio_write(IoApic::ioregsel_offset, IoApic::reg_id);
    const std::array<uint8_t, 1> byte { 0x12 };
    apic.write(0x00, byte); // ignored: not a 32-bit access
    EXPECT_EQ(mmio_read(IoApic::ioregsel_offset), 0u);
    const std::array<uint8_t, 2> word { 0xff, 0xff };
    apic.write(0x10, word);
    EXPECT_EQ(reg(IoApic::reg_id), 0u);
    mmio_write(0x30, 0x12345678);
    EXPECT_TRUE(msi.messages.empty());
}

TEST_F(IoApicTest, RedirectionEntriesResetMaskedAndProtectReadOnlyBits)
{
    for (unsigned pin = 0; pin < IoApic::pin_count; ++pin) {
        EXPECT_EQ(reg(static_cast<uint8_t>(0x10 + 2 * pin)), 0x00010000u) << pin;
        EXPECT_EQ(reg(static_cast<uint8_t>(0x11 + 2 * pin)), 0u) << pin;
    }
    set_reg(0x10 + 2 * 5, 0xffffffff);
    set_reg(0x11 + 2 * 5, 0xffffffff);
    // Delivery status (12), remote IRR (14) and reserved bits stay clear.
    EXPECT_EQ(reg(0x10 + 2 * 5), 0x0001afffu);
    EXPECT_EQ(reg(0x11 + 2 * 5), 0xff000000u);
    EXPECT_EQ(apic.redirection_entry(5), 0xff000000'0001afffull);
    EXPECT_EQ(apic.redirection_entry(24), ~0ull);
}

TEST_F(IoApicTest, RouteChangedReportsMsiComposition)
{
    // Vector 0x31, fixed, logical destination 0x03, level, active high, unmasked.
    set_entry(9, (0x03ull << 56) | IoApic::rte_trigger_level | IoApic::rte_dest_mode_logical | 0x31);
    ASSERT_EQ(routes.size(), 2u);
    EXPECT_EQ(routes[1].first, 9u);
    const IoApicRoute& r = routes[1].second;
    EXPECT_EQ(r.msi_address, 0xfee03004u);
    EXPECT_EQ(r.msi_data, 0x31u | (1u << 14) | (1u << 15));
    EXPECT_FALSE(r.masked);
    EXPECT_TRUE(r.level);

    // Edge, lowest priority (mode 1), physical destination 7, masked.
    set_entry(2, (0x07ull << 56) | IoApic::rte_masked | (1u << 8) | 0x40);
    ASSERT_EQ(routes.size(), 4u);
    EXPECT_EQ(routes[3].first, 2u);
    EXPECT_EQ(routes[3].second.msi_address, 0xfee07000u);
    EXPECT_EQ(routes[3].second.msi_data, 0x140u);
    EXPECT_TRUE(routes[3].second.masked);
    EXPECT_FALSE(routes[3].second.level);
}

TEST_F(IoApicTest, EdgeDeliversOncePerRisingEdge)
{
    set_entry(4, (0x01ull << 56) | 0x24);
    apic.set_irq(4, true);
    ASSERT_EQ(msi.messages.size(), 1u);
    EXPECT_EQ(msi.messages[0].first, 0xfee01000u);
    EXPECT_EQ(msi.messages[0].second, 0x24u);
    apic.set_irq(4, true);
    EXPECT_EQ(msi.messages.size(), 1u);
    apic.set_irq(4, false);
    EXPECT_EQ(msi.messages.size(), 1u);
    apic.set_irq(4, true);
    EXPECT_EQ(msi.messages.size(), 2u);

    // Through the LineInterrupt adapter: pulse() is one edge.
    auto line = apic.line(4);
    line->set_level(false);
    line->pulse();
    EXPECT_EQ(msi.messages.size(), 3u);
}

TEST_F(IoApicTest, MaskedPinsDoNotDeliver)
{
    set_entry(3, IoApic::rte_masked | 0x23);
    apic.set_irq(3, true);
    apic.set_irq(3, false);
    EXPECT_TRUE(msi.messages.empty());
    set_entry(3, 0x23); // unmask: the edge that came while masked is lost
    EXPECT_TRUE(msi.messages.empty());
    apic.set_irq(3, true);
    EXPECT_EQ(msi.messages.size(), 1u);

    // A level-triggered entry whose line is asserted delivers when unmasked.
    set_entry(10, IoApic::rte_masked | IoApic::rte_trigger_level | 0x50);
    apic.set_irq(10, true);
    EXPECT_EQ(msi.messages.size(), 1u);
    set_entry(10, IoApic::rte_trigger_level | 0x50);
    ASSERT_EQ(msi.messages.size(), 2u);
    EXPECT_EQ(msi.messages[1].second, 0x50u | (1u << 14) | (1u << 15));
    EXPECT_NE(apic.redirection_entry(10) & IoApic::rte_remote_irr, 0u);
}

TEST_F(IoApicTest, LevelDeliveryRemoteIrrAndEoiRedelivery)
{
    set_entry(11, IoApic::rte_trigger_level | 0x61);
    apic.set_irq(11, true);
    ASSERT_EQ(msi.messages.size(), 1u);
    EXPECT_NE(apic.redirection_entry(11) & IoApic::rte_remote_irr, 0u);
    EXPECT_NE(reg(0x10 + 2 * 11) & (1u << 14), 0u);

    // Still asserted, but in service: no new delivery.
    apic.set_irq(11, true);
    EXPECT_EQ(msi.messages.size(), 1u);

    // EOI for another vector changes nothing.
    apic.end_of_interrupt(0x62);
    EXPECT_EQ(msi.messages.size(), 1u);

    // EOI with the line still asserted: redelivered, remote IRR set again.
    apic.end_of_interrupt(0x61);
    EXPECT_EQ(msi.messages.size(), 2u);
    EXPECT_NE(apic.redirection_entry(11) & IoApic::rte_remote_irr, 0u);

    // Device deasserts, EOI through the EOI register: remote IRR clears, no delivery.
    apic.set_irq(11, false);
    mmio_write(IoApic::eoi_offset, 0x61);
    EXPECT_EQ(msi.messages.size(), 2u);
    EXPECT_EQ(apic.redirection_entry(11) & IoApic::rte_remote_irr, 0u);

    apic.set_irq(11, true);
    EXPECT_EQ(msi.messages.size(), 3u);
}

TEST_F(IoApicTest, GuestCannotSetRemoteIrrAndEdgeModeClearsIt)
{
    set_entry(12, IoApic::rte_trigger_level | 0x70);
    apic.set_irq(12, true);
    ASSERT_EQ(msi.messages.size(), 1u);
    // Rewriting the low half keeps remote IRR (read-only) ...
    set_reg(0x10 + 2 * 12, static_cast<uint32_t>(IoApic::rte_trigger_level | 0x70));
    EXPECT_NE(apic.redirection_entry(12) & IoApic::rte_remote_irr, 0u);
    EXPECT_EQ(msi.messages.size(), 1u);
    // ... and switching to edge mode clears it.
    set_reg(0x10 + 2 * 12, 0x70);
    EXPECT_EQ(apic.redirection_entry(12) & IoApic::rte_remote_irr, 0u);
}

TEST_F(IoApicTest, ActiveLowPolarityInvertsInput)
{
    // Level, active low: a low input is asserted.
    set_entry(16, IoApic::rte_masked | IoApic::rte_trigger_level | IoApic::rte_polarity_low | 0x80);
    apic.set_irq(16, true); // idle (high)
    set_entry(16, IoApic::rte_trigger_level | IoApic::rte_polarity_low | 0x80);
    EXPECT_TRUE(msi.messages.empty());
    apic.set_irq(16, false);
    ASSERT_EQ(msi.messages.size(), 1u);
    apic.set_irq(16, true);
    apic.end_of_interrupt(0x80);
    EXPECT_EQ(msi.messages.size(), 1u);

    // Edge, active low: the falling edge delivers.
    set_entry(17, IoApic::rte_polarity_low | 0x81);
    apic.set_irq(17, true);
    EXPECT_EQ(msi.messages.size(), 1u);
    apic.set_irq(17, false);
    EXPECT_EQ(msi.messages.size(), 2u);
    apic.set_irq(17, true);
    EXPECT_EQ(msi.messages.size(), 2u);
}

TEST_F(IoApicTest, OutOfRangePinsIgnored)
{
    apic.set_irq(24, true);
    apic.set_irq(1000, true);
    auto line = apic.line(30);
    line->pulse();
    EXPECT_TRUE(msi.messages.empty());
}

TEST(IoApic, WorksWithoutRouteCallback)
{
    FakeMsi msi;
    IoApic apic(msi);
    std::array<uint8_t, 4> d {};
    io_fill(d, 0x10);
    apic.write(IoApic::ioregsel_offset, d);
    io_fill(d, 0x30);
    apic.write(IoApic::iowin_offset, d);
    apic.set_irq(0, true);
    ASSERT_EQ(msi.messages.size(), 1u);
    EXPECT_EQ(msi.messages[0].second, 0x30u);
}

} // namespace
} // namespace vmgen::vm
