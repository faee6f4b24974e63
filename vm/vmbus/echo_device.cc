#include "vm/vmbus/echo_device.h"

namespace vmgen::vm::vmbus {

namespace wire = protocols::vmbus;

EchoDevice::EchoDevice(Guid instance_id)
{
    m_offer.class_id = class_guid;
    m_offer.instance_id = instance_id;
}

Result<void> EchoDevice::on_open(Channel& /*channel*/)
{
    m_opens.fetch_add(1);
    return {};
}

PacketAction EchoDevice::on_packet(Channel& channel, const Packet& packet)
{
    if (packet.type != wire::packet_type_data_inband) {
        m_dropped.fetch_add(1);
        return PacketAction::done;
    }
    auto sent = channel.send_packet(wire::packet_type_data_inband, packet.flags, packet.trans_id, {},
                                    packet.payload);
    if (!sent) {
        if (sent.error().message() == "ring full") {
            m_retries.fetch_add(1);
            return PacketAction::retry;
        }
        m_dropped.fetch_add(1);
        return PacketAction::done;
    }
    m_echoed.fetch_add(1);
    return PacketAction::done;
}

void EchoDevice::on_close(Channel& /*channel*/) { m_closes.fetch_add(1); }

void EchoDevice::reset() { m_resets.fetch_add(1); }

} // namespace vmgen::vm::vmbus
