// HeartbeatDevice: the Hyper-V heartbeat integration component. Offers service versions 3.0, 1.0 (Linux 6.1
// hv_util.c hb_versions); once negotiated it sends an ICMSGTYPE_HEARTBEAT request every period with an
// increasing seq_num, and the guest answers with seq_num + 1 (hv_util increments it in place).
//
// Status, as Hyper-V's Get-VM Heartbeat:
//   NoContact          no valid answer since the channel opened (closed, negotiating, refused, or silent)
//   Ok                 the last valid answer answered a heartbeat sent within the last `lost_after_periods`
//   LostCommunication  the guest answered before, but not to any heartbeat sent within that window
// A valid answer: the response to a heartbeat we sent on this open channel, status HV_S_OK, seq_num exactly
// the one sent + 1. Anything else is logged and ignored. Close/reset returns to NoContact.
//
// Time: the device has no clock of its own. tick(now) sends the heartbeat that is due and re-evaluates the
// status; the owner calls it periodically (every period or more often) from its own timer, or calls
// start_timer() once to have a device-owned thread call tick(steady_clock::now()) every period. The thread
// stops in stop_timer() and in the destructor (at once: it waits on a condition variable); on_close needs no
// stopping, ticks on a closed channel do nothing. Tests drive tick() with synthetic time points.
#pragma once

#include "vm/ic/ic_device.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace vmgen::vm::ic {

enum class HeartbeatStatus {
    NoContact,
    Ok,
    LostCommunication,
};
[[nodiscard]] std::string_view to_string(HeartbeatStatus status); // "No Contact", "OK", "Lost Communication"

struct HeartbeatConfig {
    std::chrono::milliseconds period {1000};
    // Ok becomes LostCommunication when no heartbeat sent within this many periods was answered.
    uint32_t lost_after_periods = 3;
};

class HeartbeatDevice final : public IcDevice {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr Guid class_guid = protocols::vmbus::guid("57164f39-9115-4e78-ab55-382f3bd5422d");

    explicit HeartbeatDevice(Guid instance_id, HeartbeatConfig config = {});
    ~HeartbeatDevice() override;

    // Sends the heartbeat if one is due (the first right after negotiation) and updates the status.
    void tick(Clock::time_point now);
    // A thread calling tick(Clock::now()) every period, until stop_timer() or destruction. Idempotent.
    void start_timer();
    void stop_timer();

    [[nodiscard]] HeartbeatStatus status() const;
    // Valid answers since the channel opened.
    [[nodiscard]] uint64_t answers() const;
    // Heartbeats sent since the channel opened.
    [[nodiscard]] uint64_t sent() const;
    [[nodiscard]] const HeartbeatConfig& config() const { return m_config; }

private:
    struct Sent {
        uint64_t seq = 0;
        Clock::time_point at;
    };

    void on_response(Lock& lock, const IcResponse& response) override;
    void on_closed(Lock& lock) override;
    void update_status();
    void timer_main();

    const HeartbeatConfig m_config;

    // Under IcDevice::lock().
    HeartbeatStatus m_status = HeartbeatStatus::NoContact;
    std::optional<Clock::time_point> m_now; // the latest tick
    std::optional<Clock::time_point> m_next_send;
    std::optional<Clock::time_point> m_last_answered; // when the newest answered heartbeat was sent
    std::map<uint64_t, Sent> m_sent;                  // request id -> heartbeat awaiting its answer
    uint64_t m_next_seq = 1;
    uint64_t m_answers = 0;
    uint64_t m_sent_count = 0;

    std::mutex m_timer_mutex;
    std::condition_variable m_timer_wake;
    bool m_timer_stop = false; // under m_timer_mutex
    std::thread m_timer;       // start_timer/stop_timer/destructor only (one owner thread)
};

} // namespace vmgen::vm::ic
