// storvsc_client: what the guest's files share (main.cc: the command line, the step order and
// guest_main; scsi.cc: the test pattern and SCSI commands as the midlayer runs them; scan.cc: Linux's bus scan and
// sd's / sr's probes; io_checks.cc: the data checks). See main.cc for what the guest does.
#pragma once

#include "kit/cmdline.h"
#include "kit/format.h"
#include "kit/hyperv.h"
#include "kit/kit.h"
#include "kit/storvsc.h"
#include "kit/vmbus.h"
#include "kit/vmbus_session.h"

namespace storvsc_client {

using namespace kit;
namespace sv = kit::storvsc;
namespace wire = vmgen::protocols::vmbus::storvsp;

constexpr unsigned max_controllers = 4;
constexpr unsigned max_found = 32;
constexpr unsigned max_qd = 32;
constexpr uint32_t max_chunk = 128 * 1024;
constexpr uint8_t seed_host = 0;
constexpr uint8_t seed_guest = 0xa5;
constexpr uint8_t seed_iso = 0x3c;

// The data buffers (main.cc): in the kit's NOLOAD .stack section.
constexpr size_t io_bytes = max_qd * max_chunk;
extern uint8_t g_io[io_bytes];     // qd buffers
extern uint8_t g_big[4 << 20];     // one large request
extern uint8_t g_small[64 * 1024]; // command data

// ---- options (main.cc) ----
struct Options {
    bool pattern = true;
    bool write = false;
    unsigned qd = 32;
    uint32_t chunk = 65536;
    int expect_luns = -1;
    char iso_file[64] = "PATTERN.BIN";
    bool reset = false;
    bool trace = false;
    unsigned timeout_s = 10;
};
extern Options g_opt;

// ---- failures (kit/vmbus_session.h) ----
// fail_now: ends the run with hv::error() as the reason (from ring 3 under vmbus::run_ring3: a longjmp back to
// the ring-3 entry, which returns to ring 0); failf: the same with a formatted reason.
extern sv::Controller g_ctrl[max_controllers];
extern unsigned g_ctrl_count;

using kit::vmbus::fail_now; // kit/vmbus_session.h
using kit::vmbus::failf;

inline void need(bool ok)
{
    if (!ok)
        fail_now();
}

// ---- bytes ----
inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t be32(const uint8_t* p) { return uint32_t{be16(p)} << 16 | be16(p + 2); }
inline uint64_t be64(const uint8_t* p) { return uint64_t{be32(p)} << 32 | be32(p + 4); }
inline void put16(uint8_t* p, uint32_t v)
{
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void put32(uint8_t* p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v & 0xffff);
}
inline void put64(uint8_t* p, uint64_t v)
{
    put32(p, static_cast<uint32_t>(v >> 32));
    put32(p + 4, static_cast<uint32_t>(v));
}

// ---- the test pattern (scsi.cc) ----
inline uint8_t pattern_byte(uint64_t lba, uint32_t i, uint8_t seed)
{
    return static_cast<uint8_t>(lba * 31 + i * 7 + (i >> 8) * 3 + seed);
}

void fill_block(uint8_t* p, uint64_t lba, uint32_t block_size, uint8_t seed);

// Checks `blocks` blocks from `lba`; on a mismatch records it and returns false.
bool check_blocks(const uint8_t* p, uint64_t lba, uint32_t blocks, uint32_t block_size, uint8_t seed, const char* what);

// ---- SCSI commands as the midlayer runs them (scsi.cc) ----
constexpr uint8_t did_ok = 0x00, did_no_connect = 0x01, did_error = 0x07, did_requeue = 0x0d;

struct Addr {
    sv::Controller* c = nullptr;
    uint8_t path = 0, target = 0, lun = 0;
    bool tagged = false; // the sdev's tagged_supported (0 until scsi_add_lun)
};

struct Result {
    sv::Completion done;
    uint8_t host_byte = did_ok; // storvsc_handle_error's verdict
    bool ok = false;            // scsi_execute_req's result == 0
    unsigned attempts = 0;
    uint32_t resid = 0;
    bool sense_valid() const { return done.sense_length > 0 && (done.sense[0] & 0x70) == 0x70; }
};

extern uint64_t g_commands; // SCSI commands sent, retries included

// The kit's command for `cdb` to address `a` (CDB length from the opcode's group).
sv::Command make_command(const Addr& a, const uint8_t* cdb, sv::Dir dir, void* buffer, uint32_t length);

// scsi_execute_req: runs the command (retrying what the midlayer retries: DID_ERROR up to `retries` times,
// DID_REQUEUE), and says what the caller sees.
Result exec(const Addr& a, const uint8_t* cdb, sv::Dir dir, void* buffer, uint32_t length, unsigned retries = 3);
Result exec_in(const Addr& a, const uint8_t* cdb, void* buffer, uint32_t length);

// Describes a result for failure messages.
const char* result_text(const Result& r, char* buf, size_t size);

void need_ok(const Result& r, const Addr& a, const char* what);

// CDB builders.
inline void cdb6(uint8_t* c, uint8_t op, uint8_t b1 = 0, uint8_t b2 = 0, uint8_t b3 = 0, uint8_t b4 = 0)
{
    __builtin_memset(c, 0, 16);
    c[0] = op;
    c[1] = b1;
    c[2] = b2;
    c[3] = b3;
    c[4] = b4;
}
inline void cdb10(uint8_t* c, uint8_t op)
{
    __builtin_memset(c, 0, 16);
    c[0] = op;
}
inline void rw10(uint8_t* c, uint8_t op, uint32_t lba, uint16_t blocks, uint8_t flags = 0)
{
    cdb10(c, op);
    c[1] = flags;
    put32(c + 2, lba);
    put16(c + 7, blocks);
}
inline void rw16(uint8_t* c, uint8_t op, uint64_t lba, uint32_t blocks, uint8_t flags = 0)
{
    __builtin_memset(c, 0, 16);
    c[0] = op;
    c[1] = flags;
    put64(c + 2, lba);
    put32(c + 10, blocks);
}
constexpr uint8_t fua = 0x08;

// ---- what the scan finds (scan.cc) ----
enum class LunType : uint8_t { disk, dvd, other };

struct Lun {
    Addr addr;
    uint8_t pdt = 0;
    bool removable = false;
    int scsi_level = 0;   // sdev->scsi_level (after storvsc_device_configure)
    int target_level = 0; // starget->scsi_level (from INQUIRY)
    char vendor[9] = {}, product[17] = {}, revision[5] = {};
    uint8_t vpd_list[64] = {};
    unsigned vpd_count = 0;
    // sd
    uint64_t blocks = 0;
    uint32_t block_size = 0, physical_block_size = 0;
    bool lbpme = false, lbprz = false, ro = false, wce = false, dpofua = false, nonrot = false;
    uint32_t max_xfer_blocks = 0;
    // sr
    bool media = false, dvd = false, can_eject = false;
    unsigned speed = 0;
    unsigned profile = 0;
    unsigned media_event = 0;
    LunType type() const { return pdt == 0 ? LunType::disk : pdt == 5 ? LunType::dvd : LunType::other; }
};

extern Lun g_luns[max_found]; // every LUN found, all controllers, in scan order
extern unsigned g_lun_count;

struct ScanStats {
    uint64_t commands = 0;
    unsigned targets_present = 0; // PQ 3 at LUN 0
    unsigned report_luns_failed = 0;
    unsigned sequential_scans = 0;
};

void copy_trimmed(char* out, const uint8_t* in, unsigned n);

// TEST UNIT READY, up to 3 times while it answers UNIT ATTENTION.
Result tur_retrying(const Addr& a);

// scsi_scan_host on one controller, then sd / sr on what it found.
void scan_controller(sv::Controller& c);

// storvsc_host_scan after a rescan request: TEST UNIT READY to every known LUN, then the scan again.
void host_rescan(sv::Controller& c);

// ---- data checks (io_checks.cc) ----
void seconds_text(uint64_t ticks, char out[32]);

// The whole disk with up to qd requests of `chunk` bytes in flight, every block checked.
void read_whole(const Lun& l);

// One request of max_transfer_bytes, buffers at odd byte offsets, reads past the end.
void read_edges(const Lun& l);

// qd one-block reads at scattered LBAs, all submitted before any completion is handled.
void queue_depth(const Lun& l);

// write=1: writes with and without FUA, a queue of writes, SYNCHRONIZE CACHE, everything read back.
void write_checks(const Lun& l);

// A read-only disk refuses writes with DATA PROTECT and keeps its data.
void readonly_checks(const Lun& l);

// reset=1: reads in flight, RESET_BUS, every read accounted for, then a read that works.
void reset_check(const Lun& l);

// DVD: the ISO's primary volume descriptor, the root directory, the file `iso_file` read whole and checked.
void dvd_checks(const Lun& l);

} // namespace storvsc_client
