#include "vm/disk/vhdx/vhdx_disk.h"

#include "support/errno_error.h"
#include "support/log.h"
#include "vm/disk/raw/raw_disk.h"
#include "vm/disk/vhdx/vhdx_internal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <shared_mutex>
#include <cstring>

namespace vmgen::vm::disk::vhdx_detail {

using namespace vmgen::protocols::disk;

VhdxDisk::VhdxDisk(ImageState state)
    : m_fd(std::move(state.fd)), m_info(std::move(state.info)), m_read_only(state.read_only),
      m_block_size(state.block_size), m_bat_offset(state.bat_offset), m_bat_length(state.bat_length),
      m_metadata_offset(state.metadata_offset), m_metadata_length(state.metadata_length),
      m_size_item_offset(state.size_item_offset), m_other_regions(std::move(state.other_regions)),
      m_file_size(m_info.file_size), m_header(state.header),
      m_header_index(state.header_index), m_bat(std::move(state.bat)), m_chunk_ratio(state.chunk_ratio),
      m_disk_id(state.disk_id), m_parent(std::move(state.parent))
{
}

VhdxDisk::~VhdxDisk()
{
    std::lock_guard lock(m_mutex);
    if (m_read_only)
        return;
    // Pending metadata committed, everything the log describes in place and flushed: empty the log.
    auto r = empty_log();
    if (!r)
        log_error("vhdx", "closing: {}", r.error().message());
}

Result<void> VhdxDisk::close()
{
    std::lock_guard lock(m_mutex);
    if (m_read_only)
        return {};
    return empty_log();
}

VhdxGuid VhdxDisk::data_write_guid() const
{
    std::lock_guard lock(m_mutex);
    return m_header.data_write_guid;
}

// [MS-VHDX] 2.5.1.1: where a block's bytes come from. Not present and undefined blocks of a differencing image
// are not in this file: the parent's (undefined contents may be anything; the parent's keep them stable). Zero
// and unmapped blocks read as zeroes, in differencing images too (unmapped data was given up: never the parent's,
// never stale bytes of the file).
VhdxDisk::Source VhdxDisk::source_of(uint64_t entry) const
{
    switch (state_of(entry)) {
    case vhdx_payload_fully_present:
        return Source::File;
    case vhdx_payload_partially_present:
        return Source::Bitmap; // only in differencing images (open_image checks)
    case vhdx_payload_not_present:
    case vhdx_payload_undefined:
        return differencing() ? Source::Parent : Source::Zero;
    default:
        return Source::Zero;
    }
}

Result<void> VhdxDisk::check(uint64_t offset, uint64_t length) const
{
    if (offset % m_info.logical_sector_size != 0 || length % m_info.logical_sector_size != 0)
        return fail("request at {:#x} length {:#x} is not aligned to {}-byte sectors", offset, length,
                    m_info.logical_sector_size);
    if (offset > m_info.virtual_size || length > m_info.virtual_size - offset)
        return fail("request at {:#x} length {:#x} past the end of the disk ({} bytes)", offset, length,
                    m_info.virtual_size);
    return {};
}

Result<void> VhdxDisk::read(uint64_t offset, std::span<uint8_t> out)
{
    TRY(check(offset, out.size()));
    std::shared_lock lock(m_mutex);
    for (const Piece& p : pieces(offset, out.size()))
        TRY(read_block(p.block, p.in_block, out.subspan(p.done, p.size)));
    return {};
}

Result<bool> VhdxDisk::read_nowait(uint64_t offset, std::span<uint8_t> out)
{
    TRY(check(offset, out.size()));
    std::shared_lock lock(m_mutex, std::try_to_lock);
    if (!lock.owns_lock())
        return false;
    for (const Piece& p : pieces(offset, out.size())) {
        auto part = out.subspan(p.done, p.size);
        uint64_t entry = m_bat[bat_index(p.block)];
        switch (source_of(entry)) {
        case Source::File:
            if (!TRY(pread_nowait(m_fd.get(), part, offset_of(entry) + p.in_block)))
                return false;
            break;
        case Source::Parent:
            if (!TRY(m_parent->read_nowait(p.pos, part)))
                return false;
            break;
        case Source::Zero:
            std::fill(part.begin(), part.end(), uint8_t {0});
            break;
        case Source::Bitmap:
            return false; // the sector bitmap is metadata read from the file
        }
    }
    return true;
}

Result<bool> VhdxDisk::write_nowait(uint64_t offset, std::span<const uint8_t> in)
{
    TRY(check(offset, in.size()));
    if (m_read_only)
        return fail("VHDX image is read-only");
    std::shared_lock lock(m_mutex, std::try_to_lock);
    if (!lock.owns_lock() || !writes_in_place(offset, in.size()))
        return false; // write() updates the header or the metadata first, or reports the failure
    return write_in_place(offset, in, true);
}

bool VhdxDisk::writes_in_place(uint64_t offset, uint64_t length) const
{
    // m_mutex held, shared or exclusive.
    if (m_failed || !m_file_guid_new || !m_data_guid_new)
        return false;
    for (const Piece& p : pieces(offset, length)) {
        if (state_of(m_bat[bat_index(p.block)]) != vhdx_payload_fully_present)
            return false; // allocation or a sector bitmap update: metadata through the log
    }
    return true;
}

Result<bool> VhdxDisk::write_in_place(uint64_t offset, std::span<const uint8_t> in, bool nowait)
{
    // m_mutex held (shared is enough: no metadata changes), writes_in_place() true.
    for (const Piece& p : pieces(offset, in.size())) {
        auto part = in.subspan(p.done, p.size);
        uint64_t at = offset_of(m_bat[bat_index(p.block)]) + p.in_block;
        m_unsynced = true;
        if (nowait) {
            if (!TRY(pwrite_nowait(m_fd.get(), part, at)))
                return false;
        } else {
            TRY(write_at(m_fd.get(), part, at));
        }
    }
    return true;
}

Result<void> VhdxDisk::read_block(uint64_t block, uint64_t in_block, std::span<uint8_t> out)
{
    uint64_t entry = m_bat[bat_index(block)];
    uint64_t pos = block * m_block_size + in_block;
    switch (source_of(entry)) {
    case Source::File:
        return read_at(m_fd.get(), out, offset_of(entry) + in_block);
    case Source::Parent:
        return m_parent->read(pos, out);
    case Source::Zero:
        std::fill(out.begin(), out.end(), uint8_t{0});
        return {};
    case Source::Bitmap:
        break;
    }
    for (const Run& run : TRY(bitmap_runs(block, in_block, out.size()))) {
        auto part = out.subspan(static_cast<size_t>(run.offset - in_block), static_cast<size_t>(run.length));
        if (run.present)
            TRY(read_at(m_fd.get(), part, offset_of(entry) + run.offset));
        else
            TRY(m_parent->read(block * m_block_size + run.offset, part));
    }
    return {};
}

Result<std::vector<VhdxDisk::Run>> VhdxDisk::bitmap_runs(uint64_t block, uint64_t in_block, uint64_t length)
{
    const uint64_t sector = m_info.logical_sector_size;
    const uint64_t first = bitmap_bit(block * m_block_size + in_block);
    const uint64_t count = length / sector;
    const uint64_t first_byte = first / 8;
    std::vector<uint8_t> bits((first + count + 7) / 8 - first_byte);
    TRY(read_metadata(offset_of(m_bat[bitmap_index(block)]) + first_byte, bits));
    std::vector<Run> runs;
    for (uint64_t i = 0; i < count; ++i) {
        uint64_t bit = first + i - first_byte * 8;
        bool present = ((bits[bit / 8] >> (bit % 8)) & 1) != 0;
        if (!runs.empty() && runs.back().present == present)
            runs.back().length += sector;
        else
            runs.push_back({in_block + i * sector, sector, present});
    }
    return runs;
}

Result<void> VhdxDisk::write(uint64_t offset, std::span<const uint8_t> in)
{
    TRY(check(offset, in.size()));
    if (m_read_only)
        return fail("VHDX image is read-only");
    {
        // Into blocks that are fully present, with the header already updated, a write changes no metadata: it
        // shares the lock with reads and other such writes (flush, allocation, resize and compact exclude it).
        std::shared_lock shared(m_mutex);
        if (writes_in_place(offset, in.size())) {
            TRY(write_in_place(offset, in, false));
            return {};
        }
    }
    std::lock_guard lock(m_mutex);
    if (!in.empty())
        TRY(begin_write());
    for (const Piece& p : pieces(offset, in.size()))
        TRY(write_block(p.block, p.in_block, in.subspan(p.done, p.size)));
    return maybe_commit();
}

Result<void> VhdxDisk::write_block(uint64_t block, uint64_t in_block, std::span<const uint8_t> data)
{
    const uint64_t entry = m_bat[bat_index(block)];
    const bool whole = data.size() == m_block_size;
    switch (state_of(entry)) {
    case vhdx_payload_fully_present:
        m_unsynced = true;
        return write_at(m_fd.get(), data, offset_of(entry) + in_block);
    case vhdx_payload_partially_present: {
        m_unsynced = true;
        TRY(write_at(m_fd.get(), data, offset_of(entry) + in_block));
        if (whole) // every sector is in this file now
            return set_bat_entry(bat_index(block), make_entry(offset_of(entry), vhdx_payload_fully_present));
        uint64_t first = bitmap_bit(block * m_block_size + in_block);
        uint64_t count = data.size() / m_info.logical_sector_size;
        return update_bitmap(offset_of(m_bat[bitmap_index(block)]), first, count, first, count);
    }
    case vhdx_payload_not_present:
    case vhdx_payload_undefined:
        if (differencing() && !whole)
            return allocate_partial(block, in_block, data);
        return allocate_and_write(block, in_block, data);
    default: // zero, unmapped: the rest of the block reads as zeroes
        return allocate_and_write(block, in_block, data);
    }
}

// Everything written is durable once the log entry with the pending metadata is (commit_dirty flushes the data
// first); its in-place copy is flushed before the next entry.
Result<void> VhdxDisk::flush()
{
    std::lock_guard lock(m_mutex);
    if (m_failed)
        return fail("an earlier metadata update of this VHDX image failed; reopen it");
    if (!m_dirty.empty())
        return commit_dirty();
    if (::fdatasync(m_fd.get()) != 0)
        return errno_failure("fdatasync");
    m_unsynced = false;
    return {};
}

Result<void> VhdxDisk::discard(uint64_t offset, uint64_t length)
{
    TRY(check(offset, length));
    if (m_read_only)
        return fail("VHDX image is read-only");
    std::lock_guard lock(m_mutex);
    std::vector<uint64_t> released; // file offsets of payload blocks no longer used
    std::vector<uint8_t> zeroes;
    for (const Piece& p : pieces(offset, length))
        TRY(discard_block(p.block, p.in_block, p.size, zeroes, released));
    if (released.empty())
        return maybe_commit();
    // The BAT no longer points at the blocks, durably, before their space goes (best effort: the file system may
    // not punch holes). Punched, the space serves new blocks of this open.
    TRY(commit_dirty());
    for (uint64_t at : released) {
        if (::fallocate(m_fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(at),
                        static_cast<off_t>(m_block_size)) != 0)
            continue;
        auto [it, added] = m_free.emplace(at, at + m_block_size);
        if (!added)
            continue;
        if (auto next = std::next(it); next != m_free.end() && next->first == it->second) {
            it->second = next->second;
            m_free.erase(next);
        }
        if (it != m_free.begin()) {
            if (auto prev = std::prev(it); prev->second == it->first) {
                prev->second = it->second;
                m_free.erase(it);
            }
        }
    }
    return {};
}

// Blocks that read as zeroes stay as they are. Whole blocks of dynamic and differencing images become zero blocks
// (the old blocks' space is released where the file system can); blocks of fixed images and parts of blocks get
// zeroes written. Parts of differencing blocks whose data is the parent's get zeroes written too (allocating), so
// the parent's data stops showing.
Result<void> VhdxDisk::discard_block(uint64_t block, uint64_t in_block, uint64_t length,
                                     std::vector<uint8_t>& zeroes, std::vector<uint64_t>& released)
{
    const uint64_t entry = m_bat[bat_index(block)];
    const Source source = source_of(entry);
    if (source == Source::Zero)
        return {};
    TRY(begin_write());
    if (length == m_block_size && m_info.type != DiskType::Fixed) {
        TRY(set_bat_entry(bat_index(block), make_entry(0, vhdx_payload_zero)));
        if (source == Source::File || source == Source::Bitmap)
            released.push_back(offset_of(entry));
        return {};
    }
    if (zeroes.size() < length)
        zeroes.assign(static_cast<size_t>(length), 0);
    return write_block(block, in_block, std::span<const uint8_t>(zeroes).subspan(0, static_cast<size_t>(length)));
}

Result<std::vector<Extent>> VhdxDisk::extents(uint64_t offset, uint64_t length)
{
    TRY(check(offset, length));
    std::lock_guard lock(m_mutex);
    std::vector<Extent> out;
    for (const Piece& p : pieces(offset, length)) {
        switch (source_of(m_bat[bat_index(p.block)])) {
        case Source::File:
            append_extent(out, {p.pos, p.size, ExtentKind::Data});
            break;
        case Source::Parent:
            append_extent(out, {p.pos, p.size, ExtentKind::Parent});
            break;
        case Source::Zero:
            append_extent(out, {p.pos, p.size, ExtentKind::Zero});
            break;
        case Source::Bitmap:
            for (const Run& run : TRY(bitmap_runs(p.block, p.in_block, p.size)))
                append_extent(out, {p.block * m_block_size + run.offset, run.length,
                                    run.present ? ExtentKind::Data : ExtentKind::Parent});
            break;
        }
    }
    return out;
}

Result<void> VhdxDisk::sync()
{
    if (!m_unsynced)
        return {};
    if (::fdatasync(m_fd.get()) != 0)
        return errno_failure("fdatasync");
    m_unsynced = false;
    return {};
}

// [MS-VHDX] 2.2.2.1: writes `h` into both header slots, non-current first, each with the next sequence number,
// flushed in between.
Result<void> VhdxDisk::update_header(VhdxHeader h)
{
    TRY(sync());
    h.sequence_number = m_header.sequence_number;
    for (int i = 0; i < 2; ++i) {
        int slot = 1 - m_header_index;
        h.sequence_number += 1;
        TRY(write_header(m_fd.get(), h, slot));
        m_header_index = slot;
        m_header = h;
    }
    return {};
}

// [MS-VHDX] 2.2.2: new FileWriteGuid before the first change of this open; new DataWriteGuid before the first
// change of what the virtual disk holds or its size (writes, discards, resizing; not compaction). Children record
// the DataWriteGuid: a changed parent is detected.
Result<void> VhdxDisk::begin_write(bool user_visible)
{
    if (m_failed)
        return fail("an earlier metadata update of this VHDX image failed; reopen it");
    if (m_file_guid_new && (m_data_guid_new || !user_visible))
        return {};
    VhdxHeader h = m_header;
    if (!m_file_guid_new)
        h.file_write_guid = TRY(random_guid());
    if (user_visible)
        h.data_write_guid = TRY(random_guid());
    TRY(update_header(h));
    m_file_guid_new = true;
    m_data_guid_new = m_data_guid_new || user_visible;
    return {};
}

// [MS-VHDX] 2.3: metadata changes go through the log; a fresh log GUID marks it in use.
Result<void> VhdxDisk::start_log()
{
    if (m_log_active)
        return {};
    VhdxHeader h = m_header;
    h.log_guid = TRY(random_guid());
    TRY(update_header(h));
    m_log_head = 0;
    m_log_sequence = 1;
    m_log_active = true;
    return {};
}

Result<void> VhdxDisk::empty_log()
{
    // After a failed commit the log may hold the only copy of a change: it stays for the next open to replay.
    if (m_failed)
        return fail("an earlier metadata update of this VHDX image failed; reopen it");
    TRY(commit_dirty());
    TRY(sync());
    if (!m_log_active)
        return {};
    VhdxHeader h = m_header;
    h.log_guid = VhdxGuid{};
    TRY(update_header(h));
    m_log_active = false;
    return {};
}

Result<void> VhdxDisk::read_metadata(uint64_t offset, std::span<uint8_t> out)
{
    TRY(read_at(m_fd.get(), out, offset));
    const uint64_t end = offset + out.size();
    for (auto it = m_dirty.lower_bound(offset / vhdx_log_sector_size * vhdx_log_sector_size);
         it != m_dirty.end() && it->first < end; ++it) {
        const uint64_t from = std::max(offset, it->first);
        const uint64_t to = std::min(end, it->first + vhdx_log_sector_size);
        std::memcpy(out.data() + (from - offset), it->second.data() + (from - it->first), to - from);
    }
    return {};
}

Result<std::vector<uint8_t>*> VhdxDisk::dirty_sector(uint64_t sector_offset)
{
    auto it = m_dirty.find(sector_offset);
    if (it == m_dirty.end()) {
        std::vector<uint8_t> sector(vhdx_log_sector_size);
        TRY(read_at(m_fd.get(), sector, sector_offset));
        it = m_dirty.emplace(sector_offset, std::move(sector)).first;
    }
    return &it->second;
}

Result<void> VhdxDisk::set_bat_entry(uint64_t index, uint64_t entry)
{
    const uint64_t at = m_bat_offset + index * sizeof(uint64_t);
    std::vector<uint8_t>* sector = TRY(dirty_sector(at / vhdx_log_sector_size * vhdx_log_sector_size));
    std::memcpy(sector->data() + at % vhdx_log_sector_size, &entry, sizeof(entry));
    m_bat[index] = entry;
    return {};
}

namespace {

// Pending metadata sectors that make a commit without waiting for flush(): 512 KiB, half of a 1 MiB log.
constexpr size_t max_dirty_sectors = 128;

} // namespace

Result<void> VhdxDisk::maybe_commit()
{
    return m_dirty.size() >= max_dirty_sectors ? commit_dirty() : Result<void>{};
}

// A failure here leaves the file as it was or with the change committed (the log entry written or not): either
// way what this open holds in memory may no longer match, so the image takes no more changes (m_failed).
Result<void> VhdxDisk::commit_dirty()
{
    if (m_dirty.empty())
        return {};
    if (m_failed)
        return fail("an earlier metadata update of this VHDX image failed; reopen it");
    auto commit = [&]() -> Result<void> {
        TRY(start_log());
        std::vector<LogWrite> writes;
        while (!m_dirty.empty()) {
            TRY(sync()); // data, bitmaps and earlier metadata durable before the change that shows them
            writes.clear();
            auto it = m_dirty.begin();
            for (; it != m_dirty.end() && writes.size() < max_dirty_sectors; ++it)
                writes.push_back({it->first, it->second, 0});
            TRY(append_log_entry(m_fd.get(), m_header, m_log_head, m_log_sequence++, writes, m_file_size));
            for (const LogWrite& w : writes)
                TRY(write_at(m_fd.get(), w.data, w.file_offset));
            m_unsynced = true;
            m_dirty.erase(m_dirty.begin(), it);
        }
        return {};
    };
    auto r = commit();
    m_failed = !r;
    return r;
}

Result<void> VhdxDisk::commit_change(const MetadataChange& change)
{
    TRY(commit_dirty());
    std::vector<LogWrite> writes;
    for (const auto& [offset, length] : change.zeroes)
        writes.push_back({offset, {}, length});
    for (const auto& [offset, sector] : change.sectors)
        writes.push_back({offset, sector, 0});
    if (writes.empty())
        return {};
    auto commit = [&]() -> Result<void> {
        TRY(start_log());
        TRY(sync());
        TRY(append_log_entry(m_fd.get(), m_header, m_log_head, m_log_sequence++, writes, m_file_size));
        return apply_change(change);
    };
    auto r = commit();
    m_failed = !r;
    return r;
}

Result<void> VhdxDisk::apply_change(const MetadataChange& change)
{
    for (const auto& [offset, length] : change.zeroes)
        TRY(zero_file_range(offset, length, true));
    bool table1 = false;
    for (const auto& [offset, sector] : change.sectors) {
        if (table1 && offset >= vhdx_region_table2_offset) {
            // Region table 1 durable before table 2 is touched: one of them is always valid.
            if (::fdatasync(m_fd.get()) != 0)
                return errno_failure("fdatasync");
            table1 = false;
        }
        TRY(write_at(m_fd.get(), sector, offset));
        table1 = offset < vhdx_region_table2_offset;
    }
    m_unsynced = true;
    return {};
}

Result<void> VhdxDisk::patch(MetadataChange& change, uint64_t offset, std::span<const uint8_t> bytes)
{
    size_t done = 0;
    while (done < bytes.size()) {
        const uint64_t at = offset + done;
        const uint64_t sector_offset = at / vhdx_log_sector_size * vhdx_log_sector_size;
        auto it = change.sectors.find(sector_offset);
        if (it == change.sectors.end()) {
            std::vector<uint8_t> sector(vhdx_log_sector_size);
            TRY(read_metadata(sector_offset, sector));
            it = change.sectors.emplace(sector_offset, std::move(sector)).first;
        }
        const size_t n = std::min<size_t>(bytes.size() - done, sector_offset + vhdx_log_sector_size - at);
        std::memcpy(it->second.data() + (at - sector_offset), bytes.data() + done, n);
        done += n;
    }
    return {};
}

Result<uint64_t> VhdxDisk::extend_file(uint64_t length)
{
    uint64_t offset = (m_file_size + vhdx_mib - 1) / vhdx_mib * vhdx_mib;
    uint64_t new_size = offset + length;
    if (::ftruncate(m_fd.get(), static_cast<off_t>(new_size)) != 0)
        return errno_failure("extending the file");
    m_file_size = new_size;
    m_info.file_size = new_size;
    m_unsynced = true;
    return offset;
}

Result<uint64_t> VhdxDisk::allocate_space(uint64_t length)
{
    for (auto it = m_free.begin(); it != m_free.end(); ++it) {
        if (it->second - it->first < length)
            continue;
        const uint64_t at = it->first;
        const uint64_t end = it->second;
        m_free.erase(it);
        if (at + length < end)
            m_free.emplace(at + length, end);
        return at;
    }
    return extend_file(length);
}

// Gives `block` a new payload block (space released earlier, or at the end of the file), writes `data` at `in_block` into it (the rest reads
// as zeroes), then points the BAT at it (pending: committed, after the data is flushed, by the next commit).
Result<void> VhdxDisk::allocate_and_write(uint64_t block, uint64_t in_block, std::span<const uint8_t> data)
{
    uint64_t offset = TRY(allocate_space(m_block_size));
    TRY(write_at(m_fd.get(), data, offset + in_block));
    m_unsynced = true;
    return set_bat_entry(bat_index(block), make_entry(offset, vhdx_payload_fully_present));
}

// A differencing block written in part: a new payload block holds `data`, the chunk's sector bitmap marks the
// written sectors present and the rest of the block the parent's, then the BAT says partially present (all
// pending, committed together).
Result<void> VhdxDisk::allocate_partial(uint64_t block, uint64_t in_block, std::span<const uint8_t> data)
{
    uint64_t bitmap_offset = TRY(ensure_bitmap_block(block));
    uint64_t offset = TRY(allocate_space(m_block_size));
    TRY(write_at(m_fd.get(), data, offset + in_block));
    m_unsynced = true;
    const uint64_t sector = m_info.logical_sector_size;
    TRY(update_bitmap(bitmap_offset, bitmap_bit(block * m_block_size), m_block_size / sector,
                      bitmap_bit(block * m_block_size + in_block), data.size() / sector));
    return set_bat_entry(bat_index(block), make_entry(offset, vhdx_payload_partially_present));
}

// The sector bitmap block of `block`'s chunk, allocated (zeroed: every sector the parent's) when missing.
Result<uint64_t> VhdxDisk::ensure_bitmap_block(uint64_t block)
{
    const uint64_t index = bitmap_index(block);
    if (state_of(m_bat[index]) == vhdx_sb_present)
        return offset_of(m_bat[index]);
    uint64_t offset = TRY(allocate_space(vhdx_sector_bitmap_block_size));
    TRY(set_bat_entry(index, make_entry(offset, vhdx_sb_present)));
    return offset;
}

Result<void> VhdxDisk::update_bitmap(uint64_t bitmap_offset, uint64_t first, uint64_t count, uint64_t set_first,
                                     uint64_t set_count)
{
    constexpr uint64_t bits_per_sector = vhdx_log_sector_size * 8;
    std::vector<uint8_t> sector(vhdx_log_sector_size);
    uint64_t bit = first;
    while (bit < first + count) {
        const uint64_t sector_index = bit / bits_per_sector;
        const uint64_t end = std::min(first + count, (sector_index + 1) * bits_per_sector);
        const uint64_t file_offset = bitmap_offset + sector_index * vhdx_log_sector_size;
        TRY(read_metadata(file_offset, sector));
        bool changed = false;
        for (; bit < end; ++bit) {
            const uint64_t b = bit % bits_per_sector;
            const auto mask = static_cast<uint8_t>(1U << (b % 8));
            const bool want = bit >= set_first && bit < set_first + set_count;
            const bool have = (sector[b / 8] & mask) != 0;
            if (want != have) {
                sector[b / 8] = static_cast<uint8_t>(sector[b / 8] ^ mask);
                changed = true;
            }
        }
        if (changed)
            m_dirty[file_offset] = sector;
    }
    return {};
}

} // namespace vmgen::vm::disk::vhdx_detail
