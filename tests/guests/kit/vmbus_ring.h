// Test-guest kit: the guest side of a VMBus ring buffer (Linux 6.1 drivers/hv/ring_buffer.c semantics).
// A ring is a control page (struct hv_ring_buffer: write_index, read_index, interrupt_mask,
// pending_send_sz, feature_bits at 64) followed by the data pages; indices are byte offsets into the data.
// Packets: a 16-byte descriptor {type, offset8, len8, flags, trans_id}, the payload padded to 8 bytes,
// then an 8-byte trailer (the writer's start index << 32).
// Signalling (what the caller does when told to): after a write, signal the reader when the ring went from
// empty to non-empty and the reader's interrupt_mask is 0; after a read, signal the writer when the space
// freed crossed its non-zero pending_send_sz (feature bit 0 set in the ring's header).
#pragma once

#include <cstdint>

namespace kit::vmbus {

struct RingControl { // struct hv_ring_buffer, first 68 bytes of the control page
    volatile uint32_t write_index;
    volatile uint32_t read_index;
    volatile uint32_t interrupt_mask;
    volatile uint32_t pending_send_sz;
    uint32_t reserved[12];
    volatile uint32_t feature_bits; // bit 0: pending_send_sz flow control
};
static_assert(sizeof(RingControl) == 68);

inline constexpr uint16_t packet_inband = 6;          // VM_PKT_DATA_INBAND
inline constexpr uint16_t packet_transfer_pages = 7;  // VM_PKT_DATA_USING_XFER_PAGES
inline constexpr uint16_t packet_gpa_direct = 9;      // VM_PKT_DATA_USING_GPA_DIRECT
inline constexpr uint16_t packet_completion = 11;     // VM_PKT_COMP
inline constexpr uint16_t packet_flag_completion_requested = 1;

struct Ring {
    RingControl* control = nullptr;
    uint8_t* data = nullptr;
    uint32_t size = 0; // data bytes
};

// Sets a ring up on `pages` (control page + data pages), like hv_ringbuffer_init: indices 0, feature
// bit 0 set. The pages are expected to be zero already.
void ring_init(Ring& ring, void* pages, uint32_t page_count);
uint32_t ring_bytes_to_read(const Ring& ring);
uint32_t ring_bytes_to_write(const Ring& ring);

struct Packet {
    uint16_t type = 0;
    uint16_t flags = 0;
    uint64_t trans_id = 0;
    uint32_t length = 0;         // whole packet, descriptor included (len8 * 8)
    uint32_t payload_offset = 0; // offset8 * 8
    uint32_t payload_length = 0; // length - payload_offset
};

enum class ReadResult { empty, packet, error };
// Reads one packet: its payload goes to buf (at most buflen bytes), the read index moves past it and its
// trailer. signal_writer: the writer waits for space this read freed (hv_pkt_iter_close). On a malformed
// packet or a payload larger than buflen: error (hv::error() says what), nothing consumed.
ReadResult ring_read(Ring& ring, void* buf, uint32_t buflen, Packet& packet, bool& signal_writer);
// Writes one packet {type, offset8 = 2, len8, flags, trans_id} + payload + padding + trailer.
// signal_reader: the ring was empty and the reader does not mask interrupts (hv_signal_on_write).
// False (hv::error()) when the ring has no room: like Linux, a packet never fills the ring completely.
bool ring_write(Ring& ring, uint16_t type, uint16_t flags, uint64_t trans_id, const void* payload,
                uint32_t length, bool& signal_reader);

// Batched writes (one write_index update and one signal decision for several packets, as Linux's
// hv_ringbuffer_write does for the buffers of one call): ring_stage() copies a packet in at `write`, a private
// index that starts as ring_write_index(), without publishing it (false and hv::error() when there is no room
// for it next to what is staged already); ring_publish() makes everything staged visible and says whether to
// signal: the ring was empty before the batch and the reader does not mask interrupts.
uint32_t ring_write_index(const Ring& ring);
bool ring_stage(Ring& ring, uint32_t& write, uint16_t type, uint16_t flags, uint64_t trans_id, const void* payload,
                uint32_t length);
// The same for a packet built by the caller, descriptor included (`length` a multiple of 8): e.g. GPA direct.
bool ring_stage_raw(Ring& ring, uint32_t& write, const void* packet, uint32_t length);
void ring_publish(Ring& ring, uint32_t write, bool& signal_reader);

// Reader-side interrupt masking (hv_begin_read / hv_end_read): end_read returns the bytes still unread.
void ring_begin_read(Ring& ring);
uint32_t ring_end_read(Ring& ring);

} // namespace kit::vmbus
