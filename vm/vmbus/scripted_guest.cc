#include "vm/vmbus/scripted_guest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

namespace vmgen::vm::vmbus::testing {

namespace wire = protocols::vmbus;
using wire::MessageType;

wire::MessageType SynicMessage::channel_type() const
{
    uint32_t value = 0;
    std::memcpy(&value, payload.data(), std::min(sizeof(value), payload.size()));
    return static_cast<MessageType>(value);
}

bool FakeSynic::post_message(uint32_t vp_index, uint8_t sint, uint32_t message_type,
                             std::span<const uint8_t> payload)
{
    std::lock_guard lock(m_mutex);
    if (refuse_posts)
        return false;
    EXPECT_LE(payload.size(), wire::max_message_size);
    m_messages.push_back(SynicMessage {vp_index, sint, message_type, {payload.begin(), payload.end()}});
    return true;
}

bool FakeSynic::signal_event(uint32_t vp_index, uint8_t sint, uint32_t flag)
{
    std::lock_guard lock(m_mutex);
    m_events.push_back(SynicEvent {vp_index, sint, flag});
    return true;
}

std::optional<SynicMessage> FakeSynic::pop_message()
{
    std::lock_guard lock(m_mutex);
    if (m_messages.empty())
        return std::nullopt;
    SynicMessage m = std::move(m_messages.front());
    m_messages.pop_front();
    return m;
}

size_t FakeSynic::message_count() const
{
    std::lock_guard lock(m_mutex);
    return m_messages.size();
}

size_t FakeSynic::event_count(uint32_t flag) const
{
    std::lock_guard lock(m_mutex);
    return static_cast<size_t>(
        std::count_if(m_events.begin(), m_events.end(), [&](const SynicEvent& e) { return e.flag == flag; }));
}

std::vector<SynicEvent> FakeSynic::events() const
{
    std::lock_guard lock(m_mutex);
    return m_events;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return true;
}

// ---------------------------------------------------------------------------------------------------------
// GuestRing

uint32_t GuestRing::control(uint32_t offset) const
{
    auto v = m_memory.read_obj<uint32_t>(m_pfns[0] * 4096 + offset);
    EXPECT_TRUE(v.has_value());
    return v.value_or(0u);
}

void GuestRing::set_control(uint32_t offset, uint32_t value) const
{
    EXPECT_TRUE(m_memory.write_obj(m_pfns[0] * 4096 + offset, value).has_value());
}

void GuestRing::write_data(uint32_t offset, std::span<const uint8_t> bytes) const
{
    for (size_t i = 0; i < bytes.size();) {
        uint32_t at = (offset + static_cast<uint32_t>(i)) % data_size();
        uint32_t in_page = at % 4096;
        size_t chunk = std::min<size_t>(4096 - in_page, bytes.size() - i);
        uint64_t gpa = m_pfns[1 + at / 4096] * 4096 + in_page;
        EXPECT_TRUE(m_memory.write(gpa, bytes.subspan(i, chunk)).has_value());
        i += chunk;
    }
}

void GuestRing::read_data(uint32_t offset, std::span<uint8_t> bytes) const
{
    for (size_t i = 0; i < bytes.size();) {
        uint32_t at = (offset + static_cast<uint32_t>(i)) % data_size();
        uint32_t in_page = at % 4096;
        size_t chunk = std::min<size_t>(4096 - in_page, bytes.size() - i);
        uint64_t gpa = m_pfns[1 + at / 4096] * 4096 + in_page;
        EXPECT_TRUE(m_memory.read(gpa, bytes.subspan(i, chunk)).has_value());
        i += chunk;
    }
}

bool GuestRing::write_packet(uint16_t type, uint16_t flags, uint64_t trans_id, std::span<const uint8_t> payload,
                             bool* signalled)
{
    return write_packet(type, flags, trans_id, {}, payload, signalled);
}

bool GuestRing::write_packet(uint16_t type, uint16_t flags, uint64_t trans_id, std::span<const uint8_t> header,
                             std::span<const uint8_t> payload, bool* signalled)
{
    EXPECT_EQ(header.size() % 8, 0u);
    if (signalled)
        *signalled = false;
    uint32_t size = data_size();
    uint32_t write = control(wire::ring_offset_write_index);
    uint32_t read = control(wire::ring_offset_read_index);
    uint32_t padded = static_cast<uint32_t>(header.size() + ((payload.size() + 7) & ~size_t {7}));
    uint32_t total = 16 + padded + 8;
    uint32_t free = write >= read ? size - (write - read) : read - write;
    if (free <= total)
        return false;
    wire::VmPacketDescriptor desc {type, static_cast<uint16_t>((16 + header.size()) / 8),
                                   static_cast<uint16_t>((16 + padded) / 8), flags, trans_id};
    auto* d = reinterpret_cast<const uint8_t*>(&desc);
    std::vector<uint8_t> bytes(d, d + sizeof(desc));
    bytes.insert(bytes.end(), header.begin(), header.end());
    bytes.insert(bytes.end(), payload.begin(), payload.end());
    bytes.resize(16 + padded, 0);
    uint64_t trailer = uint64_t {write} << 32;
    auto* t = reinterpret_cast<const uint8_t*>(&trailer);
    bytes.insert(bytes.end(), t, t + 8);
    write_data(write, bytes);
    uint32_t old_write = write;
    set_control(wire::ring_offset_write_index, (write + total) % size);
    if (control(wire::ring_offset_interrupt_mask) == 0 && control(wire::ring_offset_read_index) == old_write &&
        signalled)
        *signalled = true;
    return true;
}

std::optional<GuestRing::Packet> GuestRing::read_packet()
{
    uint32_t size = data_size();
    uint32_t write = control(wire::ring_offset_write_index);
    uint32_t read = control(wire::ring_offset_read_index);
    if (write == read)
        return std::nullopt;
    Packet packet;
    read_data(read, std::span(reinterpret_cast<uint8_t*>(&packet.desc), sizeof(packet.desc)));
    uint32_t length = uint32_t {packet.desc.len8} * 8;
    uint32_t offset = uint32_t {packet.desc.offset8} * 8;
    EXPECT_GE(length, offset);
    packet.payload.resize(length - offset);
    read_data(read + offset, packet.payload);
    read_data(read + length, std::span(reinterpret_cast<uint8_t*>(&packet.trailer), 8));
    set_control(wire::ring_offset_read_index, (read + length + 8) % size);
    return packet;
}

// ---------------------------------------------------------------------------------------------------------
// ScriptedGuest

uint16_t ScriptedGuest::post_raw(std::span<const uint8_t> bytes, std::optional<uint32_t> connection_id)
{
    return m_server.on_post_message(connection_id.value_or(m_message_connection_id), wire::synic_message_type,
                                    bytes);
}

std::optional<SynicMessage> ScriptedGuest::expect(MessageType type)
{
    auto m = m_synic.pop_message();
    if (!m) {
        ADD_FAILURE() << "expected message type " << static_cast<uint32_t>(type) << ", got none";
        return std::nullopt;
    }
    EXPECT_EQ(m->type, wire::synic_message_type);
    if (m->channel_type() != type) {
        ADD_FAILURE() << "expected message type " << static_cast<uint32_t>(type) << ", got "
                      << static_cast<uint32_t>(m->channel_type());
        return std::nullopt;
    }
    return m;
}

bool ScriptedGuest::connect(uint32_t version, uint32_t target_vp)
{
    auto msg = message<wire::InitiateContact>(MessageType::initiate_contact);
    msg.version_requested = version;
    msg.target_vcpu = target_vp;
    bool modern = version >= wire::version_win10_v5;
    msg.interrupt_page_or_sint = modern ? wire::message_sint : 0x5000;
    msg.monitor_page1 = 0x6000;
    msg.monitor_page2 = 0x7000;
    uint32_t conn = modern ? wire::message_connection_id_4 : wire::message_connection_id;
    EXPECT_EQ(post(msg, conn), hv_status::success);
    auto reply = expect(MessageType::version_response);
    if (!reply)
        return false;
    EXPECT_EQ(reply->vp, target_vp);
    EXPECT_EQ(reply->payload.size(), sizeof(wire::VersionResponse));
    auto response = reply->as<wire::VersionResponse>();
    if (response.version_supported != 0)
        m_message_connection_id = modern ? response.message_connection_id : wire::message_connection_id;
    return response.version_supported != 0;
}

std::vector<wire::OfferChannel> ScriptedGuest::request_offers()
{
    std::vector<wire::OfferChannel> offers;
    EXPECT_EQ(post(message<wire::MessageHeader>(MessageType::request_offers)), hv_status::success);
    while (auto m = m_synic.pop_message()) {
        if (m->channel_type() == MessageType::all_offers_delivered)
            return offers;
        EXPECT_EQ(m->channel_type(), MessageType::offer_channel);
        EXPECT_EQ(m->payload.size(), sizeof(wire::OfferChannel));
        offers.push_back(m->as<wire::OfferChannel>());
    }
    ADD_FAILURE() << "no ALLOFFERS_DELIVERED";
    return offers;
}

uint64_t ScriptedGuest::alloc_pages(size_t count)
{
    uint64_t first = m_next_page;
    m_next_page += count;
    EXPECT_TRUE(m_memory.fill(first * 4096, 0, count * 4096).has_value());
    return first;
}

void ScriptedGuest::send_gpadl(uint32_t relid, uint32_t gpadl_id, std::span<const uint64_t> pfns)
{
    std::vector<uint8_t> header(sizeof(wire::GpadlHeader) + sizeof(wire::GpaRange));
    auto h = message<wire::GpadlHeader>(MessageType::gpadl_header);
    h.child_relid = relid;
    h.gpadl = gpadl_id;
    h.range_count = 1;
    h.range_buffer_length = static_cast<uint16_t>(sizeof(wire::GpaRange) + pfns.size() * 8);
    std::memcpy(header.data(), &h, sizeof(h));
    wire::GpaRange range {static_cast<uint32_t>(pfns.size() * 4096), 0};
    std::memcpy(header.data() + sizeof(h), &range, sizeof(range));
    size_t in_header = std::min(pfns.size(), wire::gpadl_header_max_pfns);
    for (size_t i = 0; i < in_header; ++i) {
        auto* p = reinterpret_cast<const uint8_t*>(&pfns[i]);
        header.insert(header.end(), p, p + 8);
    }
    EXPECT_LE(header.size(), wire::max_message_size);
    EXPECT_EQ(post_raw(header), hv_status::success);
    for (size_t done = in_header; done < pfns.size();) {
        size_t n = std::min(pfns.size() - done, wire::gpadl_body_max_pfns);
        auto b = message<wire::GpadlBody>(MessageType::gpadl_body);
        b.gpadl = gpadl_id;
        std::vector<uint8_t> body(sizeof(b));
        std::memcpy(body.data(), &b, sizeof(b));
        auto* p = reinterpret_cast<const uint8_t*>(&pfns[done]);
        body.insert(body.end(), p, p + n * 8);
        EXPECT_LE(body.size(), wire::max_message_size);
        EXPECT_EQ(post_raw(body), hv_status::success);
        done += n;
    }
}

std::optional<uint32_t> ScriptedGuest::create_gpadl(uint32_t relid, uint32_t gpadl_id,
                                                    std::span<const uint64_t> pfns)
{
    send_gpadl(relid, gpadl_id, pfns);
    auto reply = expect(MessageType::gpadl_created);
    if (!reply)
        return std::nullopt;
    auto created = reply->as<wire::GpadlCreated>();
    EXPECT_EQ(created.gpadl, gpadl_id);
    EXPECT_EQ(created.child_relid, relid);
    return created.creation_status;
}

bool ScriptedGuest::teardown_gpadl(uint32_t relid, uint32_t gpadl_id)
{
    auto msg = message<wire::GpadlTeardown>(MessageType::gpadl_teardown);
    msg.child_relid = relid;
    msg.gpadl = gpadl_id;
    EXPECT_EQ(post(msg), hv_status::success);
    auto m = m_synic.pop_message();
    return m && m->channel_type() == MessageType::gpadl_torndown && m->as<wire::GpadlTorndown>().gpadl == gpadl_id;
}

std::optional<uint32_t> ScriptedGuest::open(const wire::OfferChannel& offer, uint32_t gpadl_id,
                                            uint32_t send_pages, uint32_t recv_pages, OpenedChannel& out,
                                            uint32_t target_vp)
{
    out.relid = offer.child_relid;
    out.connection_id = offer.connection_id;
    out.gpadl = gpadl_id;
    out.send_pages = send_pages;
    uint64_t first = alloc_pages(send_pages + recv_pages);
    out.pfns.clear();
    for (uint64_t i = 0; i < send_pages + recv_pages; ++i)
        out.pfns.push_back(first + i);
    out.outbound.emplace(m_memory, std::vector<uint64_t>(out.pfns.begin(), out.pfns.begin() + send_pages));
    out.inbound.emplace(m_memory, std::vector<uint64_t>(out.pfns.begin() + send_pages, out.pfns.end()));
    out.outbound->set_control(wire::ring_offset_feature_bits, 1);
    out.inbound->set_control(wire::ring_offset_feature_bits, 1);
    auto status = create_gpadl(out.relid, gpadl_id, out.pfns);
    EXPECT_EQ(status, 0u);
    if (status != 0u)
        return std::nullopt;
    auto msg = message<wire::OpenChannel>(MessageType::open_channel);
    msg.child_relid = out.relid;
    msg.open_id = out.relid;
    msg.ring_gpadl_handle = gpadl_id;
    msg.target_vp = target_vp;
    msg.downstream_ring_page_offset = send_pages;
    msg.user_data[0] = 0x42;
    EXPECT_EQ(post(msg), hv_status::success);
    auto reply = expect(MessageType::open_channel_result);
    if (!reply)
        return std::nullopt;
    auto result = reply->as<wire::OpenResult>();
    EXPECT_EQ(result.child_relid, out.relid);
    EXPECT_EQ(result.open_id, out.relid);
    return result.status;
}

void ScriptedGuest::close(uint32_t relid)
{
    auto msg = message<wire::CloseChannel>(MessageType::close_channel);
    msg.child_relid = relid;
    EXPECT_EQ(post(msg), hv_status::success);
}

bool ScriptedGuest::send(OpenedChannel& channel, std::span<const uint8_t> payload, uint64_t trans_id,
                         uint16_t flags)
{
    return send_packet(channel, wire::packet_type_data_inband, flags, trans_id, {}, payload);
}

bool ScriptedGuest::send_packet(OpenedChannel& channel, uint16_t type, uint16_t flags, uint64_t trans_id,
                                std::span<const uint8_t> header, std::span<const uint8_t> payload)
{
    bool signal = false;
    if (!channel.outbound->write_packet(type, flags, trans_id, header, payload, &signal))
        return false;
    if (signal) {
        EXPECT_EQ(m_server.on_signal_event(channel.connection_id, 0), hv_status::success);
    }
    return true;
}

std::optional<GuestRing::Packet> ScriptedGuest::receive(OpenedChannel& channel, std::chrono::milliseconds timeout)
{
    std::optional<GuestRing::Packet> packet;
    wait_until([&] { return (packet = channel.inbound->read_packet()).has_value(); }, timeout);
    if (packet) {
        // Linux hv_pkt_iter_close: signal a blocked host once enough space is free.
        GuestRing& ring = *channel.inbound;
        uint32_t pending = ring.control(wire::ring_offset_pending_send_sz);
        uint32_t write = ring.control(wire::ring_offset_write_index);
        uint32_t read = ring.control(wire::ring_offset_read_index);
        uint32_t free = write >= read ? ring.data_size() - (write - read) : read - write;
        if (pending != 0 && free > pending)
            m_server.on_signal_event(channel.connection_id, 0);
    }
    return packet;
}

} // namespace vmgen::vm::vmbus::testing
