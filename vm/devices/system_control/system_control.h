// SystemControlA: the PS/2 System Control Port A at I/O port 0x92 (IBM PS/2 "System Control Port A";
// the same register is Intel PIIX/ICH "Port 92h"). Bit 1 gates the A20 address line, bit 0 is the fast
// reset (a 0 -> 1 transition resets the processor). Other bits are stored and read back.
#pragma once

#include "vm/io/io_handler.h"

#include <cstdint>
#include <functional>
#include <mutex>

namespace vmgen::vm {

class SystemControlA final : public IoHandler {
public:
    static constexpr uint16_t default_port = 0x92;
    static constexpr uint8_t fast_reset_bit = 0x01;
    static constexpr uint8_t a20_bit = 0x02;

    // `on_reset` is called (without the device lock held) when the guest sets the fast reset bit.
    explicit SystemControlA(std::function<void()> on_reset);

    [[nodiscard]] std::string_view name() const override { return "sysctl-a"; }
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    [[nodiscard]] bool a20_enabled() const;

private:
    std::function<void()> m_on_reset;
    mutable std::mutex m_lock;
    uint8_t m_value = a20_bit; // A20 enabled after reset, as firmware expects on a modern PC
    bool m_warned_a20 = false;
};

} // namespace vmgen::vm
