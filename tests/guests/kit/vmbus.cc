// Test-guest kit: VMBus client (see vmbus.h).
#include "kit/vmbus.h"

#include "kit/cpu.h"
#include "kit/format.h"
#include "kit/serial.h"

namespace kit::vmbus {

namespace {

Bus g_bus;
bool g_verbose = true;

// What close_all() closes: the channels open (in opening order) and the GPADLs of create_gpadl.
Channel* g_channels[max_offers];
unsigned g_channel_count = 0;
struct TrackedGpadl {
    uint32_t relid, handle;
};
TrackedGpadl g_gpadls[max_tracked_gpadls];
unsigned g_gpadl_count = 0;

void untrack_channel(const Channel& ch)
{
    for (unsigned i = 0; i < g_channel_count; ++i) {
        if (g_channels[i] == &ch) {
            for (unsigned j = i + 1; j < g_channel_count; ++j)
                g_channels[j - 1] = g_channels[j];
            --g_channel_count;
            return;
        }
    }
}

void untrack_gpadl(uint32_t relid, uint32_t handle)
{
    for (unsigned i = 0; i < g_gpadl_count; ++i) {
        if (g_gpadls[i].relid == relid && g_gpadls[i].handle == handle) {
            for (unsigned j = i + 1; j < g_gpadl_count; ++j)
                g_gpadls[j - 1] = g_gpadls[j];
            --g_gpadl_count;
            return;
        }
    }
}

template <class T> T load(const uint8_t* p)
{
    T v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
template <class T> void store(uint8_t* p, T v) { __builtin_memcpy(p, &v, sizeof v); }

// A channel message under construction: header {msgtype, padding} then the body.
struct Out {
    uint8_t b[hv::message_payload_bytes] = {};
    explicit Out(uint32_t type) { store<uint32_t>(b, type); }
};

const char* version_text(uint32_t v, char out[12])
{
    unsigned major = v >> 16, minor = v & 0xffff;
    out[0] = static_cast<char>('0' + major % 10);
    out[1] = '.';
    out[2] = static_cast<char>('0' + minor % 10);
    out[3] = '\0';
    return out;
}

} // namespace

Bus& bus() { return g_bus; }
void set_verbose(bool on) { g_verbose = on; }

const char* message_name(uint32_t type)
{
    switch (type) {
    case msg_offer: return "OFFERCHANNEL";
    case msg_rescind: return "RESCIND_CHANNELOFFER";
    case msg_request_offers: return "REQUESTOFFERS";
    case msg_all_offers_delivered: return "ALLOFFERS_DELIVERED";
    case msg_open: return "OPENCHANNEL";
    case msg_open_result: return "OPENCHANNEL_RESULT";
    case msg_close: return "CLOSECHANNEL";
    case msg_gpadl_header: return "GPADL_HEADER";
    case msg_gpadl_body: return "GPADL_BODY";
    case msg_gpadl_created: return "GPADL_CREATED";
    case msg_gpadl_teardown: return "GPADL_TEARDOWN";
    case msg_gpadl_torndown: return "GPADL_TORNDOWN";
    case msg_relid_released: return "RELID_RELEASED";
    case msg_initiate_contact: return "INITIATE_CONTACT";
    case msg_version_response: return "VERSION_RESPONSE";
    case msg_unload: return "UNLOAD";
    case msg_unload_response: return "UNLOAD_RESPONSE";
    case msg_tl_connect_request: return "TL_CONNECT_REQUEST";
    case msg_modify_channel: return "MODIFYCHANNEL";
    case msg_tl_connect_result: return "TL_CONNECT_RESULT";
    case msg_modify_channel_response: return "MODIFYCHANNEL_RESPONSE";
    default: return "unknown";
    }
}

void guid_text(const Guid& g, char out[37])
{
    static const char digits[] = "0123456789abcdef";
    static const int pos[16] = {6, 4, 2, 0, 11, 9, 16, 14, 19, 21, 24, 26, 28, 30, 32, 34};
    for (int i = 0; i < 36; ++i)
        out[i] = '-';
    for (int i = 0; i < 16; ++i) {
        out[pos[i]] = digits[g.bytes[i] >> 4];
        out[pos[i] + 1] = digits[g.bytes[i] & 15];
    }
    out[36] = '\0';
}

const char* class_name(const Guid& g)
{
    struct Entry {
        const Guid* guid;
        const char* name;
    };
    static const Entry names[] = {
        {&class_shutdown, "shutdown"}, {&class_heartbeat, "heartbeat"}, {&class_timesync, "timesync"},
        {&class_kvp, "kvp"},           {&class_vss, "vss"},             {&class_scsi, "scsi"},
        {&class_ide, "ide"},           {&class_network, "network"},     {&class_keyboard, "keyboard"},
        {&class_mouse, "mouse"},       {&class_video, "video"},         {&class_balloon, "balloon"},
    };
    for (const Entry& e : names)
        if (*e.guid == g)
            return e.name;
    return "unknown";
}

bool init(uint32_t vp_index)
{
    g_bus.vp_index = vp_index;
    g_bus.int_page = static_cast<uint8_t*>(hv::alloc_pages(1));
    g_bus.monitor_pages[0] = static_cast<uint8_t*>(hv::alloc_pages(1));
    g_bus.monitor_pages[1] = static_cast<uint8_t*>(hv::alloc_pages(1));
    return g_bus.int_page && g_bus.monitor_pages[0] && g_bus.monitor_pages[1];
}

namespace {

// hv_post_message + vmbus_post_msg's retry policy; conn_id given explicitly for INITIATE_CONTACT.
bool post_on(uint32_t conn_id, const void* msg, uint32_t size, const char* step, uint16_t* status_out)
{
    uint32_t msgtype = load<uint32_t>(static_cast<const uint8_t*>(msg));
    uint64_t delay = 1;
    uint16_t status = 0;
    for (int retries = 0; retries < 100; ++retries) {
        status = hv::post_message(conn_id, 1, msg, size);
        if (status_out)
            *status_out = status;
        if (status == hv::status_success)
            return true;
        if (status == hv::status_invalid_connection_id && msgtype == msg_initiate_contact)
            break;
        if (status != hv::status_invalid_connection_id && status != hv::status_insufficient_memory &&
            status != hv::status_insufficient_buffers)
            break;
        delay_us(delay < 100000 ? delay : 100000);
        if (retries < 22)
            delay *= 2;
    }
    return hv::fail("%s: HvPostMessage(connection_id=%u, %s, %u bytes) expected status 0, got %u", step, conn_id,
                    message_name(msgtype), size, status);
}

} // namespace

bool post(const void* msg, uint32_t size, const char* step) { return post_on(g_bus.msg_conn_id, msg, size, step, nullptr); }

bool poll_message(hv::Message& out) { return hv::take_message(message_sint, out); }

bool expect(uint32_t type, uint32_t min_size, hv::Message& out, uint64_t timeout_ms, const char* step)
{
    bool got = hv::wait_until([&] { return poll_message(out); }, timeout_ms);
    if (!got)
        return hv::fail("%s: expected %s (type %u) in the SINT%u message slot within %lu ms, nothing came "
                        "(SINT interrupts so far: %lu)",
                        step, message_name(type), type, message_sint, timeout_ms, hv::sint_interrupts());
    if (out.size > hv::message_payload_bytes)
        return hv::fail("%s: message payload_size %u exceeds 240", step, out.size);
    uint32_t got_type = out.size >= 4 ? load<uint32_t>(out.payload) : 0xffffffffu;
    if (got_type != type)
        return hv::fail("%s: expected %s (type %u), got %s (type %u, %u bytes, hv message type 0x%x)", step,
                        message_name(type), type, message_name(got_type), got_type, out.size, out.type);
    if (out.size < min_size)
        return hv::fail("%s: %s is %u bytes, expected at least %u (Linux drops it)", step, message_name(type),
                        out.size, min_size);
    return true;
}

bool connect(uint64_t timeout_ms)
{
    char vt[12];
    for (uint32_t v : linux_versions) {
        Out m(msg_initiate_contact);
        store<uint32_t>(m.b + 8, v);
        store<uint32_t>(m.b + 12, g_bus.vp_index); // target_vcpu
        uint32_t conn_id;
        if (v >= version(5, 0)) {
            m.b[16] = message_sint; // msg_sint
            conn_id = message_connection_id_4;
        } else {
            store<uint64_t>(m.b + 16, hv::gpa(g_bus.int_page)); // interrupt_page
            conn_id = message_connection_id;
        }
        store<uint64_t>(m.b + 24, hv::gpa(g_bus.monitor_pages[0]));
        store<uint64_t>(m.b + 32, hv::gpa(g_bus.monitor_pages[1]));
        g_bus.msg_conn_id = conn_id;
        uint16_t status = 0;
        if (!post_on(conn_id, m.b, size_initiate_contact, "vmbus connect", &status)) {
            // Linux: a failed post of INITIATE_CONTACT moves on to the next version.
            if (g_verbose)
                line("vmbus version %s initiate_contact conn_id=%u post failed status=%u, trying the next",
                     version_text(v, vt), conn_id, status);
            continue;
        }
        hv::Message r;
        char step[48];
        format(step, sizeof step, "vmbus connect version %s", version_text(v, vt));
        if (!expect(msg_version_response, size_version_response, r, timeout_ms, step))
            return false;
        uint8_t supported = r.payload[8];
        uint8_t state = r.payload[9];
        uint32_t msg_conn_id = load<uint32_t>(r.payload + 12);
        if (!supported) {
            if (g_verbose)
                line("vmbus version %s rejected", version_text(v, vt));
            continue;
        }
        g_bus.version = v;
        g_bus.connection_state = state;
        if (v >= version(5, 0))
            g_bus.msg_conn_id = msg_conn_id;
        if (g_verbose)
            line("vmbus version %s accepted conn_id=%u connection_state=%u", version_text(v, vt), g_bus.msg_conn_id,
                 state);
        return true;
    }
    return hv::fail("vmbus connect: every version (5.3 5.2 5.1 5.0 4.1 4.0 3.0 2.4) was rejected or failed to post");
}

bool request_offers(uint64_t timeout_ms)
{
    Out m(msg_request_offers);
    if (!post(m.b, 8, "request offers"))
        return false;
    uint64_t deadline = hv::deadline_ms(timeout_ms);
    for (;;) {
        hv::Message r;
        bool got = hv::wait_until([&] { return poll_message(r); }, timeout_ms);
        if (!got || hv::expired(deadline))
            return hv::fail("request offers: expected OFFERCHANNEL or ALLOFFERS_DELIVERED within %lu ms, %s "
                            "(%u offers so far)",
                            timeout_ms, got ? "still offering" : "nothing came", g_bus.offer_count);
        uint32_t type = r.size >= 4 ? load<uint32_t>(r.payload) : 0xffffffffu;
        if (type == msg_all_offers_delivered) {
            g_bus.all_offers_delivered = true;
            if (g_verbose)
                line("all offers delivered count=%u", g_bus.offer_count);
            return true;
        }
        if (type != msg_offer)
            return hv::fail("request offers: expected OFFERCHANNEL or ALLOFFERS_DELIVERED, got %s (type %u, %u bytes)",
                            message_name(type), type, r.size);
        if (r.size < size_offer)
            return hv::fail("request offers: OFFERCHANNEL is %u bytes, expected at least %u (Linux drops it)", r.size,
                            size_offer);
        if (g_bus.offer_count == max_offers)
            return hv::fail("request offers: more than %u offers", max_offers);
        Offer& o = g_bus.offers[g_bus.offer_count];
        const uint8_t* p = r.payload + 8; // struct vmbus_channel_offer
        __builtin_memcpy(o.type.bytes, p, 16);
        __builtin_memcpy(o.instance.bytes, p + 16, 16);
        o.flags = load<uint16_t>(p + 48);
        o.mmio_megabytes = load<uint16_t>(p + 50);
        o.sub_channel_index = load<uint16_t>(p + 172);
        o.relid = load<uint32_t>(r.payload + 184);
        o.monitor_id = r.payload[188];
        o.monitor_allocated = r.payload[189] & 1;
        o.dedicated_interrupt = load<uint16_t>(r.payload + 190) & 1;
        o.connection_id = load<uint32_t>(r.payload + 192);
        char type_text[37], instance_text[37];
        guid_text(o.type, type_text);
        guid_text(o.instance, instance_text);
        if (g_verbose)
            line("offer relid=%u class=%s (%s) instance=%s conn_id=%u flags=0x%x monitor=%s%u dedicated=%u "
                 "subchannel=%u",
                 o.relid, type_text, class_name(o.type), instance_text, o.connection_id, o.flags,
                 o.monitor_allocated ? "" : "none/", o.monitor_id, o.dedicated_interrupt ? 1u : 0u,
                 o.sub_channel_index);
        if (o.relid == 0 || o.relid >= 2048)
            return hv::fail("request offers: offer class %s has child_relid %u, expected 1..2047", type_text, o.relid);
        for (unsigned i = 0; i < g_bus.offer_count; ++i)
            if (g_bus.offers[i].relid == o.relid)
                return hv::fail("request offers: child_relid %u offered twice", o.relid);
        ++g_bus.offer_count;
    }
}

const Offer* find_offer(const Guid& type)
{
    for (unsigned i = 0; i < g_bus.offer_count; ++i)
        if (g_bus.offers[i].type == type)
            return &g_bus.offers[i];
    return nullptr;
}

namespace {

// create_gpadl / teardown_gpadl without close_all()'s list (a channel's ring GPADL is the channel's).
bool gpadl_create(uint32_t relid, const void* buf, uint32_t pages, uint32_t& handle, uint64_t timeout_ms)
{
    if (pages == 0)
        return hv::fail("gpadl: zero pages");
    handle = g_bus.next_gpadl++;
    uint64_t first_pfn = hv::pfn(buf);
    uint32_t in_header = pages > gpadl_header_max_pfns ? gpadl_header_max_pfns : pages;
    Out h(msg_gpadl_header);
    store<uint32_t>(h.b + 8, relid);
    store<uint32_t>(h.b + 12, handle);
    store<uint16_t>(h.b + 16, static_cast<uint16_t>(8 + 8 * pages)); // range_buflen: the whole range
    store<uint16_t>(h.b + 18, 1);                                    // rangecount
    store<uint32_t>(h.b + 20, pages * 4096);                         // byte_count
    store<uint32_t>(h.b + 24, 0);                                    // byte_offset
    for (uint32_t i = 0; i < in_header; ++i)
        store<uint64_t>(h.b + 28 + 8 * i, first_pfn + i);
    if (!post(h.b, 28 + 8 * in_header, "gpadl header"))
        return false;
    uint32_t bodies = 0;
    for (uint32_t done = in_header; done < pages;) {
        uint32_t n = pages - done > gpadl_body_max_pfns ? gpadl_body_max_pfns : pages - done;
        Out b(msg_gpadl_body);
        store<uint32_t>(b.b + 8, 0); // msgnumber: Linux leaves it 0
        store<uint32_t>(b.b + 12, handle);
        for (uint32_t i = 0; i < n; ++i)
            store<uint64_t>(b.b + 16 + 8 * i, first_pfn + done + i);
        if (!post(b.b, 16 + 8 * n, "gpadl body"))
            return false;
        done += n;
        ++bodies;
    }
    hv::Message r;
    char step[64];
    format(step, sizeof step, "gpadl id=0x%x pages=%u", handle, pages);
    if (!expect(msg_gpadl_created, size_gpadl_created, r, timeout_ms, step))
        return false;
    uint32_t r_relid = load<uint32_t>(r.payload + 8), r_gpadl = load<uint32_t>(r.payload + 12),
             r_status = load<uint32_t>(r.payload + 16);
    if (r_relid != relid || r_gpadl != handle)
        return hv::fail("%s: GPADL_CREATED for child_relid=%u gpadl=0x%x, expected child_relid=%u gpadl=0x%x", step,
                        r_relid, r_gpadl, relid, handle);
    if (r_status != 0)
        return hv::fail("%s: GPADL_CREATED creation_status expected 0, got 0x%x", step, r_status);
    if (g_verbose)
        line("gpadl id=0x%x relid=%u pages=%u created (header %u pfns + %u body messages)", handle, relid, pages,
             in_header, bodies);
    return true;
}

bool gpadl_teardown(uint32_t relid, uint32_t handle, uint64_t timeout_ms)
{
    Out m(msg_gpadl_teardown);
    store<uint32_t>(m.b + 8, relid);
    store<uint32_t>(m.b + 12, handle);
    if (!post(m.b, 16, "gpadl teardown"))
        return false;
    hv::Message r;
    char step[64];
    format(step, sizeof step, "gpadl id=0x%x teardown", handle);
    if (!expect(msg_gpadl_torndown, size_gpadl_torndown, r, timeout_ms, step))
        return false;
    uint32_t r_gpadl = load<uint32_t>(r.payload + 8);
    if (r_gpadl != handle)
        return hv::fail("%s: GPADL_TORNDOWN for gpadl 0x%x, expected 0x%x", step, r_gpadl, handle);
    if (g_verbose)
        line("gpadl id=0x%x torn down", handle);
    return true;
}

} // namespace

bool create_gpadl(uint32_t relid, const void* buf, uint32_t pages, uint32_t& handle, uint64_t timeout_ms)
{
    if (g_gpadl_count == max_tracked_gpadls)
        return hv::fail("gpadl: %u GPADLs created and not torn down already (the kit's cleanup list is full)",
                        max_tracked_gpadls);
    if (!gpadl_create(relid, buf, pages, handle, timeout_ms))
        return false;
    g_gpadls[g_gpadl_count++] = {relid, handle};
    return true;
}

bool teardown_gpadl(uint32_t relid, uint32_t handle, uint64_t timeout_ms)
{
    untrack_gpadl(relid, handle);
    return gpadl_teardown(relid, handle, timeout_ms);
}

bool open_channel(Channel& ch, const Offer& offer, uint32_t send_pages, uint32_t recv_pages, uint64_t timeout_ms,
                  const char* name)
{
    bool tracked = false;
    for (unsigned i = 0; i < g_channel_count; ++i)
        tracked |= g_channels[i] == &ch;
    if (!tracked && g_channel_count == max_offers)
        return hv::fail("channel %s: %u channels open already (the kit's cleanup list is full)", name, max_offers);
    ch.offer = offer;
    ch.name = name;
    ch.send_pages = send_pages;
    ch.recv_pages = recv_pages;
    ch.ring_pages = static_cast<uint8_t*>(hv::alloc_pages(send_pages + recv_pages));
    if (!ch.ring_pages)
        return false;
    // Linux (__vmbus_open): the GPADL first, then hv_ringbuffer_init of both rings, then OPENCHANNEL.
    if (!gpadl_create(offer.relid, ch.ring_pages, send_pages + recv_pages, ch.gpadl, timeout_ms))
        return false;
    ring_init(ch.out, ch.ring_pages, send_pages);
    ring_init(ch.in, ch.ring_pages + send_pages * 4096, recv_pages);
    Out m(msg_open);
    store<uint32_t>(m.b + 8, offer.relid);   // child_relid
    store<uint32_t>(m.b + 12, offer.relid);  // openid
    store<uint32_t>(m.b + 16, ch.gpadl);     // ringbuffer_gpadlhandle
    store<uint32_t>(m.b + 20, g_bus.vp_index); // target_vp
    store<uint32_t>(m.b + 24, send_pages);   // downstream_ringbuffer_pageoffset
    char step[64];
    format(step, sizeof step, "channel %s relid=%u open", name, offer.relid);
    if (!post(m.b, size_open, step))
        return false;
    hv::Message r;
    if (!expect(msg_open_result, size_open_result, r, timeout_ms, step))
        return false;
    uint32_t r_relid = load<uint32_t>(r.payload + 8), r_openid = load<uint32_t>(r.payload + 12),
             r_status = load<uint32_t>(r.payload + 16);
    if (r_relid != offer.relid || r_openid != offer.relid)
        return hv::fail("%s: OPENCHANNEL_RESULT for child_relid=%u openid=%u, expected %u/%u", step, r_relid, r_openid,
                        offer.relid, offer.relid);
    if (r_status != 0)
        return hv::fail("%s: OPENCHANNEL_RESULT status expected 0, got 0x%x", step, r_status);
    ch.open = true;
    if (!tracked)
        g_channels[g_channel_count++] = &ch;
    if (g_verbose)
        line("channel %s open relid=%u gpadl=0x%x ring=%u+%u pages", name, offer.relid, ch.gpadl, send_pages,
             recv_pages);
    return true;
}

bool close_channel(Channel& ch, uint64_t timeout_ms)
{
    if (!ch.open)
        return true;
    ch.open = false;
    untrack_channel(ch);
    Out m(msg_close);
    store<uint32_t>(m.b + 8, ch.offer.relid);
    if (!post(m.b, 12, "channel close"))
        return false;
    if (g_verbose)
        line("channel %s relid=%u closed", ch.name, ch.offer.relid);
    return gpadl_teardown(ch.offer.relid, ch.gpadl, timeout_ms);
}

bool signal(Channel& ch)
{
    ++ch.signals;
    if (ch.offer.monitor_allocated) {
        // Monitor page 2 (the one the guest writes): hv_monitor_page.trigger_group[id / 32].pending, bit id % 32.
        auto* pending = reinterpret_cast<uint32_t*>(g_bus.monitor_pages[1] + 8 + 8 * (ch.offer.monitor_id / 32));
        __atomic_fetch_or(pending, 1u << (ch.offer.monitor_id % 32), __ATOMIC_SEQ_CST);
        return true;
    }
    if (!ch.offer.dedicated_interrupt) {
        auto* send_int = reinterpret_cast<uint64_t*>(g_bus.int_page + 2048) + ch.offer.relid / 64;
        __atomic_fetch_or(send_int, 1ull << (ch.offer.relid % 64), __ATOMIC_SEQ_CST);
    }
    uint16_t status = hv::signal_event(ch.offer.connection_id, 0);
    if (status != hv::status_success)
        return hv::fail("channel %s: HvSignalEvent(connection_id=%u) expected status 0, got %u", ch.name,
                        ch.offer.connection_id, status);
    return true;
}

bool take_event(const Channel& ch) { return hv::test_and_clear_event(message_sint, ch.offer.relid); }

bool send_inband(Channel& ch, const void* payload, uint32_t length, uint64_t trans_id, uint16_t flags)
{
    bool need_signal = false;
    if (!ring_write(ch.out, packet_inband, flags, trans_id, payload, length, need_signal)) {
        char prev[320];
        format(prev, sizeof prev, "%s", hv::error());
        return hv::fail("channel %s: %s", ch.name, prev);
    }
    return need_signal ? signal(ch) : true;
}

ReadResult receive(Channel& ch, void* buf, uint32_t buflen, Packet& packet)
{
    bool need_signal = false;
    ReadResult r = ring_read(ch.in, buf, buflen, packet, need_signal);
    if (r == ReadResult::error) {
        char prev[320];
        format(prev, sizeof prev, "%s", hv::error());
        hv::fail("channel %s: %s", ch.name, prev);
        return r;
    }
    if (need_signal && !signal(ch))
        return ReadResult::error;
    return r;
}

bool unload(uint64_t timeout_ms)
{
    Out m(msg_unload);
    if (!post(m.b, 8, "unload"))
        return false;
    uint64_t deadline = hv::deadline_ms(timeout_ms);
    for (;;) {
        hv::Message r;
        bool got = hv::wait_until([&] { return poll_message(r); }, timeout_ms);
        if (!got || hv::expired(deadline))
            return hv::fail("unload: expected UNLOAD_RESPONSE within %lu ms, %s", timeout_ms,
                            got ? "only other messages came" : "nothing came");
        uint32_t type = r.size >= 4 ? load<uint32_t>(r.payload) : 0xffffffffu;
        if (type == msg_unload_response) {
            if (g_verbose)
                line("vmbus unloaded");
            g_bus.version = 0;
            return true;
        }
        if (g_verbose)
            line("unload: ignoring %s (type %u, %u bytes)", message_name(type), type, r.size);
    }
}

bool close_all(uint64_t timeout_ms, TeardownReport report)
{
    bool ok = true;
    auto failed = [&](Teardown what) {
        if (report)
            report(what);
        ok = false;
    };
    // close_channel and teardown_gpadl take their entries off the lists: work on copies.
    Channel* channels[max_offers];
    unsigned channel_count = g_channel_count;
    __builtin_memcpy(channels, g_channels, sizeof channels[0] * channel_count);
    for (unsigned i = 0; i < channel_count; ++i)
        if (channels[i]->open && !close_channel(*channels[i], timeout_ms))
            failed(Teardown::channel);
    g_channel_count = 0;
    TrackedGpadl gpadls[max_tracked_gpadls];
    unsigned gpadl_count = g_gpadl_count;
    __builtin_memcpy(gpadls, g_gpadls, sizeof gpadls[0] * gpadl_count);
    for (unsigned i = 0; i < gpadl_count; ++i)
        if (!teardown_gpadl(gpadls[i].relid, gpadls[i].handle, timeout_ms))
            failed(Teardown::gpadl);
    g_gpadl_count = 0;
    if (g_bus.version && !unload(timeout_ms))
        failed(Teardown::unload);
    return ok;
}

} // namespace kit::vmbus
