// Test helper: plays the Linux side of VMBus against a VmbusServer. It posts channel messages as the guest's
// hv_vmbus would, collects what the server sends through a fake SynIC, builds GPADLs over pages of a real
// GuestMemory and drives the guest's half of each ring (it writes the guest -> host ring and reads the
// host -> guest ring, with Linux's index and signalling rules).
#pragma once

#include "protocols/vmbus/channel_messages.h"
#include "protocols/vmbus/ring.h"
#include "vm/memory/guest_memory.h"
#include "vm/vmbus/server.h"
#include "vm/vmbus/synic_link.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

namespace vmgen::vm::vmbus::testing {

struct SynicMessage {
    uint32_t vp = 0;
    uint8_t sint = 0;
    uint32_t type = 0;
    std::vector<uint8_t> payload;

    [[nodiscard]] protocols::vmbus::MessageType channel_type() const;
    template <typename T>
    [[nodiscard]] T as() const
    {
        T value {};
        std::memcpy(&value, payload.data(), std::min(sizeof(T), payload.size()));
        return value;
    }
};

struct SynicEvent {
    uint32_t vp = 0;
    uint8_t sint = 0;
    uint32_t flag = 0;
};

class FakeSynic final : public SynicGuestSide {
public:
    bool post_message(uint32_t vp_index, uint8_t sint, uint32_t message_type,
                      std::span<const uint8_t> payload) override;
    bool signal_event(uint32_t vp_index, uint8_t sint, uint32_t flag) override;

    std::optional<SynicMessage> pop_message();
    [[nodiscard]] size_t message_count() const;
    [[nodiscard]] size_t event_count(uint32_t flag) const;
    [[nodiscard]] std::vector<SynicEvent> events() const;

    bool refuse_posts = false;

private:
    mutable std::mutex m_mutex;
    std::deque<SynicMessage> m_messages;
    std::vector<SynicEvent> m_events;
};

// Polls `condition` until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The guest's view of one ring inside a GPADL (control page + data pages).
class GuestRing {
public:
    GuestRing(const GuestMemory& memory, std::vector<uint64_t> pfns) : m_memory(memory), m_pfns(std::move(pfns)) {}

    [[nodiscard]] uint32_t data_size() const { return static_cast<uint32_t>((m_pfns.size() - 1) * 4096); }
    [[nodiscard]] uint32_t control(uint32_t offset) const;
    void set_control(uint32_t offset, uint32_t value) const;
    void write_data(uint32_t offset, std::span<const uint8_t> bytes) const;
    void read_data(uint32_t offset, std::span<uint8_t> bytes) const;

    // Guest as writer (Linux hv_ringbuffer_write): false if full. `signalled` tells whether it would signal.
    bool write_packet(uint16_t type, uint16_t flags, uint64_t trans_id, std::span<const uint8_t> payload,
                      bool* signalled = nullptr);
    // The same with a type-specific `header` (a multiple of 8 bytes) between the descriptor and the payload.
    bool write_packet(uint16_t type, uint16_t flags, uint64_t trans_id, std::span<const uint8_t> header,
                      std::span<const uint8_t> payload, bool* signalled = nullptr);

    struct Packet {
        protocols::vmbus::VmPacketDescriptor desc {};
        std::vector<uint8_t> payload; // from offset8 * 8 to len8 * 8
        uint64_t trailer = 0;
    };
    // Guest as reader (Linux hv_pkt_iter_first/next/close, minus the signalling).
    std::optional<Packet> read_packet();

private:
    const GuestMemory& m_memory;
    std::vector<uint64_t> m_pfns;
};

class ScriptedGuest {
public:
    ScriptedGuest(VmbusServer& server, FakeSynic& synic, const GuestMemory& memory)
        : m_server(server), m_synic(synic), m_memory(memory)
    {
    }

    // Raw message posting on the current message connection (or `connection_id`).
    uint16_t post_raw(std::span<const uint8_t> bytes, std::optional<uint32_t> connection_id = {});
    template <typename T>
    uint16_t post(const T& message, std::optional<uint32_t> connection_id = {})
    {
        return post_raw(std::span(reinterpret_cast<const uint8_t*>(&message), sizeof(T)), connection_id);
    }
    template <typename T>
    static T message(protocols::vmbus::MessageType type)
    {
        T value {};
        if constexpr (std::is_same_v<T, protocols::vmbus::MessageHeader>)
            value.message_type = static_cast<uint32_t>(type);
        else
            value.header.message_type = static_cast<uint32_t>(type);
        return value;
    }

    // The next message from the host, which must have `type` (test failure otherwise).
    std::optional<SynicMessage> expect(protocols::vmbus::MessageType type);
    // True if the host sent nothing.
    [[nodiscard]] bool no_messages() const { return m_synic.message_count() == 0; }

    // INITIATE_CONTACT for `version` on connection 4 (>= 5.0) or 1; returns version_supported.
    bool connect(uint32_t version, uint32_t target_vp = 0);
    // REQUESTOFFERS; returns the offers up to ALLOFFERS_DELIVERED.
    std::vector<protocols::vmbus::OfferChannel> request_offers();

    // Pages: a bump allocator over guest RAM from 1 MiB.
    uint64_t alloc_pages(size_t count);
    // Sends GPADL_HEADER + GPADL_BODY messages the way Linux splits them (26 PFNs, then 28 per body).
    void send_gpadl(uint32_t relid, uint32_t gpadl_id, std::span<const uint64_t> pfns);
    // send_gpadl and wait for GPADL_CREATED: its status (nullopt if no/other reply).
    std::optional<uint32_t> create_gpadl(uint32_t relid, uint32_t gpadl_id, std::span<const uint64_t> pfns);
    // GPADL_TEARDOWN; true if GPADL_TORNDOWN for it came back.
    bool teardown_gpadl(uint32_t relid, uint32_t gpadl_id);

    struct OpenedChannel {
        uint32_t relid = 0;
        uint32_t connection_id = 0;
        uint32_t gpadl = 0;
        std::vector<uint64_t> pfns;
        uint32_t send_pages = 0;
        std::optional<GuestRing> outbound; // guest -> host
        std::optional<GuestRing> inbound;  // host -> guest
    };
    // Allocates rings, creates the ring GPADL, opens; returns the OPEN_RESULT status (nullopt: no answer).
    std::optional<uint32_t> open(const protocols::vmbus::OfferChannel& offer, uint32_t gpadl_id,
                                 uint32_t send_pages, uint32_t recv_pages, OpenedChannel& out,
                                 uint32_t target_vp = 0);
    void close(uint32_t relid);
    // Writes a packet into the channel's outbound ring and signals the host as Linux would.
    bool send(OpenedChannel& channel, std::span<const uint8_t> payload, uint64_t trans_id, uint16_t flags = 0);
    // Any packet type, with a type-specific header (e.g. the GPA range list of type 9).
    bool send_packet(OpenedChannel& channel, uint16_t type, uint16_t flags, uint64_t trans_id,
                     std::span<const uint8_t> header, std::span<const uint8_t> payload);
    // Waits for a packet in the channel's inbound ring.
    std::optional<GuestRing::Packet> receive(OpenedChannel& channel,
                                             std::chrono::milliseconds timeout = std::chrono::seconds(5));

    [[nodiscard]] uint32_t message_connection_id() const { return m_message_connection_id; }

private:
    VmbusServer& m_server;
    FakeSynic& m_synic;
    const GuestMemory& m_memory;
    uint32_t m_message_connection_id = protocols::vmbus::message_connection_id_4;
    uint64_t m_next_page = 0x100; // pfn
};

} // namespace vmgen::vm::vmbus::testing
