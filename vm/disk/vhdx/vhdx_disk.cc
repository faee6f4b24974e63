#include "vm/disk/vhdx/vhdx_disk.h"

#include "support/errno_error.h"
#include "support/log.h"
#include "vm/disk/vhdx/vhdx_internal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace vmgen::vm::disk::vhdx_detail {

using namespace vmgen::protocols::disk;

namespace {

uint64_t state_of(uint64_t entry) { return entry & vhdx_bat_state_mask; }
uint64_t offset_of(uint64_t entry) { return (entry >> vhdx_bat_offset_shift) * vhdx_mib; }
uint64_t make_entry(uint64_t offset, uint64_t state)
{
    return (offset >> vhdx_bat_offset_shift) << vhdx_bat_offset_shift | state;
}

} // namespace

VhdxDisk::VhdxDisk(ImageState state)
    : m_fd(std::move(state.fd)), m_info(std::move(state.info)), m_read_only(state.read_only),
      m_block_size(state.block_size), m_bat_offset(state.bat_offset), m_file_size(m_info.file_size),
      m_header(state.header), m_header_index(state.header_index), m_bat(std::move(state.bat)),
      m_chunk_ratio(state.chunk_ratio), m_disk_id(state.disk_id), m_parent(std::move(state.parent))
{
}

VhdxDisk::~VhdxDisk()
{
    std::lock_guard lock(m_mutex);
    if (!m_log_active)
        return;
    // Everything the log describes is in place once flushed: empty the log.
    if (::fdatasync(m_fd.get()) != 0) {
        log_error("vhdx", "fdatasync on close: {}", errno_text(errno));
        return;
    }
    VhdxHeader h = m_header;
    h.log_guid = VhdxGuid{};
    auto r = update_header(h);
    if (!r)
        log_error("vhdx", "emptying the log on close: {}", r.error().message());
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
    std::lock_guard lock(m_mutex);
    size_t done = 0;
    while (done < out.size()) {
        uint64_t pos = offset + done;
        uint64_t in_block = pos % m_block_size;
        size_t n = static_cast<size_t>(std::min<uint64_t>(out.size() - done, m_block_size - in_block));
        TRY(read_block(pos / m_block_size, in_block, out.subspan(done, n)));
        done += n;
    }
    return {};
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
    TRY(read_at(m_fd.get(), bits, offset_of(m_bat[bitmap_index(block)]) + first_byte));
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
    std::lock_guard lock(m_mutex);
    if (!in.empty())
        TRY(begin_write());
    size_t done = 0;
    while (done < in.size()) {
        uint64_t pos = offset + done;
        uint64_t in_block = pos % m_block_size;
        size_t n = static_cast<size_t>(std::min<uint64_t>(in.size() - done, m_block_size - in_block));
        TRY(write_block(pos / m_block_size, in_block, in.subspan(done, n)));
        done += n;
    }
    return {};
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

Result<void> VhdxDisk::flush()
{
    std::lock_guard lock(m_mutex);
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
    BatBatch batch;
    std::vector<uint8_t> zeroes;
    uint64_t done = 0;
    while (done < length) {
        uint64_t pos = offset + done;
        uint64_t in_block = pos % m_block_size;
        uint64_t n = std::min<uint64_t>(length - done, m_block_size - in_block);
        TRY(discard_block(pos / m_block_size, in_block, n, zeroes, batch));
        done += n;
    }
    return commit(batch);
}

// Blocks that read as zeroes stay as they are. Whole blocks of dynamic and differencing images become zero blocks
// (BAT changes batched per BAT sector through the log; the old blocks' space is released where the file system
// can); blocks of fixed images and parts of blocks get zeroes written. Parts of differencing blocks whose data is
// the parent's get zeroes written too (allocating), so the parent's data stops showing.
Result<void> VhdxDisk::discard_block(uint64_t block, uint64_t in_block, uint64_t length,
                                     std::vector<uint8_t>& zeroes, BatBatch& batch)
{
    const uint64_t entry = m_bat[bat_index(block)];
    const Source source = source_of(entry);
    if (source == Source::Zero)
        return {};
    TRY(begin_write());
    if (length == m_block_size && m_info.type != DiskType::Fixed) {
        TRY(queue_bat_entry(batch, bat_index(block), make_entry(0, vhdx_payload_zero)));
        if (source == Source::File || source == Source::Bitmap)
            batch.released.push_back(offset_of(entry));
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
    uint64_t done = 0;
    while (done < length) {
        uint64_t pos = offset + done;
        uint64_t block = pos / m_block_size;
        uint64_t in_block = pos % m_block_size;
        uint64_t n = std::min<uint64_t>(length - done, m_block_size - in_block);
        switch (source_of(m_bat[bat_index(block)])) {
        case Source::File:
            append_extent(out, {pos, n, ExtentKind::Data});
            break;
        case Source::Parent:
            append_extent(out, {pos, n, ExtentKind::Parent});
            break;
        case Source::Zero:
            append_extent(out, {pos, n, ExtentKind::Zero});
            break;
        case Source::Bitmap:
            for (const Run& run : TRY(bitmap_runs(block, in_block, n)))
                append_extent(out, {block * m_block_size + run.offset, run.length,
                                    run.present ? ExtentKind::Data : ExtentKind::Parent});
            break;
        }
        done += n;
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

// [MS-VHDX] 2.2.2: before the first change of this open, new FileWriteGuid and DataWriteGuid (every change we
// make is user-visible: a write or a discard). Children record the DataWriteGuid: a changed parent is detected.
Result<void> VhdxDisk::begin_write()
{
    if (m_wrote)
        return {};
    VhdxHeader h = m_header;
    h.file_write_guid = TRY(random_guid());
    h.data_write_guid = TRY(random_guid());
    TRY(update_header(h));
    m_wrote = true;
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

Result<void> VhdxDisk::log_sector(uint64_t file_offset, std::span<const uint8_t> sector)
{
    TRY(start_log());
    TRY(sync()); // data, bitmaps and earlier metadata durable before the change that shows them
    TRY(append_log_sector(m_fd.get(), m_header, m_log_head, m_log_sequence++, file_offset, sector, m_file_size));
    TRY(write_at(m_fd.get(), sector, file_offset));
    m_unsynced = true;
    return {};
}

Result<void> VhdxDisk::set_bat_entry(uint64_t index, uint64_t entry)
{
    BatBatch batch;
    TRY(queue_bat_entry(batch, index, entry));
    return commit(batch);
}

Result<void> VhdxDisk::queue_bat_entry(BatBatch& batch, uint64_t index, uint64_t entry)
{
    uint64_t sector_offset = m_bat_offset + index * sizeof(uint64_t) / vhdx_log_sector_size * vhdx_log_sector_size;
    if (sector_offset != batch.sector_offset) {
        TRY(commit(batch));
        batch.sector_offset = sector_offset;
    }
    batch.entries.emplace_back(index, entry);
    return {};
}

Result<void> VhdxDisk::commit(BatBatch& batch)
{
    if (!batch.entries.empty()) {
        std::vector<uint8_t> sector(vhdx_log_sector_size);
        TRY(read_at(m_fd.get(), sector, batch.sector_offset));
        for (const auto& [index, entry] : batch.entries)
            std::memcpy(sector.data() + index * sizeof(uint64_t) % vhdx_log_sector_size, &entry, sizeof(entry));
        TRY(log_sector(batch.sector_offset, sector));
        for (const auto& [index, entry] : batch.entries)
            m_bat[index] = entry;
        batch.entries.clear();
    }
    if (!batch.released.empty()) {
        TRY(sync()); // the BAT no longer points at the blocks before their space goes
        for (uint64_t offset : batch.released) // best effort: the file system may not punch holes
            (void)::fallocate(m_fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                              static_cast<off_t>(m_block_size));
        batch.released.clear();
    }
    return {};
}

Result<uint64_t> VhdxDisk::extend_file(uint64_t length)
{
    TRY(start_log());
    uint64_t offset = (m_file_size + vhdx_mib - 1) / vhdx_mib * vhdx_mib;
    uint64_t new_size = offset + length;
    if (::ftruncate(m_fd.get(), static_cast<off_t>(new_size)) != 0)
        return errno_failure("extending the file");
    m_file_size = new_size;
    m_info.file_size = new_size;
    m_unsynced = true;
    return offset;
}

// Gives `block` a new payload block at the end of the file, writes `data` at `in_block` into it (the rest reads
// as zeroes), then points the BAT at it through the log (which flushes the data first).
Result<void> VhdxDisk::allocate_and_write(uint64_t block, uint64_t in_block, std::span<const uint8_t> data)
{
    uint64_t offset = TRY(extend_file(m_block_size));
    TRY(write_at(m_fd.get(), data, offset + in_block));
    return set_bat_entry(bat_index(block), make_entry(offset, vhdx_payload_fully_present));
}

// A differencing block written in part: a new payload block holds `data`, the chunk's sector bitmap marks the
// written sectors present and the rest of the block the parent's, then the BAT says partially present.
Result<void> VhdxDisk::allocate_partial(uint64_t block, uint64_t in_block, std::span<const uint8_t> data)
{
    uint64_t bitmap_offset = TRY(ensure_bitmap_block(block));
    uint64_t offset = TRY(extend_file(m_block_size));
    TRY(write_at(m_fd.get(), data, offset + in_block));
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
    uint64_t offset = TRY(extend_file(vhdx_sector_bitmap_block_size));
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
        TRY(read_at(m_fd.get(), sector, file_offset));
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
            TRY(log_sector(file_offset, sector));
    }
    return {};
}

} // namespace vmgen::vm::disk::vhdx_detail
