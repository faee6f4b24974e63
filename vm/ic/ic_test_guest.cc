#include "vm/ic/ic_test_guest.h"

namespace vmgen::vm::ic::testing {

wire::IcMessageHeader ic_header(std::span<const uint8_t> payload)
{
    return load_at<wire::IcMessageHeader>(payload, sizeof(wire::IcPipeHeader));
}

void set_ic_header(std::vector<uint8_t>& payload, const wire::IcMessageHeader& header)
{
    store_at(payload, sizeof(wire::IcPipeHeader), header);
}

bool linux_negotiate_response(std::vector<uint8_t>& payload, std::span<const IcVersion> framework,
                              std::span<const IcVersion> service)
{
    constexpr size_t hdr = wire::ic_header_size;
    auto header = ic_header(payload);
    header.flags = wire::ic_flag_transaction | wire::ic_flag_response;
    if (payload.size() < hdr + 4) {
        set_ic_header(payload, header);
        return false;
    }
    header.message_size = wire::ic_negotiate_response_size;
    set_ic_header(payload, header);
    auto fw_count = load_at<uint16_t>(payload, hdr);
    auto msg_count = load_at<uint16_t>(payload, hdr + 2);
    IcVersion fw {fw_count, 0};
    IcVersion msg {msg_count, 0};
    bool found = false;
    bool valid = fw_count <= wire::ic_max_version_count && msg_count <= wire::ic_max_version_count &&
                 hdr + 8 + 4u * (size_t {fw_count} + msg_count) <= payload.size();
    auto offered = [&](size_t index) { return load_at<IcVersion>(payload, hdr + 8 + 4 * index); };
    if (valid) {
        for (IcVersion want : framework) {
            for (size_t j = 0; j < fw_count && !found; ++j)
                if (offered(j) == want) {
                    fw = want;
                    found = true;
                }
            if (found)
                break;
        }
        if (found) {
            found = false;
            for (IcVersion want : service) {
                for (size_t j = fw_count; j < size_t {fw_count} + msg_count && !found; ++j)
                    if (offered(j) == want) {
                        msg = want;
                        found = true;
                    }
                if (found)
                    break;
            }
        }
    }
    store_at<uint16_t>(payload, hdr, found ? 1 : 0);
    store_at<uint16_t>(payload, hdr + 2, found ? 1 : 0);
    store_at(payload, hdr + 8, fw);
    store_at(payload, hdr + 12, msg);
    return found;
}

void linux_heartbeat_response(std::vector<uint8_t>& payload)
{
    auto header = ic_header(payload);
    header.flags = wire::ic_flag_transaction | wire::ic_flag_response;
    set_ic_header(payload, header);
    store_at<uint64_t>(payload, wire::ic_header_size, load_at<uint64_t>(payload, wire::ic_header_size) + 1);
}

void linux_shutdown_response(std::vector<uint8_t>& payload)
{
    auto header = ic_header(payload);
    header.flags = wire::ic_flag_transaction | wire::ic_flag_response;
    auto flags = load_at<uint32_t>(payload, wire::ic_header_size + offsetof(wire::ShutdownMessage, flags));
    header.status = flags <= 3 ? wire::hv_s_ok : wire::hv_e_fail;
    set_ic_header(payload, header);
}

IcTest::IcTest()
    : memory(std::move(*GuestMemory::create({{0, 8ull << 20}}))), server(memory, synic), guest(server, synic, memory)
{
    EXPECT_TRUE(server.add_device(shutdown));
    EXPECT_TRUE(server.add_device(heartbeat));
    EXPECT_TRUE(guest.connect(wire::version_win10_v5_3));
    offers = guest.request_offers();
    EXPECT_EQ(offers.size(), 2u);
}

std::optional<wire::OfferChannel> IcTest::offer_for(const Guid& class_id, const Guid& instance_id) const
{
    for (const auto& offer : offers)
        if (offer.offer.interface_type == class_id && offer.offer.interface_instance == instance_id)
            return offer;
    return std::nullopt;
}

void IcTest::open(const Guid& class_id, const Guid& instance_id, Channel& channel)
{
    auto offer = offer_for(class_id, instance_id);
    ASSERT_TRUE(offer);
    ASSERT_EQ(guest.open(*offer, next_gpadl++, 4, 4, channel), 0u);
}

std::optional<GuestRing::Packet> IcTest::receive(Channel& channel, std::chrono::milliseconds timeout)
{
    return guest.receive(channel, timeout);
}

bool IcTest::reply(Channel& channel, const GuestRing::Packet& request, std::span<const uint8_t> payload)
{
    return guest.send(channel, payload, request.desc.trans_id);
}

bool IcTest::negotiate_like_linux(Channel& channel, IcDevice& device, std::span<const IcVersion> service)
{
    auto request = receive(channel);
    if (!request)
        return false;
    std::vector<uint8_t> payload = request->payload;
    if (!linux_negotiate_response(payload, linux_framework_versions, service))
        return false;
    if (!reply(channel, *request, payload))
        return false;
    return vmbus::testing::wait_until([&] { return device.negotiated(); });
}

void IcTest::send_raw(Channel& channel, uint16_t type, std::span<const uint8_t> payload, uint64_t trans_id)
{
    bool signal = false;
    ASSERT_TRUE(channel.outbound->write_packet(type, 0, trans_id, payload, &signal));
    if (signal)
        server.on_signal_event(channel.connection_id, 0);
}

bool IcTest::wait_dropped(const IcDevice& device, uint64_t count)
{
    return vmbus::testing::wait_until([&] { return device.dropped_packets() >= count; });
}

} // namespace vmgen::vm::ic::testing
