#include "vm/ic/ic_device.h"

#include "support/log.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace vmgen::vm::ic {

namespace wire = protocols::vmbus;

namespace {

bool contains(std::span<const IcVersion> list, IcVersion version)
{
    return std::find(list.begin(), list.end(), version) != list.end();
}

template <typename T>
T load(std::span<const uint8_t> bytes, size_t offset)
{
    T value {};
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}

} // namespace

IcDevice::IcDevice(std::string name, Guid class_id, Guid instance_id, std::vector<IcVersion> message_versions)
    : m_name(std::move(name)), m_message_versions(std::move(message_versions))
{
    m_offer.class_id = class_id;
    m_offer.instance_id = instance_id;
    m_offer.min_ring_data_bytes = ring_data_bytes;
    assert(!m_message_versions.empty() && m_message_versions.size() <= protocols::vmbus::ic_max_version_count);
}

IcState IcDevice::state() const
{
    auto held = lock();
    return m_state;
}

std::optional<IcVersions> IcDevice::versions() const
{
    auto held = lock();
    if (m_state != IcState::Ready)
        return std::nullopt;
    return m_versions;
}

uint64_t IcDevice::dropped_packets() const
{
    auto held = lock();
    return m_dropped;
}

void IcDevice::guest_error(const Lock& /*lock*/, std::string_view what)
{
    ++m_dropped;
    if (m_warnings_left > 0) {
        --m_warnings_left;
        log_warn("ic", "{}: {}", m_name, what);
    } else {
        log_debug("ic", "{}: {}", m_name, what);
    }
}

Result<void> IcDevice::on_open(vmbus::Channel& channel)
{
    auto held = lock();
    m_channel = &channel;
    m_state = IcState::Negotiating;
    m_pending.clear();

    // NEGOTIATE body: counts, reserved, framework versions, then service versions (newest first).
    std::vector<uint8_t> body(sizeof(wire::IcNegotiate) +
                              (std::size(framework_versions) + m_message_versions.size()) * sizeof(IcVersion));
    wire::IcNegotiate negotiate {};
    negotiate.framework_count = static_cast<uint16_t>(std::size(framework_versions));
    negotiate.message_count = static_cast<uint16_t>(m_message_versions.size());
    std::memcpy(body.data(), &negotiate, sizeof(negotiate));
    size_t offset = sizeof(negotiate);
    for (IcVersion v : framework_versions) {
        std::memcpy(body.data() + offset, &v, sizeof(v));
        offset += sizeof(v);
    }
    for (IcVersion v : m_message_versions) {
        std::memcpy(body.data() + offset, &v, sizeof(v));
        offset += sizeof(v);
    }
    // The header carries our newest versions; guests ignore them in a NEGOTIATE.
    auto id = send_message(wire::ic_message_type_negotiate, framework_versions[0], m_message_versions.front(), body);
    if (!id) {
        m_channel = nullptr;
        m_state = IcState::Closed;
        return fail("{}: sending NEGOTIATE: {}", m_name, id.error().message());
    }
    log_debug("ic", "{}: channel {} open, NEGOTIATE sent", m_name, channel.relid());
    return {};
}

Result<uint64_t> IcDevice::send_message(uint16_t message_type, IcVersion framework, IcVersion message,
                                        std::span<const uint8_t> body)
{
    if (m_channel == nullptr)
        return fail("{}: channel not open", m_name);
    if (body.size() > max_request_body)
        return fail("{}: request body of {} bytes (at most {})", m_name, body.size(), max_request_body);
    uint64_t id = m_next_request_id;
    auto transaction_id = static_cast<uint8_t>(id & 0xff);

    std::vector<uint8_t> payload(wire::ic_header_size + body.size());
    wire::IcPipeHeader pipe {wire::ic_pipe_flag_data, static_cast<uint32_t>(payload.size() - sizeof(pipe))};
    wire::IcMessageHeader header {};
    header.framework_version = framework;
    header.message_type = message_type;
    header.message_version = message;
    header.message_size = static_cast<uint16_t>(body.size());
    header.status = wire::hv_s_ok;
    header.transaction_id = transaction_id;
    header.flags = wire::ic_flag_transaction | wire::ic_flag_request;
    std::memcpy(payload.data(), &pipe, sizeof(pipe));
    std::memcpy(payload.data() + sizeof(pipe), &header, sizeof(header));
    if (!body.empty())
        std::memcpy(payload.data() + wire::ic_header_size, body.data(), body.size());

    TRY(m_channel->send_inband(payload, id));
    ++m_next_request_id;
    if (m_pending.size() >= max_pending_requests) {
        log_debug("ic", "{}: request {} never answered, forgotten", m_name, m_pending.begin()->first);
        m_pending.erase(m_pending.begin());
    }
    m_pending[id] = Pending {message_type, transaction_id};
    return id;
}

Result<uint64_t> IcDevice::send_request(const Lock& /*lock*/, uint16_t message_type, std::span<const uint8_t> body)
{
    if (m_channel == nullptr)
        return fail("{}: channel not open", m_name);
    if (m_state != IcState::Ready)
        return fail("{}: versions not negotiated{}", m_name,
                    m_state == IcState::Failed ? " (the guest refused our versions)" : " yet");
    return send_message(message_type, m_versions.framework, m_versions.message, body);
}

vmbus::PacketAction IcDevice::on_packet(vmbus::Channel& /*channel*/, const vmbus::Packet& packet)
{
    auto held = lock();
    if (packet.type != wire::packet_type_data_inband) {
        guest_error(held, fmt::format("packet type {} dropped (IC packets are inband)", packet.type));
        return vmbus::PacketAction::done;
    }
    if (packet.payload.size() < wire::ic_header_size) {
        guest_error(held, fmt::format("{}-byte packet dropped (IC headers need {})", packet.payload.size(),
                                      wire::ic_header_size));
        return vmbus::PacketAction::done;
    }
    auto header = load<wire::IcMessageHeader>(packet.payload, sizeof(wire::IcPipeHeader));
    if ((header.flags & wire::ic_flag_response) == 0) {
        guest_error(held, fmt::format("message type {} with flags {:#x} is no response: dropped", header.message_type,
                                      header.flags));
        return vmbus::PacketAction::done;
    }
    auto it = m_pending.find(packet.trans_id);
    if (it == m_pending.end()) {
        guest_error(held, fmt::format("response with trans_id {:#x} answers no request: dropped", packet.trans_id));
        return vmbus::PacketAction::done;
    }
    if (it->second.message_type != header.message_type || it->second.transaction_id != header.transaction_id) {
        guest_error(held, fmt::format("response to request {} has type {} transaction {} (sent type {} transaction "
                                      "{}): dropped",
                                      packet.trans_id, header.message_type, header.transaction_id,
                                      it->second.message_type, it->second.transaction_id));
        return vmbus::PacketAction::done;
    }
    m_pending.erase(it);
    auto body = packet.payload.subspan(wire::ic_header_size);
    if (header.message_type == wire::ic_message_type_negotiate) {
        handle_negotiate_response(held, body);
        return vmbus::PacketAction::done;
    }
    if (m_state != IcState::Ready) { // a request sent before a close; cannot happen within one open
        guest_error(held, "response while not negotiated: dropped");
        return vmbus::PacketAction::done;
    }
    on_response(held, IcResponse {packet.trans_id, header.message_type, header.status, body});
    return vmbus::PacketAction::done;
}

void IcDevice::handle_negotiate_response(Lock& lock, std::span<const uint8_t> body)
{
    if (m_state != IcState::Negotiating) {
        guest_error(lock, "NEGOTIATE response while not negotiating: dropped");
        return;
    }
    // vmbus_prep_negotiate_resp: counts 1/1 and the chosen pair in versions[0..1], or counts 0/0.
    constexpr size_t needed = sizeof(wire::IcNegotiate) + 2 * sizeof(IcVersion);
    if (body.size() < needed) {
        m_state = IcState::Failed;
        guest_error(lock, fmt::format("NEGOTIATE response of {} body bytes (need {}): negotiation failed",
                                      body.size(), needed));
        return;
    }
    auto negotiate = load<wire::IcNegotiate>(body, 0);
    auto framework = load<IcVersion>(body, sizeof(wire::IcNegotiate));
    auto message = load<IcVersion>(body, sizeof(wire::IcNegotiate) + sizeof(IcVersion));
    if (negotiate.framework_count == 0 && negotiate.message_count == 0) {
        m_state = IcState::Failed;
        guest_error(lock, "the guest supports none of the offered versions: negotiation failed");
        return;
    }
    if (negotiate.framework_count != 1 || negotiate.message_count != 1) {
        m_state = IcState::Failed;
        guest_error(lock, fmt::format("NEGOTIATE response with {} framework and {} service versions (expected 1 "
                                      "and 1): negotiation failed",
                                      negotiate.framework_count, negotiate.message_count));
        return;
    }
    if (!contains(framework_versions, framework) || !contains(m_message_versions, message)) {
        m_state = IcState::Failed;
        guest_error(lock, fmt::format("the guest chose framework {}.{} and service {}.{}, which we never offered: "
                                      "negotiation failed",
                                      framework.major, framework.minor, message.major, message.minor));
        return;
    }
    m_versions = IcVersions {framework, message};
    m_state = IcState::Ready;
    log_info("ic", "{}: negotiated framework {}.{}, service {}.{}", m_name, framework.major, framework.minor,
             message.major, message.minor);
    on_negotiated(lock);
}

void IcDevice::close_locked(Lock& lock)
{
    bool was_open = m_channel != nullptr || m_state != IcState::Closed;
    m_channel = nullptr;
    m_state = IcState::Closed;
    m_versions = {};
    m_pending.clear();
    if (was_open)
        on_closed(lock);
}

void IcDevice::on_close(vmbus::Channel& /*channel*/)
{
    auto held = lock();
    log_debug("ic", "{}: channel closed", m_name);
    close_locked(held);
}

void IcDevice::reset()
{
    auto held = lock();
    close_locked(held);
}

} // namespace vmgen::vm::ic
