#include "vm/storvsp/storvsp.h"

#include "support/log.h"
#include "support/thread_name.h"
#include "vm/scsi/inquiry.h"
#include "vm/vmbus/gpa_direct.h"

#include <algorithm>
#include <cstring>
#include <optional>

namespace vmgen::vm::storvsp {

namespace wire = protocols::vmbus::storvsp;
namespace vmbus_wire = protocols::vmbus;
using scsi::DataDirection;

namespace {

// Job hand-off to the I/O threads: a transfer of at least this many bytes wakes a thread of its own (copying it
// takes longer than a wake-up); shorter ones share one.
constexpr uint64_t own_thread_bytes = 256 * 1024;

// The protocol versions the host accepts, newest first (QUERY_PROTOCOL_VERSION).
constexpr uint16_t supported_versions[] = {wire::version_win10, wire::version_win8_1, wire::version_win8,
                                           wire::version_win7, wire::version_win6};

// The guest's data buffer for one SRB: a window [0, size) of the GPA-direct ranges, walked zero-copy.
class GpaDataBuffer final : public scsi::DataBuffer {
public:
    GpaDataBuffer(const GuestMemory& memory, const vmbus::GpaRanges& ranges, uint64_t size)
        : m_memory(memory), m_ranges(ranges), m_size(size)
    {
    }
    [[nodiscard]] uint64_t size() const override { return m_size; }
    Result<void> for_each_segment(uint64_t offset, uint64_t length, const SegmentFn& fn) override
    {
        if (offset > m_size || length > m_size - offset)
            return fail("window {}+{} outside the {}-byte buffer", offset, length, m_size);
        return m_ranges.for_each_segment(m_memory, offset, length, fn);
    }

private:
    const GuestMemory& m_memory;
    const vmbus::GpaRanges& m_ranges;
    uint64_t m_size;
};

std::span<const uint8_t> bytes_of(const wire::VstorPacket& packet)
{
    return {reinterpret_cast<const uint8_t*>(&packet), sizeof(packet)};
}

// A command's data buffer for ScsiLun::execute: the GPA-direct ranges of its packet, or none.
class CommandBuffer {
public:
    CommandBuffer(const GuestMemory& memory, const std::optional<vmbus::GpaRanges>& ranges, uint64_t size)
        : m_gpa(memory, ranges ? *ranges : no_ranges(), size)
        , m_has_ranges(ranges.has_value())
    {
    }
    scsi::DataBuffer& get() { return m_has_ranges ? static_cast<scsi::DataBuffer&>(m_gpa) : m_none; }

private:
    static const vmbus::GpaRanges& no_ranges()
    {
        static const vmbus::GpaRanges none;
        return none;
    }
    GpaDataBuffer m_gpa;
    scsi::SpanDataBuffer m_none;
    bool m_has_ranges;
};

wire::VstorPacket completion_packet(uint32_t status)
{
    wire::VstorPacket packet {};
    packet.operation = wire::op_complete_io;
    packet.status = status;
    return packet;
}

} // namespace

struct StorvspController::Job {
    uint64_t trans_id = 0;
    bool completion_requested = false;
    wire::VmscsiRequest srb {};
    scsi::ScsiCommand command {};
    const GuestMemory* memory = nullptr;
    std::optional<vmbus::GpaRanges> ranges;
    uint64_t buffer_bytes = 0;
    // What executes it: a unit, or the target itself (REPORT LUNS, INQUIRY of an empty address).
    std::shared_ptr<scsi::ScsiLun> unit;
    std::shared_ptr<std::atomic<uint32_t>> busy;
    enum class Target { None, ReportLuns, AbsentInquiry } target = Target::None;
    std::vector<uint16_t> luns; // ReportLuns
};

Result<std::unique_ptr<StorvspController>> StorvspController::create(ControllerOptions options)
{
    if (options.io_threads == 0 || options.io_threads > 64)
        return fail("a SCSI controller needs 1..64 I/O threads, not {}", options.io_threads);
    if (options.max_transfer_bytes < 4096 || options.max_transfer_bytes > vmbus::max_gpa_transfer_bytes)
        return fail("maximum transfer size {} outside 4 KiB..{} MiB", options.max_transfer_bytes,
                    vmbus::max_gpa_transfer_bytes >> 20);
    if (options.max_in_flight == 0)
        return fail("a SCSI controller must allow at least one command in flight");
    std::unique_ptr<StorvspController> controller(new StorvspController(std::move(options)));
    for (unsigned i = 0; i < controller->m_options.io_threads; ++i)
        controller->m_threads.emplace_back([c = controller.get(), i] {
            set_thread_name("{}-io{}", c->m_options.name, i);
            c->io_thread();
        });
    return controller;
}

StorvspController::StorvspController(ControllerOptions options) : m_options(std::move(options))
{
    m_offer.class_id = scsi_class_id;
    m_offer.instance_id = m_options.instance_id;
    // Linux opens storvsc with 128 KiB rings; anything from 2 data pages works here.
    m_offer.min_ring_data_bytes = 2 * 4096;
}

StorvspController::~StorvspController()
{
    {
        std::lock_guard lock(m_mutex);
        m_stopping = true;
    }
    m_jobs_cv.notify_all();
    for (auto& thread : m_threads)
        thread.join();
}

// ---- Host side ----

Result<void> StorvspController::attach(unsigned lun, std::shared_ptr<scsi::ScsiLun> unit)
{
    if (lun >= max_luns)
        return fail("{}: location {} is outside 0..{}", m_options.name, lun, max_luns - 1);
    if (!unit)
        return fail("{}: no logical unit to attach at location {}", m_options.name, lun);
    {
        std::lock_guard lock(m_luns_mutex);
        if (m_luns[lun].unit)
            return fail("{}: location {} is in use", m_options.name, lun);
        m_luns[lun] = Slot {std::move(unit), std::make_shared<std::atomic<uint32_t>>(0)};
    }
    notify_rescan();
    return {};
}

Result<std::shared_ptr<scsi::ScsiLun>> StorvspController::detach(unsigned lun)
{
    if (lun >= max_luns)
        return fail("{}: location {} is outside 0..{}", m_options.name, lun, max_luns - 1);
    Slot slot;
    {
        std::lock_guard lock(m_luns_mutex);
        if (!m_luns[lun].unit)
            return fail("{}: nothing is attached at location {}", m_options.name, lun);
        slot = std::exchange(m_luns[lun], Slot {});
    }
    {
        // Commands that picked the unit before it left finish first (complete_job counts them down under m_mutex).
        std::unique_lock lock(m_mutex);
        hand_off_batch_locked();
        m_cv.wait(lock, [&] { return slot.busy->load() == 0; });
    }
    notify_rescan();
    return std::move(slot.unit);
}

std::shared_ptr<scsi::ScsiLun> StorvspController::lun(unsigned lun) const
{
    if (lun >= max_luns)
        return nullptr;
    std::lock_guard lock(m_luns_mutex);
    return m_luns[lun].unit;
}

std::vector<unsigned> StorvspController::attached_luns() const
{
    std::vector<unsigned> out;
    std::lock_guard lock(m_luns_mutex);
    for (unsigned i = 0; i < max_luns; ++i) {
        if (m_luns[i].unit)
            out.push_back(i);
    }
    return out;
}

ControllerStats StorvspController::stats() const
{
    std::lock_guard lock(m_mutex);
    ControllerStats stats = m_stats;
    stats.protocol_version = m_version;
    stats.ready = m_state == State::Ready;
    return stats;
}

void StorvspController::notify_rescan()
{
    std::lock_guard lock(m_mutex);
    if (m_state != State::Ready)
        return; // the guest scans when it finishes initialising
    Reply reply;
    reply.type = vmbus_wire::packet_type_data_inband;
    reply.trans_id = 0; // unsolicited
    reply.packet.operation = wire::op_enumerate_bus;
    ++m_stats.rescans;
    send_or_defer_locked(std::move(reply));
}

// ---- Channel ----

Result<void> StorvspController::on_open(vmbus::Channel& channel)
{
    std::lock_guard lock(m_mutex);
    m_channel = &channel;
    m_state = State::WaitBegin;
    m_version = 0;
    m_deferred.clear();
    return {};
}

void StorvspController::on_close(vmbus::Channel& channel)
{
    (void)channel;
    std::unique_lock lock(m_mutex);
    hand_off_batch_locked(); // empty unless the worker stopped mid-burst
    // Commands already taken from the ring finish (their completions go nowhere: the channel is closed).
    m_cv.wait(lock, [&] { return m_in_flight == 0; });
    m_channel = nullptr;
    m_state = State::Closed;
    m_version = 0;
    m_deferred.clear();
}

void StorvspController::reset()
{
    // The guest's VMBus session ended (VM reset, UNLOAD): volatile unit state goes too (a DVD's lock).
    std::vector<std::shared_ptr<scsi::ScsiLun>> units;
    {
        std::lock_guard lock(m_luns_mutex);
        for (auto& slot : m_luns) {
            if (slot.unit)
                units.push_back(slot.unit);
        }
    }
    for (auto& unit : units)
        unit->reset();
}

void StorvspController::on_wake(vmbus::Channel& channel)
{
    (void)channel;
    std::lock_guard lock(m_mutex);
    flush_deferred_locked();
}

void StorvspController::guest_error(std::string_view what)
{
    // m_mutex held.
    ++m_stats.invalid_requests;
    if (m_warnings_left > 0) {
        --m_warnings_left;
        log_warn("storvsp", "{}: {}", m_options.name, what);
    } else {
        log_debug("storvsp", "{}: {}", m_options.name, what);
    }
}

vmbus::PacketAction StorvspController::on_packet(vmbus::Channel& channel, const vmbus::Packet& packet)
{
    std::unique_lock lock(m_mutex);
    // Replies that found the ring full go first; until they are out, no new request is read.
    if (!flush_deferred_locked())
        return vmbus::PacketAction::retry;

    if (packet.type != vmbus_wire::packet_type_data_inband &&
        packet.type != vmbus_wire::packet_type_data_using_gpa_direct) {
        guest_error(fmt::format("packet type {} ignored", packet.type));
        return vmbus::PacketAction::done;
    }
    // Before Windows 8 (and before a version is agreed) a vstor_packet had no Windows 8 extension.
    size_t minimum = m_version >= wire::version_win8 ? wire::packet_size : wire::pre_win8_packet_size;
    if (packet.payload.size() < minimum) {
        guest_error(fmt::format("{}-byte packet (at least {} expected) ignored", packet.payload.size(), minimum));
        return vmbus::PacketAction::done;
    }
    wire::VstorPacket request {};
    std::memcpy(&request, packet.payload.data(), std::min(packet.payload.size(), sizeof(request)));
    bool completion = (packet.flags & vmbus_wire::packet_flag_completion_requested) != 0;

    if (request.operation == wire::op_execute_srb)
        return handle_srb(channel, packet, request, completion);
    if (packet.type != vmbus_wire::packet_type_data_inband) {
        guest_error(fmt::format("operation {} with GPA-direct data ignored", request.operation));
        return vmbus::PacketAction::done;
    }
    switch (request.operation) {
    case wire::op_reset_bus:
    case wire::op_reset_adapter:
    case wire::op_reset_lun:
        return handle_reset(lock, packet, request, completion);
    default:
        handle_control(packet, request, completion);
        return vmbus::PacketAction::done;
    }
}

void StorvspController::handle_control(const vmbus::Packet& packet, const wire::VstorPacket& request,
                                       bool completion)
{
    // m_mutex held.
    auto reply = completion_packet(wire::status_success);
    switch (request.operation) {
    case wire::op_begin_initialization:
        m_state = State::WaitVersion;
        m_version = 0;
        break;
    case wire::op_query_protocol_version: {
        if (m_state != State::WaitVersion) {
            guest_error("QUERY_PROTOCOL_VERSION outside the initialization");
            reply.status = wire::status_invalid_device_state;
            break;
        }
        uint16_t asked = request.version.major_minor;
        reply.version = request.version;
        if (std::find(std::begin(supported_versions), std::end(supported_versions), asked) ==
            std::end(supported_versions)) {
            reply.status = wire::status_revision_mismatch; // the guest tries its next version
            break;
        }
        m_version = asked;
        m_state = State::WaitProperties;
        break;
    }
    case wire::op_query_properties:
        if (m_state != State::WaitProperties && m_state != State::WaitEnd) {
            guest_error("QUERY_PROPERTIES before a protocol version was agreed");
            reply.status = wire::status_invalid_device_state;
            break;
        }
        reply.properties.max_channel_count = 0; // no sub-channels: one ring per controller
        reply.properties.flags = 0;
        reply.properties.max_transfer_bytes = m_options.max_transfer_bytes;
        m_state = State::WaitEnd;
        break;
    case wire::op_end_initialization:
        if (m_state != State::WaitProperties && m_state != State::WaitEnd) {
            guest_error("END_INITIALIZATION before a protocol version was agreed");
            reply.status = wire::status_invalid_device_state;
            break;
        }
        m_state = State::Ready;
        break;
    case wire::op_create_sub_channels:
    case wire::op_fchba_data:
        // Not offered: QUERY_PROPERTIES says no multi-channel, and this is not a Fibre Channel adapter.
        reply.status = wire::status_not_supported;
        break;
    default:
        guest_error(fmt::format("unknown or host-only operation {}", request.operation));
        reply.status = wire::status_invalid_parameter;
        break;
    }
    if (completion)
        send_or_defer_locked(Reply {vmbus_wire::packet_type_completion, packet.trans_id, reply});
}

vmbus::PacketAction StorvspController::handle_reset(std::unique_lock<std::mutex>& lock, const vmbus::Packet& packet,
                                                    const wire::VstorPacket& request, bool completion)
{
    if (m_state != State::Ready) {
        guest_error("reset before the initialization finished");
        if (completion) {
            send_or_defer_locked(Reply {vmbus_wire::packet_type_completion, packet.trans_id,
                                        completion_packet(wire::status_invalid_device_state)});
        }
        return vmbus::PacketAction::done;
    }
    // Linux expects every outstanding request to have completed when the reset completes
    // (storvsc_host_reset_handler): wait for the I/O threads. Their completions do not need this thread.
    hand_off_batch_locked();
    m_cv.wait(lock, [&] { return m_in_flight == 0; });
    ++m_stats.resets;
    std::vector<std::shared_ptr<scsi::ScsiLun>> units;
    {
        std::lock_guard luns(m_luns_mutex);
        for (unsigned i = 0; i < max_luns; ++i) {
            bool match = request.operation != wire::op_reset_lun ||
                         (request.srb.path_id == 0 && request.srb.target_id == 0 && request.srb.lun == i);
            if (match && m_luns[i].unit)
                units.push_back(m_luns[i].unit);
        }
    }
    for (auto& unit : units)
        unit->reset();
    if (completion) {
        send_or_defer_locked(Reply {vmbus_wire::packet_type_completion, packet.trans_id,
                                    completion_packet(wire::status_success)});
    }
    return vmbus::PacketAction::done;
}

vmbus::PacketAction StorvspController::handle_srb(vmbus::Channel& channel, const vmbus::Packet& packet,
                                                  const wire::VstorPacket& request, bool completion)
{
    if (m_in_flight >= m_options.max_in_flight)
        return vmbus::PacketAction::retry; // an I/O thread calls request_drain() when one completes

    auto job = std::make_unique<Job>();
    job->trans_id = packet.trans_id;
    job->completion_requested = completion;
    job->srb = request.srb;
    if (m_version != 0 && m_version < wire::version_win8)
        std::memset(&job->srb.reserve, 0, wire::win8_extension_size); // not part of the older packet

    // Answers the SRB at once with an HBA-level status (no unit involved).
    auto answer = [&](uint8_t srb_status, uint32_t status) {
        if (!completion)
            return vmbus::PacketAction::done;
        Reply reply {vmbus_wire::packet_type_completion, packet.trans_id, completion_packet(status)};
        reply.packet.srb = job->srb;
        reply.packet.srb.srb_status = srb_status;
        reply.packet.srb.scsi_status = 0;
        reply.packet.srb.sense_info_length = 0;
        reply.packet.srb.data_transfer_length = 0;
        send_or_defer_locked(std::move(reply));
        return vmbus::PacketAction::done;
    };
    auto invalid = [&](std::string_view why) {
        guest_error(fmt::format("EXECUTE_SRB refused: {}", why));
        return answer(wire::srb_status_invalid_request, wire::status_success);
    };

    if (m_state != State::Ready) {
        guest_error("EXECUTE_SRB before the initialization finished");
        return answer(wire::srb_status_invalid_request, wire::status_invalid_device_state);
    }
    const auto& srb = job->srb;
    if (srb.cdb_length == 0 || srb.cdb_length > wire::max_cdb_length)
        return invalid(fmt::format("CDB length {}", srb.cdb_length));
    DataDirection direction = DataDirection::None;
    switch (srb.data_in) {
    case wire::data_write: direction = DataDirection::Out; break;
    case wire::data_read: direction = DataDirection::In; break;
    case wire::data_unknown: direction = DataDirection::None; break;
    default: return invalid(fmt::format("data direction {}", srb.data_in));
    }
    if (packet.type == vmbus_wire::packet_type_data_using_gpa_direct) {
        auto ranges = vmbus::parse_gpa_direct(packet.header);
        if (!ranges)
            return invalid(ranges.error().message());
        if (auto valid = ranges->validate(channel.memory()); !valid)
            return invalid(valid.error().message());
        if (srb.data_transfer_length > ranges->total_bytes()) {
            return invalid(fmt::format("data_transfer_length {} beyond the {} bytes of its GPA ranges",
                                       srb.data_transfer_length, ranges->total_bytes()));
        }
        job->ranges = std::move(*ranges);
    } else if (srb.data_transfer_length != 0) {
        return invalid(fmt::format("data_transfer_length {} without a data buffer", srb.data_transfer_length));
    }
    if (direction == DataDirection::None && srb.data_transfer_length != 0)
        return invalid("a data buffer without a data direction");
    job->buffer_bytes = srb.data_transfer_length;
    job->memory = &channel.memory();
    job->command = scsi::ScsiCommand::make(std::span(srb.cdb_or_sense).first(srb.cdb_length), direction,
                                           srb.data_transfer_length);

    // Address: path 0, target 0, LUN = location.
    bool target0 = srb.path_id == 0 && srb.target_id == 0;
    {
        std::lock_guard luns(m_luns_mutex);
        // REPORT LUNS is the target's, whichever LUN it is sent to: a unit would report only itself.
        if (job->command.opcode() == protocols::scsi::opcode::report_luns) {
            job->target = Job::Target::ReportLuns;
            if (target0) {
                for (unsigned i = 0; i < max_luns; ++i) {
                    if (m_luns[i].unit)
                        job->luns.push_back(static_cast<uint16_t>(i));
                }
            }
        } else if (target0 && srb.lun < max_luns && m_luns[srb.lun].unit) {
            job->unit = m_luns[srb.lun].unit;
            job->busy = m_luns[srb.lun].busy;
            job->busy->fetch_add(1);
        }
    }
    if (!job->unit && job->target == Job::Target::None) {
        // Linux masks INQUIRY failures into success (storvsc_on_io_completion) and would then see a zeroed
        // buffer as a disk: an empty address must answer INQUIRY with "no logical unit here".
        if (job->command.opcode() != protocols::scsi::opcode::inquiry)
            return answer(wire::srb_status_invalid_lun, wire::status_success);
        job->target = Job::Target::AbsentInquiry;
    }

    ++m_stats.commands;
    ++m_in_flight;
    m_batch.push_back(std::move(job)); // on_drained hands the burst on
    return vmbus::PacketAction::done;
}

void StorvspController::on_drained(vmbus::Channel& channel)
{
    (void)channel;
    std::unique_lock lock(m_mutex);
    if (m_batch.empty())
        return;
    if (m_options.worker_executes && m_batch.size() == 1 && m_in_flight == 1) {
        // The guest waits for this one command: complete it here if it cannot block, rather than wake an I/O
        // thread for it. It stays counted in m_in_flight, so resets and detaches wait for it as for any other.
        std::unique_ptr<Job> job = std::move(m_batch.front());
        m_batch.clear();
        lock.unlock();
        if (auto outcome = execute_job_nowait(*job)) {
            complete_job(*job, *outcome, true);
            return;
        }
        lock.lock();
        m_batch.push_back(std::move(job));
    }
    hand_off_batch_locked();
}

void StorvspController::hand_off_batch_locked()
{
    // A long transfer gets a thread of its own; short ones share one wake-up (a wake-up costs more than a cached
    // 4 KiB read), and a thread about to block on the storage wakes another first (io_thread).
    bool short_jobs = false;
    for (auto& job : m_batch) {
        if (job->buffer_bytes >= own_thread_bytes)
            m_jobs_cv.notify_one();
        else
            short_jobs = true;
        m_jobs.push_back(std::move(job));
    }
    m_batch.clear();
    if (short_jobs)
        m_jobs_cv.notify_one();
}

// ---- Replies ----

void StorvspController::send_or_defer_locked(Reply reply)
{
    if (m_channel == nullptr)
        return; // closed: the guest no longer waits for it
    if (!m_deferred.empty()) {
        m_deferred.push_back(std::move(reply)); // keep the order
        return;
    }
    auto sent = m_channel->send_packet(reply.type, 0, reply.trans_id, {}, bytes_of(reply.packet));
    if (sent)
        return;
    if (sent.error().message() == "ring full") {
        ++m_stats.deferred;
        m_deferred.push_back(std::move(reply)); // the guest signals when it frees space: on_wake sends it
        return;
    }
    log_debug("storvsp", "{}: reply dropped: {}", m_options.name, sent.error().message());
}

bool StorvspController::flush_deferred_locked()
{
    while (!m_deferred.empty()) {
        if (m_channel == nullptr) {
            m_deferred.clear();
            break;
        }
        const Reply& reply = m_deferred.front();
        auto sent = m_channel->send_packet(reply.type, 0, reply.trans_id, {}, bytes_of(reply.packet));
        if (!sent && sent.error().message() == "ring full")
            return false;
        if (!sent)
            log_debug("storvsp", "{}: reply dropped: {}", m_options.name, sent.error().message());
        m_deferred.pop_front();
    }
    return true;
}

// ---- I/O threads ----

void StorvspController::io_thread()
{
    for (;;) {
        std::unique_ptr<Job> job;
        {
            std::unique_lock lock(m_mutex);
            m_jobs_cv.wait(lock, [&] { return m_stopping || !m_jobs.empty(); });
            if (m_jobs.empty())
                return; // stopping
            job = std::move(m_jobs.front());
            m_jobs.pop_front();
        }
        // What completes without blocking runs here; before blocking on the storage, make sure another thread
        // serves the queue, so commands that wait for the disk overlap up to io_threads at a time.
        auto outcome = execute_job_nowait(*job);
        if (!outcome) {
            {
                std::lock_guard lock(m_mutex);
                if (!m_jobs.empty())
                    m_jobs_cv.notify_one();
            }
            outcome = execute_job(*job);
        }
        complete_job(*job, *outcome);
    }
}

scsi::ScsiOutcome StorvspController::execute_job(Job& job)
{
    CommandBuffer buffer(*job.memory, job.ranges, job.buffer_bytes);
    switch (job.target) {
    case Job::Target::None: return job.unit->execute(job.command, buffer.get());
    case Job::Target::ReportLuns: return scsi::report_luns(job.command, buffer.get(), job.luns);
    case Job::Target::AbsentInquiry: return scsi::inquiry_for_absent_lun(job.command, buffer.get());
    }
    return scsi::ScsiOutcome::check_condition(protocols::scsi::sense_key::hardware_error, {});
}

std::optional<scsi::ScsiOutcome> StorvspController::execute_job_nowait(Job& job)
{
    if (job.target != Job::Target::None)
        return execute_job(job); // answered by the controller from memory: never blocks
    CommandBuffer buffer(*job.memory, job.ranges, job.buffer_bytes);
    return job.unit->execute_nowait(job.command, buffer.get());
}

void StorvspController::complete_job(Job& job, const scsi::ScsiOutcome& outcome, bool on_worker)
{
    if (outcome.host_error)
        log_warn("storvsp", "{}: LUN {}: {}", m_options.name, job.srb.lun, outcome.host_error->message());

    Reply reply {vmbus_wire::packet_type_completion, job.trans_id, completion_packet(wire::status_success)};
    auto& srb = reply.packet.srb;
    srb = job.srb;
    srb.scsi_status = static_cast<uint8_t>(outcome.status);
    srb.data_transfer_length = static_cast<uint32_t>(std::min<uint64_t>(outcome.transferred, job.buffer_bytes));
    if (outcome.good()) {
        srb.srb_status = outcome.buffer_too_small ? wire::srb_status_data_overrun : wire::srb_status_success;
        srb.sense_info_length = 0;
    } else if (outcome.status == scsi::ScsiStatus::CheckCondition) {
        // Autosense: the sense bytes replace the CDB in the reply, up to the guest's sense buffer.
        size_t room = std::min<size_t>(job.srb.sense_info_length, wire::sense_buffer_size);
        size_t length = std::min(room, outcome.sense.bytes.size());
        std::memset(srb.cdb_or_sense, 0, sizeof(srb.cdb_or_sense));
        std::memcpy(srb.cdb_or_sense, outcome.sense.bytes.data(), length);
        srb.sense_info_length = static_cast<uint8_t>(length);
        srb.srb_status = static_cast<uint8_t>(wire::srb_status_error |
                                              (length > 0 ? wire::srb_status_autosense_valid : 0));
    } else {
        srb.srb_status = wire::srb_status_error; // BUSY, RESERVATION CONFLICT, ...: the SCSI status says which
        srb.sense_info_length = 0;
    }

    std::lock_guard lock(m_mutex);
    if (job.command.direction == DataDirection::In)
        m_stats.bytes_read += srb.data_transfer_length;
    else if (job.command.direction == DataDirection::Out)
        m_stats.bytes_written += srb.data_transfer_length;
    ++m_stats.completions;
    if (on_worker)
        ++m_stats.worker_commands; // counted before the guest can see the completion
    if (job.completion_requested) {
        // Mask the guest's signals before it can see the completion: its next command then rides on the poll.
        if (m_channel != nullptr)
            m_channel->poll_for_packets(m_options.poll_window);
        send_or_defer_locked(std::move(reply));
    }
    if (job.busy)
        job.busy->fetch_sub(1);
    bool was_full = m_in_flight == m_options.max_in_flight;
    --m_in_flight;
    if (was_full && m_channel != nullptr)
        m_channel->request_drain(); // the worker stopped reading the ring at the limit
    m_cv.notify_all();
}

} // namespace vmgen::vm::storvsp
