// storvsc_client: Linux's scan of the bus (scsi_scan.c) and sd's / sr's probes of what it finds (see main.cc).
#include "storvsc_client/client.h"

namespace storvsc_client {

Lun g_luns[max_found];
unsigned g_lun_count = 0;

void copy_trimmed(char* out, const uint8_t* in, unsigned n)
{
    unsigned len = n;
    while (len && (in[len - 1] == ' ' || in[len - 1] == 0))
        --len;
    for (unsigned i = 0; i < len; ++i)
        out[i] = (in[i] >= 0x20 && in[i] < 0x7f) ? static_cast<char>(in[i]) : '.';
    out[len] = '\0';
}

namespace {

Lun* find_lun(const sv::Controller& c, uint8_t path, uint8_t target, uint8_t lun)
{
    for (unsigned i = 0; i < g_lun_count; ++i) {
        const Addr& a = g_luns[i].addr;
        if (a.c == &c && a.path == path && a.target == target && a.lun == lun)
            return &g_luns[i];
    }
    return nullptr;
}

// scsi_vpd_inquiry: the page's length + 4, or -1.
int vpd_inquiry(const Addr& a, uint8_t page, uint16_t length, uint8_t* buffer)
{
    uint8_t c[16];
    cdb6(c, 0x12, 1, page, static_cast<uint8_t>(length >> 8), static_cast<uint8_t>(length));
    Result r = exec_in(a, c, buffer, length);
    if (!r.ok || buffer[1] != page || be16(buffer + 2) == 0)
        return -1;
    return be16(buffer + 2) + 4;
}

// scsi_get_vpd_buf: scsi_get_vpd_size (page 0's list checked for the page), then the page at its size.
int get_vpd_buf(const Addr& a, uint8_t page, uint8_t* out, unsigned out_size)
{
    uint8_t* tmp = g_small + 0x8040; // kmalloc'ed buffers: not page aligned
    if (page != 0) {
        int result = vpd_inquiry(a, 0, 36, tmp); // SCSI_VPD_LIST_SIZE
        if (result < 4)
            return -1;
        if (result > 36)
            result = 36;
        bool listed = false;
        for (int i = 4; i < result; ++i)
            listed = listed || tmp[i] == page;
        if (!listed)
            return -1;
    }
    int size = vpd_inquiry(a, page, 4, tmp);
    if (size < 4)
        return -1;
    if (static_cast<unsigned>(size) > out_size)
        size = static_cast<int>(out_size);
    if (vpd_inquiry(a, page, static_cast<uint16_t>(size), tmp) < 0)
        return -1;
    __builtin_memcpy(out, tmp, static_cast<size_t>(size));
    return size;
}

// The VPD pages sd reads later (cached by scsi_attach_vpd).
struct VpdCache {
    uint8_t b0[64] = {};
    int b0_len = -1;
    uint8_t b1[64] = {};
    int b1_len = -1;
    uint8_t b2[64] = {};
    int b2_len = -1;
};
VpdCache g_vpd[max_found];

// scsi_attach_vpd.
void attach_vpd(Lun& l, VpdCache& cache)
{
    uint8_t list[255];
    int n = get_vpd_buf(l.addr, 0, list, sizeof list);
    if (n < 4)
        return;
    l.vpd_count = 0;
    for (int i = 4; i < n; ++i) {
        uint8_t page = list[i];
        if (l.vpd_count < sizeof l.vpd_list)
            l.vpd_list[l.vpd_count++] = page;
        uint8_t buf[255];
        switch (page) {
        case 0x00:
        case 0x80:
        case 0x83:
        case 0x89:
            get_vpd_buf(l.addr, page, buf, sizeof buf);
            break;
        case 0xb0:
            cache.b0_len = get_vpd_buf(l.addr, page, cache.b0, sizeof cache.b0);
            break;
        case 0xb1:
            cache.b1_len = get_vpd_buf(l.addr, page, cache.b1, sizeof cache.b1);
            break;
        case 0xb2:
            cache.b2_len = get_vpd_buf(l.addr, page, cache.b2, sizeof cache.b2);
            break;
        default:
            break;
        }
    }
}

enum ScanResult { scan_no_response, scan_target_present, scan_lun_present };

// scsi_probe_and_add_lun: scsi_probe_lun (INQUIRY 36, then the announced length), then scsi_add_lun.
ScanResult probe_and_add_lun(sv::Controller& c, uint8_t path, uint8_t target, uint8_t lun, ScanStats& stats)
{
    if (find_lun(c, path, target, lun))
        return scan_lun_present;
    Addr a{&c, path, target, lun, false};
    uint8_t* inq = g_small + 0x40;
    unsigned try_len = 36;
    bool ok = false;
    for (int pass = 1; pass <= 2; ++pass) {
        ok = false;
        for (int count = 0; count < 3; ++count) {
            uint8_t cdb[16];
            cdb6(cdb, 0x12, 0, 0, 0, static_cast<uint8_t>(try_len));
            Result r = exec_in(a, cdb, inq, try_len);
            if (!r.ok) {
                if (r.done.linux_scsi_status == sv::scsi_check_condition && r.sense_valid() &&
                    r.done.sense_key == 0x6 && (r.done.asc == 0x28 || r.done.asc == 0x29) && r.done.ascq == 0)
                    continue;
                break;
            }
            if (r.resid == try_len)
                continue;
            ok = true;
            break;
        }
        if (!ok)
            break;
        unsigned response_len = inq[4] + 5u;
        if (response_len > 255)
            response_len = 36;
        if (pass == 1 && response_len > try_len) {
            try_len = response_len;
            continue;
        }
        break;
    }
    if (!ok) {
        if (try_len == 36)
            return scan_no_response;
        // The second pass failed: Linux keeps the first pass's 36 bytes (result of pass 1 is in the buffer no
        // more); treat as no response, which Linux reports as a failed probe too.
        return scan_no_response;
    }
    uint8_t pq = inq[0] >> 5, pdt = inq[0] & 0x1f;
    if (pq == 3) {
        if (lun == 0)
            ++stats.targets_present;
        return scan_target_present;
    }
    if (pq == 1 && pdt == 0x1f)
        return scan_target_present;
    if (g_lun_count == max_found)
        failf("scan: more than %u LUNs", max_found);
    // scsi_add_lun.
    Lun& l = g_luns[g_lun_count];
    VpdCache& cache = g_vpd[g_lun_count];
    l = Lun{};
    cache = VpdCache{};
    l.addr = a;
    l.pdt = pdt;
    l.removable = inq[1] & 0x80;
    copy_trimmed(l.vendor, inq + 8, 8);
    copy_trimmed(l.product, inq + 16, 16);
    copy_trimmed(l.revision, inq + 32, 4);
    l.scsi_level = inq[2] & 0x07;
    if (l.scsi_level >= 2 || (l.scsi_level == 1 && (inq[3] & 0x0f) == 1))
        ++l.scsi_level;
    l.addr.tagged = l.scsi_level >= 3 && (inq[7] & 2);
    // storvsc_device_configure: SPC-3 for Msft devices on win8 / win8.1 hosts.
    l.target_level = l.scsi_level; // starget->scsi_level
    if (__builtin_memcmp(inq + 8, "Msft", 4) == 0 &&
        (c.version == wire::version_win8 || c.version == wire::version_win8_1))
        l.scsi_level = 6; // SCSI_SPC_3
    ++g_lun_count;
    if (l.scsi_level >= 4) // SCSI_3
        attach_vpd(l, cache);
    return scan_lun_present;
}

uint64_t scsilun_to_int(const uint8_t* p)
{
    uint64_t lun = 0;
    for (unsigned i = 0; i < 8; i += 2)
        lun |= (uint64_t{p[i]} << ((i + 1) * 8)) | (uint64_t{p[i + 1]} << (i * 8));
    return lun;
}

// scsi_report_lun_scan: 0 when it scanned the target, 1 when the caller must scan sequentially.
int report_lun_scan(sv::Controller& c, uint8_t path, uint8_t target, int starget_level, ScanStats& stats)
{
    // BLIST_REPORTLUN2 and max_lun 255: SCSI-2 targets are asked too; below SCSI-2 is not.
    if (starget_level < 3 && starget_level != 0)
        return 1;
    Lun* lun0 = find_lun(c, path, target, 0);
    Addr a = lun0 ? lun0->addr : Addr{&c, path, target, 0, false};
    uint8_t* data = g_small + 0x1000;
    uint32_t length = 512 * 8;
    Result r;
    for (int retries = 0; retries < 3; ++retries) {
        uint8_t cdb[16];
        __builtin_memset(cdb, 0, 16);
        cdb[0] = 0xa0;
        put32(cdb + 6, length);
        r = exec_in(a, cdb, data, length);
        if (r.ok)
            break;
        if (r.sense_valid() && r.done.sense_key != 0x6)
            break;
    }
    if (!r.ok) {
        ++stats.report_luns_failed;
        return 1;
    }
    uint32_t list = be32(data);
    if (list + 8 > length)
        failf("ctrl=%u %u:%u REPORT LUNS: list of %u bytes does not fit the 4096-byte buffer (this guest does not "
              "retry bigger)",
              c.index, path, target, list);
    for (uint32_t off = 8; off < list + 8; off += 8) {
        uint64_t lun = scsilun_to_int(data + off);
        if (lun > 255) {
            line("note: ctrl=%u %u:%u REPORT LUNS lists LUN %lu, more than storvsc's max_lun 255: skipped", c.index,
                 path, target, lun);
            continue;
        }
        if (probe_and_add_lun(c, path, target, static_cast<uint8_t>(lun), stats) == scan_no_response) {
            line("note: ctrl=%u %u:%u LUN %lu listed by REPORT LUNS did not answer INQUIRY: scan aborted (as Linux)",
                 c.index, path, target, lun);
            break;
        }
    }
    return 0;
}

// __scsi_scan_target.
void scan_target(sv::Controller& c, uint8_t path, uint8_t target, ScanStats& stats)
{
    ScanResult res = probe_and_add_lun(c, path, target, 0, stats);
    if (res != scan_lun_present && res != scan_target_present)
        return;
    Lun* lun0 = find_lun(c, path, target, 0);
    int level = lun0 ? lun0->target_level : 3; // starget->scsi_level: SCSI_2 until a LUN is added
    if (report_lun_scan(c, path, target, level, stats) == 0)
        return;
    // scsi_sequential_lun_scan: below SCSI-3 at most 8 LUNs.
    ++stats.sequential_scans;
    unsigned max_dev_lun = level < 4 ? 8 : 255;
    for (unsigned lun = 1; lun < max_dev_lun; ++lun)
        if (probe_and_add_lun(c, path, target, static_cast<uint8_t>(lun), stats) != scan_lun_present)
            return;
}

// ---- sd: sd_revalidate_disk ----
void sd_probe(Lun& l, const VpdCache& vpd)
{
    const Addr& a = l.addr;
    uint8_t* buf = g_small + 0x2000 + 0x40;
    uint8_t c[16];
    // sd_spinup_disk: TEST UNIT READY, up to 3 times while it answers UNIT ATTENTION.
    Result r;
    for (int tries = 0; tries < 3; ++tries) {
        cdb6(c, 0x00);
        r = exec(a, c, sv::Dir::none, nullptr, 0);
        if (r.ok || !(r.sense_valid() && r.done.sense_key == 0x6))
            break;
    }
    need_ok(r, a, "sd: TEST UNIT READY");
    // sd_read_capacity: READ CAPACITY(16) (SPC-3 and later).
    __builtin_memset(c, 0, 16);
    c[0] = 0x9e;
    c[1] = 0x10;
    put32(c + 10, 32);
    r = exec_in(a, c, buf, 32);
    need_ok(r, a, "sd: READ CAPACITY(16)");
    l.blocks = be64(buf) + 1;
    l.block_size = be32(buf + 8);
    l.physical_block_size = (1u << (buf[13] & 0xf)) * l.block_size;
    l.lbpme = buf[14] & 0x80;
    l.lbprz = buf[14] & 0x40;
    if (vpd.b0_len >= 16)
        l.max_xfer_blocks = be32(vpd.b0 + 8);
    if (vpd.b1_len > 8)
        l.nonrot = be16(vpd.b1 + 4) == 1;
    // sd_read_write_protect_flag: MODE SENSE(6), all pages, 4 bytes.
    cdb6(c, 0x1a, 0, 0x3f, 0, 4);
    r = exec_in(a, c, buf, 4);
    need_ok(r, a, "sd: MODE SENSE(6) page 3F");
    l.ro = buf[2] & 0x80;
    // sd_read_cache_type: MODE SENSE(6) page 8, 4 bytes, then the whole answer.
    cdb6(c, 0x1a, 0, 0x08, 0, 4);
    r = exec_in(a, c, buf, 4);
    need_ok(r, a, "sd: MODE SENSE(6) page 08 header");
    unsigned len = buf[0] + 1u;
    if (len < 3)
        failf("ctrl=%u lun=%u sd: MODE SENSE(6) page 08: expected a mode data length of at least 2, got %u",
              a.c->index, a.lun, buf[0]);
    cdb6(c, 0x1a, 0, 0x08, 0, static_cast<uint8_t>(len));
    r = exec_in(a, c, buf, len);
    need_ok(r, a, "sd: MODE SENSE(6) page 08");
    unsigned offset = 4u + buf[3];
    if (offset + 3 > len || (buf[offset] & 0x3f) != 0x08)
        failf("ctrl=%u lun=%u sd: MODE SENSE(6) page 08: expected the caching page after %u bytes of header and block "
              "descriptors, got page 0x%02x (mode data %u bytes)",
              a.c->index, a.lun, offset, offset < len ? buf[offset] & 0x3f : 0xffu, len);
    l.wce = buf[offset + 2] & 0x04;
    l.dpofua = buf[2] & 0x10;
    // The partition scan: READ(10) of the first 4 KiB (sd_setup_read_write_cmnd).
    uint32_t blocks = 4096 / l.block_size;
    rw10(c, 0x28, 0, static_cast<uint16_t>(blocks ? blocks : 1));
    uint32_t bytes = (blocks ? blocks : 1) * l.block_size;
    r = exec_in(a, c, g_io, bytes);
    need_ok(r, a, "sd: READ(10) of the partition table");
    if (g_opt.pattern)
        need(check_blocks(g_io, 0, bytes / l.block_size, l.block_size, seed_host, "sd: partition table read"));
}

} // namespace

// ---- sr: sr_probe, sr_revalidate_disk, the first open ----
Result tur_retrying(const Addr& a)
{
    Result r;
    for (int tries = 0; tries < 3; ++tries) {
        uint8_t c[16];
        cdb6(c, 0x00);
        r = exec(a, c, sv::Dir::none, nullptr, 0);
        if (r.ok || !(r.sense_valid() && r.done.sense_key == 0x6))
            break;
    }
    return r;
}

namespace {

void sr_probe(Lun& l)
{
    const Addr& a = l.addr;
    uint8_t* buf = g_small + 0x3000 + 0x40;
    uint8_t c[16];
    l.ro = true;
    (void)tur_retrying(a);
    cdb6(c, 0x1a, 0, 0x2a, 0, 128);
    Result r = exec_in(a, c, buf, 128);
    need_ok(r, a, "sr: MODE SENSE(6) page 2A");
    unsigned n = 4u + buf[3];
    if (buf[0] + 1u > 128 || n + 10 > 128)
        failf("ctrl=%u lun=%u sr: MODE SENSE(6) page 2A: mode data length %u, block descriptors %u: expected them to "
              "fit 128 bytes",
              a.c->index, a.lun, buf[0] + 1u, buf[3]);
    l.speed = be16(buf + n + 8) / 176u;
    l.dvd = buf[n + 2] & 0x08;
    l.can_eject = buf[n + 6] & 0x08;
    // cdrom_probe_write_features.
    cdb10(c, 0x46);
    put16(c + 2, 0x28);
    put16(c + 7, 16);
    r = exec_in(a, c, buf, 16);
    need_ok(r, a, "sr: GET CONFIGURATION 0028");
    cdb10(c, 0x46);
    put16(c + 2, 0x20);
    put16(c + 7, 24);
    r = exec_in(a, c, buf, 24);
    need_ok(r, a, "sr: GET CONFIGURATION 0020");
    bool random_writable = be16(buf + 8) == 0x20;
    if (random_writable)
        l.ro = false;

    // sr_revalidate_disk.
    r = tur_retrying(a);
    l.media = r.ok;
    if (!l.media)
        return;
    cdb10(c, 0x43);
    put16(c + 7, 12);
    c[9] = 0x40;
    r = exec_in(a, c, buf, 12);
    need_ok(r, a, "sr: READ TOC (session info, control 40h)");
    cdb10(c, 0x43);
    put16(c + 7, 12);
    r = exec_in(a, c, buf, 12);
    need_ok(r, a, "sr: READ TOC header");
    unsigned first = buf[2], last = buf[3];
    if (first > last || last > 99)
        failf("ctrl=%u lun=%u sr: READ TOC: expected first <= last track <= 99, got %u..%u", a.c->index, a.lun, first,
              last);
    for (unsigned track = first; track <= last; ++track) {
        cdb10(c, 0x43);
        c[6] = static_cast<uint8_t>(track);
        put16(c + 7, 12);
        r = exec_in(a, c, buf, 12);
        need_ok(r, a, "sr: READ TOC track entry");
    }
    cdb10(c, 0x25);
    r = exec_in(a, c, buf, 8);
    need_ok(r, a, "sr: READ CAPACITY(10)");
    uint64_t capacity = be32(buf) + 1ull;
    l.block_size = be32(buf + 4);
    cdb10(c, 0x51);
    put16(c + 7, 2);
    r = exec_in(a, c, buf, 2);
    need_ok(r, a, "sr: READ DISC INFORMATION 2");
    unsigned disc_length = be16(buf) + 2u;
    if (disc_length > 34)
        disc_length = 34;
    cdb10(c, 0x51);
    put16(c + 7, static_cast<uint16_t>(disc_length));
    r = exec_in(a, c, buf, disc_length);
    need_ok(r, a, "sr: READ DISC INFORMATION");
    uint32_t last_track = buf[6];
    cdb10(c, 0x52);
    c[1] = 1;
    put32(c + 2, last_track);
    put16(c + 7, 8);
    r = exec_in(a, c, buf, 8);
    unsigned track_length = be16(buf) + 2u;
    if (track_length > 32)
        track_length = 32;
    cdb10(c, 0x52);
    c[1] = 1;
    put32(c + 2, last_track);
    put16(c + 7, static_cast<uint16_t>(track_length));
    r = exec_in(a, c, buf, track_length);
    need_ok(r, a, "sr: READ TRACK INFORMATION");
    uint64_t last_written = (buf[7] & 0x02) ? be32(buf + 28) : be32(buf + 8) + uint64_t{be32(buf + 24)};
    if (last_written > capacity)
        capacity = last_written;
    l.blocks = capacity;
    // The events poller and the first open.
    cdb10(c, 0x4a);
    c[1] = 1;
    c[4] = 0x10;
    put16(c + 7, 8);
    r = exec_in(a, c, buf, 8);
    need_ok(r, a, "sr: GET EVENT STATUS NOTIFICATION");
    if (be16(buf) >= 4 && !(buf[2] & 0x80) && buf[2] == 4)
        l.media_event = buf[4] & 0x0f;
    cdb10(c, 0x46);
    put16(c + 7, 32);
    r = exec_in(a, c, buf, 32);
    need_ok(r, a, "sr: GET CONFIGURATION 0000");
    l.profile = be16(buf + 6);
    cdb6(c, 0x1e, 0, 0, 0, 1);
    r = exec(a, c, sv::Dir::none, nullptr, 0);
    need_ok(r, a, "sr: PREVENT ALLOW MEDIUM REMOVAL (prevent)");
}

void print_lun(const Lun& l)
{
    const Addr& a = l.addr;
    if (l.type() == LunType::disk)
        line("lun ctrl=%u lun=%u type=disk vendor=%s product=\"%s\" blocks=%lu block_size=%u ro=%u "
             "physical_block_size=%u wce=%u fua=%u lbpme=%u lbprz=%u nonrot=%u max_xfer_blocks=%u scsi_level=%d "
             "tagged=%u vpd=%u path=%u target=%u",
             a.c->index, a.lun, l.vendor, l.product, l.blocks, l.block_size, l.ro ? 1u : 0u, l.physical_block_size,
             l.wce ? 1u : 0u, l.dpofua ? 1u : 0u, l.lbpme ? 1u : 0u, l.lbprz ? 1u : 0u, l.nonrot ? 1u : 0u,
             l.max_xfer_blocks, l.scsi_level, a.tagged ? 1u : 0u, l.vpd_count, a.path, a.target);
    else if (l.type() == LunType::dvd)
        line("lun ctrl=%u lun=%u type=dvd vendor=%s product=\"%s\" blocks=%lu block_size=%u ro=%u media=%u "
             "profile=0x%04x speed=%u dvd=%u can_eject=%u media_event=%u scsi_level=%d tagged=%u vpd=%u path=%u "
             "target=%u",
             a.c->index, a.lun, l.vendor, l.product, l.blocks, l.block_size, l.ro ? 1u : 0u, l.media ? 1u : 0u,
             l.profile, l.speed, l.dvd ? 1u : 0u, l.can_eject ? 1u : 0u, l.media_event, l.scsi_level,
             a.tagged ? 1u : 0u, l.vpd_count, a.path, a.target);
    else
        line("lun ctrl=%u lun=%u type=0x%02x vendor=%s product=\"%s\" path=%u target=%u", a.c->index, a.lun, l.pdt,
             l.vendor, l.product, a.path, a.target);
}

} // namespace

// scsi_scan_host on one controller, then sd / sr on what it found.
void scan_controller(sv::Controller& c)
{
    ScanStats stats;
    uint64_t before = g_commands;
    unsigned first = g_lun_count;
    for (uint8_t path = 0; path < wire::linux_max_channels; ++path)
        for (uint8_t target = 0; target < wire::linux_max_targets; ++target)
            scan_target(c, path, target, stats);
    for (unsigned i = first; i < g_lun_count; ++i) {
        Lun& l = g_luns[i];
        if (l.type() == LunType::disk)
            sd_probe(l, g_vpd[i]);
        else if (l.type() == LunType::dvd)
            sr_probe(l);
        print_lun(l);
    }
    line("scan ctrl=%u luns=%u commands=%lu targets_present=%u report_luns_failed=%u sequential_scans=%u", c.index,
         g_lun_count - first, g_commands - before, stats.targets_present, stats.report_luns_failed,
         stats.sequential_scans);
}

// storvsc_host_scan after a rescan request: TEST UNIT READY to every known LUN, then the scan again.
void host_rescan(sv::Controller& c)
{
    unsigned known = 0;
    for (unsigned i = 0; i < g_lun_count; ++i) {
        if (g_luns[i].addr.c != &c)
            continue;
        ++known;
        uint8_t cdb[16];
        cdb6(cdb, 0x00);
        Result r = exec(g_luns[i].addr, cdb, sv::Dir::none, nullptr, 0, 1);
        if (r.host_byte == did_no_connect)
            failf("ctrl=%u rescan: TEST UNIT READY to LUN %u answered SRB_STATUS_INVALID_LUN: the LUN went away",
                  c.index, g_luns[i].addr.lun);
    }
    unsigned before = g_lun_count;
    ScanStats stats;
    for (uint8_t path = 0; path < wire::linux_max_channels; ++path)
        for (uint8_t target = 0; target < wire::linux_max_targets; ++target)
            scan_target(c, path, target, stats);
    for (unsigned i = before; i < g_lun_count; ++i) {
        if (g_luns[i].type() == LunType::disk)
            sd_probe(g_luns[i], g_vpd[i]);
        else if (g_luns[i].type() == LunType::dvd)
            sr_probe(g_luns[i]);
        print_lun(g_luns[i]);
    }
    line("rescan ctrl=%u known=%u new=%u", c.index, known, g_lun_count - before);
}

} // namespace storvsc_client
