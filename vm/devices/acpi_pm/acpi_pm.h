// AcpiPm: the ACPI fixed-hardware power management registers (ACPI Specification 6.5, chapter 4.8
// "ACPI Hardware Features": PM1 event/control blocks, PM timer, reset register), as one 16-byte I/O block:
//   +0x0 PM1a_EVT_BLK: PM1_STS (16-bit, write 1 to clear), +0x2 PM1_EN (16-bit)
//   +0x4 PM1a_CNT_BLK: PM1_CNT (16-bit): SCI_EN (always 1: no SMI command port, always in ACPI mode),
//        BM_RLD, SLP_TYP (12:10), SLP_EN (13, write-only)
//   +0x8 PM_TMR_BLK:   32-bit free-running counter at 3.579545 MHz
//   +0xC RESET_REG:    8-bit; writing reset_value resets the machine
// Byte accesses to any register byte are accepted; reserved bytes read all ones.
//
// The SCI is a level line, high while PM1_STS & PM1_EN has TMR or PWRBTN set. TMR_STS (the timer's
// bit 31 toggled) is computed lazily when the block is accessed. Thread safe; the power-off and reset
// callbacks run without the device lock held.
#pragma once

#include "vm/io/io_handler.h"
#include "vm/io/line_interrupt.h"

#include <cstdint>
#include <functional>
#include <mutex>

namespace vmgen::vm {

class AcpiPm final : public IoHandler {
public:
    static constexpr uint16_t pm1a_evt_offset = 0;
    static constexpr uint16_t pm1a_cnt_offset = 4;
    static constexpr uint16_t pm_tmr_offset = 8;
    static constexpr uint16_t reset_reg_offset = 0xc;
    static constexpr uint16_t block_length = 0x10;
    static constexpr uint8_t reset_value = 1;
    static constexpr uint8_t s5_sleep_type = 5;

    static constexpr uint64_t pm_timer_hz = 3'579'545;

    // PM1_STS / PM1_EN bits.
    static constexpr uint16_t tmr_sts = 1u << 0;
    static constexpr uint16_t pwrbtn_sts = 1u << 8;
    static constexpr uint16_t wak_sts = 1u << 15;
    static constexpr uint16_t tmr_en = 1u << 0;
    static constexpr uint16_t pwrbtn_en = 1u << 8;
    // PM1_CNT bits.
    static constexpr uint16_t sci_en = 1u << 0;
    static constexpr uint16_t bm_rld = 1u << 1;
    static constexpr uint16_t gbl_rls = 1u << 2;
    static constexpr unsigned slp_typ_shift = 10;
    static constexpr uint16_t slp_typ_mask = 0x7u << slp_typ_shift;
    static constexpr uint16_t slp_en = 1u << 13;

    // A monotonic clock in nanoseconds.
    using Clock = std::function<int64_t()>;

    // `sci` must outlive the device. An empty `clock` uses std::chrono::steady_clock. The PM timer
    // counts from 0 at construction.
    AcpiPm(LineInterrupt& sci, std::function<void()> on_power_off, std::function<void()> on_reset, Clock clock = {});

    [[nodiscard]] std::string_view name() const override { return "acpi-pm"; }
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // The power button was pressed: sets PWRBTN_STS and raises the SCI if PWRBTN_EN.
    void press_power_button();

    [[nodiscard]] uint32_t pm_timer() const;
    [[nodiscard]] bool sci_level() const;

private:
    [[nodiscard]] uint64_t timer_ticks() const; // caller holds m_lock
    void refresh_timer_status(); // caller holds m_lock
    void update_sci(); // caller holds m_lock
    // Reads one byte of the block, or returns false for a reserved byte.
    [[nodiscard]] bool read_byte(uint64_t offset, uint32_t timer, uint8_t& out) const;

    LineInterrupt& m_sci;
    std::function<void()> m_on_power_off;
    std::function<void()> m_on_reset;
    Clock m_clock;
    int64_t m_start_ns = 0;

    mutable std::mutex m_lock;
    uint16_t m_status = 0;
    uint16_t m_enable = 0;
    uint16_t m_control = sci_en;
    uint64_t m_last_timer_ticks = 0;
    bool m_sci_level = false;
    bool m_warned_sleep = false;
};

} // namespace vmgen::vm
