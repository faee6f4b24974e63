// The open VHDX image behind BlockDevice (vhdx_disk.cc): reads and writes through the BAT, sector bitmaps and the
// parent of differencing images, BAT and bitmap updates through the log. open_image (vhdx.cc) builds it from a
// validated file. Not a public interface.
//
// Crash safety: metadata (BAT entries, sector bitmap sectors) changes one 4 KiB sector at a time through the log,
// and everything written before a metadata change is flushed before the change is logged, so data and bitmaps
// are durable before the BAT entry that makes them visible.
#pragma once

#include "protocols/disk/vhdx.h"
#include "support/result.h"
#include "support/unique_fd.h"
#include "vm/disk/block_device.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

namespace vmgen::vm::disk::vhdx_detail {

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
    protocols::disk::VhdxGuid disk_id{};  // Virtual Disk ID (page 83 data)
    std::unique_ptr<BlockDevice> parent;  // differencing images: the parent, open read-only
};

class VhdxDisk final : public BlockDevice {
public:
    explicit VhdxDisk(ImageState state);
    VhdxDisk(const VhdxDisk&) = delete;
    VhdxDisk& operator=(const VhdxDisk&) = delete;
    // Flushes and empties the log when this open used it.
    ~VhdxDisk() override;

    [[nodiscard]] const DiskInfo& info() const override { return m_info; }
    [[nodiscard]] bool read_only() const override { return m_read_only; }
    Result<void> read(uint64_t offset, std::span<uint8_t> out) override;
    Result<void> write(uint64_t offset, std::span<const uint8_t> in) override;
    Result<void> flush() override;
    Result<void> discard(uint64_t offset, uint64_t length) override;
    Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override;

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

    // BAT entry changes that share one 4 KiB BAT sector, logged together; then the blocks to release (their space
    // given back to the file system once the BAT no longer points at them durably).
    struct BatBatch {
        uint64_t sector_offset = UINT64_MAX;
        std::vector<std::pair<uint64_t, uint64_t>> entries; // (index, new entry)
        std::vector<uint64_t> released;                     // file offsets of payload blocks
    };

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
    [[nodiscard]] Source source_of(uint64_t entry) const;
    Result<void> check(uint64_t offset, uint64_t length) const;

    Result<void> read_block(uint64_t block, uint64_t in_block, std::span<uint8_t> out);
    Result<void> write_block(uint64_t block, uint64_t in_block, std::span<const uint8_t> data);
    Result<void> discard_block(uint64_t block, uint64_t in_block, uint64_t length, std::vector<uint8_t>& zeroes,
                               BatBatch& batch);
    // The sectors of [in_block, in_block + length) of a partially present block as runs of equal bits.
    Result<std::vector<Run>> bitmap_runs(uint64_t block, uint64_t in_block, uint64_t length);

    Result<void> sync();
    Result<void> update_header(protocols::disk::VhdxHeader h);
    Result<void> begin_write();
    Result<void> start_log();
    // Changes the 4 KiB metadata sector at `file_offset` through the log (after flushing earlier writes).
    Result<void> log_sector(uint64_t file_offset, std::span<const uint8_t> sector);
    Result<void> set_bat_entry(uint64_t index, uint64_t entry);
    // Adds a change to `batch`, committing the batch first when the entry lies in another BAT sector.
    Result<void> queue_bat_entry(BatBatch& batch, uint64_t index, uint64_t entry);
    Result<void> commit(BatBatch& batch);
    // Grows the file by `length` bytes at the next 1 MiB boundary and returns where the new space starts.
    Result<uint64_t> extend_file(uint64_t length);
    Result<void> allocate_and_write(uint64_t block, uint64_t in_block, std::span<const uint8_t> data);
    Result<void> allocate_partial(uint64_t block, uint64_t in_block, std::span<const uint8_t> data);
    Result<uint64_t> ensure_bitmap_block(uint64_t block);
    // Bits [first, first + count) of the sector bitmap block at `bitmap_offset` become 1 inside
    // [set_first, set_first + set_count) and 0 elsewhere; changed 4 KiB sectors go through the log.
    Result<void> update_bitmap(uint64_t bitmap_offset, uint64_t first, uint64_t count, uint64_t set_first,
                               uint64_t set_count);

    UniqueFd m_fd;
    DiskInfo m_info;
    bool m_read_only;
    uint32_t m_block_size;
    uint64_t m_bat_offset;
    uint64_t m_file_size;
    protocols::disk::VhdxHeader m_header;
    int m_header_index;
    std::vector<uint64_t> m_bat;
    uint64_t m_chunk_ratio;
    protocols::disk::VhdxGuid m_disk_id;
    std::unique_ptr<BlockDevice> m_parent;
    bool m_wrote = false;      // the header got new write GUIDs in this open
    bool m_log_active = false; // the header carries a log GUID of this open
    bool m_unsynced = false;   // written since the last fdatasync
    uint64_t m_log_head = 0;
    uint64_t m_log_sequence = 0;
    mutable std::mutex m_mutex;
};

} // namespace vmgen::vm::disk::vhdx_detail
