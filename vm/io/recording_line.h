// RecordingLine: a LineInterrupt for unit tests that records every level a device drives, in order.
// Thread safe (devices with timer or I/O threads raise lines from those threads).
#pragma once

#include "vm/io/line_interrupt.h"

#include <mutex>
#include <vector>

namespace vmgen::vm {

class RecordingLine final : public LineInterrupt {
public:
    void set_level(bool high) override
    {
        std::lock_guard lock(m_lock);
        m_levels.push_back(high);
    }
    // Every level set so far, oldest first.
    [[nodiscard]] std::vector<bool> levels() const
    {
        std::lock_guard lock(m_lock);
        return m_levels;
    }
    // The current level (low before the first set_level).
    [[nodiscard]] bool high() const
    {
        std::lock_guard lock(m_lock);
        return !m_levels.empty() && m_levels.back();
    }
    void clear()
    {
        std::lock_guard lock(m_lock);
        m_levels.clear();
    }

private:
    mutable std::mutex m_lock;
    std::vector<bool> m_levels;
};

} // namespace vmgen::vm
