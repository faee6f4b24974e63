#include "vm/vmbus/gpa_direct.h"

#include "protocols/vmbus/ring.h"

#include <algorithm>
#include <cstring>

namespace vmgen::vm::vmbus {

namespace wire = protocols::vmbus;

namespace {

// The on-wire range head ({byte_count, byte_offset}, then the PFNs), struct hv_mpb_array without the array.
struct WireRangeHead {
    uint32_t byte_count;
    uint32_t byte_offset;
};
static_assert(sizeof(WireRangeHead) == 8);

static_assert(gpa_page_size == wire::ring_page_size);
static_assert(max_gpa_transfer_bytes / gpa_page_size + max_gpa_ranges < UINT32_MAX); // PFN indices fit u32

} // namespace

Result<GpaRanges> parse_gpa_direct(std::span<const uint8_t> header)
{
    wire::GpaDirectHeader head {};
    if (header.size() < sizeof(head))
        return fail("GPA-direct header truncated: {} bytes, need at least {}", header.size(), sizeof(head));
    std::memcpy(&head, header.data(), sizeof(head));
    if (head.range_count == 0)
        return fail("GPA-direct packet has no ranges");
    if (head.range_count > max_gpa_ranges)
        return fail("GPA-direct packet has {} ranges, at most {} are accepted", head.range_count, max_gpa_ranges);

    GpaRanges result;
    result.m_ranges.reserve(head.range_count);
    size_t pos = sizeof(head);
    for (uint32_t i = 0; i < head.range_count; ++i) {
        WireRangeHead range {};
        if (header.size() - pos < sizeof(range))
            return fail("GPA-direct range {} of {} truncated: the header ends at byte {}", i, head.range_count,
                        header.size());
        std::memcpy(&range, header.data() + pos, sizeof(range));
        pos += sizeof(range);
        if (range.byte_count == 0)
            return fail("GPA-direct range {} is empty", i);
        if (range.byte_offset >= gpa_page_size)
            return fail("GPA-direct range {}: byte offset {} is not within the first page", i, range.byte_offset);
        if (range.byte_count > max_gpa_transfer_bytes - result.m_total_bytes)
            return fail("GPA-direct range {}: {} more bytes exceed the transfer limit of {} bytes (already {})", i,
                        range.byte_count, max_gpa_transfer_bytes, result.m_total_bytes);
        // Both terms are 32-bit, so the sum cannot overflow in 64 bits.
        uint64_t pages = (uint64_t {range.byte_offset} + range.byte_count + gpa_page_size - 1) / gpa_page_size;
        uint64_t available = (header.size() - pos) / sizeof(uint64_t);
        if (pages > available)
            return fail("GPA-direct range {}: {} PFNs at byte {} run past the end of the {}-byte header", i, pages,
                        pos, header.size());

        size_t first = result.m_pfns.size();
        result.m_pfns.resize(first + pages);
        std::memcpy(result.m_pfns.data() + first, header.data() + pos, pages * sizeof(uint64_t));
        pos += pages * sizeof(uint64_t);
        for (size_t p = first; p < result.m_pfns.size(); ++p) {
            if (result.m_pfns[p] > max_gpa_pfn)
                return fail("GPA-direct range {}: PFN {:#x} is beyond the physical address space", i,
                            result.m_pfns[p]);
        }

        result.m_ranges.push_back(GpaRange {
            .byte_count = range.byte_count,
            .byte_offset = range.byte_offset,
            .transfer_offset = result.m_total_bytes,
            .first_pfn = static_cast<uint32_t>(first),
            .pfn_count = static_cast<uint32_t>(pages),
        });
        result.m_total_bytes += range.byte_count;
    }
    // Anything after the last range is padding (the header is a multiple of 8 bytes).
    return result;
}

Result<void> GpaRanges::validate(const GuestMemory& memory) const
{
    for (size_t i = 0; i < m_ranges.size(); ++i) {
        for (uint64_t pfn : pfns(m_ranges[i])) {
            if (!memory.contains(pfn * gpa_page_size, gpa_page_size))
                return fail("GPA-direct range {}: PFN {:#x} is outside guest RAM", i, pfn);
        }
    }
    return {};
}

Result<void> GpaRanges::for_each_segment(const GuestMemory& memory, uint64_t offset, uint64_t length,
                                         const SegmentFn& fn) const
{
    if (offset > m_total_bytes || length > m_total_bytes - offset)
        return fail("window {:#x}+{:#x} is outside the {}-byte GPA-direct transfer", offset, length, m_total_bytes);
    if (length == 0)
        return {};

    // The range holding `offset`: ranges are non-empty, so transfer offsets strictly increase.
    auto it = std::upper_bound(m_ranges.begin(), m_ranges.end(), offset,
                               [](uint64_t o, const GpaRange& r) { return o < r.transfer_offset; });
    size_t index = static_cast<size_t>(it - m_ranges.begin()) - 1;
    uint64_t within = offset - m_ranges[index].transfer_offset;

    uint8_t* run = nullptr; // pending segment: host-contiguous pages not yet passed to fn
    size_t run_size = 0;
    uint64_t remaining = length;
    while (remaining > 0) {
        // remaining <= total - offset guarantees a range is left.
        const GpaRange& range = m_ranges[index];
        uint64_t pos = range.byte_offset + within; // from the start of the range's first page
        uint64_t range_end = uint64_t {range.byte_offset} + range.byte_count;
        while (pos < range_end && remaining > 0) {
            uint64_t page = pos / gpa_page_size;
            uint64_t in_page = pos % gpa_page_size;
            uint64_t n = std::min({gpa_page_size - in_page, range_end - pos, remaining});
            uint64_t pfn = m_pfns[range.first_pfn + page];
            auto host = memory.span(pfn * gpa_page_size + in_page, n); // pfn <= max_gpa_pfn: no overflow
            if (!host)
                return fail("GPA-direct range {}: PFN {:#x} (page {}) is outside guest RAM", index, pfn, page);
            if (run != nullptr && run + run_size == host->data()) {
                run_size += host->size();
            } else {
                if (run != nullptr)
                    TRY(fn(std::span<uint8_t>(run, run_size)));
                run = host->data();
                run_size = host->size();
            }
            pos += n;
            remaining -= n;
        }
        ++index;
        within = 0;
    }
    if (run != nullptr)
        TRY(fn(std::span<uint8_t>(run, run_size)));
    return {};
}

Result<void> GpaRanges::copy_to_guest(const GuestMemory& memory, uint64_t offset, std::span<const uint8_t> in) const
{
    size_t done = 0;
    return for_each_segment(memory, offset, in.size(), [&](std::span<uint8_t> segment) -> Result<void> {
        std::memcpy(segment.data(), in.data() + done, segment.size());
        done += segment.size();
        return {};
    });
}

Result<void> GpaRanges::copy_from_guest(const GuestMemory& memory, uint64_t offset, std::span<uint8_t> out) const
{
    size_t done = 0;
    return for_each_segment(memory, offset, out.size(), [&](std::span<uint8_t> segment) -> Result<void> {
        std::memcpy(out.data() + done, segment.data(), segment.size());
        done += segment.size();
        return {};
    });
}

Result<std::vector<iovec>> GpaRanges::iovecs(const GuestMemory& memory, uint64_t offset, uint64_t length,
                                             size_t max_count) const
{
    std::vector<iovec> out;
    TRY(for_each_segment(memory, offset, length, [&](std::span<uint8_t> segment) -> Result<void> {
        if (out.size() >= max_count)
            return fail("GPA-direct window {:#x}+{:#x} needs more than {} iovecs", offset, length, max_count);
        out.push_back(iovec {.iov_base = segment.data(), .iov_len = segment.size()});
        return {};
    }));
    return out;
}

} // namespace vmgen::vm::vmbus
