// SCSI block commands: the CDBs and data of a direct-access block device (a disk).
// References: T10 SBC-3 (INCITS 514) / SBC-4, sections "READ (10)" .. "READ (16)", "WRITE (10)" .. "WRITE (16)",
// "VERIFY (10)/(16)", "SYNCHRONIZE CACHE (10)/(16)", "UNMAP command" (UNMAP parameter list, UNMAP block descriptor),
// "WRITE SAME (10)/(16)", "READ CAPACITY (10)/(16)" (parameter data), "START STOP UNIT", "PREVENT ALLOW MEDIUM
// REMOVAL", "Caching mode page", "Block Limits VPD page", "Block Device Characteristics VPD page", "Logical Block
// Provisioning VPD page". Linux 6.1 drivers/scsi/sd.c (read_capacity_10/16, sd_read_block_limits,
// sd_read_block_characteristics, sd_read_block_provisioning, sd_read_cache_type, sd_setup_unmap_cmnd,
// sd_setup_write_same10/16_cmnd) shows which fields the guest reads.
//
// Big-endian wire structs (see spc.h): alignment 1, no padding, copied with memcpy.
#pragma once

#include "protocols/scsi/spc.h"

#include <cstddef>
#include <cstdint>

namespace vmgen::protocols::scsi {

// ---- Read/write CDBs ----
struct Rw6Cdb {
    uint8_t opcode;
    Be24 lba; // bits 20:0 (the top three bits of byte 1 are reserved)
    uint8_t length; // 0 means 256 blocks
    uint8_t control;
};
static_assert(sizeof(Rw6Cdb) == 6);
inline constexpr uint32_t rw6_lba_mask = 0x1fffff;

struct Rw10Cdb {
    uint8_t opcode;
    uint8_t flags; // bits 7:5 RDPROTECT/WRPROTECT/VRPROTECT, 4 DPO, 3 FUA, 2:1 BYTCHK (VERIFY)
    Be32 lba;
    uint8_t group;
    Be16 length; // blocks; 0 transfers nothing
    uint8_t control;
};
static_assert(sizeof(Rw10Cdb) == 10);

struct Rw12Cdb {
    uint8_t opcode;
    uint8_t flags;
    Be32 lba;
    Be32 length;
    uint8_t group;
    uint8_t control;
};
static_assert(sizeof(Rw12Cdb) == 12);

struct Rw16Cdb {
    uint8_t opcode;
    uint8_t flags;
    Be64 lba;
    Be32 length;
    uint8_t group;
    uint8_t control;
};
static_assert(sizeof(Rw16Cdb) == 16);
static_assert(offsetof(Rw16Cdb, length) == 10);

inline constexpr uint8_t rw_protect_mask = 0xe0; // RDPROTECT / WRPROTECT / VRPROTECT: protection information
inline constexpr uint8_t rw_fua = 0x08;
inline constexpr uint8_t verify_bytchk_mask = 0x06;
inline constexpr uint8_t verify_bytchk_shift = 1;
inline constexpr uint8_t sync_cache_immed = 0x02;

// WRITE SAME(10) is laid out as Rw10Cdb, WRITE SAME(16) as Rw16Cdb; these are their byte 1 bits.
inline constexpr uint8_t write_same_anchor = 0x10;
inline constexpr uint8_t write_same_unmap = 0x08;
inline constexpr uint8_t write_same_obsolete = 0x06; // PBDATA / LBDATA
inline constexpr uint8_t write_same_ndob = 0x01; // WRITE SAME(16): no Data-Out buffer, the block is zeroes

// ---- READ CAPACITY ----
struct ReadCapacity10Cdb {
    uint8_t opcode;
    uint8_t reserved1;
    Be32 lba; // obsolete; must be 0 unless PMI
    uint8_t reserved6[2];
    uint8_t pmi; // bit 0 PMI (obsolete)
    uint8_t control;
};
static_assert(sizeof(ReadCapacity10Cdb) == 10);

struct ReadCapacity10Data {
    Be32 last_lba; // 0xffffffff: use READ CAPACITY(16)
    Be32 block_length;
};
static_assert(sizeof(ReadCapacity10Data) == 8);

struct ReadCapacity16Cdb {
    uint8_t opcode; // 0x9e SERVICE ACTION IN(16)
    uint8_t service_action; // bits 4:0: 0x10
    Be64 lba; // obsolete
    Be32 allocation_length;
    uint8_t pmi;
    uint8_t control;
};
static_assert(sizeof(ReadCapacity16Cdb) == 16);

struct ReadCapacity16Data {
    Be64 last_lba;
    Be32 block_length;
    uint8_t protection; // bits 5:4 RC BASIS, 3:1 P_TYPE, 0 PROT_EN
    uint8_t exponents; // bits 7:4 P_I_EXPONENT, 3:0 logical blocks per physical block exponent
    Be16 lowest_aligned_lba; // bit 15 LBPME, bit 14 LBPRZ, 13:0 lowest aligned LBA
    uint8_t reserved[16];
};
static_assert(sizeof(ReadCapacity16Data) == 32);
static_assert(offsetof(ReadCapacity16Data, exponents) == 13);
inline constexpr uint8_t rc16_basis_last_lba = 0x10;
inline constexpr uint16_t rc16_lbpme = 0x8000;
inline constexpr uint16_t rc16_lbprz = 0x4000;

// ---- SYNCHRONIZE CACHE: Rw10Cdb / Rw16Cdb layouts (byte 1 bit 1 IMMED; length = blocks, 0 = to the end) ----

// ---- UNMAP ----
struct UnmapCdb {
    uint8_t opcode;
    uint8_t flags; // bit 0 ANCHOR
    uint8_t reserved[4];
    uint8_t group;
    Be16 parameter_list_length;
    uint8_t control;
};
static_assert(sizeof(UnmapCdb) == 10);
inline constexpr uint8_t unmap_anchor = 0x01;

struct UnmapParameterHeader {
    Be16 data_length; // bytes after this field
    Be16 block_descriptor_length; // bytes of descriptors (a multiple of 16)
    uint8_t reserved[4];
};
static_assert(sizeof(UnmapParameterHeader) == 8);
struct UnmapBlockDescriptor {
    Be64 lba;
    Be32 block_count;
    uint8_t reserved[4];
};
static_assert(sizeof(UnmapBlockDescriptor) == 16);

// ---- START STOP UNIT / PREVENT ALLOW MEDIUM REMOVAL ----
struct StartStopUnitCdb {
    uint8_t opcode;
    uint8_t immed; // bit 0
    uint8_t reserved2;
    uint8_t power_condition_modifier;
    uint8_t flags; // bits 7:4 power condition, 2 NO_FLUSH, 1 LOEJ, 0 START
    uint8_t control;
};
static_assert(sizeof(StartStopUnitCdb) == 6);
inline constexpr uint8_t start_stop_start = 0x01;
inline constexpr uint8_t start_stop_loej = 0x02;
inline constexpr uint8_t start_stop_no_flush = 0x04;
inline constexpr uint8_t start_stop_power_condition_mask = 0xf0;

struct PreventAllowCdb {
    uint8_t opcode;
    uint8_t reserved[3];
    uint8_t prevent; // bits 1:0 (bit 0: prevent removal)
    uint8_t control;
};
static_assert(sizeof(PreventAllowCdb) == 6);

// ---- Caching mode page 0x08 ----
struct CachingModePage {
    uint8_t page_code; // 0x08 (| PS)
    uint8_t page_length; // 0x12
    uint8_t flags2; // IC ABPF CAP DISC SIZE WCE(bit 2) MF RCD(bit 0)
    uint8_t retention; // demand read / write retention priority
    Be16 disable_prefetch_transfer_length;
    Be16 minimum_prefetch;
    Be16 maximum_prefetch;
    Be16 maximum_prefetch_ceiling;
    uint8_t flags12; // FSW LBCSS DRA ... NV_DIS
    uint8_t number_of_cache_segments;
    Be16 cache_segment_size;
    uint8_t reserved16;
    uint8_t obsolete[3];
};
static_assert(sizeof(CachingModePage) == 20);
inline constexpr uint8_t mode_page_caching = 0x08;
inline constexpr uint8_t caching_wce = 0x04;
inline constexpr uint8_t caching_rcd = 0x01;

// ---- Block Limits VPD page 0xB0 (page length 0x3c) ----
struct BlockLimitsVpd {
    VpdHeader header;
    uint8_t wsnz; // bit 0: WRITE SAME with 0 blocks is not supported
    uint8_t maximum_compare_and_write_length;
    Be16 optimal_transfer_length_granularity; // blocks
    Be32 maximum_transfer_length; // blocks
    Be32 optimal_transfer_length;
    Be32 maximum_prefetch_length;
    Be32 maximum_unmap_lba_count;
    Be32 maximum_unmap_block_descriptor_count;
    Be32 optimal_unmap_granularity;
    Be32 unmap_granularity_alignment; // bit 31 UGAVALID
    Be64 maximum_write_same_length;
    Be32 maximum_atomic_transfer_length;
    Be32 atomic_alignment;
    Be32 atomic_transfer_length_granularity;
    Be32 maximum_atomic_transfer_length_with_boundary;
    Be32 maximum_atomic_boundary_size;
};
static_assert(sizeof(BlockLimitsVpd) == 64);
static_assert(offsetof(BlockLimitsVpd, maximum_transfer_length) == 8);
static_assert(offsetof(BlockLimitsVpd, maximum_unmap_lba_count) == 20);
static_assert(offsetof(BlockLimitsVpd, optimal_unmap_granularity) == 28);
static_assert(offsetof(BlockLimitsVpd, maximum_write_same_length) == 36);

// ---- Block Device Characteristics VPD page 0xB1 (page length 0x3c) ----
struct BlockDeviceCharacteristicsVpd {
    VpdHeader header;
    Be16 medium_rotation_rate; // 1: non-rotating medium (solid state)
    uint8_t product_type;
    uint8_t form_factor; // bits 3:0 nominal form factor
    uint8_t flags8; // bits 5:4 ZONED
    uint8_t reserved[55];
};
static_assert(sizeof(BlockDeviceCharacteristicsVpd) == 64);
inline constexpr uint16_t rotation_rate_non_rotating = 1;

// ---- Logical Block Provisioning VPD page 0xB2 (page length 4) ----
struct LogicalBlockProvisioningVpd {
    VpdHeader header;
    uint8_t threshold_exponent;
    uint8_t flags5; // 7 LBPU, 6 LBPWS, 5 LBPWS10, 4:2 LBPRZ, 1 ANC_SUP, 0 DP
    uint8_t provisioning_type; // bits 2:0: 1 resource provisioned, 2 thin provisioned
    uint8_t reserved7;
};
static_assert(sizeof(LogicalBlockProvisioningVpd) == 8);
inline constexpr uint8_t lbp_lbpu = 0x80;
inline constexpr uint8_t lbp_lbpws = 0x40;
inline constexpr uint8_t lbp_lbpws10 = 0x20;
inline constexpr uint8_t lbp_lbprz_zero = 0x04; // LBPRZ = 001b: unmapped blocks read as zeroes
inline constexpr uint8_t lbp_thin_provisioned = 0x02;

} // namespace vmgen::protocols::scsi
