#include "vm/devices/acpi_pm/acpi_pm.h"
#include "vm/io/recording_line.h"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace vmgen::vm {
namespace {

using FakeLine = RecordingLine;

class AcpiPmTest : public ::testing::Test {
protected:
    AcpiPmTest()
        : pm(
            sci, [this] { ++power_offs; }, [this] { ++resets; }, [this] { return now_ns; })
    {
    }

    uint64_t rd(uint64_t offset, size_t size)
    {
        std::array<uint8_t, 8> buf {};
        pm.read(offset, std::span(buf.data(), size));
        return io_value(std::span<const uint8_t>(buf.data(), size));
    }
    void wr(uint64_t offset, size_t size, uint64_t value)
    {
        std::array<uint8_t, 8> buf {};
        io_fill(std::span(buf.data(), size), value);
        pm.write(offset, std::span<const uint8_t>(buf.data(), size));
    }

    int64_t now_ns = 1'000'000'000'000; // arbitrary non-zero start
    FakeLine sci;
    int power_offs = 0;
    int resets = 0;
    AcpiPm pm;
};

TEST_F(AcpiPmTest, SciEnAlwaysSetAndSleepEnableReadsZero)
{
    EXPECT_EQ(rd(AcpiPm::pm1a_cnt_offset, 2), AcpiPm::sci_en);
    wr(AcpiPm::pm1a_cnt_offset, 2, 0); // clearing SCI_EN has no effect
    EXPECT_EQ(rd(AcpiPm::pm1a_cnt_offset, 2), AcpiPm::sci_en);
    wr(AcpiPm::pm1a_cnt_offset, 2, 3u << 10);
    EXPECT_EQ(rd(AcpiPm::pm1a_cnt_offset, 2), (3u << 10) | AcpiPm::sci_en);
    EXPECT_EQ(power_offs, 0);
}

TEST_F(AcpiPmTest, S5CallsPowerOff)
{
    wr(AcpiPm::pm1a_cnt_offset, 2, (5u << 10) | AcpiPm::sci_en);
    EXPECT_EQ(power_offs, 0); // SLP_TYP alone does nothing
    wr(AcpiPm::pm1a_cnt_offset, 2, (5u << 10) | AcpiPm::slp_en | AcpiPm::sci_en);
    EXPECT_EQ(power_offs, 1);
    EXPECT_EQ(rd(AcpiPm::pm1a_cnt_offset, 2) & AcpiPm::slp_en, 0u);
}

TEST_F(AcpiPmTest, OtherSleepTypesSetWakeStatusAndContinue)
{
    wr(AcpiPm::pm1a_cnt_offset, 2, (1u << 10) | AcpiPm::slp_en);
    EXPECT_EQ(power_offs, 0);
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset, 2) & AcpiPm::wak_sts, AcpiPm::wak_sts);
    wr(AcpiPm::pm1a_evt_offset, 2, AcpiPm::wak_sts);
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset, 2) & AcpiPm::wak_sts, 0u);
}

TEST_F(AcpiPmTest, ResetRegister)
{
    wr(AcpiPm::reset_reg_offset, 1, 0x02);
    EXPECT_EQ(resets, 0);
    wr(AcpiPm::reset_reg_offset, 1, AcpiPm::reset_value);
    EXPECT_EQ(resets, 1);
    EXPECT_EQ(power_offs, 0);
}

TEST_F(AcpiPmTest, PowerButtonStatusEnableAndSci)
{
    // Pressed while disabled: status only.
    pm.press_power_button();
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset, 2), AcpiPm::pwrbtn_sts);
    EXPECT_TRUE(sci.levels().empty());
    EXPECT_FALSE(pm.sci_level());

    // Enabling with status pending raises the SCI.
    wr(AcpiPm::pm1a_evt_offset + 2, 2, AcpiPm::pwrbtn_en);
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset + 2, 2), AcpiPm::pwrbtn_en);
    ASSERT_EQ(sci.levels(), std::vector<bool> { true });
    EXPECT_TRUE(pm.sci_level());

    // Writing 0 leaves the status; writing 1 clears it and lowers the SCI.
    wr(AcpiPm::pm1a_evt_offset, 2, 0);
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset, 2), AcpiPm::pwrbtn_sts);
    wr(AcpiPm::pm1a_evt_offset, 2, AcpiPm::pwrbtn_sts);
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset, 2), 0u);
    EXPECT_EQ(sci.levels(), (std::vector<bool> { true, false }));

    // Pressed while enabled: SCI at once; a second press does not toggle the line again.
    pm.press_power_button();
    pm.press_power_button();
    EXPECT_EQ(sci.levels(), (std::vector<bool> { true, false, true }));
    // Disabling lowers the line but keeps the status.
    wr(AcpiPm::pm1a_evt_offset + 2, 2, 0);
    EXPECT_EQ(sci.levels(), (std::vector<bool> { true, false, true, false }));
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset, 2), AcpiPm::pwrbtn_sts);
}

TEST_F(AcpiPmTest, PmTimerRunsAt3579545Hz)
{
    EXPECT_EQ(rd(AcpiPm::pm_tmr_offset, 4), 0u);
    now_ns += 1'000'000'000;
    EXPECT_EQ(rd(AcpiPm::pm_tmr_offset, 4), 3'579'545u);
    now_ns += 500'000'000;
    EXPECT_EQ(pm.pm_timer(), 3'579'545u + 1'789'772u);
    // Writes to the timer are ignored.
    wr(AcpiPm::pm_tmr_offset, 4, 0);
    EXPECT_EQ(pm.pm_timer(), 3'579'545u + 1'789'772u);
    // It wraps at 32 bits: 2^32 ticks is about 1199.86 s.
    now_ns += 1200'000'000'000 - 1'500'000'000;
    const uint64_t ticks = 1200ull * 3'579'545u;
    EXPECT_EQ(rd(AcpiPm::pm_tmr_offset, 4), ticks & 0xffffffffu);
}

TEST_F(AcpiPmTest, TimerStatusWhenBit31TogglesAndSciIfEnabled)
{
    wr(AcpiPm::pm1a_evt_offset + 2, 2, AcpiPm::tmr_en);
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset, 2), 0u);
    // 2^31 ticks take about 599.93 s.
    now_ns += 599'000'000'000;
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset, 2), 0u);
    EXPECT_TRUE(sci.levels().empty());
    now_ns += 1'000'000'000;
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset, 2), AcpiPm::tmr_sts);
    EXPECT_EQ(sci.levels(), std::vector<bool> { true });
    wr(AcpiPm::pm1a_evt_offset, 2, AcpiPm::tmr_sts);
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset, 2), 0u);
    EXPECT_EQ(sci.levels(), (std::vector<bool> { true, false }));
    // Bit 31 toggles back (1 -> 0) at 2^32 ticks.
    now_ns += 600'000'000'000;
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset, 2), AcpiPm::tmr_sts);
}

TEST_F(AcpiPmTest, ByteWiseAccess)
{
    pm.press_power_button();
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset, 1), 0u);
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset + 1, 1), 0x01u);
    wr(AcpiPm::pm1a_evt_offset + 3, 1, 0x01); // PWRBTN_EN via the high byte
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset + 2, 2), AcpiPm::pwrbtn_en);
    EXPECT_TRUE(pm.sci_level());
    wr(AcpiPm::pm1a_evt_offset + 1, 1, 0x01); // clear PWRBTN_STS via the high byte
    EXPECT_FALSE(pm.sci_level());

    // A 32-bit read of the event block returns status and enable together.
    pm.press_power_button();
    EXPECT_EQ(rd(AcpiPm::pm1a_evt_offset, 4), 0x0100'0100u);

    // SLP_TYP and SLP_EN through the control block's high byte.
    EXPECT_EQ(rd(AcpiPm::pm1a_cnt_offset, 1), 0x01u);
    wr(AcpiPm::pm1a_cnt_offset + 1, 1, (5u << 2) | 0x20);
    EXPECT_EQ(power_offs, 1);

    now_ns += 1'000'000'000;
    uint32_t timer = 0;
    for (unsigned i = 0; i < 4; ++i)
        timer |= static_cast<uint32_t>(rd(AcpiPm::pm_tmr_offset + i, 1)) << (8 * i);
    EXPECT_EQ(timer, 3'579'545u);
}

TEST_F(AcpiPmTest, ReservedAndOutOfRangeBytesReadAllOnes)
{
    EXPECT_EQ(rd(6, 2), 0xffffu);
    EXPECT_EQ(rd(0xd, 1), 0xffu);
    EXPECT_EQ(rd(0xe, 2), 0xffffu);
    EXPECT_EQ(rd(0xc, 4), 0xffffff00u);
    EXPECT_EQ(rd(0x10, 4), 0xffffffffu);
    EXPECT_EQ(rd(~0ull - 2, 8), ~0ull);
    wr(6, 2, 0xffff);
    wr(~0ull - 2, 8, ~0ull);
    wr(0xd, 4, 0x01010101); // only reserved bytes and beyond: no reset
    EXPECT_EQ(resets, 0);
    EXPECT_EQ(power_offs, 0);
    EXPECT_EQ(rd(AcpiPm::pm1a_cnt_offset, 2), AcpiPm::sci_en);
}

} // namespace
} // namespace vmgen::vm
