// Test-guest kit: VMBus ring buffers (see vmbus_ring.h).
#include "kit/vmbus_ring.h"

#include "kit/hyperv.h"

namespace kit::vmbus {

namespace {

void full_barrier() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// Copies out of / into the data area starting at `index`, wrapping at the end.
void copy_from(const Ring& ring, uint32_t index, void* dst, uint32_t n)
{
    uint32_t first = ring.size - index < n ? ring.size - index : n;
    __builtin_memcpy(dst, ring.data + index, first);
    if (n > first)
        __builtin_memcpy(static_cast<uint8_t*>(dst) + first, ring.data, n - first);
}

uint32_t copy_to(Ring& ring, uint32_t index, const void* src, uint32_t n)
{
    uint32_t first = ring.size - index < n ? ring.size - index : n;
    __builtin_memcpy(ring.data + index, src, first);
    if (n > first)
        __builtin_memcpy(ring.data, static_cast<const uint8_t*>(src) + first, n - first);
    index += n;
    if (index >= ring.size)
        index -= ring.size;
    return index;
}

uint32_t to_write(uint32_t write, uint32_t read, uint32_t size)
{
    return write >= read ? size - (write - read) : read - write;
}

} // namespace

void ring_init(Ring& ring, void* pages, uint32_t page_count)
{
    ring.control = static_cast<RingControl*>(pages);
    ring.data = static_cast<uint8_t*>(pages) + 4096;
    ring.size = (page_count - 1) * 4096;
    ring.control->read_index = 0;
    ring.control->write_index = 0;
    ring.control->feature_bits = 1; // feat_pending_send_sz
}

uint32_t ring_bytes_to_write(const Ring& ring)
{
    return to_write(ring.control->write_index, ring.control->read_index, ring.size);
}

uint32_t ring_bytes_to_read(const Ring& ring) { return ring.size - ring_bytes_to_write(ring); }

ReadResult ring_read(Ring& ring, void* buf, uint32_t buflen, Packet& packet, bool& signal_writer)
{
    signal_writer = false;
    uint32_t read = ring.control->read_index;
    uint32_t write = ring.control->write_index;
    if (read >= ring.size || write >= ring.size) {
        hv::fail("ring read: index out of range (read_index=%u write_index=%u, data size %u)", read, write, ring.size);
        return ReadResult::error;
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    uint32_t avail = ring.size - to_write(write, read, ring.size);
    if (avail < 16)
        return ReadResult::empty;
    uint16_t desc[4];
    copy_from(ring, read, desc, 8);
    uint64_t trans_id;
    copy_from(ring, (read + 8) % ring.size, &trans_id, 8);
    packet.type = desc[0];
    packet.payload_offset = uint32_t{desc[1]} * 8;
    packet.length = uint32_t{desc[2]} * 8;
    packet.flags = desc[3];
    packet.trans_id = trans_id;
    if (packet.length < 16 || packet.length + 8 > avail || packet.payload_offset < 16 ||
        packet.payload_offset > packet.length) {
        hv::fail("ring read: malformed packet at read_index=%u: type=%u offset8=%u len8=%u, %u bytes in the ring "
                 "(expected 16 <= len8*8, len8*8 + 8-byte trailer <= bytes available, 16 <= offset8*8 <= len8*8)",
                 read, desc[0], desc[1], desc[2], avail);
        return ReadResult::error;
    }
    packet.payload_length = packet.length - packet.payload_offset;
    if (packet.payload_length > buflen) {
        hv::fail("ring read: packet type=%u payload %u bytes exceeds the %u-byte receive buffer", packet.type,
                 packet.payload_length, buflen);
        return ReadResult::error;
    }
    copy_from(ring, (read + packet.payload_offset) % ring.size, buf, packet.payload_length);
    uint32_t next = (read + packet.length + 8) % ring.size;

    // hv_pkt_iter_close: publish the read index, then see whether the writer waits for this space.
    __atomic_thread_fence(__ATOMIC_RELEASE);
    ring.control->read_index = next;
    if (!(ring.control->feature_bits & 1))
        return ReadResult::packet;
    full_barrier();
    uint32_t pending = ring.control->pending_send_sz;
    if (!pending)
        return ReadResult::packet;
    uint32_t now_free = to_write(ring.control->write_index, next, ring.size);
    uint32_t bytes_read = packet.length + 8;
    if (now_free - bytes_read > pending) // there was enough room before this read
        return ReadResult::packet;
    if (now_free <= pending) // still not enough
        return ReadResult::packet;
    signal_writer = true;
    return ReadResult::packet;
}

uint32_t ring_write_index(const Ring& ring) { return ring.control->write_index; }

namespace {
// Whether a packet taking `total` bytes (trailer included) fits at `write`; `what` and `index_name` word the
// error ("ring write" / "write_index" for a direct write, "ring stage" / "write" for a staged one).
bool fits(const Ring& ring, uint32_t write, uint32_t total, const char* what, const char* index_name)
{
    uint32_t read = ring.control->read_index;
    if (write >= ring.size || read >= ring.size || (write & 7)) {
        hv::fail("%s: index out of range (%s=%u read_index=%u, data size %u)", what, index_name, write, read,
                 ring.size);
        return false;
    }
    uint32_t room = to_write(write, read, ring.size);
    if (room <= total) {
        hv::fail("%s: no room for a %u-byte packet (%u bytes free: %s=%u read_index=%u)", what, total, room,
                 index_name, write, read);
        return false;
    }
    return true;
}

// Copies {type, offset8 = 2, len8, flags, trans_id} + payload + padding + trailer in at `write`.
bool stage_packet(Ring& ring, uint32_t& write, uint16_t type, uint16_t flags, uint64_t trans_id,
                  const void* payload, uint32_t length, const char* what, const char* index_name)
{
    uint32_t packet_len = 16 + length;
    uint32_t aligned = (packet_len + 7) & ~7u;
    if (!fits(ring, write, aligned + 8, what, index_name))
        return false;
    uint16_t desc[4] = {type, 2, static_cast<uint16_t>(aligned / 8), flags};
    uint32_t start = write;
    write = copy_to(ring, write, desc, 8);
    write = copy_to(ring, write, &trans_id, 8);
    write = copy_to(ring, write, payload, length);
    static const uint8_t zeros[8] = {};
    write = copy_to(ring, write, zeros, aligned - packet_len);
    uint64_t trailer = uint64_t{start} << 32;
    write = copy_to(ring, write, &trailer, 8);
    return true;
}
} // namespace

bool ring_write(Ring& ring, uint16_t type, uint16_t flags, uint64_t trans_id, const void* payload,
                uint32_t length, bool& signal_reader)
{
    signal_reader = false;
    uint32_t write = ring_write_index(ring);
    if (!stage_packet(ring, write, type, flags, trans_id, payload, length, "ring write", "write_index"))
        return false;
    ring_publish(ring, write, signal_reader); // and hv_signal_on_write's decision
    return true;
}

bool ring_stage_raw(Ring& ring, uint32_t& write, const void* packet, uint32_t length)
{
    if (!fits(ring, write, length + 8, "ring stage", "write"))
        return false;
    uint32_t start = write;
    write = copy_to(ring, write, packet, length);
    uint64_t trailer = uint64_t{start} << 32;
    write = copy_to(ring, write, &trailer, 8);
    return true;
}

bool ring_stage(Ring& ring, uint32_t& write, uint16_t type, uint16_t flags, uint64_t trans_id, const void* payload,
                uint32_t length)
{
    return stage_packet(ring, write, type, flags, trans_id, payload, length, "ring stage", "write");
}

void ring_publish(Ring& ring, uint32_t write, bool& signal_reader)
{
    signal_reader = false;
    uint32_t old_write = ring.control->write_index;
    if (write == old_write)
        return;
    full_barrier();
    ring.control->write_index = write;
    full_barrier();
    if (ring.control->interrupt_mask)
        return;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (old_write == ring.control->read_index)
        signal_reader = true;
}

void ring_begin_read(Ring& ring)
{
    ring.control->interrupt_mask = 1;
    full_barrier();
}

uint32_t ring_end_read(Ring& ring)
{
    ring.control->interrupt_mask = 0;
    full_barrier();
    return ring_bytes_to_read(ring);
}

} // namespace kit::vmbus
