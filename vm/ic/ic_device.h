// IcDevice: the host side of one Hyper-V integration component (shutdown, heartbeat, ...) on a VMBus channel,
// as Linux 6.1's hv_utils expects it (drivers/hv/hv_util.c; wire format in protocols/vmbus/ic.h).
//
//   guest                                   host
//   OPENCHANNEL                       ->    on_open: NEGOTIATE request (framework 3.0, 1.0 + the device's
//                                           service versions, newest first)
//   NEGOTIATE response (1 fw + 1 msg) ->    negotiated (Ready) if both were offered, else Failed
//   ...                               <-    requests of the subclass (send_request), matched to their
//                                           responses by packet trans_id, icmsgtype and ictransaction_id
//
// The host starts every exchange; the guest only answers. Anything else from the guest (other packet types,
// packets shorter than the IC headers, requests, responses to nothing we sent, a wrong type or transaction id,
// versions we never offered, a second NEGOTIATE response) is logged (warn for the first ones, then debug) and
// dropped; nothing a guest sends can fail the host. A failed negotiation leaves the device Failed until the
// guest reopens the channel.
//
// Threads: on_open/on_close/reset come from the VMBus server (vCPU or machine threads), on_packet from the
// channel's worker, send_request from any thread (a subclass's public API). One mutex (lock()) guards all
// state, base and subclass; the hooks run with it held and get the lock, which they may release at their very
// end (e.g. to run a user callback). The Channel is only used under the lock between on_open and on_close.
#pragma once

#include "protocols/vmbus/ic.h"
#include "vm/vmbus/device.h"

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vmgen::vm::ic {

using protocols::vmbus::IcVersion;
using vmbus::Guid;

// Ring size: hv_util opens with VMBUS_RING_SIZE(3 * HV_HYP_PAGE_SIZE) each way (control page + 3 data pages).
inline constexpr uint32_t ring_data_bytes = 3 * 4096;
// Framework versions offered, newest first (Hyper-V and Linux: 3.0, 1.0).
inline constexpr IcVersion framework_versions[] = {protocols::vmbus::ic_framework_3_0,
                                                   protocols::vmbus::ic_framework_1_0};
// Requests awaiting an answer, per device; beyond this the oldest is forgotten (a guest that never answers).
inline constexpr size_t max_pending_requests = 32;
// Largest request body (the guest reads IC packets into one page).
inline constexpr size_t max_request_body = 4096 - protocols::vmbus::ic_header_size;

enum class IcState {
    Closed,      // channel not open
    Negotiating, // NEGOTIATE sent, no valid answer yet
    Ready,       // negotiated: requests may be sent
    Failed,      // the guest refused or garbled the negotiation; until it reopens the channel
};

struct IcVersions {
    IcVersion framework;
    IcVersion message;
};

// An answer from the guest, handed to IcDevice::on_response. `body` (after the 28 header bytes, padding
// included) is valid during the call only.
struct IcResponse {
    uint64_t request_id = 0; // what send_request returned
    uint16_t message_type = 0;
    uint32_t status = 0;     // icmsg_hdr status: hv_s_ok or an HRESULT
    std::span<const uint8_t> body;
};

class IcDevice : public vmbus::Device {
public:
    using Lock = std::unique_lock<std::mutex>;

    ~IcDevice() override = default;
    IcDevice(const IcDevice&) = delete;
    IcDevice& operator=(const IcDevice&) = delete;

    // vmbus::Device
    [[nodiscard]] const vmbus::DeviceOffer& offer() const override { return m_offer; }
    [[nodiscard]] Result<void> on_open(vmbus::Channel& channel) override;
    vmbus::PacketAction on_packet(vmbus::Channel& channel, const vmbus::Packet& packet) override;
    void on_close(vmbus::Channel& channel) override;
    void reset() override;

    [[nodiscard]] std::string_view name() const { return m_name; }
    [[nodiscard]] IcState state() const;
    [[nodiscard]] bool negotiated() const { return state() == IcState::Ready; }
    // The negotiated versions (Ready only).
    [[nodiscard]] std::optional<IcVersions> versions() const;
    // The service versions this device offers, newest first.
    [[nodiscard]] std::span<const IcVersion> message_versions() const { return m_message_versions; }
    // Guest packets dropped as invalid since construction (diagnostics, tests).
    [[nodiscard]] uint64_t dropped_packets() const;

protected:
    // `name` is for logs ("shutdown", "heartbeat"); `message_versions` newest first.
    IcDevice(std::string name, Guid class_id, Guid instance_id, std::vector<IcVersion> message_versions);

    [[nodiscard]] Lock lock() const { return Lock(m_mutex); }
    // state() for a caller holding lock().
    [[nodiscard]] IcState current_state(const Lock& /*lock*/) const { return m_state; }

    // Sends a request of `message_type` with `body` at the negotiated versions (flags TRANSACTION | REQUEST) and
    // remembers it until its answer; returns its id. `lock` must hold lock(). Errors: not open, not negotiated,
    // body too large, and the channel's ("ring full", "channel closed", ...).
    [[nodiscard]] Result<uint64_t> send_request(const Lock& lock, uint16_t message_type,
                                                std::span<const uint8_t> body);

    // Hooks, called with `lock` held (they may release it as their last action; the base then touches nothing).
    // The guest agreed on versions (on the channel's worker).
    virtual void on_negotiated(Lock& lock) { (void)lock; }
    // The answer to a request sent with send_request (on the channel's worker).
    virtual void on_response(Lock& lock, const IcResponse& response) = 0;
    // The channel closed (on_close) or the guest's session ended (reset): per-channel state is gone.
    virtual void on_closed(Lock& lock) { (void)lock; }
    // Logs a guest mistake (rate-limited) and counts a dropped packet; `lock` must hold lock().
    void guest_error(const Lock& lock, std::string_view what);

private:
    struct Pending {
        uint16_t message_type = 0;
        uint8_t transaction_id = 0;
    };

    [[nodiscard]] Result<uint64_t> send_message(uint16_t message_type, IcVersion framework, IcVersion message,
                                                std::span<const uint8_t> body);
    void handle_negotiate_response(Lock& lock, std::span<const uint8_t> body);
    void close_locked(Lock& lock);

    const std::string m_name;
    const std::vector<IcVersion> m_message_versions;
    vmbus::DeviceOffer m_offer;

    mutable std::mutex m_mutex;
    vmbus::Channel* m_channel = nullptr; // between on_open and on_close
    IcState m_state = IcState::Closed;
    IcVersions m_versions {};
    uint64_t m_next_request_id = 1; // packet trans_id; never reused, so stale answers match nothing
    std::map<uint64_t, Pending> m_pending;
    uint64_t m_dropped = 0;
    uint32_t m_warnings_left = 16;
};

} // namespace vmgen::vm::ic
