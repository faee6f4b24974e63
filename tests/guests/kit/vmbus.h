// Test-guest kit: a VMBus client that talks to the host the way Linux 6.1's hv_vmbus does
// (drivers/hv/connection.c, channel_mgmt.c, channel.c; include/linux/hyperv.h): version negotiation
// (INITIATE_CONTACT / VERSION_RESPONSE), offers, GPADLs, opening and closing channels, UNLOAD; channel
// messages go out through HvPostMessage and come in through the SynIC message slot of SINT 2; channel
// events go out through HvSignalEvent and come in as SIEFP flags.
//
// Every wait has a timeout; on any mismatch the functions return false with hv::error() naming the step,
// what was expected and what came. Protocol steps print "vmgen-guest: " lines (set_verbose(false) stops it).
// Needs hv::enable_hypercalls() and hv::synic_enable() first. Bootstrap processor only; no locking.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kit/hyperv.h"
#include "kit/vmbus_ring.h"

namespace kit::vmbus {

// Channel message types (enum vmbus_channel_message_type).
enum : uint32_t {
    msg_offer = 1,
    msg_rescind = 2,
    msg_request_offers = 3,
    msg_all_offers_delivered = 4,
    msg_open = 5,
    msg_open_result = 6,
    msg_close = 7,
    msg_gpadl_header = 8,
    msg_gpadl_body = 9,
    msg_gpadl_created = 10,
    msg_gpadl_teardown = 11,
    msg_gpadl_torndown = 12,
    msg_relid_released = 13,
    msg_initiate_contact = 14,
    msg_version_response = 15,
    msg_unload = 16,
    msg_unload_response = 17,
    msg_tl_connect_request = 21,
    msg_modify_channel = 22,
    msg_tl_connect_result = 23,
    msg_modify_channel_response = 24,
};
const char* message_name(uint32_t type);

// Wire sizes Linux sends, and the least it accepts (channel_message_table min_payload_len).
inline constexpr uint32_t size_initiate_contact = 40;
inline constexpr uint32_t size_version_response = 16;
inline constexpr uint32_t size_offer = 196;
inline constexpr uint32_t size_open = 148;
inline constexpr uint32_t size_open_result = 20;
inline constexpr uint32_t size_gpadl_created = 20;
inline constexpr uint32_t size_gpadl_torndown = 12;
inline constexpr unsigned gpadl_header_max_pfns = 26; // (240 - 20 - 8) / 8
inline constexpr unsigned gpadl_body_max_pfns = 28;   // (240 - 16) / 8

inline constexpr uint32_t version(uint32_t major, uint32_t minor) { return (major << 16) | minor; }
// vmbus_versions[] in connection.c, newest first.
inline constexpr uint32_t linux_versions[] = {version(5, 3), version(5, 2), version(5, 1), version(5, 0),
                                              version(4, 1), version(4, 0), version(3, 0), version(2, 4)};
inline constexpr uint32_t message_connection_id = 1;   // VMBUS_MESSAGE_CONNECTION_ID (< 5.0)
inline constexpr uint32_t message_connection_id_4 = 4; // VMBUS_MESSAGE_CONNECTION_ID_4 (>= 5.0)
inline constexpr unsigned message_sint = 2;            // VMBUS_MESSAGE_SINT
inline constexpr uint8_t callback_vector = 0xf3;       // HYPERVISOR_CALLBACK_VECTOR

struct Guid {
    uint8_t bytes[16]; // wire order: data1, data2, data3 little-endian, then data4
    bool operator==(const Guid& o) const { return __builtin_memcmp(bytes, o.bytes, 16) == 0; }
};
// "0e0b6031-5213-4934-818b-38d90ced39db" -> wire bytes (compile-time usable).
constexpr Guid guid(const char* s)
{
    auto hex = [](char c) -> uint8_t {
        return static_cast<uint8_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    };
    auto byte = [&](int i) -> uint8_t { return static_cast<uint8_t>(hex(s[i]) << 4 | hex(s[i + 1])); };
    // Text positions of each wire byte.
    constexpr int pos[16] = {6, 4, 2, 0, 11, 9, 16, 14, 19, 21, 24, 26, 28, 30, 32, 34};
    Guid g{};
    for (int i = 0; i < 16; ++i)
        g.bytes[i] = byte(pos[i]);
    return g;
}
// Text form into out (37 bytes).
void guid_text(const Guid& g, char out[37]);
// The device's short name for well-known classes ("shutdown", "heartbeat", "scsi", ...), else "unknown".
const char* class_name(const Guid& g);

inline constexpr Guid class_shutdown = guid("0e0b6031-5213-4934-818b-38d90ced39db");
inline constexpr Guid class_heartbeat = guid("57164f39-9115-4e78-ab55-382f3bd5422d");
inline constexpr Guid class_timesync = guid("9527e630-d0ae-497b-adce-e80ab0175caf");
inline constexpr Guid class_kvp = guid("a9a0f4e7-5a45-4d96-b827-8a841e8c03e6");
inline constexpr Guid class_vss = guid("35fa2e29-ea23-4236-96ae-3a6ebacba440");
inline constexpr Guid class_scsi = guid("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f");
inline constexpr Guid class_ide = guid("32412632-86cb-44a2-9b5c-50d1417354f5");
inline constexpr Guid class_network = guid("f8615163-df3e-46c5-913f-f2d2f965ed0e");
inline constexpr Guid class_keyboard = guid("f912ad6d-2b17-48ea-bd65-f927a61c7684");
inline constexpr Guid class_mouse = guid("cfa8b69e-5b4a-4cc0-b98b-8ba1a1f3f95a");
inline constexpr Guid class_video = guid("da0a7802-e377-4aac-8e77-0558eb1073f8");
inline constexpr Guid class_balloon = guid("525074dc-8985-46e2-8057-a307dc18a502");

struct Offer { // the parts of vmbus_channel_offer_channel a client uses
    Guid type{};
    Guid instance{};
    uint16_t flags = 0;
    uint16_t mmio_megabytes = 0;
    uint16_t sub_channel_index = 0;
    uint32_t relid = 0;
    uint8_t monitor_id = 0;
    bool monitor_allocated = false;
    bool dedicated_interrupt = false;
    uint32_t connection_id = 0;
};

inline constexpr unsigned max_offers = 64;

struct Bus {
    uint32_t version = 0;     // negotiated, 0 before
    uint32_t msg_conn_id = 0; // connection id of channel messages after the contact
    uint32_t vp_index = 0;    // target_vcpu / target_vp
    uint8_t connection_state = 0;
    uint8_t* int_page = nullptr; // interrupt page: receive half, send half (< 5.0; allocated always)
    uint8_t* monitor_pages[2] = {};
    Offer offers[max_offers];
    unsigned offer_count = 0;
    uint32_t next_gpadl = 0xe1e10; // Linux's first handle
    bool all_offers_delivered = false;
};
Bus& bus();

void set_verbose(bool on);

// Allocates the interrupt and monitor pages (vmbus_connect) and remembers the VP index.
bool init(uint32_t vp_index);
// vmbus_connect: INITIATE_CONTACT for each version in linux_versions until one is accepted.
// timeout_ms: per VERSION_RESPONSE.
bool connect(uint64_t timeout_ms);
// REQUESTOFFERS, then OFFERCHANNEL messages until ALLOFFERS_DELIVERED.
bool request_offers(uint64_t timeout_ms);
const Offer* find_offer(const Guid& type);

// Posts a channel message on msg_conn_id with Linux's retries (vmbus_post_msg).
bool post(const void* msg, uint32_t size, const char* step);
// Waits for the next channel message; it must be `type` with at least min_size bytes (else an error
// naming `step`). Messages are consumed (slot freed, EOM when pending).
bool expect(uint32_t type, uint32_t min_size, hv::Message& out, uint64_t timeout_ms, const char* step);
// Takes a pending channel message without waiting (false when none).
bool poll_message(hv::Message& out);

// GPADL over `pages` physically contiguous pages at buf (one range, byte offset 0), split into a
// GPADL_HEADER with up to 26 PFNs and GPADL_BODY messages with up to 28, then GPADL_CREATED. A GPADL created
// here stays on close_all()'s list until teardown_gpadl() (which takes it off first, whatever the host says).
bool create_gpadl(uint32_t relid, const void* buf, uint32_t pages, uint32_t& handle, uint64_t timeout_ms);
bool teardown_gpadl(uint32_t relid, uint32_t handle, uint64_t timeout_ms);
inline constexpr unsigned max_tracked_gpadls = 32; // created with create_gpadl and not torn down, at once

struct Channel {
    Offer offer{};
    uint8_t* ring_pages = nullptr;
    uint32_t send_pages = 0, recv_pages = 0; // control page included
    uint32_t gpadl = 0;
    bool open = false;
    Ring out; // guest -> host
    Ring in;  // host -> guest
    uint64_t signals = 0; // events signalled to the host
    const char* name = "";
};
// vmbus_open: allocates the ring pages, GPADL, initialises both rings, OPENCHANNEL (openid = relid,
// downstream page offset = send_pages, target_vp) and waits for OPEN_RESULT status 0. An open channel is on
// close_all()'s list (the Channel must stay where it is while open) until close_channel().
bool open_channel(Channel& ch, const Offer& offer, uint32_t send_pages, uint32_t recv_pages, uint64_t timeout_ms,
                  const char* name);
// vmbus_close_internal: CLOSECHANNEL, then the ring GPADL's teardown (nothing when the channel is not open).
bool close_channel(Channel& ch, uint64_t timeout_ms);
// vmbus_setevent: the monitor page bit when the offer allocated a monitor id, else (interrupt page bit for
// shared-interrupt channels and) HvSignalEvent on the offer's connection id.
bool signal(Channel& ch);
// The host signalled the channel (SIEFP flag relid of SINT 2): test and clear.
bool take_event(const Channel& ch);
// Sends an inband packet (vmbus_sendpacket) and signals when Linux would.
bool send_inband(Channel& ch, const void* payload, uint32_t length, uint64_t trans_id, uint16_t flags = 0);
// Receives one packet (vmbus_recvpacket): ReadResult::empty when nothing is there; signals the host when
// the read freed the space it waits for.
ReadResult receive(Channel& ch, void* buf, uint32_t buflen, Packet& packet);

// UNLOAD, then wait for UNLOAD_RESPONSE (other messages in between are consumed and reported).
bool unload(uint64_t timeout_ms);

// What close_all() was doing when something failed.
enum class Teardown : uint8_t { channel, gpadl, unload };
using TeardownReport = void (*)(Teardown what);
// Whatever is open, closed like Linux's unload: every channel still open (close_channel, in the order they
// were opened), every GPADL of create_gpadl not torn down (teardown_gpadl), then UNLOAD when connected. A
// failure is passed to `report` (nullptr: none) with hv::error() saying what, and the rest goes on; returns
// whether everything went through. timeout_ms: per host answer.
bool close_all(uint64_t timeout_ms, TeardownReport report);

} // namespace kit::vmbus
