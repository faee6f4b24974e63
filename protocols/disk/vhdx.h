// VHDX: the on-disk structures of the Hyper-V virtual hard disk v2 format.
// Reference: Microsoft [MS-VHDX] "Virtual Hard Disk v2 (VHDX) File Format" v20240423 (section numbers below).
//
// Layout (2.1): the first 1 MiB is the header section: file type identifier at 0, header 1 at 64 KiB,
// header 2 at 128 KiB, region table 1 at 192 KiB, region table 2 at 256 KiB (each 64 KiB). Regions (BAT,
// metadata), the log and payload/sector bitmap blocks lie at 1 MiB-aligned offsets after it.
//
// All fields little-endian; the structures have their wire sizes without packing (static_asserts below);
// copy them in and out of file buffers with memcpy. Checksums are CRC-32C (Castagnoli) over the structure's
// whole span (header: 4 KiB, region table: 64 KiB, log entry: entry_length) with the checksum field zeroed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmgen::protocols::disk {

inline constexpr uint64_t vhdx_kib = 1024;
inline constexpr uint64_t vhdx_mib = 1024 * 1024;

// 2.2.x GUID: stored as {Data1 (LE u32), Data2 (LE u16), Data3 (LE u16), Data4[8]}.
struct VhdxGuid {
    uint32_t data1;
    uint16_t data2;
    uint16_t data3;
    uint8_t data4[8];

    friend constexpr bool operator==(const VhdxGuid&, const VhdxGuid&) = default;
    [[nodiscard]] constexpr bool is_zero() const { return *this == VhdxGuid{}; }
};
static_assert(sizeof(VhdxGuid) == 16);

// 2.2.1 File Type Identifier, at offset 0 (the structure is 64 KiB; only these bytes are defined).
struct VhdxFileIdentifier {
    uint64_t signature; // "vhdxfile"
    uint16_t creator[256]; // UTF-16 name of the creating application, informational
};
static_assert(sizeof(VhdxFileIdentifier) == 520);
inline constexpr uint64_t vhdx_file_signature = 0x656C696678646876ULL; // "vhdxfile"

// 2.2.2 Headers: two copies at 64 KiB and 128 KiB; the valid one with the greater sequence number is current.
struct VhdxHeader {
    uint32_t signature; // "head"
    uint32_t checksum;  // CRC-32C over the 4 KiB header
    uint64_t sequence_number;
    VhdxGuid file_write_guid; // changed before the first write to the file of each open
    VhdxGuid data_write_guid; // changed before the first user-visible data change of each open
    VhdxGuid log_guid;        // zero: the log is empty; else the log entries with this GUID must be replayed
    uint16_t log_version;     // 0
    uint16_t version;         // 1
    uint32_t log_length;      // multiple of 1 MiB
    uint64_t log_offset;      // multiple of 1 MiB, >= 1 MiB
    uint8_t reserved[4016];
};
static_assert(sizeof(VhdxHeader) == 4096);
static_assert(offsetof(VhdxHeader, checksum) == 4);
static_assert(offsetof(VhdxHeader, sequence_number) == 8);
static_assert(offsetof(VhdxHeader, log_guid) == 48);
static_assert(offsetof(VhdxHeader, log_version) == 64);
static_assert(offsetof(VhdxHeader, log_length) == 68);
static_assert(offsetof(VhdxHeader, log_offset) == 72);
inline constexpr uint32_t vhdx_header_signature = 0x64616568; // "head"
inline constexpr uint64_t vhdx_header1_offset = 64 * vhdx_kib;
inline constexpr uint64_t vhdx_header2_offset = 128 * vhdx_kib;
inline constexpr uint16_t vhdx_version = 1;
inline constexpr uint16_t vhdx_log_version = 0;

// 2.2.3 Region Table: two copies at 192 KiB and 256 KiB, each 64 KiB; checksum over the 64 KiB.
struct VhdxRegionTableHeader {
    uint32_t signature; // "regi"
    uint32_t checksum;
    uint32_t entry_count; // <= 2047
    uint32_t reserved;
};
static_assert(sizeof(VhdxRegionTableHeader) == 16);
inline constexpr uint32_t vhdx_region_signature = 0x69676572; // "regi"
inline constexpr uint64_t vhdx_region_table1_offset = 192 * vhdx_kib;
inline constexpr uint64_t vhdx_region_table2_offset = 256 * vhdx_kib;
inline constexpr uint64_t vhdx_region_table_size = 64 * vhdx_kib;
inline constexpr uint32_t vhdx_region_max_entries = 2047;

// 2.2.3.2 Region Table Entry.
struct VhdxRegionTableEntry {
    VhdxGuid guid;
    uint64_t file_offset; // multiple of 1 MiB, >= 1 MiB
    uint32_t length;      // multiple of 1 MiB
    uint32_t flags;       // bit 0: required (refuse the file if the region is unknown)
};
static_assert(sizeof(VhdxRegionTableEntry) == 32);
static_assert(offsetof(VhdxRegionTableEntry, file_offset) == 16);
inline constexpr uint32_t vhdx_region_flag_required = 1;
// 2DC27766-F623-4200-9D64-115E9BFD4A08
inline constexpr VhdxGuid vhdx_bat_region_guid{
    0x2DC27766, 0xF623, 0x4200, {0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08}};
// 8B7CA206-4790-4B9A-B8FE-575F050F886E
inline constexpr VhdxGuid vhdx_metadata_region_guid{
    0x8B7CA206, 0x4790, 0x4B9A, {0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E}};

// 2.2.4 Log: a circular buffer of entries (multiples of 4 KiB) inside [log_offset, log_offset + log_length).
// 2.3.1.1 Log Entry Header.
struct VhdxLogEntryHeader {
    uint32_t signature; // "loge"
    uint32_t checksum;  // CRC-32C over entry_length bytes
    uint32_t entry_length; // multiple of 4 KiB
    uint32_t tail;         // log offset of the oldest entry still needed (the sequence's first)
    uint64_t sequence_number;
    uint32_t descriptor_count;
    uint32_t reserved;
    VhdxGuid log_guid;
    uint64_t flushed_file_offset; // file size that was durable when this entry was written
    uint64_t last_file_offset;    // file size the entry's writes need
};
static_assert(sizeof(VhdxLogEntryHeader) == 64);
static_assert(offsetof(VhdxLogEntryHeader, log_guid) == 32);
static_assert(offsetof(VhdxLogEntryHeader, flushed_file_offset) == 48);
inline constexpr uint32_t vhdx_log_entry_signature = 0x65676F6C; // "loge"
inline constexpr uint64_t vhdx_log_sector_size = 4096;

// 2.3.1.2 Zero Descriptor: zero_length bytes at file_offset become zero.
struct VhdxLogZeroDescriptor {
    uint32_t signature; // "zero"
    uint32_t reserved;
    uint64_t zero_length; // multiple of 4 KiB
    uint64_t file_offset; // multiple of 4 KiB
    uint64_t sequence_number; // equals the entry's
};
static_assert(sizeof(VhdxLogZeroDescriptor) == 32);
inline constexpr uint32_t vhdx_log_zero_signature = 0x6F72657A; // "zero"

// 2.3.1.3 Data Descriptor: one 4 KiB sector at file_offset; its contents are leading_bytes (8 bytes), the
// data sector's 4084 data bytes, then trailing_bytes (4 bytes).
struct VhdxLogDataDescriptor {
    uint32_t signature; // "desc"
    uint32_t trailing_bytes;
    uint64_t leading_bytes;
    uint64_t file_offset; // multiple of 4 KiB
    uint64_t sequence_number;
};
static_assert(sizeof(VhdxLogDataDescriptor) == 32);
inline constexpr uint32_t vhdx_log_desc_signature = 0x63736564; // "desc"
inline constexpr size_t vhdx_log_descriptor_size = 32;

// 2.3.1.4 Data Sector: follows the descriptor sectors, one per data descriptor, in order.
struct VhdxLogDataSector {
    uint32_t signature; // "data"
    uint32_t sequence_high; // high 32 bits of the entry's sequence number
    uint8_t data[4084];
    uint32_t sequence_low;
};
static_assert(sizeof(VhdxLogDataSector) == 4096);
static_assert(offsetof(VhdxLogDataSector, sequence_low) == 4092);
inline constexpr uint32_t vhdx_log_data_signature = 0x61746164; // "data"

// 2.5 BAT: 64-bit entries; state in bits 2:0, file offset in MiB in bits 63:20. Payload block entries and
// sector bitmap entries are interleaved: after every chunk_ratio payload entries comes one sector bitmap entry,
// chunk_ratio = 2^23 * logical_sector_size / block_size.
inline constexpr uint64_t vhdx_bat_state_mask = 0x7;
inline constexpr unsigned vhdx_bat_offset_shift = 20;
// 2.5.1.1 Payload BAT entry states.
inline constexpr uint64_t vhdx_payload_not_present = 0;
inline constexpr uint64_t vhdx_payload_undefined = 1;
inline constexpr uint64_t vhdx_payload_zero = 2;
inline constexpr uint64_t vhdx_payload_unmapped = 3;
inline constexpr uint64_t vhdx_payload_fully_present = 6;
inline constexpr uint64_t vhdx_payload_partially_present = 7; // differencing only
// 2.5.1.2 Sector bitmap BAT entry states.
inline constexpr uint64_t vhdx_sb_not_present = 0;
inline constexpr uint64_t vhdx_sb_present = 6;

// 2.6.1.1 Metadata Table Header: at the start of the metadata region, the table is 64 KiB.
struct VhdxMetadataTableHeader {
    uint64_t signature; // "metadata"
    uint16_t reserved;
    uint16_t entry_count; // <= 2047
    uint32_t reserved2[5];
};
static_assert(sizeof(VhdxMetadataTableHeader) == 32);
static_assert(offsetof(VhdxMetadataTableHeader, entry_count) == 10);
inline constexpr uint64_t vhdx_metadata_signature = 0x617461646174656DULL; // "metadata"
inline constexpr uint64_t vhdx_metadata_table_size = 64 * vhdx_kib;
inline constexpr uint32_t vhdx_metadata_max_entries = 2047;

// 2.6.1.2 Metadata Table Entry. offset is relative to the metadata region, >= 64 KiB unless length is 0.
struct VhdxMetadataTableEntry {
    VhdxGuid item_id;
    uint32_t offset;
    uint32_t length; // <= 1 MiB
    uint32_t flags;  // bit 0 IsUser, bit 1 IsVirtualDisk, bit 2 IsRequired
    uint32_t reserved;
};
static_assert(sizeof(VhdxMetadataTableEntry) == 32);
static_assert(offsetof(VhdxMetadataTableEntry, flags) == 24);
inline constexpr uint32_t vhdx_metadata_flag_user = 1;
inline constexpr uint32_t vhdx_metadata_flag_virtual_disk = 2;
inline constexpr uint32_t vhdx_metadata_flag_required = 4;

// 2.6.2.1 File Parameters: CAA16737-FA36-4D43-B3B6-33F0AA44E76B.
struct VhdxFileParameters {
    uint32_t block_size; // 1 MiB .. 256 MiB, power of two
    uint32_t flags;      // bit 0 LeaveBlocksAllocated (fixed), bit 1 HasParent (differencing)
};
static_assert(sizeof(VhdxFileParameters) == 8);
inline constexpr uint32_t vhdx_params_leave_blocks_allocated = 1;
inline constexpr uint32_t vhdx_params_has_parent = 2;
inline constexpr VhdxGuid vhdx_file_parameters_guid{
    0xCAA16737, 0xFA36, 0x4D43, {0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B}};
// 2.6.2.2 Virtual Disk Size (u64): 2FA54224-CD1B-4876-B211-5DBED83BF4B8.
inline constexpr VhdxGuid vhdx_virtual_disk_size_guid{
    0x2FA54224, 0xCD1B, 0x4876, {0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8}};
// 2.6.2.3 Virtual Disk ID (page 83 data, a GUID): BECA12AB-B2E6-4523-93EF-C309E000C746.
inline constexpr VhdxGuid vhdx_page83_guid{
    0xBECA12AB, 0xB2E6, 0x4523, {0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46}};
// 2.6.2.4 Logical Sector Size (u32, 512 or 4096): 8141BF1D-A96F-4709-BA47-F233A8FAAB5F.
inline constexpr VhdxGuid vhdx_logical_sector_size_guid{
    0x8141BF1D, 0xA96F, 0x4709, {0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F}};
// 2.6.2.5 Physical Sector Size (u32, 512 or 4096): CDA348C7-445D-4471-9CC9-E9885251C556.
inline constexpr VhdxGuid vhdx_physical_sector_size_guid{
    0xCDA348C7, 0x445D, 0x4471, {0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56}};
// 2.6.2.6 Parent Locator: A8D35F2D-B30B-454D-ABF7-D3D84834AB0C.
inline constexpr VhdxGuid vhdx_parent_locator_guid{
    0xA8D35F2D, 0xB30B, 0x454D, {0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C}};

// 2.6.2.6.1 Parent Locator Header: the item starts with it, then key_value_count entries (2.6.2.6.2). Keys and
// values are UTF-16LE strings (no terminating NUL) at byte offsets relative to the start of the item.
struct VhdxParentLocatorHeader {
    VhdxGuid locator_type;
    uint16_t reserved;
    uint16_t key_value_count;
};
static_assert(sizeof(VhdxParentLocatorHeader) == 20);
static_assert(offsetof(VhdxParentLocatorHeader, key_value_count) == 18);

// 2.6.2.6.2 Parent Locator Entry: offsets and lengths are non-zero, in bytes.
struct VhdxParentLocatorEntry {
    uint32_t key_offset;
    uint32_t value_offset;
    uint16_t key_length;
    uint16_t value_length;
};
static_assert(sizeof(VhdxParentLocatorEntry) == 12);
static_assert(offsetof(VhdxParentLocatorEntry, key_length) == 8);

// 2.6.2.6.3 VHDX parent locator type: B04AEFB7-D19E-4A81-B789-25B8E9445913. Keys: parent_linkage (the parent's
// DataWriteGuid as "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}", required), parent_linkage2 (an alternative one),
// relative_path, volume_path, absolute_win32_path (Windows paths with backslash separators; at least one present).
inline constexpr VhdxGuid vhdx_parent_locator_type_vhdx{
    0xB04AEFB7, 0xD19E, 0x4A81, {0xB7, 0x89, 0x25, 0xB8, 0xE9, 0x44, 0x59, 0x13}};

// 2.4 Sector bitmap blocks: 1 MiB each, one bit per logical sector (1: in this file, 0: in the parent), so one
// block covers a chunk of 2^23 sectors.
inline constexpr uint64_t vhdx_sector_bitmap_block_size = vhdx_mib;
inline constexpr uint64_t vhdx_sectors_per_bitmap_block = uint64_t{1} << 23;

inline constexpr uint32_t vhdx_min_block_size = 1 << 20;
inline constexpr uint32_t vhdx_max_block_size = 256 << 20;
inline constexpr uint64_t vhdx_max_virtual_size = 64ULL << 40; // 64 TiB

} // namespace vmgen::protocols::disk
