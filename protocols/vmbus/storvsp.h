// The Hyper-V synthetic storage protocol (storvsc <-> storvsp) carried in VMBus packets on the SCSI controller's
// channel (class 0xba6163d9-04a1-4d29-b605-72e2ffb1dc7f).
// Reference: Linux 6.1 drivers/scsi/storvsc_drv.c (struct vstor_packet, struct vmscsi_request,
// struct vmstorage_channel_properties, struct vmstorage_protocol_version, enum vstor_packet_operation, the SRB
// status codes, storvsc_channel_init, storvsc_queuecommand, storvsc_on_channel_callback); older layouts from the
// pre-Windows 8 protocol (vmscsi_size_delta in Linux before 5.15).
//
//   guest (storvsc)                                         host (storvsp)
//   BEGIN_INITIALIZATION            inband, completion      COMPLETE_IO status 0
//   QUERY_PROTOCOL_VERSION 0x0602, then 0x0600, 0x0501      COMPLETE_IO status 0 (accepted) or
//                                                           revision_mismatch (try the next one)
//   QUERY_PROPERTIES                                        COMPLETE_IO + vmstorage_channel_properties
//   END_INITIALIZATION                                      COMPLETE_IO status 0
//   EXECUTE_SRB                     inband (no data) or     COMPLETE_IO + vm_srb (srb/scsi status, sense,
//                                   GPA direct (data)       data_transfer_length = bytes moved)
//   RESET_BUS / RESET_ADAPTER / RESET_LUN                   COMPLETE_IO status 0 once in-flight I/O completed
//                                                    <---   ENUMERATE_BUS (trans_id 0): LUNs came or went
//
// Every completion echoes the request's VMBus trans_id. Linux accepts a packet from the host only if its payload
// holds the whole 64-byte vstor_packet (trans_id != 0) or at least the operation (trans_id 0), and reads at most
// 64 bytes of it (STORVSC_MAX_PKT_SIZE). All fields little-endian; freestanding-safe (test guests include it).
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmgen::protocols::vmbus::storvsp {

// VMSTOR_PROTO_VERSION(major, minor) = major << 8 | minor.
inline constexpr uint16_t version_win6 = 0x0200;
inline constexpr uint16_t version_win7 = 0x0402;
inline constexpr uint16_t version_win8 = 0x0501;
inline constexpr uint16_t version_win8_1 = 0x0600;
inline constexpr uint16_t version_win10 = 0x0602;

// enum vstor_packet_operation
enum Operation : uint32_t {
    op_complete_io = 1,
    op_remove_device = 2,
    op_execute_srb = 3,
    op_reset_lun = 4,
    op_reset_adapter = 5,
    op_reset_bus = 6,
    op_begin_initialization = 7,
    op_end_initialization = 8,
    op_query_protocol_version = 9,
    op_query_properties = 10,
    op_enumerate_bus = 11,
    op_fchba_data = 12,
    op_create_sub_channels = 13,
};

// vstor_packet.flags
inline constexpr uint32_t request_completion_flag = 0x1;

// vstor_packet.status: NTSTATUS values the host answers with (0 is success).
inline constexpr uint32_t status_success = 0;
inline constexpr uint32_t status_revision_mismatch = 0xC0000059;    // STATUS_REVISION_MISMATCH
inline constexpr uint32_t status_invalid_device_state = 0xC0000184; // STATUS_INVALID_DEVICE_STATE
inline constexpr uint32_t status_not_supported = 0xC00000BB;        // STATUS_NOT_SUPPORTED
inline constexpr uint32_t status_invalid_parameter = 0xC000000D;    // STATUS_INVALID_PARAMETER

// vmscsi_request.data_in (enum storvsc_request_type)
inline constexpr uint8_t data_write = 0;   // WRITE_TYPE: Data-Out
inline constexpr uint8_t data_read = 1;    // READ_TYPE: Data-In
inline constexpr uint8_t data_unknown = 2; // UNKNOWN_TYPE: no data

// SRB status: the low 6 bits are a code, the two high bits flags.
inline constexpr uint8_t srb_status_autosense_valid = 0x80;
inline constexpr uint8_t srb_status_queue_frozen = 0x40;
inline constexpr uint8_t srb_status_success = 0x01;
inline constexpr uint8_t srb_status_aborted = 0x02;
inline constexpr uint8_t srb_status_error = 0x04;
inline constexpr uint8_t srb_status_invalid_request = 0x06;
inline constexpr uint8_t srb_status_data_overrun = 0x12; // over- or underrun: data_transfer_length is valid
inline constexpr uint8_t srb_status_invalid_lun = 0x20;  // Linux removes the device (storvsc_remove_lun)
inline constexpr uint8_t srb_status_code(uint8_t status)
{
    return static_cast<uint8_t>(status & ~(srb_status_autosense_valid | srb_status_queue_frozen));
}

// SRB flags (vmscsi_request.srb_flags, Windows 8 extension) that storvsc sets.
inline constexpr uint32_t srb_flags_queue_action_enable = 0x00000002;
inline constexpr uint32_t srb_flags_disable_synch_transfer = 0x00000008;
inline constexpr uint32_t srb_flags_data_in = 0x00000040;
inline constexpr uint32_t srb_flags_data_out = 0x00000080;
inline constexpr uint32_t srb_flags_no_queue_freeze = 0x00000100;

inline constexpr size_t max_cdb_length = 16;             // STORVSC_MAX_CMD_LEN
inline constexpr size_t sense_buffer_size = 0x14;        // STORVSC_SENSE_BUFFER_SIZE (Windows 8 and later)
inline constexpr size_t pre_win8_sense_buffer_size = 0x12; // PRE_WIN8_STORVSC_SENSE_BUFFER_SIZE

// struct vmscsi_request (packed). The cdb and the sense data share bytes 20..39: a completion carries sense
// data where the request carried its CDB.
struct VmscsiRequest {
    uint16_t length; // sizeof(struct vmscsi_request) as the guest built it
    uint8_t srb_status;
    uint8_t scsi_status;
    uint8_t port_number;
    uint8_t path_id; // Linux: the SCSI channel
    uint8_t target_id;
    uint8_t lun;
    uint8_t cdb_length;
    uint8_t sense_info_length; // request: sense buffer size; completion: valid sense bytes
    uint8_t data_in;
    uint8_t reserved;
    uint32_t data_transfer_length; // request: buffer bytes; completion: bytes transferred
    uint8_t cdb_or_sense[sense_buffer_size];
    // Windows 8 extension (struct vmscsi_win8_extension)
    uint16_t reserve;
    uint8_t queue_tag;
    uint8_t queue_action;
    uint32_t srb_flags;
    uint32_t time_out_value;
    uint32_t queue_sort_key;
};
static_assert(sizeof(VmscsiRequest) == 52);
static_assert(offsetof(VmscsiRequest, srb_status) == 2);
static_assert(offsetof(VmscsiRequest, path_id) == 5);
static_assert(offsetof(VmscsiRequest, lun) == 7);
static_assert(offsetof(VmscsiRequest, cdb_length) == 8);
static_assert(offsetof(VmscsiRequest, data_in) == 10);
static_assert(offsetof(VmscsiRequest, data_transfer_length) == 12);
static_assert(offsetof(VmscsiRequest, cdb_or_sense) == 16);
static_assert(offsetof(VmscsiRequest, reserve) == 36);
static_assert(offsetof(VmscsiRequest, srb_flags) == 40);
static_assert(offsetof(VmscsiRequest, queue_sort_key) == 48);
inline constexpr size_t win8_extension_size = 16; // vmscsi_size_delta before Windows 8

// struct vmstorage_channel_properties
inline constexpr uint32_t properties_multi_channel = 0x1; // STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL
struct ChannelProperties {
    uint32_t reserved;
    uint16_t max_channel_count; // sub-channels the host would create (with properties_multi_channel)
    uint16_t reserved1;
    uint32_t flags;
    uint32_t max_transfer_bytes; // Linux: max_sectors = round_down(this, 4096) / 512
    uint32_t reserved2[2]; // a u64 on the wire, split to keep the union 4-byte aligned at offset 12
};
static_assert(sizeof(ChannelProperties) == 24);
static_assert(offsetof(ChannelProperties, flags) == 8);
static_assert(offsetof(ChannelProperties, max_transfer_bytes) == 12);

// struct vmstorage_protocol_version
struct ProtocolVersion {
    uint16_t major_minor;
    uint16_t revision; // Windows build revision; Linux sends 0
};
static_assert(sizeof(ProtocolVersion) == 4);

// struct vstor_packet (packed): operation, flags, status and a 52-byte union.
struct VstorPacket {
    uint32_t operation;
    uint32_t flags;
    uint32_t status;
    union {
        VmscsiRequest srb;
        ChannelProperties properties;
        ProtocolVersion version;
        uint16_t sub_channel_count;
        uint8_t buffer[52];
    };
};
static_assert(sizeof(VstorPacket) == 64);
static_assert(offsetof(VstorPacket, srb) == 12);

// Packet sizes: Windows 8 and later (what Linux 6.1 always sends), and before (no Windows 8 extension).
inline constexpr size_t packet_size = sizeof(VstorPacket);
inline constexpr size_t pre_win8_packet_size = sizeof(VstorPacket) - win8_extension_size;
static_assert(pre_win8_packet_size == 48);

// Linux's SCSI addressing limits for a storvsc SCSI controller (STORVSC_MAX_*); Hyper-V puts every disk at
// path 0, target 0 and uses the LUN as the controller location (0..63).
inline constexpr unsigned linux_max_channels = 8;
inline constexpr unsigned linux_max_targets = 2;
inline constexpr unsigned max_luns_per_controller = 64;

} // namespace vmgen::protocols::vmbus::storvsp
