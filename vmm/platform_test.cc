// The platform's port map per generation, without KVM: what a guest finds at each port.
#include "vmm/platform.h"

#include "vmm/boot/layout.h"

#include <gtest/gtest.h>

#include <array>

namespace vmgen::vmm {
namespace {

struct Events {
    int power_off = 0;
    int reset = 0;
};

std::unique_ptr<Platform> make(Generation generation, InterruptRouter& router, Events& events,
                               bool com1 = false)
{
    MachineConfig config;
    config.generation = generation;
    config.memory_bytes = 64ull << 20;
    if (com1)
        config.com[0] = {SerialPortConfig::Kind::File, "/dev/null"};
    auto p = Platform::create(config, router, {[&] { ++events.power_off; }, [&] { ++events.reset; }});
    EXPECT_TRUE(p) << p.error().message();
    return std::move(*p);
}

uint8_t inb(Platform& p, uint16_t port)
{
    std::array<uint8_t, 1> b{};
    p.pio().read(port, b);
    return b[0];
}

void outb(Platform& p, uint16_t port, uint8_t v)
{
    std::array<uint8_t, 1> b{v};
    p.pio().write(port, b);
}

TEST(Platform, Generation2HasNoLegacyPorts)
{
    InterruptRouter router;
    Events events;
    auto p = make(Generation::Two, router, events);
    for (int port : {0x20, 0x21, 0xa0, 0xa1, 0x40, 0x43, 0x60, 0x64, 0x61, 0x80, 0x92, 0x1f0, 0x1f7, 0x170,
                          0x3f0, 0x3f5, 0x3c0, 0x3cc, 0x3da, 0xcf8, 0xcfc, 0x00, 0x0f, 0xc0, 0x3f8, 0x2f8, 0x4d0}) {
        EXPECT_FALSE(p->pio().is_claimed(static_cast<uint64_t>(port))) << std::hex << port;
        EXPECT_EQ(inb(*p, static_cast<uint16_t>(port)), 0xff) << std::hex << port;
    }
    EXPECT_TRUE(p->pio().is_claimed(0x70));
    EXPECT_TRUE(p->pio().is_claimed(0x71));
    EXPECT_TRUE(p->pio().is_claimed(ports::acpi_pm));
}

TEST(Platform, Generation2ComPortOnlyWhenConfigured)
{
    InterruptRouter router;
    Events events;
    auto p = make(Generation::Two, router, events, true);
    EXPECT_TRUE(p->pio().is_claimed(0x3f8));
    EXPECT_FALSE(p->pio().is_claimed(0x2f8));
    outb(*p, 0x3ff, 0x5a); // scratch register
    EXPECT_EQ(inb(*p, 0x3ff), 0x5a);
}

TEST(Platform, Generation1HasItsLegacyDevices)
{
    InterruptRouter router;
    Events events;
    auto p = make(Generation::One, router, events);
    for (int port : {0x3f8, 0x2f8, 0x70, 0x80, 0x92})
        EXPECT_TRUE(p->pio().is_claimed(static_cast<uint64_t>(port))) << std::hex << port;
    outb(*p, 0x80, 0x42);
    EXPECT_EQ(inb(*p, 0x80), 0x42);
    outb(*p, 0x92, 0x01); // fast reset
    EXPECT_EQ(events.reset, 1);
}

TEST(Platform, AcpiPowerOffAndResetReachTheMachine)
{
    InterruptRouter router;
    Events events;
    auto p = make(Generation::Two, router, events);
    const uint16_t s5_value = static_cast<uint16_t>((vm::AcpiPm::s5_sleep_type << 10) | (1u << 13));
    std::array<uint8_t, 2> s5{static_cast<uint8_t>(s5_value), static_cast<uint8_t>(s5_value >> 8)};
    p->pio().write(uint64_t{ports::acpi_pm} + vm::AcpiPm::pm1a_cnt_offset, s5);
    EXPECT_EQ(events.power_off, 1);
    outb(*p, static_cast<uint16_t>(ports::acpi_pm + vm::AcpiPm::reset_reg_offset), vm::AcpiPm::reset_value);
    EXPECT_EQ(events.reset, 1);
}

TEST(Platform, AcpiConfigDescribesTheGeneration)
{
    InterruptRouter router;
    Events events;
    auto memory = vm::GuestMemory::create_x86(64ull << 20);
    ASSERT_TRUE(memory);
    auto p2 = make(Generation::Two, router, events, true);
    auto c2 = p2->acpi_config(2, *memory);
    EXPECT_EQ(c2.generation, 2);
    EXPECT_EQ(c2.lapic_ids.size(), 2u);
    EXPECT_FALSE(c2.pic);
    EXPECT_FALSE(c2.pit);
    ASSERT_TRUE(c2.vmbus.has_value());
    EXPECT_GE(c2.vmbus->high_mmio_base, 4ull << 30);
    EXPECT_EQ(c2.serial_ports.size(), 1u);
    EXPECT_TRUE(vm::acpi::validate_acpi_config(c2));

    auto p1 = make(Generation::One, router, events);
    auto c1 = p1->acpi_config(1, *memory);
    EXPECT_TRUE(c1.pic);
    EXPECT_TRUE(c1.pit);
    EXPECT_FALSE(c1.vmbus.has_value());
    EXPECT_EQ(c1.serial_ports.size(), 2u);
    EXPECT_TRUE(vm::acpi::validate_acpi_config(c1));
}

} // namespace
} // namespace vmgen::vmm
