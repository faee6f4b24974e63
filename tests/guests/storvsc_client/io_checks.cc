// storvsc_client: the data checks (reads, edges, queue depth, reset, writes, read-only disks, DVDs; see
// main.cc).
#include "storvsc_client/client.h"

namespace storvsc_client {

// ---- data checks ----
void seconds_text(uint64_t ticks, char out[32])
{
    uint64_t ms = ticks / hv::tsc_per_ms();
    format(out, 32, "%lu.%03lu", ms / 1000, ms % 1000);
}

namespace {

// A read or write command of `blocks` blocks at `lba` (READ(10)/WRITE(10) while the LBA fits 32 bits).
void rw_cdb(uint8_t* c, bool write, uint64_t lba, uint32_t blocks, uint8_t flags, bool force16 = false)
{
    if (!force16 && lba + blocks <= 0xffffffffull && blocks <= 0xffff)
        rw10(c, write ? 0x2a : 0x28, static_cast<uint32_t>(lba), static_cast<uint16_t>(blocks), flags);
    else
        rw16(c, write ? 0x8a : 0x88, lba, blocks, flags);
}

// Submits on `tag`, waiting for room in the ring when it is full (Linux requeues).
void submit_retrying(sv::Controller& c, unsigned tag, const sv::Command& cmd)
{
    uint64_t deadline = hv::deadline_ms(uint64_t{g_opt.timeout_s} * 1000);
    for (;;) {
        uint64_t full = c.stats.ring_full;
        if (sv::submit(c, tag, cmd))
            return;
        if (c.stats.ring_full == full || hv::expired(deadline))
            fail_now();
        uint64_t seen = 0;
        need(sv::wait_step(c, seen));
    }
}

// Waits for any of the busy tags to finish; returns it.
unsigned wait_any(sv::Controller& c, const char* what)
{
    int found = -1;
    need(sv::wait(
        c,
        [&] {
            found = sv::first_done(c);
            return found >= 0;
        },
        uint64_t{g_opt.timeout_s} * 1000, what));
    return static_cast<unsigned>(found);
}

void need_good(const sv::Completion& d, const Lun& l, const char* what, uint64_t lba, uint32_t expect_bytes)
{
    if (d.good() && d.transferred == expect_bytes)
        return;
    char st[96];
    failf("ctrl=%u lun=%u %s at LBA %lu: expected GOOD with %u bytes transferred, got %s (as sent: srb=0x%02x "
          "scsi=0x%02x data_transfer_length=%u)",
          l.addr.c->index, l.addr.lun, what, lba, expect_bytes, sv::status_text(d, st, sizeof st), d.srb_status,
          d.scsi_status, d.data_transfer_length);
}

} // namespace

// The whole disk with up to qd requests of `chunk` bytes in flight, every block checked.
void read_whole(const Lun& l)
{
    sv::Controller& c = *l.addr.c;
    const uint32_t bs = l.block_size;
    const uint32_t per = g_opt.chunk / bs ? g_opt.chunk / bs : 1;
    const uint64_t total = l.blocks;
    struct Slot {
        uint64_t lba;
        uint32_t blocks;
    } slots[max_qd];
    uint64_t next = 0, done_blocks = 0, requests = 0;
    unsigned in_flight = 0;
    uint64_t max_in_flight = 0;
    uint64_t start = rdtsc();
    while (done_blocks < total) {
        while (next < total && in_flight < g_opt.qd) {
            int tag = sv::free_tag(c);
            if (tag < 0 || static_cast<unsigned>(tag) >= g_opt.qd)
                break;
            uint32_t n = total - next < per ? static_cast<uint32_t>(total - next) : per;
            uint8_t cdb[16];
            rw_cdb(cdb, false, next, n, 0);
            uint8_t* buf = g_io + static_cast<size_t>(tag) * max_chunk;
            submit_retrying(c, static_cast<unsigned>(tag), make_command(l.addr, cdb, sv::Dir::in, buf, n * bs));
            slots[tag] = {next, n};
            next += n;
            ++in_flight;
            ++requests;
            ++g_commands;
            if (in_flight > max_in_flight)
                max_in_flight = in_flight;
        }
        unsigned tag = wait_any(c, "read: a completion");
        sv::Completion d;
        sv::release(c, tag, &d);
        --in_flight;
        need_good(d, l, "read", slots[tag].lba, slots[tag].blocks * bs);
        need(check_blocks(g_io + size_t{tag} * max_chunk, slots[tag].lba, slots[tag].blocks, bs, seed_host,
                          "read of the whole disk"));
        done_blocks += slots[tag].blocks;
    }
    char secs[32];
    seconds_text(rdtsc() - start, secs);
    line("read ctrl=%u lun=%u bytes=%lu requests=%lu qd=%u max_in_flight=%lu seconds=%s ok", c.index, l.addr.lun,
         total * bs, requests, g_opt.qd, max_in_flight, secs);
}

void single(const Lun& l, bool write, uint64_t lba, uint32_t blocks, uint8_t flags, void* buffer, bool force16,
            const char* what)
{
    uint8_t cdb[16];
    rw_cdb(cdb, write, lba, blocks, flags, force16);
    Result r = exec(l.addr, cdb, write ? sv::Dir::out : sv::Dir::in, buffer, blocks * l.block_size);
    need_good(r.done, l, what, lba, blocks * l.block_size);
}

// One request of max_transfer_bytes, buffers at odd byte offsets, reads past the end.
void read_edges(const Lun& l)
{
    sv::Controller& c = *l.addr.c;
    const uint32_t bs = l.block_size;
    uint32_t max = c.properties.max_transfer_bytes & ~4095u; // storvsc: round_down(max_transfer_bytes, 4096)
    if (max > sizeof g_big)
        max = sizeof g_big;
    uint64_t disk_bytes = l.blocks * bs;
    uint32_t big = disk_bytes < max ? static_cast<uint32_t>(disk_bytes) : max;
    uint32_t big_blocks = big / bs;
    if (big_blocks) {
        single(l, false, 0, big_blocks, 0, g_big, false, "read of max_transfer_bytes");
        if (g_opt.pattern)
            need(check_blocks(g_big, 0, big_blocks, bs, seed_host, "read of max_transfer_bytes"));
    }
    // byte_offset 512 (one block), and 0xe00 (crosses pages).
    uint64_t lba = l.blocks > 5 ? 5 : 0;
    single(l, false, lba, 1, 0, g_big + 512, false, "read into a buffer at page offset 512");
    if (g_opt.pattern)
        need(check_blocks(g_big + 512, lba, 1, bs, seed_host, "read at page offset 512"));
    uint32_t n = l.blocks >= lba + 3 ? 3 : 1;
    single(l, false, lba, n, 0, g_big + 0x1e00, true, "READ(16) into a buffer at page offset 0xe00");
    if (g_opt.pattern)
        need(check_blocks(g_big + 0x1e00, lba, n, bs, seed_host, "read at page offset 0xe00"));

    // Past the end.
    for (int k = 0; k < 2; ++k) {
        uint8_t cdb[16];
        uint64_t at = k == 0 ? l.blocks : l.blocks - 1;
        uint32_t count = k == 0 ? 1 : 2;
        rw_cdb(cdb, false, at, count, 0, k == 1);
        Result r = exec(l.addr, cdb, sv::Dir::in, g_big, count * bs, 0);
        const sv::Completion& d = r.done;
        if (!(d.check_condition() && d.sense_key == 0x5 && d.asc == 0x21 && d.ascq == 0x00 && d.transferred == 0 &&
              (d.srb_status & wire::srb_status_autosense_valid) &&
              wire::srb_status_code(d.srb_status) == wire::srb_status_error)) {
            char t[200];
            failf("ctrl=%u lun=%u %s of %u blocks at LBA %lu (capacity %lu): expected CHECK CONDITION, ILLEGAL "
                  "REQUEST / LBA OUT OF RANGE (5/21/00), srb 0x84 (ERROR | AUTOSENSE_VALID), nothing transferred; "
                  "got %s",
                  c.index, l.addr.lun, k == 0 ? "READ(10)" : "READ(16)", count, at, l.blocks,
                  result_text(r, t, sizeof t));
        }
    }
    line("edges ctrl=%u lun=%u large=%u pfns=%u offset512=ok offset0xe00=ok past_end=5/21/00 ok", c.index, l.addr.lun,
         big, (big + 4095) / 4096);
}

// qd one-block reads at scattered LBAs, all submitted before any completion is handled.
void queue_depth(const Lun& l)
{
    sv::Controller& c = *l.addr.c;
    const uint32_t bs = l.block_size;
    uint64_t lbas[max_qd];
    uint64_t stride = l.blocks / g_opt.qd ? l.blocks / g_opt.qd : 1;
    for (unsigned i = 0; i < g_opt.qd; ++i) {
        // Reverse order, so a host that completes in order of LBA would complete out of submission order.
        lbas[i] = ((g_opt.qd - 1 - i) * stride + i * 3) % l.blocks;
        uint8_t cdb[16];
        rw_cdb(cdb, false, lbas[i], 1, 0);
        submit_retrying(c, i, make_command(l.addr, cdb, sv::Dir::in, g_io + size_t{i} * max_chunk, bs));
        ++g_commands;
    }
    unsigned in_flight_peak = c.in_flight;
    unsigned out_of_order = 0; // completions that overtook an earlier submission
    for (unsigned done = 0; done < g_opt.qd; ++done) {
        unsigned tag = wait_any(c, "queue depth: a completion");
        for (unsigned earlier = 0; earlier < tag; ++earlier)
            if (c.tags[earlier].busy && !c.tags[earlier].done) {
                ++out_of_order;
                break;
            }
        sv::Completion d;
        sv::release(c, tag, &d);
        need_good(d, l, "queued read", lbas[tag], bs);
        if (g_opt.pattern)
            need(check_blocks(g_io + size_t{tag} * max_chunk, lbas[tag], 1, bs, seed_host, "queued read"));
    }
    line("queue ctrl=%u lun=%u requests=%u in_flight=%u out_of_order=%u ok", c.index, l.addr.lun, g_opt.qd,
         in_flight_peak, out_of_order);
}

// write=1: writes with and without FUA, a queue of writes, SYNCHRONIZE CACHE, everything read back.
void write_checks(const Lun& l)
{
    sv::Controller& c = *l.addr.c;
    const uint32_t bs = l.block_size;
    const uint64_t last = l.blocks - 1;
    if (l.blocks < 32 + g_opt.qd + 2)
        failf("ctrl=%u lun=%u write: the disk (%lu blocks) is too small for the write checks (>= %u blocks)", c.index,
              l.addr.lun, l.blocks, 32 + g_opt.qd + 2);
    unsigned fua_writes = 0;
    // WRITE(10), LBA 2, no FUA.
    fill_block(g_big, 2, bs, seed_guest);
    single(l, true, 2, 1, 0, g_big, false, "WRITE(10)");
    // WRITE(16) FUA, LBAs 10..17.
    for (uint32_t i = 0; i < 8; ++i)
        fill_block(g_big + i * bs, 10 + i, bs, seed_guest);
    single(l, true, 10, 8, fua, g_big, true, "WRITE(16) FUA");
    ++fua_writes;
    // WRITE(10) FUA, the last LBA, from a buffer at page offset 0x200.
    fill_block(g_big + 0x10200, last, bs, seed_guest);
    single(l, true, last, 1, fua, g_big + 0x10200, false, "WRITE(10) FUA of the last block");
    ++fua_writes;
    // qd one-block writes in flight at once: LBAs 32..32+qd-1.
    for (unsigned i = 0; i < g_opt.qd; ++i) {
        uint8_t* buf = g_io + size_t{i} * max_chunk;
        fill_block(buf, 32 + i, bs, seed_guest);
        uint8_t cdb[16];
        rw_cdb(cdb, true, 32 + i, 1, 0);
        submit_retrying(c, i, make_command(l.addr, cdb, sv::Dir::out, buf, bs));
        ++g_commands;
    }
    for (unsigned done = 0; done < g_opt.qd; ++done) {
        unsigned tag = wait_any(c, "queued writes: a completion");
        sv::Completion d;
        sv::release(c, tag, &d);
        need_good(d, l, "queued WRITE(10)", 32 + tag, bs);
    }
    // SYNCHRONIZE CACHE(10) (sd_setup_flush_cmnd: LBA 0, all blocks).
    uint8_t cdb[16];
    cdb10(cdb, 0x35);
    Result r = exec(l.addr, cdb, sv::Dir::none, nullptr, 0);
    need_ok(r, l.addr, "SYNCHRONIZE CACHE(10)");

    // Read back what was written, and the neighbours.
    struct Range {
        uint64_t lba;
        uint32_t blocks;
        uint8_t seed;
    } ranges[] = {
        {1, 1, seed_host},          {2, 1, seed_guest},           {3, 1, seed_host},
        {9, 1, seed_host},          {10, 8, seed_guest},          {18, 1, seed_host},
        {31, 1, seed_host},         {32, g_opt.qd, seed_guest},   {32 + g_opt.qd, 1, seed_host},
        {last - 1, 1, seed_host},   {last, 1, seed_guest},
    };
    for (const Range& range : ranges) {
        single(l, false, range.lba, range.blocks, 0, g_big, range.lba > 16, "read back");
        if (range.seed == seed_guest || g_opt.pattern)
            need(check_blocks(g_big, range.lba, range.blocks, bs, range.seed,
                              range.seed == seed_guest ? "read back of written blocks" : "read back of a neighbour"));
    }
    line("write ctrl=%u lun=%u lbas=2,10-17,32-%u,%lu fua=%u sync=1 ok", c.index, l.addr.lun, 32 + g_opt.qd - 1, last,
         fua_writes);
}

// A read-only disk refuses writes with DATA PROTECT and keeps its data.
void readonly_checks(const Lun& l)
{
    sv::Controller& c = *l.addr.c;
    const uint32_t bs = l.block_size;
    fill_block(g_big, 2, bs, seed_guest);
    uint8_t cdb[16];
    rw10(cdb, 0x2a, 2, 1);
    Result r = exec(l.addr, cdb, sv::Dir::out, g_big, bs, 0);
    const sv::Completion& d = r.done;
    if (!(d.check_condition() && d.sense_key == 0x7 && d.asc == 0x27 && d.ascq == 0x00 && d.transferred == 0)) {
        char t[200];
        failf("ctrl=%u lun=%u read-only disk: WRITE(10) of LBA 2: expected CHECK CONDITION, DATA PROTECT / WRITE "
              "PROTECTED (7/27/00), nothing transferred; got %s",
              c.index, l.addr.lun, result_text(r, t, sizeof t));
    }
    single(l, false, 2, 1, 0, g_big, false, "read back on the read-only disk");
    if (g_opt.pattern)
        need(check_blocks(g_big, 2, 1, bs, seed_host, "read-only disk after the refused write"));
    line("readonly ctrl=%u lun=%u write refused sense=%x/%02x/%02x ok", c.index, l.addr.lun, d.sense_key, d.asc,
         d.ascq);
}

// reset=1: reads in flight, RESET_BUS, every read accounted for, then a read that works.
void reset_check(const Lun& l)
{
    sv::Controller& c = *l.addr.c;
    const uint32_t bs = l.block_size;
    uint32_t per = g_opt.chunk / bs ? g_opt.chunk / bs : 1;
    uint64_t lbas[max_qd];
    uint32_t counts[max_qd];
    for (unsigned i = 0; i < g_opt.qd; ++i) {
        lbas[i] = (uint64_t{i} * per) % l.blocks;
        counts[i] = l.blocks - lbas[i] < per ? static_cast<uint32_t>(l.blocks - lbas[i]) : per;
        uint8_t cdb[16];
        rw_cdb(cdb, false, lbas[i], counts[i], 0);
        submit_retrying(c, i, make_command(l.addr, cdb, sv::Dir::in, g_io + size_t{i} * max_chunk, counts[i] * bs));
        ++g_commands;
    }
    unsigned submitted = c.in_flight;
    need(sv::reset_bus(c, uint64_t{g_opt.timeout_s} * 1000));
    unsigned good = 0, failed = 0;
    for (unsigned i = 0; i < g_opt.qd; ++i) {
        sv::Completion d;
        sv::release(c, i, &d);
        if (d.good()) {
            if (d.transferred != counts[i] * bs)
                failf("ctrl=%u lun=%u reset: read %u completed GOOD with %u of %u bytes", c.index, l.addr.lun, i,
                      d.transferred, counts[i] * bs);
            if (g_opt.pattern)
                need(check_blocks(g_io + size_t{i} * max_chunk, lbas[i], counts[i], bs, seed_host,
                                  "read completed around RESET_BUS"));
            ++good;
        } else {
            ++failed;
        }
    }
    // The next command may report the reset (UNIT ATTENTION 29/xx): scsi_error's expecting_cc_ua retries it.
    Result r = tur_retrying(l.addr);
    need_ok(r, l.addr, "TEST UNIT READY after RESET_BUS");
    single(l, false, 0, 1, 0, g_big, false, "read after RESET_BUS");
    if (g_opt.pattern)
        need(check_blocks(g_big, 0, 1, bs, seed_host, "read after RESET_BUS"));
    line("reset ctrl=%u lun=%u in_flight=%u completed_good=%u completed_failed=%u reply_operation=%u "
         "reply_status=0x%x ok",
         c.index, l.addr.lun, submitted, good, failed, c.reset_reply.operation, c.reset_reply.status);
}

// ---- DVD: ISO 9660 ----
namespace {

uint32_t le32(const uint8_t* p) { return load32(p); }

bool name_matches(const uint8_t* rec_name, unsigned len, const char* want)
{
    unsigned n = 0;
    while (n < len && rec_name[n] != ';')
        ++n;
    if (n && rec_name[n - 1] == '.') // "NAME." for files without an extension
        --n;
    unsigned i = 0;
    for (; i < n && want[i]; ++i) {
        char a = static_cast<char>(rec_name[i]), b = want[i];
        if (a >= 'a' && a <= 'z')
            a = static_cast<char>(a - 32);
        if (b >= 'a' && b <= 'z')
            b = static_cast<char>(b - 32);
        if (a != b)
            return false;
    }
    return i == n && !want[i];
}

void read_dvd(const Lun& l, uint64_t block, uint32_t blocks, uint8_t* buf, const char* what)
{
    uint8_t cdb[16];
    rw10(cdb, 0x28, static_cast<uint32_t>(block), static_cast<uint16_t>(blocks));
    Result r = exec(l.addr, cdb, sv::Dir::in, buf, blocks * 2048);
    need_good(r.done, l, what, block, blocks * 2048);
}

} // namespace

void dvd_checks(const Lun& l)
{
    sv::Controller& c = *l.addr.c;
    if (!l.media) {
        line("dvd ctrl=%u lun=%u no medium", c.index, l.addr.lun);
        return;
    }
    if (l.block_size != 2048)
        failf("ctrl=%u lun=%u dvd: READ CAPACITY(10) block length expected 2048, got %u", c.index, l.addr.lun,
              l.block_size);
    uint8_t* pvd = g_big;
    read_dvd(l, 16, 1, pvd, "READ(10) of the primary volume descriptor");
    if (!(pvd[0] == 1 && __builtin_memcmp(pvd + 1, "CD001", 5) == 0 && pvd[6] == 1))
        failf("ctrl=%u lun=%u dvd: block 16: expected \"\\x01CD001\\x01\" (ISO 9660 primary volume descriptor), got "
              "%02x %02x %02x %02x %02x %02x %02x",
              c.index, l.addr.lun, pvd[0], pvd[1], pvd[2], pvd[3], pvd[4], pvd[5], pvd[6]);
    char volume[33];
    copy_trimmed(volume, pvd + 40, 32);
    uint32_t volume_blocks = le32(pvd + 80);
    const uint8_t* root = pvd + 156;
    uint32_t root_extent = le32(root + 2), root_size = le32(root + 10);
    line("dvd ctrl=%u lun=%u pvd ok volume=\"%s\" volume_blocks=%u root_extent=%u root_bytes=%u", c.index, l.addr.lun,
         volume, volume_blocks, root_extent, root_size);
    if (root_size == 0 || root_size > 64 * 1024)
        failf("ctrl=%u lun=%u dvd: root directory of %u bytes: expected 1..65536", c.index, l.addr.lun, root_size);
    uint8_t* dir = g_big + 0x10000;
    uint32_t dir_blocks = (root_size + 2047) / 2048;
    read_dvd(l, root_extent, dir_blocks, dir, "READ(10) of the root directory");
    uint32_t extent = 0, size = 0;
    bool found = false;
    for (uint32_t off = 0; off < root_size && !found;) {
        uint8_t len = dir[off];
        if (len == 0) { // records do not cross blocks: go to the next one
            off = (off / 2048 + 1) * 2048;
            continue;
        }
        if (len < 34 || off + len > root_size)
            failf("ctrl=%u lun=%u dvd: root directory record at %u has length %u", c.index, l.addr.lun, off, len);
        uint8_t name_len = dir[off + 32];
        uint8_t flags = dir[off + 25];
        if (!(flags & 0x02) && 33u + name_len <= len && name_matches(dir + off + 33, name_len, g_opt.iso_file)) {
            extent = le32(dir + off + 2);
            size = le32(dir + off + 10);
            found = true;
        }
        off += len;
    }
    if (!found)
        failf("ctrl=%u lun=%u dvd: expected the file %s in the root directory, not found", c.index, l.addr.lun,
              g_opt.iso_file);
    // Read it in requests of up to 64 KiB and check every byte.
    uint32_t done = 0;
    while (done < size) {
        uint32_t bytes = size - done < 65536 ? size - done : 65536;
        uint32_t blocks = (bytes + 2047) / 2048;
        read_dvd(l, extent + done / 2048, blocks, g_io, "READ(10) of the file");
        for (uint32_t i = 0; i < bytes; ++i) {
            uint32_t pos = done + i;
            uint64_t b = pos / 2048;
            uint32_t in = pos % 2048;
            uint8_t want = in < 8 ? static_cast<uint8_t>(b >> (8 * in)) : pattern_byte(b, in, seed_iso);
            if (g_io[i] != want)
                failf("ctrl=%u lun=%u dvd: %s byte %u: expected 0x%02x, got 0x%02x", c.index, l.addr.lun,
                      g_opt.iso_file, pos, want, g_io[i]);
        }
        done += bytes;
    }
    // Past the end of the medium.
    uint8_t cdb[16];
    rw10(cdb, 0x28, static_cast<uint32_t>(l.blocks), 1);
    Result r = exec(l.addr, cdb, sv::Dir::in, g_io, 2048, 0);
    if (!(r.done.check_condition() && r.done.sense_key == 0x5 && r.done.asc == 0x21)) {
        char t[200];
        failf("ctrl=%u lun=%u dvd: READ(10) at block %lu (the capacity): expected CHECK CONDITION 5/21/00, got %s",
              c.index, l.addr.lun, l.blocks, result_text(r, t, sizeof t));
    }
    line("dvd ctrl=%u lun=%u file %s extent=%u bytes=%u ok", c.index, l.addr.lun, g_opt.iso_file, extent, size);
    // Closing the drive: the door lock released (sr_release -> cdrom_release).
    cdb6(cdb, 0x1e, 0, 0, 0, 0);
    r = exec(l.addr, cdb, sv::Dir::none, nullptr, 0);
    need_ok(r, l.addr, "sr: PREVENT ALLOW MEDIUM REMOVAL (allow)");
}

} // namespace storvsc_client
