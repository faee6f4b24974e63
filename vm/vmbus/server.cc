#include "vm/vmbus/server.h"

#include "support/log.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace vmgen::vm::vmbus {

namespace wire = protocols::vmbus;
using wire::MessageType;

namespace {

bool version_supported(uint32_t version)
{
    switch (version) {
    case wire::version_win10_v5_3:
    case wire::version_win10_v5_2:
    case wire::version_win10_v5_1:
    case wire::version_win10_v5:
    case wire::version_win10_v4_1:
    case wire::version_win10:
    case wire::version_win8_1:
    case wire::version_win8:
        return true;
    default:
        return false;
    }
}

template <typename T>
T read_message(std::span<const uint8_t> payload)
{
    T value {};
    std::memcpy(&value, payload.data(), std::min(sizeof(T), payload.size()));
    return value;
}

template <typename T>
T make_message(MessageType type)
{
    T value {};
    if constexpr (std::is_same_v<T, wire::MessageHeader>)
        value.message_type = static_cast<uint32_t>(type);
    else
        value.header.message_type = static_cast<uint32_t>(type);
    return value;
}

} // namespace

VmbusServer::VmbusServer(const GuestMemory& memory, SynicGuestSide& synic) : m_memory(memory), m_synic(synic) {}

VmbusServer::~VmbusServer()
{
    std::lock_guard lock(m_control_mutex);
    for (auto& [relid, slot] : m_slots)
        if (slot.channel)
            close_channel(relid, slot);
}

template <typename... Args>
void VmbusServer::guest_error(fmt::format_string<Args...> f, Args&&... args)
{
    if (m_warnings_left > 0) {
        --m_warnings_left;
        log_warn("vmbus", f, std::forward<Args>(args)...);
    } else {
        log_debug("vmbus", f, std::forward<Args>(args)...);
    }
}

template <typename T>
void VmbusServer::post(const T& message)
{
    post_bytes(std::span(reinterpret_cast<const uint8_t*>(&message), sizeof(T)));
}

void VmbusServer::post_bytes(std::span<const uint8_t> bytes)
{
    if (!m_synic.post_message(m_target_vp, m_sint, wire::synic_message_type, bytes)) {
        uint32_t type = 0;
        std::memcpy(&type, bytes.data(), sizeof(type));
        guest_error("cannot post message type {} to VP {} SINT {}", type, m_target_vp, m_sint);
    }
}

VmbusServer::Slot* VmbusServer::find_slot(uint32_t relid)
{
    auto it = m_slots.find(relid);
    return it == m_slots.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------------------------------------
// Entry points

uint16_t VmbusServer::on_post_message(uint32_t connection_id, uint32_t message_type,
                                      std::span<const uint8_t> payload)
{
    if (connection_id != wire::message_connection_id && connection_id != wire::message_connection_id_4)
        return hv_status::invalid_connection_id;
    std::lock_guard lock(m_control_mutex);
    if (message_type != wire::synic_message_type) {
        guest_error("HvPostMessage with message type {} (expected 1)", message_type);
        return hv_status::invalid_parameter;
    }
    if (payload.size() < sizeof(wire::MessageHeader)) {
        guest_error("channel message of {} bytes has no header", payload.size());
        return hv_status::success;
    }
    auto header = read_message<wire::MessageHeader>(payload);
    auto type = static_cast<MessageType>(header.message_type);
    size_t min_size = wire::min_guest_message_size(type);
    if (payload.size() < min_size) {
        guest_error("channel message type {} of {} bytes, need {}", header.message_type, payload.size(), min_size);
        return hv_status::success;
    }
    handle_message(connection_id, type, payload);
    return hv_status::success;
}

uint16_t VmbusServer::on_signal_event(uint32_t connection_id, uint16_t /*flag_number*/)
{
    std::lock_guard lock(m_open_mutex);
    if (connection_id == wire::event_connection_id) {
        // Shared event connection (non-dedicated interrupts): we offer dedicated ones, but wake everyone.
        for (auto& [relid, channel] : m_open)
            channel->notify();
        return hv_status::success;
    }
    if (connection_id <= event_connection_id_base)
        return hv_status::invalid_connection_id;
    auto it = m_open.find(connection_id - event_connection_id_base);
    if (it == m_open.end())
        return hv_status::invalid_connection_id;
    it->second->notify();
    return hv_status::success;
}

void VmbusServer::handle_message(uint32_t connection_id, MessageType type, std::span<const uint8_t> payload)
{
    if (type == MessageType::initiate_contact) {
        on_initiate_contact(connection_id, payload);
        return;
    }
    if (!m_connected) {
        guest_error("channel message type {} before INITIATE_CONTACT", static_cast<uint32_t>(type));
        return;
    }
    switch (type) {
    case MessageType::request_offers:
        on_request_offers();
        break;
    case MessageType::gpadl_header:
        on_gpadl_header(payload);
        break;
    case MessageType::gpadl_body:
        on_gpadl_body(payload);
        break;
    case MessageType::gpadl_teardown:
        on_gpadl_teardown(payload);
        break;
    case MessageType::open_channel:
        on_open_channel(payload);
        break;
    case MessageType::close_channel:
        on_close_channel(payload);
        break;
    case MessageType::modify_channel:
        on_modify_channel(payload);
        break;
    case MessageType::relid_released:
        on_relid_released(payload);
        break;
    case MessageType::unload:
        on_unload();
        break;
    case MessageType::tl_connect_request:
        log_debug("vmbus", "hv_sock connect request ignored (not supported)");
        break;
    default:
        guest_error("unexpected channel message type {} from the guest", static_cast<uint32_t>(type));
        break;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Connection

void VmbusServer::on_initiate_contact(uint32_t connection_id, std::span<const uint8_t> payload)
{
    auto msg = read_message<wire::InitiateContact>(payload);
    if (m_connected) {
        log_info("vmbus", "guest reconnects without UNLOAD: ending the previous session");
        end_session();
    }
    uint32_t version = msg.version_requested;
    bool modern = version >= wire::version_win10_v5;
    uint8_t sint = modern ? static_cast<uint8_t>(msg.interrupt_page_or_sint & 0xff) : wire::message_sint;
    // Answer on the VP the guest named, even when refusing.
    m_target_vp = msg.target_vcpu;
    m_sint = sint < 16 ? sint : wire::message_sint;

    auto response = make_message<wire::VersionResponse>(MessageType::version_response);
    bool ok = version_supported(version);
    if (!ok)
        log_info("vmbus", "guest asks for VMBus {}.{}: not supported", version >> 16, version & 0xffff);
    if (ok && modern != (connection_id == wire::message_connection_id_4)) {
        guest_error("VMBus {}.{} requested on connection id {}", version >> 16, version & 0xffff, connection_id);
        ok = false;
    }
    if (ok && sint >= 16) {
        guest_error("INITIATE_CONTACT names SINT {}", sint);
        ok = false;
    }
    if (ok) {
        m_connected = true;
        m_version = version;
        m_interrupt_page = modern ? 0 : msg.interrupt_page_or_sint;
        m_monitor_pages[0] = msg.monitor_page1;
        m_monitor_pages[1] = msg.monitor_page2;
        m_offers_requested = false;
        response.version_supported = 1;
        response.message_connection_id = modern ? wire::message_connection_id_4 : wire::message_connection_id;
        log_info("vmbus", "connected: version {}.{}, VP {} SINT {}", version >> 16, version & 0xffff, m_target_vp,
                 m_sint);
    }
    post(response);
}

void VmbusServer::on_request_offers()
{
    if (m_offers_requested) {
        guest_error("REQUESTOFFERS repeated; ignored");
        return;
    }
    m_offers_requested = true;
    for (auto& [relid, slot] : m_slots)
        if (slot.device && !slot.rescinded)
            send_offer(relid, slot);
    post(make_message<wire::MessageHeader>(MessageType::all_offers_delivered));
}

void VmbusServer::send_offer(uint32_t relid, Slot& slot)
{
    const DeviceOffer& info = slot.device->offer();
    auto msg = make_message<wire::OfferChannel>(MessageType::offer_channel);
    msg.offer.interface_type = info.class_id;
    msg.offer.interface_instance = info.instance_id;
    msg.offer.channel_flags = info.channel_flags;
    msg.offer.mmio_megabytes = info.mmio_megabytes;
    std::memcpy(msg.offer.user_defined, info.user_defined.data(), sizeof(msg.offer.user_defined));
    msg.child_relid = relid;
    msg.monitor_id = 0;
    msg.monitor_flags = 0;   // monitor_allocated = 0: the guest signals with HvSignalEvent
    msg.interrupt_flags = 1; // is_dedicated_interrupt
    msg.connection_id = connection_id_for(relid);
    post(msg);
    slot.offered = true;
}

void VmbusServer::on_unload()
{
    log_info("vmbus", "guest unloads VMBus");
    end_session();
    post(make_message<wire::MessageHeader>(MessageType::unload_response));
}

void VmbusServer::end_session()
{
    for (auto& [relid, slot] : m_slots)
        if (slot.channel)
            close_channel(relid, slot);
    m_gpadls.clear();
    std::erase_if(m_slots, [](const auto& entry) { return entry.second.device == nullptr; });
    for (auto& [relid, slot] : m_slots) {
        slot.offered = false;
        slot.rescinded = false;
        slot.device->reset();
    }
    m_connected = false;
    m_version = 0;
    m_offers_requested = false;
}

void VmbusServer::on_relid_released(std::span<const uint8_t> payload)
{
    auto msg = read_message<wire::RelidReleased>(payload);
    Slot* slot = find_slot(msg.child_relid);
    if (!slot || !slot->rescinded) {
        guest_error("RELID_RELEASED for relid {} that was not rescinded", msg.child_relid);
        return;
    }
    std::erase_if(m_gpadls, [&](const auto& entry) { return entry.second.relid == msg.child_relid; });
    m_slots.erase(msg.child_relid);
}

// ---------------------------------------------------------------------------------------------------------
// GPADLs

void VmbusServer::reply_gpadl_created(uint32_t relid, uint32_t gpadl_id, uint32_t status)
{
    auto reply = make_message<wire::GpadlCreated>(MessageType::gpadl_created);
    reply.child_relid = relid;
    reply.gpadl = gpadl_id;
    reply.creation_status = status;
    post(reply);
}

void VmbusServer::on_gpadl_header(std::span<const uint8_t> payload)
{
    auto msg = read_message<wire::GpadlHeader>(payload);
    Slot* slot = find_slot(msg.child_relid);
    if (m_gpadls.contains(msg.gpadl)) {
        guest_error("GPADL_HEADER for GPADL {:#x}, which exists", msg.gpadl);
        reply_gpadl_created(msg.child_relid, msg.gpadl, wire::status_invalid_parameter);
        return;
    }
    if (!slot || !slot->device || slot->rescinded) {
        guest_error("GPADL_HEADER for GPADL {:#x} names unknown relid {}", msg.gpadl, msg.child_relid);
        reply_gpadl_created(msg.child_relid, msg.gpadl, wire::status_invalid_parameter);
        return;
    }
    uint32_t length = msg.range_buffer_length;
    uint32_t minimum = uint32_t {msg.range_count} * (sizeof(wire::GpaRange) + sizeof(uint64_t));
    if (msg.range_count == 0 || length % 8 != 0 || length < minimum) {
        guest_error("GPADL {:#x}: {} ranges in {} bytes", msg.gpadl, msg.range_count, length);
        reply_gpadl_created(msg.child_relid, msg.gpadl, wire::status_invalid_parameter);
        return;
    }
    if (m_gpadls.size() >= max_gpadls) {
        guest_error("GPADL {:#x}: too many GPADLs ({})", msg.gpadl, m_gpadls.size());
        reply_gpadl_created(msg.child_relid, msg.gpadl, wire::status_unsuccessful);
        return;
    }
    Gpadl gpadl;
    gpadl.relid = msg.child_relid;
    gpadl.range_count = msg.range_count;
    gpadl.expected_bytes = length;
    auto bytes = payload.subspan(sizeof(wire::GpadlHeader));
    if (bytes.size() > length) {
        guest_error("GPADL {:#x}: header carries {} bytes of a {}-byte range buffer", msg.gpadl, bytes.size(),
                    length);
        reply_gpadl_created(msg.child_relid, msg.gpadl, wire::status_invalid_parameter);
        return;
    }
    gpadl.buffer.assign(bytes.begin(), bytes.end());
    gpadl.buffer.reserve(length);
    m_gpadls.emplace(msg.gpadl, std::move(gpadl));
    if (bytes.size() == length)
        finish_gpadl(msg.gpadl);
}

void VmbusServer::on_gpadl_body(std::span<const uint8_t> payload)
{
    auto msg = read_message<wire::GpadlBody>(payload);
    auto it = m_gpadls.find(msg.gpadl);
    if (it == m_gpadls.end() || it->second.complete) {
        guest_error("GPADL_BODY for GPADL {:#x}, which is not being created", msg.gpadl);
        return;
    }
    Gpadl& gpadl = it->second;
    auto bytes = payload.subspan(sizeof(wire::GpadlBody));
    if (bytes.size() > gpadl.expected_bytes - gpadl.buffer.size()) {
        guest_error("GPADL {:#x}: body overruns the {}-byte range buffer", msg.gpadl, gpadl.expected_bytes);
        uint32_t relid = gpadl.relid;
        m_gpadls.erase(it);
        reply_gpadl_created(relid, msg.gpadl, wire::status_invalid_parameter);
        return;
    }
    gpadl.buffer.insert(gpadl.buffer.end(), bytes.begin(), bytes.end());
    if (gpadl.buffer.size() == gpadl.expected_bytes)
        finish_gpadl(msg.gpadl);
}

void VmbusServer::finish_gpadl(uint32_t gpadl_id)
{
    Gpadl& gpadl = m_gpadls.at(gpadl_id);
    std::span<const uint8_t> buffer = gpadl.buffer;
    std::vector<uint64_t> pfns;
    size_t pos = 0;
    bool ok = true;
    for (uint32_t r = 0; ok && r < gpadl.range_count; ++r) {
        if (buffer.size() - pos < sizeof(wire::GpaRange)) {
            guest_error("GPADL {:#x}: range {} truncated", gpadl_id, r);
            ok = false;
            break;
        }
        wire::GpaRange range;
        std::memcpy(&range, buffer.data() + pos, sizeof(range));
        pos += sizeof(range);
        if (range.byte_count == 0 || range.byte_offset >= page_size) {
            guest_error("GPADL {:#x}: range {} has {} bytes at offset {}", gpadl_id, r, range.byte_count,
                        range.byte_offset);
            ok = false;
            break;
        }
        uint64_t pages = (uint64_t {range.byte_offset} + range.byte_count + page_size - 1) / page_size;
        if ((buffer.size() - pos) / 8 < pages) {
            guest_error("GPADL {:#x}: range {} needs {} PFNs, the buffer holds {}", gpadl_id, r, pages,
                        (buffer.size() - pos) / 8);
            ok = false;
            break;
        }
        if (r == 0) {
            gpadl.first_range_offset = range.byte_offset;
            gpadl.first_range_bytes = range.byte_count;
        }
        for (uint64_t p = 0; p < pages; ++p) {
            uint64_t pfn = 0;
            std::memcpy(&pfn, buffer.data() + pos, sizeof(pfn));
            pos += sizeof(pfn);
            if (pfn >= (1ull << 52) || !m_memory.contains(pfn * page_size, page_size)) {
                guest_error("GPADL {:#x}: PFN {:#x} is outside guest RAM", gpadl_id, pfn);
                ok = false;
                break;
            }
            pfns.push_back(pfn);
        }
    }
    if (ok && pos != buffer.size()) {
        guest_error("GPADL {:#x}: {} stray bytes after the ranges", gpadl_id, buffer.size() - pos);
        ok = false;
    }
    uint32_t relid = gpadl.relid;
    if (!ok) {
        m_gpadls.erase(gpadl_id);
        reply_gpadl_created(relid, gpadl_id, wire::status_invalid_parameter);
        return;
    }
    gpadl.single_range = gpadl.range_count == 1;
    gpadl.pfns = std::move(pfns);
    gpadl.buffer = {};
    gpadl.complete = true;
    log_debug("vmbus", "GPADL {:#x} for relid {}: {} pages", gpadl_id, relid, gpadl.pfns.size());
    reply_gpadl_created(relid, gpadl_id, wire::status_success);
}

void VmbusServer::on_gpadl_teardown(std::span<const uint8_t> payload)
{
    auto msg = read_message<wire::GpadlTeardown>(payload);
    auto it = m_gpadls.find(msg.gpadl);
    if (it == m_gpadls.end()) {
        guest_error("GPADL_TEARDOWN for unknown GPADL {:#x}", msg.gpadl);
        return;
    }
    if (it->second.teardown_pending) {
        guest_error("GPADL_TEARDOWN for GPADL {:#x} repeated", msg.gpadl);
        return;
    }
    if (it->second.in_use) {
        // The ring of an open channel: torn down when the channel closes (the guest closes first).
        guest_error("GPADL_TEARDOWN for GPADL {:#x} in use by open relid {}: deferred until close", msg.gpadl,
                    it->second.relid);
        it->second.teardown_pending = true;
        return;
    }
    m_gpadls.erase(it);
    auto reply = make_message<wire::GpadlTorndown>(MessageType::gpadl_torndown);
    reply.gpadl = msg.gpadl;
    post(reply);
}

// ---------------------------------------------------------------------------------------------------------
// Channels

void VmbusServer::on_open_channel(std::span<const uint8_t> payload)
{
    auto msg = read_message<wire::OpenChannel>(payload);
    auto reply = make_message<wire::OpenResult>(MessageType::open_channel_result);
    reply.child_relid = msg.child_relid;
    reply.open_id = msg.open_id;
    Slot* slot = find_slot(msg.child_relid);
    if (!slot || !slot->device || slot->rescinded || !slot->offered) {
        guest_error("OPENCHANNEL for unknown relid {}", msg.child_relid);
        reply.status = wire::status_invalid_parameter;
    } else if (slot->channel) {
        guest_error("OPENCHANNEL for relid {}, which is open", msg.child_relid);
        reply.status = wire::status_unsuccessful;
    } else if (auto opened = open_channel(msg.child_relid, *slot, msg); !opened) {
        guest_error("OPENCHANNEL relid {}: {}", msg.child_relid, opened.error().message());
        reply.status = wire::status_unsuccessful;
    } else {
        reply.status = wire::status_success;
    }
    post(reply);
}

Result<void> VmbusServer::open_channel(uint32_t relid, Slot& slot, const wire::OpenChannel& msg)
{
    auto it = m_gpadls.find(msg.ring_gpadl_handle);
    if (it == m_gpadls.end() || !it->second.complete)
        return fail("ring GPADL {:#x} does not exist", msg.ring_gpadl_handle);
    Gpadl& gpadl = it->second;
    if (gpadl.relid != relid)
        return fail("ring GPADL {:#x} belongs to relid {}", msg.ring_gpadl_handle, gpadl.relid);
    if (gpadl.in_use || gpadl.teardown_pending)
        return fail("ring GPADL {:#x} is in use or being torn down", msg.ring_gpadl_handle);
    if (!gpadl.single_range || gpadl.first_range_offset != 0 ||
        gpadl.first_range_bytes != gpadl.pfns.size() * page_size)
        return fail("ring GPADL {:#x} is not one page-aligned range", msg.ring_gpadl_handle);
    const DeviceOffer& info = slot.device->offer();
    uint64_t offset = msg.downstream_ring_page_offset;
    uint64_t pages = gpadl.pfns.size();
    uint64_t min_pages = 1 + (uint64_t {info.min_ring_data_bytes} + page_size - 1) / page_size;
    if (offset < min_pages || offset > pages || pages - offset < min_pages)
        return fail("rings of {} and {} pages (device needs {} each)", offset, offset > pages ? 0 : pages - offset,
                    min_pages);

    ChannelParams params;
    params.relid = relid;
    params.target_vp = msg.target_vp;
    params.sint = m_sint;
    params.ring_pfns = gpadl.pfns;
    params.downstream_page_offset = msg.downstream_ring_page_offset;
    params.user_data = msg.user_data;
    auto channel = TRY(ServerChannel::create(m_memory, m_synic, *slot.device, params));
    TRY_CTX(slot.device->on_open(*channel), "device refused");
    gpadl.in_use = true;
    slot.ring_gpadl = msg.ring_gpadl_handle;
    channel->start();
    {
        std::lock_guard lock(m_open_mutex);
        m_open[relid] = channel.get();
    }
    slot.channel = std::move(channel);
    // Packets the guest queued before opening completed are picked up now.
    slot.channel->notify();
    log_debug("vmbus", "relid {} open: ring GPADL {:#x}, {} + {} pages, VP {}", relid, msg.ring_gpadl_handle,
              offset, pages - offset, msg.target_vp);
    return {};
}

void VmbusServer::close_channel(uint32_t relid, Slot& slot)
{
    {
        std::lock_guard lock(m_open_mutex);
        m_open.erase(relid);
    }
    slot.channel->stop();
    if (slot.device)
        slot.device->on_close(*slot.channel);
    slot.channel.reset();
    auto it = m_gpadls.find(slot.ring_gpadl);
    if (it != m_gpadls.end() && it->second.in_use) {
        it->second.in_use = false;
        if (it->second.teardown_pending) {
            m_gpadls.erase(it);
            auto reply = make_message<wire::GpadlTorndown>(MessageType::gpadl_torndown);
            reply.gpadl = slot.ring_gpadl;
            post(reply);
        }
    }
    slot.ring_gpadl = 0;
    log_debug("vmbus", "relid {} closed", relid);
}

void VmbusServer::on_close_channel(std::span<const uint8_t> payload)
{
    auto msg = read_message<wire::CloseChannel>(payload);
    Slot* slot = find_slot(msg.child_relid);
    if (!slot || !slot->channel) {
        guest_error("CLOSECHANNEL for relid {}, which is not open", msg.child_relid);
        return;
    }
    close_channel(msg.child_relid, *slot);
}

void VmbusServer::on_modify_channel(std::span<const uint8_t> payload)
{
    auto msg = read_message<wire::ModifyChannel>(payload);
    if (m_version < wire::version_win10_v4_1) {
        guest_error("MODIFYCHANNEL with VMBus {}.{}; ignored", m_version >> 16, m_version & 0xffff);
        return;
    }
    Slot* slot = find_slot(msg.child_relid);
    uint32_t status = wire::status_success;
    if (!slot || !slot->channel) {
        guest_error("MODIFYCHANNEL for relid {}, which is not open", msg.child_relid);
        status = wire::status_invalid_parameter;
    } else {
        slot->channel->set_target_vp(msg.target_vp);
    }
    if (m_version >= wire::version_win10_v5_3) {
        auto reply = make_message<wire::ModifyChannelResponse>(MessageType::modify_channel_response);
        reply.child_relid = msg.child_relid;
        reply.status = status;
        post(reply);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Host-side management

Result<uint32_t> VmbusServer::add_device(Device& device)
{
    std::lock_guard lock(m_control_mutex);
    uint32_t relid = 1;
    while (relid <= wire::max_channel_relid && m_slots.contains(relid))
        ++relid;
    if (relid > wire::max_channel_relid)
        return fail("no free VMBus relid");
    Slot& slot = m_slots[relid];
    slot.device = &device;
    log_debug("vmbus", "relid {}: device {}", relid, device.offer().class_id.to_string());
    if (m_connected && m_offers_requested)
        send_offer(relid, slot);
    return relid;
}

Result<void> VmbusServer::remove_device(uint32_t relid)
{
    std::lock_guard lock(m_control_mutex);
    Slot* slot = find_slot(relid);
    if (!slot || !slot->device)
        return fail("no device at relid {}", relid);
    if (slot->channel)
        close_channel(relid, *slot);
    slot->device = nullptr;
    if (m_connected && slot->offered) {
        slot->rescinded = true;
        auto msg = make_message<wire::RescindOffer>(MessageType::rescind_channel_offer);
        msg.child_relid = relid;
        post(msg);
    } else {
        std::erase_if(m_gpadls, [&](const auto& entry) { return entry.second.relid == relid; });
        m_slots.erase(relid);
    }
    return {};
}

void VmbusServer::reset()
{
    std::lock_guard lock(m_control_mutex);
    end_session();
    m_warnings_left = 64;
}

bool VmbusServer::connected() const
{
    std::lock_guard lock(m_control_mutex);
    return m_connected;
}

uint32_t VmbusServer::version() const
{
    std::lock_guard lock(m_control_mutex);
    return m_version;
}

bool VmbusServer::channel_open(uint32_t relid) const
{
    std::lock_guard lock(m_open_mutex);
    return m_open.contains(relid);
}

size_t VmbusServer::gpadl_count() const
{
    std::lock_guard lock(m_control_mutex);
    return m_gpadls.size();
}

} // namespace vmgen::vm::vmbus
