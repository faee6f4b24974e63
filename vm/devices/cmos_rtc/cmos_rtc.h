// CmosRtc: the Motorola MC146818A real-time clock with its 128 bytes of CMOS RAM, as on the PC/AT at I/O
// ports 0x70 (index; bit 7 is the NMI mask, ignored) and 0x71 (data) (Motorola "MC146818A Real-Time Clock
// Plus RAM (RTC)" datasheet). The time (registers 0x00-0x09 and the century byte 0x32, the "century"
// field of the ACPI FADT) follows a host UTC clock plus an offset that the guest sets by writing the
// time. Registers:
//   0x0A A: UIP (read-only, set during the last 244 us of each second), DV2-0 divider, RS3-0 rate
//   0x0B B: SET (halts updates; the guest writes the time), PIE, AIE, UIE, SQWE, DM (binary), 24/12, DSE
//   0x0C C: IRQF, PF, AF, UF; read-only, cleared by reading (which lowers the interrupt line)
//   0x0D D: VRT (always 0x80)
// The interrupt output (IRQ 8) is high while IRQF is set. A timer thread owned by the device wakes for
// the next enabled event (periodic tick, update-ended, alarm); flags are also brought up to date lazily
// on every access, so they are right even when no interrupt is enabled.
#pragma once

#include "vm/io/io_handler.h"
#include "vm/io/line_interrupt.h"

#include <array>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace vmgen::vm {

class CmosRtc final : public IoHandler {
public:
    static constexpr uint16_t default_port = 0x70;
    static constexpr uint16_t port_count = 2;
    static constexpr unsigned cmos_size = 128;

    // Register indices.
    static constexpr uint8_t reg_seconds = 0x00;
    static constexpr uint8_t reg_seconds_alarm = 0x01;
    static constexpr uint8_t reg_minutes = 0x02;
    static constexpr uint8_t reg_minutes_alarm = 0x03;
    static constexpr uint8_t reg_hours = 0x04;
    static constexpr uint8_t reg_hours_alarm = 0x05;
    static constexpr uint8_t reg_day_of_week = 0x06;
    static constexpr uint8_t reg_day_of_month = 0x07;
    static constexpr uint8_t reg_month = 0x08;
    static constexpr uint8_t reg_year = 0x09;
    static constexpr uint8_t reg_a = 0x0a;
    static constexpr uint8_t reg_b = 0x0b;
    static constexpr uint8_t reg_c = 0x0c;
    static constexpr uint8_t reg_d = 0x0d;
    static constexpr uint8_t reg_century = 0x32;

    // Register A.
    static constexpr uint8_t a_uip = 0x80;
    static constexpr uint8_t a_divider_mask = 0x70;
    static constexpr uint8_t a_divider_normal = 0x20; // 32.768 kHz time base, running
    static constexpr uint8_t a_rate_mask = 0x0f;
    // Register B.
    static constexpr uint8_t b_set = 0x80;
    static constexpr uint8_t b_pie = 0x40;
    static constexpr uint8_t b_aie = 0x20;
    static constexpr uint8_t b_uie = 0x10;
    static constexpr uint8_t b_sqwe = 0x08;
    static constexpr uint8_t b_binary = 0x04;
    static constexpr uint8_t b_24h = 0x02;
    static constexpr uint8_t b_dse = 0x01;
    // Register C.
    static constexpr uint8_t c_irqf = 0x80;
    static constexpr uint8_t c_pf = 0x40;
    static constexpr uint8_t c_af = 0x20;
    static constexpr uint8_t c_uf = 0x10;
    // Register D.
    static constexpr uint8_t d_vrt = 0x80;

    static constexpr int64_t uip_window_ns = 244'000;

    // UTC time in nanoseconds since the Unix epoch.
    using Clock = std::function<int64_t()>;

    // `irq` must outlive the device. An empty `clock` uses std::chrono::system_clock. Starts the timer
    // thread; the destructor stops and joins it.
    explicit CmosRtc(LineInterrupt& irq, Clock clock = {});
    ~CmosRtc() override;
    CmosRtc(const CmosRtc&) = delete;
    CmosRtc& operator=(const CmosRtc&) = delete;

    [[nodiscard]] std::string_view name() const override { return "cmos-rtc"; }
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // Sets a byte of CMOS RAM (for the machine: memory sizes, boot flags). Indices 0x00-0x0D and 0x32
    // are clock registers and are refused with a warning; indices >= 128 are ignored with a warning.
    void set_cmos_byte(uint8_t index, uint8_t value);
    // The byte the guest would read at `index` (clock registers included, register C not cleared).
    [[nodiscard]] uint8_t cmos_byte(uint8_t index) const;
    // Fills the memory size bytes the PC BIOS convention defines, from the RAM below 4 GiB (starting at
    // address 0) and above 4 GiB: 0x15/0x16 base memory (640 KiB), 0x17/0x18 and 0x30/0x31 KiB above
    // 1 MiB (at most 0xFFFF), 0x34/0x35 64 KiB units above 16 MiB, 0x5B-0x5D 64 KiB units above 4 GiB.
    void set_memory_size(uint64_t low_bytes, uint64_t high_bytes);

    // Brings flags and the interrupt line up to date with the clock. The timer thread calls it; tests
    // with a fake clock call it after advancing the clock.
    void poll();

private:
    struct Time {
        int year = 1970; // full year
        unsigned month = 1, day = 1, hour = 0, minute = 0, second = 0;
        unsigned weekday = 5; // 1 = Sunday
    };

    [[nodiscard]] static Time time_from_seconds(int64_t epoch_seconds);
    [[nodiscard]] static int64_t seconds_from_time(const Time& t);

    // All below: caller holds m_lock.
    [[nodiscard]] int64_t rtc_now_ns() const;
    [[nodiscard]] bool updates_halted() const;
    [[nodiscard]] bool periodic_running() const;
    [[nodiscard]] int64_t periodic_hz() const;
    [[nodiscard]] uint8_t encode(unsigned value) const;
    [[nodiscard]] unsigned decode(uint8_t value) const;
    [[nodiscard]] uint8_t encode_hour(unsigned hour24) const;
    [[nodiscard]] unsigned decode_hour(uint8_t value) const;
    [[nodiscard]] uint8_t time_register(const Time& t, uint8_t index) const;
    [[nodiscard]] Time time_from_registers() const;
    [[nodiscard]] bool alarm_matches(const Time& t) const;
    [[nodiscard]] uint8_t read_register(uint8_t index) const;
    void write_register(uint8_t index, uint8_t value);
    void write_time_register(uint8_t index, uint8_t value);
    void freeze_time();
    void resume_time();
    void evaluate();
    void update_irq();
    [[nodiscard]] int64_t next_event_ns() const; // host clock time of the next enabled event, or -1
    void timer_loop();

    LineInterrupt& m_irq;
    Clock m_clock;

    mutable std::mutex m_lock;
    std::condition_variable m_wake;
    bool m_stop = false;
    bool m_config_changed = false;

    std::array<uint8_t, cmos_size> m_cmos {};
    uint8_t m_index = 0;
    int64_t m_offset_ns = 0; // RTC time = host clock + offset
    int64_t m_last_eval_ns = 0; // RTC time flags were last brought up to date at
    bool m_line_high = false;

    std::thread m_thread; // last: starts after everything else is initialised
};

} // namespace vmgen::vm
