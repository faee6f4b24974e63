// VMBus channel management messages: the payloads of the SynIC messages (message type 1) exchanged between
// the guest's VMBus driver and the host on the message connection (ids 1 and 4).
// Reference: Linux 6.1 include/linux/hyperv.h (struct vmbus_channel_*), drivers/hv/hyperv_vmbus.h (connection
// ids, SINT), drivers/hv/connection.c (version list), drivers/hv/channel_mgmt.c (minimum sizes the guest checks).
// All fields little-endian; every structure has its wire size without packing (static_asserts below). Copy them
// in and out of message buffers with memcpy.
// Usable by freestanding code: only freestanding-safe standard headers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vmgen::protocols::vmbus {

// ---------------------------------------------------------------------------------------------------------
// GUIDs. On the wire (offers, hv_sock requests) a GUID is 16 bytes in the Microsoft mixed-endian layout: the
// first three fields (u32, u16, u16) little-endian, the last eight bytes in text order. `bytes` holds the wire
// encoding, so a Guid can be memcpy'd into a message unchanged.
//   ba6163d9-04a1-4d29-b605-72e2ffb1dc7f  ->  d9 63 61 ba a1 04 29 4d b6 05 72 e2 ff b1 dc 7f
struct Guid {
    std::array<uint8_t, 16> bytes; // value-initialise (Guid {}) for all zeroes

    friend constexpr bool operator==(const Guid&, const Guid&) = default;

    // Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (hex digits of either case, optional surrounding braces).
    static constexpr std::optional<Guid> parse(std::string_view text)
    {
        if (text.size() == 38 && text.front() == '{' && text.back() == '}')
            text = text.substr(1, 36);
        if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-')
            return std::nullopt;
        // Text byte order; bytes 0-3, 4-5 and 6-7 are reversed for the wire.
        std::array<uint8_t, 16> text_bytes {};
        size_t pos = 0;
        for (size_t i = 0; i < 16; ++i) {
            if (text[pos] == '-')
                ++pos;
            int hi = hex_digit(text[pos]);
            int lo = hex_digit(text[pos + 1]);
            if (hi < 0 || lo < 0)
                return std::nullopt;
            text_bytes[i] = static_cast<uint8_t>(hi * 16 + lo);
            pos += 2;
        }
        constexpr std::array<size_t, 16> wire_from_text {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
        Guid g {};
        for (size_t i = 0; i < 16; ++i)
            g.bytes[i] = text_bytes[wire_from_text[i]];
        return g;
    }

    // Lower-case text form.
    [[nodiscard]] std::string to_string() const
    {
        constexpr std::array<size_t, 16> text_from_wire {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
        constexpr char digits[] = "0123456789abcdef";
        std::string out;
        out.reserve(36);
        for (size_t i = 0; i < 16; ++i) {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                out.push_back('-');
            uint8_t b = bytes[text_from_wire[i]];
            out.push_back(digits[b >> 4]);
            out.push_back(digits[b & 0xf]);
        }
        return out;
    }

private:
    static constexpr int hex_digit(char c)
    {
        if (c >= '0' && c <= '9')
            return c - '0';
        if (c >= 'a' && c <= 'f')
            return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
            return c - 'A' + 10;
        return -1;
    }
};
static_assert(sizeof(Guid) == 16);

// Not constexpr: calling it in a constant evaluation is the compile-time error for a bad GUID literal.
inline void malformed_guid_literal() {}

// A GUID from a literal, checked at compile time: guid("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f").
consteval Guid guid(const char* text)
{
    std::optional<Guid> g = Guid::parse(std::string_view(text));
    if (!g) {
        malformed_guid_literal();
        return Guid {};
    }
    return *g;
}

static_assert(guid("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f").bytes ==
              std::array<uint8_t, 16> {0xd9, 0x63, 0x61, 0xba, 0xa1, 0x04, 0x29, 0x4d, 0xb6, 0x05, 0x72, 0xe2,
                                       0xff, 0xb1, 0xdc, 0x7f});

// ---------------------------------------------------------------------------------------------------------
// Connections (drivers/hv/hyperv_vmbus.h).
inline constexpr uint32_t message_connection_id = 1;   // VMBUS_MESSAGE_CONNECTION_ID (versions < 5.0)
inline constexpr uint32_t event_connection_id = 2;     // VMBUS_EVENT_CONNECTION_ID (unused with dedicated ints)
inline constexpr uint32_t message_connection_id_4 = 4; // VMBUS_MESSAGE_CONNECTION_ID_4 (versions >= 5.0)
inline constexpr uint8_t message_sint = 2;              // VMBUS_MESSAGE_SINT
inline constexpr uint32_t synic_message_type = 1;       // hv_message type of every VMBus message
inline constexpr size_t max_message_size = 240;         // MAX_SIZE_CHANNEL_MESSAGE (HV_MESSAGE_PAYLOAD_BYTE_COUNT)
inline constexpr uint32_t max_channel_relid = 2047;     // relids 1..2047 (MAX_CHANNEL_RELIDS - 1)

// Protocol versions (include/linux/hyperv.h VERSION_*): major << 16 | minor.
inline constexpr uint32_t make_version(uint32_t major, uint32_t minor) { return major << 16 | minor; }
inline constexpr uint32_t version_win8 = make_version(2, 4);
inline constexpr uint32_t version_win8_1 = make_version(3, 0);
inline constexpr uint32_t version_win10 = make_version(4, 0);
inline constexpr uint32_t version_win10_v4_1 = make_version(4, 1); // MODIFYCHANNEL
inline constexpr uint32_t version_win10_v5 = make_version(5, 0);   // connection id 4, msg_sint, msg_conn_id
inline constexpr uint32_t version_win10_v5_1 = make_version(5, 1);
inline constexpr uint32_t version_win10_v5_2 = make_version(5, 2);
inline constexpr uint32_t version_win10_v5_3 = make_version(5, 3); // MODIFYCHANNEL_RESPONSE

// ---------------------------------------------------------------------------------------------------------
// Message types (enum vmbus_channel_message_type).
enum class MessageType : uint32_t {
    invalid = 0,
    offer_channel = 1,
    rescind_channel_offer = 2,
    request_offers = 3,
    all_offers_delivered = 4,
    open_channel = 5,
    open_channel_result = 6,
    close_channel = 7,
    gpadl_header = 8,
    gpadl_body = 9,
    gpadl_created = 10,
    gpadl_teardown = 11,
    gpadl_torndown = 12,
    relid_released = 13,
    initiate_contact = 14,
    version_response = 15,
    unload = 16,
    unload_response = 17,
    tl_connect_request = 21,
    modify_channel = 22,
    tl_connect_result = 23,
    modify_channel_response = 24,
};

struct MessageHeader { // struct vmbus_channel_message_header
    uint32_t message_type; // MessageType
    uint32_t padding;
};
static_assert(sizeof(MessageHeader) == 8);

// CHANNELMSG_OFFERCHANNEL body (struct vmbus_channel_offer).
inline constexpr size_t max_user_defined_bytes = 120; // MAX_USER_DEFINED_BYTES
struct ChannelOffer {
    Guid interface_type;     // if_type: the device class
    Guid interface_instance; // if_instance
    uint32_t reserved[4];    // Linux: u64 reserved1, reserved2 (kept as u32 so that nothing needs packing)
    uint16_t channel_flags;  // offer_flag_*
    uint16_t mmio_megabytes;
    uint8_t user_defined[max_user_defined_bytes]; // pipe offers: u32 pipe_mode then 116 bytes
    uint16_t sub_channel_index;
    uint16_t reserved3;
};
static_assert(sizeof(ChannelOffer) == 176);
static_assert(offsetof(ChannelOffer, channel_flags) == 48);
static_assert(offsetof(ChannelOffer, user_defined) == 52);
static_assert(offsetof(ChannelOffer, sub_channel_index) == 172);

// Server flags (channel_flags).
inline constexpr uint16_t offer_flag_enumerate_device_interface = 0x1;
inline constexpr uint16_t offer_flag_named_pipe_mode = 0x10;
inline constexpr uint16_t offer_flag_tlnpi_provider = 0x2000; // hv_sock

// 1: host -> guest (struct vmbus_channel_offer_channel).
struct OfferChannel {
    MessageHeader header;
    ChannelOffer offer;
    uint32_t child_relid;
    uint8_t monitor_id;
    uint8_t monitor_flags;     // bit 0: monitor_allocated
    uint16_t interrupt_flags;  // bit 0: is_dedicated_interrupt
    uint32_t connection_id;    // the guest signals this id with HvSignalEvent
};
static_assert(sizeof(OfferChannel) == 196);
static_assert(offsetof(OfferChannel, child_relid) == 184);
static_assert(offsetof(OfferChannel, monitor_id) == 188);
static_assert(offsetof(OfferChannel, interrupt_flags) == 190);
static_assert(offsetof(OfferChannel, connection_id) == 192);

// 2: host -> guest (struct vmbus_channel_rescind_offer).
struct RescindOffer {
    MessageHeader header;
    uint32_t child_relid;
};
static_assert(sizeof(RescindOffer) == 12);

// 3 REQUESTOFFERS, 4 ALLOFFERS_DELIVERED, 16 UNLOAD, 17 UNLOAD_RESPONSE: header only.

// 5: guest -> host (struct vmbus_channel_open_channel).
struct OpenChannel {
    MessageHeader header;
    uint32_t child_relid;
    uint32_t open_id;
    uint32_t ring_gpadl_handle;
    uint32_t target_vp;
    uint32_t downstream_ring_page_offset; // first page of the host -> guest ring inside the GPADL
    uint8_t user_data[max_user_defined_bytes];
};
static_assert(sizeof(OpenChannel) == 148);
static_assert(offsetof(OpenChannel, downstream_ring_page_offset) == 24);
static_assert(offsetof(OpenChannel, user_data) == 28);

// 6: host -> guest (struct vmbus_channel_open_result).
struct OpenResult {
    MessageHeader header;
    uint32_t child_relid;
    uint32_t open_id;
    uint32_t status; // 0 success
};
static_assert(sizeof(OpenResult) == 20);

// 7: guest -> host (struct vmbus_channel_close_channel).
struct CloseChannel {
    MessageHeader header;
    uint32_t child_relid;
};
static_assert(sizeof(CloseChannel) == 12);

// A GPA range inside a GPADL (struct gpa_range): byte_count, byte_offset into the first page, then
// ceil((byte_offset + byte_count) / 4096) page frame numbers.
struct GpaRange {
    uint32_t byte_count;
    uint32_t byte_offset;
};
static_assert(sizeof(GpaRange) == 8);

// 8: guest -> host (struct vmbus_channel_gpadl_header), followed by the first bytes of the range buffer
// (`range_buffer_length` bytes in all: `range_count` GpaRange headers, each followed by its PFNs).
struct GpadlHeader {
    MessageHeader header;
    uint32_t child_relid;
    uint32_t gpadl;
    uint16_t range_buffer_length;
    uint16_t range_count;
};
static_assert(sizeof(GpadlHeader) == 20);
// Linux puts at most 26 PFNs in the header message and 28 in each body message (channel.c).
inline constexpr size_t gpadl_header_max_pfns = (max_message_size - sizeof(GpadlHeader) - sizeof(GpaRange)) / 8;
static_assert(gpadl_header_max_pfns == 26);

// 9: guest -> host (struct vmbus_channel_gpadl_body), followed by u64 PFNs continuing the range buffer.
struct GpadlBody {
    MessageHeader header;
    uint32_t message_number;
    uint32_t gpadl;
};
static_assert(sizeof(GpadlBody) == 16);
inline constexpr size_t gpadl_body_max_pfns = (max_message_size - sizeof(GpadlBody)) / 8;
static_assert(gpadl_body_max_pfns == 28);

// 10: host -> guest (struct vmbus_channel_gpadl_created).
struct GpadlCreated {
    MessageHeader header;
    uint32_t child_relid;
    uint32_t gpadl;
    uint32_t creation_status; // 0 success
};
static_assert(sizeof(GpadlCreated) == 20);

// 11: guest -> host (struct vmbus_channel_gpadl_teardown).
struct GpadlTeardown {
    MessageHeader header;
    uint32_t child_relid;
    uint32_t gpadl;
};
static_assert(sizeof(GpadlTeardown) == 16);

// 12: host -> guest (struct vmbus_channel_gpadl_torndown).
struct GpadlTorndown {
    MessageHeader header;
    uint32_t gpadl;
};
static_assert(sizeof(GpadlTorndown) == 12);

// 13: guest -> host (struct vmbus_channel_relid_released).
struct RelidReleased {
    MessageHeader header;
    uint32_t child_relid;
};
static_assert(sizeof(RelidReleased) == 12);

// 14: guest -> host (struct vmbus_channel_initiate_contact). Versions < 5.0 send the interrupt page GPA in
// `interrupt_page`; versions >= 5.0 put the message SINT in its low byte instead.
struct InitiateContact {
    MessageHeader header;
    uint32_t version_requested;
    uint32_t target_vcpu; // VP index that receives the host's messages
    uint64_t interrupt_page_or_sint;
    uint64_t monitor_page1;
    uint64_t monitor_page2;
};
static_assert(sizeof(InitiateContact) == 40);
static_assert(offsetof(InitiateContact, interrupt_page_or_sint) == 16);
static_assert(offsetof(InitiateContact, monitor_page2) == 32);

// 15: host -> guest (struct vmbus_channel_version_response).
struct VersionResponse {
    MessageHeader header;
    uint8_t version_supported; // 1 yes, 0 no (the guest tries its next version)
    uint8_t connection_state;  // 0 successful
    uint16_t padding;
    uint32_t message_connection_id; // versions >= 5.0: the id for all later messages
};
static_assert(sizeof(VersionResponse) == 16);

// 21: guest -> host (struct vmbus_channel_tl_connect_request), hv_sock.
struct TlConnectRequest {
    MessageHeader header;
    Guid guest_endpoint_id;
    Guid host_service_id;
};
static_assert(sizeof(TlConnectRequest) == 40);

// 22: guest -> host (struct vmbus_channel_modifychannel).
struct ModifyChannel {
    MessageHeader header;
    uint32_t child_relid;
    uint32_t target_vp;
};
static_assert(sizeof(ModifyChannel) == 16);

// 23: host -> guest, TL_CONNECT_RESULT (Hyper-V; Linux ignores it).
struct TlConnectResult {
    MessageHeader header;
    Guid endpoint_id;
    Guid service_id;
    uint32_t status;
};
static_assert(sizeof(TlConnectResult) == 44);

// 24: host -> guest (struct vmbus_channel_modifychannel_response), versions >= 5.3.
struct ModifyChannelResponse {
    MessageHeader header;
    uint32_t child_relid;
    uint32_t status; // 0 success
};
static_assert(sizeof(ModifyChannelResponse) == 16);

// Status values the host puts in OPEN_RESULT / GPADL_CREATED / MODIFYCHANNEL_RESPONSE (NTSTATUS; Linux only
// tests for nonzero).
inline constexpr uint32_t status_success = 0;
inline constexpr uint32_t status_unsuccessful = 0xC0000001;      // STATUS_UNSUCCESSFUL
inline constexpr uint32_t status_invalid_parameter = 0xC000000D; // STATUS_INVALID_PARAMETER

// The smallest payload the host accepts for each guest -> host message (the struct size, header included).
constexpr size_t min_guest_message_size(MessageType type)
{
    switch (type) {
    case MessageType::request_offers:
    case MessageType::unload:
        return sizeof(MessageHeader);
    case MessageType::open_channel:
        return sizeof(OpenChannel);
    case MessageType::close_channel:
        return sizeof(CloseChannel);
    case MessageType::gpadl_header:
        return sizeof(GpadlHeader);
    case MessageType::gpadl_body:
        return sizeof(GpadlBody);
    case MessageType::gpadl_teardown:
        return sizeof(GpadlTeardown);
    case MessageType::relid_released:
        return sizeof(RelidReleased);
    case MessageType::initiate_contact:
        return sizeof(InitiateContact);
    case MessageType::tl_connect_request:
        return sizeof(TlConnectRequest);
    case MessageType::modify_channel:
        return sizeof(ModifyChannel);
    default:
        return sizeof(MessageHeader);
    }
}

} // namespace vmgen::protocols::vmbus
