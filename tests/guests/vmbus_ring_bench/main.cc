// vmbus_ring_bench: VMBus ring throughput between a guest ring-3 loop and the host's diagnostic echo device
// (vmgen run ... --vmbus-echo), the guest of bench/ring_bench.cc (docs/performance.md, "VMBus ring
// throughput").
//
// Ring 0 (kit): Hyper-V detection, the TSC frequency (MSR 0x40000022), GUEST_OS_ID, the hypercall page,
// SynIC, VMBus connect, offers, and the echo channel (class c0ffee00-7e57-4d0c-9a5e-0123456789ab) opened
// with `ring=KIB` KiB of data per direction (default 256). Then each case runs in ring 3 (kit::run_in_ring3;
// the kit's identity map is user accessible, so the rings are too): inband packets of `size` payload bytes
// go into the guest -> host ring, their echoes are read from the host -> guest ring by polling, following
// Linux's rules: signal the host (HvSignalEvent) only when the write took the ring from empty to non-empty
// and the host's interrupt_mask is 0; set pending_send_sz when the ring is too full for the next packet;
// signal when a read frees the space the host asked for in its pending_send_sz. The guest masks the
// host -> guest ring's interrupts for the whole run (it polls, like a busy-polling Linux driver), so the
// host never signals on write. HvSignalEvent is a hypercall (ring 0 only): ring 3 reaches it through the
// kit's gate (kit::ring3_call), counted as `signals`. Every echo is checked: order (trans_id), type,
// length and payload bytes.
//
// Modes: unbatched (window 1: write, signal if needed, wait for the echo); batched (up to `window` packets
// in flight; 0, the default: as many as the host -> guest ring holds, so the host never blocks; what the
// window allows is written as one batch: one write_index update and one signal decision, like the buffers
// of one hv_ringbuffer_write call); pipelined (the same window, but every packet is its own write with its
// own signal decision, as a driver calling vmbus_sendpacket per packet does; only with mode=pipelined). Output per case:
//   vmgen-guest: ring size=64 mode=batched packets=N seconds=S pps=P signals=K write_signals=.. ...
// Calibration cases (ring 3, `count=N` times), for the cost of what a packet needs:
//   calibrate=portio  `outb 0x80` (one port I/O exit to the VMM)
//   calibrate=gate    a null gate call (ring 3 -> ring 0 -> ring 3, no exit to the VMM)
//   calibrate=hypercall  a gate call doing HvSignalEvent on an unknown connection id: gate + one hypercall
//                     exit to the VMM, which fails it (nothing is woken)
//   calibrate=signal  a gate call doing HvSignalEvent on the (empty) channel: gate + hypercall exit + the
//                     host worker's wake-up
//   vmgen-guest: calibrate kind=portio count=N seconds=S ns_per_op=X
// Command line (kernel command line, space separated): size=64|4096|... (a multiple of 8; default: 64 and
// 4096), mode=unbatched|batched (default: both), packets=N (default 100000 at <= 256 bytes, else 20000; 0: only
// setup and teardown, the baseline of exit counts), window=N, ring=KIB, calibrate=KIND, count=N.
// Ends with CLOSECHANNEL, GPADL teardown, UNLOAD and "result PASS".
#include "kit/cmdline.h"
#include "kit/format.h"
#include "kit/hyperv.h"
#include "kit/kit.h"
#include "kit/timing.h"
#include "kit/vmbus.h"
#include "kit/vmbus_session.h"

namespace {

using namespace kit;

constexpr uint64_t message_timeout_ms = 10000;
constexpr uint64_t case_timeout_s = 60;
constexpr uint32_t max_payload = 8192;
constexpr unsigned max_ring_kib = 1024;

// Pages for the library: two rings of up to 1 MiB + control pages, plus the SynIC, hypercall, interrupt and
// monitor pages. In the kit's NOLOAD .stack section, which keeps the ELF small; zeroed in ring 3 (native
// speed) before use.
constexpr size_t pool_pages = 2 * (max_ring_kib / 4 + 1) + 16;
alignas(4096) __attribute__((section(".stack"))) uint8_t g_pool[pool_pages * 4096];

const vmbus::Guid class_echo = vmbus::guid("c0ffee00-7e57-4d0c-9a5e-0123456789ab");

enum Mode { mode_unbatched = 0, mode_batched = 1, mode_pipelined = 2 };
const char* const mode_names[] = {"unbatched", "batched", "pipelined"};

enum : uint64_t { gate_null = 0, gate_signal = 1, gate_bad_signal = 2 };
// A connection id the host does not know: HvSignalEvent exits to the VMM and fails there, waking nothing.
constexpr uint32_t unknown_connection_id = 0xfffff;

struct Options {
    uint32_t size = 0; // 0: 64 and 4096
    int mode = -1;     // -1: unbatched and batched, else a Mode
    bool packets_given = false;
    uint64_t packets = 0;
    uint32_t window = 0;
    uint32_t ring_kib = 256;
    cmdline::Word calibrate; // text nullptr: none
    uint64_t count = 10000;
} g_opt;

vmbus::Channel g_ch;
uint64_t g_signals = 0; // HvSignalEvents from ring 3
uint64_t g_tsc_hz = 0;

// ---- command line ----

bool parse_cmdline(const char* s)
{
    for (cmdline::Reader r(s); r.next();) {
        uint64_t v;
        cmdline::Word w;
        if (r.number("size=", v)) {
            if (v == 0 || v % 8 || v > max_payload)
                return hv::fail("size=%lu: expected a multiple of 8 in 8..%u", v, max_payload);
            g_opt.size = static_cast<uint32_t>(v);
        } else if (r.number("packets=", v)) {
            g_opt.packets = v;
            g_opt.packets_given = true;
        } else if (r.number("window=", v)) {
            g_opt.window = static_cast<uint32_t>(v);
        } else if (r.number("ring=", v)) {
            if (v < 16 || v > max_ring_kib || v % 4)
                return hv::fail("ring=%lu: expected KiB, a multiple of 4 in 16..%u", v, max_ring_kib);
            g_opt.ring_kib = static_cast<uint32_t>(v);
        } else if (r.number("count=", v)) {
            g_opt.count = v;
        } else if (r.value("mode=", w)) {
            g_opt.mode = -1;
            for (int m = 0; m < 3; ++m)
                if (w.is(mode_names[m]))
                    g_opt.mode = m;
            if (g_opt.mode < 0)
                return hv::fail("mode: expected unbatched, batched or pipelined");
        } else if (r.value("calibrate=", w)) {
            if (!w.is("portio") && !w.is("gate") && !w.is("hypercall") && !w.is("signal"))
                return hv::fail("calibrate: expected portio, gate, hypercall or signal");
            g_opt.calibrate = w;
        }
    }
    return true;
}

// ---- failure ----

// vmbus::finish_fail: the channel closed and UNLOAD (when connected), then the result.
void check(bool ok)
{
    if (!ok)
        vmbus::finish_fail();
}

// ---- the gate's ring-0 side ----

// As few ring-0 instructions as possible (ring 0 is emulated here): the fast HvSignalEvent through the
// hypercall page (the echo channel has a dedicated interrupt and no monitor id: vmbus::signal would do the same).
uint64_t gate(uint64_t nr, uint64_t, uint64_t, uint64_t)
{
    if (nr == gate_signal)
        return hv::hypercall(hv::call_signal_event | hv::call_fast, g_ch.offer.connection_id, 0) & 0xffff;
    if (nr == gate_bad_signal)
        return (hv::hypercall(hv::call_signal_event | hv::call_fast, unknown_connection_id, 0) & 0xffff) ==
                       hv::status_invalid_connection_id
                   ? 0
                   : 1;
    return 0;
}

// ---- ring 3 ----

struct Case {
    uint32_t size = 0;
    uint32_t window = 0; // packets in flight at most
    bool batch = false;  // write what the window allows as one batch (one write_index update, one signal decision)
    uint64_t packets = 0;
    // results
    uint64_t ticks = 0;
    uint64_t write_signals = 0, read_signals = 0;
    uint64_t ring_full = 0; // times the guest -> host ring had no room (pending_send_sz set)
    uint64_t max_in_flight = 0;
    uint64_t batches = 0; // batched: publishes
    bool ok = false;
    char error[200] = {};
};

alignas(64) uint64_t g_tx[max_payload / 8];
alignas(64) uint64_t g_rx[max_payload / 8 + 8];

void full_barrier() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

bool case_fail(Case& c, const char* fmt, uint64_t a = 0, uint64_t b = 0, uint64_t d = 0)
{
    format(c.error, sizeof c.error, fmt, a, b, d);
    return false;
}

bool signal_from_ring3(Case& c)
{
    if (ring3_call(gate_signal) != 0)
        return case_fail(c, "HvSignalEvent from the gate failed");
    return true;
}

bool run_case(Case& c)
{
    vmbus::Ring& out = g_ch.out;
    vmbus::Ring& in = g_ch.in;
    const uint32_t total = ((16 + c.size + 7) & ~7u) + 8;
    const uint32_t words = c.size / 8;
    const uint64_t timeout = case_timeout_s * g_tsc_hz;
    uint64_t sent = 0, received = 0;
    uint64_t start = rdtsc();
    uint64_t last_progress = start;
    while (received < c.packets) {
        bool progress = false;
        // Batched: stage what the window and the ring allow, publish it at once.
        if (c.batch && sent < c.packets && sent - received < c.window) {
            uint32_t w = vmbus::ring_write_index(out);
            uint64_t staged = 0;
            while (sent < c.packets && sent - received < c.window) {
                uint32_t r = out.control->read_index;
                uint32_t room = w >= r ? out.size - (w - r) : r - w;
                if (room <= total) {
                    if (staged)
                        break; // publish first; pending_send_sz only when nothing fits at all
                    if (out.control->pending_send_sz == 0) {
                        out.control->pending_send_sz = total;
                        ++c.ring_full;
                        full_barrier();
                        continue;
                    }
                    break;
                }
                if (out.control->pending_send_sz)
                    out.control->pending_send_sz = 0;
                g_tx[0] = sent;
                if (!vmbus::ring_stage(out, w, vmbus::packet_inband, 0, sent, g_tx, c.size))
                    return case_fail(c, "ring stage failed at packet %lu", sent);
                ++sent;
                ++staged;
            }
            if (staged) {
                bool signal = false;
                vmbus::ring_publish(out, w, signal);
                ++c.batches;
                if (sent - received > c.max_in_flight)
                    c.max_in_flight = sent - received;
                if (signal) {
                    ++c.write_signals;
                    if (!signal_from_ring3(c))
                        return false;
                }
                progress = true;
            }
        }
        // Unbatched and pipelined: one packet per write, while the window and the ring allow.
        while (!c.batch && sent < c.packets && sent - received < c.window) {
            if (vmbus::ring_bytes_to_write(out) <= total) {
                // Too full: ask the host to signal when it frees enough (it will; we poll anyway), re-check.
                if (out.control->pending_send_sz == 0) {
                    out.control->pending_send_sz = total;
                    ++c.ring_full;
                    full_barrier();
                    continue;
                }
                break;
            }
            if (out.control->pending_send_sz)
                out.control->pending_send_sz = 0;
            g_tx[0] = sent;
            bool signal = false;
            if (!vmbus::ring_write(out, vmbus::packet_inband, 0, sent, g_tx, c.size, signal))
                return case_fail(c, "ring write failed at packet %lu", sent);
            ++sent;
            if (sent - received > c.max_in_flight)
                c.max_in_flight = sent - received;
            if (signal) {
                ++c.write_signals;
                if (!signal_from_ring3(c))
                    return false;
            }
            progress = true;
        }
        // Read every echo that is there.
        for (;;) {
            vmbus::Packet p;
            bool signal = false;
            vmbus::ReadResult r = vmbus::ring_read(in, g_rx, sizeof g_rx, p, signal);
            if (r == vmbus::ReadResult::empty)
                break;
            if (r == vmbus::ReadResult::error)
                return case_fail(c, "ring read failed after %lu echoes", received);
            if (signal) {
                ++c.read_signals;
                if (!signal_from_ring3(c))
                    return false;
            }
            if (p.type != vmbus::packet_inband || p.payload_length != c.size)
                return case_fail(c, "echo %lu: type %lu payload %lu bytes, expected inband (6) with the same size",
                                 received, p.type, p.payload_length);
            if (p.trans_id != received || g_rx[0] != received)
                return case_fail(c, "echo %lu: trans_id %lu, first payload word %lu (out of order or lost)", received,
                                 p.trans_id, g_rx[0]);
            for (uint32_t i = 1; i < words; ++i)
                if (g_rx[i] != g_tx[i])
                    return case_fail(c, "echo %lu: payload word %lu differs", received, i);
            ++received;
            progress = true;
        }
        uint64_t now = rdtsc();
        if (progress) {
            last_progress = now;
        } else {
            if (now - last_progress > timeout)
                return case_fail(c, "no progress for %lu s: %lu sent, %lu echoes", case_timeout_s, sent, received);
            pause();
        }
    }
    c.ticks = rdtsc() - start;
    if (out.control->pending_send_sz)
        out.control->pending_send_sz = 0;
    c.ok = true;
    return true;
}

void ring3_case(void* arg) { run_case(*static_cast<Case*>(arg)); }

struct Calibration {
    int kind = 0; // 0 portio, 1 gate, 2 hypercall, 3 signal
    uint64_t count = 0;
    uint64_t ticks = 0;
    uint64_t failures = 0;
};

void ring3_calibrate(void* arg)
{
    Calibration& c = *static_cast<Calibration*>(arg);
    uint64_t start = rdtsc();
    if (c.kind == 0) {
        for (uint64_t i = 0; i < c.count; ++i)
            outb(0x80, static_cast<uint8_t>(i));
    } else {
        uint64_t nr = c.kind == 1 ? gate_null : c.kind == 2 ? gate_bad_signal : gate_signal;
        for (uint64_t i = 0; i < c.count; ++i)
            c.failures += ring3_call(nr) != 0;
    }
    c.ticks = rdtsc() - start;
}

// ---- output ----

void run_one(uint32_t size, int mode)
{
    bool batched = mode != mode_unbatched;
    static Case c;
    c = Case{};
    c.size = size;
    c.packets = g_opt.packets_given ? g_opt.packets : (size <= 256 ? 100000 : 20000);
    c.window = batched ? (g_opt.window ? g_opt.window : 0xffffffffu) : 1;
    c.batch = mode == mode_batched;
    if (batched && !g_opt.window) {
        // As many as the host -> guest ring holds (the host needs more than a packet's room to write one):
        // the host never blocks on a full ring, so the only signals are the guest's after the host went idle.
        uint32_t total = ((16 + size + 7) & ~7u) + 8;
        c.window = (g_ch.in.size - 1) / total;
    }
    uint64_t gates_before = ring3_gate_calls();
    run_in_ring3(ring3_case, &c);
    if (!c.ok)
        check(hv::fail("ring size=%u mode=%s: %s", size, mode_names[mode], c.error));
    char secs[32];
    seconds_text(c.ticks, g_tsc_hz, secs);
    uint64_t signals = c.write_signals + c.read_signals;
    if (ring3_gate_calls() - gates_before != signals)
        check(hv::fail("ring size=%u: %lu signals counted in ring 3, %lu gate calls", size, signals,
                       ring3_gate_calls() - gates_before));
    g_signals += signals;
    line("ring size=%u mode=%s packets=%lu seconds=%s pps=%lu signals=%lu write_signals=%lu read_signals=%lu "
         "window=%u max_in_flight=%lu batches=%lu ring_full=%lu ns_per_packet=%lu ring_kib=%u",
         size, mode_names[mode], c.packets, secs, per_second(c.packets, c.ticks, g_tsc_hz), signals,
         c.write_signals, c.read_signals, c.window, c.max_in_flight, c.batches, c.ring_full,
         ns_per(c.ticks, c.packets, g_tsc_hz), g_opt.ring_kib);
}

void calibrate()
{
    static Calibration c;
    const char* names[] = {"portio", "gate", "hypercall", "signal"};
    for (int k = 0; k < 4; ++k)
        if (g_opt.calibrate.is(names[k]))
            c.kind = k;
    c.count = g_opt.count;
    run_in_ring3(ring3_calibrate, &c);
    if (c.failures)
        check(hv::fail("calibrate %s: %lu of %lu gate calls failed", names[c.kind], c.failures, c.count));
    char secs[32];
    seconds_text(c.ticks, g_tsc_hz, secs);
    line("calibrate kind=%s count=%lu seconds=%s ns_per_op=%lu", names[c.kind], c.count, secs,
         ns_per(c.ticks, c.count, g_tsc_hz));
}

} // namespace

extern "C" void guest_main(const kit::StartInfo* start_info)
{
    check(parse_cmdline(cmdline::get(start_info)));
    vmbus::Session session;
    session.pool = g_pool;
    session.pool_pages = pool_pages;
    session.timeout_ms = message_timeout_ms;
    check(vmbus::start(session));
    g_tsc_hz = session.tsc_hz;
    const char* clock = session.tsc_hz_from_msr ? "msr" : "cpuid";
    const vmbus::Offer* offer = vmbus::find_offer(class_echo);
    if (!offer)
        check(hv::fail("no echo device offered (class c0ffee00-7e57-4d0c-9a5e-0123456789ab): run vmgen with "
                       "--vmbus-echo"));
    uint32_t ring_pages = 1 + g_opt.ring_kib / 4;
    check(vmbus::open_channel(g_ch, *offer, ring_pages, ring_pages, message_timeout_ms, "echo"));
    uint32_t version = vmbus::bus().version;
    line("vmbus_ring_bench vmbus=%u.%u relid=%u ring=%u+%u KiB tsc_hz=%lu (%s)", version >> 16, version & 0xffff,
         offer->relid, g_opt.ring_kib, g_opt.ring_kib, g_tsc_hz, clock);

    // The host -> guest ring is polled: no interrupts from the host on write (hv_begin_read, kept).
    g_ch.in.control->interrupt_mask = 1;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    set_ring3_gate(gate);
    // No timer interrupts while measuring (they could only stay pending anyway: ring 3 runs with IF = 0).
    hv::stop_wakeup_timer();

    if (g_opt.calibrate.text) {
        calibrate();
    } else if (!(g_opt.packets_given && g_opt.packets == 0)) {
        const uint32_t sizes_default[] = {64, 4096};
        const uint32_t* sizes = g_opt.size ? &g_opt.size : sizes_default;
        unsigned nsizes = g_opt.size ? 1 : 2;
        for (unsigned s = 0; s < nsizes; ++s)
            for (int m = 0; m < 3; ++m)
                if (g_opt.mode == m || (g_opt.mode < 0 && m != mode_pipelined))
                    run_one(sizes[s], m);
    } else {
        line("ring baseline: no packets");
    }
    line("gate calls=%lu ring signals=%lu sint_interrupts=%lu", ring3_gate_calls(), g_signals, hv::sint_interrupts());

    vmbus::restart_wakeup_timer(session);
    vmbus::finish_pass();
}
