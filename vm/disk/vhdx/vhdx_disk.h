// The open VHDX image behind BlockDevice (vhdx_disk.cc): reads and writes through the BAT, sector bitmaps and the
// parent of differencing images, BAT and bitmap updates through the log; resizing (vhdx_resize.cc) and compaction
// (vhdx_compact.cc). open_image (vhdx.cc) builds it from a validated file. Not a public interface.
//
// Crash safety: metadata (BAT entries, sector bitmap sectors, the virtual size, region tables) changes in 4 KiB
// sectors through the log. Changes that writes and discards make wait in memory (m_dirty; reads see them) until
// flush() or until enough have gathered; then everything written is flushed, one log entry carries the pending
// sectors together (the commit) and they are written in place. So data and bitmaps are durable before the BAT
// entry or bitmap bit that shows them, and a crash loses at most what was written since the last flush().
// Resizing and compaction start a fresh log (see empty_log) and truncate the file only while the log is empty, so
// no entry of the log ever claims a file size (FlushedFileOffset) larger than the file.
#pragma once

#include "protocols/disk/vhdx.h"
#include "support/result.h"
#include "support/unique_fd.h"
#include "vm/disk/block_device.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <utility>
#include <vector>

namespace vmgen::vm::disk::vhdx_detail {

// [MS-VHDX] 2.5: a BAT entry's state, the file offset it points at, and an entry made of both.
inline uint64_t state_of(uint64_t entry) { return entry & protocols::disk::vhdx_bat_state_mask; }
inline uint64_t offset_of(uint64_t entry)
{
    return (entry >> protocols::disk::vhdx_bat_offset_shift) * protocols::disk::vhdx_mib;
}
inline uint64_t make_entry(uint64_t offset, uint64_t state)
{
    return (offset >> protocols::disk::vhdx_bat_offset_shift) << protocols::disk::vhdx_bat_offset_shift | state;
}

// Everything open_image validated, handed to the disk.
struct ImageState {
    UniqueFd fd;
    DiskInfo info;
    bool read_only = true;
    protocols::disk::VhdxHeader header{}; // the current header
    int header_index = 0;                 // its slot
    std::vector<uint64_t> bat;
    uint64_t chunk_ratio = 0;
    uint32_t block_size = 0;
    uint64_t bat_offset = 0;
    uint64_t bat_length = 0;
    uint64_t metadata_offset = 0;
    uint64_t metadata_length = 0;
    uint64_t size_item_offset = 0;        // file offset of the Virtual Disk Size metadata item
    std::vector<std::pair<uint64_t, uint64_t>> other_regions; // (offset, length) of regions we do not know
    protocols::disk::VhdxGuid disk_id{};  // Virtual Disk ID (page 83 data)
    std::unique_ptr<BlockDevice> parent;  // differencing images: the parent, open read-only
};

// Metadata sectors changed together: 4 KiB sectors of new contents by file offset, and ranges to zero.
struct MetadataChange {
    std::map<uint64_t, std::vector<uint8_t>> sectors;
    std::vector<std::pair<uint64_t, uint64_t>> zeroes; // (file offset, length), multiples of 4 KiB
};

class VhdxDisk final : public BlockDevice {
public:
    explicit VhdxDisk(ImageState state);
    VhdxDisk(const VhdxDisk&) = delete;
    VhdxDisk& operator=(const VhdxDisk&) = delete;
    // Commits pending metadata, flushes and empties the log when this open used it (errors only logged).
    ~VhdxDisk() override;

    [[nodiscard]] const DiskInfo& info() const override { return m_info; }
    [[nodiscard]] bool read_only() const override { return m_read_only; }
    Result<void> read(uint64_t offset, std::span<uint8_t> out) override;
    Result<void> write(uint64_t offset, std::span<const uint8_t> in) override;
    // Without waiting: reads of fully present blocks from the page cache, zero blocks, a parent's nowait read;
    // writes only into fully present blocks (no metadata to update) once this open has its new write GUIDs.
    // The image lock held exclusively, a partially present block or an allocation answer false.
    Result<bool> read_nowait(uint64_t offset, std::span<uint8_t> out) override;
    Result<bool> write_nowait(uint64_t offset, std::span<const uint8_t> in) override;
    Result<void> flush() override;
    Result<void> discard(uint64_t offset, uint64_t length) override;
    Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override;
    Result<void> resize(uint64_t new_size) override;
    Result<void> compact() override;
    Result<void> close() override;

    // The header's DataWriteGuid: identifies the user-visible contents (children record it as parent_linkage).
    [[nodiscard]] protocols::disk::VhdxGuid data_write_guid() const;
    [[nodiscard]] const protocols::disk::VhdxGuid& disk_id() const { return m_disk_id; }

private:
    enum class Source { File, Parent, Zero, Bitmap };
    struct Run {
        uint64_t offset; // within the block
        uint64_t length;
        bool present;    // in this file (else in the parent)
    };
    // A range of the file that holds something (header section, log, regions, blocks), for compaction and
    // truncation. `index` is the BAT entry of a block, UINT64_MAX for the rest.
    struct Used {
        uint64_t offset;
        uint64_t length;
        uint64_t index;
    };

    // One piece of a request that lies in a single block: disk offset `pos`, `done` bytes into the request.
    struct Piece {
        uint64_t pos;
        uint64_t block;
        uint64_t in_block;
        uint64_t done;
        uint64_t size;
    };
    // The pieces of [offset, offset + length), in order, for a range-for.
    class Pieces {
    public:
        class iterator {
        public:
            iterator(const Pieces& all, uint64_t done) : m_all(all), m_done(done) {}
            Piece operator*() const
            {
                uint64_t pos = m_all.m_offset + m_done;
                uint64_t in_block = pos % m_all.m_block_size;
                return {pos, pos / m_all.m_block_size, in_block, m_done,
                        std::min<uint64_t>(m_all.m_length - m_done, m_all.m_block_size - in_block)};
            }
            iterator& operator++()
            {
                m_done += (**this).size;
                return *this;
            }
            bool operator!=(const iterator& other) const { return m_done != other.m_done; }

        private:
            const Pieces& m_all;
            uint64_t m_done;
        };
        Pieces(uint64_t offset, uint64_t length, uint64_t block_size)
            : m_offset(offset), m_length(length), m_block_size(block_size)
        {
        }
        [[nodiscard]] iterator begin() const { return {*this, 0}; }
        [[nodiscard]] iterator end() const { return {*this, m_length}; }

    private:
        uint64_t m_offset;
        uint64_t m_length;
        uint64_t m_block_size;
    };
    [[nodiscard]] Pieces pieces(uint64_t offset, uint64_t length) const { return {offset, length, m_block_size}; }

    [[nodiscard]] bool differencing() const { return m_parent != nullptr; }
    [[nodiscard]] uint64_t bat_index(uint64_t block) const { return block + block / m_chunk_ratio; }
    [[nodiscard]] uint64_t bitmap_index(uint64_t block) const
    {
        return block / m_chunk_ratio * (m_chunk_ratio + 1) + m_chunk_ratio;
    }
    // Bit of the sector at disk offset `pos` in its chunk's sector bitmap block.
    [[nodiscard]] uint64_t bitmap_bit(uint64_t pos) const
    {
        return pos / m_info.logical_sector_size % protocols::disk::vhdx_sectors_per_bitmap_block;
    }
    // BAT entries of an image of `size` bytes without a parent (differencing images are not resized).
    [[nodiscard]] uint64_t bat_entries(uint64_t size) const;
    [[nodiscard]] Source source_of(uint64_t entry) const;
    Result<void> check(uint64_t offset, uint64_t length) const;

    Result<void> read_block(uint64_t block, uint64_t in_block, std::span<uint8_t> out);
    // Writes that touch only fully present blocks once this open has its write GUIDs: no metadata changes, so
    // they run under the shared lock.
    bool writes_in_place(uint64_t offset, uint64_t length) const;
    Result<bool> write_in_place(uint64_t offset, std::span<const uint8_t> in, bool nowait);
    Result<void> write_block(uint64_t block, uint64_t in_block, std::span<const uint8_t> data);
    Result<void> discard_block(uint64_t block, uint64_t in_block, uint64_t length, std::vector<uint8_t>& zeroes,
                               std::vector<uint64_t>& released);
    // The sectors of [in_block, in_block + length) of a partially present block as runs of equal bits.
    Result<std::vector<Run>> bitmap_runs(uint64_t block, uint64_t in_block, uint64_t length);

    Result<void> sync();
    Result<void> update_header(protocols::disk::VhdxHeader h);
    // [MS-VHDX] 2.2.2: before the first change of this open a new FileWriteGuid, and before the first change of
    // the virtual disk (`user_visible`: its data or its size) a new DataWriteGuid too.
    Result<void> begin_write(bool user_visible = true);
    Result<void> start_log();
    // Commits pending metadata, flushes, and marks the log empty (log GUID zero): older entries can no longer be
    // replayed, and the next change starts a new log.
    Result<void> empty_log();

    // Metadata bytes at `offset` (inside one 4 KiB sector) as the disk sees them: the file, then pending changes.
    Result<void> read_metadata(uint64_t offset, std::span<uint8_t> out);
    // The pending copy of the metadata sector at `sector_offset` (read from the file when not pending yet).
    Result<std::vector<uint8_t>*> dirty_sector(uint64_t sector_offset);
    // Sets BAT entry `index` in memory and in the pending metadata.
    Result<void> set_bat_entry(uint64_t index, uint64_t entry);
    // Commits when enough metadata sectors are pending (bounds memory and what one log entry carries).
    Result<void> maybe_commit();
    // Commits the pending metadata: flushes what was written, logs the sectors (one entry, or several when too many
    // for one, each flushed before the next) and writes them in place.
    Result<void> commit_dirty();
    // Logs `change` as one entry (the commit: it must fit) after flushing everything written, then writes it in
    // place (region table 1 made durable before table 2 is touched).
    Result<void> commit_change(const MetadataChange& change);
    Result<void> apply_change(const MetadataChange& change);
    // Changes metadata bytes at `offset` in `change` (sectors loaded from the file as needed).
    Result<void> patch(MetadataChange& change, uint64_t offset, std::span<const uint8_t> bytes);

    // Grows the file by `length` bytes at the next 1 MiB boundary and returns where the new space starts.
    Result<uint64_t> extend_file(uint64_t length);
    // Space for a new block: the lowest range this open released that fits (m_free), else the end of the file.
    Result<uint64_t> allocate_space(uint64_t length);
    Result<void> allocate_and_write(uint64_t block, uint64_t in_block, std::span<const uint8_t> data);
    Result<void> allocate_partial(uint64_t block, uint64_t in_block, std::span<const uint8_t> data);
    Result<uint64_t> ensure_bitmap_block(uint64_t block);
    // Bits [first, first + count) of the sector bitmap block at `bitmap_offset` become 1 inside
    // [set_first, set_first + set_count) and 0 elsewhere (pending metadata).
    Result<void> update_bitmap(uint64_t bitmap_offset, uint64_t first, uint64_t count, uint64_t set_first,
                               uint64_t set_count);

    // vhdx_resize.cc
    Result<void> grow(uint64_t new_size);
    Result<void> shrink(uint64_t new_size);
    // The region table change that moves the BAT region to [offset, offset + length).
    Result<void> move_bat_region(MetadataChange& change, uint64_t offset, uint64_t length);
    // Zeroes [offset, offset + length) of the file (punching or zeroing the range where the file system can).
    Result<void> zero_file_range(uint64_t offset, uint64_t length, bool keep_allocated);

    // vhdx_compact.cc
    // Everything the file holds (header section, log, regions, blocks), sorted by offset.
    [[nodiscard]] std::vector<Used> used_ranges() const;
    // Truncates the file after the last thing it holds (the log must be empty).
    Result<void> truncate_to_used();
    Result<void> copy_in_file(uint64_t from, uint64_t to, uint64_t length);

    UniqueFd m_fd;
    DiskInfo m_info;
    bool m_read_only;
    uint32_t m_block_size;
    uint64_t m_bat_offset;
    uint64_t m_bat_length;
    uint64_t m_metadata_offset;
    uint64_t m_metadata_length;
    uint64_t m_size_item_offset;
    std::vector<std::pair<uint64_t, uint64_t>> m_other_regions;
    uint64_t m_file_size;
    protocols::disk::VhdxHeader m_header;
    int m_header_index;
    std::vector<uint64_t> m_bat;
    uint64_t m_chunk_ratio;
    protocols::disk::VhdxGuid m_disk_id;
    std::unique_ptr<BlockDevice> m_parent;
    bool m_file_guid_new = false; // the header got a new FileWriteGuid in this open
    bool m_data_guid_new = false; // ... and a new DataWriteGuid
    bool m_log_active = false;    // the header carries a log GUID of this open
    std::atomic<bool> m_unsynced = false; // written since the last fdatasync (set under the shared lock too)
    bool m_failed = false;        // a metadata commit failed half-way: the image takes no more changes
    uint64_t m_log_head = 0;
    uint64_t m_log_sequence = 0;
    std::map<uint64_t, std::vector<uint8_t>> m_dirty; // pending metadata sectors by file offset
    // Free ranges (start → end) to reuse: blocks this open discarded, once their new state is committed and their
    // space punched (so they read as zeroes, as new blocks must). Cleared by compact() and resize().
    std::map<uint64_t, uint64_t> m_free;
    // Reads and in-place writes (fully present blocks, header already updated) take it shared: they only look at
    // the BAT, the dirty metadata and the file, so I/O threads work in parallel; everything that changes metadata
    // or other state (allocation, bitmaps, flush, resize, compact) takes it exclusively.
    mutable std::shared_mutex m_mutex;
};

} // namespace vmgen::vm::disk::vhdx_detail
