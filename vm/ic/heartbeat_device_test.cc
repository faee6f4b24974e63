#include "vm/ic/heartbeat_device.h"

#include "vm/ic/ic_test_guest.h"

#include <gtest/gtest.h>

#include <functional>

namespace vmgen::vm::ic::testing {
namespace {

using namespace std::chrono_literals;
using vmbus::testing::wait_until;

class HeartbeatTest : public IcTest {
protected:
    void open_and_negotiate()
    {
        open(HeartbeatDevice::class_guid, heartbeat_instance, ch);
        ASSERT_TRUE(negotiate_like_linux(ch, heartbeat, linux_heartbeat_versions));
    }
    // The next heartbeat request; its seq_num in *seq.
    std::optional<GuestRing::Packet> next_heartbeat(uint64_t* seq = nullptr)
    {
        auto request = receive(ch, 1s);
        if (!request)
            return request;
        EXPECT_EQ(ic_header(request->payload).message_type, wire::ic_message_type_heartbeat);
        EXPECT_EQ(ic_header(request->payload).flags, wire::ic_flag_transaction | wire::ic_flag_request);
        EXPECT_GE(request->payload.size(), wire::ic_header_size + sizeof(wire::HeartbeatMessage));
        if (seq)
            *seq = load_at<uint64_t>(request->payload, wire::ic_header_size);
        return request;
    }
    // Answers like Linux and waits until the device counted it.
    void answer(const GuestRing::Packet& request)
    {
        uint64_t before = heartbeat.answers();
        std::vector<uint8_t> payload = request.payload;
        linux_heartbeat_response(payload);
        ASSERT_TRUE(reply(ch, request, payload));
        ASSERT_TRUE(wait_until([&] { return heartbeat.answers() > before; }));
    }

    Channel ch;
    Clock::time_point t0 = Clock::time_point {} + 1h;
};

TEST_F(HeartbeatTest, NoContactThenOkThenLostCommunication)
{
    EXPECT_EQ(heartbeat.status(), HeartbeatStatus::NoContact);
    heartbeat.tick(t0); // closed: nothing
    open(HeartbeatDevice::class_guid, heartbeat_instance, ch);
    auto negotiate = receive(ch);
    ASSERT_TRUE(negotiate);
    heartbeat.tick(t0); // negotiating: nothing
    EXPECT_FALSE(receive(ch, 10ms));
    std::vector<uint8_t> payload = negotiate->payload;
    ASSERT_TRUE(linux_negotiate_response(payload, linux_framework_versions, linux_heartbeat_versions));
    ASSERT_TRUE(reply(ch, *negotiate, payload));
    ASSERT_TRUE(wait_until([&] { return heartbeat.negotiated(); }));
    EXPECT_EQ(heartbeat.status(), HeartbeatStatus::NoContact);

    // The first heartbeat goes out on the first tick after negotiation; the next one a period later.
    heartbeat.tick(t0);
    uint64_t seq1 = 0;
    auto hb1 = next_heartbeat(&seq1);
    ASSERT_TRUE(hb1);
    EXPECT_EQ(ic_header(hb1->payload).message_version, (IcVersion {3, 0}));
    EXPECT_EQ(heartbeat.status(), HeartbeatStatus::NoContact);
    heartbeat.tick(t0 + 500ms); // not due
    EXPECT_FALSE(receive(ch, 10ms));
    answer(*hb1);
    EXPECT_EQ(heartbeat.status(), HeartbeatStatus::Ok);

    heartbeat.tick(t0 + 1s);
    uint64_t seq2 = 0;
    auto hb2 = next_heartbeat(&seq2);
    ASSERT_TRUE(hb2);
    EXPECT_GT(seq2, seq1);
    answer(*hb2);
    EXPECT_EQ(heartbeat.status(), HeartbeatStatus::Ok);
    EXPECT_EQ(heartbeat.answers(), 2u);

    // The guest stops answering: OK while a heartbeat sent within 3 periods was answered.
    for (int s = 2; s <= 4; ++s) {
        heartbeat.tick(t0 + std::chrono::seconds(s));
        ASSERT_TRUE(next_heartbeat());
        EXPECT_EQ(heartbeat.status(), HeartbeatStatus::Ok) << s;
    }
    heartbeat.tick(t0 + 5s);
    auto hb5 = next_heartbeat();
    ASSERT_TRUE(hb5);
    EXPECT_EQ(heartbeat.status(), HeartbeatStatus::LostCommunication);
    EXPECT_EQ(heartbeat.sent(), 6u);

    // It answers again.
    answer(*hb5);
    EXPECT_EQ(heartbeat.status(), HeartbeatStatus::Ok);
}

TEST_F(HeartbeatTest, WrongAnswersAreIgnored)
{
    open_and_negotiate();
    heartbeat.tick(t0);
    uint64_t seq = 0;
    auto request = next_heartbeat(&seq);
    ASSERT_TRUE(request);
    auto bad_answer = [&](auto&& mutate) {
        std::vector<uint8_t> payload = request->payload;
        linux_heartbeat_response(payload);
        mutate(payload);
        return payload;
    };
    // Each bad answer consumes the request (it was answered, wrongly); send a fresh heartbeat for each.
    struct Case {
        const char* what;
        std::function<void(std::vector<uint8_t>&)> mutate;
    };
    std::vector<Case> cases {
        {"seq unchanged", [&](auto& p) { store_at<uint64_t>(p, wire::ic_header_size, seq); }},
        {"seq + 2", [&](auto& p) { store_at<uint64_t>(p, wire::ic_header_size, seq + 2); }},
        {"status E_FAIL",
         [&](auto& p) {
             auto h = ic_header(p);
             h.status = wire::hv_e_fail;
             set_ic_header(p, h);
         }},
        {"body cut", [&](auto& p) { p.resize(wire::ic_header_size + 4); }},
    };
    uint64_t dropped = heartbeat.dropped_packets();
    Clock::time_point now = t0;
    for (const Case& c : cases) {
        ASSERT_TRUE(reply(ch, *request, bad_answer(c.mutate)));
        ASSERT_TRUE(wait_dropped(heartbeat, ++dropped)) << c.what;
        EXPECT_EQ(heartbeat.status(), HeartbeatStatus::NoContact) << c.what;
        EXPECT_EQ(heartbeat.answers(), 0u) << c.what;
        now += 1s;
        heartbeat.tick(now);
        request = next_heartbeat(&seq);
        ASSERT_TRUE(request) << c.what;
    }
    // A right answer to a request id we never used is dropped by the framework.
    std::vector<uint8_t> payload = request->payload;
    linux_heartbeat_response(payload);
    send_raw(ch, wire::packet_type_data_inband, payload, request->desc.trans_id + 77);
    ASSERT_TRUE(wait_dropped(heartbeat, ++dropped));
    EXPECT_EQ(heartbeat.status(), HeartbeatStatus::NoContact);
    // The right answer counts.
    answer(*request);
    EXPECT_EQ(heartbeat.status(), HeartbeatStatus::Ok);
}

TEST_F(HeartbeatTest, LateAnswerToAnOldHeartbeatDoesNotHideTheLoss)
{
    open_and_negotiate();
    heartbeat.tick(t0);
    auto old = next_heartbeat();
    ASSERT_TRUE(old);
    for (int s = 1; s <= 5; ++s) {
        heartbeat.tick(t0 + std::chrono::seconds(s));
        ASSERT_TRUE(next_heartbeat());
    }
    // Answer to the heartbeat of t0, arriving at t0 + 5 s: contact, but not recent.
    answer(*old);
    EXPECT_EQ(heartbeat.status(), HeartbeatStatus::LostCommunication);
}

TEST_F(HeartbeatTest, CloseAndReopenResetState)
{
    open_and_negotiate();
    heartbeat.tick(t0);
    auto request = next_heartbeat();
    ASSERT_TRUE(request);
    answer(*request);
    EXPECT_EQ(heartbeat.status(), HeartbeatStatus::Ok);
    guest.close(ch.relid);
    EXPECT_EQ(heartbeat.status(), HeartbeatStatus::NoContact);
    EXPECT_EQ(heartbeat.answers(), 0u);
    EXPECT_EQ(heartbeat.sent(), 0u);
    heartbeat.tick(t0 + 1s); // closed: nothing, no crash

    open(HeartbeatDevice::class_guid, heartbeat_instance, ch); // fresh rings and GPADL
    ASSERT_TRUE(negotiate_like_linux(ch, heartbeat, linux_heartbeat_versions));
    EXPECT_EQ(heartbeat.status(), HeartbeatStatus::NoContact);
    heartbeat.tick(t0 + 2s); // due at once after the new negotiation
    request = next_heartbeat();
    ASSERT_TRUE(request);
    answer(*request);
    EXPECT_EQ(heartbeat.status(), HeartbeatStatus::Ok);
}

TEST_F(HeartbeatTest, OwnTimerThreadSendsAndStops)
{
    // fast_heartbeat: 20 ms period, lost after 3 periods; hot-added.
    auto relid = server.add_device(fast_heartbeat);
    ASSERT_TRUE(relid);
    auto offer = guest.expect(wire::MessageType::offer_channel);
    ASSERT_TRUE(offer);
    offers.push_back(offer->as<wire::OfferChannel>());
    fast_heartbeat.start_timer();
    fast_heartbeat.start_timer(); // idempotent
    open(HeartbeatDevice::class_guid, fast_heartbeat_instance, ch);
    ASSERT_TRUE(negotiate_like_linux(ch, fast_heartbeat, linux_heartbeat_versions));
    for (int i = 0; i < 3; ++i) {
        auto request = receive(ch, 1s);
        ASSERT_TRUE(request);
        std::vector<uint8_t> payload = request->payload;
        linux_heartbeat_response(payload);
        ASSERT_TRUE(reply(ch, *request, payload));
    }
    ASSERT_TRUE(wait_until([&] { return fast_heartbeat.status() == HeartbeatStatus::Ok; }));
    // Silence: lost after ~60 ms.
    ASSERT_TRUE(wait_until([&] { return fast_heartbeat.status() == HeartbeatStatus::LostCommunication; }, 2s));
    fast_heartbeat.stop_timer();
    fast_heartbeat.stop_timer();
    // Restarted; the destructor (or the fixture's end) stops it again.
    fast_heartbeat.start_timer();
}

TEST(HeartbeatStatusText, MatchesGetVm)
{
    EXPECT_EQ(to_string(HeartbeatStatus::NoContact), "No Contact");
    EXPECT_EQ(to_string(HeartbeatStatus::Ok), "OK");
    EXPECT_EQ(to_string(HeartbeatStatus::LostCommunication), "Lost Communication");
}

} // namespace
} // namespace vmgen::vm::ic::testing
