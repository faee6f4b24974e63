// Test-guest kit: storvsc client (see storvsc.h).
#include "kit/storvsc.h"

#include "kit/cpu.h"
#include "kit/format.h"
#include "kit/serial.h"
#include "kit/traps.h"

namespace kit::storvsc {

namespace {

constexpr unsigned sint = vmbus::message_sint;

unsigned cpl()
{
    uint16_t cs;
    asm volatile("mov %%cs, %0" : "=r"(cs));
    return cs & 3;
}


// Keeps the previous error text while adding context in front of it.
bool fail_with_context(const char* context)
{
    char prev[320];
    format(prev, sizeof prev, "%s", hv::error());
    return hv::fail("%s: %s", context, prev);
}

bool signal_host(Controller& c)
{
    ++c.stats.signals;
    if (cpl() == 0)
        return vmbus::signal(c.channel);
    uint64_t status = ring3_call(gate_signal, reinterpret_cast<uint64_t>(&c.channel));
    if (status != 0)
        return hv::fail("%s: HvSignalEvent(connection_id=%u) through the ring-3 gate failed (%lu)", c.name,
                        c.channel.offer.connection_id, status);
    return true;
}

// vmbus_sendpacket(VM_PKT_DATA_INBAND, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED).
bool send_inband(Controller& c, const wire::VstorPacket& packet, uint64_t trans_id)
{
    bool need_signal = false;
    if (!vmbus::ring_write(c.channel.out, vmbus::packet_inband, vmbus::packet_flag_completion_requested, trans_id,
                           &packet, sizeof packet, need_signal)) {
        ++c.stats.ring_full;
        return fail_with_context(c.name);
    }
    return need_signal ? signal_host(c) : true;
}

// vmbus_sendpacket_mpb_desc: struct vmbus_packet_mpb_array (descriptor, reserved, rangecount = 1,
// hv_mpb_array {len, offset, pfn_array[]}) followed by the vstor_packet.
// Scratch buffers in the NOLOAD .stack section: they add nothing to the image of the guests that link the kit
// without using this file.
alignas(8) __attribute__((section(".stack"))) uint8_t g_packet[gpa_direct_max_bytes];

bool send_gpa_direct(Controller& c, const wire::VstorPacket& packet, uint64_t trans_id, const void* buffer,
                     uint32_t length)
{
    uint32_t packet_length = build_gpa_direct(g_packet, packet, trans_id, buffer, length);
    if (packet_length == 0)
        return fail_with_context(c.name);
    vmbus::Ring& ring = c.channel.out;
    uint32_t write = vmbus::ring_write_index(ring);
    if (!vmbus::ring_stage_raw(ring, write, g_packet, packet_length)) {
        ++c.stats.ring_full;
        return fail_with_context(c.name);
    }
    bool need_signal = false;
    vmbus::ring_publish(ring, write, need_signal);
    return need_signal ? signal_host(c) : true;
}

// scsi_normalize_sense on the 96-byte sense buffer the 20 copied bytes went into.
void decode_sense(Completion& d)
{
    d.sense_key = d.asc = d.ascq = 0;
    if (d.sense_length == 0)
        return;
    uint8_t buf[96] = {};
    __builtin_memcpy(buf, d.sense, d.sense_length);
    uint8_t code = buf[0] & 0x7f;
    if ((code & 0x70) != 0x70)
        return;
    if (code >= 0x72) { // descriptor format
        d.sense_key = buf[1] & 0xf;
        d.asc = buf[2];
        d.ascq = buf[3];
        return;
    }
    unsigned len = 96;
    d.sense_key = buf[2] & 0xf;
    if (buf[7] + 8u < len)
        len = buf[7] + 8u;
    if (len > 12)
        d.asc = buf[12];
    if (len > 13)
        d.ascq = buf[13];
}

// storvsc_on_io_completion + storvsc_command_completion for the request on `tag`.
void io_completion(Controller& c, Tag& t, const vmbus::Packet& pkt, const wire::VstorPacket& reply)
{
    Completion& d = t.completion;
    d = Completion{};
    d.packet_type = pkt.type;
    d.packet_length = pkt.length;
    d.payload_length = pkt.payload_length;
    d.operation = reply.operation;
    d.vstor_status = reply.status;
    d.srb_status = reply.srb.srb_status;
    d.scsi_status = reply.srb.scsi_status;
    d.sense_info_length = reply.srb.sense_info_length;
    d.data_transfer_length = reply.srb.data_transfer_length;
    __builtin_memcpy(d.sense_raw, reply.srb.cdb_or_sense, sizeof d.sense_raw);

    uint8_t srb = reply.srb.srb_status, scsi = reply.srb.scsi_status;
    uint8_t op = t.command.cdb[0];
    if (op == 0x12 || op == 0x1a || op == 0x5a) { // INQUIRY, MODE SENSE(6), MODE SENSE(10): never fatal
        scsi = 0;
        srb = wire::srb_status_success;
    }
    d.linux_srb_status = srb;
    d.linux_scsi_status = scsi;
    uint8_t sense_length = reply.srb.sense_info_length;
    if (sense_length > wire::sense_buffer_size)
        sense_length = wire::sense_buffer_size;
    if (scsi == scsi_check_condition && (srb & wire::srb_status_autosense_valid)) {
        d.sense_length = sense_length;
        __builtin_memcpy(d.sense, reply.srb.cdb_or_sense, sense_length);
    }
    decode_sense(d);
    uint32_t transferred = reply.srb.data_transfer_length;
    if (srb != wire::srb_status_success && srb != wire::srb_status_data_overrun)
        transferred = 0;
    uint32_t length = t.command.dir == Dir::none ? 0 : t.command.length;
    if (transferred > length)
        transferred = length;
    d.transferred = transferred;
    if (t.command.dir == Dir::in)
        c.stats.bytes_in += transferred;
    else if (t.command.dir == Dir::out)
        c.stats.bytes_out += transferred;
    t.done = true;
    t.seq = ++c.completion_seq;
    ++c.stats.completions;
    --c.in_flight;
}

alignas(8) __attribute__((section(".stack"))) uint8_t g_rx[4096];

// One packet from the host -> guest ring (storvsc_on_channel_callback's loop body).
bool handle_packet(Controller& c, const vmbus::Packet& pkt)
{
    const uint32_t minlen = pkt.trans_id ? sizeof(wire::VstorPacket) : 4;
    if (pkt.length > max_pkt_size)
        return hv::fail("%s: host packet type=%u trans_id=0x%lx is %u bytes (offset8=%u len8=%u): more than "
                        "STORVSC_MAX_PKT_SIZE (%u); Linux's ring iterator copies %u bytes and then steps only "
                        "%u + 8, losing its place in the ring",
                        c.name, pkt.type, pkt.trans_id, pkt.length, pkt.payload_offset / 8, pkt.length / 8,
                        max_pkt_size, max_pkt_size, max_pkt_size);
    if (pkt.payload_length < minlen)
        return hv::fail("%s: host packet type=%u trans_id=0x%lx has a %u-byte payload, expected at least %u (Linux: "
                        "\"Invalid pkt\", dropped; the request never completes)",
                        c.name, pkt.type, pkt.trans_id, pkt.payload_length, minlen);
    wire::VstorPacket reply{};
    __builtin_memcpy(&reply, g_rx, pkt.payload_length < sizeof reply ? pkt.payload_length : sizeof reply);
    if (pkt.trans_id != 0 && pkt.type != vmbus::packet_completion)
        ++c.stats.non_completion_type;

    if (pkt.trans_id == rqst_init || pkt.trans_id == rqst_reset) {
        bool init = pkt.trans_id == rqst_init;
        bool& busy = init ? c.init_busy : c.reset_busy;
        if (!busy)
            return hv::fail("%s: host packet with trans_id VMBUS_RQST_%s (operation %u) while no %s request is "
                            "outstanding",
                            c.name, init ? "INIT" : "RESET", reply.operation, init ? "initialization" : "reset");
        busy = false;
        (init ? c.init_reply : c.reset_reply) = reply;
        (init ? c.init_done : c.reset_done) = true;
        return true;
    }
    if (pkt.trans_id == 0) {
        ++c.stats.unsolicited;
        if (reply.operation == wire::op_complete_io || reply.operation == wire::op_fchba_data)
            return hv::fail("%s: unsolicited packet (trans_id 0) with operation %s (%u): Linux rejects it "
                            "(\"Invalid packet with ID of 0\")",
                            c.name, operation_name(reply.operation), reply.operation);
        if (reply.operation == wire::op_enumerate_bus || reply.operation == wire::op_remove_device) {
            ++c.stats.rescans;
            ++c.rescans_seen;
        }
        return true;
    }
    uint64_t tag = pkt.trans_id - 1;
    if (tag >= max_tags || !c.tags[tag].busy || c.tags[tag].done)
        return hv::fail("%s: completion with trans_id 0x%lx (operation %u) matches no outstanding request (Linux: "
                        "\"Incorrect transaction ID\", dropped)",
                        c.name, pkt.trans_id, reply.operation);
    Tag& t = c.tags[tag];
    if (reply.operation != wire::op_complete_io)
        return hv::fail("%s: reply to the request on tag %lu (trans_id 0x%lx, CDB opcode 0x%02x) has operation %s "
                        "(%u), expected COMPLETE_IO (1): Linux %s and the request never completes",
                        c.name, tag, pkt.trans_id, t.command.cdb[0], operation_name(reply.operation),
                        reply.operation,
                        reply.operation == wire::op_enumerate_bus || reply.operation == wire::op_remove_device
                            ? "rescans"
                            : "ignores it");
    io_completion(c, t, pkt, reply);
    return true;
}

// Drains the host -> guest ring (one round of the channel callback).
bool drain(Controller& c)
{
    for (;;) {
        vmbus::Packet pkt;
        bool signal_writer = false;
        vmbus::ReadResult r = vmbus::ring_read(c.channel.in, g_rx, sizeof g_rx, pkt, signal_writer);
        if (r == vmbus::ReadResult::empty)
            return true;
        if (r == vmbus::ReadResult::error)
            return fail_with_context(c.name);
        if (signal_writer && !signal_host(c))
            return false;
        if (!handle_packet(c, pkt))
            return false;
    }
}

} // namespace

const char* version_name(uint16_t version)
{
    switch (version) {
    case wire::version_win10: return "win10";
    case wire::version_win8_1: return "win8.1";
    case wire::version_win8: return "win8";
    case wire::version_win7: return "win7";
    case wire::version_win6: return "win6";
    default: return "unknown";
    }
}

const char* operation_name(uint32_t operation)
{
    switch (operation) {
    case wire::op_complete_io: return "COMPLETE_IO";
    case wire::op_remove_device: return "REMOVE_DEVICE";
    case wire::op_execute_srb: return "EXECUTE_SRB";
    case wire::op_reset_lun: return "RESET_LUN";
    case wire::op_reset_adapter: return "RESET_ADAPTER";
    case wire::op_reset_bus: return "RESET_BUS";
    case wire::op_begin_initialization: return "BEGIN_INITIALIZATION";
    case wire::op_end_initialization: return "END_INITIALIZATION";
    case wire::op_query_protocol_version: return "QUERY_PROTOCOL_VERSION";
    case wire::op_query_properties: return "QUERY_PROPERTIES";
    case wire::op_enumerate_bus: return "ENUMERATE_BUS";
    case wire::op_fchba_data: return "FCHBA_DATA";
    case wire::op_create_sub_channels: return "CREATE_SUB_CHANNELS";
    default: return "unknown";
    }
}

uint8_t command_size(uint8_t opcode)
{
    static const uint8_t sizes[8] = {6, 10, 10, 12, 16, 12, 10, 10}; // COMMAND_SIZE by group (opcode >> 5)
    return sizes[opcode >> 5];
}

uint64_t handle_gate(uint64_t nr, uint64_t a, uint64_t, uint64_t)
{
    if (nr != gate_signal)
        return ~uint64_t{0};
    return vmbus::signal(*reinterpret_cast<vmbus::Channel*>(a)) ? 0 : 1;
}

void use_ring3_gate() { set_ring3_gate(handle_gate); }

bool open(Controller& c, const vmbus::Offer& offer, unsigned index, uint64_t timeout_ms)
{
    c.index = index;
    format(c.name, sizeof c.name, "scsi%u", index);
    return vmbus::open_channel(c.channel, offer, ring_pages, ring_pages, timeout_ms, c.name);
}

bool close(Controller& c, uint64_t timeout_ms) { return vmbus::close_channel(c.channel, timeout_ms); }

bool wait_step(Controller& c, uint64_t& data_seen_tsc)
{
    const vmbus::Channel& ch = c.channel;
    if (hv::test_and_clear_event(sint, ch.offer.relid)) {
        // vmbus_chan_sched (HV_CALL_BATCHED): hv_begin_read, the callback, hv_end_read; again while more came.
        ++c.stats.host_signals;
        for (;;) {
            ++c.stats.drains;
            vmbus::ring_begin_read(c.channel.in);
            if (!drain(c)) {
                vmbus::ring_end_read(c.channel.in);
                return false;
            }
            if (vmbus::ring_end_read(c.channel.in) == 0)
                break;
        }
        data_seen_tsc = 0;
        return true;
    }
    // Not signalled. Data in the ring while we did not mask interrupts must come with a signal.
    uint32_t unread = vmbus::ring_bytes_to_read(ch.in);
    if (unread && ch.in.control->interrupt_mask == 0) {
        uint64_t now = rdtsc();
        if (!data_seen_tsc)
            data_seen_tsc = now;
        else if ((now - data_seen_tsc) / hv::tsc_per_ms() > signal_grace_ms)
            return hv::fail("%s: the host wrote %u bytes into the empty host -> guest ring (interrupt_mask 0) and did "
                            "not signal the channel (SIEFP flag %u of SINT%u) within %lu ms: Linux would never read "
                            "them",
                            c.name, unread, ch.offer.relid, sint, signal_grace_ms);
    } else {
        data_seen_tsc = 0;
    }
    if (cpl() == 0)
        hv::idle();
    else
        pause();
    return true;
}

bool poll(Controller& c)
{
    uint64_t seen = 0;
    if (!hv::test_event(sint, c.channel.offer.relid))
        return true;
    return wait_step(c, seen);
}

int free_tag(const Controller& c)
{
    for (unsigned i = 0; i < max_tags; ++i)
        if (!c.tags[i].busy)
            return static_cast<int>(i);
    return -1;
}

int first_done(const Controller& c)
{
    int found = -1;
    for (unsigned i = 0; i < max_tags; ++i)
        if (c.tags[i].busy && c.tags[i].done && (found < 0 || c.tags[i].seq < c.tags[found].seq))
            found = static_cast<int>(i);
    return found;
}

bool submit(Controller& c, unsigned tag, const Command& command)
{
    if (tag >= max_tags || c.tags[tag].busy)
        return hv::fail("%s: submit on tag %u: not a free tag", c.name, tag);
    if (!c.ready)
        return hv::fail("%s: submit before END_INITIALIZATION completed", c.name);
    wire::VstorPacket p{};
    uint32_t length = 0;
    if (!build_srb(c, command, p, length))
        return false;
    uint64_t trans_id = uint64_t{tag} + 1;
    bool ok = length ? send_gpa_direct(c, p, trans_id, command.buffer, length) : send_inband(c, p, trans_id);
    if (!ok)
        return false;
    Command sent = command;
    sent.cdb_length = p.srb.cdb_length;
    mark_submitted(c, tag, sent, length != 0);
    return true;
}

bool build_srb(const Controller& c, const Command& command, wire::VstorPacket& p, uint32_t& length)
{
    // storvsc_queuecommand.
    p = wire::VstorPacket{};
    wire::VmscsiRequest& srb = p.srb;
    srb.time_out_value = srb_timeout_s;
    srb.srb_flags |= srb_flags_disable_synch_transfer;
    if (command.tagged) {
        srb.srb_flags |= wire::srb_flags_queue_action_enable | wire::srb_flags_no_queue_freeze;
        srb.queue_tag = sp_untagged;
        srb.queue_action = srb_simple_tag_request;
    }
    switch (command.dir) {
    case Dir::out:
        srb.data_in = wire::data_write;
        srb.srb_flags |= wire::srb_flags_data_out;
        break;
    case Dir::in:
        srb.data_in = wire::data_read;
        srb.srb_flags |= wire::srb_flags_data_in;
        break;
    case Dir::none:
        srb.data_in = wire::data_unknown;
        break;
    }
    srb.port_number = static_cast<uint8_t>(c.index); // host_dev->port = host->host_no
    srb.path_id = command.path;
    srb.target_id = command.target;
    srb.lun = command.lun;
    srb.cdb_length = command.cdb_length ? command.cdb_length : command_size(command.cdb[0]);
    if (srb.cdb_length > wire::max_cdb_length)
        return hv::fail("%s: CDB length %u", c.name, srb.cdb_length);
    __builtin_memcpy(srb.cdb_or_sense, command.cdb, srb.cdb_length);
    length = command.dir == Dir::none ? 0 : command.length;
    // storvsc_do_io.
    p.flags |= wire::request_completion_flag;
    srb.length = sizeof(wire::VmscsiRequest);
    srb.sense_info_length = wire::sense_buffer_size;
    srb.data_transfer_length = length;
    p.operation = wire::op_execute_srb;
    return true;
}

uint32_t build_gpa_direct(void* out, const wire::VstorPacket& packet, uint64_t trans_id, const void* buffer,
                          uint32_t length)
{
    uint64_t address = hv::gpa(buffer);
    uint32_t offset = static_cast<uint32_t>(address & 4095);
    uint32_t pfns = (offset + length + 4095) / 4096; // HVPFN_UP(offset_in_hvpg + length)
    if (pfns > max_pfns) {
        hv::fail("a %u-byte buffer needs %u PFNs, this client handles %u", length, pfns, max_pfns);
        return 0;
    }
    uint32_t desc_size = 32 + 8 * pfns;
    uint32_t packet_length = desc_size + sizeof packet; // a multiple of 8 already
    auto* p = static_cast<uint8_t*>(out);
    uint16_t d[4] = {vmbus::packet_gpa_direct, static_cast<uint16_t>(desc_size >> 3),
                     static_cast<uint16_t>(packet_length >> 3), vmbus::packet_flag_completion_requested};
    __builtin_memcpy(p, d, 8);
    __builtin_memcpy(p + 8, &trans_id, 8);
    uint32_t words[4] = {0, 1, length, offset}; // reserved, rangecount, range.len, range.offset
    __builtin_memcpy(p + 16, words, 16);
    uint64_t first = address >> 12;
    for (uint32_t i = 0; i < pfns; ++i) {
        uint64_t pfn = first + i;
        __builtin_memcpy(p + 32 + 8 * i, &pfn, 8);
    }
    __builtin_memcpy(p + desc_size, &packet, sizeof packet);
    return packet_length;
}

void mark_submitted(Controller& c, unsigned tag, const Command& command, bool gpa_direct)
{
    Tag& t = c.tags[tag];
    t.command = command;
    t.busy = true;
    t.done = false;
    t.submitted_tsc = rdtsc();
    ++c.in_flight;
    ++c.stats.commands;
    if (gpa_direct)
        ++c.stats.gpa_direct;
    if (c.in_flight > c.stats.max_in_flight)
        c.stats.max_in_flight = c.in_flight;
}

void release(Controller& c, unsigned tag, Completion* out)
{
    Tag& t = c.tags[tag];
    if (out)
        *out = t.completion;
    t.busy = false;
    t.done = false;
}

bool execute(Controller& c, const Command& command, Completion& out, uint64_t timeout_ms)
{
    int tag = free_tag(c);
    if (tag < 0)
        return hv::fail("%s: no free tag", c.name);
    // A full ring: Linux requeues (SCSI_MLQUEUE_DEVICE_BUSY) and tries again later.
    uint64_t deadline = hv::deadline_ms(timeout_ms);
    for (;;) {
        uint64_t full_before = c.stats.ring_full;
        if (submit(c, static_cast<unsigned>(tag), command))
            break;
        if (c.stats.ring_full == full_before || hv::expired(deadline))
            return false;
        uint64_t seen = 0;
        if (!wait_step(c, seen))
            return false;
    }
    const Tag& t = c.tags[tag];
    char what[64];
    format(what, sizeof what, "completion of CDB opcode 0x%02x on tag %d", command.cdb[0], tag);
    if (!wait(c, [&] { return t.done; }, timeout_ms, what))
        return false;
    release(c, static_cast<unsigned>(tag), &out);
    return true;
}

namespace {

// storvsc_execute_vstor_op: the packet (operation and union already set), flags = REQUEST_COMPLETION_FLAG,
// inband, trans_id VMBUS_RQST_INIT; waits for the reply. status_check: operation COMPLETE_IO and status 0.
bool vstor_op(Controller& c, wire::VstorPacket& packet, bool status_check, uint64_t timeout_ms, const char* step)
{
    packet.flags = wire::request_completion_flag;
    c.init_busy = true;
    c.init_done = false;
    if (!send_inband(c, packet, rqst_init)) {
        c.init_busy = false;
        return fail_with_context(step);
    }
    char what[64];
    format(what, sizeof what, "%s: reply (trans_id VMBUS_RQST_INIT)", step);
    if (!wait(c, [&] { return c.init_done; }, timeout_ms, what))
        return false;
    packet = c.init_reply; // Linux copies the reply over its request
    if (status_check && (packet.operation != wire::op_complete_io || packet.status != 0))
        return hv::fail("%s: %s: expected operation COMPLETE_IO (1) status 0, got operation %s (%u) status 0x%x",
                        c.name, step, operation_name(packet.operation), packet.operation, packet.status);
    return true;
}

} // namespace

bool init(Controller& c, bool verbose, uint64_t timeout_ms)
{
    wire::VstorPacket p{};
    p.operation = wire::op_begin_initialization;
    if (!vstor_op(c, p, true, timeout_ms, "BEGIN_INITIALIZATION"))
        return false;
    if (verbose)
        line("storvsc %s begin_initialization status=0x%x", c.name, p.status);

    bool accepted = false;
    c.versions_tried = 0;
    for (uint16_t v : linux_versions) {
        p = wire::VstorPacket{};
        p.operation = wire::op_query_protocol_version;
        p.version.major_minor = v;
        p.version.revision = 0;
        ++c.versions_tried;
        char step[48];
        format(step, sizeof step, "QUERY_PROTOCOL_VERSION 0x%04x", v);
        if (!vstor_op(c, p, false, timeout_ms, step))
            return false;
        if (p.operation != wire::op_complete_io)
            return hv::fail("%s: %s: expected operation COMPLETE_IO (1), got %s (%u): Linux fails the probe (-EINVAL)",
                            c.name, step, operation_name(p.operation), p.operation);
        if (verbose)
            line("storvsc %s query_protocol_version 0x%04x (%s) status=0x%x%s", c.name, v, version_name(v), p.status,
                 p.status == 0 ? " accepted" : "");
        if (p.status == 0) {
            c.version = v;
            accepted = true;
            break;
        }
    }
    if (!accepted)
        return hv::fail("%s: QUERY_PROTOCOL_VERSION: 0x0602, 0x0600 and 0x0501 all refused (Linux: \"Obsolete "
                        "Hyper-V version\")",
                        c.name);

    p = wire::VstorPacket{};
    p.operation = wire::op_query_properties;
    if (!vstor_op(c, p, true, timeout_ms, "QUERY_PROPERTIES"))
        return false;
    c.properties = p.properties;
    if (verbose)
        line("storvsc %s properties max_transfer_bytes=%u max_channels=%u flags=0x%x multichannel=%u", c.name,
             c.properties.max_transfer_bytes, c.properties.max_channel_count, c.properties.flags,
             (c.properties.flags & wire::properties_multi_channel) ? 1u : 0u);

    p = wire::VstorPacket{};
    p.operation = wire::op_end_initialization;
    if (!vstor_op(c, p, true, timeout_ms, "END_INITIALIZATION"))
        return false;
    c.ready = true;
    // handle_multichannel_storage: num_sc = min(num_online_cpus() - 1, max_chns) = 0 with one CPU: nothing sent.
    if (verbose)
        line("storvsc %s ready version=0x%04x (%s) max_transfer_bytes=%u", c.name, c.version, version_name(c.version),
             c.properties.max_transfer_bytes);
    return true;
}

bool reset_bus(Controller& c, uint64_t timeout_ms)
{
    wire::VstorPacket p{};
    p.operation = wire::op_reset_bus;
    p.flags = wire::request_completion_flag;
    p.srb.path_id = 0; // stor_device->path_id
    c.reset_busy = true;
    c.reset_done = false;
    if (!send_inband(c, p, rqst_reset)) {
        c.reset_busy = false;
        return fail_with_context("RESET_BUS");
    }
    if (!wait(c, [&] { return c.reset_done; }, timeout_ms, "RESET_BUS reply (trans_id VMBUS_RQST_RESET)"))
        return false;
    // storvsc_wait_to_drain.
    return wait(c, [&] { return c.in_flight == 0; }, timeout_ms, "requests outstanding after RESET_BUS");
}

uint64_t take_rescans(Controller& c)
{
    uint64_t n = c.rescans_seen;
    c.rescans_seen = 0;
    return n;
}

const char* status_text(const Completion& d, char* buf, size_t size)
{
    format(buf, size, "srb=0x%02x scsi=0x%02x sense=%x/%02x/%02x transferred=%u", d.linux_srb_status,
           d.linux_scsi_status, d.sense_key, d.asc, d.ascq, d.transferred);
    return buf;
}

} // namespace kit::storvsc
