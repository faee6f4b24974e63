#include "vm/disk/vhdx/vhdx.h"

#include "protocols/disk/vhdx.h"
#include "support/errno_error.h"
#include "support/unique_fd.h"
#include "vm/disk/vhdx/vhdx_disk.h"
#include "vm/disk/vhdx/vhdx_internal.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

namespace vmgen::vm::disk {

using namespace vmgen::protocols::disk;

namespace {

constexpr std::array<uint32_t, 256> make_crc32c_table()
{
    std::array<uint32_t, 256> table{};
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78U : c >> 1;
        table[i] = c;
    }
    return table;
}
constexpr auto crc32c_table = make_crc32c_table();

uint32_t crc32c_update(uint32_t crc, std::span<const uint8_t> data)
{
    for (uint8_t byte : data)
        crc = crc32c_table[(crc ^ byte) & 0xFF] ^ (crc >> 8);
    return crc;
}

} // namespace

uint32_t vhdx_crc32c(std::span<const uint8_t> data) { return ~crc32c_update(~0U, data); }

namespace vhdx_detail {

uint32_t checksum_zeroed(std::span<const uint8_t> data, size_t field)
{
    static constexpr uint8_t zeroes[4] = {};
    uint32_t crc = crc32c_update(~0U, data.subspan(0, field));
    crc = crc32c_update(crc, zeroes);
    crc = crc32c_update(crc, data.subspan(field + 4));
    return ~crc;
}

void store_checksum(std::span<uint8_t> data, size_t field)
{
    uint32_t crc = checksum_zeroed(data, field);
    std::memcpy(data.data() + field, &crc, sizeof(crc));
}

std::string guid_text(const VhdxGuid& g)
{
    return fmt::format("{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}", g.data1, g.data2,
                       g.data3, g.data4[0], g.data4[1], g.data4[2], g.data4[3], g.data4[4], g.data4[5],
                       g.data4[6], g.data4[7]);
}

Result<void> read_at(int fd, std::span<uint8_t> out, uint64_t offset)
{
    size_t done = 0;
    while (done < out.size()) {
        ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno_failure(fmt::format("reading {} bytes at {:#x}", out.size(), offset));
        }
        if (n == 0)
            return fail("file truncated: reading {} bytes at {:#x}", out.size(), offset);
        done += static_cast<size_t>(n);
    }
    return {};
}

Result<void> write_at(int fd, std::span<const uint8_t> in, uint64_t offset)
{
    size_t done = 0;
    while (done < in.size()) {
        ssize_t n = ::pwrite(fd, in.data() + done, in.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno_failure(fmt::format("writing {} bytes at {:#x}", in.size(), offset));
        }
        done += static_cast<size_t>(n);
    }
    return {};
}

Result<VhdxGuid> random_guid()
{
    VhdxGuid g{};
    auto* p = reinterpret_cast<uint8_t*>(&g);
    size_t done = 0;
    while (done < sizeof(g)) {
        ssize_t n = ::getrandom(p + done, sizeof(g) - done, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno_failure("getrandom");
        }
        done += static_cast<size_t>(n);
    }
    // RFC 4122 version 4.
    g.data3 = static_cast<uint16_t>((g.data3 & 0x0FFF) | 0x4000);
    g.data4[0] = static_cast<uint8_t>((g.data4[0] & 0x3F) | 0x80);
    return g;
}

} // namespace vhdx_detail

using namespace vhdx_detail;

namespace {

struct Range {
    uint64_t offset;
    uint64_t length;
    const char* name;
};

bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) { return a < b + blen && b < a + alen; }

struct ParsedHeader {
    VhdxHeader header;
    int index; // 0: at 64 KiB, 1: at 128 KiB
};

Result<VhdxHeader> parse_header(int fd, uint64_t offset)
{
    std::vector<uint8_t> buf(sizeof(VhdxHeader));
    TRY(read_at(fd, buf, offset));
    VhdxHeader h;
    std::memcpy(&h, buf.data(), sizeof(h));
    if (h.signature != vhdx_header_signature)
        return fail("bad signature {:#010x}", h.signature);
    uint32_t crc = checksum_zeroed(buf, offsetof(VhdxHeader, checksum));
    if (crc != h.checksum)
        return fail("bad checksum {:#010x} (computed {:#010x})", h.checksum, crc);
    return h;
}

Result<ParsedHeader> choose_header(int fd, uint64_t file_size)
{
    auto h1 = parse_header(fd, vhdx_header1_offset);
    auto h2 = parse_header(fd, vhdx_header2_offset);
    ParsedHeader current{};
    if (h1 && h2) {
        if (h1->sequence_number == h2->sequence_number)
            return fail("both headers have sequence number {}", h1->sequence_number);
        current = h1->sequence_number > h2->sequence_number ? ParsedHeader{*h1, 0} : ParsedHeader{*h2, 1};
    } else if (h1) {
        current = {*h1, 0};
    } else if (h2) {
        current = {*h2, 1};
    } else {
        return fail("no valid header (header 1: {}; header 2: {})", h1.error().message(), h2.error().message());
    }
    const VhdxHeader& h = current.header;
    if (h.version != vhdx_version)
        return fail("header {}: unsupported version {}", current.index + 1, h.version);
    if (h.log_version != vhdx_log_version)
        return fail("header {}: unsupported log version {}", current.index + 1, h.log_version);
    if (h.log_offset % vhdx_mib != 0 || h.log_offset < vhdx_mib || h.log_length % vhdx_mib != 0 ||
        h.log_length == 0)
        return fail("header {}: log at {:#x} length {:#x} is not 1 MiB aligned past the header section",
                    current.index + 1, h.log_offset, h.log_length);
    if (h.log_offset > file_size || h.log_length > file_size - h.log_offset)
        return fail("header {}: log at {:#x} length {:#x} lies past the end of the file ({} bytes)",
                    current.index + 1, h.log_offset, h.log_length, file_size);
    return current;
}

struct Regions {
    uint64_t bat_offset = 0;
    uint64_t bat_length = 0;
    uint64_t metadata_offset = 0;
    uint64_t metadata_length = 0;
    std::vector<std::pair<uint64_t, uint64_t>> others; // regions we do not know (kept as they are)
};

Result<Regions> parse_region_table(int fd, uint64_t offset, uint64_t file_size)
{
    std::vector<uint8_t> buf(vhdx_region_table_size);
    TRY(read_at(fd, buf, offset));
    VhdxRegionTableHeader rh;
    std::memcpy(&rh, buf.data(), sizeof(rh));
    if (rh.signature != vhdx_region_signature)
        return fail("bad signature {:#010x}", rh.signature);
    uint32_t crc = checksum_zeroed(buf, offsetof(VhdxRegionTableHeader, checksum));
    if (crc != rh.checksum)
        return fail("bad checksum {:#010x} (computed {:#010x})", rh.checksum, crc);
    if (rh.entry_count > vhdx_region_max_entries)
        return fail("{} entries (at most {})", rh.entry_count, vhdx_region_max_entries);
    Regions r;
    bool have_bat = false;
    bool have_metadata = false;
    for (uint32_t i = 0; i < rh.entry_count; ++i) {
        VhdxRegionTableEntry e;
        std::memcpy(&e, buf.data() + sizeof(rh) + i * sizeof(e), sizeof(e));
        bool is_bat = e.guid == vhdx_bat_region_guid;
        bool is_metadata = e.guid == vhdx_metadata_region_guid;
        if (!is_bat && !is_metadata) {
            if ((e.flags & vhdx_region_flag_required) != 0)
                return fail("entry {}: unknown required region {}", i, guid_text(e.guid));
            r.others.emplace_back(e.file_offset, e.length);
            continue;
        }
        const char* name = is_bat ? "BAT" : "metadata";
        if ((is_bat && have_bat) || (is_metadata && have_metadata))
            return fail("duplicate {} region", name);
        if (e.file_offset % vhdx_mib != 0 || e.file_offset < vhdx_mib || e.length % vhdx_mib != 0 || e.length == 0)
            return fail("{} region at {:#x} length {:#x} is not 1 MiB aligned past the header section", name,
                        e.file_offset, e.length);
        if (e.file_offset > file_size || e.length > file_size - e.file_offset)
            return fail("{} region at {:#x} length {:#x} lies past the end of the file ({} bytes)", name,
                        e.file_offset, e.length, file_size);
        if (is_bat) {
            have_bat = true;
            r.bat_offset = e.file_offset;
            r.bat_length = e.length;
        } else {
            have_metadata = true;
            r.metadata_offset = e.file_offset;
            r.metadata_length = e.length;
        }
    }
    if (!have_bat)
        return fail("no BAT region");
    if (!have_metadata)
        return fail("no metadata region");
    if (overlaps(r.bat_offset, r.bat_length, r.metadata_offset, r.metadata_length))
        return fail("BAT and metadata regions overlap");
    return r;
}

// [MS-VHDX] 2.2.3: region table 1, or table 2 when table 1 is not valid.
Result<Regions> choose_region_table(int fd, uint64_t file_size)
{
    auto regions1 = parse_region_table(fd, vhdx_region_table1_offset, file_size);
    if (regions1)
        return *regions1;
    auto regions2 = parse_region_table(fd, vhdx_region_table2_offset, file_size);
    if (!regions2)
        return fail("no valid region table (table 1: {}; table 2: {})", regions1.error().message(),
                    regions2.error().message());
    return *regions2;
}

struct Metadata {
    uint32_t block_size = 0;
    uint32_t flags = 0;
    uint64_t virtual_size = 0;
    uint32_t virtual_size_offset = 0; // of the Virtual Disk Size item, in the metadata region
    uint32_t logical_sector_size = 0;
    uint32_t physical_sector_size = 0;
    VhdxGuid page83{};
    std::vector<uint8_t> parent_locator; // the parent locator item (differencing images)

    [[nodiscard]] bool has_parent() const { return (flags & vhdx_params_has_parent) != 0; }
};

Result<Metadata> parse_metadata(int fd, const Regions& regions)
{
    std::vector<uint8_t> table(vhdx_metadata_table_size);
    TRY(read_at(fd, table, regions.metadata_offset));
    VhdxMetadataTableHeader mh;
    std::memcpy(&mh, table.data(), sizeof(mh));
    if (mh.signature != vhdx_metadata_signature)
        return fail("bad metadata table signature {:#018x}", mh.signature);
    if (mh.entry_count > vhdx_metadata_max_entries)
        return fail("metadata table has {} entries (at most {})", mh.entry_count, vhdx_metadata_max_entries);

    Metadata md;
    bool have_params = false, have_size = false, have_page83 = false, have_logical = false, have_physical = false;
    std::vector<VhdxGuid> seen;
    for (uint32_t i = 0; i < mh.entry_count; ++i) {
        VhdxMetadataTableEntry e;
        std::memcpy(&e, table.data() + sizeof(mh) + i * sizeof(e), sizeof(e));
        for (const VhdxGuid& g : seen)
            if (g == e.item_id && (e.flags & vhdx_metadata_flag_user) == 0)
                return fail("metadata item {} appears twice", guid_text(e.item_id));
        seen.push_back(e.item_id);
        if (e.length == 0) {
            if (e.offset != 0)
                return fail("metadata item {}: empty item with offset {:#x}", guid_text(e.item_id), e.offset);
        } else if (e.offset < vhdx_metadata_table_size || e.length > vhdx_mib ||
                   uint64_t{e.offset} + e.length > regions.metadata_length) {
            return fail("metadata item {}: offset {:#x} length {:#x} outside the metadata region ({:#x} bytes)",
                        guid_text(e.item_id), e.offset, e.length, regions.metadata_length);
        }
        auto read_item = [&](void* out, uint32_t expected) -> Result<void> {
            if (e.length != expected)
                return fail("metadata item {}: length {} (expected {})", guid_text(e.item_id), e.length, expected);
            std::vector<uint8_t> buf(expected);
            TRY(read_at(fd, buf, regions.metadata_offset + e.offset));
            std::memcpy(out, buf.data(), expected);
            return {};
        };
        if ((e.flags & vhdx_metadata_flag_user) != 0)
            continue; // user items are opaque to us
        if (e.item_id == vhdx_file_parameters_guid) {
            VhdxFileParameters p;
            TRY(read_item(&p, sizeof(p)));
            md.block_size = p.block_size;
            md.flags = p.flags;
            have_params = true;
        } else if (e.item_id == vhdx_virtual_disk_size_guid) {
            TRY(read_item(&md.virtual_size, sizeof(md.virtual_size)));
            md.virtual_size_offset = e.offset;
            have_size = true;
        } else if (e.item_id == vhdx_page83_guid) {
            TRY(read_item(&md.page83, sizeof(md.page83)));
            have_page83 = true;
        } else if (e.item_id == vhdx_logical_sector_size_guid) {
            TRY(read_item(&md.logical_sector_size, sizeof(md.logical_sector_size)));
            have_logical = true;
        } else if (e.item_id == vhdx_physical_sector_size_guid) {
            TRY(read_item(&md.physical_sector_size, sizeof(md.physical_sector_size)));
            have_physical = true;
        } else if (e.item_id == vhdx_parent_locator_guid) {
            // Bounded above (at most 1 MiB inside the region); decoded once the file parameters are known.
            if (e.length == 0)
                return fail("empty parent locator metadata item");
            md.parent_locator.resize(e.length);
            TRY(read_at(fd, md.parent_locator, regions.metadata_offset + e.offset));
        } else if ((e.flags & vhdx_metadata_flag_required) != 0) {
            return fail("unknown required metadata item {}", guid_text(e.item_id));
        }
    }
    if (!have_params)
        return fail("no file parameters metadata item");
    if (!have_size)
        return fail("no virtual disk size metadata item");
    if (!have_page83)
        return fail("no virtual disk id metadata item");
    if (!have_logical)
        return fail("no logical sector size metadata item");
    if (!have_physical)
        return fail("no physical sector size metadata item");
    if (md.block_size < vhdx_min_block_size || md.block_size > vhdx_max_block_size ||
        (md.block_size & (md.block_size - 1)) != 0)
        return fail("block size {} is not a power of two from 1 MiB to 256 MiB", md.block_size);
    if (md.logical_sector_size != 512 && md.logical_sector_size != 4096)
        return fail("logical sector size {} (must be 512 or 4096)", md.logical_sector_size);
    if (md.physical_sector_size != 512 && md.physical_sector_size != 4096)
        return fail("physical sector size {} (must be 512 or 4096)", md.physical_sector_size);
    if (md.virtual_size == 0 || md.virtual_size > vhdx_max_virtual_size ||
        md.virtual_size % md.logical_sector_size != 0)
        return fail("virtual disk size {} is not a multiple of {} bytes up to 64 TiB", md.virtual_size,
                    md.logical_sector_size);
    // A parent locator without HasParent is ignored: the image is not a differencing one.
    if (md.has_parent() && md.parent_locator.empty())
        return fail("differencing image (HasParent set) without a parent locator metadata item");
    return md;
}

// [MS-VHDX] 2.5: reads the BAT and checks every entry: states valid for the image's type, blocks inside the file,
// clear of the header section, log, BAT and metadata regions and of each other; partially present blocks only
// where their chunk has a sector bitmap block. Differencing images have an entry for every chunk's sector bitmap
// block (the last chunk's too), the others up to the last payload block.
Result<std::vector<uint64_t>> load_bat(int fd, const Regions& regions, const Metadata& md, const VhdxHeader& header,
                                       uint64_t file_size, uint64_t& chunk_ratio_out)
{
    const bool differencing = md.has_parent();
    uint64_t chunk_ratio = vhdx_sectors_per_bitmap_block * md.logical_sector_size / md.block_size;
    uint64_t data_blocks = (md.virtual_size + md.block_size - 1) / md.block_size;
    uint64_t chunks = (data_blocks + chunk_ratio - 1) / chunk_ratio;
    uint64_t total = differencing ? chunks * (chunk_ratio + 1) : data_blocks + (data_blocks - 1) / chunk_ratio;
    if (total > regions.bat_length / sizeof(uint64_t))
        return fail("BAT region ({:#x} bytes) too small for {} entries", regions.bat_length, total);
    std::vector<uint64_t> bat(total);
    TRY(read_at(fd, std::span<uint8_t>(reinterpret_cast<uint8_t*>(bat.data()), total * sizeof(uint64_t)),
                regions.bat_offset));

    const Range fixed[] = {
        {0, vhdx_mib, "header section"},
        {header.log_offset, header.log_length, "log"},
        {regions.bat_offset, regions.bat_length, "BAT"},
        {regions.metadata_offset, regions.metadata_length, "metadata"},
    };
    struct Used {
        uint64_t offset;
        uint64_t length;
    };
    std::vector<Used> used;
    auto check_block = [&](uint64_t i, uint64_t entry, uint64_t offset, uint64_t length) -> Result<void> {
        if (offset < vhdx_mib || offset > file_size || length > file_size - offset)
            return fail("BAT entry {} ({:#018x}): block at {:#x} outside the file ({} bytes)", i, entry, offset,
                        file_size);
        for (const Range& r : fixed)
            if (overlaps(offset, length, r.offset, r.length))
                return fail("BAT entry {} ({:#018x}): block at {:#x} overlaps the {}", i, entry, offset, r.name);
        used.push_back({offset, length});
        return {};
    };
    for (uint64_t i = 0; i < total; ++i) {
        uint64_t entry = bat[i];
        uint64_t state = entry & vhdx_bat_state_mask;
        bool is_sector_bitmap = (i + 1) % (chunk_ratio + 1) == 0;
        uint64_t offset = (entry >> vhdx_bat_offset_shift) * vhdx_mib;
        if ((entry & ((uint64_t{1} << vhdx_bat_offset_shift) - 1) & ~vhdx_bat_state_mask) != 0)
            return fail("BAT entry {} ({:#018x}): reserved bits set", i, entry);
        if (is_sector_bitmap) {
            if (!differencing) {
                if (state != vhdx_sb_not_present || offset != 0)
                    return fail("BAT entry {} ({:#018x}): sector bitmap block in an image without a parent", i,
                                entry);
            } else if (state == vhdx_sb_present) {
                TRY(check_block(i, entry, offset, vhdx_sector_bitmap_block_size));
            } else if (state != vhdx_sb_not_present) {
                return fail("BAT entry {} ({:#018x}): invalid sector bitmap block state {}", i, entry, state);
            }
            continue;
        }
        switch (state) {
        case vhdx_payload_not_present:
        case vhdx_payload_undefined:
        case vhdx_payload_zero:
        case vhdx_payload_unmapped:
            break;
        case vhdx_payload_partially_present: {
            if (!differencing)
                return fail("BAT entry {} ({:#018x}): invalid payload block state {} (partially present) in an "
                            "image without a parent", i, entry, state);
            uint64_t bitmap_entry = bat[i / (chunk_ratio + 1) * (chunk_ratio + 1) + chunk_ratio];
            if ((bitmap_entry & vhdx_bat_state_mask) != vhdx_sb_present)
                return fail("BAT entry {} ({:#018x}): partially present block in a chunk without a sector bitmap "
                            "block", i, entry);
            TRY(check_block(i, entry, offset, md.block_size));
            break;
        }
        case vhdx_payload_fully_present:
            TRY(check_block(i, entry, offset, md.block_size));
            break;
        default:
            return fail("BAT entry {} ({:#018x}): invalid payload block state {}", i, entry, state);
        }
    }
    std::sort(used.begin(), used.end(), [](const Used& a, const Used& b) { return a.offset < b.offset; });
    for (size_t i = 1; i < used.size(); ++i)
        if (used[i].offset - used[i - 1].offset < used[i - 1].length)
            return fail("BAT: blocks at {:#x} and {:#x} overlap", used[i - 1].offset, used[i].offset);
    if (regions.bat_offset != 0 && overlaps(regions.bat_offset, regions.bat_length, header.log_offset,
                                            header.log_length))
        return fail("BAT region overlaps the log");
    if (overlaps(regions.metadata_offset, regions.metadata_length, header.log_offset, header.log_length))
        return fail("metadata region overlaps the log");
    chunk_ratio_out = chunk_ratio;
    return bat;
}

} // namespace

namespace vhdx_detail {

Result<void> write_header(int fd, VhdxHeader header, int slot)
{
    std::vector<uint8_t> buf(sizeof(VhdxHeader));
    header.checksum = 0;
    std::memcpy(buf.data(), &header, sizeof(header));
    store_checksum(buf, offsetof(VhdxHeader, checksum));
    TRY(write_at(fd, buf, slot == 0 ? vhdx_header1_offset : vhdx_header2_offset));
    if (::fdatasync(fd) != 0)
        return errno_failure("fdatasync");
    return {};
}

} // namespace vhdx_detail

namespace vhdx_detail {

Result<std::unique_ptr<VhdxDisk>> open_image(const std::string& path, bool read_only, OpenChain& chain)
{
    auto open = [&]() -> Result<std::unique_ptr<VhdxDisk>> {
        // O_NONBLOCK: a hostile locator may name a FIFO, whose open would wait for a writer.
        UniqueFd fd(::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK));
        if (!fd.valid())
            return errno_failure("open");
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0)
            return errno_failure("fstat");
        if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
            return fail("not a regular file");
        for (const OpenChain::Identity& f : chain.files)
            if (f.dev == st.st_dev && f.ino == st.st_ino)
                return fail("differencing chain loops back to this file");
        if (chain.files.size() >= vhdx_max_chain_depth)
            return fail("differencing chain deeper than {} images", vhdx_max_chain_depth);
        int flags = ::fcntl(fd.get(), F_GETFL);
        if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
            return errno_failure("fcntl");
        uint64_t file_size = static_cast<uint64_t>(st.st_size);
        if (file_size < vhdx_mib)
            return fail("file of {} bytes is too small to be a VHDX image", file_size);

        VhdxFileIdentifier id;
        TRY(read_at(fd.get(), std::span<uint8_t>(reinterpret_cast<uint8_t*>(&id), sizeof(id)), 0));
        if (id.signature != vhdx_file_signature)
            return fail("not a VHDX image (no \"vhdxfile\" signature)");

        ParsedHeader current = TRY(choose_header(fd.get(), file_size));
        // Region tables are checked before any replay (nothing is written to a file that fails validation), and
        // again after it: the log may move the BAT region (resizing).
        Regions regions = TRY(choose_region_table(fd.get(), file_size));
        if (!current.header.log_guid.is_zero()) {
            if (read_only)
                return fail("the log has entries to replay (log GUID {}); open the image read-write once",
                            guid_text(current.header.log_guid));
            TRY_CTX(replay_log(fd.get(), current.header, current.index, file_size), "replaying the log");
            current = TRY(choose_header(fd.get(), file_size));
            regions = TRY(choose_region_table(fd.get(), file_size));
        }

        Metadata md = TRY(parse_metadata(fd.get(), regions));
        std::optional<ParentLocator> locator;
        if (md.has_parent())
            locator = TRY_CTX(parse_parent_locator(md.parent_locator), "parent locator");
        ImageState state;
        state.bat = TRY(load_bat(fd.get(), regions, md, current.header, file_size, state.chunk_ratio));

        DiskInfo& info = state.info;
        info.format = DiskFormat::Vhdx;
        info.type = md.has_parent()                                            ? DiskType::Differencing
                    : (md.flags & vhdx_params_leave_blocks_allocated) != 0 ? DiskType::Fixed
                                                                             : DiskType::Dynamic;
        info.virtual_size = md.virtual_size;
        info.file_size = file_size;
        info.logical_sector_size = md.logical_sector_size;
        info.physical_sector_size = md.physical_sector_size;
        info.block_size = info.type == DiskType::Fixed ? 0 : md.block_size;
        info.identifier = guid_text(md.page83);
        if (locator) {
            chain.files.push_back({st.st_dev, st.st_ino});
            auto parent = open_parent(path, *locator, md.virtual_size, md.logical_sector_size, chain);
            chain.files.pop_back();
            if (!parent)
                return fail(std::move(parent).error());
            state.parent = std::move(parent->disk);
            info.parent_path = std::move(parent->path);
        }
        state.fd = std::move(fd);
        state.read_only = read_only;
        state.header = current.header;
        state.header_index = current.index;
        state.block_size = md.block_size;
        state.bat_offset = regions.bat_offset;
        state.bat_length = regions.bat_length;
        state.metadata_offset = regions.metadata_offset;
        state.metadata_length = regions.metadata_length;
        state.size_item_offset = regions.metadata_offset + md.virtual_size_offset;
        state.other_regions = std::move(regions.others);
        state.disk_id = md.page83;
        return std::make_unique<VhdxDisk>(std::move(state));
    };
    return TRY_CTX(open(), "opening VHDX image {}", path);
}

} // namespace vhdx_detail

Result<std::unique_ptr<BlockDevice>> open_vhdx(const std::string& path, bool read_only)
{
    OpenChain chain;
    return std::unique_ptr<BlockDevice>(TRY(open_image(path, read_only, chain)));
}

} // namespace vmgen::vm::disk
