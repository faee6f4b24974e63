// Resizing fixed and dynamic VHDX images (differencing images have their parent's size).
//
// One log entry is the commit: it carries the new Virtual Disk Size metadata item, the BAT sector shared by old
// and new entries, the BAT entries past the new end (shrinking: zeroed) and, when the BAT region had no room for
// the new entries, the region tables pointing at a new BAT region at the end of the file. Everything else is
// prepared before it, where no reader of the old size looks, and flushed: the tail of the old last block past the
// old end zeroed (an earlier shrink kept its data), the BAT sectors past the old entries, a new BAT region, the
// new blocks of a fixed image (file extended and space reserved). resize() first empties the log, so no older
// entry can be replayed over what is prepared. A crash before the entry is durable leaves the old disk (what was
// prepared is unused space), after it the new one (replay finishes the in-place writes). Shrinking a fixed image
// truncates the file after the commit, with the log empty again.
#include "support/errno_error.h"
#include "vm/disk/vhdx/vhdx_disk.h"
#include "vm/disk/vhdx/vhdx_internal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace vmgen::vm::disk::vhdx_detail {

using namespace vmgen::protocols::disk;

namespace {

constexpr uint64_t sector_bytes = vhdx_log_sector_size;

uint64_t round_up(uint64_t value, uint64_t unit) { return (value + unit - 1) / unit * unit; }

// Bytes [from, to) of the BAT `bat` (zeroes past its entries), as they lie in the BAT region.
std::vector<uint8_t> bat_bytes(const std::vector<uint64_t>& bat, uint64_t from, uint64_t to)
{
    std::vector<uint8_t> out(to - from);
    const uint64_t end = std::min<uint64_t>(to, bat.size() * sizeof(uint64_t));
    if (from < end)
        std::memcpy(out.data(), reinterpret_cast<const uint8_t*>(bat.data()) + from, end - from);
    return out;
}

// A region table ([MS-VHDX] 2.2.3) with a valid signature and checksum.
bool valid_region_table(std::span<const uint8_t> table)
{
    VhdxRegionTableHeader h;
    std::memcpy(&h, table.data(), sizeof(h));
    return h.signature == vhdx_region_signature && h.entry_count <= vhdx_region_max_entries &&
           checksum_zeroed(table, offsetof(VhdxRegionTableHeader, checksum)) == h.checksum;
}

} // namespace

uint64_t VhdxDisk::bat_entries(uint64_t size) const
{
    const uint64_t blocks = (size + m_block_size - 1) / m_block_size;
    return blocks + (blocks - 1) / m_chunk_ratio;
}

Result<void> VhdxDisk::resize(uint64_t new_size)
{
    std::lock_guard lock(m_mutex);
    if (m_read_only)
        return fail("VHDX image is read-only");
    if (differencing())
        return fail("a differencing disk has its parent's size");
    const uint32_t sector = m_info.logical_sector_size;
    if (new_size == 0 || new_size % sector != 0 || new_size > vhdx_max_virtual_size)
        return fail("new size {} is not a non-zero multiple of {} bytes up to 64 TiB", new_size, sector);
    if (new_size == m_info.virtual_size)
        return {};
    TRY(begin_write(true));
    // A fresh log for the commit: no entry written before it can be replayed over what is prepared in place.
    TRY(empty_log());
    m_free.clear();
    return new_size > m_info.virtual_size ? grow(new_size) : shrink(new_size);
}

Result<void> VhdxDisk::grow(uint64_t new_size)
{
    const uint64_t old_size = m_info.virtual_size;
    const bool fixed = m_info.type == DiskType::Fixed;
    const uint64_t old_blocks = (old_size + m_block_size - 1) / m_block_size;
    const uint64_t new_blocks = (new_size + m_block_size - 1) / m_block_size;
    const uint64_t old_bytes = m_bat.size() * sizeof(uint64_t);
    const uint64_t new_bytes = bat_entries(new_size) * sizeof(uint64_t);
    const uint64_t old_file_size = m_file_size;
    std::vector<uint64_t> bat = m_bat;
    bat.resize(bat_entries(new_size), 0); // not present (payload), not present (sector bitmap)
    uint64_t bat_offset = m_bat_offset;
    uint64_t bat_length = m_bat_length;
    MetadataChange change;

    auto prepare = [&]() -> Result<void> {
        // What an earlier shrink left past the old end in its last block must read as zeroes.
        const uint64_t last = m_bat[bat_index(old_blocks - 1)];
        if (old_size % m_block_size != 0 && state_of(last) == vhdx_payload_fully_present) {
            const uint64_t tail = old_size % m_block_size;
            TRY(zero_file_range(offset_of(last) + tail, m_block_size - tail, fixed));
        }
        const bool move = new_bytes > m_bat_length;
        if (move) {
            bat_length = round_up(new_bytes, vhdx_mib);
            if (bat_length > UINT32_MAX / vhdx_mib * vhdx_mib)
                return fail("a BAT of {} bytes does not fit a region", bat_length);
            bat_offset = TRY(extend_file(bat_length));
        }
        if (fixed && new_blocks > old_blocks) {
            // Fixed images have every block: new ones at the end of the file, zeroes, space reserved.
            const uint64_t length = (new_blocks - old_blocks) * m_block_size;
            const uint64_t at = TRY(extend_file(length));
            const int err = ::posix_fallocate(m_fd.get(), static_cast<off_t>(at), static_cast<off_t>(length));
            if (err != 0 && err != EOPNOTSUPP && err != EINVAL)
                return errno_failure("reserving space", err);
            for (uint64_t b = old_blocks; b < new_blocks; ++b)
                bat[bat_index(b)] = make_entry(at + (b - old_blocks) * m_block_size, vhdx_payload_fully_present);
        }
        // The new entries: a new region gets all of the BAT; in place, the sectors past the old entries are
        // written directly and the sector shared with old entries goes through the log.
        const uint64_t shared = old_bytes / sector_bytes * sector_bytes;
        const uint64_t direct_from = move ? 0 : round_up(old_bytes, sector_bytes);
        const uint64_t direct_to = round_up(new_bytes, sector_bytes);
        constexpr uint64_t piece = vhdx_mib;
        for (uint64_t at = direct_from; at < direct_to; at += piece) {
            const auto bytes = bat_bytes(bat, at, std::min(direct_to, at + piece));
            TRY(write_at(m_fd.get(), bytes, bat_offset + at));
            m_unsynced = true;
        }
        if (move)
            TRY(move_bat_region(change, bat_offset, bat_length));
        else if (shared != old_bytes)
            TRY(patch(change, m_bat_offset + shared, bat_bytes(bat, shared, shared + sector_bytes)));
        TRY(patch(change, m_size_item_offset,
                  std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&new_size), sizeof(new_size))));
        return sync();
    };
    auto prepared = prepare();
    if (!prepared) {
        // Nothing points at the new space yet and the log is empty: give it back.
        if (m_file_size != old_file_size && ::ftruncate(m_fd.get(), static_cast<off_t>(old_file_size)) == 0) {
            m_file_size = old_file_size;
            m_info.file_size = old_file_size;
        }
        return prepared;
    }
    TRY(commit_change(change));
    m_bat = std::move(bat);
    m_bat_offset = bat_offset;
    m_bat_length = bat_length;
    m_info.virtual_size = new_size;
    return {};
}

Result<void> VhdxDisk::shrink(uint64_t new_size)
{
    // The entries past the new end become not present: the sector they share with kept entries through a data
    // sector, whole sectors after it through a zero descriptor. Blocks they pointed at become unused space
    // (compact() gives it back; a fixed image's file is truncated below).
    const uint64_t new_bytes = bat_entries(new_size) * sizeof(uint64_t);
    const uint64_t old_bytes = m_bat.size() * sizeof(uint64_t);
    MetadataChange change;
    uint64_t zero_from = new_bytes;
    if (new_bytes % sector_bytes != 0) {
        const uint64_t shared = new_bytes / sector_bytes * sector_bytes;
        std::vector<uint8_t> sector(sector_bytes);
        TRY(read_metadata(m_bat_offset + shared, sector));
        std::fill(sector.begin() + static_cast<std::ptrdiff_t>(new_bytes - shared), sector.end(), uint8_t{0});
        change.sectors.emplace(m_bat_offset + shared, std::move(sector));
        zero_from = shared + sector_bytes;
    }
    const uint64_t zero_to = round_up(old_bytes, sector_bytes);
    if (zero_from < zero_to)
        change.zeroes.emplace_back(m_bat_offset + zero_from, zero_to - zero_from);
    TRY(patch(change, m_size_item_offset,
              std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&new_size), sizeof(new_size))));
    TRY(commit_change(change));
    m_bat.resize(bat_entries(new_size));
    m_info.virtual_size = new_size;
    if (m_info.type != DiskType::Fixed)
        return {};
    // The blocks wholly past the end go: truncated (with an empty log) when they end the file.
    TRY(empty_log());
    return truncate_to_used();
}

Result<void> VhdxDisk::move_bat_region(MetadataChange& change, uint64_t offset, uint64_t length)
{
    constexpr uint64_t table_offsets[2] = {vhdx_region_table1_offset, vhdx_region_table2_offset};
    std::vector<uint8_t> tables[2];
    for (int i = 0; i < 2; ++i) {
        tables[i].resize(vhdx_region_table_size);
        TRY(read_at(m_fd.get(), tables[i], table_offsets[i]));
    }
    // The table open_image used (table 1 when valid), with the BAT entry changed, into both slots.
    const int base = valid_region_table(tables[0]) ? 0 : 1;
    std::vector<uint8_t> table = tables[base];
    if (!valid_region_table(table))
        return fail("no valid region table to update");
    VhdxRegionTableHeader h;
    std::memcpy(&h, table.data(), sizeof(h));
    bool found = false;
    for (uint32_t i = 0; i < h.entry_count; ++i) {
        const size_t at = sizeof(h) + i * sizeof(VhdxRegionTableEntry);
        VhdxRegionTableEntry e;
        std::memcpy(&e, table.data() + at, sizeof(e));
        if (e.guid != vhdx_bat_region_guid)
            continue;
        e.file_offset = offset;
        e.length = static_cast<uint32_t>(length);
        std::memcpy(table.data() + at, &e, sizeof(e));
        found = true;
    }
    if (!found)
        return fail("the region table has no BAT entry");
    store_checksum(table, offsetof(VhdxRegionTableHeader, checksum));
    for (int i = 0; i < 2; ++i)
        for (uint64_t at = 0; at < vhdx_region_table_size; at += sector_bytes)
            if (std::memcmp(table.data() + at, tables[i].data() + at, sector_bytes) != 0)
                change.sectors[table_offsets[i] + at] =
                    std::vector<uint8_t>(table.begin() + static_cast<std::ptrdiff_t>(at),
                                         table.begin() + static_cast<std::ptrdiff_t>(at + sector_bytes));
    return {};
}

Result<void> VhdxDisk::zero_file_range(uint64_t offset, uint64_t length, bool keep_allocated)
{
    if (length == 0)
        return {};
    m_unsynced = true;
    const int mode = keep_allocated ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
    if (::fallocate(m_fd.get(), mode, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
        return {};
    const std::vector<uint8_t> zeroes(static_cast<size_t>(std::min<uint64_t>(length, vhdx_mib)));
    for (uint64_t done = 0; done < length;) {
        const uint64_t n = std::min<uint64_t>(length - done, zeroes.size());
        TRY(write_at(m_fd.get(), std::span<const uint8_t>(zeroes).subspan(0, static_cast<size_t>(n)), offset + done));
        done += n;
    }
    return {};
}

} // namespace vmgen::vm::disk::vhdx_detail
