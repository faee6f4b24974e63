#include "vm/storvsp/storvsc_test_guest.h"

#include <cstring>
#include <thread>

namespace vmgen::vm::storvsp::testing {

namespace vmbus_wire = protocols::vmbus;

ControllerOptions StorvscTest::default_options()
{
    ControllerOptions options;
    options.instance_id = instance;
    options.name = "scsi0";
    options.io_threads = 2;
    return options;
}

StorvscTest::StorvscTest(ControllerOptions options) : memory(std::move(*GuestMemory::create({{0, 16ull << 20}})))
{
    auto created = StorvspController::create(std::move(options));
    EXPECT_TRUE(created) << (created ? "" : created.error().message());
    if (created)
        controller = std::move(*created);
    server = std::make_unique<vmbus::VmbusServer>(memory, synic);
    guest = std::make_unique<ScriptedGuest>(*server, synic, memory);
    if (controller) {
        EXPECT_TRUE(server->add_device(*controller));
    }
    EXPECT_TRUE(guest->connect(vmbus_wire::version_win10_v5_3));
    for (const auto& o : guest->request_offers()) {
        if (o.offer.interface_type == scsi_class_id && o.offer.interface_instance == instance)
            offer = o;
    }
    EXPECT_TRUE(offer.has_value());
}

StorvscTest::~StorvscTest()
{
    // The server first: it closes the channel (on_close waits for the controller's I/O).
    guest.reset();
    server.reset();
}

void StorvscTest::open(uint32_t send_pages, uint32_t receive_pages)
{
    ASSERT_TRUE(offer);
    ASSERT_EQ(guest->open(*offer, 0x200, send_pages, receive_pages, channel), 0u);
}

bool StorvscTest::send_bytes(std::span<const uint8_t> payload, uint64_t trans_id, uint16_t flags)
{
    return guest->send(channel, payload, trans_id, flags);
}

bool StorvscTest::send_vstor(const wire::VstorPacket& packet, uint64_t trans_id, uint16_t flags)
{
    return send_bytes(std::span(reinterpret_cast<const uint8_t*>(&packet), sizeof(packet)), trans_id, flags);
}

std::optional<Completion> StorvscTest::receive(std::chrono::milliseconds timeout)
{
    auto packet = guest->receive(channel, timeout);
    if (!packet)
        return std::nullopt;
    Completion c;
    c.trans_id = packet->desc.trans_id;
    c.type = packet->desc.type;
    c.size = packet->payload.size();
    std::memcpy(&c.packet, packet->payload.data(), std::min(packet->payload.size(), sizeof(c.packet)));
    return c;
}

wire::ChannelProperties StorvscTest::init_like_linux(std::span<const uint16_t> versions)
{
    wire::VstorPacket packet {};
    packet.operation = wire::op_begin_initialization;
    packet.flags = wire::request_completion_flag;
    EXPECT_TRUE(send_vstor(packet, rqst_init));
    auto reply = receive();
    EXPECT_TRUE(reply);
    if (!reply)
        return {};
    EXPECT_EQ(reply->trans_id, rqst_init);
    EXPECT_EQ(reply->type, vmbus_wire::packet_type_completion);
    EXPECT_GE(reply->size, wire::packet_size); // Linux drops shorter completions
    EXPECT_EQ(reply->packet.operation, wire::op_complete_io);
    EXPECT_EQ(reply->packet.status, 0u);

    bool accepted = false;
    for (uint16_t version : versions) {
        packet = {};
        packet.operation = wire::op_query_protocol_version;
        packet.flags = wire::request_completion_flag;
        packet.version.major_minor = version;
        EXPECT_TRUE(send_vstor(packet, rqst_init));
        reply = receive();
        EXPECT_TRUE(reply);
        if (!reply)
            return {};
        EXPECT_EQ(reply->packet.operation, wire::op_complete_io);
        if (reply->packet.status == 0) {
            accepted = true;
            break;
        }
    }
    EXPECT_TRUE(accepted) << "no protocol version accepted";

    packet = {};
    packet.operation = wire::op_query_properties;
    packet.flags = wire::request_completion_flag;
    EXPECT_TRUE(send_vstor(packet, rqst_init));
    reply = receive();
    EXPECT_TRUE(reply);
    if (!reply)
        return {};
    EXPECT_EQ(reply->packet.status, 0u);
    wire::ChannelProperties properties = reply->packet.properties;

    packet = {};
    packet.operation = wire::op_end_initialization;
    packet.flags = wire::request_completion_flag;
    EXPECT_TRUE(send_vstor(packet, rqst_init));
    reply = receive();
    EXPECT_TRUE(reply);
    if (reply) {
        EXPECT_EQ(reply->packet.status, 0u);
    }
    return properties;
}

wire::VstorPacket StorvscTest::srb_packet(const Srb& srb)
{
    // storvsc_queuecommand + storvsc_do_io.
    wire::VstorPacket packet {};
    packet.operation = wire::op_execute_srb;
    packet.flags = wire::request_completion_flag;
    auto& s = packet.srb;
    s.length = sizeof(wire::VmscsiRequest);
    s.sense_info_length = wire::sense_buffer_size;
    s.time_out_value = 60;
    s.srb_flags = wire::srb_flags_disable_synch_transfer | wire::srb_flags_queue_action_enable |
                  wire::srb_flags_no_queue_freeze;
    s.queue_tag = 0xff;     // SP_UNTAGGED
    s.queue_action = 0x20;  // SRB_SIMPLE_TAG_REQUEST
    switch (srb.direction) {
    case scsi::DataDirection::Out:
        s.data_in = wire::data_write;
        s.srb_flags |= wire::srb_flags_data_out;
        break;
    case scsi::DataDirection::In:
        s.data_in = wire::data_read;
        s.srb_flags |= wire::srb_flags_data_in;
        break;
    case scsi::DataDirection::None: s.data_in = wire::data_unknown; break;
    }
    s.path_id = srb.path;
    s.target_id = srb.target;
    s.lun = srb.lun;
    s.cdb_length = static_cast<uint8_t>(std::min<size_t>(srb.cdb.size(), wire::max_cdb_length));
    std::memcpy(s.cdb_or_sense, srb.cdb.data(), s.cdb_length);
    s.data_transfer_length = srb.length;
    return packet;
}

std::vector<uint8_t> StorvscTest::gpa_header(uint64_t gpa, uint32_t length)
{
    uint32_t offset = static_cast<uint32_t>(gpa % 4096);
    uint64_t pages = (offset + uint64_t {length} + 4095) / 4096;
    std::vector<uint8_t> header(16 + pages * 8);
    uint32_t reserved = 0, count = 1;
    std::memcpy(header.data(), &reserved, 4);
    std::memcpy(header.data() + 4, &count, 4);
    std::memcpy(header.data() + 8, &length, 4);
    std::memcpy(header.data() + 12, &offset, 4);
    for (uint64_t i = 0; i < pages; ++i) {
        uint64_t pfn = gpa / 4096 + i;
        std::memcpy(header.data() + 16 + i * 8, &pfn, 8);
    }
    return header;
}

bool StorvscTest::send_srb(const Srb& srb, uint64_t trans_id)
{
    auto packet = srb_packet(srb);
    auto bytes = std::span(reinterpret_cast<const uint8_t*>(&packet), sizeof(packet));
    if (srb.length == 0)
        return send_bytes(bytes, trans_id);
    auto header = gpa_header(srb.gpa, srb.length);
    return guest->send_packet(channel, vmbus_wire::packet_type_data_using_gpa_direct,
                              vmbus_wire::packet_flag_completion_requested, trans_id, header, bytes);
}

bool StorvscTest::send_burst(const std::vector<Srb>& srbs)
{
    // The worker unmasks when its poll window ends and sleeps: from then on nothing is read until a signal.
    if (!vmbus::testing::wait_until(
            [&] { return channel.outbound->control(vmbus_wire::ring_offset_interrupt_mask) == 0; }))
        return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    uint64_t trans_id = 1;
    for (const Srb& srb : srbs) {
        auto packet = srb_packet(srb);
        auto bytes = std::span(reinterpret_cast<const uint8_t*>(&packet), sizeof(packet));
        bool written = srb.length == 0
            ? channel.outbound->write_packet(vmbus_wire::packet_type_data_inband,
                                             vmbus_wire::packet_flag_completion_requested, trans_id, bytes)
            : channel.outbound->write_packet(vmbus_wire::packet_type_data_using_gpa_direct,
                                             vmbus_wire::packet_flag_completion_requested, trans_id,
                                             gpa_header(srb.gpa, srb.length), bytes);
        if (!written)
            return false;
        ++trans_id;
    }
    return server->on_signal_event(channel.connection_id, 0) == hv_status::success;
}

std::optional<Completion> StorvscTest::execute(const Srb& srb)
{
    uint64_t trans_id = ++next_tag + 1;
    if (!send_srb(srb, trans_id))
        return std::nullopt;
    auto reply = receive();
    if (reply) {
        EXPECT_EQ(reply->trans_id, trans_id);
        EXPECT_EQ(reply->type, vmbus_wire::packet_type_completion);
        EXPECT_GE(reply->size, wire::packet_size);
        EXPECT_EQ(reply->packet.operation, wire::op_complete_io);
    }
    return reply;
}

bool StorvscTest::wait_invalid(uint64_t count)
{
    return vmbus::testing::wait_until([&] { return controller->stats().invalid_requests >= count; });
}

void StorvscTest::write_guest(uint64_t gpa, std::span<const uint8_t> bytes)
{
    ASSERT_TRUE(memory.write(gpa, bytes));
}

std::vector<uint8_t> StorvscTest::read_guest(uint64_t gpa, size_t size)
{
    std::vector<uint8_t> out(size);
    EXPECT_TRUE(memory.read(gpa, out));
    return out;
}

} // namespace vmgen::vm::storvsp::testing
