#include "vm/devices/cmos_rtc/cmos_rtc.h"

#include "support/log.h"
#include "support/thread_name.h"

#include <algorithm>
#include <chrono>

namespace vmgen::vm {

namespace {

constexpr int64_t ns_per_s = 1'000'000'000;
constexpr int64_t s_per_day = 86'400;
// Guest-set years are kept where nanoseconds since 1970 fit in 64 bits.
constexpr int min_year = 1900;
constexpr int max_year = 2199;

int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if (a % b != 0 && a < 0)
        --q;
    return q;
}

// Index of the periodic tick (of `hz` per second) that RTC time `ns` falls in.
int64_t tick_index(int64_t ns, int64_t hz)
{
    const int64_t sec = floor_div(ns, ns_per_s);
    const int64_t rem = ns - sec * ns_per_s;
    return sec * hz + rem * hz / ns_per_s;
}

// RTC time of the start of tick `index`, rounded up so that tick_index() of it is `index`.
int64_t tick_start(int64_t index, int64_t hz)
{
    const int64_t sec = floor_div(index, hz);
    const int64_t part = index - sec * hz;
    return sec * ns_per_s + (part * ns_per_s + hz - 1) / hz;
}

int64_t system_now_ns()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool is_time_register(uint8_t index)
{
    switch (index) {
    case CmosRtc::reg_seconds:
    case CmosRtc::reg_minutes:
    case CmosRtc::reg_hours:
    case CmosRtc::reg_day_of_week:
    case CmosRtc::reg_day_of_month:
    case CmosRtc::reg_month:
    case CmosRtc::reg_year:
    case CmosRtc::reg_century:
        return true;
    default:
        return false;
    }
}

bool alarm_dont_care(uint8_t value)
{
    return (value & 0xc0) == 0xc0;
}

} // namespace

CmosRtc::CmosRtc(LineInterrupt& irq, Clock clock)
    : m_irq(irq)
    , m_clock(clock ? std::move(clock) : Clock(system_now_ns))
{
    m_cmos[reg_a] = a_divider_normal | 0x06; // 32.768 kHz time base, 1024 Hz periodic rate
    m_cmos[reg_b] = b_24h; // BCD, 24-hour
    m_last_eval_ns = rtc_now_ns();
    m_thread = std::thread([this] {
        set_thread_name("rtc");
        timer_loop();
    });
}

CmosRtc::~CmosRtc()
{
    {
        std::lock_guard lock(m_lock);
        m_stop = true;
    }
    m_wake.notify_all();
    m_thread.join();
}

CmosRtc::Time CmosRtc::time_from_seconds(int64_t epoch_seconds)
{
    using namespace std::chrono;
    const int64_t days_since_epoch = floor_div(epoch_seconds, s_per_day);
    const auto secs_of_day = static_cast<unsigned>(epoch_seconds - days_since_epoch * s_per_day);
    const sys_days date { days { days_since_epoch } };
    const year_month_day ymd { date };
    Time t;
    t.year = static_cast<int>(ymd.year());
    t.month = static_cast<unsigned>(ymd.month());
    t.day = static_cast<unsigned>(ymd.day());
    t.hour = secs_of_day / 3600;
    t.minute = secs_of_day / 60 % 60;
    t.second = secs_of_day % 60;
    t.weekday = weekday { date }.c_encoding() + 1;
    return t;
}

int64_t CmosRtc::seconds_from_time(const Time& t)
{
    using namespace std::chrono;
    const int y = std::clamp(t.year, min_year, max_year);
    const unsigned m = std::clamp(t.month, 1u, 12u);
    const unsigned d = std::clamp(t.day, 1u, 31u);
    if (y != t.year || m != t.month || d != t.day || t.hour > 23 || t.minute > 59 || t.second > 59)
        log_debug("cmos-rtc", "guest time {}-{}-{} {}:{}:{} out of range, clamped", t.year, t.month, t.day, t.hour,
            t.minute, t.second);
    // An invalid day (Feb 31) counts on from the first of the month, as year_month_day conversion defines.
    const sys_days date { year { y } / month { m } / day { d } };
    const int64_t day_count = date.time_since_epoch().count();
    const auto hour = static_cast<int64_t>(std::min(t.hour, 23u));
    const auto minute = static_cast<int64_t>(std::min(t.minute, 59u));
    const auto second = static_cast<int64_t>(std::min(t.second, 59u));
    return day_count * s_per_day + hour * 3600 + minute * 60 + second;
}

int64_t CmosRtc::rtc_now_ns() const
{
    return m_clock() + m_offset_ns;
}

bool CmosRtc::updates_halted() const
{
    return (m_cmos[reg_b] & b_set) != 0 || (m_cmos[reg_a] & a_divider_mask) != a_divider_normal;
}

bool CmosRtc::periodic_running() const
{
    return (m_cmos[reg_a] & a_divider_mask) == a_divider_normal && (m_cmos[reg_a] & a_rate_mask) != 0;
}

int64_t CmosRtc::periodic_hz() const
{
    // With the 32.768 kHz time base: rate 1 and 2 give 256 and 128 Hz, rate n >= 3 gives 65536 >> n Hz.
    const unsigned rate = m_cmos[reg_a] & a_rate_mask;
    if (rate == 0)
        return 0;
    if (rate <= 2)
        return 512 >> rate;
    return int64_t { 65536 } >> rate;
}

uint8_t CmosRtc::encode(unsigned value) const
{
    if ((m_cmos[reg_b] & b_binary) != 0)
        return static_cast<uint8_t>(value);
    return static_cast<uint8_t>(((value / 10 % 10) << 4) | (value % 10));
}

unsigned CmosRtc::decode(uint8_t value) const
{
    if ((m_cmos[reg_b] & b_binary) != 0)
        return value;
    return (value >> 4) * 10u + (value & 0xfu);
}

uint8_t CmosRtc::encode_hour(unsigned hour24) const
{
    if ((m_cmos[reg_b] & b_24h) != 0)
        return encode(hour24);
    const bool pm = hour24 >= 12;
    const unsigned hour12 = hour24 % 12 == 0 ? 12 : hour24 % 12;
    return static_cast<uint8_t>(encode(hour12) | (pm ? 0x80 : 0x00));
}

unsigned CmosRtc::decode_hour(uint8_t value) const
{
    if ((m_cmos[reg_b] & b_24h) != 0)
        return decode(value);
    const bool pm = (value & 0x80) != 0;
    const unsigned hour12 = decode(static_cast<uint8_t>(value & 0x7f));
    return hour12 % 12 + (pm ? 12 : 0);
}

uint8_t CmosRtc::time_register(const Time& t, uint8_t index) const
{
    switch (index) {
    case reg_seconds:
        return encode(t.second);
    case reg_minutes:
        return encode(t.minute);
    case reg_hours:
        return encode_hour(t.hour);
    case reg_day_of_week:
        return encode(t.weekday);
    case reg_day_of_month:
        return encode(t.day);
    case reg_month:
        return encode(t.month);
    case reg_year:
        return encode(static_cast<unsigned>(t.year % 100));
    case reg_century:
        return encode(static_cast<unsigned>(t.year / 100));
    default:
        return 0xff;
    }
}

CmosRtc::Time CmosRtc::time_from_registers() const
{
    Time t;
    t.second = decode(m_cmos[reg_seconds]);
    t.minute = decode(m_cmos[reg_minutes]);
    t.hour = decode_hour(m_cmos[reg_hours]);
    t.day = decode(m_cmos[reg_day_of_month]);
    t.month = decode(m_cmos[reg_month]);
    t.year = static_cast<int>(decode(m_cmos[reg_century]) * 100 + decode(m_cmos[reg_year]));
    return t;
}

bool CmosRtc::alarm_matches(const Time& t) const
{
    const uint8_t sec = m_cmos[reg_seconds_alarm];
    const uint8_t min = m_cmos[reg_minutes_alarm];
    const uint8_t hour = m_cmos[reg_hours_alarm];
    return (alarm_dont_care(sec) || sec == encode(t.second)) && (alarm_dont_care(min) || min == encode(t.minute))
        && (alarm_dont_care(hour) || hour == encode_hour(t.hour));
}

void CmosRtc::update_irq()
{
    const uint8_t flags = m_cmos[reg_c] & (c_pf | c_af | c_uf);
    const uint8_t b = m_cmos[reg_b];
    const bool irqf = ((flags & c_pf) != 0 && (b & b_pie) != 0) || ((flags & c_af) != 0 && (b & b_aie) != 0)
        || ((flags & c_uf) != 0 && (b & b_uie) != 0);
    m_cmos[reg_c] = static_cast<uint8_t>(flags | (irqf ? c_irqf : 0));
    if (irqf != m_line_high) {
        m_line_high = irqf;
        m_irq.set_level(irqf);
    }
}

void CmosRtc::evaluate()
{
    const int64_t now = rtc_now_ns();
    const int64_t last = m_last_eval_ns;
    m_last_eval_ns = now;
    if (now > last) {
        if (periodic_running()) {
            const int64_t hz = periodic_hz();
            if (tick_index(now, hz) != tick_index(last, hz))
                m_cmos[reg_c] |= c_pf;
        }
        const int64_t last_sec = floor_div(last, ns_per_s);
        const int64_t now_sec = floor_div(now, ns_per_s);
        if (!updates_halted() && now_sec > last_sec) {
            m_cmos[reg_c] |= c_uf;
            // Alarm check at every update since the last evaluation; a day covers every alarm setting.
            for (int64_t s = std::max(last_sec + 1, now_sec - s_per_day); s <= now_sec; ++s) {
                if ((m_cmos[reg_c] & c_af) != 0)
                    break;
                if (alarm_matches(time_from_seconds(s)))
                    m_cmos[reg_c] |= c_af;
            }
        }
    }
    update_irq();
}

void CmosRtc::freeze_time()
{
    const Time t = time_from_seconds(floor_div(rtc_now_ns(), ns_per_s));
    for (uint8_t index :
        { reg_seconds, reg_minutes, reg_hours, reg_day_of_week, reg_day_of_month, reg_month, reg_year, reg_century })
        m_cmos[index] = time_register(t, index);
}

void CmosRtc::resume_time()
{
    // The divider chain restarts at the start of a second: the first update comes one second later.
    const int64_t seconds = seconds_from_time(time_from_registers());
    m_offset_ns = seconds * ns_per_s - m_clock();
    m_last_eval_ns = rtc_now_ns();
    log_debug("cmos-rtc", "time set by the guest, offset from host {} s", m_offset_ns / ns_per_s);
}

void CmosRtc::write_time_register(uint8_t index, uint8_t value)
{
    if (updates_halted()) {
        m_cmos[index] = value;
        return;
    }
    // Running: change one field of the current time, keeping the position within the second.
    const int64_t now = rtc_now_ns();
    const int64_t sec = floor_div(now, ns_per_s);
    Time t = time_from_seconds(sec);
    switch (index) {
    case reg_seconds:
        t.second = decode(value);
        break;
    case reg_minutes:
        t.minute = decode(value);
        break;
    case reg_hours:
        t.hour = decode_hour(value);
        break;
    case reg_day_of_month:
        t.day = decode(value);
        break;
    case reg_month:
        t.month = decode(value);
        break;
    case reg_year:
        t.year = t.year / 100 * 100 + static_cast<int>(decode(value));
        break;
    case reg_century:
        t.year = static_cast<int>(decode(value)) * 100 + t.year % 100;
        break;
    default:
        log_debug("cmos-rtc", "write {:#04x} to day of week ignored: derived from the date", value);
        return;
    }
    m_offset_ns += (seconds_from_time(t) - sec) * ns_per_s;
    m_last_eval_ns = rtc_now_ns();
}

uint8_t CmosRtc::read_register(uint8_t index) const
{
    if (is_time_register(index)) {
        if (updates_halted())
            return m_cmos[index];
        return time_register(time_from_seconds(floor_div(rtc_now_ns(), ns_per_s)), index);
    }
    switch (index) {
    case reg_a: {
        uint8_t value = m_cmos[reg_a] & static_cast<uint8_t>(~a_uip);
        if (!updates_halted()) {
            const int64_t now = rtc_now_ns();
            const int64_t into_second = now - floor_div(now, ns_per_s) * ns_per_s;
            if (into_second >= ns_per_s - uip_window_ns)
                value |= a_uip;
        }
        return value;
    }
    case reg_d:
        return d_vrt;
    default:
        return m_cmos[index];
    }
}

void CmosRtc::write_register(uint8_t index, uint8_t value)
{
    if (is_time_register(index)) {
        write_time_register(index, value);
        m_config_changed = true;
        return;
    }
    switch (index) {
    case reg_a:
    case reg_b: {
        const bool was_halted = updates_halted();
        if (index == reg_a) {
            m_cmos[reg_a] = value & static_cast<uint8_t>(~a_uip);
            const uint8_t divider = value & a_divider_mask;
            if (divider != a_divider_normal)
                log_debug("cmos-rtc", "divider {:#x}: time base stopped", divider >> 4);
        } else {
            // Setting SET clears UIE.
            m_cmos[reg_b] = (value & b_set) != 0 ? static_cast<uint8_t>(value & ~b_uie) : value;
        }
        const bool halted = updates_halted();
        if (!was_halted && halted)
            freeze_time();
        else if (was_halted && !halted)
            resume_time();
        update_irq();
        m_config_changed = true;
        return;
    }
    case reg_c:
    case reg_d:
        log_debug("cmos-rtc", "write {:#04x} to read-only register {:#x} ignored", value, index);
        return;
    default:
        m_cmos[index] = value;
        return;
    }
}

void CmosRtc::read(uint64_t offset, std::span<uint8_t> data)
{
    std::unique_lock lock(m_lock);
    evaluate();
    for (size_t i = 0; i < data.size(); ++i) {
        const uint64_t port = offset + i;
        if (offset >= port_count || port != 1) {
            // Port 0x70 is write-only; nothing else is decoded.
            log_debug("cmos-rtc", "read at offset {:#x}", port);
            data[i] = 0xff;
            continue;
        }
        data[i] = read_register(m_index);
        if (m_index == reg_c) {
            m_cmos[reg_c] = 0;
            update_irq();
        }
    }
    const bool notify = m_config_changed;
    lock.unlock();
    if (notify)
        m_wake.notify_one();
}

void CmosRtc::write(uint64_t offset, std::span<const uint8_t> data)
{
    std::unique_lock lock(m_lock);
    evaluate();
    // A wide access reaches the index and data ports in turn, as the ISA bus splits it (outw 0x70).
    for (size_t i = 0; i < data.size(); ++i) {
        const uint64_t port = offset + i;
        if (offset >= port_count || port >= port_count) {
            log_debug("cmos-rtc", "write {:#04x} at offset {:#x} ignored", data[i], port);
            continue;
        }
        if (port == 0)
            m_index = data[i] & 0x7f; // bit 7 masks NMI on a PC; there is no NMI to mask here
        else
            write_register(m_index, data[i]);
    }
    const bool notify = m_config_changed;
    lock.unlock();
    if (notify)
        m_wake.notify_one();
}

void CmosRtc::set_cmos_byte(uint8_t index, uint8_t value)
{
    if (index >= cmos_size || index <= reg_d || index == reg_century) {
        log_warn("cmos-rtc", "set_cmos_byte({:#x}) refused: not a CMOS RAM byte", index);
        return;
    }
    std::lock_guard lock(m_lock);
    m_cmos[index] = value;
}

uint8_t CmosRtc::cmos_byte(uint8_t index) const
{
    if (index >= cmos_size)
        return 0xff;
    std::lock_guard lock(m_lock);
    return read_register(index);
}

void CmosRtc::set_memory_size(uint64_t low_bytes, uint64_t high_bytes)
{
    constexpr uint64_t kib = 1024;
    constexpr uint64_t mib = 1024 * kib;
    constexpr uint64_t chunk = 64 * kib;

    const uint64_t base_kib = std::min<uint64_t>(low_bytes / kib, 640);
    const uint64_t ext_kib = low_bytes > mib ? std::min<uint64_t>((low_bytes - mib) / kib, 0xffff) : 0;
    const uint64_t above_16m = low_bytes > 16 * mib ? std::min<uint64_t>((low_bytes - 16 * mib) / chunk, 0xffff) : 0;
    const uint64_t above_4g = std::min<uint64_t>(high_bytes / chunk, 0xffffff);

    set_cmos_byte(0x15, static_cast<uint8_t>(base_kib));
    set_cmos_byte(0x16, static_cast<uint8_t>(base_kib >> 8));
    set_cmos_byte(0x17, static_cast<uint8_t>(ext_kib));
    set_cmos_byte(0x18, static_cast<uint8_t>(ext_kib >> 8));
    set_cmos_byte(0x30, static_cast<uint8_t>(ext_kib));
    set_cmos_byte(0x31, static_cast<uint8_t>(ext_kib >> 8));
    set_cmos_byte(0x34, static_cast<uint8_t>(above_16m));
    set_cmos_byte(0x35, static_cast<uint8_t>(above_16m >> 8));
    set_cmos_byte(0x5b, static_cast<uint8_t>(above_4g));
    set_cmos_byte(0x5c, static_cast<uint8_t>(above_4g >> 8));
    set_cmos_byte(0x5d, static_cast<uint8_t>(above_4g >> 16));
}

void CmosRtc::poll()
{
    std::lock_guard lock(m_lock);
    evaluate();
}

int64_t CmosRtc::next_event_ns() const
{
    const int64_t now = rtc_now_ns();
    int64_t next = -1;
    const uint8_t b = m_cmos[reg_b];
    if ((b & b_pie) != 0 && periodic_running()) {
        const int64_t hz = periodic_hz();
        next = tick_start(tick_index(now, hz) + 1, hz);
    }
    if ((b & (b_uie | b_aie)) != 0 && !updates_halted()) {
        const int64_t second = (floor_div(now, ns_per_s) + 1) * ns_per_s;
        next = next < 0 ? second : std::min(next, second);
    }
    return next < 0 ? -1 : next - now;
}

void CmosRtc::timer_loop()
{
    std::unique_lock lock(m_lock);
    while (!m_stop) {
        evaluate();
        const int64_t delay = next_event_ns();
        m_config_changed = false;
        const auto woken = [this] { return m_stop || m_config_changed; };
        if (delay < 0)
            m_wake.wait(lock, woken);
        else // At most a second: the host clock may jump.
            m_wake.wait_for(lock, std::chrono::nanoseconds(std::clamp<int64_t>(delay, 1, ns_per_s)), woken);
    }
}

} // namespace vmgen::vm
