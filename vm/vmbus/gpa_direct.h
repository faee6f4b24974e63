// Zero-copy access to the guest buffers named by a GPA-direct packet (VMBus packet type 9).
//
// storvsc (one range per request: byte_offset into the first page, byte_count = transfer length, one PFN per
// 4 KiB page) and netvsc (one single-page range per fragment) describe guest buffers this way instead of copying
// them into the ring. The header after the packet descriptor (Packet::header for type 9, see ring_buffer.h) is
// {u32 reserved; u32 range_count;} followed by range_count ranges packed back to back, each
// {u32 byte_count; u32 byte_offset; u64 pfns[ceil((byte_offset + byte_count) / 4096)]}; padding may follow the
// last range. Reference: Linux 6.1 include/linux/hyperv.h (struct vmbus_packet_mpb_array, struct hv_mpb_array,
// struct vmbus_channel_packet_page_buffer), drivers/hv/channel.c (vmbus_sendpacket_mpb_desc,
// vmbus_sendpacket_pagebuffer), drivers/scsi/storvsc_drv.c (storvsc_queuecommand).
//
// parse_gpa_direct() copies the range list out of the (host-side) header and validates its shape; GpaRanges
// then maps byte windows of the whole transfer (the ranges concatenated in order) to host memory through
// GuestMemory::span, page by page, merging pages that are adjacent on the host into one segment, so a
// physically contiguous guest buffer becomes a single span / iovec. Every PFN is checked against guest RAM at
// the time of access: a PFN outside RAM (or in a hole between RAM regions) is an error naming it.
//
// The bytes behind the spans are shared with the guest and may change at any time. The GuestMemory must
// outlive any span or iovec handed out. Thread safety: a GpaRanges is immutable after parsing; const methods
// may be called from any thread.
#pragma once

#include "support/result.h"
#include "vm/memory/guest_memory.h"

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace vmgen::vm::vmbus {

inline constexpr uint32_t gpa_page_size = 4096;                // HV_HYP_PAGE_SIZE
inline constexpr uint32_t max_gpa_ranges = 256;                // Linux sends at most 32 (MAX_PAGE_BUFFER_COUNT)
inline constexpr uint64_t max_gpa_transfer_bytes = 64ull << 20; // sum of byte_count over all ranges
inline constexpr uint64_t max_gpa_pfn = (1ull << 52) - 1;       // 52-bit guest physical addresses
inline constexpr size_t max_gpa_iovecs = 1024;                  // IOV_MAX

// One range of a GPA-direct packet.
struct GpaRange {
    uint32_t byte_count = 0;      // bytes in this range (> 0)
    uint32_t byte_offset = 0;     // start within the first page (< 4096)
    uint64_t transfer_offset = 0; // where the range starts in the whole transfer
    uint32_t first_pfn = 0;       // index of its first PFN in GpaRanges::all_pfns()
    uint32_t pfn_count = 0;       // ceil((byte_offset + byte_count) / 4096)
};

class GpaRanges {
public:
    // Called once per host-contiguous segment, in transfer order. An error stops the walk and is returned.
    using SegmentFn = std::function<Result<void>(std::span<uint8_t>)>;

    GpaRanges() = default;

    // Sum of byte_count over the ranges.
    [[nodiscard]] uint64_t total_bytes() const { return m_total_bytes; }
    [[nodiscard]] std::span<const GpaRange> ranges() const { return m_ranges; }
    [[nodiscard]] std::span<const uint64_t> pfns(const GpaRange& range) const
    {
        return std::span<const uint64_t>(m_pfns).subspan(range.first_pfn, range.pfn_count);
    }
    [[nodiscard]] std::span<const uint64_t> all_pfns() const { return m_pfns; }

    // Checks that every page of every range lies in guest RAM (for devices that want to refuse a request
    // before starting it). The access functions below check the pages they touch in any case.
    [[nodiscard]] Result<void> validate(const GuestMemory& memory) const;

    // Walks [offset, offset + length) of the transfer as host spans, zero-copy: pages adjacent on the host are
    // merged into one span. Errors: the window is not inside [0, total_bytes()), a PFN is outside guest RAM.
    // On an error, the segments before the bad page may already have been passed to `fn`.
    [[nodiscard]] Result<void> for_each_segment(const GuestMemory& memory, uint64_t offset, uint64_t length,
                                                const SegmentFn& fn) const;

    // Copies `in` into the transfer at `offset` / fills `out` from the transfer at `offset`. On an error the
    // copy may be partial.
    [[nodiscard]] Result<void> copy_to_guest(const GuestMemory& memory, uint64_t offset,
                                             std::span<const uint8_t> in) const;
    [[nodiscard]] Result<void> copy_from_guest(const GuestMemory& memory, uint64_t offset,
                                               std::span<uint8_t> out) const;

    // Host iovecs for [offset, offset + length) (for preadv/pwritev/io_uring), all or nothing: an error if the
    // window or a page is invalid, or if more than `max_count` segments would be needed.
    [[nodiscard]] Result<std::vector<iovec>> iovecs(const GuestMemory& memory, uint64_t offset, uint64_t length,
                                                    size_t max_count = max_gpa_iovecs) const;

private:
    friend Result<GpaRanges> parse_gpa_direct(std::span<const uint8_t> header);

    std::vector<GpaRange> m_ranges;
    std::vector<uint64_t> m_pfns;
    uint64_t m_total_bytes = 0;
};

// Parses the type-specific header of a type-9 packet (Packet::header: the bytes between the descriptor and
// offset8 * 8). Errors: truncated header, range_count 0 or above max_gpa_ranges, byte_count 0,
// byte_offset >= 4096, a PFN array running past the header, a PFN beyond max_gpa_pfn, total bytes above
// max_gpa_transfer_bytes.
[[nodiscard]] Result<GpaRanges> parse_gpa_direct(std::span<const uint8_t> header);

} // namespace vmgen::vm::vmbus
