// EchoDevice: a VMBus test device that sends every inband packet back to the guest unchanged (same payload,
// same trans_id, same flags), and answers a completion request with a completion carrying the payload.
// Other packet types are counted and dropped. Used by the VMBus tests and the ring benchmark.
#pragma once

#include "vm/vmbus/device.h"

#include <atomic>
#include <cstdint>

namespace vmgen::vm::vmbus {

class EchoDevice final : public Device {
public:
    // Class GUID of the echo device (not a Hyper-V device: no Linux driver binds to it).
    static constexpr Guid class_guid = protocols::vmbus::guid("c0ffee00-7e57-4d0c-9a5e-0123456789ab");

    explicit EchoDevice(Guid instance_id);

    [[nodiscard]] const DeviceOffer& offer() const override { return m_offer; }
    [[nodiscard]] Result<void> on_open(Channel& channel) override;
    PacketAction on_packet(Channel& channel, const Packet& packet) override;
    void on_close(Channel& channel) override;
    void reset() override;

    [[nodiscard]] uint64_t echoed() const { return m_echoed.load(); }
    [[nodiscard]] uint64_t dropped() const { return m_dropped.load(); }
    [[nodiscard]] uint64_t retries() const { return m_retries.load(); }
    [[nodiscard]] uint32_t opens() const { return m_opens.load(); }
    [[nodiscard]] uint32_t closes() const { return m_closes.load(); }
    [[nodiscard]] uint32_t resets() const { return m_resets.load(); }

private:
    DeviceOffer m_offer;
    std::atomic<uint64_t> m_echoed {0};
    std::atomic<uint64_t> m_dropped {0};
    std::atomic<uint64_t> m_retries {0};
    std::atomic<uint32_t> m_opens {0};
    std::atomic<uint32_t> m_closes {0};
    std::atomic<uint32_t> m_resets {0};
};

} // namespace vmgen::vm::vmbus
