// Compacting dynamic and differencing VHDX images: giving back the space of blocks no BAT entry points at any more
// (discarded or zero blocks, blocks past the end after a shrink, a BAT region that moved).
//
// Blocks stored last move into the lowest free ranges below them: each batch of moves copies the blocks (payload
// or sector bitmap) into free space, flushes, then changes their BAT entries in one log entry (the commit: before
// it the old copies are the ones in use, after it the new ones). compact() first empties the log, so no entry
// written before can be replayed over a block moved into space that was once metadata. Then, with the log empty
// again (no entry may claim a larger file than remains), the file is truncated after the last thing it holds,
// and free ranges left below that are punched out where the file system can. With nothing to move and nothing
// past the last block, the file is not touched at all.
#include "support/errno_error.h"
#include "vm/disk/vhdx/vhdx_disk.h"
#include "vm/disk/vhdx/vhdx_internal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <map>

namespace vmgen::vm::disk::vhdx_detail {

using namespace vmgen::protocols::disk;

namespace {

// A batch of moves is committed after this many blocks or bytes copied (each move changes at most one BAT sector,
// so a batch fits one log entry).
constexpr size_t max_batch_moves = 64;
constexpr uint64_t max_batch_bytes = 256 * vhdx_mib;

constexpr uint64_t no_index = UINT64_MAX;

// The free ranges between `used` (sorted) below `end`, as start → end.
std::map<uint64_t, uint64_t> free_ranges(const std::vector<std::pair<uint64_t, uint64_t>>& used, uint64_t end)
{
    std::map<uint64_t, uint64_t> out;
    uint64_t pos = 0;
    for (const auto& [offset, length] : used) {
        if (offset > pos && pos < end)
            out.emplace(pos, std::min(offset, end));
        pos = std::max(pos, offset + length);
    }
    return out;
}

} // namespace

std::vector<VhdxDisk::Used> VhdxDisk::used_ranges() const
{
    std::vector<Used> out = {
        {0, vhdx_mib, no_index},
        {m_header.log_offset, m_header.log_length, no_index},
        {m_metadata_offset, m_metadata_length, no_index},
        {m_bat_offset, m_bat_length, no_index},
    };
    for (const auto& [offset, length] : m_other_regions)
        out.push_back({offset, length, no_index});
    for (uint64_t i = 0; i < m_bat.size(); ++i) {
        const uint64_t entry = m_bat[i];
        const uint64_t state = state_of(entry);
        if ((i + 1) % (m_chunk_ratio + 1) == 0) {
            if (state == vhdx_sb_present)
                out.push_back({offset_of(entry), vhdx_sector_bitmap_block_size, i});
        } else if (state == vhdx_payload_fully_present || state == vhdx_payload_partially_present) {
            out.push_back({offset_of(entry), m_block_size, i});
        }
    }
    std::sort(out.begin(), out.end(), [](const Used& a, const Used& b) { return a.offset < b.offset; });
    return out;
}

Result<void> VhdxDisk::truncate_to_used()
{
    uint64_t end = 0;
    for (const Used& u : used_ranges())
        end = std::max(end, u.offset + u.length);
    end = (end + vhdx_mib - 1) / vhdx_mib * vhdx_mib;
    if (end >= m_file_size)
        return {};
    TRY(sync());
    if (::ftruncate(m_fd.get(), static_cast<off_t>(end)) != 0)
        return errno_failure("truncating the file");
    m_file_size = end;
    m_info.file_size = end;
    m_unsynced = true;
    return sync();
}

// Copies in pieces; runs of all-zero 4 KiB pages (discarded ranges, holes) become holes at the destination where
// the file system can punch them, so a sparse block stays sparse.
Result<void> VhdxDisk::copy_in_file(uint64_t from, uint64_t to, uint64_t length)
{
    constexpr uint64_t page = 4096;
    std::vector<uint8_t> buffer(static_cast<size_t>(std::min<uint64_t>(length, vhdx_mib)));
    auto zero_page = [&](uint64_t at) {
        return std::all_of(buffer.begin() + static_cast<std::ptrdiff_t>(at),
                           buffer.begin() + static_cast<std::ptrdiff_t>(at + page), [](uint8_t b) { return b == 0; });
    };
    for (uint64_t done = 0; done < length;) {
        const uint64_t n = std::min<uint64_t>(length - done, buffer.size());
        TRY(read_at(m_fd.get(), std::span<uint8_t>(buffer).subspan(0, static_cast<size_t>(n)), from + done));
        for (uint64_t at = 0; at < n;) {
            const bool zero = zero_page(at);
            uint64_t end = at + page;
            while (end < n && zero_page(end) == zero)
                end += page;
            if (zero)
                TRY(zero_file_range(to + done + at, end - at, false));
            else
                TRY(write_at(m_fd.get(), std::span<const uint8_t>(buffer).subspan(at, end - at), to + done + at));
            at = end;
        }
        done += n;
    }
    m_unsynced = true;
    return {};
}

Result<void> VhdxDisk::compact()
{
    std::lock_guard lock(m_mutex);
    if (m_info.type == DiskType::Fixed)
        return {}; // every block is where it belongs; nothing to give back
    if (m_read_only)
        return fail("VHDX image is read-only");
    TRY(commit_dirty()); // the BAT as committed is what the file holds

    // The plan: blocks stored last into the lowest free range below them that fits.
    struct Move {
        uint64_t index;
        uint64_t from;
        uint64_t to;
        uint64_t length;
    };
    std::vector<Move> plan;
    uint64_t end = 0; // of the last thing the file holds once the plan is carried out
    {
        const std::vector<Used> used = used_ranges();
        std::vector<std::pair<uint64_t, uint64_t>> spans;
        for (const Used& u : used)
            spans.emplace_back(u.offset, u.length);
        std::map<uint64_t, uint64_t> holes = free_ranges(spans, m_file_size);
        // Per block length (payload or sector bitmap), where the first free range that may fit starts: ranges
        // only shrink, so it only moves up.
        std::map<uint64_t, uint64_t> first_fit;
        for (auto u = used.rbegin(); u != used.rend(); ++u) {
            uint64_t at = u->offset;
            if (u->index != no_index) {
                auto it = holes.lower_bound(first_fit[u->length]);
                while (it != holes.end() && it->second - it->first < u->length)
                    ++it;
                first_fit[u->length] = it == holes.end() ? UINT64_MAX : it->first;
                if (it != holes.end() && it->first < u->offset) {
                    at = it->first;
                    const uint64_t hole_end = it->second;
                    holes.erase(it);
                    if (at + u->length < hole_end)
                        holes.emplace(at + u->length, hole_end);
                    plan.push_back({u->index, u->offset, at, u->length});
                }
            }
            end = std::max(end, at + u->length);
        }
    }
    if (plan.empty() && end >= m_file_size)
        return {}; // nothing to give back: the file is left as it is

    TRY(begin_write(false)); // a new FileWriteGuid; the virtual disk does not change
    TRY(empty_log());
    m_free.clear(); // all free space is found again here
    size_t moves = 0;
    uint64_t bytes = 0;
    for (const Move& m : plan) {
        TRY(copy_in_file(m.from, m.to, m.length));
        TRY(set_bat_entry(m.index, make_entry(m.to, state_of(m_bat[m.index]))));
        bytes += m.length;
        if (++moves >= max_batch_moves || bytes >= max_batch_bytes) {
            TRY(commit_dirty()); // the copies flushed, then the BAT entries: the commit
            moves = 0;
            bytes = 0;
        }
    }
    TRY(commit_dirty());
    // Truncation only with an empty log: no entry may claim the longer file ([MS-VHDX] 2.3.1.1 FlushedFileOffset).
    TRY(empty_log());
    TRY(truncate_to_used());
    std::vector<std::pair<uint64_t, uint64_t>> spans;
    for (const Used& u : used_ranges())
        spans.emplace_back(u.offset, u.length);
    for (const auto& [start, stop] : free_ranges(spans, m_file_size)) // best effort
        (void)::fallocate(m_fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(start),
                          static_cast<off_t>(stop - start));
    return {};
}

} // namespace vmgen::vm::disk::vhdx_detail
