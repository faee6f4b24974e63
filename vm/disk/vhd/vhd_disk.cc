#include "vm/disk/vhd/vhd_disk.h"

#include "support/errno_error.h"
#include "support/unique_fd.h"
#include "vm/disk/raw/raw_disk.h"
#include "vm/disk/vhd/utf16.h"
#include "vm/disk/vhd/vhd_layout.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fmt/ranges.h>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace vmgen::vm::disk {
namespace {

namespace p = protocols::disk;
using p::be_load;
using p::be_store;

constexpr uint32_t sector = p::vhd_sector_size;
constexpr uint32_t min_block_size = 4096;
constexpr uint32_t max_block_size = 256u << 20;

template <typename T> std::span<const uint8_t> bytes_of(const T& v)
{
    return { reinterpret_cast<const uint8_t*>(&v), sizeof(T) };
}
template <typename T> std::span<uint8_t> bytes_of(T& v)
{
    return { reinterpret_cast<uint8_t*>(&v), sizeof(T) };
}

uint64_t round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

Result<void> sync_fd(int fd)
{
    while (::fdatasync(fd) != 0) {
        if (errno != EINTR)
            return errno_failure("fdatasync");
    }
    return {};
}

// Writes `length` bytes of `value` at `offset`, a megabyte at a time.
Result<void> fill_bytes(int fd, uint64_t offset, uint64_t length, uint8_t value)
{
    const std::vector<uint8_t> bytes(std::min<uint64_t>(length, 1 << 20), value);
    for (uint64_t done = 0; done < length;) {
        const uint64_t n = std::min<uint64_t>(length - done, bytes.size());
        TRY(pwrite_full(fd, std::span(bytes).first(n), offset + done));
        done += n;
    }
    return {};
}

Result<void> write_zeroes(int fd, uint64_t offset, uint64_t length)
{
    if (::fallocate(
            fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset), static_cast<off_t>(length))
        == 0)
        return {};
    return fill_bytes(fd, offset, length, 0);
}

bool all_zero(std::span<const uint8_t> data)
{
    return std::all_of(data.begin(), data.end(), [](uint8_t b) { return b == 0; });
}

constexpr int max_chain_depth = 16;
constexpr uint32_t max_locator_bytes = 64 * 1024;

class VhdDisk final : public BlockDevice {
public:
    VhdDisk(UniqueFd fd, DiskInfo info, bool read_only, const p::VhdFooter& footer, uint64_t footer_offset)
        : m_fd(std::move(fd))
        , m_info(std::move(info))
        , m_read_only(read_only)
        , m_footer(footer)
        , m_footer_offset(footer_offset)
    {
    }

    // Dynamic and differencing disks: the (validated) header and the BAT (host order).
    void set_dynamic(const p::VhdDynamicHeader& header, std::vector<uint32_t> bat)
    {
        m_header = header;
        m_bat = std::move(bat);
        m_full.assign(m_bat.size(), false);
        m_table_offset = be_load(header.table_offset);
        m_block_size = be_load(header.block_size);
        m_bitmap_size = static_cast<uint32_t>(round_up(m_block_size / sector / 8, sector));
    }
    void set_parent(std::unique_ptr<VhdDisk> parent) { m_parent = std::move(parent); }
    [[nodiscard]] const p::VhdFooter& footer() const { return m_footer; }

    const DiskInfo& info() const override { return m_info; }
    bool read_only() const override { return m_read_only; }

    Result<void> read(uint64_t offset, std::span<uint8_t> out) override
    {
        TRY(check_request(offset, out.size(), m_info.virtual_size, sector));
        if (m_info.type == DiskType::Fixed)
            return pread_full(m_fd.get(), out, offset);
        std::lock_guard lock(m_mutex);
        return for_each_block(offset, out.size(), [&](size_t index, uint64_t in_block, uint64_t done, uint64_t n) {
            return read_in_block(index, in_block, out.subspan(static_cast<size_t>(done), static_cast<size_t>(n)));
        });
    }

    Result<void> write(uint64_t offset, std::span<const uint8_t> in) override
    {
        if (m_read_only)
            return fail("write to a read-only disk");
        TRY(check_request(offset, in.size(), m_info.virtual_size, sector));
        if (m_info.type == DiskType::Fixed)
            return pwrite_full(m_fd.get(), in, offset);
        std::lock_guard lock(m_mutex);
        return for_each_block(offset, in.size(), [&](size_t index, uint64_t in_block, uint64_t done, uint64_t n) {
            return write_in_block(index, in_block, in.subspan(static_cast<size_t>(done), static_cast<size_t>(n)));
        });
    }

    // Splits [offset, offset + length) at block boundaries: fn(block index, offset in the block, bytes done
    // so far, bytes in this piece) for each piece, stopping at the first error. A piece is at most a block.
    template <typename Fn> Result<void> for_each_block(uint64_t offset, uint64_t length, Fn&& fn)
    {
        uint64_t done = 0;
        while (done < length) {
            const uint64_t pos = offset + done;
            const auto index = static_cast<size_t>(pos / m_block_size);
            const uint64_t in_block = pos % m_block_size;
            const uint64_t n = std::min<uint64_t>(length - done, m_block_size - in_block);
            TRY(fn(index, in_block, done, n));
            done += n;
        }
        return {};
    }

    Result<void> flush() override
    {
        if (m_read_only)
            return {};
        return sync_fd(m_fd.get());
    }

    Result<void> discard(uint64_t offset, uint64_t length) override
    {
        if (m_read_only)
            return fail("discard on a read-only disk");
        TRY(check_request(offset, length, m_info.virtual_size, sector));
        if (m_info.type == DiskType::Fixed)
            return write_zeroes(m_fd.get(), offset, length);
        std::lock_guard lock(m_mutex);
        if (m_info.type == DiskType::Dynamic)
            TRY(release_blocks(offset, length));
        std::vector<uint8_t> zeroes;
        return for_each_block(
            offset, length, [&](size_t index, uint64_t in_block, uint64_t, uint64_t n) -> Result<void> {
                if (m_info.type == DiskType::Differencing) {
                    // The range must stop showing the parent: write zeroes that mark the sectors present.
                    zeroes.resize(static_cast<size_t>(n));
                    return write_in_block(index, in_block, zeroes);
                }
                // Dynamic, part of a block: it stays allocated and the range's data is punched.
                if (m_bat[index] != p::vhd_bat_unallocated)
                    return write_zeroes(m_fd.get(), data_offset(index) + in_block, n);
                return {};
            });
    }

    // Dynamic: releases the allocated blocks that [offset, offset + length) covers whole (the disk's end
    // counts as the end of its last block). Their BAT entries are the commit: written unallocated and synced;
    // only then are the blocks' bytes punched. A crash before the sync leaves each block allocated with its
    // data or released. The released space stays in the file, unreferenced, until compact().
    Result<void> release_blocks(uint64_t offset, uint64_t length)
    {
        const auto first = static_cast<size_t>((offset + m_block_size - 1) / m_block_size);
        const uint64_t end = offset + length;
        const auto last = end == m_info.virtual_size ? m_bat.size() : static_cast<size_t>(end / m_block_size);
        std::vector<size_t> released;
        for (size_t i = first; i < last; ++i) {
            if (m_bat[i] != p::vhd_bat_unallocated)
                released.push_back(i);
        }
        if (released.empty())
            return {};
        // One write from the first released entry to the last: the entries between are covered too.
        const uint64_t lo = released.front();
        TRY(fill_bytes(m_fd.get(), m_table_offset + lo * 4, (released.back() + 1 - lo) * 4, 0xff));
        TRY(sync_fd(m_fd.get()));
        for (const size_t i : released) {
            const uint64_t start = uint64_t { m_bat[i] } * sector;
            m_bat[i] = p::vhd_bat_unallocated;
            m_full[i] = false;
            m_bitmaps.erase(i);
            TRY(write_zeroes(m_fd.get(), start, m_bitmap_size + m_block_size));
        }
        return {};
    }

    // Dynamic and differencing disks: moves the blocks stored last in the file into the space no BAT entry
    // points at (as plan_vhd_compaction says), then ends the file after the last block. Crash order, the file
    // ending in its valid footer throughout and every state passing open's checks: a sync first (the BAT
    // entries in memory are durable, so no durable entry points into the space reused); for each block, its
    // bitmap and data copied into free space below it, a sync, its BAT entry (the commit), a sync (before its
    // old place is reused); then the footer written at its new offset, past every block and metadata range,
    // a sync, the file truncated after it (the commit), a sync. A crash leaves at worst an unreferenced copy,
    // or the new footer's copy in free space before the old footer. Not safe against concurrent I/O on this
    // device: callers quiesce it first.
    Result<void> compact() override
    {
        if (m_read_only)
            return fail("compact of a read-only disk");
        if (m_info.type == DiskType::Fixed)
            return {};
        std::lock_guard lock(m_mutex);
        auto reserved = vhd_metadata_ranges(m_footer, m_header, m_bat.size(), m_footer_offset);
        // The whole BAT as the header sizes it stays clear too (tools read max_table_entries entries), and
        // blocks go nowhere below it.
        const uint64_t table_end
            = std::min(m_table_offset + uint64_t { be_load(m_header.max_table_entries) } * 4, m_footer_offset);
        reserved.push_back({ m_table_offset, table_end });
        const auto plan
            = plan_vhd_compaction(std::move(reserved), m_bat, m_bitmap_size + m_block_size, table_end, m_footer_offset);
        if (plan.moves.empty() && plan.footer_offset == m_footer_offset)
            return {};
        TRY(sync_fd(m_fd.get()));
        for (const auto& move : plan.moves) {
            TRY(copy_slot(move.from, move.to, false));
            TRY(sync_fd(m_fd.get()));
            TRY(set_entry(move.index, move.to));
            TRY(sync_fd(m_fd.get()));
        }
        if (plan.footer_offset < m_footer_offset) {
            TRY(pwrite_full(m_fd.get(), bytes_of(m_footer), plan.footer_offset));
            TRY(sync_fd(m_fd.get()));
            if (::ftruncate(m_fd.get(), static_cast<off_t>(plan.footer_offset + sizeof(p::VhdFooter))) != 0)
                return errno_failure("truncating");
            m_footer_offset = plan.footer_offset;
            m_info.file_size = m_footer_offset + sizeof(p::VhdFooter);
            TRY(sync_fd(m_fd.get()));
        }
        return {};
    }

    // Fixed: all Data. Dynamic and differencing, per block: unallocated is Zero (dynamic) or Parent
    // (differencing); an allocated block is Data where its sector bitmap says present, otherwise Zero or
    // Parent as for an unallocated block (the read path treats absent sectors of a dynamic disk as zeroes).
    Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override
    {
        TRY(check_request(offset, length, m_info.virtual_size, sector));
        std::vector<Extent> out;
        if (m_info.type == DiskType::Fixed) {
            append_extent(out, { offset, length, ExtentKind::Data });
            return out;
        }
        const ExtentKind absent = m_info.type == DiskType::Differencing ? ExtentKind::Parent : ExtentKind::Zero;
        std::lock_guard lock(m_mutex);
        auto piece = [&](size_t index, uint64_t in_block, uint64_t done, uint64_t n) -> Result<void> {
            const uint64_t pos = offset + done;
            if (m_bat[index] == p::vhd_bat_unallocated) {
                append_extent(out, { pos, n, absent });
                return {};
            }
            const auto* bm = TRY(bitmap(index));
            if (bm == nullptr) {
                append_extent(out, { pos, n, ExtentKind::Data });
                return {};
            }
            for (uint64_t s = 0; s < n; s += sector)
                append_extent(out, { pos + s, sector, bit(*bm, (in_block + s) / sector) ? ExtentKind::Data : absent });
            return {};
        };
        TRY(for_each_block(offset, length, piece));
        return out;
    }

    // Fixed and dynamic disks; a differencing disk has its parent's size. The new size is committed by one
    // footer write (the trailing footer, the one opening reads); every step before it leaves the old disk
    // readable, and a crash never leaves a file that does not end in a valid footer. Not safe against I/O
    // running concurrently on this device: callers quiesce it first.
    Result<void> resize(uint64_t new_size) override
    {
        if (m_read_only)
            return fail("resize of a read-only disk");
        if (m_info.type == DiskType::Differencing)
            return fail("a differencing disk has its parent's size");
        if (new_size == 0 || new_size % sector != 0 || new_size > p::vhd_max_size)
            return fail("new size {} is not a non-zero multiple of 512 up to 2040 GiB", new_size);
        std::lock_guard lock(m_mutex);
        if (new_size == m_info.virtual_size)
            return {};
        p::VhdFooter footer = m_footer;
        set_vhd_footer_size(footer, new_size);
        if (m_info.type == DiskType::Fixed)
            return resize_fixed(footer);
        if (new_size > m_info.virtual_size)
            return grow_dynamic(footer);
        return shrink_dynamic(footer);
    }

private:
    uint64_t data_offset(size_t index) const { return uint64_t { m_bat[index] } * sector + m_bitmap_size; }
    uint64_t block_sectors() const { return m_block_size / sector; }
    static bool bit(const std::vector<uint8_t>& bitmap, uint64_t s)
    {
        return (bitmap[static_cast<size_t>(s / 8)] & (0x80u >> (s % 8))) != 0;
    }
    bool all_present(const std::vector<uint8_t>& bitmap) const
    {
        for (uint64_t s = 0; s < block_sectors(); ++s) {
            if (!bit(bitmap, s))
                return false;
        }
        return true;
    }

    // The sector bitmap of allocated block `index`, or nullptr when every sector is present (the common
    // case, not cached). Partial bitmaps are cached.
    Result<std::vector<uint8_t>*> bitmap(size_t index)
    {
        if (m_full[index])
            return static_cast<std::vector<uint8_t>*>(nullptr);
        auto it = m_bitmaps.find(index);
        if (it != m_bitmaps.end())
            return &it->second;
        std::vector<uint8_t> loaded(m_bitmap_size);
        TRY(pread_full(m_fd.get(), loaded, uint64_t { m_bat[index] } * sector));
        if (all_present(loaded)) {
            m_full[index] = true;
            return static_cast<std::vector<uint8_t>*>(nullptr);
        }
        return &m_bitmaps.emplace(index, std::move(loaded)).first->second;
    }

    // Sectors absent from this file: the parent's for differencing disks, zeroes otherwise.
    Result<void> read_absent(uint64_t pos, std::span<uint8_t> out)
    {
        if (m_parent)
            return m_parent->read(pos, out);
        std::fill(out.begin(), out.end(), uint8_t { 0 });
        return {};
    }

    Result<void> read_in_block(size_t index, uint64_t in_block, std::span<uint8_t> out)
    {
        const uint64_t block_start = uint64_t { index } * m_block_size;
        if (m_bat[index] == p::vhd_bat_unallocated)
            return read_absent(block_start + in_block, out);
        const auto* bm = TRY(bitmap(index));
        if (bm == nullptr)
            return pread_full(m_fd.get(), out, data_offset(index) + in_block);
        // Runs of sectors with the same bitmap bit.
        size_t done = 0;
        while (done < out.size()) {
            const uint64_t first = (in_block + done) / sector;
            const bool present = bit(*bm, first);
            size_t n = sector;
            while (done + n < out.size() && bit(*bm, first + n / sector) == present)
                n += sector;
            const auto chunk = out.subspan(done, n);
            if (present)
                TRY(pread_full(m_fd.get(), chunk, data_offset(index) + in_block + done));
            else
                TRY(read_absent(block_start + in_block + done, chunk));
            done += n;
        }
        return {};
    }

    Result<void> write_in_block(size_t index, uint64_t in_block, std::span<const uint8_t> in)
    {
        if (m_bat[index] == p::vhd_bat_unallocated) {
            if (m_info.type == DiskType::Dynamic && all_zero(in))
                return {};
            return allocate(index, in_block, in);
        }
        // Data first, then the bitmap bits that make it visible.
        TRY(pwrite_full(m_fd.get(), in, data_offset(index) + in_block));
        auto* bm = TRY(bitmap(index));
        if (bm == nullptr)
            return {};
        bool changed = false;
        for (uint64_t s = in_block / sector; s < (in_block + in.size()) / sector; ++s) {
            auto& byte = (*bm)[static_cast<size_t>(s / 8)];
            const auto mask = static_cast<uint8_t>(0x80u >> (s % 8));
            changed |= (byte & mask) == 0;
            byte = static_cast<uint8_t>(byte | mask);
        }
        if (changed)
            TRY(pwrite_full(m_fd.get(), *bm, uint64_t { m_bat[index] } * sector));
        if (all_present(*bm)) {
            m_full[index] = true;
            m_bitmaps.erase(index);
        }
        return {};
    }

    // Room for one block at the end of the file. The footer is written past it first, so the file ends in a
    // footer throughout (the old footer, in the block's place, is overwritten next). Returns the block's offset.
    Result<uint64_t> append_block_space()
    {
        const uint64_t start = m_footer_offset;
        if (start / sector >= p::vhd_bat_unallocated)
            return fail("VHD file too large for another block");
        const uint64_t end = start + m_bitmap_size + m_block_size;
        TRY(pwrite_full(m_fd.get(), bytes_of(m_footer), end));
        m_footer_offset = end;
        m_info.file_size = end + sizeof(p::VhdFooter);
        return start;
    }

    // Points BAT entry `index` at the block at file offset `start` (whose bytes must be durable already).
    Result<void> set_entry(size_t index, uint64_t start)
    {
        const auto entry = be_store(static_cast<uint32_t>(start / sector));
        TRY(pwrite_full(m_fd.get(), bytes_of(entry), m_table_offset + index * 4));
        m_bat[index] = static_cast<uint32_t>(start / sector);
        return {};
    }

    // Allocates block `index` at the end of the file holding `chunk` at `in_block`. Dynamic disks mark the
    // whole block present (its other sectors are zeroes); differencing disks only the written sectors. Crash
    // order: the footer at the new end of the file first (append_block_space), then the block, a sync, then
    // the BAT entry; a crash anywhere leaves at worst an unreferenced block, never a BAT entry pointing at
    // garbage.
    Result<void> allocate(size_t index, uint64_t in_block, std::span<const uint8_t> chunk)
    {
        const uint64_t block_offset = TRY(append_block_space());
        std::vector<uint8_t> buffer(m_bitmap_size + m_block_size, 0);
        std::vector<uint8_t> bm(m_bitmap_size, 0);
        if (m_info.type == DiskType::Dynamic) {
            std::fill_n(bm.begin(), block_sectors() / 8, uint8_t { 0xff });
        } else {
            for (uint64_t s = in_block / sector; s < (in_block + chunk.size()) / sector; ++s)
                bm[static_cast<size_t>(s / 8)]
                    = static_cast<uint8_t>(bm[static_cast<size_t>(s / 8)] | (0x80u >> (s % 8)));
        }
        std::copy(bm.begin(), bm.end(), buffer.begin());
        std::copy(chunk.begin(), chunk.end(), buffer.begin() + static_cast<ptrdiff_t>(m_bitmap_size + in_block));
        TRY(pwrite_full(m_fd.get(), buffer, block_offset));
        TRY(sync_fd(m_fd.get()));
        TRY(set_entry(index, block_offset));
        if (all_present(bm))
            m_full[index] = true;
        else
            m_bitmaps[index] = std::move(bm);
        return {};
    }

    // Fixed: the footer follows the data. Growing writes the new footer at the new end and syncs (the file
    // ends in it from then on: committed), then zeroes the old footer's sector, now disk data, and syncs; a
    // crash between leaves the new size with the old footer's bytes in the grown range. Shrinking writes the
    // new footer over dropped data and syncs while the old footer still ends the file, then truncates the
    // file after the new one (committed) and syncs; a crash before the truncation leaves the old size.
    Result<void> resize_fixed(const p::VhdFooter& footer)
    {
        const uint64_t new_size = be_load(footer.current_size);
        const uint64_t old_footer_offset = m_footer_offset;
        TRY(pwrite_full(m_fd.get(), bytes_of(footer), new_size));
        TRY(sync_fd(m_fd.get()));
        if (new_size < old_footer_offset && ::ftruncate(m_fd.get(), static_cast<off_t>(new_size + sizeof(footer))) != 0)
            return errno_failure("truncating");
        m_footer = footer;
        m_footer_offset = new_size;
        m_info.virtual_size = new_size;
        m_info.file_size = new_size + sizeof(footer);
        if (new_size > old_footer_offset)
            TRY(write_zeroes(m_fd.get(), old_footer_offset, sizeof(footer)));
        return sync_fd(m_fd.get());
    }

    // Dynamic, growing. Each step leaves a file that opens: the header's BAT is never smaller than the size
    // the trailing footer gives, and no BAT entry points at bytes not yet synced.
    // 1. The last block's bytes past the old end are zeroed (they become disk data that must read as zeroes).
    // 2. When the BAT needs more room than lies before the first block, make_table_room moves what is in its
    //    way to the end of the file.
    // 3. The new BAT entries are written unallocated; sync.
    // 4. The header's max_table_entries and checksum (its first sector only); sync.
    // 5. The footers (write_footers): the trailing one commits the new size.
    Result<void> grow_dynamic(const p::VhdFooter& footer)
    {
        const uint64_t old_size = m_info.virtual_size;
        const uint64_t new_size = be_load(footer.current_size);
        const auto last = static_cast<size_t>((old_size - 1) / m_block_size);
        if (old_size % m_block_size != 0 && m_bat[last] != p::vhd_bat_unallocated) {
            const uint64_t tail = old_size % m_block_size;
            TRY(write_zeroes(m_fd.get(), data_offset(last) + tail, m_block_size - tail));
        }
        // Entries past m_bat (never read, or dropped by a shrink) are not trusted: all are rewritten.
        const auto count = static_cast<size_t>((new_size + m_block_size - 1) / m_block_size);
        if (count > m_bat.size()) {
            const uint64_t table_end = m_table_offset + round_up(uint64_t { count } * 4, sector);
            TRY(make_table_room(table_end));
            const uint64_t first_new = m_table_offset + uint64_t { m_bat.size() } * 4;
            TRY(fill_bytes(m_fd.get(), first_new, table_end - first_new, 0xff));
            m_bat.resize(count, p::vhd_bat_unallocated);
            m_full.resize(count, false);
        }
        TRY(sync_fd(m_fd.get()));
        TRY(set_table_entries(count));
        return write_footers(footer);
    }

    // Makes [m_table_offset, table_end) free for the BAT to grow into. The trailing footer moves past it when
    // it is in the way (written at table_end, synced); each block in it is copied to the end of the file (the
    // footer past the copy first, as allocate does), synced, and only then its BAT entry repointed; a final
    // sync makes the entries durable before the old copies are overwritten. A crash leaves at worst an
    // unreferenced copy.
    Result<void> make_table_room(uint64_t table_end)
    {
        const uint64_t header_offset = be_load(m_footer.data_offset);
        if (header_offset > m_table_offset && header_offset < table_end)
            return fail("the dynamic header at {} follows the BAT: no room to grow the BAT", header_offset);
        if (m_footer_offset < table_end) {
            TRY(pwrite_full(m_fd.get(), bytes_of(m_footer), table_end));
            TRY(sync_fd(m_fd.get()));
            m_footer_offset = table_end;
            m_info.file_size = table_end + sizeof(p::VhdFooter);
        }
        for (size_t i = 0; i < m_bat.size(); ++i) {
            const uint64_t start = uint64_t { m_bat[i] } * sector;
            if (m_bat[i] != p::vhd_bat_unallocated && start >= m_table_offset && start < table_end)
                TRY(move_block(i));
        }
        return sync_fd(m_fd.get());
    }

    // Copies block `index` to the end of the file, syncs, then repoints its BAT entry.
    Result<void> move_block(size_t index)
    {
        const uint64_t to = TRY(append_block_space());
        TRY(copy_slot(uint64_t { m_bat[index] } * sector, to, true));
        TRY(sync_fd(m_fd.get()));
        return set_entry(index, to);
    }

    // Copies a block's sector bitmap and data from `from` to `to`, a megabyte at a time; zero chunks are
    // punched. `appended`: the destination was just appended and reads as zeroes past the old footer (its
    // first sector), so zero chunks need no write at all.
    Result<void> copy_slot(uint64_t from, uint64_t to, bool appended)
    {
        const uint64_t length = m_bitmap_size + m_block_size;
        std::vector<uint8_t> buffer(static_cast<size_t>(std::min<uint64_t>(length, 1 << 20)));
        for (uint64_t done = 0; done < length;) {
            const auto chunk
                = std::span(buffer).first(static_cast<size_t>(std::min<uint64_t>(length - done, buffer.size())));
            TRY(pread_full(m_fd.get(), chunk, from + done));
            if (!all_zero(chunk))
                TRY(pwrite_full(m_fd.get(), chunk, to + done));
            else if (!appended)
                TRY(write_zeroes(m_fd.get(), to + done, chunk.size()));
            else if (done == 0)
                TRY(pwrite_full(m_fd.get(), chunk.first(sector), to));
            done += chunk.size();
        }
        return {};
    }

    // Dynamic, shrinking: the footers first (the trailing one commits the new size), then the BAT entries
    // wholly past the new end are marked unallocated (their blocks stay in the file, unreferenced) and the
    // header's BAT size follows. A partial last block keeps its data; growing zeroes its tail again.
    Result<void> shrink_dynamic(const p::VhdFooter& footer)
    {
        const uint64_t new_size = be_load(footer.current_size);
        const auto count = static_cast<size_t>((new_size + m_block_size - 1) / m_block_size);
        TRY(write_footers(footer));
        const size_t old_count = m_bat.size();
        for (size_t i = count; i < old_count; ++i)
            m_bitmaps.erase(i);
        m_bat.resize(count);
        m_full.resize(count);
        TRY(fill_bytes(m_fd.get(), m_table_offset + uint64_t { count } * 4, uint64_t { old_count - count } * 4, 0xff));
        TRY(sync_fd(m_fd.get()));
        return set_table_entries(count);
    }

    // The header's max_table_entries and checksum, both in its first sector: only that sector is written.
    Result<void> set_table_entries(size_t count)
    {
        if (be_load(m_header.max_table_entries) == count)
            return {};
        p::VhdDynamicHeader header = m_header;
        header.max_table_entries = be_store(static_cast<uint32_t>(count));
        header.checksum = be_store(p::vhd_checksum(bytes_of(header), offsetof(p::VhdDynamicHeader, checksum)));
        static_assert(offsetof(p::VhdDynamicHeader, checksum) + 4 <= sector);
        TRY(pwrite_full(m_fd.get(), bytes_of(header).first(sector), be_load(m_footer.data_offset)));
        TRY(sync_fd(m_fd.get()));
        m_header = header;
        return {};
    }

    // Dynamic: the trailing footer (the one opening reads: this commits its size), synced, then the copy at
    // offset 0 (the one qemu reads first), synced.
    Result<void> write_footers(const p::VhdFooter& footer)
    {
        TRY(pwrite_full(m_fd.get(), bytes_of(footer), m_footer_offset));
        TRY(sync_fd(m_fd.get()));
        m_footer = footer;
        m_info.virtual_size = be_load(footer.current_size);
        TRY(pwrite_full(m_fd.get(), bytes_of(footer), 0));
        return sync_fd(m_fd.get());
    }

    UniqueFd m_fd;
    DiskInfo m_info;
    bool m_read_only;
    p::VhdFooter m_footer;
    uint64_t m_footer_offset;
    std::mutex m_mutex;
    p::VhdDynamicHeader m_header {};
    std::vector<uint32_t> m_bat;
    std::vector<bool> m_full; // block known to have every sector present
    std::unordered_map<size_t, std::vector<uint8_t>> m_bitmaps; // partial bitmaps of allocated blocks
    uint64_t m_table_offset = 0;
    uint32_t m_block_size = 0;
    uint32_t m_bitmap_size = 0;
    std::unique_ptr<VhdDisk> m_parent;
};

Result<std::unique_ptr<VhdDisk>> open_vhd_file(const std::string& path, bool read_only, int depth);

// The parent's candidate paths, most specific first: the W2ru (relative) and W2ku (absolute) locators, the
// MacX URL, then the header's parent name; Windows separators become '/'; each also tried by its file name
// beside the child.
Result<std::vector<std::string>> parent_candidates(
    int fd, const p::VhdDynamicHeader& header, uint64_t footer_offset, const std::string& child_path)
{
    std::error_code ec;
    const auto child_dir = std::filesystem::absolute(child_path, ec).parent_path();
    std::vector<std::string> names;
    for (const auto& locator : header.parent_locators) {
        const uint32_t code = be_load(locator.platform_code);
        if (code == p::vhd_locator_none)
            continue;
        const uint32_t length = be_load(locator.platform_data_length);
        const uint64_t offset = be_load(locator.platform_data_offset);
        if (length > max_locator_bytes || offset > footer_offset || footer_offset - offset < length)
            return fail("parent locator at {} of {} bytes outside the file", offset, length);
        std::vector<uint8_t> data(length);
        TRY(pread_full(fd, data, offset));
        if (code == p::vhd_locator_w2ru || code == p::vhd_locator_w2ku) {
            std::u16string text;
            for (size_t i = 0; i + 1 < data.size(); i += 2)
                text.push_back(static_cast<char16_t>(data[i] | (data[i + 1] << 8)));
            names.push_back(utf8_from_utf16(text));
        } else if (code == p::vhd_locator_macx) {
            std::string url(data.begin(), data.end());
            if (url.starts_with("file://"))
                url = url.substr(7);
            names.push_back(url);
        }
    }
    std::u16string name;
    for (const uint16_t unit : header.parent_unicode_name) {
        if (be_load(unit) == 0)
            break;
        name.push_back(static_cast<char16_t>(be_load(unit)));
    }
    if (!name.empty())
        names.push_back(utf8_from_utf16(name));
    std::vector<std::string> candidates;
    for (auto n : names) {
        n = std::string(n.c_str()); // stop at an embedded NUL
        std::replace(n.begin(), n.end(), '\\', '/');
        if (n.empty())
            continue;
        const std::filesystem::path candidate(n);
        candidates.push_back((candidate.is_absolute() ? candidate : child_dir / candidate).lexically_normal().string());
        candidates.push_back((child_dir / candidate.filename()).lexically_normal().string());
    }
    if (candidates.empty())
        return fail("differencing disk names no parent");
    return candidates;
}

Result<std::unique_ptr<VhdDisk>> open_vhd_fd(UniqueFd fd, bool read_only, const std::string& path, int depth)
{
    struct stat st { };
    if (::fstat(fd.get(), &st) != 0)
        return errno_failure("stat");
    if (!S_ISREG(st.st_mode))
        return fail("not a regular file");
    const auto file_size = static_cast<uint64_t>(st.st_size);
    if (file_size < sizeof(p::VhdFooter))
        return fail("file of {} bytes is too small for a VHD footer", file_size);
    const uint64_t footer_offset = file_size - sizeof(p::VhdFooter);
    p::VhdFooter footer {};
    TRY(pread_full(fd.get(), bytes_of(footer), footer_offset));
    TRY(check_vhd_footer(footer));
    const uint64_t size = be_load(footer.current_size);
    const uint32_t type = be_load(footer.disk_type);

    DiskInfo info;
    info.format = DiskFormat::Vhd;
    info.virtual_size = size;
    info.file_size = file_size;
    info.identifier = vhd_uuid_text(footer.unique_id);

    if (type == p::vhd_type_fixed) {
        if (footer_offset != size)
            return fail("fixed disk of {} bytes in a file of {} bytes", size, file_size);
        info.type = DiskType::Fixed;
        return std::make_unique<VhdDisk>(std::move(fd), std::move(info), read_only, footer, footer_offset);
    }

    if (footer_offset % sector != 0)
        return fail("dynamic disk file size {} is not a multiple of 512", file_size);
    const uint64_t header_offset = be_load(footer.data_offset);
    if (header_offset % sector != 0 || header_offset < sizeof(p::VhdFooter) || header_offset > footer_offset
        || footer_offset - header_offset < sizeof(p::VhdDynamicHeader))
        return fail("dynamic header offset {} outside the file", header_offset);
    p::VhdDynamicHeader header {};
    TRY(pread_full(fd.get(), bytes_of(header), header_offset));
    if (std::memcmp(header.cookie, p::vhd_dynamic_cookie, sizeof(header.cookie)) != 0)
        return fail("no dynamic disk header (cookie is not \"cxsparse\")");
    const uint32_t header_sum = p::vhd_checksum(bytes_of(header), offsetof(p::VhdDynamicHeader, checksum));
    if (header_sum != be_load(header.checksum))
        return fail(
            "dynamic header checksum mismatch (stored {:#x}, computed {:#x})", be_load(header.checksum), header_sum);
    if ((be_load(header.header_version) >> 16) != 1)
        return fail("unsupported dynamic header version {:#x}", be_load(header.header_version));
    const uint32_t block_size = be_load(header.block_size);
    if (block_size < min_block_size || block_size > max_block_size || (block_size & (block_size - 1)) != 0)
        return fail("impossible block size {}", block_size);
    const uint32_t entries = be_load(header.max_table_entries);
    const uint64_t needed = (size + block_size - 1) / block_size;
    if (entries < needed)
        return fail("BAT of {} entries is too small for {} blocks", entries, needed);
    const uint64_t table_offset = be_load(header.table_offset);
    const uint64_t table_bytes = needed * 4;
    if (table_offset % sector != 0 || table_offset > footer_offset || footer_offset - table_offset < table_bytes)
        return fail("BAT at {} of {} bytes outside the file", table_offset, table_bytes);

    std::vector<uint32_t> bat(static_cast<size_t>(needed));
    TRY(pread_full(fd.get(), std::span(reinterpret_cast<uint8_t*>(bat.data()), bat.size() * 4), table_offset));
    const uint64_t bitmap_size = round_up(block_size / sector / 8, sector);
    // Every region of the file: metadata and blocks must not overlap.
    auto regions = vhd_metadata_ranges(footer, header, needed, footer_offset);
    for (size_t i = 0; i < bat.size(); ++i) {
        bat[i] = be_load(bat[i]);
        if (bat[i] == p::vhd_bat_unallocated)
            continue;
        const uint64_t start = uint64_t { bat[i] } * sector;
        if (start > footer_offset || footer_offset - start < bitmap_size + block_size)
            return fail("BAT entry {} points at sector {}, outside the data area", i, bat[i]);
        regions.push_back({ start, start + bitmap_size + block_size });
    }

    info.type = type == p::vhd_type_dynamic ? DiskType::Dynamic : DiskType::Differencing;
    info.block_size = block_size;
    std::unique_ptr<VhdDisk> parent;
    if (type == p::vhd_type_differencing) {
        if (depth >= max_chain_depth)
            return fail("differencing chain deeper than {} (a loop?)", max_chain_depth);
        const auto candidates = TRY(parent_candidates(fd.get(), header, footer_offset, path));
        for (const auto& candidate : candidates) {
            if (::access(candidate.c_str(), F_OK) != 0)
                continue;
            parent = TRY_CTX(open_vhd_file(candidate, true, depth + 1), "parent");
            info.parent_path = candidate;
            break;
        }
        if (!parent)
            return fail("parent not found (tried {})", fmt::join(candidates, ", "));
        if (std::memcmp(parent->footer().unique_id, header.parent_unique_id, sizeof(header.parent_unique_id)) != 0)
            return fail("parent {} has id {}, the child expects {}", info.parent_path,
                vhd_uuid_text(parent->footer().unique_id), vhd_uuid_text(header.parent_unique_id));
        if (parent->size() != size)
            return fail("parent {} is {} bytes, the child {}", info.parent_path, parent->size(), size);
    }
    std::sort(regions.begin(), regions.end(), [](const VhdFileRange& a, const VhdFileRange& b) {
        return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
    });
    for (size_t i = 1; i < regions.size(); ++i) {
        if (regions[i].begin < regions[i - 1].end)
            return fail("file regions at {} and {} overlap", regions[i - 1].begin, regions[i].begin);
    }

    auto disk = std::make_unique<VhdDisk>(std::move(fd), std::move(info), read_only, footer, footer_offset);
    disk->set_dynamic(header, std::move(bat));
    disk->set_parent(std::move(parent));
    return disk;
}

Result<std::unique_ptr<VhdDisk>> open_vhd_file(const std::string& path, bool read_only, int depth)
{
    UniqueFd fd(::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
    if (!fd.valid())
        return errno_failure(fmt::format("opening {}", path));
    return TRY_CTX(open_vhd_fd(std::move(fd), read_only, path, depth), "opening VHD {}", path);
}

} // namespace

Result<std::unique_ptr<BlockDevice>> open_vhd(const std::string& path, bool read_only)
{
    return std::unique_ptr<BlockDevice>(TRY(open_vhd_file(path, read_only, 0)));
}

Result<void> create_vhd(const std::string& path, uint64_t size, DiskType type, uint32_t block_size)
{
    if (size == 0 || size % sector != 0 || size > p::vhd_max_size)
        return fail("creating {}: size {} is not a non-zero multiple of 512 up to 2040 GiB", path, size);
    if (type == DiskType::Differencing)
        return fail("creating {}: differencing VHDs are made with create_vhd_differencing", path);
    if (type == DiskType::Dynamic
        && (block_size < min_block_size || block_size > max_block_size || (block_size & (block_size - 1)) != 0))
        return fail("creating {}: block size {} is not a power of two from 4 KiB to 256 MiB", path, block_size);

    std::vector<uint8_t> image;
    p::VhdFooter footer {};
    uint64_t footer_offset = size;
    if (type == DiskType::Fixed) {
        fill_vhd_footer(footer, size, p::vhd_type_fixed, p::vhd_no_data_offset);
    } else {
        constexpr uint64_t header_offset = sizeof(p::VhdFooter);
        constexpr uint64_t table_offset = header_offset + sizeof(p::VhdDynamicHeader);
        const uint64_t entries = (size + block_size - 1) / block_size;
        const uint64_t table_bytes = round_up(entries * 4, sector);
        footer_offset = table_offset + table_bytes;
        fill_vhd_footer(footer, size, p::vhd_type_dynamic, header_offset);
        p::VhdDynamicHeader header {};
        std::memcpy(header.cookie, p::vhd_dynamic_cookie, sizeof(header.cookie));
        header.data_offset = be_store(p::vhd_no_data_offset);
        header.table_offset = be_store(table_offset);
        header.header_version = be_store(p::vhd_header_version);
        header.max_table_entries = be_store(static_cast<uint32_t>(entries));
        header.block_size = be_store(block_size);
        header.checksum = be_store(p::vhd_checksum(bytes_of(header), offsetof(p::VhdDynamicHeader, checksum)));
        image.resize(static_cast<size_t>(footer_offset), 0xff);
        std::memcpy(image.data(), &footer, sizeof(footer));
        std::memcpy(image.data() + header_offset, &header, sizeof(header));
    }
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid())
        return errno_failure(fmt::format("creating {}", path));
    auto written = [&]() -> Result<void> {
        if (type == DiskType::Fixed && ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
            return errno_failure("sizing");
        TRY(pwrite_full(fd.get(), image, 0));
        TRY(pwrite_full(fd.get(), bytes_of(footer), footer_offset));
        if (::fsync(fd.get()) != 0)
            return errno_failure("fsync");
        return {};
    }();
    if (!written) {
        ::unlink(path.c_str());
        return fail(std::move(written).error().with_context(fmt::format("creating {}", path)));
    }
    return {};
}

namespace {

std::vector<uint8_t> utf16le(const std::string& text)
{
    std::vector<uint8_t> out;
    for (const char16_t unit : utf16_from_utf8(text)) {
        out.push_back(static_cast<uint8_t>(unit & 0xff));
        out.push_back(static_cast<uint8_t>(unit >> 8));
    }
    return out;
}

std::string windows_separators(std::string path)
{
    std::replace(path.begin(), path.end(), '/', '\\');
    return path;
}

} // namespace

Result<void> create_vhd_differencing(const std::string& path, const std::string& parent_path)
{
    auto parent = TRY_CTX(open_vhd_file(parent_path, true, 0), "creating {}", path);
    std::error_code ec;
    const auto parent_abs = std::filesystem::absolute(parent_path, ec).lexically_normal();
    if (ec)
        return fail("creating {}: resolving {}: {}", path, parent_path, ec.message());
    const auto child_dir = std::filesystem::absolute(path, ec).lexically_normal().parent_path();
    if (ec)
        return fail("creating {}: {}", path, ec.message());
    auto relative = parent_abs.lexically_relative(child_dir).string();
    if (relative.empty())
        return fail("creating {}: no relative path to {}", path, parent_path);
    if (!relative.starts_with(".."))
        relative = "./" + relative;

    const uint64_t size = parent->size();
    const uint32_t block_size = parent->info().block_size != 0 ? parent->info().block_size : p::vhd_default_block_size;
    std::u16string name = utf16_from_utf8(parent_abs.string());
    if (name.size() > 256)
        name = utf16_from_utf8(parent_abs.filename().string());
    if (name.size() > 256)
        return fail("creating {}: parent file name longer than 256 UTF-16 units", path);

    const std::vector<uint8_t> locators[2]
        = { utf16le(windows_separators(relative)), utf16le(windows_separators(parent_abs.string())) };
    const uint32_t codes[2] = { p::vhd_locator_w2ru, p::vhd_locator_w2ku };

    constexpr uint64_t header_offset = sizeof(p::VhdFooter);
    constexpr uint64_t table_offset = header_offset + sizeof(p::VhdDynamicHeader);
    const uint64_t entries = (size + block_size - 1) / block_size;
    uint64_t end = table_offset + round_up(entries * 4, sector);

    p::VhdFooter footer {};
    fill_vhd_footer(footer, size, p::vhd_type_differencing, header_offset);
    p::VhdDynamicHeader header {};
    std::memcpy(header.cookie, p::vhd_dynamic_cookie, sizeof(header.cookie));
    header.data_offset = be_store(p::vhd_no_data_offset);
    header.table_offset = be_store(table_offset);
    header.header_version = be_store(p::vhd_header_version);
    header.max_table_entries = be_store(static_cast<uint32_t>(entries));
    header.block_size = be_store(block_size);
    std::memcpy(header.parent_unique_id, parent->footer().unique_id, sizeof(header.parent_unique_id));
    header.parent_timestamp = parent->footer().timestamp; // both big-endian
    for (size_t i = 0; i < name.size(); ++i)
        header.parent_unicode_name[i] = be_store(static_cast<uint16_t>(name[i]));
    std::vector<uint64_t> locator_offsets;
    for (size_t i = 0; i < 2; ++i) {
        auto& locator = header.parent_locators[i];
        const uint64_t space = round_up(locators[i].size(), sector);
        locator.platform_code = be_store(codes[i]);
        // The spec says sectors; Windows writes (and reads) bytes here.
        locator.platform_data_space = be_store(static_cast<uint32_t>(space));
        locator.platform_data_length = be_store(static_cast<uint32_t>(locators[i].size()));
        locator.platform_data_offset = be_store(end);
        locator_offsets.push_back(end);
        end += space;
    }
    header.checksum = be_store(p::vhd_checksum(bytes_of(header), offsetof(p::VhdDynamicHeader, checksum)));

    std::vector<uint8_t> image(static_cast<size_t>(end + sizeof(footer)), 0);
    std::memcpy(image.data(), &footer, sizeof(footer));
    std::memcpy(image.data() + header_offset, &header, sizeof(header));
    std::fill(image.begin() + static_cast<ptrdiff_t>(table_offset),
        image.begin() + static_cast<ptrdiff_t>(table_offset + round_up(entries * 4, sector)), uint8_t { 0xff });
    for (size_t i = 0; i < 2; ++i)
        std::copy(locators[i].begin(), locators[i].end(), image.begin() + static_cast<ptrdiff_t>(locator_offsets[i]));
    std::memcpy(image.data() + end, &footer, sizeof(footer));

    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid())
        return errno_failure(fmt::format("creating {}", path));
    auto written = [&]() -> Result<void> {
        TRY(pwrite_full(fd.get(), image, 0));
        if (::fsync(fd.get()) != 0)
            return errno_failure("fsync");
        return {};
    }();
    if (!written) {
        ::unlink(path.c_str());
        return fail(std::move(written).error().with_context(fmt::format("creating {}", path)));
    }
    return {};
}

} // namespace vmgen::vm::disk
