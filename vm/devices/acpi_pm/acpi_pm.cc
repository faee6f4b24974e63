#include "vm/devices/acpi_pm/acpi_pm.h"

#include "support/log.h"

#include <chrono>

namespace vmgen::vm {

namespace {

constexpr uint16_t status_implemented = AcpiPm::tmr_sts | AcpiPm::pwrbtn_sts | AcpiPm::wak_sts;
constexpr uint16_t enable_implemented = AcpiPm::tmr_en | AcpiPm::pwrbtn_en;
constexpr uint16_t sci_sources = AcpiPm::tmr_sts | AcpiPm::pwrbtn_sts;
// PM1_CNT bits that are stored and read back; SCI_EN reads 1, SLP_EN and GBL_RLS are write-only.
constexpr uint16_t control_stored = AcpiPm::bm_rld | AcpiPm::slp_typ_mask;

int64_t steady_now_ns()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

uint16_t replace_byte(uint16_t reg, unsigned byte, uint8_t value)
{
    const unsigned shift = 8 * byte;
    return static_cast<uint16_t>((reg & ~(0xffu << shift)) | (static_cast<unsigned>(value) << shift));
}

} // namespace

AcpiPm::AcpiPm(LineInterrupt& sci, std::function<void()> on_power_off, std::function<void()> on_reset, Clock clock)
    : m_sci(sci)
    , m_on_power_off(std::move(on_power_off))
    , m_on_reset(std::move(on_reset))
    , m_clock(clock ? std::move(clock) : Clock(steady_now_ns))
{
    m_start_ns = m_clock();
}

uint64_t AcpiPm::timer_ticks() const
{
    const int64_t elapsed = m_clock() - m_start_ns;
    if (elapsed <= 0)
        return 0;
    const auto ns = static_cast<uint64_t>(elapsed);
    constexpr uint64_t ns_per_s = 1'000'000'000;
    // Split to keep the product in 64 bits: (ns % 1e9) * 3.58e6 < 3.6e15.
    return (ns / ns_per_s) * pm_timer_hz + (ns % ns_per_s) * pm_timer_hz / ns_per_s;
}

void AcpiPm::refresh_timer_status()
{
    const uint64_t ticks = timer_ticks();
    // TMR_STS is set each time bit 31 of the counter changes; over a long gap it may have toggled many
    // times, which still amounts to one status bit.
    if ((ticks >> 31) != (m_last_timer_ticks >> 31))
        m_status |= tmr_sts;
    m_last_timer_ticks = ticks;
    update_sci();
}

void AcpiPm::update_sci()
{
    const bool level = (m_control & sci_en) != 0 && (m_status & m_enable & sci_sources) != 0;
    if (level != m_sci_level) {
        m_sci_level = level;
        m_sci.set_level(level);
    }
}

uint32_t AcpiPm::pm_timer() const
{
    std::lock_guard lock(m_lock);
    return static_cast<uint32_t>(timer_ticks());
}

bool AcpiPm::sci_level() const
{
    std::lock_guard lock(m_lock);
    return m_sci_level;
}

void AcpiPm::press_power_button()
{
    std::lock_guard lock(m_lock);
    m_status |= pwrbtn_sts;
    update_sci();
}

bool AcpiPm::read_byte(uint64_t offset, uint32_t timer, uint8_t& out) const
{
    switch (offset) {
    case pm1a_evt_offset:
    case pm1a_evt_offset + 1:
        out = static_cast<uint8_t>(m_status >> (8 * (offset - pm1a_evt_offset)));
        return true;
    case pm1a_evt_offset + 2:
    case pm1a_evt_offset + 3:
        out = static_cast<uint8_t>(m_enable >> (8 * (offset - pm1a_evt_offset - 2)));
        return true;
    case pm1a_cnt_offset:
    case pm1a_cnt_offset + 1: {
        const auto value = static_cast<uint16_t>((m_control & control_stored) | sci_en);
        out = static_cast<uint8_t>(value >> (8 * (offset - pm1a_cnt_offset)));
        return true;
    }
    case pm_tmr_offset:
    case pm_tmr_offset + 1:
    case pm_tmr_offset + 2:
    case pm_tmr_offset + 3:
        out = static_cast<uint8_t>(timer >> (8 * (offset - pm_tmr_offset)));
        return true;
    case reset_reg_offset:
        out = 0;
        return true;
    default:
        return false;
    }
}

void AcpiPm::read(uint64_t offset, std::span<uint8_t> data)
{
    std::lock_guard lock(m_lock);
    refresh_timer_status();
    // One snapshot of the timer for the whole access, so a 32-bit read is consistent.
    const auto timer = static_cast<uint32_t>(m_last_timer_ticks);
    bool reserved = false;
    for (size_t i = 0; i < data.size(); ++i) {
        uint8_t byte = 0xff;
        if (offset > block_length || !read_byte(offset + i, timer, byte)) {
            byte = 0xff;
            reserved = true;
        }
        data[i] = byte;
    }
    if (reserved)
        log_debug("acpi-pm", "read of {} bytes at offset {:#x} touches reserved bytes", data.size(), offset);
}

void AcpiPm::write(uint64_t offset, std::span<const uint8_t> data)
{
    bool power_off = false;
    bool reset = false;
    {
        std::lock_guard lock(m_lock);
        refresh_timer_status();
        bool sleep_requested = false;
        for (size_t i = 0; i < data.size(); ++i) {
            const uint64_t at = offset + i;
            const uint8_t byte = data[i];
            if (offset > block_length || at >= block_length) {
                log_debug("acpi-pm", "write {:#04x} past the block at offset {:#x} ignored", byte, at);
                continue;
            }
            switch (at) {
            case pm1a_evt_offset:
            case pm1a_evt_offset + 1: {
                const unsigned shift = 8 * static_cast<unsigned>(at - pm1a_evt_offset);
                const auto clear = static_cast<uint16_t>((static_cast<unsigned>(byte) << shift) & status_implemented);
                m_status = static_cast<uint16_t>(m_status & ~clear);
                break;
            }
            case pm1a_evt_offset + 2:
            case pm1a_evt_offset + 3:
                m_enable = static_cast<uint16_t>(
                    replace_byte(m_enable, static_cast<unsigned>(at - pm1a_evt_offset - 2), byte) & enable_implemented);
                break;
            case pm1a_cnt_offset:
            case pm1a_cnt_offset + 1: {
                const auto which = static_cast<unsigned>(at - pm1a_cnt_offset);
                const uint16_t written = replace_byte(m_control, which, byte);
                if (which == 1 && (written & slp_en) != 0)
                    sleep_requested = true;
                m_control = static_cast<uint16_t>((written & control_stored) | sci_en);
                break;
            }
            case reset_reg_offset:
                if (byte == reset_value)
                    reset = true;
                else
                    log_debug("acpi-pm", "reset register write {:#04x} ignored", byte);
                break;
            default:
                log_debug("acpi-pm", "write {:#04x} to read-only or reserved offset {:#x} ignored", byte, at);
                break;
            }
        }
        if (sleep_requested) {
            const auto type = static_cast<unsigned>((m_control & slp_typ_mask) >> slp_typ_shift);
            if (type == s5_sleep_type) {
                log_info("acpi-pm", "guest entered S5 (soft off)");
                power_off = true;
            } else {
                // Warn once; a guest retrying in a loop is only logged at debug level.
                if (!m_warned_sleep) {
                    m_warned_sleep = true;
                    log_warn("acpi-pm", "sleep type {} is not supported (only S5); waking at once", type);
                } else {
                    log_debug("acpi-pm", "sleep type {} is not supported (only S5); waking at once", type);
                }
                m_status |= wak_sts;
            }
        }
        update_sci();
    }
    if (power_off && m_on_power_off)
        m_on_power_off();
    if (reset) {
        log_info("acpi-pm", "guest requested a reset through the ACPI reset register");
        if (m_on_reset)
            m_on_reset();
    }
}

} // namespace vmgen::vm
