// IoHandler: what a device implements to answer port I/O or MMIO accesses in a range it registered.
// `offset` is relative to the start of the registered range; `data` is 1, 2, 4 or 8 bytes (little endian).
//
// Handlers may be called concurrently from several vCPU threads: a device guards its own state.
// Guest mistakes (bad size, reserved register) are logged at debug level and answered with all ones on read.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace vmgen::vm {

class IoHandler {
public:
    virtual ~IoHandler() = default;
    [[nodiscard]] virtual std::string_view name() const = 0;
    virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

// Little-endian helpers for handlers: value of an access, and filling a read.
[[nodiscard]] inline uint64_t io_value(std::span<const uint8_t> data)
{
    uint64_t v = 0;
    for (size_t i = 0; i < data.size() && i < 8; ++i)
        v |= static_cast<uint64_t>(data[i]) << (8 * i);
    return v;
}

inline void io_fill(std::span<uint8_t> data, uint64_t value)
{
    for (size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<uint8_t>(i < 8 ? (value >> (8 * i)) : 0xff);
}

} // namespace vmgen::vm
