#include "mgmt/progress_bar.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace vmgen::mgmt {

namespace {
constexpr int bar_width = 30;
constexpr auto redraw_interval = std::chrono::milliseconds(100);
} // namespace

std::string human_bytes(uint64_t bytes)
{
    static constexpr std::array<const char*, 6> units = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024)
        return fmt::format("{} B", bytes);
    double value = static_cast<double>(bytes) / 1024.0;
    size_t unit = 0;
    while (value >= 1024.0 && unit + 1 < units.size()) {
        value /= 1024.0;
        ++unit;
    }
    return fmt::format("{:.1f} {}", value, units[unit]);
}

ProgressBar::ProgressBar(std::ostream& out, bool enabled, std::string label)
    : m_out(out)
    , m_enabled(enabled)
    , m_label(std::move(label))
{
}

std::string ProgressBar::render(std::string_view label, uint64_t done, uint64_t total)
{
    if (done > total)
        done = total;
    // In 1/1000ths: exact enough for a bar and free of overflow for any 64-bit size.
    const uint64_t per_mille = total == 0 ? 1000 : (total >= (1ull << 50) ? done / (total / 1000) : done * 1000 / total);
    const auto percent = static_cast<unsigned>(std::min<uint64_t>(per_mille, 1000) / 10);
    const auto filled = static_cast<int>(std::min<uint64_t>(per_mille, 1000) * bar_width / 1000);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(bar_width - filled), '-');
    return fmt::format("{} [{}] {:3}%  {} / {}", label, bar, percent, human_bytes(done), human_bytes(total));
}

void ProgressBar::update(uint64_t done, uint64_t total)
{
    if (!m_enabled || m_finished)
        return;
    const auto now = std::chrono::steady_clock::now();
    if (m_drawn && done < total && now - m_last < redraw_interval)
        return;
    m_last = now;
    m_drawn = true;
    // "\33[K" clears what a longer earlier drawing left to the right.
    m_out << '\r' << render(m_label, done, total) << "\33[K" << std::flush;
}

vm::disk::ProgressFn ProgressBar::callback()
{
    if (!m_enabled)
        return {};
    return [this](uint64_t done, uint64_t total) { update(done, total); };
}

void ProgressBar::finish()
{
    if (m_finished)
        return;
    m_finished = true;
    if (m_drawn)
        m_out << '\n' << std::flush;
}

} // namespace vmgen::mgmt
