#include "vm/devices/post_code/post_code.h"

#include "support/log.h"

namespace vmgen::vm {

void PostCode::read(uint64_t offset, std::span<uint8_t> data)
{
    if (offset != 0 || data.size() != 1) {
        log_debug("post-code", "read of {} bytes at offset {:#x}", data.size(), offset);
        io_fill(data, ~0ull);
        return;
    }
    io_fill(data, m_code.load(std::memory_order_relaxed));
}

void PostCode::write(uint64_t offset, std::span<const uint8_t> data)
{
    if (offset != 0 || data.empty()) {
        log_debug("post-code", "write of {} bytes at offset {:#x} ignored", data.size(), offset);
        return;
    }
    // Wider writes starting at the port latch their low byte, as the latch decodes only byte 0.
    const auto code = static_cast<uint8_t>(io_value(data));
    m_code.store(code, std::memory_order_relaxed);
    log_debug("post-code", "POST code {:#04x}", code);
}

} // namespace vmgen::vm
