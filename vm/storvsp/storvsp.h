// StorvspController: a Hyper-V synthetic SCSI controller on VMBus (the host end, "storvsp") with up to 64
// logical units (disks, DVD drives) from vm/scsi, driven the way Linux 6.1's storvsc drives it (wire format and
// exchange in protocols/vmbus/storvsp.h).
//
// Addressing: every LUN sits at path 0, target 0; the LUN number is the controller location (0..63), as on
// Hyper-V. Linux scans 8 channels x 2 targets: INQUIRY to an address without a LUN answers "no logical unit"
// (peripheral qualifier 3) with success, REPORT LUNS at path 0 / target 0 lists the attached LUNs whatever LUN
// it is sent to, and any other command to an empty address gets SRB_STATUS_INVALID_LUN, which makes Linux drop
// a device that was hot-removed.
//
// I/O: the channel's worker parses each EXECUTE_SRB, checks it (packet size, CDB length, direction, the GPA
// ranges against guest RAM and against data_transfer_length) and collects the SRBs of one burst (what it reads
// before the ring is empty). Then it hands them to the controller's I/O threads at once, which run
// ScsiLun::execute with the guest's pages as the data buffer (zero-copy) and send the completion themselves:
// each transfer of 256 KiB or more wakes a thread of its own, shorter ones share one wake-up, and a thread that
// is about to block on the storage (ScsiLun::execute_nowait declined) wakes another first, so commands that wait
// for the disk overlap. A burst of one command while nothing else is in flight (a guest waiting for each
// command) the worker first tries itself with ScsiLun::execute_nowait (page-cache reads, buffered writes), which
// saves the hand-off to another thread; what would block still goes to an I/O thread. Up to max_in_flight
// commands run at once; beyond that the worker stops reading the ring until one completes. A completion that finds the host -> guest ring full waits in a queue flushed on the guest's next
// signal, before any new request is read. FUA and SYNCHRONIZE CACHE reach stable storage before their
// completion is sent (ScsiDisk flushes the BlockDevice).
//
// Hostile guests: malformed packets (too short, unknown operation, out of order) are answered with a failure
// status where a completion was requested and logged (rate-limited); bad SRBs get SRB_STATUS_INVALID_REQUEST,
// bad CDBs CHECK CONDITION with sense (vm/scsi). Nothing a guest sends can crash the host or reach memory
// outside its RAM.
//
// Threads: attach/detach/lun/luns/stats from any thread; the vmbus::Device hooks as device.h says.
#pragma once

#include "protocols/vmbus/channel_messages.h"
#include "protocols/vmbus/storvsp.h"
#include "support/result.h"
#include "vm/scsi/scsi_lun.h"
#include "vm/vmbus/device.h"

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace vmgen::vm::storvsp {

// The SCSI controller's VMBus class (HV_SCSI_GUID): Linux binds hv_storvsc to it.
inline constexpr vmbus::Guid scsi_class_id = protocols::vmbus::guid("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f");
inline constexpr unsigned max_luns = protocols::vmbus::storvsp::max_luns_per_controller;

struct ControllerOptions {
    vmbus::Guid instance_id {}; // unique per controller in a VM
    std::string name = "scsi";  // for logs ("scsi0")
    // Commands that wait for the storage run on up to this many threads at once (cached reads and buffered writes
    // complete on the few threads already awake). 16 measured best for 1 MiB transfers at queue depth 32 on the
    // development machine (docs/performance.md, "Synthetic SCSI"); QEMU's thread pool allows 64.
    unsigned io_threads = 16;
    // Advertised in QUERY_PROPERTIES; Linux caps each request at it (max_hw_sectors_kb). Should match the LUNs'
    // ScsiDiskOptions::max_transfer_bytes.
    uint32_t max_transfer_bytes = 2u << 20;
    size_t max_in_flight = 256;
    // After sending a completion the channel's worker polls the guest -> host ring this long (with the guest's
    // signals masked), so a guest that answers a completion with its next command at once needs no VM exit for
    // it (Channel::poll_for_packets). 0 turns polling off. Costs host CPU up to this long per completion burst;
    // 50 us measured best on the development machine (docs/performance.md, "Synthetic SCSI").
    std::chrono::microseconds poll_window {50};
    // Lets the channel's worker complete a lone command that cannot block itself (see above). Off: every
    // command goes through an I/O thread.
    bool worker_executes = true;
};

struct ControllerStats {
    uint16_t protocol_version = 0; // negotiated, 0 before
    bool ready = false;            // END_INITIALIZATION done on the open channel
    uint64_t commands = 0;         // EXECUTE_SRB packets accepted
    uint64_t completions = 0;      // EXECUTE_SRB completions sent
    uint64_t bytes_read = 0;       // Data-In bytes moved to the guest
    uint64_t bytes_written = 0;    // Data-Out bytes taken from the guest
    uint64_t invalid_requests = 0; // malformed packets and SRBs
    uint64_t resets = 0;           // RESET_BUS / RESET_ADAPTER / RESET_LUN
    uint64_t rescans = 0;          // ENUMERATE_BUS sent to the guest
    uint64_t deferred = 0;         // completions that found the ring full
    uint64_t worker_commands = 0;  // commands the channel's worker completed itself (without an I/O thread)
};

class StorvspController final : public vmbus::Device {
public:
    static Result<std::unique_ptr<StorvspController>> create(ControllerOptions options);
    ~StorvspController() override;
    StorvspController(const StorvspController&) = delete;
    StorvspController& operator=(const StorvspController&) = delete;

    // Host side: attaches `unit` at location `lun` (< 64, free) and, if the guest's storvsc is ready, tells it
    // to rescan (ENUMERATE_BUS). Works while the guest runs (hot add).
    [[nodiscard]] Result<void> attach(unsigned lun, std::shared_ptr<scsi::ScsiLun> unit);
    // Hot removal: new commands to `lun` get SRB_STATUS_INVALID_LUN; returns once the commands already executing
    // on it have completed, with the unit (the caller may close its image then). Tells a ready guest to rescan.
    [[nodiscard]] Result<std::shared_ptr<scsi::ScsiLun>> detach(unsigned lun);
    [[nodiscard]] std::shared_ptr<scsi::ScsiLun> lun(unsigned lun) const;
    [[nodiscard]] std::vector<unsigned> attached_luns() const; // ascending
    [[nodiscard]] ControllerStats stats() const;
    [[nodiscard]] const ControllerOptions& options() const { return m_options; }

    // vmbus::Device
    [[nodiscard]] const vmbus::DeviceOffer& offer() const override { return m_offer; }
    [[nodiscard]] Result<void> on_open(vmbus::Channel& channel) override;
    vmbus::PacketAction on_packet(vmbus::Channel& channel, const vmbus::Packet& packet) override;
    void on_wake(vmbus::Channel& channel) override;
    void on_drained(vmbus::Channel& channel) override;
    void on_close(vmbus::Channel& channel) override;
    void reset() override;

private:
    struct Job;
    struct Reply {
        uint16_t type = 0;
        uint64_t trans_id = 0;
        protocols::vmbus::storvsp::VstorPacket packet {};
    };
    enum class State { Closed, WaitBegin, WaitVersion, WaitProperties, WaitEnd, Ready };

    explicit StorvspController(ControllerOptions options);

    // Worker side (on_packet), with m_mutex held.
    void handle_control(const vmbus::Packet& packet, const protocols::vmbus::storvsp::VstorPacket& request,
                        bool completion);
    vmbus::PacketAction handle_srb(vmbus::Channel& channel, const vmbus::Packet& packet,
                                   const protocols::vmbus::storvsp::VstorPacket& request, bool completion);
    vmbus::PacketAction handle_reset(std::unique_lock<std::mutex>& lock, const vmbus::Packet& packet,
                                     const protocols::vmbus::storvsp::VstorPacket& request, bool completion);
    void guest_error(std::string_view what);

    // Sends a reply, or queues it when the ring is full (sent by on_wake / the next on_packet). m_mutex held.
    void send_or_defer_locked(Reply reply);
    // Sends queued replies; true if none is left. m_mutex held.
    bool flush_deferred_locked();
    void notify_rescan();

    // Queues the burst's jobs for the I/O threads. m_mutex held.
    void hand_off_batch_locked();

    // I/O threads (and the worker, for a lone job that cannot block).
    void io_thread();
    scsi::ScsiOutcome execute_job(Job& job);
    std::optional<scsi::ScsiOutcome> execute_job_nowait(Job& job);
    // Sends the completion and retires the job (takes m_mutex); on_worker: the channel's worker executed it.
    void complete_job(Job& job, const scsi::ScsiOutcome& outcome, bool on_worker = false);

    const ControllerOptions m_options;
    vmbus::DeviceOffer m_offer;

    mutable std::mutex m_luns_mutex;
    struct Slot {
        std::shared_ptr<scsi::ScsiLun> unit;
        std::shared_ptr<std::atomic<uint32_t>> busy; // commands executing on this unit
    };
    std::array<Slot, max_luns> m_luns {};

    mutable std::mutex m_mutex; // below
    std::condition_variable m_cv;      // m_in_flight or a unit's busy count went down
    std::condition_variable m_jobs_cv; // m_jobs or m_stopping changed
    vmbus::Channel* m_channel = nullptr;
    State m_state = State::Closed;
    uint16_t m_version = 0;
    std::deque<Reply> m_deferred;
    std::vector<std::unique_ptr<Job>> m_batch; // the burst the worker is reading (on_drained hands it on)
    std::deque<std::unique_ptr<Job>> m_jobs;    // waiting for an I/O thread
    size_t m_in_flight = 0; // jobs in m_batch, queued or executing
    bool m_stopping = false;
    ControllerStats m_stats;
    uint32_t m_warnings_left = 32;
    std::vector<std::thread> m_threads;
};

} // namespace vmgen::vm::storvsp
