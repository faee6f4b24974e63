// VHD (Virtual Hard Disk) image format: the hard disk footer, the dynamic disk header, parent locators and
// the block allocation table.
// Reference: Microsoft, "Virtual Hard Disk Image Format Specification", version 1.0 (October 2006):
// "Hard Disk Footer Format", "Dynamic Disk Header Format", "Block Allocation Table and Data Blocks",
// "Appendix: CHS Calculation", "Implementing a Differencing Hard Disk".
//
// Every multi-byte field is big-endian: the structs hold the wire bytes, read them with be_load() and write
// them with be_store(). The structs have their wire sizes without packing (static_asserts below); copy them
// in and out of file buffers with memcpy.
//
// Layout: a fixed disk is the disk's bytes followed by the 512-byte footer. A dynamic or differencing disk is:
// footer copy (offset 0), dynamic header (at footer.data_offset, 1024 bytes), BAT (at header.table_offset,
// max_table_entries big-endian u32 sector numbers, 0xFFFFFFFF = block not allocated, padded to 512), data
// blocks (each a sector bitmap padded to 512 bytes followed by block_size data bytes; bit set (MSB first) =
// sector present in this file), then the footer in the last 512 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace vmgen::protocols::disk {

inline constexpr uint32_t vhd_sector_size = 512;

// Big-endian helpers for the wire structs (any unsigned integer type).
template <typename T> constexpr T be_load(T wire)
{
    if constexpr (sizeof(T) == 1)
        return wire;
    else if constexpr (sizeof(T) == 2)
        return static_cast<T>(__builtin_bswap16(wire));
    else if constexpr (sizeof(T) == 4)
        return static_cast<T>(__builtin_bswap32(wire));
    else
        return static_cast<T>(__builtin_bswap64(wire));
}
template <typename T> constexpr T be_store(T value)
{
    return be_load(value);
}

// "Hard Disk Footer Format". Also copied to offset 0 of dynamic and differencing disks.
struct VhdFooter {
    char cookie[8]; // "conectix"
    uint32_t features; // bit 1 (reserved) must be set; bit 0: temporary
    uint32_t file_format_version; // 0x00010000
    uint64_t data_offset; // dynamic header offset; 0xFFFFFFFFFFFFFFFF for fixed disks
    uint32_t timestamp; // seconds since 2000-01-01 00:00:00 UTC
    char creator_application[4];
    uint32_t creator_version;
    uint32_t creator_host_os; // "Wi2k" 0x5769326B, "Mac " 0x4D616320
    uint64_t original_size; // bytes at creation
    uint64_t current_size; // bytes the guest sees
    uint16_t cylinders; // disk geometry
    uint8_t heads;
    uint8_t sectors_per_track;
    uint32_t disk_type; // vhd_type_*
    uint32_t checksum; // one's complement of the byte sum of the footer without this field
    uint8_t unique_id[16];
    uint8_t saved_state;
    uint8_t reserved[427];
};
static_assert(sizeof(VhdFooter) == 512);
static_assert(offsetof(VhdFooter, data_offset) == 16);
static_assert(offsetof(VhdFooter, timestamp) == 24);
static_assert(offsetof(VhdFooter, original_size) == 40);
static_assert(offsetof(VhdFooter, current_size) == 48);
static_assert(offsetof(VhdFooter, cylinders) == 56);
static_assert(offsetof(VhdFooter, disk_type) == 60);
static_assert(offsetof(VhdFooter, checksum) == 64);
static_assert(offsetof(VhdFooter, unique_id) == 68);
static_assert(offsetof(VhdFooter, saved_state) == 84);

inline constexpr char vhd_footer_cookie[8] = { 'c', 'o', 'n', 'e', 'c', 't', 'i', 'x' };
inline constexpr uint32_t vhd_features_reserved = 0x2;
inline constexpr uint32_t vhd_file_format_version = 0x00010000;
inline constexpr uint64_t vhd_no_data_offset = ~0ull;
inline constexpr uint32_t vhd_host_os_windows = 0x5769326B; // "Wi2k"
inline constexpr uint32_t vhd_type_fixed = 2;
inline constexpr uint32_t vhd_type_dynamic = 3;
inline constexpr uint32_t vhd_type_differencing = 4;
// Seconds from the Unix epoch to the VHD epoch (2000-01-01 00:00:00 UTC).
inline constexpr uint64_t vhd_epoch_unix_seconds = 946684800;

// "Dynamic Disk Header Format": parent locator entry.
struct VhdParentLocator {
    uint32_t platform_code; // vhd_locator_*
    uint32_t platform_data_space; // bytes reserved (the spec says sectors; Windows writes bytes)
    uint32_t platform_data_length; // bytes of locator data
    uint32_t reserved;
    uint64_t platform_data_offset; // absolute file offset of the locator data
};
static_assert(sizeof(VhdParentLocator) == 24);
inline constexpr uint32_t vhd_locator_none = 0;
inline constexpr uint32_t vhd_locator_w2ru = 0x57327275; // "W2ru": relative Windows path, UTF-16LE
inline constexpr uint32_t vhd_locator_w2ku = 0x57326B75; // "W2ku": absolute Windows path, UTF-16LE
inline constexpr uint32_t vhd_locator_macx = 0x4D616358; // "MacX": file:// URL, UTF-8

// "Dynamic Disk Header Format".
struct VhdDynamicHeader {
    char cookie[8]; // "cxsparse"
    uint64_t data_offset; // 0xFFFFFFFFFFFFFFFF (unused)
    uint64_t table_offset;
    uint32_t header_version; // 0x00010000
    uint32_t max_table_entries;
    uint32_t block_size; // data bytes per block, a power of two (default 2 MiB)
    uint32_t checksum; // as the footer's, over these 1024 bytes
    uint8_t parent_unique_id[16];
    uint32_t parent_timestamp;
    uint32_t reserved1;
    uint16_t parent_unicode_name[256]; // UTF-16BE
    VhdParentLocator parent_locators[8];
    uint8_t reserved2[256];
};
static_assert(sizeof(VhdDynamicHeader) == 1024);
static_assert(offsetof(VhdDynamicHeader, table_offset) == 16);
static_assert(offsetof(VhdDynamicHeader, max_table_entries) == 28);
static_assert(offsetof(VhdDynamicHeader, block_size) == 32);
static_assert(offsetof(VhdDynamicHeader, checksum) == 36);
static_assert(offsetof(VhdDynamicHeader, parent_unique_id) == 40);
static_assert(offsetof(VhdDynamicHeader, parent_timestamp) == 56);
static_assert(offsetof(VhdDynamicHeader, parent_unicode_name) == 64);
static_assert(offsetof(VhdDynamicHeader, parent_locators) == 576);
static_assert(offsetof(VhdDynamicHeader, reserved2) == 768);

inline constexpr char vhd_dynamic_cookie[8] = { 'c', 'x', 's', 'p', 'a', 'r', 's', 'e' };
inline constexpr uint32_t vhd_header_version = 0x00010000;
inline constexpr uint32_t vhd_default_block_size = 2 * 1024 * 1024;
inline constexpr uint32_t vhd_bat_unallocated = 0xFFFFFFFF;

// The footer/header checksum: one's complement of the sum of all bytes, the checksum field counted as zero.
constexpr uint32_t vhd_checksum(std::span<const uint8_t> bytes, size_t checksum_offset)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < bytes.size(); ++i) {
        if (i >= checksum_offset && i < checksum_offset + 4)
            continue;
        sum += bytes[i];
    }
    return ~sum;
}

// "Appendix: CHS Calculation": the geometry for a disk of `total_sectors` 512-byte sectors.
struct VhdGeometry {
    uint16_t cylinders;
    uint8_t heads;
    uint8_t sectors_per_track;
};
constexpr VhdGeometry vhd_geometry(uint64_t total_sectors)
{
    constexpr uint64_t max_sectors = 65535ull * 16 * 255;
    if (total_sectors > max_sectors)
        total_sectors = max_sectors;
    uint64_t sectors_per_track = 0;
    uint64_t heads = 0;
    uint64_t cylinder_times_heads = 0;
    if (total_sectors >= 65535ull * 16 * 63) {
        sectors_per_track = 255;
        heads = 16;
        cylinder_times_heads = total_sectors / sectors_per_track;
    } else {
        sectors_per_track = 17;
        cylinder_times_heads = total_sectors / sectors_per_track;
        heads = (cylinder_times_heads + 1023) / 1024;
        if (heads < 4)
            heads = 4;
        if (cylinder_times_heads >= heads * 1024 || heads > 16) {
            sectors_per_track = 31;
            heads = 16;
            cylinder_times_heads = total_sectors / sectors_per_track;
        }
        if (cylinder_times_heads >= heads * 1024) {
            sectors_per_track = 63;
            heads = 16;
            cylinder_times_heads = total_sectors / sectors_per_track;
        }
    }
    return VhdGeometry { static_cast<uint16_t>(cylinder_times_heads / heads), static_cast<uint8_t>(heads),
        static_cast<uint8_t>(sectors_per_track) };
}
static_assert(vhd_geometry(131072).cylinders == 963 && vhd_geometry(131072).heads == 8
    && vhd_geometry(131072).sectors_per_track == 17);

// Largest virtual size the format allows (the spec's limit of 2040 GiB; larger sizes exceed the CHS range).
inline constexpr uint64_t vhd_max_size = 2040ull * 1024 * 1024 * 1024;

} // namespace vmgen::protocols::disk
