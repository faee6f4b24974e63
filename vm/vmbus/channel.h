// ServerChannel: the server's side of one open channel. It owns the two rings, the worker thread that drains
// the guest -> host ring into Device::on_packet(), and the send path into the host -> guest ring. The guest's
// HvSignalEvent on the channel's connection id wakes the worker (notify()); the host signals the guest by
// setting event flag `relid` on the channel's target VP (SynicGuestSide::signal_event).
//
// A corrupt ring (bad index, bad packet header) marks the channel failed: the worker stops reading, sends
// fail with "channel failed", and the guest's eventual CLOSECHANNEL releases it. Nothing is fatal to the host.
#pragma once

#include "support/unique_fd.h"
#include "vm/memory/guest_memory.h"
#include "vm/vmbus/device.h"
#include "vm/vmbus/ring_buffer.h"
#include "vm/vmbus/synic_link.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <thread>

namespace vmgen::vm::vmbus {

struct ChannelParams {
    uint32_t relid = 0;
    uint32_t target_vp = 0;
    uint8_t sint = protocols::vmbus::message_sint;
    std::span<const uint64_t> ring_pfns;   // the whole ring GPADL, one page each
    uint32_t downstream_page_offset = 0;   // first page of the host -> guest ring
    std::span<const uint8_t> user_data;    // OPENCHANNEL user data
};

class ServerChannel final : public Channel {
public:
    // Maps the rings (guest -> host: pages [0, offset), host -> guest: [offset, end)); no thread yet.
    static Result<std::unique_ptr<ServerChannel>> create(const GuestMemory& memory, SynicGuestSide& synic,
                                                         Device& device, const ChannelParams& params);
    ~ServerChannel() override;
    ServerChannel(const ServerChannel&) = delete;
    ServerChannel& operator=(const ServerChannel&) = delete;

    // Starts the worker (after Device::on_open succeeded).
    void start();
    // Stops and joins the worker; afterwards sends fail. Idempotent.
    void stop();
    // The guest signalled the channel: wake the worker. Never blocks for long (vCPU thread).
    void notify();
    void set_target_vp(uint32_t vp) { m_target_vp.store(vp, std::memory_order_relaxed); }
    [[nodiscard]] bool failed() const { return m_failed.load(std::memory_order_acquire); }

    // Channel
    [[nodiscard]] uint32_t relid() const override { return m_relid; }
    [[nodiscard]] std::span<const uint8_t> open_user_data() const override { return m_user_data; }
    [[nodiscard]] const GuestMemory& memory() const override { return m_memory; }
    [[nodiscard]] Result<void> send_packet(uint16_t type, uint16_t flags, uint64_t trans_id,
                                           std::span<const uint8_t> header,
                                           std::span<const uint8_t> payload) override;
    void request_drain() override { wake(); }
    void poll_for_packets(std::chrono::microseconds window) override;

private:
    ServerChannel(const GuestMemory& memory, SynicGuestSide& synic, Device& device, uint32_t relid);
    void run();
    void wake();
    void drain();
    void fail_channel(const Error& error);
    void signal_guest();

    const GuestMemory& m_memory;
    SynicGuestSide& m_synic;
    Device& m_device;
    uint32_t m_relid;
    uint8_t m_sint = protocols::vmbus::message_sint;
    std::atomic<uint32_t> m_target_vp {0};
    std::array<uint8_t, protocols::vmbus::max_user_defined_bytes> m_user_data {};

    RingReader m_reader; // worker only
    std::mutex m_send_mutex;
    RingWriter m_writer;   // under m_send_mutex
    bool m_sending = true; // under m_send_mutex

    // The guest's signals (HvSignalEvent) wake the worker through an eventfd: a counter that coalesces any
    // number of signals into one wake-up, and a descriptor a KVM ioeventfd could target directly.
    UniqueFd m_wake_fd;
    std::atomic<bool> m_stopping {false};
    std::atomic<bool> m_failed {false};
    std::atomic<uint32_t> m_signal_failures {0};
    // poll_for_packets: the worker polls the (masked) ring until this steady_clock time, in nanoseconds.
    std::atomic<int64_t> m_poll_until {0};
    RingControlPage m_inbound_control; // the guest -> host ring's control page (interrupt mask)
    std::thread m_worker;
};

} // namespace vmgen::vm::vmbus
