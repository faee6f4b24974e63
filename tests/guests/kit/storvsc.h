// Test-guest kit: a client of the Hyper-V synthetic SCSI controller (storvsp) that does what Linux 6.1's
// storvsc does (drivers/scsi/storvsc_drv.c; wire format in protocols/vmbus/storvsp.h):
//
//   open        vmbus_open of the SCSI controller's channel with storvsc's rings: storvsc_ringbuffer_size =
//               128 KiB each way, VMBUS_RING_SIZE(128 KiB) = 128 KiB *including* the control page
//               (VMBUS_HEADER_ADJ is 0 for rings of 32 KiB and more), i.e. 32 pages per direction; the
//               OPENCHANNEL user data is a zeroed vmstorage_channel_properties (the kit's message is zero
//               there already).
//   init        storvsc_channel_init: BEGIN_INITIALIZATION; QUERY_PROTOCOL_VERSION 0x0602, 0x0600, 0x0501
//               until one answers status 0; QUERY_PROPERTIES; END_INITIALIZATION. Each a 64-byte vstor_packet
//               sent inband with completion requested and trans_id VMBUS_RQST_INIT (UINT64_MAX - 2); the
//               answer must be operation COMPLETE_IO, status 0 (versions: any other status = try the next).
//               No sub-channels (CREATE_SUB_CHANNELS needs more than one CPU: num_online_cpus() - 1 = 0).
//   I/O         storvsc_queuecommand + storvsc_do_io: EXECUTE_SRB with vm_srb.length = 52,
//               sense_info_length = 0x14, data_transfer_length = buffer bytes, data_in (0 write, 1 read,
//               2 none), srb_flags = DISABLE_SYNCH_TRANSFER | QUEUE_ACTION_ENABLE | NO_QUEUE_FREEZE |
//               DATA_IN/DATA_OUT, queue_tag SP_UNTAGGED (0xff), queue_action SRB_SIMPLE_TAG_REQUEST (0x20),
//               time_out_value 60, port/path/target/lun, cdb_length and the CDB. Without data an inband packet;
//               with data a GPA-direct packet (type 9, vmbus_sendpacket_mpb_desc): descriptor, reserved,
//               rangecount 1, {byte_count, byte_offset in the first page, PFN list}, then the vstor_packet.
//               trans_id = blk_mq_unique_tag + 1 (one hardware queue: tag + 1).
//   completion  storvsc_on_channel_callback: a packet whose payload is shorter than 64 bytes (trans_id != 0;
//               4 bytes for trans_id 0) is invalid and dropped (the request would never complete, so it is an
//               error here); trans_id 0 is unsolicited (ENUMERATE_BUS / REMOVE_DEVICE = rescan; COMPLETE_IO
//               and FCHBA_DATA with id 0 are invalid); a packet longer than STORVSC_MAX_PKT_SIZE (80 bytes with
//               the descriptor) breaks Linux's ring iterator (it copies at most 80 bytes and steps 80 + 8), so
//               it is an error too. Everything else: the request with tag trans_id - 1, which must be
//               outstanding. storvsc_on_io_completion's rules give Linux's view: INQUIRY / MODE SENSE(6/10)
//               completions are forced to SRB success and SCSI status 0; sense bytes are copied only for CHECK
//               CONDITION with SRB_STATUS_AUTOSENSE_VALID, at most 0x14; data_transfer_length counts only for
//               SRB success or DATA_OVERRUN and is capped at the buffer.
//   reset       storvsc_host_reset_handler: RESET_BUS (path_id 0) with trans_id VMBUS_RQST_RESET
//               (UINT64_MAX - 3), then wait for the outstanding requests.
//
// Ring rules as Linux's: signal the host after a write that made the guest -> host ring non-empty unless the
// host masks interrupts; the host -> guest ring is read when the host signalled (SIEFP flag relid of SINT 2),
// with interrupt_mask set while draining (hv_begin_read / hv_end_read, and again when end_read finds more).
// Waiting for a completion polls that flag. Data that appears in the host -> guest ring without a signal while
// the guest was not masking is reported as a host error after a grace period.
//
// Works in ring 0 and in ring 3 (kit::run_in_ring3; the identity map, the rings and the SIEFP page are user
// accessible): the only privileged operation, HvSignalEvent, goes through the kit's ring-3 gate in ring 3
// (use_ring3_gate() installs the handler). Errors: false with hv::error() set, like the rest of the kit.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kit/hyperv.h"
#include "kit/vmbus.h"
#include "protocols/vmbus/storvsp.h"

namespace kit::storvsc {

namespace wire = vmgen::protocols::vmbus::storvsp;

// Linux's numbers.
inline constexpr uint32_t ring_bytes = 128 * 1024;   // storvsc_ringbuffer_size = VMBUS_RING_SIZE(128 KiB)
inline constexpr uint32_t ring_pages = ring_bytes / 4096; // control page included
inline constexpr uint64_t rqst_init = ~uint64_t{0} - 2;  // VMBUS_RQST_INIT
inline constexpr uint64_t rqst_reset = ~uint64_t{0} - 3; // VMBUS_RQST_RESET
inline constexpr uint32_t max_pkt_size = 16 + sizeof(wire::VstorPacket); // STORVSC_MAX_PKT_SIZE
inline constexpr uint16_t linux_versions[] = {wire::version_win10, wire::version_win8_1, wire::version_win8};
inline constexpr uint8_t sp_untagged = 0xff;              // SP_UNTAGGED
inline constexpr uint8_t srb_simple_tag_request = 0x20;   // SRB_SIMPLE_TAG_REQUEST
inline constexpr uint32_t srb_timeout_s = 60;             // vm_srb->time_out_value
inline constexpr uint32_t srb_flags_disable_synch_transfer = 0x8;
inline constexpr unsigned max_tags = 64;                  // requests in flight per controller here
inline constexpr unsigned max_pfns = 1024;                // 4 MiB per request at most
inline constexpr uint8_t scsi_check_condition = 0x02;     // SAM_STAT_CHECK_CONDITION

const char* version_name(uint16_t version); // "win10", "win8.1", ...
const char* operation_name(uint32_t operation);

enum class Dir : uint8_t { none, in, out };

// A SCSI command as the midlayer hands it to storvsc_queuecommand.
struct Command {
    uint8_t path = 0, target = 0, lun = 0; // vm_srb path_id (Linux: channel), target_id, lun
    uint8_t cdb[16] = {};
    uint8_t cdb_length = 0; // 0: COMMAND_SIZE(opcode) (6, 10, 16 or 12 by the opcode's group)
    Dir dir = Dir::none;
    void* buffer = nullptr; // physically contiguous (identity mapped); any byte offset
    uint32_t length = 0;
    bool tagged = true; // scmnd->device->tagged_supported (set for every Hyper-V disk and DVD)
};
// COMMAND_SIZE: the CDB length of an opcode's group.
uint8_t command_size(uint8_t opcode);

// A completion as the host sent it, and as Linux sees it.
struct Completion {
    // The packet.
    uint16_t packet_type = 0;
    uint32_t packet_length = 0; // descriptor included
    uint32_t payload_length = 0;
    uint32_t operation = 0;
    uint32_t vstor_status = 0;
    uint8_t srb_status = 0;  // as sent
    uint8_t scsi_status = 0; // as sent
    uint8_t sense_info_length = 0; // as sent
    uint32_t data_transfer_length = 0; // as sent
    uint8_t sense_raw[wire::sense_buffer_size] = {}; // bytes 20..39 of the packet as sent
    // Linux's view (storvsc_on_io_completion, storvsc_command_completion).
    uint8_t linux_srb_status = 0;
    uint8_t linux_scsi_status = 0;
    uint8_t sense_length = 0;           // copied sense bytes (0 unless CHECK CONDITION + autosense valid)
    uint8_t sense[wire::sense_buffer_size] = {};
    uint32_t transferred = 0;           // bytes the midlayer takes as moved (length - resid)
    uint8_t sense_key = 0, asc = 0, ascq = 0; // decoded from `sense` (fixed or descriptor format)

    bool good() const { return linux_srb_status == wire::srb_status_success && linux_scsi_status == 0; }
    bool check_condition() const { return linux_scsi_status == scsi_check_condition && sense_length > 0; }
};

struct Tag {
    bool busy = false;
    bool done = false;
    uint64_t seq = 0; // completion order (Controller::completion_seq when it completed)
    Command command{};
    Completion completion{};
    uint64_t submitted_tsc = 0;
};

struct Stats {
    uint64_t commands = 0;      // EXECUTE_SRB sent
    uint64_t completions = 0;   // EXECUTE_SRB completed
    uint64_t gpa_direct = 0;    // of which with data
    uint64_t bytes_in = 0, bytes_out = 0; // transferred, Linux's view
    uint64_t signals = 0;       // HvSignalEvent to the host
    uint64_t host_signals = 0;  // SIEFP flags taken
    uint64_t drains = 0;        // begin_read..end_read rounds
    uint64_t unsolicited = 0;   // trans_id 0 packets
    uint64_t rescans = 0;       // of which ENUMERATE_BUS / REMOVE_DEVICE
    uint64_t non_completion_type = 0; // replies not of type VM_PKT_COMP (11): Linux does not look, Hyper-V sends 11
    uint64_t ring_full = 0;     // writes that found no room (Linux: -EAGAIN, SCSI_MLQUEUE_DEVICE_BUSY, requeued)
    uint64_t max_in_flight = 0;
};

struct Controller {
    unsigned index = 0; // the order of the offer among the SCSI offers
    vmbus::Channel channel{};
    uint16_t version = 0;
    unsigned versions_tried = 0;
    wire::ChannelProperties properties{};
    bool ready = false;
    Tag tags[max_tags]{};
    unsigned in_flight = 0;
    // Control requests (init, reset): one of each at a time, like Linux's init_request / reset_request.
    bool init_busy = false, init_done = false;
    wire::VstorPacket init_reply{};
    bool reset_busy = false, reset_done = false;
    wire::VstorPacket reset_reply{};
    Stats stats{};
    char name[16] = "scsi";
    uint64_t rescans_seen = 0; // ENUMERATE_BUS / REMOVE_DEVICE (trans_id 0) since the last take_rescans()
    uint64_t completion_seq = 0;
};

// Ring 3: HvSignalEvent through the kit's gate (kit::set_ring3_gate). Call once in ring 0 before
// kit::run_in_ring3; it replaces any other gate handler (handle_gate can be chained from another one).
void use_ring3_gate();
inline constexpr uint64_t gate_signal = 0x5d; // ring3_call(gate_signal, Channel*)
uint64_t handle_gate(uint64_t nr, uint64_t a, uint64_t b, uint64_t c);

// Every wait has a timeout; waits in ring 0 halt between polls (hv::idle), in ring 3 they spin.
inline constexpr uint64_t default_timeout_ms = 10000;
// How long data may sit in the host -> guest ring without a signal before that is a host error.
inline constexpr uint64_t signal_grace_ms = 2000;

// Ring 0: vmbus_open with Linux's ring sizes.
bool open(Controller& c, const vmbus::Offer& offer, unsigned index, uint64_t timeout_ms = default_timeout_ms);
bool close(Controller& c, uint64_t timeout_ms = default_timeout_ms);

// storvsc_channel_init. verbose: a "vmgen-guest:" line per step.
bool init(Controller& c, bool verbose, uint64_t timeout_ms = default_timeout_ms);

// Queues a command on `tag` (free). false: the ring had no room (hv::error says so; stats.ring_full counts)
// or the command is malformed.
bool submit(Controller& c, unsigned tag, const Command& command);
// Handles whatever the host signalled (storvsc_on_channel_callback); false on a protocol error.
bool poll(Controller& c);
// The pieces of submit(), for clients that stage packets themselves (a benchmark batching GPA-direct packets with
// vmbus::ring_stage_raw). build_srb: the vstor_packet storvsc_queuecommand + storvsc_do_io build for `command`,
// with its data length (0 without data); false (hv::error) for a CDB longer than 16 bytes. build_gpa_direct:
// vmbus_sendpacket_mpb_desc's packet (descriptor, one range over buffer/length, then `packet`) into `out`, which
// holds gpa_direct_max_bytes; its length, or 0 (hv::error) when the buffer needs more than max_pfns pages.
// mark_submitted: `tag` is outstanding with `command` once its packet is in the ring.
inline constexpr uint32_t gpa_direct_max_bytes = 32 + 8 * max_pfns + sizeof(wire::VstorPacket);
bool build_srb(const Controller& c, const Command& command, wire::VstorPacket& out, uint32_t& length);
uint32_t build_gpa_direct(void* out, const wire::VstorPacket& packet, uint64_t trans_id, const void* buffer,
                          uint32_t length);
void mark_submitted(Controller& c, unsigned tag, const Command& command, bool gpa_direct);
// Polls until done() or the timeout (then false with "what" in the error).
template <class F> bool wait(Controller& c, F&& done, uint64_t timeout_ms, const char* what);
// A free tag, or -1.
int free_tag(const Controller& c);
// The finished tag that completed first, or -1.
int first_done(const Controller& c);
// Submits on a free tag, waits for the completion, frees the tag.
bool execute(Controller& c, const Command& command, Completion& out, uint64_t timeout_ms = default_timeout_ms);
// Takes a finished tag: copies its completion and frees it.
void release(Controller& c, unsigned tag, Completion* out = nullptr);

// storvsc_host_reset_handler: RESET_BUS, its completion, then the outstanding requests.
bool reset_bus(Controller& c, uint64_t timeout_ms = default_timeout_ms);

// Rescan requests (ENUMERATE_BUS / REMOVE_DEVICE with trans_id 0) since the last call.
uint64_t take_rescans(Controller& c);

// Formats a completion's status for messages: "srb=0x84 scsi=0x02 sense=5/21/00 transferred=0".
const char* status_text(const Completion& done, char* buf, size_t size);

// ---- internals used by wait() ----
bool wait_step(Controller& c, uint64_t& data_seen_tsc);

template <class F> bool wait(Controller& c, F&& done, uint64_t timeout_ms, const char* what)
{
    uint64_t deadline = hv::deadline_ms(timeout_ms);
    uint64_t data_seen = 0;
    for (;;) {
        if (done())
            return true;
        if (!wait_step(c, data_seen))
            return false;
        if (done())
            return true;
        if (hv::expired(deadline))
            return hv::fail("%s: %s: nothing within %lu ms (%u requests in flight, guest -> host ring %u bytes "
                            "unread, host -> guest ring %u bytes unread)",
                            c.name, what, timeout_ms, c.in_flight, vmbus::ring_bytes_to_read(c.channel.out),
                            vmbus::ring_bytes_to_read(c.channel.in));
    }
}

} // namespace kit::storvsc
