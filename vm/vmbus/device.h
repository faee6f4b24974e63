// The interface between the VMBus server (vm/vmbus/server.h) and the device servers behind its channels
// (integration services, storage, network, the echo test device).
//
// A device is registered with VmbusServer::add_device(); the server offers it to the guest with the identity
// from Device::offer(). When the guest opens the channel the server maps the two rings and calls on_open();
// from then on every packet the guest writes is handed to on_packet() on the channel's worker thread, and the
// device answers through the Channel. When the guest closes the channel (or unloads VMBus, or the device is
// removed) the worker is stopped and on_close() is called; the Channel must not be used after that.
//
// Threads: on_open() and on_close() run on the thread that handles the guest's message (a vCPU thread) or the
// thread that called add_device/remove_device/reset; on_packet() runs on the channel's worker. The server
// never calls two of them at once for one channel. Channel::send_* may be called from any thread between
// on_open() and on_close() (they serialise on the channel's send lock).
#pragma once

#include "protocols/vmbus/channel_messages.h"
#include "protocols/vmbus/ring.h"
#include "support/result.h"
#include "vm/vmbus/ring_buffer.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <span>

namespace vmgen::vm {
class GuestMemory;
}

namespace vmgen::vm::vmbus {

using protocols::vmbus::Guid;

// What the guest sees in the channel's offer.
struct DeviceOffer {
    Guid class_id;    // if_type: selects the guest driver (hv_utils, storvsc, netvsc, ...)
    Guid instance_id; // if_instance: unique per device
    uint16_t channel_flags = 0;
    uint16_t mmio_megabytes = 0;
    std::array<uint8_t, protocols::vmbus::max_user_defined_bytes> user_defined {};
    // The smallest data area (bytes, without the control page) accepted for each ring; OPENCHANNEL with
    // smaller rings fails. Linux sizes rings per driver (e.g. hv_utils 3 pages + control page).
    uint32_t min_ring_data_bytes = 4096;
};

// A packet from the guest (see RingPacket in ring_buffer.h): type (protocols::vmbus::packet_type_*), flags
// (packet_flag_completion_requested), trans_id, `header` (type-specific bytes after the descriptor, e.g. the
// GPA range list of type 9) and `payload`. The spans are valid during the on_packet() call only.
using Packet = RingPacket;

// An open channel, as a device sees it.
class Channel {
public:
    virtual ~Channel() = default;

    [[nodiscard]] virtual uint32_t relid() const = 0;
    // The 120 user-data bytes of the guest's OPENCHANNEL message.
    [[nodiscard]] virtual std::span<const uint8_t> open_user_data() const = 0;
    // Guest RAM, for devices that follow GPA ranges in packets (always bounds-checked).
    [[nodiscard]] virtual const GuestMemory& memory() const = 0;

    // Writes one packet into the host -> guest ring and signals the guest if the ring was empty and the guest
    // wants interrupts. `header` must be a multiple of 8 bytes. Errors: "ring full" (the guest is told to
    // signal when it frees space, which wakes this channel's worker: a device on the worker returns
    // PacketAction::retry and gets the packet again), "channel closed", "ring corrupt".
    [[nodiscard]] virtual Result<void> send_packet(uint16_t type, uint16_t flags, uint64_t trans_id,
                                                   std::span<const uint8_t> header,
                                                   std::span<const uint8_t> payload) = 0;

    // Wakes the channel's worker, which drains the guest -> host ring again and calls Device::on_wake() first.
    // For devices that complete work on their own threads: a packet that got PacketAction::retry because the
    // device was busy is delivered again after this. Never blocks.
    virtual void request_drain() = 0;
    // A hint that the guest is about to send again (a device gives it with a reply the guest waits for): the
    // guest -> host ring is masked at once and the worker polls it for `window` before it sleeps, so a packet the
    // guest sends within the window needs no signal (no VM exit). Costs host CPU while it polls. Never blocks.
    virtual void poll_for_packets(std::chrono::microseconds window) { (void)window; }

    // An inband data packet (type 6); `request_completion` sets the completion-requested flag.
    [[nodiscard]] Result<void> send_inband(std::span<const uint8_t> payload, uint64_t trans_id = 0,
                                           bool request_completion = false)
    {
        return send_packet(protocols::vmbus::packet_type_data_inband,
                           request_completion ? protocols::vmbus::packet_flag_completion_requested : 0, trans_id,
                           {}, payload);
    }
    // A completion (type 11) echoing the guest's `trans_id`.
    [[nodiscard]] Result<void> send_completion(uint64_t trans_id, std::span<const uint8_t> payload)
    {
        return send_packet(protocols::vmbus::packet_type_completion, 0, trans_id, {}, payload);
    }
};

enum class PacketAction {
    done,  // consumed: the server advances the ring past it
    retry, // not consumed (typically a reply found the ring full): delivered again after the guest's next signal
};

class Device {
public:
    virtual ~Device() = default;

    [[nodiscard]] virtual const DeviceOffer& offer() const = 0;
    // The guest opened the channel. The rings are ready and the device may already send (e.g. start a version
    // negotiation); an error makes the server answer OPEN_RESULT with a failure status.
    [[nodiscard]] virtual Result<void> on_open(Channel& channel) = 0;
    // One packet from the guest, on the channel's worker thread.
    virtual PacketAction on_packet(Channel& channel, const Packet& packet) = 0;
    // The worker woke (a guest signal or Channel::request_drain), before it reads the ring: the moment to send
    // replies that earlier found the host -> guest ring full.
    virtual void on_wake(Channel& channel) { (void)channel; }
    // The worker has stopped taking packets for now, on its thread: it found the ring empty (called once, before
    // it polls or sleeps; the ring is read again afterwards, so this may take time), a packet got
    // PacketAction::retry, or the channel is stopping or failed. A device that collects the requests of one
    // drained burst in on_packet hands them on (or runs a lone one itself) here.
    virtual void on_drained(Channel& channel) { (void)channel; }
    // The channel is closed (guest CLOSECHANNEL, UNLOAD, device removal, server reset); the worker has stopped.
    virtual void on_close(Channel& channel) = 0;
    // The guest's VMBus session ended (UNLOAD, a new INITIATE_CONTACT, VM reset): forget any per-guest state.
    // Called after on_close() of an open channel.
    virtual void reset() {}
};

} // namespace vmgen::vm::vmbus
