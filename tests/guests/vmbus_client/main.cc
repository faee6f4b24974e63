// vmbus_client: a VMBus conformance guest that does what Linux 6.1's hv_vmbus and hv_utils do, in Linux's
// order and with Linux's message sizes and connection ids, and reports every protocol step on COM1.
// The acceptance test of a host's Hyper-V enlightenments, SynIC, VMBus server and integration services.
//
//  1. detection (CPUID 0x40000000-5), like ms_hyperv_platform / ms_hyperv_init_platform;
//  2. like ms_hyperv_init_platform + hyperv_init: the frequency MSRs, the reference TSC page (clock
//     checked), VP_INDEX, the VP assist page, GUEST_OS_ID (Linux's encoding), the hypercall page;
//  3. like hv_synic_enable_regs: SIMP, SIEFP, SINT2 = vector 0xf3 unmasked without auto-EOI, SCONTROL;
//  4. like vmbus_connect: INITIATE_CONTACT for 5.3 5.2 5.1 5.0 4.1 4.0 3.0 2.4 until accepted;
//  5. REQUESTOFFERS -> OFFERCHANNEL... ALLOFFERS_DELIVERED;
//  6. shutdown and heartbeat ICs (if offered): ring GPADL (4 + 4 pages, as hv_util's
//     VMBUS_RING_SIZE(3 pages)), OPENCHANNEL -> OPEN_RESULT; then a 64-page GPADL (header + body
//     messages) created and torn down;
//  7. the host starts the IC negotiation; the guest answers like vmbus_prep_negotiate_resp, answers
//     heartbeats (seq + 1) and shutdown requests like hv_util;
//  8. modes (kernel command line): default: after the negotiations and `heartbeats=N` (default 1)
//     heartbeats, wait up to `timeout=S` (default 60) seconds for the shutdown request, answer it, pass and
//     power off; `noshutdown`: pass right after the negotiations (and `heartbeats=N` heartbeats if given);
//  9. before powering off (also after a failure): CLOSECHANNEL + GPADL teardown of each channel, UNLOAD.
// A missing or wrong host answer ends in "result FAIL <step>: expected ..., got ..." (never a hang).
#include "kit/cmdline.h"
#include "kit/format.h"
#include "kit/hyperv.h"
#include "kit/kit.h"
#include "kit/vmbus.h"
#include "kit/vmbus_session.h"

namespace {

using namespace kit;

constexpr uint64_t message_timeout_ms = 10000;
constexpr uint64_t negotiate_timeout_ms = 30000;
constexpr uint8_t wakeup_vector = 0xee;

// hv_util.c: HV_UTIL_RING_SEND_SIZE = VMBUS_RING_SIZE(3 pages) = 1 control page + 3 data pages.
constexpr uint32_t util_ring_pages = 4;
constexpr uint32_t big_gpadl_pages = 64; // GPADL_HEADER (26) + 2 GPADL_BODY (28 + 10)

// Zero-filled pages for the library (.bss: part of the loaded image, zero without guest work).
constexpr size_t pool_pages = 40;
alignas(4096) uint8_t g_pool[pool_pages * 4096];
// The big GPADL's pages: never touched, so not loaded (the kit's NOLOAD .stack section).
alignas(4096) __attribute__((section(".stack"))) uint8_t g_big_gpadl[big_gpadl_pages * 4096];

// ---- options ----
struct Options {
    bool noshutdown = false;
    bool heartbeats_given = false;
    unsigned heartbeats = 1;
    unsigned timeout_s = 60;
} g_opt;

void parse_cmdline(const char* s)
{
    for (cmdline::Reader r(s); r.next();) {
        unsigned v;
        if (r.is("noshutdown"))
            g_opt.noshutdown = true;
        else if (r.number("heartbeats=", v)) {
            g_opt.heartbeats = v;
            g_opt.heartbeats_given = true;
        } else if (r.number("timeout=", v) && v > 0)
            g_opt.timeout_s = v;
    }
    if (g_opt.noshutdown && !g_opt.heartbeats_given)
        g_opt.heartbeats = 0;
}

// ---- integration components (hv_util.c) ----
constexpr uint16_t icmsg_negotiate = 0;
constexpr uint16_t icmsg_heartbeat = 1;
constexpr uint16_t icmsg_shutdown = 3;
constexpr uint8_t icflag_transaction = 1;
constexpr uint8_t icflag_response = 4;
constexpr uint32_t hv_s_ok = 0;
constexpr uint32_t hv_e_fail = 0x80004005;
constexpr uint32_t icmsg_hdr = 28;                 // vmbuspipe_hdr (8) + icmsg_hdr (20)
constexpr uint32_t shutdown_msg_size = 12 + 2048;  // struct shutdown_msg_data
constexpr uint32_t ic_version_max_count = 100;     // IC_VERSION_NEGOTIATION_MAX_VER_COUNT
// icmsg_hdr fields, offsets in the packet payload
constexpr uint32_t off_icmsgtype = 8 + 4;
constexpr uint32_t off_icmsgsize = 8 + 10;
constexpr uint32_t off_status = 8 + 12;
constexpr uint32_t off_icflags = 8 + 17;

struct Version {
    uint16_t major, minor;
};
constexpr Version fw_versions[] = {{3, 0}, {1, 0}};                       // UTIL_FW_VERSION, UTIL_WS2K8_FW_VERSION
constexpr Version sd_versions[] = {{3, 2}, {3, 1}, {3, 0}, {1, 0}};       // sd_versions[]
constexpr Version hb_versions[] = {{3, 0}, {1, 0}};                       // hb_versions[]

struct Ic {
    const char* name;
    const vmbus::Guid* cls;
    const Version* versions;
    unsigned version_count;
    vmbus::Channel ch;
    bool offered = false;
    bool negotiated = false;
    Version fw{}, msg{};
    unsigned packets = 0;
    unsigned heartbeats = 0;
    bool shutdown_requested = false;
    uint32_t shutdown_flags = 0;
};

Ic g_shutdown{"shutdown", &vmbus::class_shutdown, sd_versions, 4, {}};
Ic g_heartbeat{"heartbeat", &vmbus::class_heartbeat, hb_versions, 2, {}};
Ic* const g_ics[] = {&g_shutdown, &g_heartbeat};

uint8_t g_buf[4096]; // hv_util's receive buffer: one page

template <class T> T load(const uint8_t* p)
{
    T v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
template <class T> void store(uint8_t* p, T v) { __builtin_memcpy(p, &v, sizeof v); }

// ---- failure ----
// vmbus::finish_fail: what Linux does on unload, where cheap (vmbus::close_all: CLOSECHANNEL and ring GPADL
// teardown of each channel still open, UNLOAD), then the result.
[[noreturn]] void fail_now() { vmbus::finish_fail("cleaning up before the result"); }

void check(bool ok)
{
    if (!ok)
        fail_now();
}

// ---- IC packet handling ----

void version_list(const uint8_t* p, unsigned count, char* out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < count && n + 12 < size; ++i)
        n += format(out + n, size - n, "%s%u.%u", i ? "," : "", load<uint16_t>(p + 4 * i), load<uint16_t>(p + 4 * i + 2));
}

// vmbus_prep_negotiate_resp: picks the first of our framework versions the host offers, then the first
// of our service versions; rewrites the negotiate body in place (icmsgsize 0x10, counts 1/1 or 0/0).
bool negotiate(Ic& ic, uint8_t* buf, uint32_t len)
{
    if (len < icmsg_hdr + 4)
        return hv::fail("ic %s negotiate: %u bytes, expected at least %u", ic.name, len, icmsg_hdr + 4);
    store<uint16_t>(buf + off_icmsgsize, 0x10);
    uint8_t* neg = buf + icmsg_hdr;
    uint16_t fw_count = load<uint16_t>(neg), msg_count = load<uint16_t>(neg + 2);
    const uint8_t* vers = neg + 8;
    char fw_text[96] = "", msg_text[96] = "";
    bool valid = fw_count <= ic_version_max_count && msg_count <= ic_version_max_count &&
                 icmsg_hdr + 8 + 4u * (fw_count + msg_count) <= len;
    bool found = false;
    Version fw{fw_count, 0}, msg{msg_count, 0};
    if (valid) {
        version_list(vers, fw_count, fw_text, sizeof fw_text);
        version_list(vers + 4 * fw_count, msg_count, msg_text, sizeof msg_text);
        for (const Version& want : fw_versions) {
            for (unsigned j = 0; j < fw_count && !found; ++j)
                if (load<uint16_t>(vers + 4 * j) == want.major && load<uint16_t>(vers + 4 * j + 2) == want.minor) {
                    fw = want;
                    found = true;
                }
            if (found)
                break;
        }
        if (found) {
            found = false;
            for (unsigned i = 0; i < ic.version_count && !found; ++i)
                for (unsigned j = fw_count; j < fw_count + msg_count && !found; ++j)
                    if (load<uint16_t>(vers + 4 * j) == ic.versions[i].major &&
                        load<uint16_t>(vers + 4 * j + 2) == ic.versions[i].minor) {
                        msg = ic.versions[i];
                        found = true;
                    }
        }
    }
    store<uint16_t>(neg, found ? 1 : 0);
    store<uint16_t>(neg + 2, found ? 1 : 0);
    if (len >= icmsg_hdr + 16) {
        store<uint16_t>(neg + 8, fw.major);
        store<uint16_t>(neg + 10, fw.minor);
        store<uint16_t>(neg + 12, msg.major);
        store<uint16_t>(neg + 14, msg.minor);
    }
    if (!valid)
        return hv::fail("ic %s negotiate: invalid body: icframe_vercnt=%u icmsg_vercnt=%u in a %u-byte packet "
                        "(expected counts <= 100 and %u + 4 * (counts) bytes)",
                        ic.name, fw_count, msg_count, len, icmsg_hdr + 8);
    if (!found)
        return hv::fail("ic %s negotiate: no common version: host offered framework [%s] message [%s], Linux "
                        "accepts framework [3.0,1.0] and its own service versions",
                        ic.name, fw_text, msg_text);
    ic.fw = fw;
    ic.msg = msg;
    line("ic %s negotiated fw=%u.%u msg=%u.%u (host offered fw=%s msg=%s)", ic.name, fw.major, fw.minor, msg.major,
         msg.minor, fw_text, msg_text);
    return true;
}

// One packet on an IC channel (shutdown_onchannelcallback / heartbeat_onchannelcallback).
bool handle_ic_packet(Ic& ic, uint8_t* buf, const vmbus::Packet& pkt)
{
    uint32_t len = pkt.payload_length;
    ++ic.packets;
    if (len < icmsg_hdr)
        return hv::fail("ic %s: packet type=%u with %u payload bytes, expected at least %u (ICMSG_HDR; Linux drops it)",
                        ic.name, pkt.type, len, icmsg_hdr);
    uint16_t type = load<uint16_t>(buf + off_icmsgtype);
    if (!ic.negotiated && type != icmsg_negotiate)
        return hv::fail("ic %s: expected ICMSGTYPE_NEGOTIATE (0) as the host's first packet, got icmsgtype %u", ic.name,
                        type);
    bool ok = true;
    bool negotiate_failed = false;
    char negotiate_error[320];
    bool shutdown_now = false;
    if (type == icmsg_negotiate) {
        if (!negotiate(ic, buf, len)) {
            negotiate_failed = true;
            format(negotiate_error, sizeof negotiate_error, "%s", hv::error());
        } else {
            ic.negotiated = true;
        }
    } else if (type == icmsg_shutdown && &ic == &g_shutdown) {
        if (len < icmsg_hdr + shutdown_msg_size)
            return hv::fail("ic shutdown: ICMSGTYPE_SHUTDOWN with %u payload bytes, expected at least %u (Linux drops "
                            "it)",
                            len, icmsg_hdr + shutdown_msg_size);
        uint32_t reason = load<uint32_t>(buf + icmsg_hdr), flags = load<uint32_t>(buf + icmsg_hdr + 8);
        switch (flags) {
        case 0:
        case 1:
        case 2:
        case 3:
            store<uint32_t>(buf + off_status, hv_s_ok);
            shutdown_now = true;
            break;
        case 4:
        case 5: // hibernation: Linux refuses unless hibernation is configured
        default:
            store<uint32_t>(buf + off_status, hv_e_fail);
            line("ic shutdown: request flags=%u reason=0x%x refused with E_FAIL (as Linux without hibernation)", flags,
                 reason);
            break;
        }
        ic.shutdown_flags = flags;
    } else if (type == icmsg_heartbeat && &ic == &g_heartbeat) {
        if (len < icmsg_hdr + 8)
            return hv::fail("ic heartbeat: ICMSGTYPE_HEARTBEAT with %u payload bytes, expected at least %u", len,
                            icmsg_hdr + 8);
        uint64_t seq = load<uint64_t>(buf + icmsg_hdr);
        store<uint64_t>(buf + icmsg_hdr, seq + 1);
        ++ic.heartbeats;
        line("heartbeat seq=%lu answered seq=%lu", seq, seq + 1);
    } else {
        store<uint32_t>(buf + off_status, hv_e_fail);
        line("ic %s: unexpected icmsgtype %u answered with E_FAIL", ic.name, type);
    }
    buf[off_icflags] = icflag_transaction | icflag_response;
    ok = vmbus::send_inband(ic.ch, buf, len, pkt.trans_id);
    if (!ok)
        return false;
    if (negotiate_failed)
        return hv::fail("%s", negotiate_error);
    if (shutdown_now) {
        ic.shutdown_requested = true;
        line("shutdown requested (flags=%u)", ic.shutdown_flags);
    }
    return true;
}

// Drains a channel the host signalled, like vmbus_chan_sched + vmbus_on_event in HV_CALL_BATCHED mode:
// interrupt_mask set while reading, cleared after, and read again if more came in the meantime.
bool drain(Ic& ic)
{
    vmbus::ring_begin_read(ic.ch.in);
    for (;;) {
        for (;;) {
            vmbus::Packet pkt;
            vmbus::ReadResult r = vmbus::receive(ic.ch, g_buf, sizeof g_buf, pkt);
            if (r == vmbus::ReadResult::error)
                return false;
            if (r == vmbus::ReadResult::empty)
                break;
            if (!handle_ic_packet(ic, g_buf, pkt))
                return false;
        }
        if (vmbus::ring_end_read(ic.ch.in) == 0)
            return true;
        vmbus::ring_begin_read(ic.ch.in);
    }
}

bool shutdown_requested() { return g_shutdown.shutdown_requested; }

// Services the bus until done() or the timeout: channel events (SIEFP flags) drain their channels; any
// channel message now is unexpected. On timeout: an error naming `what`, with what the rings show.
template <class F> bool service(F&& done, uint64_t timeout_ms, const char* what)
{
    bool failed = false;
    auto step = [&]() -> bool {
        if (failed)
            return true;
        hv::Message m;
        if (vmbus::poll_message(m)) {
            uint32_t t = m.size >= 4 ? load<uint32_t>(m.payload) : 0xffffffffu;
            hv::fail("%s: unexpected channel message %s (type %u, %u bytes)", what, vmbus::message_name(t), t, m.size);
            failed = true;
            return true;
        }
        for (Ic* ic : g_ics) {
            if (ic->ch.open && vmbus::take_event(ic->ch) && !drain(*ic)) {
                failed = true;
                return true;
            }
        }
        return done() || shutdown_requested();
    };
    hv::wait_until(step, timeout_ms);
    if (failed)
        return false;
    if (done() || shutdown_requested())
        return true;
    for (Ic* ic : g_ics) {
        if (ic->ch.open && vmbus::ring_bytes_to_read(ic->ch.in))
            return hv::fail("%s: not within %lu ms; channel %s relid=%u has %u unread bytes in its ring but the host "
                            "never set SIEFP flag %u of SINT2",
                            what, timeout_ms, ic->name, ic->ch.offer.relid, vmbus::ring_bytes_to_read(ic->ch.in),
                            ic->ch.offer.relid);
    }
    char state[160];
    size_t n = 0;
    state[0] = '\0';
    for (Ic* ic : g_ics)
        if (ic->ch.open)
            n += format(state + n, sizeof state - n, " %s: packets=%u negotiated=%u heartbeats=%u;", ic->name,
                        ic->packets, ic->negotiated ? 1u : 0u, ic->heartbeats);
    return hv::fail("%s: not within %lu ms (nothing more from the host;%s sint interrupts=%lu)", what, timeout_ms,
                    state, hv::sint_interrupts());
}

// Busy-waits `us` microseconds on the time base the waits use.
void delay_us_hv(uint64_t us)
{
    uint64_t end = rdtsc() + us * hv::tsc_per_ms() / 1000;
    while (rdtsc() < end)
        pause();
}

[[noreturn]] void pass()
{
    line("summary version=%u.%u offers=%u shutdown=%s heartbeat=%s heartbeats=%u sint_interrupts=%lu",
         vmbus::bus().version >> 16, vmbus::bus().version & 0xffff, vmbus::bus().offer_count,
         g_shutdown.negotiated ? "negotiated" : (g_shutdown.offered ? "open" : "not-offered"),
         g_heartbeat.negotiated ? "negotiated" : (g_heartbeat.offered ? "open" : "not-offered"),
         g_heartbeat.heartbeats, hv::sint_interrupts());
    vmbus::finish_pass();
}

} // namespace

extern "C" void guest_main(const kit::StartInfo* start_info)
{
    parse_cmdline(cmdline::get(start_info));
    line("vmbus_client mode=%s heartbeats=%u timeout=%us", g_opt.noshutdown ? "noshutdown" : "shutdown",
         g_opt.heartbeats, g_opt.timeout_s);
    hv::pages_init(g_pool, pool_pages);

    // 1. Detection.
    hv::Info info;
    check(hv::detect(info));
    line("hyperv detected max_leaf=0x%x features=0x%x privileges=0x%x misc=0x%x hints=0x%x max_vp=%u max_lp=%u "
         "build=%u version=0x%x",
         info.max_leaf, info.features, info.privileges, info.misc, info.hints, info.max_vp, info.max_lp,
         info.version_build, info.version_number);
    if (!(info.features & hv::feature_synic))
        check(hv::fail("detect: CPUID 0x40000003 EAX=0x%x lacks bit 2 (SynIC MSRs): no VMBus", info.features));
    if ((info.privileges & (hv::privilege_post_messages | hv::privilege_signal_events)) !=
        (hv::privilege_post_messages | hv::privilege_signal_events))
        check(hv::fail("detect: CPUID 0x40000003 EBX=0x%x expected bits 4 (PostMessages) and 5 (SignalEvents)",
                       info.privileges));
    if (info.privileges & hv::privilege_cpu_management)
        check(hv::fail("detect: CPUID 0x40000003 EBX=0x%x has bit 12 (CpuManagement): Linux would act as the root "
                       "partition",
                       info.privileges));
    if (!(info.hints & hv::hint_deprecating_aeoi))
        check(hv::fail("detect: CPUID 0x40000004 EAX=0x%x lacks bit 9 (deprecating AutoEOI): Linux would program "
                       "SINT2 with auto-EOI",
                       info.hints));
    if (info.features & hv::feature_synthetic_timers)
        line("note: synthetic timers advertised (bit 3): Linux will use them");

    // 2. Like ms_hyperv_init_platform, then hyperv_init.
    uint64_t tsc_hz = 0, apic_hz = 0;
    if ((info.features & hv::feature_frequency_msrs) && (info.misc & hv::misc_frequency_msrs_available)) {
        tsc_hz = rdmsr(hv::msr_tsc_frequency);
        apic_hz = rdmsr(hv::msr_apic_frequency);
        line("frequency msrs tsc=%lu apic=%lu", tsc_hz, apic_hz);
        if (!tsc_hz || !apic_hz)
            check(hv::fail("frequency msrs: TSC (0x40000022) and APIC (0x40000023) frequencies expected non-zero, got "
                           "%lu and %lu",
                           tsc_hz, apic_hz));
    } else {
        line("frequency msrs not advertised (features bit 11=%u, misc bit 8=%u)",
             (info.features >> 11) & 1, (info.misc >> 8) & 1);
    }
    hv::time_init(tsc_hz ? tsc_hz : kit::tsc_hz());
    outb(0x21, 0xff); // 8259s masked (no-ops where there are none)
    outb(0xa1, 0xff);
    if (hv::start_wakeup_timer(wakeup_vector, apic_hz))
        line("wakeup timer ticking");
    else
        line("wakeup timer not ticking: waits poll");

    if (info.features & hv::feature_reference_tsc) {
        check(hv::enable_reference_tsc());
        hv::ReferenceTscPage* page = hv::reference_tsc_page();
        uint64_t t1 = 0, t2 = 0;
        if (!hv::reference_time(t1))
            check(hv::fail("reference tsc: page sequence expected non-zero after enabling MSR 0x40000021, got 0 "
                           "(every clock read would exit)"));
        uint64_t ref_msr = (info.features & hv::feature_time_ref_count) ? rdmsr(hv::msr_time_ref_count) : 0;
        delay_us_hv(20000);
        hv::reference_time(t2);
        if (t2 <= t1)
            check(hv::fail("reference tsc: time expected to advance over 20 ms, got %lu then %lu", t1, t2));
        line("reference tsc sequence=%u scale=0x%lx offset=%ld time=%lu advanced=%lu", page->sequence, page->scale,
             page->offset, t2, t2 - t1);
        if (info.features & hv::feature_time_ref_count) {
            uint64_t diff = ref_msr > t1 ? ref_msr - t1 : t1 - ref_msr;
            if (diff > 10000000)
                check(hv::fail("reference tsc: page time %lu and TIME_REF_COUNT %lu differ by more than 1 s", t1,
                               ref_msr));
            line("time ref count=%lu (page - msr = %ld)", ref_msr, static_cast<long>(t1 - ref_msr));
        }
    } else if (info.features & hv::feature_time_ref_count) {
        uint64_t a = rdmsr(hv::msr_time_ref_count);
        delay_us_hv(20000);
        uint64_t b = rdmsr(hv::msr_time_ref_count);
        if (b <= a)
            check(hv::fail("time ref count: MSR 0x40000020 expected to advance over 20 ms, got %lu then %lu", a, b));
        line("reference tsc not advertised; time ref count=%lu advanced=%lu", b, b - a);
    } else {
        line("note: neither the reference TSC page nor TIME_REF_COUNT is advertised");
    }

    uint32_t vp_index = static_cast<uint32_t>(rdmsr(hv::msr_vp_index));
    line("vp index=%u", vp_index);

    void* vp_assist = hv::alloc_pages(1);
    check(vp_assist != nullptr);
    uint64_t assist = hv::gpa(vp_assist) | 1;
    wrmsr(hv::msr_vp_assist_page, assist);
    uint64_t assist_back = rdmsr(hv::msr_vp_assist_page);
    if (assist_back != assist)
        check(hv::fail("vp assist: MSR 0x40000073 wrote 0x%lx, read back 0x%lx", assist, assist_back));
    line("vp assist page=0x%lx", assist_back);

    uint64_t guest_id = hv::linux_guest_os_id(6, 1, 0);
    wrmsr(hv::msr_guest_os_id, guest_id);
    line("guest os id=0x%lx read back 0x%lx", guest_id, rdmsr(hv::msr_guest_os_id));

    check(hv::enable_hypercalls());
    {
        const uint8_t* code = static_cast<const uint8_t*>(hv::hypercall_page());
        line("hypercall page gpa=0x%lx msr=0x%lx code=%02x %02x %02x %02x %02x %02x %02x %02x", hv::gpa(code),
             rdmsr(hv::msr_hypercall), code[0], code[1], code[2], code[3], code[4], code[5], code[6], code[7]);
    }

    // 3. SynIC (hv_synic_enable_regs).
    hv::SynicConfig synic;
    synic.sint = vmbus::message_sint;
    synic.vector = vmbus::callback_vector;
    synic.auto_eoi = false;
    check(hv::synic_enable(synic));
    line("synic simp=0x%lx siefp=0x%lx sint2=0x%lx scontrol=0x%lx", rdmsr(hv::msr_simp), rdmsr(hv::msr_siefp),
         rdmsr(hv::msr_sint0 + 2), rdmsr(hv::msr_scontrol));

    // 4. Connect (vmbus_connect).
    check(vmbus::init(vp_index));
    check(vmbus::connect(message_timeout_ms));
    if (!hv::wait_until([] { return hv::sint_interrupts() > 0; }, 2000))
        check(hv::fail("vmbus connect: VERSION_RESPONSE arrived in the SIMP slot but vector 0x%x was never delivered",
                       vmbus::callback_vector));

    // 5. Offers.
    check(vmbus::request_offers(message_timeout_ms));

    // 6. Open the shutdown and heartbeat ICs (hv_util: util_probe -> vmbus_open).
    const vmbus::Channel* first_open = nullptr;
    for (Ic* ic : g_ics) {
        const vmbus::Offer* offer = vmbus::find_offer(*ic->cls);
        if (!offer) {
            line("ic %s not offered", ic->name);
            continue;
        }
        ic->offered = true;
        check(vmbus::open_channel(ic->ch, *offer, util_ring_pages, util_ring_pages, message_timeout_ms, ic->name));
        if (!first_open)
            first_open = &ic->ch;
    }
    if (!g_opt.noshutdown && !g_shutdown.offered)
        check(hv::fail("offers: the shutdown IC (0e0b6031-5213-4934-818b-38d90ced39db) was not offered; the default "
                       "mode waits for its shutdown request (use noshutdown otherwise)"));

    // A GPADL large enough for header + body messages, then its teardown.
    uint32_t big_relid = first_open ? first_open->offer.relid
                                    : (vmbus::bus().offer_count ? vmbus::bus().offers[0].relid : 0);
    if (big_relid) {
        uint32_t handle = 0;
        check(vmbus::create_gpadl(big_relid, g_big_gpadl, big_gpadl_pages, handle, message_timeout_ms));
        check(vmbus::teardown_gpadl(big_relid, handle, message_timeout_ms));
    } else {
        line("no channel offered: large gpadl skipped");
    }

    // 7. IC negotiation: the host starts it on each open channel.
    auto all_negotiated = [] {
        for (Ic* ic : g_ics)
            if (ic->ch.open && !ic->negotiated)
                return false;
        return true;
    };
    check(service(all_negotiated, negotiate_timeout_ms, "ic negotiation (expected ICMSGTYPE_NEGOTIATE from the host)"));
    if (shutdown_requested())
        pass();

    // 8. Heartbeats.
    if (g_opt.heartbeats && g_heartbeat.ch.open) {
        char what[96];
        format(what, sizeof what, "heartbeats (expected %u ICMSGTYPE_HEARTBEAT)", g_opt.heartbeats);
        check(service([] { return g_heartbeat.heartbeats >= g_opt.heartbeats; }, uint64_t{g_opt.timeout_s} * 1000,
                      what));
        if (shutdown_requested())
            pass();
    } else if (g_opt.heartbeats) {
        line("heartbeat not offered: no heartbeats to wait for");
    }

    if (g_opt.noshutdown)
        pass();

    // 9. Wait for the host's shutdown request (vmgen stop-vm).
    line("waiting for shutdown request (timeout %u s)", g_opt.timeout_s);
    check(service([] { return false; }, uint64_t{g_opt.timeout_s} * 1000,
                  "shutdown (expected ICMSGTYPE_SHUTDOWN on the shutdown IC)"));
    pass();
}
