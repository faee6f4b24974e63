// SCSI primary commands: what every logical unit speaks (CDB opcodes, status, fixed-format sense data, INQUIRY
// data and vital product data pages, REPORT LUNS data, mode parameter headers, block descriptors and the Control
// mode page).
// References: T10 SPC-4 (INCITS 513), sections "Fixed format sense data", "Sense key and additional sense code
// definitions", "INQUIRY command" / "Standard INQUIRY data", "Vital product data parameters" (Supported VPD Pages,
// Unit Serial Number, Device Identification), "REPORT LUNS command", "REQUEST SENSE command", "Mode parameters"
// (mode parameter headers, block descriptors, Control mode page); T10 SAM-5 "Status codes" and "Logical unit
// addressing"; Linux 6.1 include/scsi/scsi_proto.h (opcodes, status bytes, sense keys), include/scsi/scsi_common.h
// (struct scsi_sense_hdr) and drivers/scsi/scsi_lib.c (scsi_mode_sense: how a mode parameter header is read).
//
// Every multi-byte field on the wire is big-endian. The structs below hold wire bytes only (uint8_t and the
// BigEndian<> byte arrays, alignment 1, no padding): copy them in and out of buffers with memcpy.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmgen::protocols::scsi {

// An unsigned big-endian field of N bytes (N <= sizeof(T)).
template <typename T, size_t N = sizeof(T)> struct BigEndian {
    uint8_t bytes[N];

    [[nodiscard]] constexpr T get() const
    {
        T value = 0;
        for (size_t i = 0; i < N; ++i)
            value = static_cast<T>((value << 8) | bytes[i]);
        return value;
    }
    constexpr void set(T value)
    {
        for (size_t i = N; i-- > 0;) {
            bytes[i] = static_cast<uint8_t>(value & 0xff);
            value = static_cast<T>(value >> 8);
        }
    }
};
using Be16 = BigEndian<uint16_t>;
using Be24 = BigEndian<uint32_t, 3>;
using Be32 = BigEndian<uint32_t>;
using Be64 = BigEndian<uint64_t>;
static_assert(sizeof(Be16) == 2 && sizeof(Be24) == 3 && sizeof(Be32) == 4 && sizeof(Be64) == 8);
static_assert(alignof(Be64) == 1);

// ---- Operation codes (SPC-4, SBC-3, MMC-6; Linux include/scsi/scsi_proto.h) ----
namespace opcode {
inline constexpr uint8_t test_unit_ready = 0x00;
inline constexpr uint8_t request_sense = 0x03;
inline constexpr uint8_t read_6 = 0x08;
inline constexpr uint8_t write_6 = 0x0a;
inline constexpr uint8_t inquiry = 0x12;
inline constexpr uint8_t mode_select_6 = 0x15;
inline constexpr uint8_t mode_sense_6 = 0x1a;
inline constexpr uint8_t start_stop_unit = 0x1b;
inline constexpr uint8_t prevent_allow_medium_removal = 0x1e;
inline constexpr uint8_t read_capacity_10 = 0x25;
inline constexpr uint8_t read_10 = 0x28;
inline constexpr uint8_t write_10 = 0x2a;
inline constexpr uint8_t verify_10 = 0x2f;
inline constexpr uint8_t synchronize_cache_10 = 0x35;
inline constexpr uint8_t write_same_10 = 0x41;
inline constexpr uint8_t unmap = 0x42;
inline constexpr uint8_t read_toc_pma_atip = 0x43;
inline constexpr uint8_t get_configuration = 0x46;
inline constexpr uint8_t get_event_status_notification = 0x4a;
inline constexpr uint8_t read_disc_information = 0x51;
inline constexpr uint8_t read_track_information = 0x52;
inline constexpr uint8_t mode_select_10 = 0x55;
inline constexpr uint8_t mode_sense_10 = 0x5a;
inline constexpr uint8_t read_16 = 0x88;
inline constexpr uint8_t write_16 = 0x8a;
inline constexpr uint8_t verify_16 = 0x8f;
inline constexpr uint8_t synchronize_cache_16 = 0x91;
inline constexpr uint8_t write_same_16 = 0x93;
inline constexpr uint8_t service_action_in_16 = 0x9e; // service action 0x10: READ CAPACITY(16)
inline constexpr uint8_t report_luns = 0xa0;
inline constexpr uint8_t maintenance_in = 0xa3; // REPORT SUPPORTED OPERATION CODES (not emulated)
inline constexpr uint8_t read_12 = 0xa8;
inline constexpr uint8_t write_12 = 0xaa;
inline constexpr uint8_t get_performance = 0xac;
inline constexpr uint8_t read_dvd_structure = 0xad;
inline constexpr uint8_t set_cd_speed = 0xbb;
} // namespace opcode

inline constexpr uint8_t service_action_read_capacity_16 = 0x10; // SERVICE ACTION IN(16), CDB byte 1 bits 4:0

// The CDB size implied by the group code (opcode bits 7:5), SAM-5 "Operation code"; 0 = reserved or vendor
// specific (group 3 is reserved / variable length, groups 6 and 7 vendor specific).
constexpr size_t cdb_size_for_opcode(uint8_t op)
{
    constexpr size_t sizes[8] = { 6, 10, 10, 0, 16, 12, 0, 0 };
    return sizes[op >> 5];
}
inline constexpr size_t max_cdb_size = 16;
inline constexpr uint8_t control_naca = 0x04; // CONTROL byte (last CDB byte) bit 2

// ---- Status codes (SAM-5; Linux enum sam_status) ----
enum class Status : uint8_t {
    Good = 0x00,
    CheckCondition = 0x02,
    ConditionMet = 0x04,
    Busy = 0x08,
    ReservationConflict = 0x18,
    TaskSetFull = 0x28,
    AcaActive = 0x30,
    TaskAborted = 0x40,
};

// ---- Sense keys (SPC-4 "Sense key descriptions") ----
namespace sense_key {
inline constexpr uint8_t no_sense = 0x0;
inline constexpr uint8_t recovered_error = 0x1;
inline constexpr uint8_t not_ready = 0x2;
inline constexpr uint8_t medium_error = 0x3;
inline constexpr uint8_t hardware_error = 0x4;
inline constexpr uint8_t illegal_request = 0x5;
inline constexpr uint8_t unit_attention = 0x6;
inline constexpr uint8_t data_protect = 0x7;
inline constexpr uint8_t aborted_command = 0xb;
inline constexpr uint8_t miscompare = 0xe;
} // namespace sense_key

// Additional sense code and qualifier (SPC-4 "ASC and ASCQ assignments").
struct AdditionalSense {
    uint8_t asc;
    uint8_t ascq;
    friend constexpr bool operator==(AdditionalSense, AdditionalSense) = default;
};
namespace asc {
inline constexpr AdditionalSense no_additional_sense { 0x00, 0x00 };
inline constexpr AdditionalSense not_ready_cause_not_reportable { 0x04, 0x00 };
inline constexpr AdditionalSense write_error { 0x0c, 0x00 };
inline constexpr AdditionalSense unrecovered_read_error { 0x11, 0x00 };
inline constexpr AdditionalSense parameter_list_length_error { 0x1a, 0x00 };
inline constexpr AdditionalSense miscompare_during_verify { 0x1d, 0x00 };
inline constexpr AdditionalSense invalid_command_operation_code { 0x20, 0x00 };
inline constexpr AdditionalSense lba_out_of_range { 0x21, 0x00 };
inline constexpr AdditionalSense invalid_field_in_cdb { 0x24, 0x00 };
inline constexpr AdditionalSense logical_unit_not_supported { 0x25, 0x00 };
inline constexpr AdditionalSense invalid_field_in_parameter_list { 0x26, 0x00 };
inline constexpr AdditionalSense write_protected { 0x27, 0x00 };
inline constexpr AdditionalSense medium_may_have_changed { 0x28, 0x00 }; // not ready to ready change
inline constexpr AdditionalSense power_on_reset { 0x29, 0x00 };
inline constexpr AdditionalSense mode_parameters_changed { 0x2a, 0x01 };
inline constexpr AdditionalSense capacity_data_has_changed { 0x2a, 0x09 };
inline constexpr AdditionalSense incompatible_medium_format { 0x30, 0x02 }; // CANNOT READ MEDIUM - INCOMPATIBLE FORMAT
inline constexpr AdditionalSense saving_parameters_not_supported { 0x39, 0x00 };
inline constexpr AdditionalSense medium_not_present { 0x3a, 0x00 };
inline constexpr AdditionalSense internal_target_failure { 0x44, 0x00 };
inline constexpr AdditionalSense data_phase_error { 0x4b, 0x00 };
inline constexpr AdditionalSense medium_removal_prevented { 0x53, 0x02 };
} // namespace asc

// ---- Fixed format sense data (SPC-4 "Fixed format sense data"), response codes 0x70 (current) / 0x71 ----
struct FixedSense {
    uint8_t response_code; // bit 7 VALID (INFORMATION is meaningful), bits 6:0 0x70
    uint8_t obsolete;
    uint8_t flags_key; // bit 7 FILEMARK, 6 EOM, 5 ILI, 4 SDAT_OVFL, 3:0 sense key
    Be32 information; // e.g. the first LBA in error
    uint8_t additional_length; // bytes after this one: 10
    Be32 command_specific;
    uint8_t asc;
    uint8_t ascq;
    uint8_t field_replaceable_unit;
    uint8_t sense_key_specific[3]; // byte 0 bit 7 SKSV; ILLEGAL REQUEST: bit 6 C/D, bit 3 BPV, 2:0 bit, then Be16 field
};
static_assert(sizeof(FixedSense) == 18);
static_assert(offsetof(FixedSense, information) == 3);
static_assert(offsetof(FixedSense, additional_length) == 7);
static_assert(offsetof(FixedSense, asc) == 12);
static_assert(offsetof(FixedSense, sense_key_specific) == 15);
inline constexpr uint8_t sense_response_fixed_current = 0x70;
inline constexpr uint8_t sense_valid = 0x80;
inline constexpr uint8_t sense_sksv = 0x80;
inline constexpr uint8_t sense_field_in_cdb = 0x40; // C/D: the field pointer names a CDB byte (else the parameter list)
inline constexpr uint8_t sense_bit_pointer_valid = 0x08;

// ---- INQUIRY (SPC-4 "INQUIRY command", "Standard INQUIRY data") ----
struct InquiryCdb {
    uint8_t opcode;
    uint8_t flags; // bit 0 EVPD, bit 1 CMDDT (obsolete, must be 0)
    uint8_t page_code; // VPD page when EVPD = 1, else 0
    Be16 allocation_length;
    uint8_t control;
};
static_assert(sizeof(InquiryCdb) == 6);
inline constexpr uint8_t inquiry_evpd = 0x01;
inline constexpr uint8_t inquiry_cmddt = 0x02;

struct StandardInquiry {
    uint8_t peripheral; // bits 7:5 qualifier, 4:0 device type
    uint8_t rmb; // bit 7 removable medium
    uint8_t version; // 5 SPC-3, 6 SPC-4
    uint8_t response_format; // bit 5 NORMACA, bit 4 HISUP, 3:0 response data format (2)
    uint8_t additional_length; // bytes after this one
    uint8_t flags5; // SCCS ACC TPGS 3PC PROTECT
    uint8_t flags6; // ENCSERV MULTIP ...
    uint8_t flags7; // bit 1 CMDQUE
    char vendor[8]; // T10 vendor identification, ASCII padded with spaces
    char product[16];
    char revision[4];
    uint8_t vendor_specific[20];
    uint8_t flags56;
    uint8_t reserved57;
    Be16 version_descriptors[8];
};
static_assert(sizeof(StandardInquiry) == 74);
static_assert(offsetof(StandardInquiry, vendor) == 8);
static_assert(offsetof(StandardInquiry, product) == 16);
static_assert(offsetof(StandardInquiry, revision) == 32);
static_assert(offsetof(StandardInquiry, version_descriptors) == 58);
inline constexpr size_t standard_inquiry_min_size = 36; // what Linux asks for first (scsi_probe_lun)

inline constexpr uint8_t peripheral_type_disk = 0x00;
inline constexpr uint8_t peripheral_type_cd_dvd = 0x05;
inline constexpr uint8_t peripheral_absent = 0x7f; // qualifier 011b + type 0x1f: no device on this LUN
inline constexpr uint8_t inquiry_removable = 0x80;
inline constexpr uint8_t inquiry_version_spc3 = 0x05;
inline constexpr uint8_t inquiry_version_spc4 = 0x06;
inline constexpr uint8_t inquiry_response_format_hisup = 0x12; // HISUP | response data format 2
inline constexpr uint8_t inquiry_cmdque = 0x02;

// Version descriptors (SPC-4 "Version descriptor values").
namespace version_descriptor {
inline constexpr uint16_t sam5 = 0x00a0;
inline constexpr uint16_t spc4 = 0x0460;
inline constexpr uint16_t sbc3 = 0x04c0;
inline constexpr uint16_t mmc6 = 0x04e0;
} // namespace version_descriptor

// ---- Vital product data pages ----
struct VpdHeader {
    uint8_t peripheral; // as in the standard data
    uint8_t page_code;
    Be16 page_length; // bytes after the header
};
static_assert(sizeof(VpdHeader) == 4);
namespace vpd {
inline constexpr uint8_t supported_pages = 0x00;
inline constexpr uint8_t unit_serial_number = 0x80;
inline constexpr uint8_t device_identification = 0x83;
inline constexpr uint8_t block_limits = 0xb0; // SBC
inline constexpr uint8_t block_device_characteristics = 0xb1; // SBC
inline constexpr uint8_t logical_block_provisioning = 0xb2; // SBC
} // namespace vpd

// Device Identification designation descriptor header (SPC-4 "Designation descriptor").
struct DesignatorHeader {
    uint8_t code_set; // bits 7:4 protocol identifier, 3:0 code set (1 binary, 2 ASCII)
    uint8_t type; // bit 7 PIV, 5:4 association (0 logical unit), 3:0 designator type
    uint8_t reserved;
    uint8_t length; // designator bytes that follow
};
static_assert(sizeof(DesignatorHeader) == 4);
inline constexpr uint8_t code_set_binary = 0x1;
inline constexpr uint8_t code_set_ascii = 0x2;
inline constexpr uint8_t designator_t10_vendor_id = 0x1;
inline constexpr uint8_t designator_naa = 0x3;
inline constexpr uint8_t naa_locally_assigned = 0x3; // NAA 3: 60 bits assigned by the device, 8 bytes in all

// ---- REPORT LUNS (SPC-4 "REPORT LUNS command"; SAM-5 "Single level LUN structure") ----
struct ReportLunsCdb {
    uint8_t opcode;
    uint8_t reserved1;
    uint8_t select_report; // 0 all LUNs except well-known, 1 well-known only, 2 all
    uint8_t reserved3[3];
    Be32 allocation_length; // at least 16
    uint8_t reserved10;
    uint8_t control;
};
static_assert(sizeof(ReportLunsCdb) == 12);
struct ReportLunsHeader {
    Be32 lun_list_length; // bytes of LUN entries (8 each)
    uint8_t reserved[4];
};
static_assert(sizeof(ReportLunsHeader) == 8);
inline constexpr uint32_t report_luns_min_allocation = 16;
inline constexpr uint8_t lun_address_flat = 0x40; // first byte of a flat space LUN (LUN 256..16383)

// ---- REQUEST SENSE (SPC-4) ----
struct RequestSenseCdb {
    uint8_t opcode;
    uint8_t flags; // bit 0 DESC: descriptor format sense requested
    uint8_t reserved[2];
    uint8_t allocation_length;
    uint8_t control;
};
static_assert(sizeof(RequestSenseCdb) == 6);

// ---- Mode parameters (SPC-4 "Mode parameter list format", "Mode parameter header formats") ----
struct ModeSense6Cdb {
    uint8_t opcode;
    uint8_t flags; // bit 3 DBD
    uint8_t page; // bits 7:6 page control, 5:0 page code
    uint8_t subpage;
    uint8_t allocation_length;
    uint8_t control;
};
static_assert(sizeof(ModeSense6Cdb) == 6);
struct ModeSense10Cdb {
    uint8_t opcode;
    uint8_t flags; // bit 4 LLBAA, bit 3 DBD
    uint8_t page;
    uint8_t subpage;
    uint8_t reserved[3];
    Be16 allocation_length;
    uint8_t control;
};
static_assert(sizeof(ModeSense10Cdb) == 10);
inline constexpr uint8_t mode_sense_dbd = 0x08;
inline constexpr uint8_t mode_sense_llbaa = 0x10;
inline constexpr uint8_t mode_page_all = 0x3f;
inline constexpr uint8_t mode_subpage_all = 0xff;
enum class PageControl : uint8_t { Current = 0, Changeable = 1, Default = 2, Saved = 3 };

struct ModeSelect6Cdb {
    uint8_t opcode;
    uint8_t flags; // bit 4 PF, bit 0 SP
    uint8_t reserved[2];
    uint8_t parameter_list_length;
    uint8_t control;
};
static_assert(sizeof(ModeSelect6Cdb) == 6);
struct ModeSelect10Cdb {
    uint8_t opcode;
    uint8_t flags;
    uint8_t reserved[5];
    Be16 parameter_list_length;
    uint8_t control;
};
static_assert(sizeof(ModeSelect10Cdb) == 10);
inline constexpr uint8_t mode_select_pf = 0x10;
inline constexpr uint8_t mode_select_sp = 0x01;

struct ModeHeader6 {
    uint8_t mode_data_length; // bytes after this field
    uint8_t medium_type;
    uint8_t device_specific; // direct access: bit 7 WP, bit 4 DPOFUA
    uint8_t block_descriptor_length;
};
static_assert(sizeof(ModeHeader6) == 4);
struct ModeHeader10 {
    Be16 mode_data_length; // bytes after this field
    uint8_t medium_type;
    uint8_t device_specific;
    uint8_t flags; // bit 0 LONGLBA
    uint8_t reserved;
    Be16 block_descriptor_length;
};
static_assert(sizeof(ModeHeader10) == 8);
inline constexpr uint8_t mode_device_specific_wp = 0x80;
inline constexpr uint8_t mode_device_specific_dpofua = 0x10;
inline constexpr uint8_t mode_header_longlba = 0x01;

// Direct-access block descriptors (SBC-3 "Short LBA mode parameter block descriptor", "Long LBA ...").
struct ShortBlockDescriptor {
    Be32 block_count; // 0xffffffff when the count does not fit
    uint8_t reserved;
    Be24 block_length;
};
static_assert(sizeof(ShortBlockDescriptor) == 8);
struct LongBlockDescriptor {
    Be64 block_count;
    uint8_t reserved[4];
    Be32 block_length;
};
static_assert(sizeof(LongBlockDescriptor) == 16);

// Page header of a page_0 format mode page (SPS = 0).
struct ModePageHeader {
    uint8_t page_code; // bit 7 PS (savable), bit 6 SPF (sub-page format), 5:0 code
    uint8_t page_length; // bytes after this field
};
static_assert(sizeof(ModePageHeader) == 2);
inline constexpr uint8_t mode_page_ps = 0x80;
inline constexpr uint8_t mode_page_spf = 0x40;

// Control mode page 0x0A (SPC-4 "Control mode page").
struct ControlModePage {
    uint8_t page_code; // 0x0a
    uint8_t page_length; // 0x0a
    uint8_t flags2; // TST, TMF_ONLY, DPICZ, D_SENSE, GLTSD, RLEC
    uint8_t flags3; // bits 7:4 queue algorithm modifier (1 unrestricted), 2:1 QERR
    uint8_t flags4; // VS, RAC, UA_INTLCK_CTRL, SWP
    uint8_t flags5; // ATO, TAS, ATMPE, RWWP, AUTOLOAD MODE
    uint8_t reserved6[2];
    Be16 busy_timeout_period;
    Be16 extended_self_test_completion_time;
};
static_assert(sizeof(ControlModePage) == 12);
inline constexpr uint8_t mode_page_control = 0x0a;

} // namespace vmgen::protocols::scsi
