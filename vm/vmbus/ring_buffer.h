// Host side of a VMBus channel's rings (protocols/vmbus/ring.h) over guest pages named by a GPADL.
//
// The guest maps each ring twice in its own address space so that it never sees the wrap; the host gets only
// the list of page frames, which need not be contiguous on the host either. PageListView turns such a list
// into one linear, bounds-checked byte range (adjacent pages that are adjacent on the host become one run, so
// the common case is a single memcpy); RingReader and RingWriter implement the ring protocol of Linux 6.1
// drivers/hv/ring_buffer.c with the host in the other role.
//
// The guest can rewrite the control page and the data at any time. Every index read from guest memory is
// validated (below the data size, 8-byte aligned) and every packet is copied out before it is parsed; the
// indices the host owns are kept in host memory and only published to the guest. A bad index or packet header
// is an error Result ("ring corrupt"): the channel stops using the ring. Nothing here can touch host memory
// outside the pages resolved through GuestMemory::span at creation.
//
// Thread safety: none; one RingReader is used by the channel's worker, one RingWriter under the channel's
// send lock. The GuestMemory must outlive the views (host pointers into it are kept).
#pragma once

#include "protocols/vmbus/ring.h"
#include "support/result.h"
#include "vm/memory/guest_memory.h"

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace vmgen::vm::vmbus {

inline constexpr uint64_t page_size = protocols::vmbus::ring_page_size;

// Guest page frames as one linear byte range.
class PageListView {
public:
    PageListView() = default;
    // Every PFN must name a page inside guest RAM.
    static Result<PageListView> create(const GuestMemory& memory, std::span<const uint64_t> pfns);

    [[nodiscard]] uint64_t size() const { return m_size; }
    // Number of host-contiguous runs (1 when the pages are contiguous).
    [[nodiscard]] size_t run_count() const { return m_runs.size(); }
    // Copies [offset, offset + out.size()) out of / into the pages; an error if the range is outside.
    [[nodiscard]] Result<void> read(uint64_t offset, std::span<uint8_t> out) const;
    [[nodiscard]] Result<void> write(uint64_t offset, std::span<const uint8_t> in) const;

private:
    struct Run {
        uint64_t offset = 0; // in the linear range
        uint64_t size = 0;
        uint8_t* host = nullptr;
    };
    [[nodiscard]] size_t find_run(uint64_t offset) const;

    std::vector<Run> m_runs;
    uint64_t m_size = 0;
};

// The control page of one ring: atomic accessors for the shared fields.
class RingControlPage {
public:
    RingControlPage() = default;
    explicit RingControlPage(uint8_t* host) : m_host(host) {}
    [[nodiscard]] uint32_t load(uint32_t offset) const;
    void store(uint32_t offset, uint32_t value) const;

private:
    uint8_t* m_host = nullptr;
};

// A packet read from the guest -> host ring: views into the reader's copy, valid until the next peek().
struct RingPacket {
    uint16_t type = 0;
    uint16_t flags = 0;
    uint64_t trans_id = 0;
    std::span<const uint8_t> header;  // bytes between the descriptor and offset8 * 8 (type 7/9 range lists)
    std::span<const uint8_t> payload; // offset8 * 8 .. len8 * 8
    uint32_t total_size = 0;          // bytes the packet occupies in the ring, trailer included
};

// The guest -> host ring: the host is the reader.
class RingReader {
public:
    RingReader() = default;
    // `pfns[0]` is the control page, the rest the data pages (at least one).
    static Result<RingReader> create(const GuestMemory& memory, std::span<const uint64_t> pfns);

    // The next packet, not yet consumed; nullopt when the ring is empty. An error means the ring is corrupt.
    [[nodiscard]] Result<std::optional<RingPacket>> peek();
    // Steps past the packet returned by the last peek() (locally; commit() publishes).
    void consume();
    // Publishes the read index. Returns true when the guest must be signalled: it set pending_send_sz (with
    // the feature bit) and this commit moved the free space from "not enough" to "enough".
    [[nodiscard]] Result<bool> commit();
    // Reader's interrupt mask: set while draining so the guest does not signal each packet.
    void begin_read();
    // Clears the mask, then re-checks: true if the ring is not empty (the caller must drain again).
    [[nodiscard]] Result<bool> end_read();

    [[nodiscard]] uint32_t data_size() const { return m_data_size; }
    [[nodiscard]] uint32_t read_index() const { return m_read; }
    // The control page, for setting the interrupt mask from another thread (ServerChannel::poll_for_packets).
    [[nodiscard]] RingControlPage control_page() const { return m_control; }

private:
    [[nodiscard]] Result<uint32_t> guest_write_index() const;

    RingControlPage m_control;
    PageListView m_data;
    uint32_t m_data_size = 0;
    uint32_t m_read = 0;           // private read position (consumed packets)
    uint32_t m_published_read = 0; // what the guest sees
    uint32_t m_peeked_size = 0;    // size of the packet returned by the last peek, 0 if none
    std::vector<uint8_t> m_packet;
};

// The host -> guest ring: the host is the writer.
class RingWriter {
public:
    enum class WriteStatus {
        written,        // no signal needed
        written_signal, // the ring went from empty to non-empty with the guest's mask clear: signal it
        full,           // not enough room; pending_send_sz is set, the guest signals when it frees space
    };

    RingWriter() = default;
    static Result<RingWriter> create(const GuestMemory& memory, std::span<const uint64_t> pfns);

    // Writes one packet: descriptor, `header` (a multiple of 8 bytes: type-specific header), `payload` padded
    // to 8, trailer. An error means the ring is corrupt or the packet can never fit.
    [[nodiscard]] Result<WriteStatus> write(uint16_t type, uint16_t flags, uint64_t trans_id,
                                            std::span<const uint8_t> header, std::span<const uint8_t> payload);
    // Free bytes a packet may use now (the ring is never filled completely); an error if corrupt.
    [[nodiscard]] Result<uint32_t> free_bytes() const;

    [[nodiscard]] uint32_t data_size() const { return m_data_size; }
    [[nodiscard]] uint32_t write_index() const { return m_write; }

private:
    [[nodiscard]] Result<uint32_t> guest_read_index() const;

    RingControlPage m_control;
    PageListView m_data;
    uint32_t m_data_size = 0;
    uint32_t m_write = 0;
    bool m_pending_set = false;
    std::vector<uint8_t> m_scratch;
};

// Bytes a packet with `header_size` + `payload_size` takes in the ring (descriptor, padding, trailer).
[[nodiscard]] uint64_t ring_packet_size(uint64_t header_size, uint64_t payload_size);

} // namespace vmgen::vm::vmbus
