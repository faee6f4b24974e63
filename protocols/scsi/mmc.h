// SCSI multimedia commands: what a CD/DVD drive answers beyond SPC (a read-only DVD-ROM drive here).
// References: T10 MMC-6 (INCITS 468), sections "GET CONFIGURATION command" with "Features" (Profile List, Core,
// Morphing, Removable Medium, Random Readable, CD Read, DVD Read) and "Profile definitions", "GET EVENT STATUS
// NOTIFICATION command" (Media event status notification), "READ TOC/PMA/ATIP command" (formats 0000b TOC and
// 0001b Session Information), "READ DISC INFORMATION command", "READ TRACK INFORMATION command", "READ DISC
// STRUCTURE command" (DVD format codes 00h, 01h, FFh), "GET PERFORMANCE command" (type 00h), "SET CD SPEED";
// MMC-3 "CD/DVD Capabilities and Mechanical Status Page" (mode page 2Ah, obsolete in MMC-6 but read by Linux).
// Linux 6.1 include/uapi/linux/cdrom.h (struct disc_information, track_information, event_header,
// media_event_desc, feature_header, rm_feature_desc, mode_page_header), drivers/scsi/sr.c (get_capabilities:
// page 2A bytes it reads; sr_get_events), drivers/scsi/sr_ioctl.c and drivers/cdrom/cdrom.c (the probe sequence).
//
// Big-endian wire structs (see spc.h): alignment 1, no padding, copied with memcpy.
#pragma once

#include "protocols/scsi/spc.h"

#include <cstddef>
#include <cstdint>

namespace vmgen::protocols::scsi {

inline constexpr uint32_t mmc_block_size = 2048; // user data bytes of a CD mode 1 / DVD sector
inline constexpr uint32_t cd_max_blocks = 80 * 60 * 75; // 80 minutes: larger media are reported as DVD
inline constexpr uint32_t msf_lba_offset = 150; // LBA 0 is MSF 00:02:00
inline constexpr uint32_t dvd_first_physical_sector = 0x30000;

// ---- Profiles and features (MMC-6 "Profile definitions", "Feature definitions") ----
namespace profile {
inline constexpr uint16_t none = 0x0000;
inline constexpr uint16_t cd_rom = 0x0008;
inline constexpr uint16_t dvd_rom = 0x0010;
} // namespace profile
namespace feature {
inline constexpr uint16_t profile_list = 0x0000;
inline constexpr uint16_t core = 0x0001;
inline constexpr uint16_t morphing = 0x0002;
inline constexpr uint16_t removable_medium = 0x0003;
inline constexpr uint16_t random_readable = 0x0010;
inline constexpr uint16_t cd_read = 0x001e;
inline constexpr uint16_t dvd_read = 0x001f;
} // namespace feature

struct GetConfigurationCdb {
    uint8_t opcode;
    uint8_t rt; // bits 1:0: 0 all features, 1 current features, 2 the one feature, 3 reserved
    Be16 starting_feature;
    uint8_t reserved[3];
    Be16 allocation_length;
    uint8_t control;
};
static_assert(sizeof(GetConfigurationCdb) == 10);
inline constexpr uint8_t get_configuration_rt_all = 0;
inline constexpr uint8_t get_configuration_rt_current = 1;
inline constexpr uint8_t get_configuration_rt_one = 2;

struct FeatureHeader {
    Be32 data_length; // bytes after this field (the whole response, not what was transferred)
    uint8_t reserved[2];
    Be16 current_profile;
};
static_assert(sizeof(FeatureHeader) == 8);
struct FeatureDescriptorHeader {
    Be16 code;
    uint8_t flags; // bits 5:2 version, 1 persistent, 0 current
    uint8_t additional_length; // bytes after this header (a multiple of 4)
};
static_assert(sizeof(FeatureDescriptorHeader) == 4);
inline constexpr uint8_t feature_persistent = 0x02;
inline constexpr uint8_t feature_current = 0x01;
constexpr uint8_t feature_version(uint8_t version)
{
    return static_cast<uint8_t>(version << 2);
}

struct ProfileDescriptor {
    Be16 profile;
    uint8_t current; // bit 0 CurrentP
    uint8_t reserved;
};
static_assert(sizeof(ProfileDescriptor) == 4);
struct CoreFeature {
    Be32 physical_interface; // 1: SCSI family
    uint8_t flags; // bit 1 INQ2, bit 0 DBE (device busy event)
    uint8_t reserved[3];
};
static_assert(sizeof(CoreFeature) == 8);
inline constexpr uint32_t physical_interface_scsi = 1;
struct RemovableMediumFeature {
    uint8_t flags; // bits 7:5 loading mechanism (001b tray), 4 Load, 3 Eject, 2 Pvnt Jmpr, 0 Lock
    uint8_t reserved[3];
};
static_assert(sizeof(RemovableMediumFeature) == 4);
inline constexpr uint8_t loading_mechanism_tray = 0x20;
inline constexpr uint8_t removable_load = 0x10;
inline constexpr uint8_t removable_eject = 0x08;
inline constexpr uint8_t removable_lock = 0x01;
struct RandomReadableFeature {
    Be32 logical_block_size;
    Be16 blocking; // blocks per ECC block: 1 CD, 16 DVD
    uint8_t flags; // bit 0 PP (page present)
    uint8_t reserved;
};
static_assert(sizeof(RandomReadableFeature) == 8);

// ---- GET EVENT STATUS NOTIFICATION ----
struct GetEventStatusCdb {
    uint8_t opcode;
    uint8_t polled; // bit 0: polled (asynchronous operation is not supported)
    uint8_t reserved2[2];
    uint8_t class_request; // one bit per notification class (bit 4: media)
    uint8_t reserved5[2];
    Be16 allocation_length;
    uint8_t control;
};
static_assert(sizeof(GetEventStatusCdb) == 10);
struct EventHeader {
    Be16 event_data_length; // bytes after this field
    uint8_t notification_class; // bit 7 NEA (no event available), 2:0 class (4: media)
    uint8_t supported_classes; // same bits as class_request
};
static_assert(sizeof(EventHeader) == 4);
struct MediaEventDescriptor {
    uint8_t event_code; // bits 3:0 media_event_*
    uint8_t media_status; // bit 1 media present, bit 0 door or tray open
    uint8_t start_slot;
    uint8_t end_slot;
};
static_assert(sizeof(MediaEventDescriptor) == 4);
inline constexpr uint8_t event_class_media = 4;
inline constexpr uint8_t event_class_media_bit = 1u << event_class_media;
inline constexpr uint8_t event_nea = 0x80;
inline constexpr uint8_t media_event_none = 0;
inline constexpr uint8_t media_event_eject_request = 1;
inline constexpr uint8_t media_event_new_media = 2;
inline constexpr uint8_t media_event_removal = 3;
inline constexpr uint8_t media_status_present = 0x02;
inline constexpr uint8_t media_status_tray_open = 0x01;

// ---- READ TOC/PMA/ATIP ----
struct ReadTocCdb {
    uint8_t opcode;
    uint8_t flags; // bit 1 MSF
    uint8_t format; // bits 3:0
    uint8_t reserved[3];
    uint8_t track_session;
    Be16 allocation_length;
    uint8_t control; // SFF-8020 drives took the format in bits 7:6 (Linux sr still sends it there)
};
static_assert(sizeof(ReadTocCdb) == 10);
inline constexpr uint8_t toc_msf = 0x02;
inline constexpr uint8_t toc_format_toc = 0;
inline constexpr uint8_t toc_format_session_info = 1;
inline constexpr uint8_t toc_leadout_track = 0xaa;
struct TocHeader {
    Be16 data_length; // bytes after this field
    uint8_t first; // first track (format 0) or session (format 1)
    uint8_t last;
};
static_assert(sizeof(TocHeader) == 4);
struct TocTrackDescriptor {
    uint8_t reserved0;
    uint8_t adr_control; // bits 7:4 ADR (1: Q sub-channel position), 3:0 control (4: data track)
    uint8_t track;
    uint8_t reserved3;
    uint8_t address[4]; // LBA (big-endian) or 0, M, S, F
};
static_assert(sizeof(TocTrackDescriptor) == 8);
inline constexpr uint8_t toc_adr_control_data = 0x14;

// ---- READ DISC INFORMATION ----
struct ReadDiscInformationCdb {
    uint8_t opcode;
    uint8_t data_type; // bits 2:0: 0 standard disc information
    uint8_t reserved[5];
    Be16 allocation_length;
    uint8_t control;
};
static_assert(sizeof(ReadDiscInformationCdb) == 10);
struct DiscInformation {
    Be16 length; // bytes after this field (32)
    uint8_t status; // 4 erasable, 3:2 state of last session, 1:0 disc status
    uint8_t first_track;
    uint8_t sessions_lsb;
    uint8_t first_track_last_session_lsb;
    uint8_t last_track_last_session_lsb;
    uint8_t flags7; // DID_V DBC_V URU DAC_V ... BG format status
    uint8_t disc_type; // 0x00: CD-DA or CD-ROM
    uint8_t sessions_msb;
    uint8_t first_track_last_session_msb;
    uint8_t last_track_last_session_msb;
    Be32 disc_id;
    Be32 last_session_lead_in;
    Be32 last_possible_lead_out;
    uint8_t bar_code[8];
    uint8_t application_code;
    uint8_t opc_tables;
};
static_assert(sizeof(DiscInformation) == 34);
inline constexpr uint8_t disc_status_complete_session = 0x0c | 0x02; // last session complete, disc finalized

// ---- READ TRACK INFORMATION ----
struct ReadTrackInformationCdb {
    uint8_t opcode;
    uint8_t address_type; // bits 1:0: 0 LBA, 1 track number, 2 session number
    Be32 address;
    uint8_t reserved6;
    Be16 allocation_length;
    uint8_t control;
};
static_assert(sizeof(ReadTrackInformationCdb) == 10);
struct TrackInformation {
    Be16 length; // bytes after this field (34)
    uint8_t track_lsb;
    uint8_t session_lsb;
    uint8_t reserved4;
    uint8_t track_mode; // 5 damage, 4 copy, 3:0 track mode (4: data, uninterrupted)
    uint8_t data_mode; // 7 RT, 6 blank, 5 packet, 4 FP, 3:0 data mode (1: mode 1)
    uint8_t flags7; // 1 LRA_V, 0 NWA_V
    Be32 track_start;
    Be32 next_writable;
    Be32 free_blocks;
    Be32 fixed_packet_size;
    Be32 track_size;
    Be32 last_recorded;
    uint8_t track_msb;
    uint8_t session_msb;
    uint8_t reserved34[2];
};
static_assert(sizeof(TrackInformation) == 36);
static_assert(offsetof(TrackInformation, track_size) == 24);

// ---- READ DISC STRUCTURE (READ DVD STRUCTURE) ----
struct ReadDvdStructureCdb {
    uint8_t opcode;
    uint8_t media_type; // bits 3:0: 0 DVD
    Be32 address;
    uint8_t layer;
    uint8_t format;
    Be16 allocation_length;
    uint8_t agid; // bits 7:6
    uint8_t control;
};
static_assert(sizeof(ReadDvdStructureCdb) == 12);
inline constexpr uint8_t dvd_structure_physical = 0x00;
inline constexpr uint8_t dvd_structure_copyright = 0x01;
inline constexpr uint8_t dvd_structure_list = 0xff;
struct DvdStructureHeader {
    Be16 data_length; // bytes after this field
    uint8_t reserved[2];
};
static_assert(sizeof(DvdStructureHeader) == 4);
struct DvdPhysicalFormat { // format 00h, layer 0 (the structure continues to 2048 bytes, zeroes here)
    uint8_t book; // 7:4 book type (0 DVD-ROM), 3:0 part version
    uint8_t size_rate; // 7:4 disc size (0: 120 mm), 3:0 maximum rate (0xf: not specified)
    uint8_t layers; // 6:5 layers - 1, 4 track path, 3:0 layer type (1: read-only)
    uint8_t density;
    uint8_t zero4;
    Be24 data_start; // first physical sector of the data area (0x030000)
    uint8_t zero8;
    Be24 data_end;
    uint8_t zero12;
    Be24 layer0_end;
    uint8_t bca; // bit 7 BCA present
};
static_assert(sizeof(DvdPhysicalFormat) == 17);
inline constexpr uint32_t dvd_physical_format_size = 2048;
struct DvdCopyright { // format 01h
    uint8_t protection_system; // 0: none
    uint8_t region_management;
    uint8_t reserved[2];
};
static_assert(sizeof(DvdCopyright) == 4);
struct DvdStructureListEntry { // format FFh
    uint8_t format;
    uint8_t flags; // bit 7 SDS (SEND supported), bit 6 RDS (READ supported)
    Be16 length;
};
static_assert(sizeof(DvdStructureListEntry) == 4);
inline constexpr uint8_t dvd_structure_rds = 0x40;

// ---- GET PERFORMANCE ----
struct GetPerformanceCdb {
    uint8_t opcode;
    uint8_t flags; // type 00h: 4:3 tolerance, 2 write, 1:0 except
    Be32 start_lba;
    uint8_t reserved6[2];
    Be16 maximum_descriptors;
    uint8_t type; // 00h performance data
    uint8_t control;
};
static_assert(sizeof(GetPerformanceCdb) == 12);
struct PerformanceHeader {
    Be32 data_length; // bytes after this field
    uint8_t flags; // bit 1 Write, bit 0 Except
    uint8_t reserved[3];
};
static_assert(sizeof(PerformanceHeader) == 8);
struct PerformanceDescriptor {
    Be32 start_lba;
    Be32 start_performance; // kB/s
    Be32 end_lba;
    Be32 end_performance;
};
static_assert(sizeof(PerformanceDescriptor) == 16);
inline constexpr uint8_t performance_write = 0x04;
inline constexpr uint8_t performance_except_mask = 0x03;

// ---- CD/DVD Capabilities and Mechanical Status mode page 2Ah (MMC-3 layout, 22 bytes) ----
struct CapabilitiesModePage {
    uint8_t page_code; // 0x2a
    uint8_t page_length; // 0x14
    uint8_t read_caps; // 5 DVD-RAM, 4 DVD-R, 3 DVD-ROM, 2 method 2, 1 CD-RW, 0 CD-R read
    uint8_t write_caps;
    uint8_t caps4; // 6 multi-session, 5 mode 2 form 2, 4 mode 2 form 1, 0 audio play
    uint8_t caps5; // 0 CD-DA commands supported
    uint8_t mechanism; // 7:5 loading mechanism, 3 eject, 2 prevent jumper, 1 lock state, 0 lock
    uint8_t caps7;
    Be16 maximum_read_speed; // kB/s (obsolete in MMC-6; Linux prints it)
    Be16 volume_levels;
    Be16 buffer_size; // KB
    Be16 current_read_speed; // kB/s
    uint8_t reserved16;
    uint8_t caps17;
    Be16 maximum_write_speed;
    Be16 current_write_speed;
};
static_assert(sizeof(CapabilitiesModePage) == 22);
inline constexpr uint8_t mode_page_capabilities = 0x2a;
inline constexpr uint8_t capabilities_read_dvd_rom = 0x08;
inline constexpr uint8_t capabilities_read_cd_rw = 0x02;
inline constexpr uint8_t capabilities_read_cd_r = 0x01;
inline constexpr uint8_t capabilities_multi_session = 0x40;
inline constexpr uint8_t capabilities_mode2_form2 = 0x20;
inline constexpr uint8_t capabilities_mode2_form1 = 0x10;
inline constexpr uint8_t mechanism_eject = 0x08;
inline constexpr uint8_t mechanism_lock_state = 0x02;
inline constexpr uint8_t mechanism_lock = 0x01;
inline constexpr uint16_t cd_speed_1x = 176; // kB/s

} // namespace vmgen::protocols::scsi
