// storvsc_bench: synthetic SCSI throughput from a guest ring-3 client, the guest of bench/storage_bench.cc
// (docs/performance.md, "Synthetic SCSI (storvsp)").
//
// Ring 0 (kit, slow here, kept short): Hyper-V detection, the TSC frequency (MSR 0x40000022), GUEST_OS_ID, the
// hypercall page, SynIC, VMBus connect, offers, and vmbus_open of the first SCSI controller offered with Linux's
// storvsc rings (kit/storvsc.h: 128 KiB each way, control page included). Everything else runs in ring 3
// (kit::run_in_ring3; HvSignalEvent through the kit's ring-3 gate): storvsc_channel_init, then the disk at LUN 0
// (path 0, target 0): TEST UNIT READY until it answers GOOD (a unit attention is eaten, as sd does), INQUIRY
// (must be a disk), READ CAPACITY(16). Then ONE case from the command line:
//
//   op=read|write pattern=seq|rand bs=BYTES qd=N seconds=S   (or requests=N instead of seconds)
//
// `qd` requests are kept in flight, each on its own tag and its own buffer in guest RAM (tag t: buffer t, so
// every request of a case is one physically contiguous GPA-direct range); request number i (0, 1, ... in
// submission order) goes to byte offset i * bs (seq, wrapping at `span`) or to splitmix64(seed, i) % (span / bs)
// * bs (rand); bench/storage_bench.cc computes the same offsets for the host side. CDBs as Linux's sd builds them:
// READ(10) / WRITE(10) while the LBA fits in 32 bits and the length in 16, else READ(16) / WRITE(16); never FUA.
// Writes send the buffer as it is (filled once with a pattern before the timed loop).
//
// Batching (the rules of kit/vmbus_ring's staging, done here for GPA-direct packets, which the kit's staging does
// not build): every free slot is filled in one batch, all packets copied into the guest -> host ring behind a
// private write index and published with one write_index update, then one signal decision (signal only when the
// ring was empty before the batch and the host's interrupt_mask is 0: hv_signal_on_write). So completions that
// were drained together are resubmitted together. `batch=N` (default 1) waits until N slots are free (or nothing
// is in flight) before refilling: fewer, larger batches, fewer signals, a lower average queue depth.
//
// Completions: as Linux's storvsc takes them (kit/storvsc.h): the host signals the host -> guest ring only when
// it goes from empty to non-empty while the guest's interrupt_mask is 0; the guest polls the SIEFP flag of the
// channel (ring 3 runs with interrupts off, so nothing is delivered) and drains the ring with interrupts masked
// (hv_begin_read / hv_end_read), matching each completion to its request by trans_id (tag + 1). Every completion
// must be SRB_STATUS_SUCCESS with SCSI status GOOD and the whole buffer transferred, else the run fails.
// wait=spin (default): the vCPU spins (pause) between polls, occupying a host CPU for the whole case. wait=halt:
// when requests are in flight and nothing is signalled, a gate call halts in ring 0 (sti; hlt; cli) until an
// interrupt (the host's signal, or the kit's ~10 ms wake-up timer): the vCPU thread sleeps in KVM meanwhile, as
// an idle Linux vCPU does, at the price of ring-0 work per wait (emulated on this host: slow).
//
// Time: TSC ticks at the Hyper-V TSC frequency (MSR 0x40000022; CPUID-derived when absent), from the first
// submission to the last completion. With seconds=S, submission stops at S and the requests in flight finish.
// Output (one line per case, then "result PASS"):
//   vmgen-guest: storage start op=read ...                      (right before the timed loop)
//   vmgen-guest: storage op=read pattern=seq bs=1048576 qd=32 requests=N bytes=N seconds=S mbps=X iops=Y
//                signals=K interrupts=I publishes=P drains=D max_in_flight=M ring_full=F lat_us=L max_lat_us=L
//                ns_per_request=T block_size=B disk_bytes=N span=N batch=N wait=spin halts=H
// mbps is 10^6 bytes per second. signals: HvSignalEvent calls (hypercalls, one VM exit each); interrupts: host
// signals (SIEFP flags taken); publishes: batches written; drains: begin_read..end_read rounds; lat_us: mean time
// from a request's submission to the loop seeing its completion; halts: ring-0 halts (wait=halt).
// `requests=0` is the baseline of exit counts: everything above (boot, VMBus, storvsc init, disk discovery,
// teardown) but no timed loop:
//   vmgen-guest: storage baseline block_size=B disk_bytes=N ...
//
// Command line (space separated; defaults in brackets): op=read|write [read]; pattern=seq|rand [seq]; bs=BYTES
// (a multiple of the block size, at most the controller's max_transfer_bytes and 2 MiB) [4096]; qd=1..64 [1];
// seconds=S [3]; requests=N (instead of seconds; 0 = baseline); seed=N [1]; span=BYTES (the part of the disk
// used, from LBA 0; 0 = all) [0]; batch=N [1]; wait=spin|halt [spin]; timeout=S (no progress for S seconds
// fails) [20].
// qd * bs must fit the 64 MiB of buffers.
// Ends with CLOSECHANNEL, GPADL teardown, UNLOAD and "result PASS" (or "result FAIL <reason>").
#include "kit/cmdline.h"
#include "kit/format.h"
#include "kit/hyperv.h"
#include "kit/kit.h"
#include "kit/storvsc.h"
#include "kit/timing.h"
#include "kit/vmbus.h"
#include "kit/vmbus_session.h"

namespace {

using namespace kit;
namespace sv = kit::storvsc;
namespace wire = vmgen::protocols::vmbus::storvsp;

constexpr uint64_t message_timeout_ms = 10000;
constexpr unsigned max_qd = 64; // kit::storvsc::max_tags
constexpr uint32_t max_bs = 2u << 20;
constexpr uint32_t max_pfns = max_bs / 4096 + 1; // a buffer that starts mid-page needs one more
constexpr size_t io_bytes = size_t { 64 } << 20;
static_assert(max_qd <= sv::max_tags);

// Pages for the kit (two rings, SynIC, hypercall, interrupt and monitor pages) and the data buffers: in the kit's
// NOLOAD .stack section (keeps the ELF small); zeroed / filled in ring 3 (native speed) before use.
constexpr size_t pool_pages = 2 * sv::ring_pages + 16;
alignas(4096) __attribute__((section(".stack"))) uint8_t g_pool[pool_pages * 4096];
alignas(4096) __attribute__((section(".stack"))) uint8_t g_io[io_bytes];
alignas(4096) uint8_t g_small[4096]; // INQUIRY, READ CAPACITY data

// ---- options ----
struct Options {
    bool write = false;
    bool random = false;
    uint32_t bs = 4096;
    unsigned qd = 1;
    uint64_t seconds = 3;
    bool requests_given = false;
    uint64_t requests = 0;
    uint64_t seed = 1;
    uint64_t span = 0;
    unsigned batch = 1;
    bool halt = false; // wait=halt
    uint64_t timeout_s = 20;
} g_opt;

bool parse_cmdline(const char* s)
{
    for (cmdline::Reader r(s); r.next();) {
        uint64_t v = 0;
        cmdline::Word w;
        if (r.value("op=", w)) {
            if (!w.is("read") && !w.is("write"))
                return hv::fail("op: expected read or write");
            g_opt.write = w.is("write");
        } else if (r.value("pattern=", w)) {
            if (!w.is("seq") && !w.is("rand"))
                return hv::fail("pattern: expected seq or rand");
            g_opt.random = w.is("rand");
        } else if (r.value("bs=", w)) {
            if (!w.number(v) || v < 512 || v > max_bs || v % 512)
                return hv::fail("bs: expected a multiple of 512 in 512..%u", max_bs);
            g_opt.bs = static_cast<uint32_t>(v);
        } else if (r.value("qd=", w)) {
            if (!w.number(v) || v < 1 || v > max_qd)
                return hv::fail("qd: expected 1..%u", max_qd);
            g_opt.qd = static_cast<unsigned>(v);
        } else if (r.value("seconds=", w)) {
            if (!w.number(v) || v < 1 || v > 600)
                return hv::fail("seconds: expected 1..600");
            g_opt.seconds = v;
        } else if (r.value("requests=", w)) {
            if (!w.number(v))
                return hv::fail("requests: expected a number");
            g_opt.requests = v;
            g_opt.requests_given = true;
        } else if (r.value("seed=", w)) {
            if (!w.number(v))
                return hv::fail("seed: expected a number");
            g_opt.seed = v;
        } else if (r.value("span=", w)) {
            if (!w.number(v))
                return hv::fail("span: expected bytes");
            g_opt.span = v;
        } else if (r.value("batch=", w)) {
            if (!w.number(v) || v < 1 || v > max_qd)
                return hv::fail("batch: expected 1..%u", max_qd);
            g_opt.batch = static_cast<unsigned>(v);
        } else if (r.value("wait=", w)) {
            if (!w.is("spin") && !w.is("halt"))
                return hv::fail("wait: expected spin or halt");
            g_opt.halt = w.is("halt");
        } else if (r.value("timeout=", w)) {
            if (!w.number(v) || v < 1)
                return hv::fail("timeout: expected seconds");
            g_opt.timeout_s = v;
        }
        // Anything else (e.g. words a loader adds) is ignored.
    }
    if (uint64_t { g_opt.qd } * g_opt.bs > io_bytes)
        return hv::fail(
            "qd=%u x bs=%u is more than the %lu bytes of buffers", g_opt.qd, g_opt.bs, static_cast<uint64_t>(io_bytes));
    if (g_opt.batch > g_opt.qd)
        g_opt.batch = g_opt.qd;
    return true;
}

// ---- failure (kit/vmbus_session.h): from ring 3 under vmbus::run_ring3, back to ring 0; then the controller's
// channel closed and UNLOAD (when connected), "result FAIL <reason>" ----
using vmbus::fail_now;
using vmbus::failf;

void need(bool ok)
{
    if (!ok)
        fail_now();
}

sv::Controller g_ctrl;
uint64_t g_tsc_hz = 0;

// ---- arithmetic and text ----

// "X.Y" for n / 10.
void tenths_text(uint64_t tenths, char out[32])
{
    format(out, 32, "%lu.%lu", tenths / 10, tenths % 10);
}

// The request offsets; bench/storage_bench.cc has the same function.
uint64_t splitmix64(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint16_t be16(const uint8_t* p)
{
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t be32(const uint8_t* p)
{
    return uint32_t { be16(p) } << 16 | be16(p + 2);
}
uint64_t be64(const uint8_t* p)
{
    return uint64_t { be32(p) } << 32 | be32(p + 4);
}
void put_be(uint8_t* p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; ++i)
        p[i] = static_cast<uint8_t>(v >> (8 * (bytes - 1 - i)));
}

// ---- commands outside the timed loop (through the kit) ----

sv::Command command(const uint8_t* cdb, sv::Dir dir, void* buffer, uint32_t length)
{
    sv::Command cmd;
    cmd.path = 0;
    cmd.target = 0;
    cmd.lun = 0;
    cmd.cdb_length = sv::command_size(cdb[0]);
    __builtin_memcpy(cmd.cdb, cdb, cmd.cdb_length);
    cmd.dir = dir;
    cmd.buffer = buffer;
    cmd.length = length;
    return cmd;
}

sv::Completion run_command(const uint8_t* cdb, sv::Dir dir, void* buffer, uint32_t length)
{
    sv::Completion done;
    need(sv::execute(g_ctrl, command(cdb, dir, buffer, length), done, g_opt.timeout_s * 1000));
    return done;
}

struct Disk {
    uint32_t block_size = 0;
    uint64_t blocks = 0;
} g_disk;

void discover_disk()
{
    char st[96];
    uint8_t cdb[16];
    // TEST UNIT READY until GOOD: sd eats the power-on unit attention.
    sv::Completion d;
    for (unsigned i = 0;; ++i) {
        __builtin_memset(cdb, 0, sizeof cdb);
        d = run_command(cdb, sv::Dir::none, nullptr, 0);
        if (d.good())
            break;
        if (i == 4 || !(d.check_condition() && d.sense_key == 6))
            failf("TEST UNIT READY to LUN 0: expected GOOD, got %s", sv::status_text(d, st, sizeof st));
    }
    __builtin_memset(cdb, 0, sizeof cdb);
    cdb[0] = 0x12; // INQUIRY
    cdb[4] = 36;
    d = run_command(cdb, sv::Dir::in, g_small, 36);
    if (!d.good() || d.transferred < 36)
        failf("INQUIRY to LUN 0: expected GOOD with 36 bytes, got %s", sv::status_text(d, st, sizeof st));
    if (g_small[0] != 0x00)
        failf("LUN 0: expected a disk (peripheral qualifier 0, type 0), got 0x%02x: run vmgen with --scsi-disk",
            g_small[0]);
    __builtin_memset(cdb, 0, sizeof cdb);
    cdb[0] = 0x9e; // SERVICE ACTION IN(16) / READ CAPACITY(16)
    cdb[1] = 0x10;
    cdb[13] = 32;
    d = run_command(cdb, sv::Dir::in, g_small, 32);
    if (!d.good() || d.transferred < 12)
        failf("READ CAPACITY(16): expected GOOD, got %s", sv::status_text(d, st, sizeof st));
    g_disk.blocks = be64(g_small) + 1;
    g_disk.block_size = be32(g_small + 8);
    if (g_disk.block_size != 512 && g_disk.block_size != 4096)
        failf("READ CAPACITY(16): block size %u, expected 512 or 4096", g_disk.block_size);
}

// ---- the timed loop: GPA-direct packets staged in the guest -> host ring, published in batches ----

alignas(8) uint8_t g_packet[sv::gpa_direct_max_bytes];

// Copies the GPA-direct packet (vmbus_sendpacket_mpb_desc) of `cmd` on `tag` into the guest -> host ring at the
// private index `write`, without publishing it; false when the ring has no room for it next to what is staged.
// Marks the kit's tag busy, as kit::storvsc::submit does, so that the kit's completion path takes its reply.
bool stage(unsigned tag, const sv::Command& cmd, uint32_t& write)
{
    vmbus::Ring& ring = g_ctrl.channel.out;
    uint32_t read = ring.control->read_index;
    if (write >= ring.size || read >= ring.size || (write & 7))
        failf("guest -> host ring: index out of range (write=%u read_index=%u, data size %u)", write, read, ring.size);
    wire::VstorPacket srb;
    uint32_t length = 0;
    if (!sv::build_srb(g_ctrl, cmd, srb, length))
        failf("%s", hv::error());
    uint32_t packet_length = sv::build_gpa_direct(g_packet, srb, uint64_t {tag} + 1, cmd.buffer, cmd.length);
    if (packet_length == 0)
        failf("%s", hv::error());
    if (!vmbus::ring_stage_raw(ring, write, g_packet, packet_length))
        return false; // no room next to what is staged: publish, then stage again
    sv::mark_submitted(g_ctrl, tag, cmd, true);
    return true;
}

// The ring-3 gate: the kit's storvsc signal, and a halt until the next interrupt (wait=halt).
constexpr uint64_t gate_halt = 0x4a;

uint64_t gate(uint64_t nr, uint64_t a, uint64_t b, uint64_t c)
{
    if (nr == gate_halt) {
        hv::idle(); // sti; hlt; cli (the wake-up timer ticks, so it halts): a host signal or a timer tick ends it
        return 0;
    }
    return sv::handle_gate(nr, a, b, c);
}

void signal_host()
{
    ++g_ctrl.stats.signals;
    uint64_t status = ring3_call(sv::gate_signal, reinterpret_cast<uint64_t>(&g_ctrl.channel));
    if (status != 0)
        failf("HvSignalEvent(connection_id=%u) through the ring-3 gate failed (%lu)",
            g_ctrl.channel.offer.connection_id, status);
}

struct Result {
    uint64_t requests = 0, bytes = 0, ticks = 0;
    uint64_t publishes = 0, ring_full = 0, max_in_flight = 0;
    uint64_t latency_ticks = 0, max_latency_ticks = 0;
    uint64_t signals = 0, interrupts = 0, drains = 0, gate_calls = 0, halts = 0;
    uint64_t span = 0;
};

void make_cdb(uint8_t* cdb, bool write, uint64_t lba, uint32_t blocks)
{
    __builtin_memset(cdb, 0, 16);
    if (lba <= 0xffffffffull && blocks <= 0xffff) { // sd_setup_rw10_cmnd
        cdb[0] = write ? 0x2a : 0x28;
        put_be(cdb + 2, lba, 4);
        put_be(cdb + 7, blocks, 2);
    } else { // sd_setup_rw16_cmnd
        cdb[0] = write ? 0x8a : 0x88;
        put_be(cdb + 2, lba, 8);
        put_be(cdb + 10, blocks, 4);
    }
}

uint64_t cdb_lba(const uint8_t* cdb)
{
    return cdb[0] == 0x28 || cdb[0] == 0x2a ? be32(cdb + 2) : be64(cdb + 2);
}

void run_case(Result& r)
{
    const uint32_t bs = g_opt.bs;
    if (bs % g_disk.block_size)
        failf("bs=%u is not a multiple of the disk's %u-byte blocks", bs, g_disk.block_size);
    if (bs > g_ctrl.properties.max_transfer_bytes)
        failf("bs=%u is more than the controller's max_transfer_bytes %u", bs, g_ctrl.properties.max_transfer_bytes);
    const uint64_t disk_bytes = g_disk.blocks * g_disk.block_size;
    uint64_t span = g_opt.span ? g_opt.span : disk_bytes;
    if (span > disk_bytes)
        failf("span=%lu is more than the disk's %lu bytes", span, disk_bytes);
    const uint64_t slots = span / bs; // request positions
    if (slots == 0)
        failf("span=%lu holds no %u-byte request", span, bs);
    r.span = slots * bs;
    const uint32_t blocks = bs / g_disk.block_size;
    const uint64_t per_block = bs / g_disk.block_size;
    const unsigned qd = g_opt.qd;

    // The buffers: touched once (first touches are slow here), written with a pattern.
    for (size_t i = 0; i < size_t { qd } * bs; i += 8) {
        uint64_t v = 0x5a5a000000000000ull ^ i;
        __builtin_memcpy(g_io + i, &v, 8);
    }

    line("storage start op=%s pattern=%s bs=%u qd=%u", g_opt.write ? "write" : "read", g_opt.random ? "rand" : "seq",
        bs, qd);
    const uint64_t limit = g_opt.requests_given ? g_opt.requests : ~uint64_t { 0 };
    const uint64_t start = rdtsc();
    const uint64_t end = start + g_opt.seconds * g_tsc_hz;
    const uint64_t stall_ticks = g_opt.timeout_s * g_tsc_hz;
    const uint64_t gates0 = ring3_gate_calls();
    const sv::Stats s0 = g_ctrl.stats;
    uint64_t issued = 0, completed = 0, last = start, last_progress = start, data_seen = 0;
    bool stop = limit == 0;
    unsigned in_flight = 0;
    vmbus::Ring& out = g_ctrl.channel.out;
    while (!stop || in_flight) {
        // Refill: every free slot in one batch (once `batch` are free), one publish, one signal decision.
        if (!stop && qd - in_flight >= (in_flight ? g_opt.batch : 1u)) {
            uint32_t w = vmbus::ring_write_index(out);
            unsigned staged = 0;
            for (unsigned tag = 0; tag < qd && issued < limit; ++tag) {
                if (g_ctrl.tags[tag].busy)
                    continue;
                uint64_t pos = g_opt.random ? splitmix64(g_opt.seed, issued) % slots : issued % slots;
                uint8_t cdb[16];
                make_cdb(cdb, g_opt.write, pos * per_block, blocks);
                sv::Command cmd
                    = command(cdb, g_opt.write ? sv::Dir::out : sv::Dir::in, g_io + size_t { tag } * bs, bs);
                if (!stage(tag, cmd, w)) {
                    ++r.ring_full;
                    break;
                }
                ++issued;
                ++staged;
                ++in_flight;
            }
            if (staged) {
                bool signal = false;
                vmbus::ring_publish(out, w, signal);
                ++r.publishes;
                if (in_flight > r.max_in_flight)
                    r.max_in_flight = in_flight;
                if (signal)
                    signal_host();
            }
            if (issued >= limit)
                stop = true;
        }
        // Completions: whatever the host signalled (the kit drains the ring and marks the tags).
        uint64_t before = g_ctrl.stats.completions;
        need(sv::wait_step(g_ctrl, data_seen));
        uint64_t now = rdtsc();
        if (g_ctrl.stats.completions != before) {
            for (unsigned tag = 0; tag < qd; ++tag) {
                sv::Tag& t = g_ctrl.tags[tag];
                if (!t.busy || !t.done)
                    continue;
                uint64_t latency = now - t.submitted_tsc;
                sv::Completion d;
                sv::release(g_ctrl, tag, &d);
                --in_flight;
                if (!d.good() || d.transferred != bs) {
                    char st[96];
                    failf("%s of %u bytes at LBA %lu (request on tag %u): expected GOOD with everything transferred, "
                          "got %s (as sent: srb=0x%02x scsi=0x%02x data_transfer_length=%u)",
                        g_opt.write ? "WRITE" : "READ", bs, cdb_lba(t.command.cdb), tag,
                        sv::status_text(d, st, sizeof st), d.srb_status, d.scsi_status, d.data_transfer_length);
                }
                ++completed;
                r.latency_ticks += latency;
                if (latency > r.max_latency_ticks)
                    r.max_latency_ticks = latency;
            }
            last = now;
            last_progress = now;
        } else if (g_opt.halt && in_flight && !hv::test_event(vmbus::message_sint, g_ctrl.channel.offer.relid)) {
            // Nothing completed and nothing signalled: halt until an interrupt (the host's signal, or a tick).
            ++r.halts;
            ring3_call(gate_halt);
        }
        if (g_ctrl.stats.completions == before && now - last_progress > stall_ticks) {
            failf("no completion for %lu s: %lu requests issued, %lu completed, %u in flight (guest -> host ring "
                  "%u bytes unread, host -> guest ring %u bytes unread)",
                g_opt.timeout_s, issued, completed, in_flight, vmbus::ring_bytes_to_read(g_ctrl.channel.out),
                vmbus::ring_bytes_to_read(g_ctrl.channel.in));
        }
        if (!stop && now >= end && !g_opt.requests_given)
            stop = true;
    }
    r.requests = completed;
    r.bytes = completed * bs;
    r.ticks = last - start;
    r.signals = g_ctrl.stats.signals - s0.signals;
    r.interrupts = g_ctrl.stats.host_signals - s0.host_signals;
    r.drains = g_ctrl.stats.drains - s0.drains;
    r.gate_calls = ring3_gate_calls() - gates0;
    if (r.gate_calls != r.signals + r.halts)
        failf("%lu signals and %lu halts counted, %lu gate calls made", r.signals, r.halts, r.gate_calls);
}

void ring3_work()
{
    need(sv::init(g_ctrl, false, g_opt.timeout_s * 1000));
    discover_disk();
    const uint64_t disk_bytes = g_disk.blocks * g_disk.block_size;
    if (g_opt.requests_given && g_opt.requests == 0) {
        line("storage baseline block_size=%u disk_bytes=%lu version=0x%04x max_transfer_bytes=%u commands=%lu "
             "signals=%lu interrupts=%lu",
            g_disk.block_size, disk_bytes, g_ctrl.version, g_ctrl.properties.max_transfer_bytes, g_ctrl.stats.commands,
            g_ctrl.stats.signals, g_ctrl.stats.host_signals);
        return;
    }
    static Result r;
    run_case(r);
    char secs[32], mbps[32];
    seconds_text(r.ticks, g_tsc_hz, secs);
    uint64_t bytes_per_s = per_second(r.bytes, r.ticks, g_tsc_hz);
    tenths_text(bytes_per_s / 100000, mbps);
    uint64_t iops = per_second(r.requests, r.ticks, g_tsc_hz);
    uint64_t lat_ns = r.requests ? muldiv(r.latency_ticks / r.requests, 1000000000, g_tsc_hz) : 0;
    uint64_t max_lat_ns = muldiv(r.max_latency_ticks, 1000000000, g_tsc_hz);
    uint64_t ns_per_request = ns_per(r.ticks, r.requests, g_tsc_hz);
    char lat[32], max_lat[32];
    tenths_text(lat_ns / 100, lat);
    tenths_text(max_lat_ns / 100, max_lat);
    line("storage op=%s pattern=%s bs=%u qd=%u requests=%lu bytes=%lu seconds=%s mbps=%s iops=%lu signals=%lu "
         "interrupts=%lu publishes=%lu drains=%lu max_in_flight=%lu ring_full=%lu lat_us=%s max_lat_us=%s "
         "ns_per_request=%lu block_size=%u disk_bytes=%lu span=%lu batch=%u wait=%s halts=%lu",
        g_opt.write ? "write" : "read", g_opt.random ? "rand" : "seq", g_opt.bs, g_opt.qd, r.requests, r.bytes, secs,
        mbps, iops, r.signals, r.interrupts, r.publishes, r.drains, r.max_in_flight, r.ring_full, lat, max_lat,
        ns_per_request, g_disk.block_size, disk_bytes, r.span, g_opt.batch, g_opt.halt ? "halt" : "spin", r.halts);
    if (g_ctrl.in_flight)
        failf("%u requests still outstanding at the end", g_ctrl.in_flight);
}

} // namespace

extern "C" void guest_main(const kit::StartInfo* start_info)
{
    need(parse_cmdline(cmdline::get(start_info)));
    vmbus::Session session;
    session.pool = g_pool;
    session.pool_pages = pool_pages;
    session.timeout_ms = message_timeout_ms;
    need(vmbus::start(session));
    g_tsc_hz = session.tsc_hz;
    const char* clock = session.tsc_hz_from_msr ? "msr" : "cpuid";
    const vmbus::Offer* offer = vmbus::find_offer(vmbus::class_scsi);
    if (!offer)
        need(hv::fail("offers: expected a SCSI controller (class ba6163d9-04a1-4d29-b605-72e2ffb1dc7f), none offered "
                      "(vmgen run --scsi-disk)"));
    need(sv::open(g_ctrl, *offer, 0, message_timeout_ms));
    uint32_t version = vmbus::bus().version;
    line("storvsc_bench vmbus=%u.%u relid=%u ring=%u+%u pages tsc_hz=%lu (%s)", version >> 16, version & 0xffff,
        offer->relid, sv::ring_pages, sv::ring_pages, g_tsc_hz, clock);

    set_ring3_gate(gate);
    if (!g_opt.halt)
        hv::stop_wakeup_timer(); // ring 3 runs with interrupts off: a timer could only stay pending
    bool ring3_pass = vmbus::run_ring3(ring3_work);
    if (!g_opt.halt)
        vmbus::restart_wakeup_timer(session);
    if (!ring3_pass)
        fail_now();
    vmbus::finish_pass();
}
