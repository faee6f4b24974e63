#include "vm/vmbus/server.h"

#include "vm/vmbus/echo_device.h"
#include "vm/vmbus/scripted_guest.h"

#include <gtest/gtest.h>

#include <memory>
#include <numeric>

namespace vmgen::vm::vmbus {
namespace {

namespace wire = protocols::vmbus;
using testing::FakeSynic;
using testing::ScriptedGuest;
using testing::wait_until;
using wire::MessageType;

constexpr Guid instance_a = wire::guid("11111111-2222-3333-4444-555555555555");
constexpr Guid instance_b = wire::guid("66666666-7777-8888-9999-aaaaaaaaaaaa");

class VmbusServerTest : public ::testing::Test {
protected:
    VmbusServerTest()
        : memory(std::move(*GuestMemory::create({{0, 8ull << 20}}))), server(memory, synic),
          guest(server, synic, memory)
    {
    }

    // Connected at 5.3 with echo device A offered; returns its offer.
    wire::OfferChannel connect_with_echo()
    {
        relid_a = *server.add_device(echo_a);
        EXPECT_TRUE(guest.connect(wire::version_win10_v5_3));
        auto offers = guest.request_offers();
        EXPECT_EQ(offers.size(), 1u);
        return offers.empty() ? wire::OfferChannel {} : offers[0];
    }

    // Everything still works: a fresh GPADL can be created and torn down.
    void expect_server_still_works()
    {
        EXPECT_TRUE(synic.message_count() == 0) << "unexpected pending messages";
        uint64_t page = guest.alloc_pages(1);
        std::vector<uint64_t> pfns {page};
        EXPECT_EQ(guest.create_gpadl(relid_a, 0xabc0, pfns), 0u);
        EXPECT_TRUE(guest.teardown_gpadl(relid_a, 0xabc0));
    }

    GuestMemory memory;
    FakeSynic synic;
    // The devices outlive the server: its destructor closes open channels, calling their on_close().
    EchoDevice echo_a {instance_a};
    EchoDevice echo_b {instance_b};
    VmbusServer server;
    ScriptedGuest guest;
    uint32_t relid_a = 0;
};

TEST_F(VmbusServerTest, HandshakeVersion53OffersEveryDevice)
{
    relid_a = *server.add_device(echo_a);
    uint32_t relid_b = *server.add_device(echo_b);
    EXPECT_EQ(relid_a, 1u);
    EXPECT_EQ(relid_b, 2u);
    ASSERT_TRUE(guest.connect(wire::version_win10_v5_3, 3));
    EXPECT_TRUE(server.connected());
    EXPECT_EQ(server.version(), wire::version_win10_v5_3);
    EXPECT_EQ(guest.message_connection_id(), wire::message_connection_id_4);

    EXPECT_EQ(guest.post(ScriptedGuest::message<wire::MessageHeader>(MessageType::request_offers)),
              hv_status::success);
    auto first = synic.pop_message();
    ASSERT_TRUE(first);
    EXPECT_EQ(first->vp, 3u); // the VP named in INITIATE_CONTACT
    EXPECT_EQ(first->sint, 2);
    EXPECT_EQ(first->payload.size(), 196u);
    auto offer = first->as<wire::OfferChannel>();
    EXPECT_EQ(offer.child_relid, 1u);
    EXPECT_EQ(offer.offer.interface_type, EchoDevice::class_guid);
    EXPECT_EQ(offer.offer.interface_instance, instance_a);
    EXPECT_EQ(offer.monitor_flags & 1, 0);
    EXPECT_EQ(offer.interrupt_flags & 1, 1);
    EXPECT_EQ(offer.connection_id, VmbusServer::connection_id_for(1));
    auto second = guest.expect(MessageType::offer_channel);
    ASSERT_TRUE(second);
    EXPECT_EQ(second->as<wire::OfferChannel>().offer.interface_instance, instance_b);
    EXPECT_TRUE(guest.expect(MessageType::all_offers_delivered));
    // A second REQUESTOFFERS is ignored.
    guest.post(ScriptedGuest::message<wire::MessageHeader>(MessageType::request_offers));
    EXPECT_TRUE(guest.no_messages());
}

TEST_F(VmbusServerTest, NegotiatesLinuxVersionListAndOldVersionsOnConnection1)
{
    // Linux walks 5.3 .. 2.4; every one is accepted, each time on the right connection id.
    for (uint32_t v : {wire::version_win10_v5_3, wire::version_win10_v5_2, wire::version_win10_v5_1,
                       wire::version_win10_v5, wire::version_win10_v4_1, wire::version_win10, wire::version_win8_1,
                       wire::version_win8}) {
        EXPECT_TRUE(guest.connect(v)) << std::hex << v;
        EXPECT_EQ(server.version(), v);
    }
    // 2.4 came on connection id 1; later messages use it too.
    EXPECT_EQ(guest.message_connection_id(), wire::message_connection_id);
    relid_a = *server.add_device(echo_a);
    EXPECT_EQ(guest.request_offers().size(), 1u);
}

TEST_F(VmbusServerTest, RefusesUnknownVersionsAndWrongConnectionIds)
{
    EXPECT_FALSE(guest.connect(wire::make_version(6, 0)));
    EXPECT_FALSE(guest.connect(wire::make_version(1, 1))); // Windows 7: Linux 6.1 no longer offers it
    EXPECT_FALSE(server.connected());
    // 5.0 on connection id 1 is refused; 4.0 on connection id 4 likewise.
    auto msg = ScriptedGuest::message<wire::InitiateContact>(MessageType::initiate_contact);
    msg.version_requested = wire::version_win10_v5;
    msg.interrupt_page_or_sint = 2;
    EXPECT_EQ(guest.post(msg, wire::message_connection_id), hv_status::success);
    auto reply = guest.expect(MessageType::version_response);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->as<wire::VersionResponse>().version_supported, 0);
    msg.version_requested = wire::version_win10;
    EXPECT_EQ(guest.post(msg, wire::message_connection_id_4), hv_status::success);
    reply = guest.expect(MessageType::version_response);
    EXPECT_EQ(reply->as<wire::VersionResponse>().version_supported, 0);
    // Unknown connection ids and message types.
    EXPECT_EQ(guest.post(msg, 7), hv_status::invalid_connection_id);
    std::vector<uint8_t> raw(sizeof(msg));
    std::memcpy(raw.data(), &msg, sizeof(msg));
    EXPECT_EQ(server.on_post_message(4, 2, raw), hv_status::invalid_parameter);
    EXPECT_EQ(server.on_signal_event(12345, 0), hv_status::invalid_connection_id);
    EXPECT_EQ(server.on_signal_event(VmbusServer::connection_id_for(1), 0), hv_status::invalid_connection_id);
    EXPECT_TRUE(guest.no_messages());
    EXPECT_TRUE(guest.connect(wire::version_win10_v5_3));
}

TEST_F(VmbusServerTest, GpadlSplitsAcrossHeaderAndBodies)
{
    connect_with_echo();
    for (size_t count : {size_t {1}, size_t {26}, size_t {27}, size_t {54}, size_t {55}, size_t {300}}) {
        uint64_t first = guest.alloc_pages(count);
        std::vector<uint64_t> pfns(count);
        std::iota(pfns.begin(), pfns.end(), first);
        auto id = static_cast<uint32_t>(0x100 + count);
        EXPECT_EQ(guest.create_gpadl(relid_a, id, pfns), 0u) << count;
    }
    EXPECT_EQ(server.gpadl_count(), 6u);
    // No GPADL_CREATED before the last body.
    uint64_t first = guest.alloc_pages(60);
    std::vector<uint64_t> pfns(60);
    std::iota(pfns.begin(), pfns.end(), first);
    auto h = ScriptedGuest::message<wire::GpadlHeader>(MessageType::gpadl_header);
    h.child_relid = relid_a;
    h.gpadl = 0x999;
    h.range_count = 1;
    h.range_buffer_length = 8 + 60 * 8;
    std::vector<uint8_t> header(sizeof(h));
    std::memcpy(header.data(), &h, sizeof(h));
    wire::GpaRange range {60 * 4096, 0};
    auto* r = reinterpret_cast<const uint8_t*>(&range);
    header.insert(header.end(), r, r + 8);
    auto* p = reinterpret_cast<const uint8_t*>(pfns.data());
    header.insert(header.end(), p, p + 26 * 8);
    guest.post_raw(header);
    EXPECT_TRUE(guest.no_messages());
    auto b = ScriptedGuest::message<wire::GpadlBody>(MessageType::gpadl_body);
    b.gpadl = 0x999;
    std::vector<uint8_t> body(sizeof(b));
    std::memcpy(body.data(), &b, sizeof(b));
    body.insert(body.end(), p + 26 * 8, p + 54 * 8);
    guest.post_raw(body);
    EXPECT_TRUE(guest.no_messages());
    body.resize(sizeof(b));
    body.insert(body.end(), p + 54 * 8, p + 60 * 8);
    guest.post_raw(body);
    auto created = guest.expect(MessageType::gpadl_created);
    ASSERT_TRUE(created);
    EXPECT_EQ(created->as<wire::GpadlCreated>().creation_status, 0u);
    EXPECT_EQ(created->payload.size(), 20u);
    EXPECT_TRUE(guest.teardown_gpadl(relid_a, 0x999));
    EXPECT_EQ(server.gpadl_count(), 6u);
}

TEST_F(VmbusServerTest, OpenEchoCloseTeardown)
{
    auto offer = connect_with_echo();
    ScriptedGuest::OpenedChannel ch;
    ASSERT_EQ(guest.open(offer, 0x1000, 4, 4, ch, 2), 0u);
    EXPECT_TRUE(server.channel_open(relid_a));
    EXPECT_EQ(echo_a.opens(), 1u);

    std::vector<uint8_t> payload(100);
    for (uint64_t i = 0; i < 500; ++i) { // 500 * 136 bytes: wraps the 12 KiB rings many times
        std::fill(payload.begin(), payload.end(), static_cast<uint8_t>(i));
        uint16_t flags = i % 2 == 0 ? wire::packet_flag_completion_requested : 0;
        ASSERT_TRUE(guest.send(ch, payload, 0x5000 + i, flags));
        auto echo = guest.receive(ch);
        ASSERT_TRUE(echo) << i;
        EXPECT_EQ(echo->desc.type, wire::packet_type_data_inband);
        EXPECT_EQ(echo->desc.trans_id, 0x5000 + i);
        EXPECT_EQ(echo->desc.flags, flags);
        ASSERT_GE(echo->payload.size(), 100u);
        EXPECT_EQ(echo->payload[99], static_cast<uint8_t>(i));
        EXPECT_EQ(echo->payload.size(), 104u); // padded to 8
    }
    EXPECT_EQ(echo_a.echoed(), 500u);
    // The host signalled relid 1 on the target VP 2, SINT 2.
    auto events = synic.events();
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events[0].vp, 2u);
    EXPECT_EQ(events[0].sint, 2);
    EXPECT_EQ(events[0].flag, relid_a);

    // MODIFYCHANNEL (5.3: acknowledged) moves the interrupts.
    auto modify = ScriptedGuest::message<wire::ModifyChannel>(MessageType::modify_channel);
    modify.child_relid = relid_a;
    modify.target_vp = 5;
    guest.post(modify);
    auto ack = guest.expect(MessageType::modify_channel_response);
    ASSERT_TRUE(ack);
    EXPECT_EQ(ack->as<wire::ModifyChannelResponse>().status, 0u);
    ASSERT_TRUE(guest.send(ch, payload, 1));
    ASSERT_TRUE(guest.receive(ch));
    EXPECT_EQ(synic.events().back().vp, 5u);

    guest.close(relid_a);
    EXPECT_FALSE(server.channel_open(relid_a));
    EXPECT_EQ(echo_a.closes(), 1u);
    EXPECT_TRUE(guest.teardown_gpadl(relid_a, 0x1000));
    EXPECT_EQ(server.gpadl_count(), 0u);
    // Re-open works.
    ScriptedGuest::OpenedChannel again;
    ASSERT_EQ(guest.open(offer, 0x1001, 2, 2, again), 0u);
    ASSERT_TRUE(guest.send(again, payload, 77));
    auto echo = guest.receive(again);
    ASSERT_TRUE(echo);
    EXPECT_EQ(echo->desc.trans_id, 77u);
}

TEST_F(VmbusServerTest, EchoWaitsForSpaceWhenHostToGuestRingIsFull)
{
    auto offer = connect_with_echo();
    ScriptedGuest::OpenedChannel ch;
    ASSERT_EQ(guest.open(offer, 0x1000, 8, 2, ch), 0u); // 28 KiB out, 4 KiB back
    std::vector<uint8_t> payload(1000);
    for (uint64_t i = 0; i < 20; ++i)
        ASSERT_TRUE(guest.send(ch, payload, i));
    ASSERT_TRUE(wait_until([&] { return echo_a.retries() > 0; }));
    for (uint64_t i = 0; i < 20; ++i) {
        auto echo = guest.receive(ch);
        ASSERT_TRUE(echo) << i;
        EXPECT_EQ(echo->desc.trans_id, i);
    }
    EXPECT_EQ(echo_a.echoed(), 20u);
}

TEST_F(VmbusServerTest, UnloadClosesEverythingAndAllowsReconnect)
{
    auto offer = connect_with_echo();
    ScriptedGuest::OpenedChannel ch;
    ASSERT_EQ(guest.open(offer, 0x1000, 2, 2, ch), 0u);
    std::vector<uint64_t> extra {guest.alloc_pages(1)};
    EXPECT_EQ(guest.create_gpadl(relid_a, 0x2000, extra), 0u);
    guest.post(ScriptedGuest::message<wire::MessageHeader>(MessageType::unload));
    EXPECT_TRUE(guest.expect(MessageType::unload_response));
    EXPECT_FALSE(server.connected());
    EXPECT_FALSE(server.channel_open(relid_a));
    EXPECT_EQ(server.gpadl_count(), 0u);
    EXPECT_EQ(echo_a.closes(), 1u);
    EXPECT_EQ(echo_a.resets(), 1u);
    // After unload, channel messages are ignored until the guest reconnects.
    guest.post(ScriptedGuest::message<wire::MessageHeader>(MessageType::request_offers));
    EXPECT_TRUE(guest.no_messages());
    ASSERT_TRUE(guest.connect(wire::version_win10_v5_3));
    auto offers = guest.request_offers();
    ASSERT_EQ(offers.size(), 1u);
    ScriptedGuest::OpenedChannel again;
    EXPECT_EQ(guest.open(offers[0], 0x1000, 2, 2, again), 0u);
}

TEST_F(VmbusServerTest, HotAddAndRescind)
{
    connect_with_echo();
    uint32_t relid_b = *server.add_device(echo_b);
    auto hot = guest.expect(MessageType::offer_channel); // offered at once
    ASSERT_TRUE(hot);
    auto offer_b = hot->as<wire::OfferChannel>();
    EXPECT_EQ(offer_b.child_relid, relid_b);
    ScriptedGuest::OpenedChannel ch;
    ASSERT_EQ(guest.open(offer_b, 0x3000, 2, 2, ch), 0u);

    ASSERT_TRUE(server.remove_device(relid_b));
    auto rescind = guest.expect(MessageType::rescind_channel_offer);
    ASSERT_TRUE(rescind);
    EXPECT_EQ(rescind->as<wire::RescindOffer>().child_relid, relid_b);
    EXPECT_FALSE(server.channel_open(relid_b));
    EXPECT_EQ(echo_b.closes(), 1u);
    // Linux closes without tearing the ring down, then releases the relid.
    guest.close(relid_b);
    EXPECT_TRUE(guest.no_messages());
    EXPECT_EQ(server.gpadl_count(), 1u);
    // The relid stays taken until RELID_RELEASED.
    EchoDevice echo_c(wire::guid("12345678-1234-1234-1234-123456789abc"));
    uint32_t relid_c = *server.add_device(echo_c);
    EXPECT_NE(relid_c, relid_b);
    EXPECT_TRUE(guest.expect(MessageType::offer_channel));
    auto released = ScriptedGuest::message<wire::RelidReleased>(MessageType::relid_released);
    released.child_relid = relid_b;
    guest.post(released);
    EXPECT_EQ(server.gpadl_count(), 0u);
    guest.post(released); // again: ignored
    EXPECT_TRUE(guest.no_messages());
    EchoDevice echo_d(wire::guid("12345678-1234-1234-1234-123456789abd"));
    EXPECT_EQ(*server.add_device(echo_d), relid_b); // reused
    EXPECT_TRUE(guest.expect(MessageType::offer_channel));
    EXPECT_FALSE(server.remove_device(999));
    // Removing a device before it was offered needs no rescind.
    server.reset();
    ASSERT_TRUE(server.remove_device(relid_c));
    EXPECT_TRUE(guest.no_messages());
}

TEST_F(VmbusServerTest, ShortMessagesOfEveryTypeAreIgnored)
{
    connect_with_echo();
    for (uint32_t type = 0; type <= 30; ++type) {
        size_t min = wire::min_guest_message_size(static_cast<MessageType>(type));
        for (size_t size : {size_t {0}, size_t {4}, min - 1}) {
            if (size >= min && min > 8)
                continue;
            std::vector<uint8_t> bytes(size, 0xff);
            if (size >= 4)
                std::memcpy(bytes.data(), &type, 4);
            EXPECT_EQ(guest.post_raw(bytes), hv_status::success);
        }
    }
    // Host-to-guest types and unknown types of full size are ignored as well.
    for (uint32_t type : {1u, 2u, 4u, 6u, 10u, 12u, 15u, 17u, 18u, 23u, 24u, 99u}) {
        std::vector<uint8_t> bytes(240, 0);
        std::memcpy(bytes.data(), &type, 4);
        EXPECT_EQ(guest.post_raw(bytes), hv_status::success);
    }
    EXPECT_TRUE(server.connected());
    expect_server_still_works();
}

TEST_F(VmbusServerTest, BadGpadlsAreRefused)
{
    connect_with_echo();
    // PFN outside guest RAM (8 MiB) and absurd PFNs.
    std::vector<uint64_t> outside {guest.alloc_pages(1), 2048};
    EXPECT_NE(guest.create_gpadl(relid_a, 0x10, outside), 0u);
    std::vector<uint64_t> absurd {~uint64_t {0}};
    EXPECT_NE(guest.create_gpadl(relid_a, 0x11, absurd), 0u);
    // Unknown relid.
    std::vector<uint64_t> good {guest.alloc_pages(1)};
    EXPECT_NE(guest.create_gpadl(77, 0x12, good), 0u);
    // Duplicate id: refused, the original stays.
    EXPECT_EQ(guest.create_gpadl(relid_a, 0x13, good), 0u);
    EXPECT_NE(guest.create_gpadl(relid_a, 0x13, good), 0u);
    EXPECT_EQ(server.gpadl_count(), 1u);
    // Double free: the second teardown is ignored.
    EXPECT_TRUE(guest.teardown_gpadl(relid_a, 0x13));
    EXPECT_FALSE(guest.teardown_gpadl(relid_a, 0x13));
    // Bad range descriptions.
    auto send_header = [&](uint16_t range_count, uint16_t length, wire::GpaRange range, size_t pfn_count) {
        auto h = ScriptedGuest::message<wire::GpadlHeader>(MessageType::gpadl_header);
        h.child_relid = relid_a;
        h.gpadl = 0x20;
        h.range_count = range_count;
        h.range_buffer_length = length;
        std::vector<uint8_t> bytes(sizeof(h));
        std::memcpy(bytes.data(), &h, sizeof(h));
        auto* r = reinterpret_cast<const uint8_t*>(&range);
        bytes.insert(bytes.end(), r, r + 8);
        for (size_t i = 0; i < pfn_count; ++i) {
            auto* p = reinterpret_cast<const uint8_t*>(&good[0]);
            bytes.insert(bytes.end(), p, p + 8);
        }
        guest.post_raw(bytes);
        auto reply = guest.expect(MessageType::gpadl_created);
        return reply ? reply->as<wire::GpadlCreated>().creation_status : 0u;
    };
    EXPECT_NE(send_header(0, 16, {4096, 0}, 1), 0u);     // no ranges
    EXPECT_NE(send_header(1, 12, {4096, 0}, 1), 0u);     // length not a multiple of 8
    EXPECT_NE(send_header(1, 8, {4096, 0}, 0), 0u);      // no room for a PFN
    EXPECT_NE(send_header(1, 16, {0, 0}, 1), 0u);        // empty range
    EXPECT_NE(send_header(1, 16, {4096, 4096}, 1), 0u);  // offset beyond the first page
    EXPECT_NE(send_header(1, 16, {8192, 0}, 1), 0u);     // needs 2 PFNs, has 1
    EXPECT_NE(send_header(1, 24, {4096, 0}, 2), 0u);     // stray PFN
    // Two ranges (the second range header reads {byte_count = low half of the PFN, offset 0}, one page): valid.
    EXPECT_EQ(send_header(2, 32, {4096, 0}, 3), 0u);
    EXPECT_TRUE(guest.teardown_gpadl(relid_a, 0x20));
    EXPECT_NE(send_header(2, 32, {4096, 4000}, 3), 0u); // first range spans 2 pages: no room for range 2
    EXPECT_NE(send_header(1, 16, {4096, 0}, 2), 0u);     // more bytes than announced
    // A body overrunning its GPADL, a body for nothing.
    auto h = ScriptedGuest::message<wire::GpadlHeader>(MessageType::gpadl_header);
    h.child_relid = relid_a;
    h.gpadl = 0x30;
    h.range_count = 1;
    h.range_buffer_length = 8 + 30 * 8;
    guest.post(h);
    auto b = ScriptedGuest::message<wire::GpadlBody>(MessageType::gpadl_body);
    b.gpadl = 0x30;
    std::vector<uint8_t> body(sizeof(b) + 31 * 8, 0);
    std::memcpy(body.data(), &b, sizeof(b));
    guest.post_raw(body);
    auto reply = guest.expect(MessageType::gpadl_created);
    ASSERT_TRUE(reply);
    EXPECT_NE(reply->as<wire::GpadlCreated>().creation_status, 0u);
    guest.post_raw(body);
    EXPECT_TRUE(guest.no_messages());
    EXPECT_EQ(server.gpadl_count(), 0u);
    expect_server_still_works();
}

TEST_F(VmbusServerTest, BadOpensAreRefused)
{
    auto offer = connect_with_echo();
    auto open = [&](uint32_t relid, uint32_t gpadl, uint32_t split) {
        auto msg = ScriptedGuest::message<wire::OpenChannel>(MessageType::open_channel);
        msg.child_relid = relid;
        msg.open_id = 9;
        msg.ring_gpadl_handle = gpadl;
        msg.downstream_ring_page_offset = split;
        guest.post(msg);
        auto reply = guest.expect(MessageType::open_channel_result);
        return reply ? reply->as<wire::OpenResult>().status : 0u;
    };
    EXPECT_NE(open(relid_a, 0x55, 2), 0u); // no such GPADL
    EXPECT_NE(open(42, 0x55, 2), 0u);      // no such relid
    uint64_t first = guest.alloc_pages(4);
    std::vector<uint64_t> pfns {first, first + 1, first + 2, first + 3};
    ASSERT_EQ(guest.create_gpadl(relid_a, 0x40, pfns), 0u);
    EXPECT_NE(open(relid_a, 0x40, 0), 0u); // no guest -> host ring
    EXPECT_NE(open(relid_a, 0x40, 1), 0u); // control page only
    EXPECT_NE(open(relid_a, 0x40, 3), 0u); // host -> guest ring without data
    EXPECT_NE(open(relid_a, 0x40, 9), 0u); // beyond the GPADL
    // Corrupt ring indices in a control page.
    ASSERT_TRUE(memory.write_obj<uint32_t>(first * 4096 + 4, 4096));
    EXPECT_NE(open(relid_a, 0x40, 2), 0u);
    ASSERT_TRUE(memory.write_obj<uint32_t>(first * 4096 + 4, 0));
    ASSERT_TRUE(memory.write_obj<uint32_t>((first + 2) * 4096, 13));
    EXPECT_NE(open(relid_a, 0x40, 2), 0u);
    ASSERT_TRUE(memory.write_obj<uint32_t>((first + 2) * 4096, 0));
    EXPECT_EQ(server.gpadl_count(), 1u);
    EXPECT_EQ(open(relid_a, 0x40, 2), 0u);
    EXPECT_NE(open(relid_a, 0x40, 2), 0u); // double open
    EXPECT_TRUE(server.channel_open(relid_a));
    // Teardown of the ring GPADL of an open channel is deferred until the close.
    auto td = ScriptedGuest::message<wire::GpadlTeardown>(MessageType::gpadl_teardown);
    td.child_relid = relid_a;
    td.gpadl = 0x40;
    guest.post(td);
    EXPECT_TRUE(guest.no_messages());
    guest.post(td); // repeated: ignored
    EXPECT_TRUE(guest.no_messages());
    guest.close(relid_a);
    auto torn = guest.expect(MessageType::gpadl_torndown);
    ASSERT_TRUE(torn);
    EXPECT_EQ(torn->as<wire::GpadlTorndown>().gpadl, 0x40u);
    guest.close(relid_a); // not open: ignored
    EXPECT_TRUE(guest.no_messages());
    // A GPADL of another relid cannot be a ring.
    EchoDevice other(instance_b);
    uint32_t relid_b = *server.add_device(other);
    EXPECT_TRUE(guest.expect(MessageType::offer_channel));
    ASSERT_EQ(guest.create_gpadl(relid_b, 0x41, pfns), 0u);
    EXPECT_NE(open(relid_a, 0x41, 2), 0u);
    // MODIFYCHANNEL for a closed channel is refused (5.3 answers).
    auto modify = ScriptedGuest::message<wire::ModifyChannel>(MessageType::modify_channel);
    modify.child_relid = relid_a;
    guest.post(modify);
    auto ack = guest.expect(MessageType::modify_channel_response);
    ASSERT_TRUE(ack);
    EXPECT_NE(ack->as<wire::ModifyChannelResponse>().status, 0u);
    ASSERT_TRUE(server.remove_device(relid_b));
    EXPECT_TRUE(guest.expect(MessageType::rescind_channel_offer));
    (void)offer;
    expect_server_still_works();
}

TEST_F(VmbusServerTest, WrongStateMessagesAreIgnored)
{
    relid_a = *server.add_device(echo_a);
    // Before INITIATE_CONTACT nothing is answered.
    auto open = ScriptedGuest::message<wire::OpenChannel>(MessageType::open_channel);
    open.child_relid = relid_a;
    guest.post(open);
    guest.post(ScriptedGuest::message<wire::MessageHeader>(MessageType::request_offers));
    guest.post(ScriptedGuest::message<wire::MessageHeader>(MessageType::unload));
    EXPECT_TRUE(guest.no_messages());
    // Open before the offers were requested: refused.
    ASSERT_TRUE(guest.connect(wire::version_win10_v5_3));
    guest.post(open);
    auto reply = guest.expect(MessageType::open_channel_result);
    ASSERT_TRUE(reply);
    EXPECT_NE(reply->as<wire::OpenResult>().status, 0u);
    // MODIFYCHANNEL below 4.1 is ignored silently (no response exists).
    ASSERT_TRUE(guest.connect(wire::version_win10));
    auto modify = ScriptedGuest::message<wire::ModifyChannel>(MessageType::modify_channel);
    modify.child_relid = relid_a;
    guest.post(modify);
    EXPECT_TRUE(guest.no_messages());
    // A reconnect without UNLOAD starts a fresh session.
    ASSERT_TRUE(guest.connect(wire::version_win10_v5_3));
    EXPECT_EQ(guest.request_offers().size(), 1u);
    expect_server_still_works();
}

TEST_F(VmbusServerTest, CorruptRingAfterOpenStopsOnlyThatChannel)
{
    auto offer = connect_with_echo();
    ScriptedGuest::OpenedChannel ch;
    ASSERT_EQ(guest.open(offer, 0x1000, 2, 2, ch), 0u);
    std::vector<uint8_t> payload(16);
    ASSERT_TRUE(guest.send(ch, payload, 1));
    ASSERT_TRUE(guest.receive(ch));
    // Write index beyond the ring, then a packet header that lies about its length.
    ch.outbound->set_control(wire::ring_offset_write_index, 0x7ffffff8);
    EXPECT_EQ(server.on_signal_event(ch.connection_id, 0), hv_status::success);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(guest.send(ch, payload, 2) || true);
    EXPECT_FALSE(guest.receive(ch, std::chrono::milliseconds(50)));
    // Close and reopen with a fresh ring: works again.
    guest.close(relid_a);
    EXPECT_TRUE(guest.teardown_gpadl(relid_a, 0x1000));
    ScriptedGuest::OpenedChannel again;
    ASSERT_EQ(guest.open(offer, 0x1001, 2, 2, again), 0u);
    ASSERT_TRUE(guest.send(again, payload, 3));
    auto echo = guest.receive(again);
    ASSERT_TRUE(echo);
    EXPECT_EQ(echo->desc.trans_id, 3u);

    // Lying packet header on the new ring.
    wire::VmPacketDescriptor desc {6, 2, 0x1000, 0, 9};
    ASSERT_TRUE(memory.write_obj(again.pfns[1] * 4096 + again.outbound->control(0), desc));
    uint32_t w = again.outbound->control(0);
    again.outbound->set_control(0, w + 24);
    server.on_signal_event(again.connection_id, 0);
    EXPECT_FALSE(guest.receive(again, std::chrono::milliseconds(50)));
    guest.close(relid_a);
    EXPECT_FALSE(server.channel_open(relid_a));
}

TEST_F(VmbusServerTest, AliasedRingPagesDoNotHurtTheHost)
{
    auto offer = connect_with_echo();
    // Both rings on the same two pages.
    uint64_t first = guest.alloc_pages(2);
    std::vector<uint64_t> pfns {first, first + 1, first, first + 1};
    ASSERT_EQ(guest.create_gpadl(relid_a, 0x77, pfns), 0u);
    auto msg = ScriptedGuest::message<wire::OpenChannel>(MessageType::open_channel);
    msg.child_relid = relid_a;
    msg.ring_gpadl_handle = 0x77;
    msg.downstream_ring_page_offset = 2;
    guest.post(msg);
    EXPECT_TRUE(guest.expect(MessageType::open_channel_result));
    testing::GuestRing ring(memory, {first, first + 1});
    for (uint64_t i = 0; i < 50; ++i) {
        std::vector<uint8_t> payload(64, static_cast<uint8_t>(i));
        bool signal = false;
        ring.write_packet(6, 0, i, payload, &signal);
        server.on_signal_event(offer.connection_id, 0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    guest.close(relid_a);
    EXPECT_FALSE(server.channel_open(relid_a));
    EXPECT_TRUE(guest.teardown_gpadl(relid_a, 0x77));
    expect_server_still_works();
}

TEST_F(VmbusServerTest, FailedPostsAreLoggedNotFatal)
{
    relid_a = *server.add_device(echo_a);
    synic.refuse_posts = true;
    auto msg = ScriptedGuest::message<wire::InitiateContact>(MessageType::initiate_contact);
    msg.version_requested = wire::version_win10_v5_3;
    msg.interrupt_page_or_sint = 2;
    msg.target_vcpu = 999;
    EXPECT_EQ(guest.post(msg, 4), hv_status::success);
    synic.refuse_posts = false;
    EXPECT_TRUE(guest.connect(wire::version_win10_v5_3));
}

TEST(GuidTest, ParsesAndFormatsMixedEndian)
{
    auto scsi = Guid::parse("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f");
    ASSERT_TRUE(scsi);
    EXPECT_EQ(scsi->bytes[0], 0xd9);
    EXPECT_EQ(scsi->bytes[4], 0xa1);
    EXPECT_EQ(scsi->bytes[6], 0x29);
    EXPECT_EQ(scsi->bytes[8], 0xb6);
    EXPECT_EQ(scsi->to_string(), "ba6163d9-04a1-4d29-b605-72e2ffb1dc7f");
    EXPECT_EQ(Guid::parse("{BA6163D9-04A1-4D29-B605-72E2FFB1DC7F}"), scsi);
    EXPECT_FALSE(Guid::parse("ba6163d9-04a1-4d29-b605-72e2ffb1dc7"));
    EXPECT_FALSE(Guid::parse("ba6163d9x04a1-4d29-b605-72e2ffb1dc7f"));
    EXPECT_FALSE(Guid::parse("ga6163d9-04a1-4d29-b605-72e2ffb1dc7f"));
}

} // namespace
} // namespace vmgen::vm::vmbus
