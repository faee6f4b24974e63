// The two directions between the Hyper-V synthetic interrupt controller (SynIC, vm/hyperv) and the VMBus
// server (vm/vmbus). Neither side knows the other's implementation; the machine (vmm) wires them.
//
//   guest HvPostMessage(connection id, type, payload)  --> VmbusHostSide::on_post_message
//   guest HvSignalEvent(connection id, flag)           --> VmbusHostSide::on_signal_event
//   server: message to the guest on (VP, SINT)          --> SynicGuestSide::post_message
//   server: event flag to the guest on (VP, SINT)       --> SynicGuestSide::signal_event
//
// References: Hyper-V TLFS 6.0, chapter 11 (SynIC: messages, event flags, SINTs) and 3.x (HvPostMessage
// 0x5C, HvSignalEvent 0x5D); Linux 6.1 drivers/hv/hv.c, connection.c.
#pragma once

#include <cstdint>
#include <span>

namespace vmgen::vm {

// TLFS hypercall status codes returned by the host side (HV_STATUS_*).
namespace hv_status {
inline constexpr uint16_t success = 0x0000;
inline constexpr uint16_t invalid_hypercall_code = 0x0002;
inline constexpr uint16_t invalid_hypercall_input = 0x0003;
inline constexpr uint16_t invalid_alignment = 0x0004;
inline constexpr uint16_t invalid_parameter = 0x0005;
inline constexpr uint16_t access_denied = 0x0006;
inline constexpr uint16_t invalid_port_id = 0x0011;
inline constexpr uint16_t invalid_connection_id = 0x0012;
inline constexpr uint16_t insufficient_buffers = 0x0013;
} // namespace hv_status

// Implemented by the VMBus server: what the guest sends.
class VmbusHostSide {
public:
    virtual ~VmbusHostSide() = default;
    // HvPostMessage: `payload` is at most 240 bytes (validated by the caller). Called on a vCPU thread;
    // must not block on the guest. Returns an HV_STATUS code (invalid_connection_id for unknown ids,
    // insufficient_buffers when the host's queue is full).
    virtual uint16_t on_post_message(uint32_t connection_id, uint32_t message_type,
                                     std::span<const uint8_t> payload) = 0;
    // HvSignalEvent (fast hypercall): the guest signals `connection_id`. Returns an HV_STATUS code.
    virtual uint16_t on_signal_event(uint32_t connection_id, uint16_t flag_number) = 0;
};

// Implemented by the SynIC: how the host reaches the guest.
class SynicGuestSide {
public:
    virtual ~SynicGuestSide() = default;
    // Queues a SynIC message (hv_message: type, payload <= 240 bytes) for SINT `sint` of virtual processor
    // `vp_index`. Delivered when the slot in the guest's SIMP page is free (message-pending/EOM protocol);
    // kept in order per (vp, sint). Returns false if the VP or SINT does not exist or the queue is full.
    virtual bool post_message(uint32_t vp_index, uint8_t sint, uint32_t message_type,
                              std::span<const uint8_t> payload) = 0;
    // Sets event flag `flag` in the SIEFP page of `vp_index` for `sint` and interrupts the VP if the flag
    // was clear and the SINT is enabled. Returns false if the VP or SINT does not exist.
    virtual bool signal_event(uint32_t vp_index, uint8_t sint, uint32_t flag) = 0;
};

} // namespace vmgen::vm
