#include "vm/devices/system_control/system_control.h"

#include "support/log.h"

namespace vmgen::vm {

SystemControlA::SystemControlA(std::function<void()> on_reset)
    : m_on_reset(std::move(on_reset))
{
}

bool SystemControlA::a20_enabled() const
{
    std::lock_guard lock(m_lock);
    return (m_value & a20_bit) != 0;
}

void SystemControlA::read(uint64_t offset, std::span<uint8_t> data)
{
    if (offset != 0 || data.size() != 1) {
        log_debug("sysctl-a", "read of {} bytes at offset {:#x}", data.size(), offset);
        io_fill(data, ~0ull);
        return;
    }
    std::lock_guard lock(m_lock);
    io_fill(data, m_value);
}

void SystemControlA::write(uint64_t offset, std::span<const uint8_t> data)
{
    if (offset != 0 || data.size() != 1) {
        log_debug("sysctl-a", "write of {} bytes at offset {:#x} ignored", data.size(), offset);
        return;
    }
    const auto value = static_cast<uint8_t>(io_value(data));
    bool reset = false;
    {
        std::lock_guard lock(m_lock);
        reset = (value & fast_reset_bit) != 0 && (m_value & fast_reset_bit) == 0;
        if ((value & a20_bit) == 0 && !m_warned_a20) {
            m_warned_a20 = true;
            log_info("sysctl-a", "guest disabled the A20 gate; KVM cannot mask A20, addresses are not wrapped");
        }
        m_value = value;
    }
    if (reset) {
        log_debug("sysctl-a", "fast reset requested");
        if (m_on_reset)
            m_on_reset();
    }
}

} // namespace vmgen::vm
