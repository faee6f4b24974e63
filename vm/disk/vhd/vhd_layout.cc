#include "vm/disk/vhd/vhd_layout.h"

#include <sys/random.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <utility>

namespace vmgen::vm::disk {

namespace p = protocols::disk;
using p::be_load;
using p::be_store;

namespace {

constexpr uint64_t sector = p::vhd_sector_size;

std::span<const uint8_t> bytes_of(const p::VhdFooter& f)
{
    return { reinterpret_cast<const uint8_t*>(&f), sizeof(f) };
}

} // namespace

std::string vhd_uuid_text(const uint8_t (&id)[16])
{
    return fmt::format(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}", id[0],
        id[1], id[2], id[3], id[4], id[5], id[6], id[7], id[8], id[9], id[10], id[11], id[12], id[13], id[14], id[15]);
}

Result<void> check_vhd_footer(const p::VhdFooter& f)
{
    if (std::memcmp(f.cookie, p::vhd_footer_cookie, sizeof(f.cookie)) != 0)
        return fail("no VHD footer (cookie is not \"conectix\")");
    const uint32_t sum = p::vhd_checksum(bytes_of(f), offsetof(p::VhdFooter, checksum));
    if (sum != be_load(f.checksum))
        return fail("footer checksum mismatch (stored {:#x}, computed {:#x})", be_load(f.checksum), sum);
    if ((be_load(f.file_format_version) >> 16) != 1)
        return fail("unsupported file format version {:#x}", be_load(f.file_format_version));
    const uint64_t size = be_load(f.current_size);
    if (size == 0 || size % sector != 0 || size > p::vhd_max_size)
        return fail("impossible disk size {}", size);
    const uint32_t type = be_load(f.disk_type);
    if (type != p::vhd_type_fixed && type != p::vhd_type_dynamic && type != p::vhd_type_differencing)
        return fail("unsupported disk type {}", type);
    return {};
}

void set_vhd_footer_size(p::VhdFooter& f, uint64_t size)
{
    f.current_size = be_store(size);
    const auto geometry = p::vhd_geometry(size / sector);
    f.cylinders = be_store(geometry.cylinders);
    f.heads = geometry.heads;
    f.sectors_per_track = geometry.sectors_per_track;
    f.checksum = be_store(p::vhd_checksum(bytes_of(f), offsetof(p::VhdFooter, checksum)));
}

void fill_vhd_footer(p::VhdFooter& f, uint64_t size, uint32_t type, uint64_t data_offset)
{
    std::memset(&f, 0, sizeof(f));
    std::memcpy(f.cookie, p::vhd_footer_cookie, sizeof(f.cookie));
    f.features = be_store(p::vhd_features_reserved);
    f.file_format_version = be_store(p::vhd_file_format_version);
    f.data_offset = be_store(data_offset);
    const auto now = static_cast<uint64_t>(std::time(nullptr));
    f.timestamp
        = be_store(static_cast<uint32_t>(now > p::vhd_epoch_unix_seconds ? now - p::vhd_epoch_unix_seconds : 0));
    // Hyper-V's creator ("win "): our virtual size is current_size, as Hyper-V reads it, and tools that know
    // the creators (qemu's vpc driver among them) only trust current_size over the CHS geometry for known ones;
    // any other tag makes them round the disk down to the geometry and lose its tail.
    std::memcpy(f.creator_application, "win ", 4);
    f.creator_version = be_store(uint32_t { 0x00010000 });
    f.creator_host_os = be_store(p::vhd_host_os_windows);
    f.original_size = be_store(size);
    f.disk_type = be_store(type);
    // Random (version 4) unique id; getrandom only fails for lack of entropy at early boot.
    if (::getrandom(f.unique_id, sizeof(f.unique_id), 0) != static_cast<ssize_t>(sizeof(f.unique_id))) {
        const auto t = static_cast<uint64_t>(std::time(nullptr)) ^ reinterpret_cast<uintptr_t>(&f);
        std::memcpy(f.unique_id, &t, sizeof(t));
    }
    f.unique_id[6] = static_cast<uint8_t>((f.unique_id[6] & 0x0f) | 0x40);
    f.unique_id[8] = static_cast<uint8_t>((f.unique_id[8] & 0x3f) | 0x80);
    set_vhd_footer_size(f, size);
}

std::vector<VhdFileRange> vhd_metadata_ranges(
    const p::VhdFooter& footer, const p::VhdDynamicHeader& header, uint64_t entries, uint64_t footer_offset)
{
    const uint64_t header_offset = be_load(footer.data_offset);
    const uint64_t table_offset = be_load(header.table_offset);
    std::vector<VhdFileRange> ranges { { 0, sizeof(p::VhdFooter) },
        { header_offset, header_offset + sizeof(p::VhdDynamicHeader) }, { table_offset, table_offset + entries * 4 } };
    if (be_load(footer.disk_type) == p::vhd_type_differencing) {
        for (const auto& locator : header.parent_locators) {
            const uint32_t length = be_load(locator.platform_data_length);
            const uint64_t offset = be_load(locator.platform_data_offset);
            if (be_load(locator.platform_code) != p::vhd_locator_none && length > 0 && offset <= footer_offset
                && footer_offset - offset >= length)
                ranges.push_back({ offset, offset + length });
        }
    }
    return ranges;
}

VhdCompaction plan_vhd_compaction(std::vector<VhdFileRange> reserved, std::span<const uint32_t> bat, uint64_t slot,
    uint64_t data_begin, uint64_t footer_offset)
{
    VhdCompaction plan;
    // Everything taken, in file order: the reserved ranges (whole sectors) and the blocks.
    std::vector<VhdFileRange> taken;
    uint64_t end = 0; // of the reserved ranges, then of the blocks where they end up
    for (const auto& r : reserved) {
        if (r.begin >= r.end)
            continue;
        taken.push_back({ r.begin / sector * sector, (r.end + sector - 1) / sector * sector });
        end = std::max(end, taken.back().end);
    }
    // The blocks, by offset (then by entry, so that the plan is deterministic).
    std::vector<std::pair<uint64_t, size_t>> blocks;
    for (size_t i = 0; i < bat.size(); ++i) {
        if (bat[i] != p::vhd_bat_unallocated) {
            blocks.emplace_back(uint64_t { bat[i] } * sector, i);
            taken.push_back({ blocks.back().first, blocks.back().first + slot });
        }
    }
    std::sort(blocks.begin(), blocks.end());
    std::sort(
        taken.begin(), taken.end(), [](const VhdFileRange& a, const VhdFileRange& b) { return a.begin < b.begin; });

    // The free ranges between them, lowest first. Space a moved block leaves lies above every block still to
    // move (blocks move highest first), so it is never a destination and the list is built once.
    std::vector<VhdFileRange> holes;
    uint64_t cursor = (data_begin + sector - 1) / sector * sector;
    for (const auto& t : taken) {
        if (t.begin > cursor)
            holes.push_back({ cursor, t.begin });
        cursor = std::max(cursor, t.end);
    }

    size_t hole = 0; // the first free range that may still hold a block
    size_t kept = blocks.size(); // blocks [0, kept) stay where they are
    while (kept > 0) {
        const auto [from, index] = blocks[kept - 1];
        // A block ending below what stays (metadata, moved blocks) gives nothing back by moving.
        if (from + slot <= end)
            break;
        while (hole < holes.size() && holes[hole].end - holes[hole].begin < slot)
            ++hole;
        if (hole == holes.size() || holes[hole].begin + slot > from)
            break;
        plan.moves.push_back({ index, from, holes[hole].begin });
        end = std::max(end, holes[hole].begin + slot);
        holes[hole].begin += slot;
        --kept;
    }
    for (size_t i = 0; i < kept; ++i)
        end = std::max(end, blocks[i].first + slot);
    plan.footer_offset = std::min(end, footer_offset);
    return plan;
}

} // namespace vmgen::vm::disk
