// VmbusServer: the host end of VMBus channel management, driven the way Linux 6.1 drives it
// (drivers/hv/connection.c, channel_mgmt.c, channel.c).
//
//   guest                                   host
//   INITIATE_CONTACT (conn 4 or 1)    ->    VERSION_RESPONSE (5.3 .. 2.4 supported)
//   REQUESTOFFERS                     ->    OFFERCHANNEL per device, ALLOFFERS_DELIVERED
//   GPADL_HEADER [+ GPADL_BODY ...]   ->    GPADL_CREATED (after the last PFN)
//   OPENCHANNEL                       ->    OPEN_RESULT; the device's worker starts
//   HvSignalEvent(channel conn id)    ->    the channel's worker drains its ring
//   CLOSECHANNEL, GPADL_TEARDOWN      ->    GPADL_TORNDOWN
//   MODIFYCHANNEL                     ->    MODIFYCHANNEL_RESPONSE (5.3+)
//   UNLOAD                            ->    UNLOAD_RESPONSE (everything closed and dropped)
//   host removes a device             ->    RESCIND; guest answers RELID_RELEASED
//
// Messages to the guest go to the VP and SINT named in INITIATE_CONTACT (SINT 2 before 5.0), as SynIC message
// type 1. Every guest message is validated (size, state, ids); a bad one is answered with a failure status
// where the guest waits for an answer, otherwise ignored, and logged (warn for the first ones, then debug).
//
// Threads: on_post_message/on_signal_event come from vCPU threads, add_device/remove_device/reset from the
// machine's threads; the control plane is serialised by one lock, and signal delivery to workers by another.
// SynicGuestSide is called with the control lock held; it must not call back into the server.
#pragma once

#include "protocols/vmbus/channel_messages.h"
#include "vm/memory/guest_memory.h"
#include "vm/vmbus/channel.h"
#include "vm/vmbus/device.h"
#include "vm/vmbus/synic_link.h"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

namespace vmgen::vm::vmbus {

// Each channel's event connection id is this base + its relid (the offer's connection_id).
inline constexpr uint32_t event_connection_id_base = 0x10000;
// Limits on what a guest can make the host keep.
inline constexpr size_t max_gpadls = 1024;

class VmbusServer final : public VmbusHostSide {
public:
    VmbusServer(const GuestMemory& memory, SynicGuestSide& synic);
    // Closes every open channel (Device::on_close) but does not call Device::reset(): a device that outlives the
    // server (storage controllers survive guest resets) resets itself when its guest is gone.
    ~VmbusServer() override;
    VmbusServer(const VmbusServer&) = delete;
    VmbusServer& operator=(const VmbusServer&) = delete;

    // VmbusHostSide
    uint16_t on_post_message(uint32_t connection_id, uint32_t message_type,
                             std::span<const uint8_t> payload) override;
    uint16_t on_signal_event(uint32_t connection_id, uint16_t flag_number) override;

    // Registers a device and returns its relid (1..2047). If the guest already asked for offers the offer is
    // sent now (hot add). `device` must stay alive until remove_device() returns or the server is destroyed.
    [[nodiscard]] Result<uint32_t> add_device(Device& device);
    // Hot removal: closes the channel if open (Device::on_close), rescinds the offer if the guest saw it; the
    // relid is reused after the guest's RELID_RELEASED. The device is not referenced after this returns.
    [[nodiscard]] Result<void> remove_device(uint32_t relid);
    // VM reset: closes every channel, drops every GPADL, forgets the connection (devices stay registered and
    // get Device::reset()).
    void reset();

    // State, for tests and diagnostics.
    [[nodiscard]] bool connected() const;
    [[nodiscard]] uint32_t version() const; // 0 when not connected
    [[nodiscard]] bool channel_open(uint32_t relid) const;
    [[nodiscard]] size_t gpadl_count() const; // complete and in-progress
    [[nodiscard]] static uint32_t connection_id_for(uint32_t relid) { return event_connection_id_base + relid; }

private:
    struct Slot {
        Device* device = nullptr; // null once removed (rescinded, awaiting RELID_RELEASED)
        bool offered = false;     // the guest got the offer in this session
        bool rescinded = false;
        std::unique_ptr<ServerChannel> channel; // while open
        uint32_t ring_gpadl = 0;
    };
    struct Gpadl {
        uint32_t relid = 0;
        uint16_t range_count = 0;
        uint32_t expected_bytes = 0;
        std::vector<uint8_t> buffer; // range buffer being assembled
        bool complete = false;
        std::vector<uint64_t> pfns;  // all ranges' pages, in order (complete only)
        uint32_t first_range_offset = 0;
        uint64_t first_range_bytes = 0;
        bool single_range = false;
        bool in_use = false;         // ring of an open channel
        bool teardown_pending = false;
    };

    void handle_message(uint32_t connection_id, protocols::vmbus::MessageType type,
                        std::span<const uint8_t> payload);
    void on_initiate_contact(uint32_t connection_id, std::span<const uint8_t> payload);
    void on_request_offers();
    void on_gpadl_header(std::span<const uint8_t> payload);
    void on_gpadl_body(std::span<const uint8_t> payload);
    void on_gpadl_teardown(std::span<const uint8_t> payload);
    void on_open_channel(std::span<const uint8_t> payload);
    void on_close_channel(std::span<const uint8_t> payload);
    void on_modify_channel(std::span<const uint8_t> payload);
    void on_relid_released(std::span<const uint8_t> payload);
    void on_unload();

    void finish_gpadl(uint32_t gpadl_id);
    void reply_gpadl_created(uint32_t relid, uint32_t gpadl_id, uint32_t status);
    [[nodiscard]] Result<void> open_channel(uint32_t relid, Slot& slot, const protocols::vmbus::OpenChannel& msg);
    void close_channel(uint32_t relid, Slot& slot);
    void send_offer(uint32_t relid, Slot& slot);
    void end_session(); // closes channels, drops GPADLs and rescinded relids, resets devices
    Slot* find_slot(uint32_t relid);

    template <typename T>
    void post(const T& message);
    void post_bytes(std::span<const uint8_t> bytes);
    template <typename... Args>
    void guest_error(fmt::format_string<Args...> f, Args&&... args);

    const GuestMemory& m_memory;
    SynicGuestSide& m_synic;

    mutable std::mutex m_control_mutex; // everything below except m_open
    bool m_connected = false;
    uint32_t m_version = 0;
    uint32_t m_target_vp = 0;
    uint8_t m_sint = protocols::vmbus::message_sint;
    uint64_t m_interrupt_page = 0;
    uint64_t m_monitor_pages[2] = {0, 0};
    bool m_offers_requested = false;
    std::map<uint32_t, Slot> m_slots;
    std::map<uint32_t, Gpadl> m_gpadls;
    uint32_t m_warnings_left = 64;

    mutable std::mutex m_open_mutex; // the channels on_signal_event may wake
    std::map<uint32_t, ServerChannel*> m_open;
};

} // namespace vmgen::vm::vmbus
