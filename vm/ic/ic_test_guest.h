// Test helper for the IC tests: a VMBus server with the shutdown and heartbeat devices, the ScriptedGuest
// (vm/vmbus/scripted_guest.h) for the guest's hv_vmbus, and the guest's hv_utils answers rebuilt from Linux
// 6.1 drivers/hv/hv_util.c and channel_mgmt.c (vmbus_prep_negotiate_resp): the guest rewrites the host's
// packet in place and sends all of it back with the same trans_id and flags TRANSACTION | RESPONSE.
#pragma once

#include "protocols/vmbus/ic.h"
#include "vm/ic/heartbeat_device.h"
#include "vm/ic/shutdown_device.h"
#include "vm/vmbus/scripted_guest.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

namespace vmgen::vm::ic::testing {

namespace wire = protocols::vmbus;
using vmbus::testing::GuestRing;
using vmbus::testing::ScriptedGuest;

// Linux 6.1's version lists (hv_util.c fw_versions, sd_versions, hb_versions).
inline constexpr IcVersion linux_framework_versions[] = {{3, 0}, {1, 0}};
inline constexpr IcVersion linux_shutdown_versions[] = {{3, 2}, {3, 1}, {3, 0}, {1, 0}};
inline constexpr IcVersion linux_heartbeat_versions[] = {{3, 0}, {1, 0}};

// Field access in an IC packet payload.
wire::IcMessageHeader ic_header(std::span<const uint8_t> payload);
void set_ic_header(std::vector<uint8_t>& payload, const wire::IcMessageHeader& header);
template <typename T>
T load_at(std::span<const uint8_t> bytes, size_t offset)
{
    T value {};
    if (offset + sizeof(T) <= bytes.size())
        std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}
template <typename T>
void store_at(std::vector<uint8_t>& bytes, size_t offset, T value)
{
    if (offset + sizeof(T) <= bytes.size())
        std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

// vmbus_prep_negotiate_resp on `payload` (a NEGOTIATE from the host) with the guest's lists, plus the flags
// hv_util sets; returns whether a common pair was found.
bool linux_negotiate_response(std::vector<uint8_t>& payload, std::span<const IcVersion> framework,
                              std::span<const IcVersion> service);
// heartbeat_onchannelcallback: seq_num + 1.
void linux_heartbeat_response(std::vector<uint8_t>& payload);
// shutdown_onchannelcallback: HV_S_OK for flags 0..3, HV_E_FAIL otherwise (no hibernation).
void linux_shutdown_response(std::vector<uint8_t>& payload);

class IcTest : public ::testing::Test {
protected:
    using Channel = ScriptedGuest::OpenedChannel;
    using Clock = HeartbeatDevice::Clock;

    static constexpr Guid shutdown_instance = wire::guid("b6650ff7-33bc-4840-8048-e0676786f393");
    static constexpr Guid heartbeat_instance = wire::guid("d6d5a4a4-8c35-4c3a-b7c4-0a4c6f4e3b21");
    static constexpr Guid fast_heartbeat_instance = wire::guid("d6d5a4a4-8c35-4c3a-b7c4-0a4c6f4e3b22");

    IcTest();

    // The offer of the device with `class_id` among those the guest received.
    std::optional<wire::OfferChannel> offer_for(const Guid& class_id, const Guid& instance_id) const;
    // Opens like hv_util (4 + 4 pages); ASSERTs the open succeeded.
    void open(const Guid& class_id, const Guid& instance_id, Channel& channel);
    // The next host packet (nullopt after `timeout`).
    std::optional<GuestRing::Packet> receive(Channel& channel,
                                             std::chrono::milliseconds timeout = std::chrono::seconds(5));
    // Sends `payload` as the guest's answer to `request` (same trans_id).
    bool reply(Channel& channel, const GuestRing::Packet& request, std::span<const uint8_t> payload);
    // Receives the NEGOTIATE, answers like Linux with `service` and waits until the device is negotiated.
    bool negotiate_like_linux(Channel& channel, IcDevice& device, std::span<const IcVersion> service);
    // Writes a packet of any type into the guest -> host ring and signals the host.
    void send_raw(Channel& channel, uint16_t type, std::span<const uint8_t> payload, uint64_t trans_id);
    // Waits until the worker has dropped `count` packets in total on `device`.
    bool wait_dropped(const IcDevice& device, uint64_t count);

    // Devices first: they must outlive the server, whose destructor closes their channels.
    ShutdownDevice shutdown {shutdown_instance};
    HeartbeatDevice heartbeat {heartbeat_instance};
    HeartbeatDevice fast_heartbeat {fast_heartbeat_instance,
                                    HeartbeatConfig {std::chrono::milliseconds(20), 3}}; // not added by default
    GuestMemory memory;
    vmbus::testing::FakeSynic synic;
    vmbus::VmbusServer server;
    ScriptedGuest guest;
    std::vector<wire::OfferChannel> offers;
    uint32_t next_gpadl = 0x100;
};

} // namespace vmgen::vm::ic::testing
