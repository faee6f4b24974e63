// storvsc_client: the test pattern, and SCSI commands as Linux's SCSI midlayer runs them (see main.cc).
#include "storvsc_client/client.h"

namespace storvsc_client {

// ---- the test pattern ----
void fill_block(uint8_t* p, uint64_t lba, uint32_t block_size, uint8_t seed)
{
    __builtin_memcpy(p, &lba, 8);
    for (uint32_t i = 8; i < block_size; ++i)
        p[i] = pattern_byte(lba, i, seed);
}

// Checks `blocks` blocks from `lba`; on a mismatch records it and returns false.
bool check_blocks(const uint8_t* p, uint64_t lba, uint32_t blocks, uint32_t block_size, uint8_t seed, const char* what)
{
    for (uint32_t b = 0; b < blocks; ++b, p += block_size) {
        uint64_t l = lba + b;
        uint64_t head;
        __builtin_memcpy(&head, p, 8);
        if (head != l)
            return hv::fail("%s: block %lu: expected the LBA %lu in its first 8 bytes (seed 0x%02x pattern), got "
                            "0x%lx",
                            what, l, l, seed, head);
        for (uint32_t i = 8; i < block_size; ++i)
            if (p[i] != pattern_byte(l, i, seed))
                return hv::fail("%s: block %lu byte %u: expected 0x%02x (seed 0x%02x pattern), got 0x%02x", what, l,
                                i, pattern_byte(l, i, seed), seed, p[i]);
    }
    return true;
}

// ---- SCSI commands as the midlayer runs them ----
namespace {

const char* opcode_name(uint8_t op)
{
    switch (op) {
    case 0x00: return "TEST UNIT READY";
    case 0x12: return "INQUIRY";
    case 0x1a: return "MODE SENSE(6)";
    case 0x1e: return "PREVENT ALLOW MEDIUM REMOVAL";
    case 0x25: return "READ CAPACITY(10)";
    case 0x28: return "READ(10)";
    case 0x2a: return "WRITE(10)";
    case 0x35: return "SYNCHRONIZE CACHE(10)";
    case 0x43: return "READ TOC";
    case 0x46: return "GET CONFIGURATION";
    case 0x4a: return "GET EVENT STATUS NOTIFICATION";
    case 0x51: return "READ DISC INFORMATION";
    case 0x52: return "READ TRACK INFORMATION";
    case 0x88: return "READ(16)";
    case 0x8a: return "WRITE(16)";
    case 0x9e: return "READ CAPACITY(16)";
    case 0xa0: return "REPORT LUNS";
    default: return "?";
    }
}

} // namespace

uint64_t g_commands = 0;

// scsi_execute_req: runs the command (retrying what the midlayer retries: DID_ERROR up to `retries` times,
// DID_REQUEUE), and says what the caller sees.
sv::Command make_command(const Addr& a, const uint8_t* cdb, sv::Dir dir, void* buffer, uint32_t length)
{
    sv::Command cmd;
    cmd.path = a.path;
    cmd.target = a.target;
    cmd.lun = a.lun;
    cmd.tagged = a.tagged;
    cmd.cdb_length = sv::command_size(cdb[0]);
    __builtin_memcpy(cmd.cdb, cdb, cmd.cdb_length);
    cmd.dir = dir;
    cmd.buffer = buffer;
    cmd.length = length;
    return cmd;
}

Result exec(const Addr& a, const uint8_t* cdb, sv::Dir dir, void* buffer, uint32_t length, unsigned retries)
{
    sv::Command cmd = make_command(a, cdb, dir, buffer, length);
    Result r;
    for (;;) {
        ++r.attempts;
        ++g_commands;
        need(sv::execute(*a.c, cmd, r.done, uint64_t{g_opt.timeout_s} * 1000));
        const sv::Completion& d = r.done;
        uint8_t code = wire::srb_status_code(d.linux_srb_status);
        r.host_byte = did_ok;
        if (d.linux_srb_status != wire::srb_status_success) {
            if (code == wire::srb_status_invalid_lun) {
                r.host_byte = did_no_connect;
            } else if (code == wire::srb_status_error || code == wire::srb_status_aborted ||
                       code == wire::srb_status_invalid_request) {
                if (d.linux_srb_status & wire::srb_status_autosense_valid) {
                    if ((d.asc == 0x2a && d.ascq == 0x09) || (d.asc == 0x3f && d.ascq != 0x03 && d.ascq != 0x0e))
                        r.host_byte = did_requeue;
                } else if (cdb[0] != 0x00) {
                    r.host_byte = did_error;
                }
            }
        }
        r.ok = r.host_byte == did_ok && d.linux_scsi_status == 0;
        r.resid = (dir == sv::Dir::none ? 0 : length) - d.transferred;
        if (g_opt.trace) {
            char st[96];
            line("cmd ctrl=%u %u:%u:%u %s op=0x%02x len=%u -> %s host=0x%02x raw_srb=0x%02x raw_scsi=0x%02x "
                 "raw_sense_len=%u",
                 a.c->index, a.path, a.target, a.lun, opcode_name(cdb[0]), cdb[0], length,
                 sv::status_text(d, st, sizeof st), r.host_byte, d.srb_status, d.scsi_status, d.sense_info_length);
        }
        if (r.host_byte == did_requeue && r.attempts < 5)
            continue;
        if (r.host_byte == did_error && r.attempts <= retries)
            continue;
        return r;
    }
}

Result exec_in(const Addr& a, const uint8_t* cdb, void* buffer, uint32_t length)
{
    __builtin_memset(buffer, 0, length);
    return exec(a, cdb, sv::Dir::in, buffer, length);
}

// Describes a result for failure messages.
const char* result_text(const Result& r, char* buf, size_t size)
{
    char st[96];
    format(buf, size, "%s host_byte=0x%02x (as sent: srb=0x%02x scsi=0x%02x sense_info_length=%u "
                      "data_transfer_length=%u)",
           sv::status_text(r.done, st, sizeof st), r.host_byte, r.done.srb_status, r.done.scsi_status,
           r.done.sense_info_length, r.done.data_transfer_length);
    return buf;
}

void need_ok(const Result& r, const Addr& a, const char* what)
{
    if (r.ok)
        return;
    char t[200];
    failf("ctrl=%u lun=%u %s: expected GOOD, got %s", a.c->index, a.lun, what, result_text(r, t, sizeof t));
}

} // namespace storvsc_client
