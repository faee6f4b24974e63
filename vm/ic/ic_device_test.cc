// The IC framework (negotiation, request/response matching, hostile input), exercised through the shutdown
// and heartbeat devices against a guest that answers like Linux 6.1's hv_utils.
#include "vm/ic/ic_device.h"

#include "vm/ic/ic_test_guest.h"

#include <gtest/gtest.h>

namespace vmgen::vm::ic::testing {
namespace {

using vmbus::testing::wait_until;

std::vector<IcVersion> versions_in(std::span<const uint8_t> payload, size_t first, size_t count)
{
    std::vector<IcVersion> out;
    for (size_t i = 0; i < count; ++i)
        out.push_back(load_at<IcVersion>(payload, wire::ic_header_size + 8 + 4 * (first + i)));
    return out;
}

TEST_F(IcTest, OffersClassGuidsAndNeedsHvUtilRings)
{
    auto sd = offer_for(ShutdownDevice::class_guid, shutdown_instance);
    auto hb = offer_for(HeartbeatDevice::class_guid, heartbeat_instance);
    ASSERT_TRUE(sd);
    ASSERT_TRUE(hb);
    EXPECT_EQ(shutdown.offer().min_ring_data_bytes, 3u * 4096);
    EXPECT_EQ(shutdown.state(), IcState::Closed);
    // Rings of 1 data page are refused, hv_util's 3 data pages are accepted.
    Channel small;
    EXPECT_NE(guest.open(*sd, 0x50, 2, 2, small), 0u);
    EXPECT_EQ(shutdown.state(), IcState::Closed);
    Channel ch;
    open(ShutdownDevice::class_guid, shutdown_instance, ch);
    EXPECT_EQ(shutdown.state(), IcState::Negotiating);
}

TEST_F(IcTest, HostStartsNegotiationWithHyperVVersions)
{
    Channel sd;
    open(ShutdownDevice::class_guid, shutdown_instance, sd);
    auto packet = receive(sd);
    ASSERT_TRUE(packet);
    EXPECT_EQ(packet->desc.type, wire::packet_type_data_inband);
    EXPECT_EQ(packet->desc.flags, 0);
    ASSERT_GE(packet->payload.size(), wire::ic_header_size + 8 + 6 * 4);
    auto pipe = load_at<wire::IcPipeHeader>(packet->payload, 0);
    EXPECT_EQ(pipe.flags, wire::ic_pipe_flag_data);
    EXPECT_EQ(pipe.message_size, wire::ic_header_size - 8 + 8 + 6 * 4);
    auto header = ic_header(packet->payload);
    EXPECT_EQ(header.message_type, wire::ic_message_type_negotiate);
    EXPECT_EQ(header.flags, wire::ic_flag_transaction | wire::ic_flag_request);
    EXPECT_EQ(header.message_size, 8 + 6 * 4);
    EXPECT_EQ(header.status, wire::hv_s_ok);
    EXPECT_EQ(load_at<uint16_t>(packet->payload, wire::ic_header_size), 2);
    EXPECT_EQ(load_at<uint16_t>(packet->payload, wire::ic_header_size + 2), 4);
    EXPECT_EQ(versions_in(packet->payload, 0, 2), (std::vector<IcVersion> {{3, 0}, {1, 0}}));
    EXPECT_EQ(versions_in(packet->payload, 2, 4), (std::vector<IcVersion> {{3, 2}, {3, 1}, {3, 0}, {1, 0}}));
    // Nothing else until the guest answers.
    EXPECT_FALSE(receive(sd, std::chrono::milliseconds(20)));

    Channel hb;
    open(HeartbeatDevice::class_guid, heartbeat_instance, hb);
    packet = receive(hb);
    ASSERT_TRUE(packet);
    EXPECT_EQ(load_at<uint16_t>(packet->payload, wire::ic_header_size), 2);
    EXPECT_EQ(load_at<uint16_t>(packet->payload, wire::ic_header_size + 2), 2);
    EXPECT_EQ(versions_in(packet->payload, 2, 2), (std::vector<IcVersion> {{3, 0}, {1, 0}}));
}

TEST_F(IcTest, LinuxGuestNegotiatesNewestVersions)
{
    Channel sd;
    Channel hb;
    open(ShutdownDevice::class_guid, shutdown_instance, sd);
    open(HeartbeatDevice::class_guid, heartbeat_instance, hb);
    ASSERT_TRUE(negotiate_like_linux(sd, shutdown, linux_shutdown_versions));
    ASSERT_TRUE(negotiate_like_linux(hb, heartbeat, linux_heartbeat_versions));
    auto v = shutdown.versions();
    ASSERT_TRUE(v);
    EXPECT_EQ(v->framework, (IcVersion {3, 0}));
    EXPECT_EQ(v->message, (IcVersion {3, 2}));
    v = heartbeat.versions();
    ASSERT_TRUE(v);
    EXPECT_EQ(v->framework, (IcVersion {3, 0}));
    EXPECT_EQ(v->message, (IcVersion {3, 0}));
    EXPECT_EQ(shutdown.state(), IcState::Ready);
    EXPECT_EQ(shutdown.dropped_packets(), 0u);
}

TEST_F(IcTest, OlderGuestPicksOlderOfferedVersions)
{
    Channel sd;
    open(ShutdownDevice::class_guid, shutdown_instance, sd);
    auto request = receive(sd);
    ASSERT_TRUE(request);
    std::vector<uint8_t> payload = request->payload;
    constexpr IcVersion old_framework[] = {{1, 0}};
    constexpr IcVersion old_service[] = {{1, 0}};
    ASSERT_TRUE(linux_negotiate_response(payload, old_framework, old_service));
    ASSERT_TRUE(reply(sd, *request, payload));
    ASSERT_TRUE(wait_until([&] { return shutdown.negotiated(); }));
    EXPECT_EQ(shutdown.versions()->framework, (IcVersion {1, 0}));
    EXPECT_EQ(shutdown.versions()->message, (IcVersion {1, 0}));
}

// The guest's answer with counts 1/1 and the given pair.
std::vector<uint8_t> chosen(const GuestRing::Packet& request, IcVersion framework, IcVersion message)
{
    std::vector<uint8_t> payload = request.payload;
    linux_negotiate_response(payload, linux_framework_versions, linux_shutdown_versions);
    store_at<uint16_t>(payload, wire::ic_header_size, 1);
    store_at<uint16_t>(payload, wire::ic_header_size + 2, 1);
    store_at(payload, wire::ic_header_size + 8, framework);
    store_at(payload, wire::ic_header_size + 12, message);
    return payload;
}

TEST_F(IcTest, VersionsNeverOfferedFailTheNegotiation)
{
    struct Case {
        IcVersion framework;
        IcVersion message;
    };
    for (Case c : {Case {{3, 0}, {3, 5}}, Case {{2, 0}, {3, 2}}, Case {{3, 0}, {3, 0xffff}}, Case {{0, 0}, {0, 0}}}) {
        Channel sd;
        open(ShutdownDevice::class_guid, shutdown_instance, sd);
        auto request = receive(sd);
        ASSERT_TRUE(request);
        ASSERT_TRUE(reply(sd, *request, chosen(*request, c.framework, c.message)));
        ASSERT_TRUE(wait_until([&] { return shutdown.state() == IcState::Failed; }))
            << c.framework.major << "." << c.framework.minor << " " << c.message.major << "." << c.message.minor;
        EXPECT_FALSE(shutdown.versions());
        EXPECT_FALSE(shutdown.request_shutdown(false, "x"));
        EXPECT_FALSE(receive(sd, std::chrono::milliseconds(10)));
        guest.close(sd.relid);
        EXPECT_EQ(shutdown.state(), IcState::Closed);
    }
}

TEST_F(IcTest, GuestWithoutCommonVersionFailsTheNegotiation)
{
    Channel hb;
    open(HeartbeatDevice::class_guid, heartbeat_instance, hb);
    auto request = receive(hb);
    ASSERT_TRUE(request);
    std::vector<uint8_t> payload = request->payload;
    constexpr IcVersion future[] = {{9, 0}};
    EXPECT_FALSE(linux_negotiate_response(payload, linux_framework_versions, future)); // counts 0/0
    ASSERT_TRUE(reply(hb, *request, payload));
    ASSERT_TRUE(wait_until([&] { return heartbeat.state() == IcState::Failed; }));
    // A later, valid-looking answer cannot revive it (the request was answered).
    payload = request->payload;
    ASSERT_TRUE(linux_negotiate_response(payload, linux_framework_versions, linux_heartbeat_versions));
    ASSERT_TRUE(reply(hb, *request, payload));
    ASSERT_TRUE(wait_dropped(heartbeat, 2));
    EXPECT_EQ(heartbeat.state(), IcState::Failed);
    heartbeat.tick(Clock::now());
    EXPECT_FALSE(receive(hb, std::chrono::milliseconds(10)));
}

TEST_F(IcTest, ShortAndGarbledPacketsAreDropped)
{
    Channel sd;
    open(ShutdownDevice::class_guid, shutdown_instance, sd);
    auto request = receive(sd);
    ASSERT_TRUE(request);
    uint64_t id = request->desc.trans_id;
    std::vector<uint8_t> good = request->payload;
    ASSERT_TRUE(linux_negotiate_response(good, linux_framework_versions, linux_shutdown_versions));

    uint64_t dropped = 0;
    auto expect_dropped = [&](std::span<const uint8_t> payload, uint64_t trans_id, uint16_t type) {
        send_raw(sd, type, payload, trans_id);
        ++dropped;
        EXPECT_TRUE(wait_dropped(shutdown, dropped)) << dropped;
        EXPECT_EQ(shutdown.state(), IcState::Negotiating) << dropped;
    };
    // Short packets: empty, pipe header only, the IC headers cut (payloads are padded to 8 bytes in the ring,
    // so 20 bytes arrive as 24, still short of 28).
    expect_dropped({}, id, wire::packet_type_data_inband);
    expect_dropped(std::vector<uint8_t>(8, 0xff), id, wire::packet_type_data_inband);
    expect_dropped(std::span(good).first(20), id, wire::packet_type_data_inband);
    // Not inband.
    expect_dropped(good, id, wire::packet_type_completion);
    // Not a response (the guest's copy of our request, unchanged).
    expect_dropped(request->payload, id, wire::packet_type_data_inband);
    // A response to a request we never sent.
    expect_dropped(good, id + 1000, wire::packet_type_data_inband);
    expect_dropped(good, 0, wire::packet_type_data_inband);
    // Wrong icmsgtype or ictransaction_id for the request it claims to answer.
    std::vector<uint8_t> bad = good;
    auto header = ic_header(bad);
    header.message_type = wire::ic_message_type_shutdown;
    set_ic_header(bad, header);
    expect_dropped(bad, id, wire::packet_type_data_inband);
    bad = good;
    header = ic_header(bad);
    header.transaction_id = static_cast<uint8_t>(header.transaction_id + 1);
    set_ic_header(bad, header);
    expect_dropped(bad, id, wire::packet_type_data_inband);
    // Random bytes.
    std::vector<uint8_t> noise(200);
    for (size_t i = 0; i < noise.size(); ++i)
        noise[i] = static_cast<uint8_t>(i * 37 + 11);
    expect_dropped(noise, id, wire::packet_type_data_inband);

    // The genuine answer still negotiates; a replay of it is dropped.
    ASSERT_TRUE(reply(sd, *request, good));
    ASSERT_TRUE(wait_until([&] { return shutdown.negotiated(); }));
    send_raw(sd, wire::packet_type_data_inband, good, id);
    EXPECT_TRUE(wait_dropped(shutdown, dropped + 1));
    EXPECT_EQ(shutdown.state(), IcState::Ready);
    EXPECT_TRUE(server.channel_open(sd.relid));
}

TEST_F(IcTest, TruncatedOrOversizedNegotiateAnswersFail)
{
    // Body cut before the chosen pair.
    Channel sd;
    open(ShutdownDevice::class_guid, shutdown_instance, sd);
    auto request = receive(sd);
    ASSERT_TRUE(request);
    std::vector<uint8_t> payload = request->payload;
    ASSERT_TRUE(linux_negotiate_response(payload, linux_framework_versions, linux_shutdown_versions));
    payload.resize(wire::ic_header_size + 12);
    ASSERT_TRUE(reply(sd, *request, payload));
    ASSERT_TRUE(wait_until([&] { return shutdown.state() == IcState::Failed; }));
    guest.close(sd.relid);
    // Counts that are neither 1/1 nor 0/0.
    Channel again;
    open(ShutdownDevice::class_guid, shutdown_instance, again);
    request = receive(again);
    ASSERT_TRUE(request);
    payload = chosen(*request, {3, 0}, {3, 2});
    store_at<uint16_t>(payload, wire::ic_header_size, 100);
    ASSERT_TRUE(reply(again, *request, payload));
    ASSERT_TRUE(wait_until([&] { return shutdown.state() == IcState::Failed; }));
}

TEST_F(IcTest, CloseAndReopenNegotiatesAgain)
{
    Channel sd;
    open(ShutdownDevice::class_guid, shutdown_instance, sd);
    ASSERT_TRUE(negotiate_like_linux(sd, shutdown, linux_shutdown_versions));
    guest.close(sd.relid);
    EXPECT_EQ(shutdown.state(), IcState::Closed);
    EXPECT_FALSE(shutdown.versions());
    EXPECT_TRUE(guest.teardown_gpadl(sd.relid, sd.gpadl));

    Channel again;
    open(ShutdownDevice::class_guid, shutdown_instance, again);
    EXPECT_EQ(shutdown.state(), IcState::Negotiating);
    auto request = receive(again);
    ASSERT_TRUE(request);
    EXPECT_EQ(ic_header(request->payload).message_type, wire::ic_message_type_negotiate);
    std::vector<uint8_t> payload = request->payload;
    ASSERT_TRUE(linux_negotiate_response(payload, linux_framework_versions, linux_shutdown_versions));
    // An answer carrying the first open's trans_id matches nothing now.
    send_raw(again, wire::packet_type_data_inband, payload, request->desc.trans_id - 1);
    ASSERT_TRUE(wait_dropped(shutdown, 1));
    EXPECT_EQ(shutdown.state(), IcState::Negotiating);
    ASSERT_TRUE(reply(again, *request, payload));
    ASSERT_TRUE(wait_until([&] { return shutdown.negotiated(); }));
}

TEST_F(IcTest, UnloadAndServerResetCloseEverything)
{
    Channel sd;
    Channel hb;
    open(ShutdownDevice::class_guid, shutdown_instance, sd);
    open(HeartbeatDevice::class_guid, heartbeat_instance, hb);
    ASSERT_TRUE(negotiate_like_linux(sd, shutdown, linux_shutdown_versions));
    guest.post(ScriptedGuest::message<wire::MessageHeader>(wire::MessageType::unload));
    EXPECT_TRUE(guest.expect(wire::MessageType::unload_response));
    EXPECT_EQ(shutdown.state(), IcState::Closed);
    EXPECT_EQ(heartbeat.state(), IcState::Closed);
    // Reconnect, reopen, then a VM reset.
    ASSERT_TRUE(guest.connect(wire::version_win10_v5_3));
    offers = guest.request_offers();
    Channel again;
    open(HeartbeatDevice::class_guid, heartbeat_instance, again);
    ASSERT_TRUE(negotiate_like_linux(again, heartbeat, linux_heartbeat_versions));
    server.reset();
    EXPECT_EQ(heartbeat.state(), IcState::Closed);
}

} // namespace
} // namespace vmgen::vm::ic::testing
