#include "vm/vmbus/ring_buffer.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>

namespace vmgen::vm::vmbus {

namespace wire = protocols::vmbus;

namespace {

constexpr uint64_t max_ring_data_bytes = 1ull << 31; // indices are u32; keep sums far from overflow

uint32_t ring_distance(uint32_t from, uint32_t to, uint32_t size)
{
    return to >= from ? to - from : size - from + to;
}

uint32_t ring_advance(uint32_t index, uint64_t bytes, uint32_t size)
{
    uint64_t next = (static_cast<uint64_t>(index) + bytes) % size;
    return static_cast<uint32_t>(next);
}

} // namespace

uint64_t ring_packet_size(uint64_t header_size, uint64_t payload_size)
{
    uint64_t padded = (payload_size + 7) & ~uint64_t {7};
    return sizeof(wire::VmPacketDescriptor) + header_size + padded + wire::packet_trailer_size;
}

// ---------------------------------------------------------------------------------------------------------
// PageListView

Result<PageListView> PageListView::create(const GuestMemory& memory, std::span<const uint64_t> pfns)
{
    PageListView view;
    for (size_t i = 0; i < pfns.size(); ++i) {
        uint64_t pfn = pfns[i];
        if (pfn >= (1ull << 52))
            return fail("page {} (pfn {:#x}) is not a guest page", i, pfn);
        auto page = memory.span(pfn * page_size, page_size);
        if (!page)
            return fail("page {} (pfn {:#x}) is outside guest RAM", i, pfn);
        uint8_t* host = page->data();
        if (!view.m_runs.empty()) {
            Run& last = view.m_runs.back();
            if (last.host + last.size == host) {
                last.size += page_size;
                view.m_size += page_size;
                continue;
            }
        }
        view.m_runs.push_back(Run {view.m_size, page_size, host});
        view.m_size += page_size;
    }
    return view;
}

size_t PageListView::find_run(uint64_t offset) const
{
    // The last run whose start is <= offset.
    auto it = std::upper_bound(m_runs.begin(), m_runs.end(), offset,
                               [](uint64_t value, const Run& run) { return value < run.offset; });
    return static_cast<size_t>(it - m_runs.begin()) - 1;
}

Result<void> PageListView::read(uint64_t offset, std::span<uint8_t> out) const
{
    if (offset > m_size || out.size() > m_size - offset)
        return fail("page list read [{:#x}, +{:#x}) outside {:#x} bytes", offset, out.size(), m_size);
    size_t done = 0;
    while (done < out.size()) {
        const Run& run = m_runs[find_run(offset)];
        uint64_t within = offset - run.offset;
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(run.size - within, out.size() - done));
        std::memcpy(out.data() + done, run.host + within, chunk);
        done += chunk;
        offset += chunk;
    }
    return {};
}

Result<void> PageListView::write(uint64_t offset, std::span<const uint8_t> in) const
{
    if (offset > m_size || in.size() > m_size - offset)
        return fail("page list write [{:#x}, +{:#x}) outside {:#x} bytes", offset, in.size(), m_size);
    size_t done = 0;
    while (done < in.size()) {
        const Run& run = m_runs[find_run(offset)];
        uint64_t within = offset - run.offset;
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(run.size - within, in.size() - done));
        std::memcpy(run.host + within, in.data() + done, chunk);
        done += chunk;
        offset += chunk;
    }
    return {};
}

// ---------------------------------------------------------------------------------------------------------
// RingControlPage

uint32_t RingControlPage::load(uint32_t offset) const
{
    auto* field = reinterpret_cast<uint32_t*>(m_host + offset);
    return std::atomic_ref<uint32_t>(*field).load(std::memory_order_acquire);
}

void RingControlPage::store(uint32_t offset, uint32_t value) const
{
    auto* field = reinterpret_cast<uint32_t*>(m_host + offset);
    std::atomic_ref<uint32_t>(*field).store(value, std::memory_order_release);
}

namespace {

struct RingPages {
    RingControlPage control;
    PageListView data;
    uint32_t data_size = 0;
};

Result<RingPages> resolve_ring(const GuestMemory& memory, std::span<const uint64_t> pfns)
{
    if (pfns.size() < 2)
        return fail("a ring needs a control page and at least one data page ({} pages)", pfns.size());
    if ((pfns.size() - 1) * page_size > max_ring_data_bytes)
        return fail("ring of {} pages is too large", pfns.size());
    RingPages ring;
    if (pfns[0] >= (1ull << 52))
        return fail("ring control page (pfn {:#x}) is not a guest page", pfns[0]);
    auto page = TRY_CTX(memory.span(pfns[0] * page_size, page_size), "ring control page");
    ring.control = RingControlPage(page.data());
    ring.data = TRY_CTX(PageListView::create(memory, pfns.subspan(1)), "ring data");
    ring.data_size = static_cast<uint32_t>(ring.data.size());
    return ring;
}

bool index_valid(uint32_t index, uint32_t size) { return index < size && index % 8 == 0; }

} // namespace

// ---------------------------------------------------------------------------------------------------------
// RingReader

Result<RingReader> RingReader::create(const GuestMemory& memory, std::span<const uint64_t> pfns)
{
    RingPages pages = TRY(resolve_ring(memory, pfns));
    RingReader reader;
    reader.m_control = pages.control;
    reader.m_data = std::move(pages.data);
    reader.m_data_size = pages.data_size;
    uint32_t read = reader.m_control.load(wire::ring_offset_read_index);
    if (!index_valid(read, reader.m_data_size))
        return fail("ring corrupt: read index {:#x} (data size {:#x})", read, reader.m_data_size);
    TRY(reader.guest_write_index());
    reader.m_read = read;
    reader.m_published_read = read;
    return reader;
}

Result<uint32_t> RingReader::guest_write_index() const
{
    uint32_t write = m_control.load(wire::ring_offset_write_index);
    if (!index_valid(write, m_data_size))
        return fail("ring corrupt: write index {:#x} (data size {:#x})", write, m_data_size);
    return write;
}

Result<std::optional<RingPacket>> RingReader::peek()
{
    m_peeked_size = 0;
    uint32_t write = TRY(guest_write_index());
    uint32_t avail = ring_distance(m_read, write, m_data_size);
    if (avail == 0)
        return std::optional<RingPacket> {};
    constexpr uint32_t min_packet = sizeof(wire::VmPacketDescriptor) + wire::packet_trailer_size;
    if (avail < min_packet)
        return fail("ring corrupt: {} bytes available, less than a packet", avail);

    std::array<uint8_t, sizeof(wire::VmPacketDescriptor)> raw {};
    TRY(m_data.read(m_read, std::span(raw).first(std::min<size_t>(raw.size(), m_data_size - m_read))));
    if (m_data_size - m_read < raw.size())
        TRY(m_data.read(0, std::span(raw).subspan(m_data_size - m_read)));
    wire::VmPacketDescriptor desc;
    std::memcpy(&desc, raw.data(), sizeof(desc));

    uint32_t length = static_cast<uint32_t>(desc.len8) * 8;
    uint32_t offset = static_cast<uint32_t>(desc.offset8) * 8;
    if (length < sizeof(wire::VmPacketDescriptor) || offset < sizeof(wire::VmPacketDescriptor) ||
        offset > length)
        return fail("ring corrupt: packet at {:#x} has offset8 {} len8 {}", m_read, desc.offset8, desc.len8);
    if (static_cast<uint64_t>(length) + wire::packet_trailer_size > avail)
        return fail("ring corrupt: packet at {:#x} of {} bytes, only {} available", m_read, length, avail);

    // Copy the whole packet (descriptor included) out of the shared pages, then parse only the copy.
    m_packet.resize(length);
    uint32_t first = std::min(length, m_data_size - m_read);
    TRY(m_data.read(m_read, std::span(m_packet).first(first)));
    if (first < length)
        TRY(m_data.read(0, std::span(m_packet).subspan(first)));

    RingPacket packet;
    packet.type = desc.type;
    packet.flags = desc.flags;
    packet.trans_id = desc.trans_id;
    packet.header = std::span<const uint8_t>(m_packet).subspan(sizeof(desc), offset - sizeof(desc));
    packet.payload = std::span<const uint8_t>(m_packet).subspan(offset);
    packet.total_size = length + wire::packet_trailer_size;
    m_peeked_size = packet.total_size;
    return std::optional<RingPacket>(packet);
}

void RingReader::consume()
{
    if (m_peeked_size == 0)
        return;
    m_read = ring_advance(m_read, m_peeked_size, m_data_size);
    m_peeked_size = 0;
}

Result<bool> RingReader::commit()
{
    uint32_t start = m_published_read;
    if (start == m_read)
        return false;
    m_control.store(wire::ring_offset_read_index, m_read);
    m_published_read = m_read;
    if ((m_control.load(wire::ring_offset_feature_bits) & wire::ring_feature_pending_send_sz) == 0)
        return false;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    uint32_t pending = m_control.load(wire::ring_offset_pending_send_sz);
    if (pending == 0)
        return false;
    uint32_t write = TRY(guest_write_index());
    // Bytes the guest may write now: the ring is never filled completely.
    uint32_t space = m_data_size - ring_distance(m_read, write, m_data_size);
    uint32_t freed = ring_distance(start, m_read, m_data_size);
    if (space - freed > pending) // it had enough before: not blocked
        return false;
    return space > pending;
}

void RingReader::begin_read()
{
    m_control.store(wire::ring_offset_interrupt_mask, 1);
    std::atomic_thread_fence(std::memory_order_seq_cst);
}

Result<bool> RingReader::end_read()
{
    m_control.store(wire::ring_offset_interrupt_mask, 0);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    uint32_t write = TRY(guest_write_index());
    return write != m_read;
}

// ---------------------------------------------------------------------------------------------------------
// RingWriter

Result<RingWriter> RingWriter::create(const GuestMemory& memory, std::span<const uint64_t> pfns)
{
    RingPages pages = TRY(resolve_ring(memory, pfns));
    RingWriter writer;
    writer.m_control = pages.control;
    writer.m_data = std::move(pages.data);
    writer.m_data_size = pages.data_size;
    uint32_t write = writer.m_control.load(wire::ring_offset_write_index);
    if (!index_valid(write, writer.m_data_size))
        return fail("ring corrupt: write index {:#x} (data size {:#x})", write, writer.m_data_size);
    TRY(writer.guest_read_index());
    writer.m_write = write;
    // The host sets pending_send_sz on this ring when it blocks (see struct hv_ring_buffer).
    uint32_t features = writer.m_control.load(wire::ring_offset_feature_bits);
    writer.m_control.store(wire::ring_offset_feature_bits, features | wire::ring_feature_pending_send_sz);
    writer.m_control.store(wire::ring_offset_pending_send_sz, 0);
    return writer;
}

Result<uint32_t> RingWriter::guest_read_index() const
{
    uint32_t read = m_control.load(wire::ring_offset_read_index);
    if (!index_valid(read, m_data_size))
        return fail("ring corrupt: read index {:#x} (data size {:#x})", read, m_data_size);
    return read;
}

Result<uint32_t> RingWriter::free_bytes() const
{
    uint32_t read = TRY(guest_read_index());
    uint32_t space = m_data_size - ring_distance(read, m_write, m_data_size);
    // A packet may not fill the ring exactly (empty and full would look alike).
    return space == 0 ? 0 : space - 1;
}

Result<RingWriter::WriteStatus> RingWriter::write(uint16_t type, uint16_t flags, uint64_t trans_id,
                                                  std::span<const uint8_t> header,
                                                  std::span<const uint8_t> payload)
{
    if (header.size() % 8 != 0)
        return fail("packet header of {} bytes is not a multiple of 8", header.size());
    uint64_t total = ring_packet_size(header.size(), payload.size());
    uint64_t length = total - wire::packet_trailer_size;
    if (length / 8 > 0xffff || total >= m_data_size)
        return fail("packet of {} bytes can never fit the ring ({} bytes)", total, m_data_size);

    uint32_t read = TRY(guest_read_index());
    uint32_t space = m_data_size - ring_distance(read, m_write, m_data_size);
    if (space <= total) {
        // Ask the guest to signal when it frees enough, then re-check: it may have read meanwhile.
        m_control.store(wire::ring_offset_pending_send_sz, static_cast<uint32_t>(total));
        m_pending_set = true;
        std::atomic_thread_fence(std::memory_order_seq_cst);
        read = TRY(guest_read_index());
        space = m_data_size - ring_distance(read, m_write, m_data_size);
        if (space <= total)
            return WriteStatus::full;
    }
    if (m_pending_set) {
        m_control.store(wire::ring_offset_pending_send_sz, 0);
        m_pending_set = false;
    }

    // Assemble the packet in one buffer so that the ring copy is at most two memcpy runs.
    m_scratch.assign(static_cast<size_t>(total), 0);
    wire::VmPacketDescriptor desc {};
    desc.type = type;
    desc.offset8 = static_cast<uint16_t>((sizeof(desc) + header.size()) / 8);
    desc.len8 = static_cast<uint16_t>(length / 8);
    desc.flags = flags;
    desc.trans_id = trans_id;
    std::memcpy(m_scratch.data(), &desc, sizeof(desc));
    if (!header.empty())
        std::memcpy(m_scratch.data() + sizeof(desc), header.data(), header.size());
    if (!payload.empty())
        std::memcpy(m_scratch.data() + sizeof(desc) + header.size(), payload.data(), payload.size());
    uint64_t trailer = static_cast<uint64_t>(m_write) << 32; // previous write index, as Linux writes it
    std::memcpy(m_scratch.data() + length, &trailer, sizeof(trailer));

    uint32_t old_write = m_write;
    uint32_t first = std::min(static_cast<uint32_t>(total), m_data_size - m_write);
    TRY(m_data.write(m_write, std::span<const uint8_t>(m_scratch).first(first)));
    if (first < total)
        TRY(m_data.write(0, std::span<const uint8_t>(m_scratch).subspan(first)));
    m_write = ring_advance(m_write, total, m_data_size);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    m_control.store(wire::ring_offset_write_index, m_write);
    std::atomic_thread_fence(std::memory_order_seq_cst);

    // Signal only on the empty -> non-empty transition, and only if the guest has not masked us.
    if (m_control.load(wire::ring_offset_interrupt_mask) != 0)
        return WriteStatus::written;
    if (m_control.load(wire::ring_offset_read_index) == old_write)
        return WriteStatus::written_signal;
    return WriteStatus::written;
}

} // namespace vmgen::vm::vmbus
