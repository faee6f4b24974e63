// Creating VHDX images ([MS-VHDX] 2.1 layout). Our layout: header section at 0 (file identifier, two headers,
// two identical region tables), a 1 MiB log at 1 MiB, the metadata region (1 MiB) at 2 MiB, the BAT at 3 MiB
// (rounded up to 1 MiB), then payload blocks. Fixed images have every payload block fully present in order
// after the BAT (space reserved with fallocate where the file system can); dynamic and differencing images start
// empty (differencing: every block not present, so the parent's; the BAT has every chunk's sector bitmap entry).
#include "protocols/disk/vhdx.h"
#include "support/errno_error.h"
#include "support/unique_fd.h"
#include "vm/disk/vhdx/vhdx.h"
#include "vm/disk/vhdx/vhdx_internal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace vmgen::vm::disk {

using namespace vmgen::protocols::disk;
using namespace vhdx_detail;

namespace {

constexpr uint64_t log_offset = 1 * vhdx_mib;
constexpr uint64_t log_length = 1 * vhdx_mib;
constexpr uint64_t metadata_offset = 2 * vhdx_mib;
constexpr uint64_t metadata_length = 1 * vhdx_mib;
constexpr uint64_t bat_offset = 3 * vhdx_mib;
constexpr uint32_t default_block_size = 32 << 20;

template <typename T>
void put(std::vector<uint8_t>& buf, size_t offset, const T& value)
{
    std::memcpy(buf.data() + offset, &value, sizeof(T));
}

Result<void> create(int fd, const CreateParams& p)
{
    const bool differencing = !p.parent_locator.empty();
    const uint64_t size = p.size;
    const uint32_t block_size = p.block_size;
    uint64_t chunk_ratio = vhdx_sectors_per_bitmap_block * p.logical_sector_size / block_size;
    uint64_t data_blocks = (size + block_size - 1) / block_size;
    uint64_t chunks = (data_blocks + chunk_ratio - 1) / chunk_ratio;
    uint64_t total_entries = differencing ? chunks * (chunk_ratio + 1) : data_blocks + (data_blocks - 1) / chunk_ratio;
    uint64_t bat_length = (total_entries * sizeof(uint64_t) + vhdx_mib - 1) / vhdx_mib * vhdx_mib;
    if (bat_length > UINT32_MAX)
        return fail("BAT of {} bytes is too large", bat_length);
    uint64_t data_offset = bat_offset + bat_length;
    bool fixed = p.fixed;
    uint64_t file_size = fixed ? data_offset + data_blocks * block_size : data_offset;

    std::vector<uint8_t> head(vhdx_mib);
    // 2.2.1 File type identifier.
    put(head, 0, vhdx_file_signature);
    const char creator[] = "vmgen";
    for (size_t i = 0; i + 1 < sizeof(creator); ++i)
        put<uint16_t>(head, 8 + 2 * i, static_cast<uint16_t>(creator[i]));
    // 2.2.2 Headers (sequence numbers 1 and 2: the second is current).
    VhdxHeader h{};
    h.signature = vhdx_header_signature;
    h.file_write_guid = TRY(random_guid());
    h.data_write_guid = TRY(random_guid());
    h.log_version = vhdx_log_version;
    h.version = vhdx_version;
    h.log_length = static_cast<uint32_t>(log_length);
    h.log_offset = log_offset;
    for (uint64_t slot = 0; slot < 2; ++slot) {
        h.sequence_number = slot + 1;
        uint64_t at = slot == 0 ? vhdx_header1_offset : vhdx_header2_offset;
        put(head, at, h);
        store_checksum(std::span<uint8_t>(head).subspan(at, sizeof(VhdxHeader)), offsetof(VhdxHeader, checksum));
    }
    // 2.2.3 Region tables.
    for (uint64_t at : {vhdx_region_table1_offset, vhdx_region_table2_offset}) {
        put(head, at, VhdxRegionTableHeader{vhdx_region_signature, 0, 2, 0});
        put(head, at + 16,
            VhdxRegionTableEntry{vhdx_bat_region_guid, bat_offset, static_cast<uint32_t>(bat_length),
                                 vhdx_region_flag_required});
        put(head, at + 48,
            VhdxRegionTableEntry{vhdx_metadata_region_guid, metadata_offset, static_cast<uint32_t>(metadata_length),
                                 vhdx_region_flag_required});
        store_checksum(std::span<uint8_t>(head).subspan(at, vhdx_region_table_size),
                       offsetof(VhdxRegionTableHeader, checksum));
    }

    // 2.6 Metadata: table, then the items from 64 KiB on (the parent locator from 64 KiB + 64).
    constexpr uint32_t locator_at = 64;
    const uint64_t items_length = (locator_at + p.parent_locator.size() + 4095) / 4096 * 4096;
    if (vhdx_metadata_table_size + items_length > metadata_length)
        return fail("parent locator of {} bytes does not fit in the metadata region", p.parent_locator.size());
    std::vector<uint8_t> meta(vhdx_metadata_table_size + items_length);
    VhdxMetadataTableHeader mh{};
    mh.signature = vhdx_metadata_signature;
    mh.entry_count = differencing ? 6 : 5;
    put(meta, 0, mh);
    constexpr uint32_t required = vhdx_metadata_flag_required;
    constexpr uint32_t disk_required = vhdx_metadata_flag_required | vhdx_metadata_flag_virtual_disk;
    auto base = static_cast<uint32_t>(vhdx_metadata_table_size);
    const VhdxMetadataTableEntry entries[] = {
        {vhdx_file_parameters_guid, base, 8, required, 0},
        {vhdx_virtual_disk_size_guid, base + 8, 8, disk_required, 0},
        {vhdx_page83_guid, base + 16, 16, disk_required, 0},
        {vhdx_logical_sector_size_guid, base + 32, 4, disk_required, 0},
        {vhdx_physical_sector_size_guid, base + 36, 4, disk_required, 0},
        {vhdx_parent_locator_guid, base + locator_at, static_cast<uint32_t>(p.parent_locator.size()), required, 0},
    };
    for (size_t i = 0; i < mh.entry_count; ++i)
        put(meta, sizeof(mh) + i * sizeof(VhdxMetadataTableEntry), entries[i]);
    uint32_t flags = differencing ? vhdx_params_has_parent : fixed ? vhdx_params_leave_blocks_allocated : 0U;
    put(meta, base, VhdxFileParameters{block_size, flags});
    put(meta, base + 8, size);
    put(meta, base + 16, p.disk_id ? *p.disk_id : TRY(random_guid()));
    put(meta, base + 32, p.logical_sector_size);
    put(meta, base + 36, p.physical_sector_size);
    std::copy(p.parent_locator.begin(), p.parent_locator.end(), meta.begin() + base + locator_at);

    // 2.5 BAT.
    std::vector<uint64_t> bat(total_entries);
    if (fixed) {
        for (uint64_t b = 0; b < data_blocks; ++b)
            bat[b + b / chunk_ratio] = (data_offset + b * block_size) | vhdx_payload_fully_present;
    }

    if (::ftruncate(fd, static_cast<off_t>(file_size)) != 0)
        return errno_failure("sizing the file");
    if (fixed) {
        int err = ::posix_fallocate(fd, static_cast<off_t>(data_offset), static_cast<off_t>(file_size - data_offset));
        if (err != 0 && err != EOPNOTSUPP && err != EINVAL)
            return errno_failure("reserving space", err);
    }
    TRY(write_at(fd, meta, metadata_offset));
    TRY(write_at(fd,
                 std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bat.data()), bat.size() * sizeof(uint64_t)),
                 bat_offset));
    // The header section goes last: until it is there, the file is not a VHDX image.
    if (::fdatasync(fd) != 0)
        return errno_failure("fdatasync");
    TRY(write_at(fd, head, 0));
    if (::fdatasync(fd) != 0)
        return errno_failure("fdatasync");
    return {};
}

} // namespace

namespace vhdx_detail {

Result<void> create_image_file(const std::string& path, const CreateParams& params)
{
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid())
        return errno_failure("open");
    auto r = create(fd.get(), params);
    if (!r)
        ::unlink(path.c_str());
    return r;
}

} // namespace vhdx_detail

Result<void> create_vhdx(const std::string& path, uint64_t size, DiskType type, uint32_t block_size,
                         uint32_t logical_sector_size)
{
    auto make = [&]() -> Result<void> {
        if (type == DiskType::Differencing)
            return fail("differencing images are made with create_vhdx_differencing");
        if (block_size == 0)
            block_size = default_block_size;
        if (block_size < vhdx_min_block_size || block_size > vhdx_max_block_size ||
            (block_size & (block_size - 1)) != 0)
            return fail("block size {} is not a power of two from 1 MiB to 256 MiB", block_size);
        if (logical_sector_size != 512 && logical_sector_size != 4096)
            return fail("logical sector size {} (must be 512 or 4096)", logical_sector_size);
        if (size == 0 || size > vhdx_max_virtual_size || size % logical_sector_size != 0)
            return fail("size {} is not a non-zero multiple of {} bytes up to 64 TiB", size, logical_sector_size);
        CreateParams params;
        params.size = size;
        params.block_size = block_size;
        params.logical_sector_size = logical_sector_size;
        params.fixed = type == DiskType::Fixed;
        return create_image_file(path, params);
    };
    TRY_CTX(make(), "creating VHDX image {}", path);
    return {};
}

} // namespace vmgen::vm::disk
