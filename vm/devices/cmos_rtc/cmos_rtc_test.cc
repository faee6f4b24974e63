#include "vm/devices/cmos_rtc/cmos_rtc.h"
#include "vm/io/recording_line.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <mutex>
#include <vector>

namespace vmgen::vm {
namespace {

using FakeLine = RecordingLine;

constexpr int64_t ns_per_s = 1'000'000'000;
// 2024-03-09 (a Saturday) 15:42:07 UTC.
constexpr int64_t base_seconds = 1'709'998'927;

class CmosRtcTest : public ::testing::Test {
protected:
    CmosRtcTest()
        : rtc(line, [this] { return now_ns.load(); })
    {
    }

    uint8_t reg(uint8_t index)
    {
        const std::array<uint8_t, 1> i { index };
        rtc.write(0, i);
        std::array<uint8_t, 1> v {};
        rtc.read(1, v);
        return v[0];
    }
    void set_reg(uint8_t index, uint8_t value)
    {
        const std::array<uint8_t, 1> i { index };
        rtc.write(0, i);
        const std::array<uint8_t, 1> v { value };
        rtc.write(1, v);
    }
    void advance(int64_t ns) { now_ns.fetch_add(ns); }

    std::atomic<int64_t> now_ns { base_seconds * ns_per_s + 100'000'000 }; // .1 s into the second
    FakeLine line;
    CmosRtc rtc;
};

TEST_F(CmosRtcTest, BcdTwentyFourHourByDefault)
{
    EXPECT_EQ(reg(CmosRtc::reg_b), CmosRtc::b_24h);
    EXPECT_EQ(reg(CmosRtc::reg_seconds), 0x07);
    EXPECT_EQ(reg(CmosRtc::reg_minutes), 0x42);
    EXPECT_EQ(reg(CmosRtc::reg_hours), 0x15);
    EXPECT_EQ(reg(CmosRtc::reg_day_of_week), 0x07); // Saturday
    EXPECT_EQ(reg(CmosRtc::reg_day_of_month), 0x09);
    EXPECT_EQ(reg(CmosRtc::reg_month), 0x03);
    EXPECT_EQ(reg(CmosRtc::reg_year), 0x24);
    EXPECT_EQ(reg(CmosRtc::reg_century), 0x20);
    EXPECT_EQ(reg(CmosRtc::reg_d), CmosRtc::d_vrt);
    EXPECT_EQ(reg(CmosRtc::reg_a), 0x26);
}

TEST_F(CmosRtcTest, BinaryMode)
{
    set_reg(CmosRtc::reg_b, CmosRtc::b_24h | CmosRtc::b_binary);
    EXPECT_EQ(reg(CmosRtc::reg_seconds), 7);
    EXPECT_EQ(reg(CmosRtc::reg_minutes), 42);
    EXPECT_EQ(reg(CmosRtc::reg_hours), 15);
    EXPECT_EQ(reg(CmosRtc::reg_year), 24);
    EXPECT_EQ(reg(CmosRtc::reg_century), 20);
}

TEST_F(CmosRtcTest, TwelveHourModeSetsPmBit)
{
    set_reg(CmosRtc::reg_b, 0); // BCD, 12-hour
    EXPECT_EQ(reg(CmosRtc::reg_hours), 0x83); // 3 PM
    set_reg(CmosRtc::reg_b, CmosRtc::b_binary);
    EXPECT_EQ(reg(CmosRtc::reg_hours), 0x83);
    // Midnight is 12 AM, noon is 12 PM.
    now_ns = (base_seconds - 15 * 3600) * ns_per_s;
    EXPECT_EQ(reg(CmosRtc::reg_hours), 12);
    now_ns = (base_seconds - 3 * 3600) * ns_per_s;
    EXPECT_EQ(reg(CmosRtc::reg_hours), 0x8c);
}

TEST_F(CmosRtcTest, UpdateInProgressDuringLast244Microseconds)
{
    EXPECT_EQ(reg(CmosRtc::reg_a) & CmosRtc::a_uip, 0);
    now_ns = (base_seconds + 1) * ns_per_s - 245'000;
    EXPECT_EQ(reg(CmosRtc::reg_a) & CmosRtc::a_uip, 0);
    now_ns = (base_seconds + 1) * ns_per_s - 243'000;
    EXPECT_EQ(reg(CmosRtc::reg_a) & CmosRtc::a_uip, CmosRtc::a_uip);
    now_ns = (base_seconds + 1) * ns_per_s;
    EXPECT_EQ(reg(CmosRtc::reg_a) & CmosRtc::a_uip, 0);
    // No updates while SET: UIP stays clear.
    set_reg(CmosRtc::reg_b, CmosRtc::b_24h | CmosRtc::b_set);
    now_ns = (base_seconds + 2) * ns_per_s - 100'000;
    EXPECT_EQ(reg(CmosRtc::reg_a) & CmosRtc::a_uip, 0);
    // UIP is read-only.
    set_reg(CmosRtc::reg_a, 0xa6);
    EXPECT_EQ(reg(CmosRtc::reg_a), 0x26);
}

TEST_F(CmosRtcTest, SetFreezesAndGuestTimePersistsAsOffset)
{
    set_reg(CmosRtc::reg_b, CmosRtc::b_24h | CmosRtc::b_set);
    advance(5 * ns_per_s);
    EXPECT_EQ(reg(CmosRtc::reg_seconds), 0x07); // frozen
    // Guest sets 1999-12-31 23:59:58.
    set_reg(CmosRtc::reg_seconds, 0x58);
    set_reg(CmosRtc::reg_minutes, 0x59);
    set_reg(CmosRtc::reg_hours, 0x23);
    set_reg(CmosRtc::reg_day_of_month, 0x31);
    set_reg(CmosRtc::reg_month, 0x12);
    set_reg(CmosRtc::reg_year, 0x99);
    set_reg(CmosRtc::reg_century, 0x19);
    advance(10 * ns_per_s);
    EXPECT_EQ(reg(CmosRtc::reg_seconds), 0x58); // still frozen, reads back what was written
    set_reg(CmosRtc::reg_b, CmosRtc::b_24h);
    EXPECT_EQ(reg(CmosRtc::reg_seconds), 0x58);
    advance(3 * ns_per_s);
    EXPECT_EQ(reg(CmosRtc::reg_seconds), 0x01);
    EXPECT_EQ(reg(CmosRtc::reg_minutes), 0x00);
    EXPECT_EQ(reg(CmosRtc::reg_hours), 0x00);
    EXPECT_EQ(reg(CmosRtc::reg_day_of_month), 0x01);
    EXPECT_EQ(reg(CmosRtc::reg_month), 0x01);
    EXPECT_EQ(reg(CmosRtc::reg_year), 0x00);
    EXPECT_EQ(reg(CmosRtc::reg_century), 0x20);
    EXPECT_EQ(reg(CmosRtc::reg_day_of_week), 0x07); // 2000-01-01 was a Saturday
    // The offset follows the host clock from then on.
    advance(3600 * ns_per_s);
    EXPECT_EQ(reg(CmosRtc::reg_hours), 0x01);
    EXPECT_EQ(reg(CmosRtc::reg_seconds), 0x01);
}

TEST_F(CmosRtcTest, SetClearsUpdateInterruptEnable)
{
    set_reg(CmosRtc::reg_b, CmosRtc::b_24h | CmosRtc::b_uie);
    EXPECT_EQ(reg(CmosRtc::reg_b), CmosRtc::b_24h | CmosRtc::b_uie);
    set_reg(CmosRtc::reg_b, CmosRtc::b_24h | CmosRtc::b_uie | CmosRtc::b_set);
    EXPECT_EQ(reg(CmosRtc::reg_b), CmosRtc::b_24h | CmosRtc::b_set);
}

TEST_F(CmosRtcTest, WritingTimeWhileRunningAdjustsOffset)
{
    set_reg(CmosRtc::reg_minutes, 0x10);
    EXPECT_EQ(reg(CmosRtc::reg_minutes), 0x10);
    EXPECT_EQ(reg(CmosRtc::reg_hours), 0x15);
    advance(60 * ns_per_s);
    EXPECT_EQ(reg(CmosRtc::reg_minutes), 0x11);
    EXPECT_EQ(reg(CmosRtc::reg_seconds), 0x07);
}

TEST_F(CmosRtcTest, RegisterCReadClearsAndLowersLine)
{
    set_reg(CmosRtc::reg_b, CmosRtc::b_24h | CmosRtc::b_uie);
    EXPECT_EQ(reg(CmosRtc::reg_c), 0);
    advance(ns_per_s);
    rtc.poll();
    EXPECT_TRUE(line.high());
    // PF is set too (the default 1024 Hz rate runs) but PIE is clear.
    EXPECT_EQ(rtc.cmos_byte(CmosRtc::reg_c), CmosRtc::c_irqf | CmosRtc::c_pf | CmosRtc::c_uf);
    const uint8_t c = reg(CmosRtc::reg_c);
    EXPECT_EQ(c & (CmosRtc::c_irqf | CmosRtc::c_uf), CmosRtc::c_irqf | CmosRtc::c_uf);
    EXPECT_FALSE(line.high());
    EXPECT_EQ(reg(CmosRtc::reg_c), 0);
    const auto levels = line.levels();
    ASSERT_EQ(levels.size(), 2u);
    EXPECT_TRUE(levels[0]);
    EXPECT_FALSE(levels[1]);
    // Register C is read-only.
    set_reg(CmosRtc::reg_c, 0xff);
    EXPECT_EQ(reg(CmosRtc::reg_c), 0);
}

TEST_F(CmosRtcTest, FlagsSetWithoutEnablesButNoInterrupt)
{
    advance(ns_per_s);
    EXPECT_EQ(reg(CmosRtc::reg_c), CmosRtc::c_pf | CmosRtc::c_uf);
    EXPECT_TRUE(line.levels().empty());
}

TEST_F(CmosRtcTest, AlarmInterrupt)
{
    set_reg(CmosRtc::reg_hours_alarm, 0x15);
    set_reg(CmosRtc::reg_minutes_alarm, 0x42);
    set_reg(CmosRtc::reg_seconds_alarm, 0x10);
    set_reg(CmosRtc::reg_b, CmosRtc::b_24h | CmosRtc::b_aie);
    (void)reg(CmosRtc::reg_c);
    advance(2 * ns_per_s); // 15:42:09
    EXPECT_EQ(reg(CmosRtc::reg_c) & CmosRtc::c_af, 0);
    EXPECT_FALSE(line.high());
    advance(ns_per_s); // 15:42:10
    rtc.poll();
    EXPECT_TRUE(line.high());
    EXPECT_EQ(reg(CmosRtc::reg_c), CmosRtc::c_irqf | CmosRtc::c_pf | CmosRtc::c_af | CmosRtc::c_uf);
    EXPECT_FALSE(line.high());
    advance(ns_per_s);
    EXPECT_EQ(reg(CmosRtc::reg_c) & CmosRtc::c_af, 0);
}

TEST_F(CmosRtcTest, AlarmDontCareMatchesEveryMinute)
{
    set_reg(CmosRtc::reg_hours_alarm, 0xc0);
    set_reg(CmosRtc::reg_minutes_alarm, 0xff);
    set_reg(CmosRtc::reg_seconds_alarm, 0x30);
    (void)reg(CmosRtc::reg_c);
    advance(10 * ns_per_s); // 15:42:17
    EXPECT_EQ(reg(CmosRtc::reg_c) & CmosRtc::c_af, 0);
    // A long gap without accesses still finds the match (15:43:30 passed).
    advance(120 * ns_per_s);
    EXPECT_EQ(reg(CmosRtc::reg_c) & CmosRtc::c_af, CmosRtc::c_af);
    EXPECT_TRUE(line.levels().empty()); // AIE clear
}

TEST_F(CmosRtcTest, PeriodicFlagAtRegisterARate)
{
    set_reg(CmosRtc::reg_a, 0x2f); // 2 Hz
    (void)reg(CmosRtc::reg_c);
    now_ns = base_seconds * ns_per_s + 400'000'000;
    EXPECT_EQ(reg(CmosRtc::reg_c) & CmosRtc::c_pf, 0);
    now_ns = base_seconds * ns_per_s + 500'000'000;
    EXPECT_EQ(reg(CmosRtc::reg_c) & CmosRtc::c_pf, CmosRtc::c_pf);
    now_ns = base_seconds * ns_per_s + 900'000'000;
    EXPECT_EQ(reg(CmosRtc::reg_c) & CmosRtc::c_pf, 0);

    // Rate 0 disables the periodic flag.
    set_reg(CmosRtc::reg_a, 0x20);
    advance(ns_per_s);
    EXPECT_EQ(reg(CmosRtc::reg_c) & CmosRtc::c_pf, 0);

    // 1024 Hz with PIE: the line rises.
    set_reg(CmosRtc::reg_a, 0x26);
    set_reg(CmosRtc::reg_b, CmosRtc::b_24h | CmosRtc::b_pie);
    advance(1'000'000);
    rtc.poll();
    EXPECT_TRUE(line.high());
    EXPECT_EQ(reg(CmosRtc::reg_c) & (CmosRtc::c_irqf | CmosRtc::c_pf), CmosRtc::c_irqf | CmosRtc::c_pf);
}

TEST_F(CmosRtcTest, TimerThreadRaisesInterruptsOnItsOwn)
{
    // With the real clock the thread alone must raise the periodic interrupt.
    FakeLine real_line;
    CmosRtc real(real_line);
    const std::array<uint8_t, 2> index_and_data { CmosRtc::reg_b, CmosRtc::b_24h | CmosRtc::b_pie };
    real.write(0, index_and_data); // outw: index then data
    for (int i = 0; i < 2000 && !real_line.high(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_TRUE(real_line.high());
}

TEST_F(CmosRtcTest, CmosRamAndIndexPort)
{
    set_reg(0x40, 0x5a);
    EXPECT_EQ(reg(0x40), 0x5a);
    // Bit 7 of the index (NMI mask) is ignored.
    set_reg(0xc0, 0xa5);
    EXPECT_EQ(reg(0x40), 0xa5);
    std::array<uint8_t, 1> b {};
    rtc.read(0, b);
    EXPECT_EQ(b[0], 0xff);
    rtc.read(2, b);
    EXPECT_EQ(b[0], 0xff);
    std::array<uint8_t, 4> wide {};
    rtc.read(~0ull - 1, wide);
    EXPECT_EQ(io_value(wide), 0xffffffffu);
    const std::array<uint8_t, 4> junk { 1, 2, 3, 4 };
    rtc.write(~0ull - 1, junk);
    EXPECT_EQ(reg(0x40), 0xa5);
}

TEST_F(CmosRtcTest, MemorySizeFields)
{
    rtc.set_memory_size(3ull << 30, 5ull << 30);
    EXPECT_EQ(rtc.cmos_byte(0x15), 0x80);
    EXPECT_EQ(rtc.cmos_byte(0x16), 0x02);
    EXPECT_EQ(rtc.cmos_byte(0x17), 0xff);
    EXPECT_EQ(rtc.cmos_byte(0x18), 0xff);
    EXPECT_EQ(rtc.cmos_byte(0x30), 0xff);
    EXPECT_EQ(rtc.cmos_byte(0x31), 0xff);
    const uint64_t above_16m = ((3ull << 30) - (16ull << 20)) >> 16; // 0xbf00
    EXPECT_EQ(rtc.cmos_byte(0x34), static_cast<uint8_t>(above_16m));
    EXPECT_EQ(rtc.cmos_byte(0x35), static_cast<uint8_t>(above_16m >> 8));
    const uint64_t above_4g = (5ull << 30) >> 16; // 0x14000
    EXPECT_EQ(rtc.cmos_byte(0x5b), static_cast<uint8_t>(above_4g));
    EXPECT_EQ(rtc.cmos_byte(0x5c), static_cast<uint8_t>(above_4g >> 8));
    EXPECT_EQ(rtc.cmos_byte(0x5d), static_cast<uint8_t>(above_4g >> 16));

    rtc.set_memory_size(32ull << 20, 0);
    EXPECT_EQ(rtc.cmos_byte(0x17) | (rtc.cmos_byte(0x18) << 8), 31 * 1024);
    EXPECT_EQ(rtc.cmos_byte(0x34) | (rtc.cmos_byte(0x35) << 8), 256);
    EXPECT_EQ(rtc.cmos_byte(0x5b) | (rtc.cmos_byte(0x5c) << 8) | (rtc.cmos_byte(0x5d) << 16), 0);

    // Clock registers cannot be overwritten this way.
    rtc.set_cmos_byte(CmosRtc::reg_b, 0xff);
    EXPECT_EQ(rtc.cmos_byte(CmosRtc::reg_b), CmosRtc::b_24h);
}

} // namespace
} // namespace vmgen::vm
