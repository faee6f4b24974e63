// PostCode: the POST/debug code latch at I/O port 0x80, as found on PC chipsets (e.g. Intel ICH
// "Port 80h" POST code register). Firmware writes progress codes there; reads return the last byte written.
#pragma once

#include "vm/io/io_handler.h"

#include <atomic>
#include <cstdint>

namespace vmgen::vm {

class PostCode final : public IoHandler {
public:
    static constexpr uint16_t default_port = 0x80;

    PostCode() = default;

    [[nodiscard]] std::string_view name() const override { return "post-code"; }
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    [[nodiscard]] uint8_t last_code() const { return m_code.load(std::memory_order_relaxed); }

private:
    std::atomic<uint8_t> m_code { 0 };
};

} // namespace vmgen::vm
