// Hyper-V integration components (ICs: shutdown, heartbeat, time sync, KVP, ...): the messages inside the
// inband packets (type 6) of an IC channel.
// Reference: Linux 6.1 include/linux/hyperv.h (struct vmbuspipe_hdr, ic_version, icmsg_hdr, icmsg_negotiate,
// shutdown_msg_data, heartbeat_msg_data, ictimesync_data, ictimesync_ref_data, ICMSGTYPE_*, ICMSGHDRFLAG_*,
// IC_VERSION_NEGOTIATION_MAX_VER_COUNT), include/uapi/linux/hyperv.h (UTIL_FW_VERSION, HV_S_OK, HV_E_FAIL),
// drivers/hv/hv_util.c (service versions, message handlers, ring sizes), drivers/hv/channel_mgmt.c
// (vmbus_prep_negotiate_resp).
//
// Every IC packet payload is: IcPipeHeader (8 bytes), IcMessageHeader (20 bytes), then the message body.
// Linux locates the icmsg_hdr at sizeof(struct vmbuspipe_hdr) and the body at ICMSG_HDR = 28 and ignores the
// pipe header's contents. The host starts every exchange: it sends a request (flags TRANSACTION | REQUEST),
// the guest rewrites the same buffer in place (status, body, flags TRANSACTION | RESPONSE) and sends all of it
// back with the packet's trans_id. The first exchange after OPENCHANNEL is NEGOTIATE.
//
// Negotiation: the host's NEGOTIATE body lists `framework_count` framework versions, then `message_count`
// service versions (newest first). The guest picks the first of its own framework versions the host offers,
// then the first of its service versions the host offers, and answers counts 1/1 with the chosen pair in
// versions[0] (framework) and versions[1] (service), or counts 0/0 if there is no match (the pair then holds
// garbage). It sets icmsgsize to 0x10 and keeps the packet's length.
//
// All fields little-endian; the structures have their wire sizes without packing (static_asserts below);
// copy them in and out of packet buffers with memcpy.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmgen::protocols::vmbus {

// struct vmbuspipe_hdr. Linux ignores it; Hyper-V's message pipes put the pipe packet type (1: data) in
// `flags` and the number of bytes after the pipe header in `message_size`.
struct IcPipeHeader {
    uint32_t flags;
    uint32_t message_size;
};
static_assert(sizeof(IcPipeHeader) == 8);
inline constexpr uint32_t ic_pipe_flag_data = 1;

// struct ic_version.
struct IcVersion {
    uint16_t major;
    uint16_t minor;

    friend constexpr bool operator==(const IcVersion&, const IcVersion&) = default;
};
static_assert(sizeof(IcVersion) == 4);

// struct icmsg_hdr.
struct IcMessageHeader {
    IcVersion framework_version; // icverframe
    uint16_t message_type;       // icmsgtype: ic_message_type_*
    IcVersion message_version;   // icvermsg
    uint16_t message_size;       // icmsgsize: body bytes (the guest sets 0x10 in a NEGOTIATE response)
    uint32_t status;             // hv_s_ok or a failure HRESULT (set by the responder)
    uint8_t transaction_id;      // ictransaction_id: echoed by the guest
    uint8_t flags;               // icflags: ic_flag_*
    uint8_t reserved[2];
};
static_assert(sizeof(IcMessageHeader) == 20);
static_assert(offsetof(IcMessageHeader, message_type) == 4);
static_assert(offsetof(IcMessageHeader, message_version) == 6);
static_assert(offsetof(IcMessageHeader, message_size) == 10);
static_assert(offsetof(IcMessageHeader, status) == 12);
static_assert(offsetof(IcMessageHeader, transaction_id) == 16);
static_assert(offsetof(IcMessageHeader, flags) == 17);

// ICMSG_HDR: where the message body starts in the packet payload.
inline constexpr size_t ic_header_size = sizeof(IcPipeHeader) + sizeof(IcMessageHeader);
static_assert(ic_header_size == 28);

// ICMSGTYPE_*.
inline constexpr uint16_t ic_message_type_negotiate = 0;
inline constexpr uint16_t ic_message_type_heartbeat = 1;
inline constexpr uint16_t ic_message_type_kvp_exchange = 2;
inline constexpr uint16_t ic_message_type_shutdown = 3;
inline constexpr uint16_t ic_message_type_timesync = 4;
inline constexpr uint16_t ic_message_type_vss = 5;
inline constexpr uint16_t ic_message_type_fcopy = 7;

// ICMSGHDRFLAG_*.
inline constexpr uint8_t ic_flag_transaction = 1;
inline constexpr uint8_t ic_flag_request = 2;
inline constexpr uint8_t ic_flag_response = 4;

// HRESULTs in IcMessageHeader::status (include/uapi/linux/hyperv.h).
inline constexpr uint32_t hv_s_ok = 0x00000000;
inline constexpr uint32_t hv_e_fail = 0x80004005;

// struct icmsg_negotiate: followed by framework_count + message_count IcVersion entries.
struct IcNegotiate {
    uint16_t framework_count; // icframe_vercnt
    uint16_t message_count;   // icmsg_vercnt
    uint32_t reserved;
};
static_assert(sizeof(IcNegotiate) == 8);
// IC_VERSION_NEGOTIATION_MAX_VER_COUNT: Linux refuses a NEGOTIATE with more versions of either kind.
inline constexpr uint16_t ic_max_version_count = 100;
// The icmsgsize of a NEGOTIATE response (vmbus_prep_negotiate_resp).
inline constexpr uint16_t ic_negotiate_response_size = 0x10;

// Framework versions (UTIL_FW_VERSION, UTIL_WS2K8_FW_VERSION).
inline constexpr IcVersion ic_framework_3_0 {3, 0};
inline constexpr IcVersion ic_framework_1_0 {1, 0};

// Service versions Linux 6.1 accepts (hv_util.c sd_versions, hb_versions, ts_versions).
inline constexpr IcVersion shutdown_version_3_2 {3, 2};
inline constexpr IcVersion shutdown_version_3_1 {3, 1};
inline constexpr IcVersion shutdown_version_3_0 {3, 0};
inline constexpr IcVersion shutdown_version_1_0 {1, 0};
inline constexpr IcVersion heartbeat_version_3_0 {3, 0};
inline constexpr IcVersion heartbeat_version_1_0 {1, 0};
inline constexpr IcVersion timesync_version_4_0 {4, 0};
inline constexpr IcVersion timesync_version_3_0 {3, 0};
inline constexpr IcVersion timesync_version_1_0 {1, 0};

// struct shutdown_msg_data (body of ic_message_type_shutdown). Linux acts on `flags` only and answers
// hv_s_ok for 0/1 (shut down), 2/3 (restart), 4/5 (hibernate, only if configured), hv_e_fail otherwise.
// Linux and Windows (icsvc's _IC_SHUTDOWN_MSG_DATA) both declare display_message as 2048 bytes and neither
// documents an encoding; the host writes UTF-16LE (see ShutdownDevice).
struct ShutdownMessage {
    uint32_t reason_code;
    uint32_t timeout_seconds;
    uint32_t flags; // shutdown_flag_*
    uint8_t display_message[2048];
};
static_assert(sizeof(ShutdownMessage) == 2060);
static_assert(offsetof(ShutdownMessage, flags) == 8);
static_assert(offsetof(ShutdownMessage, display_message) == 12);
inline constexpr uint32_t shutdown_flag_force = 1;
inline constexpr uint32_t shutdown_flag_restart = 2;
inline constexpr uint32_t shutdown_flag_hibernate = 4;

// struct heartbeat_msg_data (body of ic_message_type_heartbeat). The guest answers with seq_num + 1 (Linux
// increments it in place); it requires only the 8 bytes of seq_num to be present.
struct HeartbeatMessage {
    uint64_t seq_num;
    uint32_t reserved[8];
};
static_assert(sizeof(HeartbeatMessage) == 40);

// struct ictimesync_data / ictimesync_ref_data are __packed (25 and 22 bytes) and have no natural layout
// here; their field offsets, for a future time sync device:
//   ictimesync_data (versions < 4.0): parenttime @0 (u64, 100 ns since 1601), childtime @8, roundtriptime @16,
//     flags @24 (u8)
//   ictimesync_ref_data (4.0): parenttime @0, vmreferencetime @8 (reference TSC count), flags @16, leapflags
//     @17, stratum @18, reserved @19..21
inline constexpr size_t timesync_data_size = 25;
inline constexpr size_t timesync_ref_data_size = 22;
inline constexpr uint8_t timesync_flag_probe = 0;
inline constexpr uint8_t timesync_flag_sync = 1;
inline constexpr uint8_t timesync_flag_sample = 2;

} // namespace vmgen::protocols::vmbus
