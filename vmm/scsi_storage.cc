#include "vmm/scsi_storage.h"

#include "support/log.h"
#include "vm/disk/disk_ops.h"
#include "vm/disk/raw/raw_disk.h"
#include "vm/scsi/scsi_disk.h"
#include "vm/scsi/scsi_dvd.h"
#include "vm/storvsp/storvsp.h"
#include "vm/vmbus/server.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace vmgen::vmm {
namespace {

// FNV-1a, 64 bits: a stable (not secret) mix of the VM's id and a drive's address.
uint64_t fnv1a(std::string_view text, uint64_t hash = 0xcbf29ce484222325ull)
{
    for (char c : text) {
        hash ^= static_cast<uint8_t>(c);
        hash *= 0x100000001b3ull;
    }
    return hash;
}

void put_le64(std::span<uint8_t> out, uint64_t value)
{
    for (size_t i = 0; i < 8 && i < out.size(); ++i)
        out[i] = static_cast<uint8_t>(value >> (8 * i));
}

// Controller N of a VM: a fixed prefix, 4 bytes of the VM id's hash and the controller number, so the guest
// sees the same instance id on every run and distinct ones per controller.
vm::vmbus::Guid controller_instance_id(const std::string& vm_id, unsigned number)
{
    auto id = protocols::vmbus::guid("5c51d1e0-7a3e-4d2b-8c00-000000000000");
    uint64_t hash = fnv1a(vm_id);
    for (size_t i = 0; i < 4; ++i)
        id.bytes[10 + i] = static_cast<uint8_t>(hash >> (8 * i));
    id.bytes[15] = static_cast<uint8_t>(number);
    return id;
}

// The identity a drive reports in INQUIRY (VPD 80h serial and 83h designators): from the VM, controller and
// location.
vm::scsi::LunIdentity drive_identity(const std::string& vm_id, const ScsiDriveConfig& drive)
{
    vm::scsi::LunIdentity identity;
    identity.product = drive.kind == ScsiDriveConfig::Kind::HardDisk ? "Virtual Disk" : "Virtual DVD-ROM";
    auto address = fmt::format("/scsi/{}/{}", drive.controller, drive.location);
    put_le64(std::span(identity.id).first(8), fnv1a(address, fnv1a(vm_id)));
    put_le64(std::span(identity.id).subspan(8), fnv1a(vm_id, fnv1a(address)));
    return identity; // serial: the id in hexadecimal
}

std::string drive_name(unsigned controller, unsigned location)
{
    return fmt::format("SCSI {}:{}", controller, location);
}

std::string_view kind_name(ScsiDriveConfig::Kind kind)
{
    return kind == ScsiDriveConfig::Kind::HardDisk ? "hard disk" : "DVD drive";
}

// The file behind a path, for "attached twice" checks (the path itself when it cannot be resolved).
std::string canonical_path(const std::string& path)
{
    std::error_code ec;
    auto resolved = std::filesystem::weakly_canonical(path, ec);
    return ec ? path : resolved.string();
}

struct LockedMedia {
    vm::disk::ImageLock lock;
    std::unique_ptr<vm::disk::BlockDevice> media;
};

Result<LockedMedia> open_iso(const std::string& path)
{
    if (path.empty())
        return fail("no ISO image given");
    LockedMedia out;
    out.lock = TRY_CTX(vm::disk::lock_image(path, vm::disk::LockMode::Shared), "ISO image '{}'", path);
    out.media = TRY_CTX(vm::disk::open_raw(path, /*read_only=*/true), "ISO image '{}'", path);
    return out;
}

} // namespace

Result<std::unique_ptr<ScsiStorage>> ScsiStorage::create(const MachineConfig& config)
{
    if (config.scsi_controllers > max_scsi_controllers)
        return fail("{} SCSI controllers requested; a virtual machine has at most {}", config.scsi_controllers,
                    max_scsi_controllers);
    auto storage = std::unique_ptr<ScsiStorage>(new ScsiStorage(config.vm_id));
    {
        std::lock_guard lock(storage->m_mutex);
        for (unsigned i = 0; i < config.scsi_controllers; ++i)
            TRY(storage->add_controller_locked());
    }
    for (const auto& drive : config.scsi_drives)
        TRY(storage->add_drive(drive));
    return storage;
}

ScsiStorage::ScsiStorage(std::string vm_id)
    : m_vm_id(std::move(vm_id))
{
}

ScsiStorage::~ScsiStorage()
{
    // The controllers first: their I/O threads stop, then the drives close their images.
    std::lock_guard lock(m_mutex);
    m_controllers.clear();
    m_drives.clear();
}

Result<void> ScsiStorage::add_controller_locked()
{
    auto number = static_cast<unsigned>(m_controllers.size());
    if (number >= max_scsi_controllers)
        return fail("a virtual machine has at most {} SCSI controllers", max_scsi_controllers);
    vm::storvsp::ControllerOptions options;
    options.instance_id = controller_instance_id(m_vm_id, number);
    options.name = fmt::format("scsi{}", number);
    // Tuning knobs for benchmarks (docs/performance.md): how long a controller's worker polls for the guest's next
    // command after a completion, in microseconds; whether the worker completes lone commands itself (0: no).
    if (const char* poll = std::getenv("VMGEN_STORVSP_POLL_US"); poll != nullptr && *poll != '\0')
        options.poll_window = std::chrono::microseconds(std::strtoul(poll, nullptr, 10));
    if (const char* threads = std::getenv("VMGEN_STORVSP_IO_THREADS"); threads != nullptr && *threads != '\0')
        options.io_threads = static_cast<unsigned>(std::strtoul(threads, nullptr, 10));
    if (const char* on = std::getenv("VMGEN_STORVSP_WORKER_EXECUTES"); on != nullptr && *on != '\0')
        options.worker_executes = std::strcmp(on, "0") != 0;
    Controller controller;
    controller.device
        = TRY_CTX(vm::storvsp::StorvspController::create(std::move(options)), "creating SCSI controller {}", number);
    if (m_server != nullptr)
        controller.relid = TRY_CTX(m_server->add_device(*controller.device), "offering SCSI controller {}", number);
    m_controllers.push_back(std::move(controller));
    return {};
}

Result<unsigned> ScsiStorage::add_controller()
{
    std::lock_guard lock(m_mutex);
    TRY(add_controller_locked());
    auto number = static_cast<unsigned>(m_controllers.size() - 1);
    log_info("vmm", "SCSI controller {} added", number);
    return number;
}

Result<void> ScsiStorage::check_free_locked(const ScsiDriveConfig& drive) const
{
    if (drive.controller >= m_controllers.size()) {
        if (m_controllers.empty())
            return fail("SCSI controller {} does not exist: the virtual machine has no SCSI controller",
                        drive.controller);
        return fail("SCSI controller {} does not exist: the virtual machine has {} (0-{})", drive.controller,
                    m_controllers.size(), m_controllers.size() - 1);
    }
    if (drive.location >= max_scsi_locations)
        return fail("location {} is out of range: a SCSI controller has locations 0-{}", drive.location,
                    max_scsi_locations - 1);
    if (auto it = m_drives.find({drive.controller, drive.location}); it != m_drives.end())
        return fail("location {} of SCSI controller {} already holds a {}", drive.location, drive.controller,
                    kind_name(it->second.config.kind));
    // One image behind two writable disks would be corrupted by the two caches.
    if (drive.kind == ScsiDriveConfig::Kind::HardDisk) {
        auto file = canonical_path(drive.path);
        for (const auto& [address, other] : m_drives) {
            if (other.config.kind != ScsiDriveConfig::Kind::HardDisk || canonical_path(other.config.path) != file)
                continue;
            if (!drive.read_only || !other.config.read_only)
                return fail("the image '{}' is already attached at {}", drive.path,
                            drive_name(address.first, address.second));
        }
    }
    return {};
}

Result<ScsiStorage::Drive> ScsiStorage::make_drive(const ScsiDriveConfig& config, uint32_t max_transfer) const
{
    Drive drive;
    drive.config = config;
    auto identity = drive_identity(m_vm_id, config);
    if (config.kind == ScsiDriveConfig::Kind::HardDisk) {
        if (config.path.empty())
            return fail("a hard disk needs an image");
        // Locked before it is opened: another writer must not be halfway through a change.
        auto mode = config.read_only ? vm::disk::LockMode::Shared : vm::disk::LockMode::Exclusive;
        drive.lock = TRY_CTX(vm::disk::lock_image(config.path, mode), "hard disk image '{}'", config.path);
        auto image = TRY_CTX(vm::disk::open_disk(config.path, config.read_only), "hard disk image '{}'", config.path);
        vm::scsi::ScsiDiskOptions options;
        options.identity = std::move(identity);
        options.read_only = config.read_only;
        options.max_transfer_bytes = max_transfer;
        options.lun = static_cast<uint16_t>(config.location);
        drive.unit
            = TRY_CTX(vm::scsi::ScsiDisk::create(std::move(image), std::move(options)), "image '{}'", config.path);
        return drive;
    }
    drive.config.read_only = true;
    auto state = std::make_shared<DvdState>();
    vm::scsi::ScsiDvdOptions options;
    options.identity = std::move(identity);
    options.lun = static_cast<uint16_t>(config.location);
    // On the guest's I/O thread: the drive is empty now, unless the host inserted other media meanwhile.
    options.on_guest_eject = [state, name = drive_name(config.controller, config.location)] {
        std::lock_guard lock(state->mutex);
        auto dvd = state->dvd.lock();
        if (dvd && dvd->has_media())
            return;
        log_info("vmm", "{}: the guest ejected '{}'", name, state->path);
        state->path.clear();
        state->media_lock = {};
    };
    auto dvd = std::make_shared<vm::scsi::ScsiDvd>(std::move(options));
    if (!config.path.empty()) {
        auto iso = TRY(open_iso(config.path));
        TRY_CTX(dvd->change_media(std::move(iso.media)), "ISO image '{}'", config.path);
        state->media_lock = std::move(iso.lock);
    }
    state->path = config.path;
    state->dvd = dvd;
    drive.dvd = dvd;
    drive.dvd_state = std::move(state);
    drive.unit = std::move(dvd);
    return drive;
}

Result<void> ScsiStorage::add_drive(const ScsiDriveConfig& config)
{
    auto result = [&]() -> Result<void> {
        uint32_t max_transfer = 0;
        {
            std::lock_guard lock(m_mutex);
            TRY(check_free_locked(config));
            max_transfer = m_controllers[config.controller].device->options().max_transfer_bytes;
        }
        // Opening an image can take a while (a VHDX log replay): not under the lock.
        auto drive = TRY(make_drive(config, max_transfer));
        std::lock_guard lock(m_mutex);
        TRY(check_free_locked(config)); // a concurrent add may have taken the location meanwhile
        auto& controller = *m_controllers[config.controller].device;
        TRY(controller.attach(config.location, drive.unit));
        m_drives.emplace(std::pair{config.controller, config.location}, std::move(drive));
        return {};
    }();
    if (!result)
        return fail("{}: {}", drive_name(config.controller, config.location), result.error().message());
    log_info("vmm", "{}: {} '{}' attached{}", drive_name(config.controller, config.location), kind_name(config.kind),
             config.path, config.read_only ? " (read-only)" : "");
    return {};
}

Result<void> ScsiStorage::remove_drive(unsigned controller, unsigned location)
{
    std::lock_guard lock(m_mutex);
    auto it = m_drives.find({controller, location});
    if (it == m_drives.end())
        return fail("{}: no drive is attached there", drive_name(controller, location));
    // Waits for the commands executing on the drive; then the last references to the image go away with `it`.
    auto detached = m_controllers[controller].device->detach(location);
    if (!detached)
        return fail("{}: {}", drive_name(controller, location), detached.error().message());
    log_info("vmm", "{}: {} '{}' removed", drive_name(controller, location), kind_name(it->second.config.kind),
             it->second.config.path);
    m_drives.erase(it);
    return {};
}

Result<void> ScsiStorage::set_dvd_media(unsigned controller, unsigned location, const std::string& path)
{
    std::shared_ptr<vm::scsi::ScsiDvd> dvd;
    std::shared_ptr<DvdState> state;
    {
        std::lock_guard lock(m_mutex);
        auto it = m_drives.find({controller, location});
        if (it == m_drives.end())
            return fail("{}: no drive is attached there", drive_name(controller, location));
        if (!it->second.dvd)
            return fail("{} holds a hard disk, not a DVD drive", drive_name(controller, location));
        dvd = it->second.dvd;
        state = it->second.dvd_state;
    }
    LockedMedia iso;
    if (!path.empty()) {
        auto opened = open_iso(path);
        if (!opened)
            return fail("{}: {}", drive_name(controller, location), opened.error().message());
        iso = std::move(*opened);
    }
    std::lock_guard lock(state->mutex);
    if (auto changed = dvd->change_media(std::move(iso.media)); !changed)
        return fail("{}: ISO image '{}': {}", drive_name(controller, location), path, changed.error().message());
    state->path = path;
    state->media_lock = std::move(iso.lock); // the previous medium's lock goes
    log_info("vmm", "{}: DVD media {}", drive_name(controller, location),
             path.empty() ? std::string("ejected") : fmt::format("'{}' inserted", path));
    return {};
}

std::vector<ScsiDriveConfig> ScsiStorage::drives() const
{
    std::lock_guard lock(m_mutex);
    std::vector<ScsiDriveConfig> out;
    out.reserve(m_drives.size());
    for (const auto& [address, drive] : m_drives) {
        out.push_back(drive.config);
        if (drive.dvd_state) {
            std::lock_guard state_lock(drive.dvd_state->mutex);
            out.back().path = drive.dvd_state->path;
        }
    }
    return out;
}

unsigned ScsiStorage::controller_count() const
{
    std::lock_guard lock(m_mutex);
    return static_cast<unsigned>(m_controllers.size());
}

vm::storvsp::StorvspController* ScsiStorage::controller(unsigned number) const
{
    std::lock_guard lock(m_mutex);
    return number < m_controllers.size() ? m_controllers[number].device.get() : nullptr;
}

Result<void> ScsiStorage::connect(vm::vmbus::VmbusServer& server)
{
    std::lock_guard lock(m_mutex);
    m_server = &server;
    for (size_t i = 0; i < m_controllers.size(); ++i) {
        auto relid = server.add_device(*m_controllers[i].device);
        if (!relid) {
            m_server = nullptr;
            for (auto& controller : m_controllers)
                controller.relid = 0;
            return fail("offering SCSI controller {}: {}", i, relid.error().message());
        }
        m_controllers[i].relid = *relid;
    }
    return {};
}

void ScsiStorage::disconnect()
{
    std::lock_guard lock(m_mutex);
    m_server = nullptr;
    for (auto& controller : m_controllers)
        controller.relid = 0;
}

void ScsiStorage::reset_controllers()
{
    std::lock_guard lock(m_mutex);
    for (auto& controller : m_controllers)
        controller.device->reset();
}

} // namespace vmgen::vmm
