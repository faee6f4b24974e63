// VMBus ring buffers: the control page at the start of each ring and the packets inside the ring data.
// Reference: Linux 6.1 include/linux/hyperv.h (struct hv_ring_buffer, struct vmpacket_descriptor, enum
// vmbus_packet_type, struct gpa_range, struct vmbus_packet_mpb_array, struct vmtransfer_page_packet_header)
// and drivers/hv/ring_buffer.c (packet framing: descriptor, payload padded to 8 bytes, 8-byte trailer).
//
// A channel's ring GPADL holds two rings: pages [0, downstream offset) are the guest -> host ring, the rest the
// host -> guest ring. The first page of each ring is its control page; the ring data follows (a multiple of
// the page size). Indices are byte offsets into the data area, always multiples of 8 and below its size.
// A packet: VmPacketDescriptor, then (offset8 * 8 - 16) bytes of type-specific header, then the payload up to
// len8 * 8 bytes from the packet start, then an 8-byte trailer whose upper 32 bits are the packet's start
// offset (the writer's write_index before the packet). Reader and writer never let the ring fill completely:
// write_index == read_index means empty.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmgen::protocols::vmbus {

inline constexpr uint32_t ring_page_size = 4096; // HV_HYP_PAGE_SIZE

// The control page (struct hv_ring_buffer without the data). Each field is written by one side only:
// write_index and pending_send_sz by the writer, read_index and interrupt_mask by the reader, feature_bits by the
// guest (it sets bit 0 on both rings; the host also sets it on the host -> guest ring).
struct RingControl {
    uint32_t write_index;     // @0: next byte the writer will fill
    uint32_t read_index;      // @4: next byte the reader will consume
    uint32_t interrupt_mask;  // @8: set by the reader while it drains: "don't signal me"
    uint32_t pending_send_sz; // @12: set by a blocked writer: "signal me when this many bytes are free"
    uint32_t reserved1[12];
    uint32_t feature_bits;    // @64: bit 0 feat_pending_send_sz
};
static_assert(sizeof(RingControl) == 68);
static_assert(offsetof(RingControl, read_index) == 4);
static_assert(offsetof(RingControl, interrupt_mask) == 8);
static_assert(offsetof(RingControl, pending_send_sz) == 12);
static_assert(offsetof(RingControl, feature_bits) == 64);

inline constexpr uint32_t ring_offset_write_index = 0;
inline constexpr uint32_t ring_offset_read_index = 4;
inline constexpr uint32_t ring_offset_interrupt_mask = 8;
inline constexpr uint32_t ring_offset_pending_send_sz = 12;
inline constexpr uint32_t ring_offset_feature_bits = 64;
inline constexpr uint32_t ring_feature_pending_send_sz = 1;

// struct vmpacket_descriptor: offset8/len8 are in units of 8 bytes from the start of the descriptor.
struct VmPacketDescriptor {
    uint16_t type;    // packet_type_*
    uint16_t offset8; // start of the payload
    uint16_t len8;    // descriptor + type header + payload (without padding beyond it, without the trailer)
    uint16_t flags;   // packet_flag_*
    uint64_t trans_id;
};
static_assert(sizeof(VmPacketDescriptor) == 16);
static_assert(offsetof(VmPacketDescriptor, len8) == 4);
static_assert(offsetof(VmPacketDescriptor, trans_id) == 8);

inline constexpr uint32_t packet_trailer_size = 8; // VMBUS_PKT_TRAILER

// enum vmbus_packet_type (the ones devices use).
inline constexpr uint16_t packet_type_data_inband = 6;
inline constexpr uint16_t packet_type_data_using_transfer_pages = 7;
inline constexpr uint16_t packet_type_data_using_gpa_direct = 9;
inline constexpr uint16_t packet_type_completion = 11;

inline constexpr uint16_t packet_flag_completion_requested = 1; // VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED

// Type 9 (GPA direct) header after the descriptor (struct vmbus_packet_mpb_array / vmbus_channel_packet_page_
// buffer): reserved, range count, then range_count ranges, each a {byte_count, byte_offset} pair (GpaRange in
// channel_messages.h) followed by ceil((byte_offset + byte_count) / 4096) u64 PFNs. The payload starts at
// offset8 * 8.
struct GpaDirectHeader {
    uint32_t reserved;
    uint32_t range_count;
};
static_assert(sizeof(GpaDirectHeader) == 8);

// Type 7 (transfer pages) header after the descriptor (struct vmtransfer_page_packet_header): the transfer
// page set, then range_count {byte_count, byte_offset} ranges into that set.
struct TransferPageHeader {
    uint16_t transfer_page_set_id;
    uint8_t sender_owns_set;
    uint8_t reserved;
    uint32_t range_count;
};
static_assert(sizeof(TransferPageHeader) == 8);

struct TransferPageRange { // struct vmtransfer_page_range
    uint32_t byte_count;
    uint32_t byte_offset;
};
static_assert(sizeof(TransferPageRange) == 8);

} // namespace vmgen::protocols::vmbus
