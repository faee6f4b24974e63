// ScsiStorage: a machine's synthetic SCSI controllers (vm/storvsp) and the drives on them, kept for the machine's
// whole life. KvmMachine rebuilds its VMBus server on every guest reset; the controllers and their LUNs outlive
// each server and are offered again on the next one (connect/disconnect).
//
//   auto storage = TRY(ScsiStorage::create(config));  // opens every image, attaches every drive
//   TRY(storage->connect(server));                      // offers the controllers on this boot's VMBus
//   ...hot plug from any thread: add_drive, remove_drive, set_dvd_media, add_controller...
//   storage->disconnect();                              // before the server goes away
//   server.reset();
//   storage->reset_controllers();                       // the guest is gone: forget its per-guest state
//
// Identity: controller N's VMBus instance id and each drive's INQUIRY identity (VPD 80h/83h) are derived from
// MachineConfig::vm_id, the controller number and the location, so a guest sees the same devices on every run.
//
// Images are locked while attached (vm/disk/image_lock.h): a writable disk exclusively, a read-only disk and an
// inserted ISO shared, so another VM or program cannot write them meanwhile.
//
// Threads: every public call may come from any thread. Hot-plug calls are serialised by one lock; the lock is
// never held by a guest's I/O thread (a guest eject records itself in a per-drive leaf lock), so removing a drive
// may wait for its in-flight commands under it.
#pragma once

#include "support/result.h"
#include "vm/disk/image_lock.h"
#include "vmm/machine_config.h"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace vmgen::vm::scsi {
class ScsiDvd;
class ScsiLun;
} // namespace vmgen::vm::scsi

namespace vmgen::vm::storvsp {
class StorvspController;
} // namespace vmgen::vm::storvsp

namespace vmgen::vm::vmbus {
class VmbusServer;
} // namespace vmgen::vm::vmbus

namespace vmgen::vmm {

class ScsiStorage {
public:
    // Creates config.scsi_controllers controllers and attaches config.scsi_drives. Errors name the drive
    // ("SCSI 0:3: ...") and leave nothing open.
    static Result<std::unique_ptr<ScsiStorage>> create(const MachineConfig& config);
    ~ScsiStorage();
    ScsiStorage(const ScsiStorage&) = delete;
    ScsiStorage& operator=(const ScsiStorage&) = delete;

    // Offers every controller on `server`, and controllers added later too, until disconnect(). On failure the
    // storage is disconnected and the server should be discarded.
    [[nodiscard]] Result<void> connect(vm::vmbus::VmbusServer& server);
    // Stops using the server (call before destroying it; the server closes the controllers' channels).
    void disconnect();
    // The guest that used the controllers is gone (after the server was destroyed): Device::reset on each.
    void reset_controllers();

    [[nodiscard]] Result<void> add_drive(const ScsiDriveConfig& drive);
    [[nodiscard]] Result<void> remove_drive(unsigned controller, unsigned location);
    [[nodiscard]] Result<void> set_dvd_media(unsigned controller, unsigned location, const std::string& path);
    [[nodiscard]] Result<unsigned> add_controller();
    [[nodiscard]] std::vector<ScsiDriveConfig> drives() const;
    [[nodiscard]] unsigned controller_count() const;
    // For tests and diagnostics; null when there is no such controller.
    [[nodiscard]] vm::storvsp::StorvspController* controller(unsigned number) const;

private:
    // A DVD drive's media path, also written by the guest's I/O thread when the guest ejects (leaf lock: nothing
    // is called with it held but ScsiDvd itself).
    struct DvdState {
        std::mutex mutex;
        std::string path;
        vm::disk::ImageLock media_lock; // the inserted ISO's
        std::weak_ptr<vm::scsi::ScsiDvd> dvd;
    };
    struct Drive {
        ScsiDriveConfig config;
        vm::disk::ImageLock lock; // hard disks: the image's
        std::shared_ptr<vm::scsi::ScsiLun> unit;
        std::shared_ptr<vm::scsi::ScsiDvd> dvd; // DVD drives: the same object as unit
        std::shared_ptr<DvdState> dvd_state; // DVD drives
    };
    struct Controller {
        std::unique_ptr<vm::storvsp::StorvspController> device;
        uint32_t relid = 0; // on the connected server; 0 when not offered
    };

    explicit ScsiStorage(std::string vm_id);
    // Builds the LUN for `drive` (opens its image) without touching the controllers.
    Result<Drive> make_drive(const ScsiDriveConfig& drive, uint32_t max_transfer_bytes) const;
    // Checks the address against the controllers and the attached drives; needs m_mutex held.
    Result<void> check_free_locked(const ScsiDriveConfig& drive) const;
    Result<void> add_controller_locked();

    const std::string m_vm_id;
    mutable std::mutex m_mutex; // everything below
    std::vector<Controller> m_controllers;
    std::map<std::pair<unsigned, unsigned>, Drive> m_drives; // by (controller, location)
    vm::vmbus::VmbusServer* m_server = nullptr;
};

} // namespace vmgen::vmm
