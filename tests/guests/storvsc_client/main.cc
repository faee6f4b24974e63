// storvsc_client: the synthetic SCSI conformance guest. It drives the host's storvsp the way Linux 6.1 does
// (drivers/scsi/storvsc_drv.c through kit/storvsc.h; the SCSI midlayer's scan in scsi_scan.c; sd.c and sr.c
// probing a disk and a DVD drive; the command sequences of vm/scsi/scsi_linux_probe_test.cc), then checks the
// data path, and reports every step on COM1.
//
// Ring 0 (slow here, kept short): Hyper-V detection, GUEST_OS_ID, the hypercall page, SynIC, VMBus connect,
// offers, and vmbus_open of every SCSI controller offered (class ba6163d9-04a1-4d29-b605-72e2ffb1dc7f, in offer
// order = ctrl 0, 1, ...; rings of 128 KiB each way control page included, as storvsc's VMBUS_RING_SIZE). Then
// everything else runs in ring 3 (kit::run_in_ring3; HvSignalEvent through the kit's ring-3 gate):
//
//  1. storvsc_channel_init on each controller: BEGIN_INITIALIZATION, QUERY_PROTOCOL_VERSION 0x0602 / 0x0600 /
//     0x0501, QUERY_PROPERTIES, END_INITIALIZATION (trans_id VMBUS_RQST_INIT).
//       vmgen-guest: storvsc scsi0 ready version=0x0602 (win10) max_transfer_bytes=N
//  2. Linux's scan (scsi_scan_host): for path (channel) 0..7 and target 0..1, INQUIRY 36 to LUN 0 (and again
//     with the length the answer announces; up to 3 tries on UNIT ATTENTION 28/29 or nothing transferred);
//     peripheral qualifier 3 = "target present, no LUN"; a LUN found is added (scsi_add_lun: VPD pages 00, 80,
//     83, B0, B1, B2 as scsi_attach_vpd asks for them); then REPORT LUNS (4096 bytes, BLIST_REPORTLUN2, up to 3
//     tries) and each reported LUN probed; a failed REPORT LUNS means a sequential scan of LUNs 1..7 until one is
//     missing. Then sd's probe of each disk (TEST UNIT READY, READ CAPACITY(16), MODE SENSE(6) 3F/4, 08/4, 08/len,
//     the partition-table read of the first 4 KiB) and sr's probe of each DVD drive (TUR with unit attentions
//     eaten, MODE SENSE(6) 2A/128, GET CONFIGURATION 0028/0020, TUR, READ TOC 40h/00h/tracks, READ CAPACITY(10),
//     READ DISC INFORMATION, READ TRACK INFORMATION, GET EVENT STATUS NOTIFICATION, GET CONFIGURATION 0000,
//     PREVENT ALLOW MEDIUM REMOVAL). One line per LUN:
//       vmgen-guest: lun ctrl=0 lun=0 type=disk vendor=Msft product="Virtual Disk" blocks=8192 block_size=512 ro=0
//                    physical_block_size=4096 wce=1 fua=1 lbpme=1 nonrot=1 tagged=1 path=0 target=0
//       vmgen-guest: lun ctrl=0 lun=3 type=dvd vendor=Msft product="Virtual DVD-ROM" blocks=N block_size=2048 ro=1
//                    media=1 profile=0x0008 speed=24 can_eject=1 tagged=1 path=0 target=0
//       vmgen-guest: scan ctrl=0 luns=N commands=N targets_present=N report_luns_failed=N
//  3. Data checks per disk (pattern=lba): the whole disk read with `qd` requests of `chunk` bytes in flight, each
//     block checked; one request of max_transfer_bytes; buffers at byte offsets 512 and 0xe00 in a page (the
//     GPA range's byte_offset); READ(10) at the capacity and READ(16) across the end: CHECK CONDITION, ILLEGAL
//     REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE (5/21/00), nothing transferred; `qd` one-block reads at
//     scattered LBAs all in flight at once. write=1 on a writable disk: WRITE(10) of LBA 2; WRITE(16) FUA of LBAs
//     10..17; WRITE(10) FUA of the last LBA; `qd` one-block WRITE(10)s of LBAs 32..32+qd-1 in flight at once;
//     SYNCHRONIZE CACHE(10); everything read back, the neighbours unchanged. A read-only disk (MODE SENSE WP) must
//     refuse WRITE(10) with DATA PROTECT / WRITE PROTECTED (7/27/00) and keep its data.
//       vmgen-guest: read ctrl=0 lun=0 bytes=N requests=N qd=32 max_in_flight=32 ok
//       vmgen-guest: write ctrl=0 lun=0 lbas=2,10-17,32-63,8191 fua=9 sync=1 ok
//       vmgen-guest: readonly ctrl=0 lun=1 write refused sense=7/27/00 ok
//  4. DVD: READ(10) of block 16 (the primary volume descriptor: "\x01CD001\x01"), the root directory, the file
//     `iso_file` found by name and read whole, its bytes checked.
//       vmgen-guest: dvd ctrl=0 lun=3 pvd ok volume="VMGEN" blocks=N root_extent=N
//       vmgen-guest: dvd ctrl=0 lun=3 file PATTERN.BIN extent=N bytes=N ok
//  5. reset=1 (per disk, after the reads and before the writes): `qd` reads in flight, RESET_BUS (trans_id
//     VMBUS_RQST_RESET), its reply, every read completed (success with the right data, or a failure status), then
//     TEST UNIT READY (unit attentions eaten) and a read that works.
//       vmgen-guest: reset ctrl=0 lun=1 in_flight=32 completed_good=32 completed_failed=0 reply_operation=1 ... ok
//  6. Per controller: `stats ctrl=0 commands=N completions=N ...`; a rescan request from the host (ENUMERATE_BUS
//     with trans_id 0) after the scan makes the guest rescan like storvsc_host_scan (TUR to each LUN, scan again).
// Then CLOSECHANNEL + GPADL teardown, UNLOAD, and "result PASS" or "result FAIL <step>: expected ..., got ...".
//
// Test data ("pattern=lba"): logical block `lba` of a disk with B-byte blocks holds the LBA as 8 bytes
// little-endian, then byte i (8 <= i < B) = (lba * 31 + i * 7 + (i >> 8) * 3 + seed) & 0xff, seed 0 as the host
// test wrote it before boot, seed 0xa5 where this guest writes. The DVD's file: the same with B = 2048, lba = the
// 2048-byte block index inside the file, seed 0x3c, for the file's length (tests/guest_storage_test.cc).
//
// Command line (space separated; defaults in brackets): pattern=lba|none [lba]; write=0|1 [0]; qd=N (1..32) [32];
// chunk=BYTES (multiple of 4096, <= 131072) [65536]; expect_luns=N (fail unless the scan finds N LUNs in all)
// [any]; iso_file=NAME [PATTERN.BIN]; reset=0|1 [0]; trace=0|1 (a line per SCSI command) [0]; timeout=S (per
// command) [10].
//
// Files: main.cc (this: the command line, the step order, guest_main), client.h (what they share),
// scsi.cc (the test pattern, SCSI commands as the midlayer runs them), scan.cc (the scan, sd's and sr's probes),
// io_checks.cc (the data checks: reads, edges, queue depth, reset, writes, read-only, DVD).
#include "storvsc_client/client.h"

namespace storvsc_client {

// The data buffers: in the kit's NOLOAD .stack section (keeps the ELF small).
alignas(4096) __attribute__((section(".stack"))) uint8_t g_io[io_bytes];            // qd buffers
alignas(4096) __attribute__((section(".stack"))) uint8_t g_big[4 << 20];            // one large request
alignas(4096) __attribute__((section(".stack"))) uint8_t g_small[64 * 1024];        // command data

Options g_opt;
sv::Controller g_ctrl[max_controllers];
unsigned g_ctrl_count = 0;

namespace {

constexpr uint64_t message_timeout_ms = 10000;

// Pages for the kit (rings, SynIC, hypercall, interrupt and monitor pages): in the kit's NOLOAD .stack section
// too; the pool is zeroed in ring 3 (native speed) before use.
constexpr size_t pool_pages = max_controllers * 2 * sv::ring_pages + 16;
alignas(4096) __attribute__((section(".stack"))) uint8_t g_pool[pool_pages * 4096];

// ---- options ----
bool parse_cmdline(const char* s)
{
    for (cmdline::Reader r(s); r.next();) {
        uint64_t v;
        cmdline::Word w;
        if (r.value("pattern=", w)) {
            if (w.is("lba"))
                g_opt.pattern = true;
            else if (w.is("none"))
                g_opt.pattern = false;
            else
                return hv::fail("command line: pattern: expected lba or none");
        } else if (r.number("write=", v)) {
            g_opt.write = v != 0;
        } else if (r.number("qd=", v)) {
            if (v < 1 || v > max_qd)
                return hv::fail("command line: qd=%lu: expected 1..%u", v, max_qd);
            g_opt.qd = static_cast<unsigned>(v);
        } else if (r.number("chunk=", v)) {
            if (v == 0 || v % 4096 || v > max_chunk)
                return hv::fail("command line: chunk=%lu: expected a multiple of 4096 up to %u", v, max_chunk);
            g_opt.chunk = static_cast<uint32_t>(v);
        } else if (r.number("expect_luns=", v)) {
            g_opt.expect_luns = static_cast<int>(v);
        } else if (r.value("iso_file=", w)) {
            if (w.length == 0 || w.length >= sizeof g_opt.iso_file)
                return hv::fail("command line: iso_file: expected 1..%u characters",
                                unsigned{sizeof g_opt.iso_file} - 1);
            __builtin_memcpy(g_opt.iso_file, w.text, w.length);
            g_opt.iso_file[w.length] = '\0';
        } else if (r.number("reset=", v)) {
            g_opt.reset = v != 0;
        } else if (r.number("trace=", v)) {
            g_opt.trace = v != 0;
        } else if (r.number("timeout=", v) && v > 0) {
            g_opt.timeout_s = static_cast<unsigned>(v);
        }
    }
    return true;
}

// ---- ring 3 (vmbus::run_ring3: fail_now from any depth returns to ring 0) ----
void ring3_work()
{
    for (unsigned i = 0; i < g_ctrl_count; ++i)
        need(sv::init(g_ctrl[i], true, uint64_t{g_opt.timeout_s} * 1000));
    for (unsigned i = 0; i < g_ctrl_count; ++i) {
        sv::take_rescans(g_ctrl[i]); // requests before the scan are answered by it
        scan_controller(g_ctrl[i]);
    }
    unsigned disks = 0, dvds = 0;
    for (unsigned i = 0; i < g_lun_count; ++i) {
        disks += g_luns[i].type() == LunType::disk;
        dvds += g_luns[i].type() == LunType::dvd;
    }
    line("scan luns=%u disks=%u dvds=%u commands=%lu", g_lun_count, disks, dvds, g_commands);
    if (g_opt.expect_luns >= 0 && static_cast<unsigned>(g_opt.expect_luns) != g_lun_count)
        failf("scan: expected %d LUNs, got %u", g_opt.expect_luns, g_lun_count);

    for (unsigned i = 0; i < g_lun_count; ++i) {
        const Lun& l = g_luns[i];
        if (l.type() == LunType::disk) {
            if (l.block_size != 512 && l.block_size != 4096)
                failf("ctrl=%u lun=%u: block size expected 512 or 4096, got %u", l.addr.c->index, l.addr.lun,
                      l.block_size);
            if (g_opt.pattern)
                read_whole(l);
            read_edges(l);
            queue_depth(l);
            if (g_opt.reset)
                reset_check(l);
            if (l.ro)
                readonly_checks(l);
            else if (g_opt.write)
                write_checks(l);
        } else if (l.type() == LunType::dvd) {
            dvd_checks(l);
        }
    }

    for (unsigned i = 0; i < g_ctrl_count; ++i) {
        sv::Controller& c = g_ctrl[i];
        uint64_t rescans = sv::take_rescans(c);
        if (rescans)
            host_rescan(c);
        const sv::Stats& s = c.stats;
        line("stats ctrl=%u commands=%lu completions=%lu gpa_direct=%lu bytes_in=%lu bytes_out=%lu signals=%lu "
             "host_signals=%lu drains=%lu max_in_flight=%lu rescans=%lu unsolicited=%lu ring_full=%lu "
             "non_completion_type=%lu",
             c.index, s.commands, s.completions, s.gpa_direct, s.bytes_in, s.bytes_out, s.signals, s.host_signals,
             s.drains, s.max_in_flight, s.rescans, s.unsolicited, s.ring_full, s.non_completion_type);
        if (s.non_completion_type)
            line("note: ctrl=%u %lu replies were not VM_PKT_COMP (11) packets: Linux accepts them, Hyper-V sends 11",
                 c.index, s.non_completion_type);
        if (c.in_flight)
            failf("ctrl=%u: %u requests still outstanding at the end", c.index, c.in_flight);
    }
}

} // namespace

} // namespace storvsc_client

using namespace storvsc_client;

extern "C" void guest_main(const kit::StartInfo* start_info)
{
    need(parse_cmdline(cmdline::get(start_info)));
    line("storvsc_client pattern=%s write=%u qd=%u chunk=%u expect_luns=%d iso_file=%s reset=%u timeout=%us",
         g_opt.pattern ? "lba" : "none", g_opt.write ? 1u : 0u, g_opt.qd, g_opt.chunk, g_opt.expect_luns,
         g_opt.iso_file, g_opt.reset ? 1u : 0u, g_opt.timeout_s);
    vmbus::Session session;
    session.pool = g_pool;
    session.pool_pages = pool_pages;
    session.timeout_ms = message_timeout_ms;
    need(vmbus::start(session));
    uint32_t version = vmbus::bus().version;
    line("vmbus version=%u.%u offers=%u", version >> 16, version & 0xffff, vmbus::bus().offer_count);

    // storvsc_probe -> storvsc_connect_to_vsp -> vmbus_open, for every SCSI controller offered.
    for (unsigned i = 0; i < vmbus::bus().offer_count; ++i) {
        const vmbus::Offer& o = vmbus::bus().offers[i];
        if (!(o.type == vmbus::class_scsi))
            continue;
        if (g_ctrl_count == max_controllers)
            need(hv::fail("offers: more than %u SCSI controllers", max_controllers));
        char instance[37];
        vmbus::guid_text(o.instance, instance);
        line("scsi controller ctrl=%u relid=%u instance=%s conn_id=%u monitor=%s dedicated=%u subchannel=%u",
             g_ctrl_count, o.relid, instance, o.connection_id, o.monitor_allocated ? "allocated" : "none",
             o.dedicated_interrupt ? 1u : 0u, o.sub_channel_index);
        need(sv::open(g_ctrl[g_ctrl_count], o, g_ctrl_count, message_timeout_ms));
        line("channel scsi%u open ring=%u+%u pages gpadl=0x%x", g_ctrl_count, sv::ring_pages, sv::ring_pages,
             g_ctrl[g_ctrl_count].channel.gpadl);
        ++g_ctrl_count;
    }
    if (g_ctrl_count == 0)
        need(hv::fail("offers: expected a SCSI controller (class ba6163d9-04a1-4d29-b605-72e2ffb1dc7f), none offered "
                      "(vmgen run --scsi-disk / --dvd)"));

    sv::use_ring3_gate();
    hv::stop_wakeup_timer(); // ring 3 runs with interrupts off: a timer could only stay pending
    uint64_t start = rdtsc();
    bool ring3_pass = vmbus::run_ring3(ring3_work);
    char secs[32];
    seconds_text(rdtsc() - start, secs);
    line("ring3 seconds=%s gate_calls=%lu sint_interrupts=%lu", secs, ring3_gate_calls(), hv::sint_interrupts());
    vmbus::restart_wakeup_timer(session);
    if (!ring3_pass)
        fail_now();
    vmbus::finish_pass();
}
