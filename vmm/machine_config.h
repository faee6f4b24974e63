// What a machine is built from. Filled by the CLI from a VM's stored config or from `vmgen run` flags.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace vmgen::vmm {

enum class Generation : int { One = 1, Two = 2 };

// Where a COM port's bytes go. Generation 1 always has COM1 and COM2 (disconnected when None);
// in a generation 2 virtual machine a COM port exists only when its kind is not None.
struct SerialPortConfig {
    enum class Kind { None, Stdio, File, UnixSocket };
    Kind kind = Kind::None;
    std::string path; // File: output file (appended); UnixSocket: socket path the VMM listens on
};

// Per-VM integration services (Hyper-V's Enable-/Disable-VMIntegrationService), with Hyper-V's defaults:
// everything on except the Guest Service Interface. A disabled service's VMBus channel is not offered.
struct IntegrationServices {
    bool guest_service_interface = false;
    bool heartbeat = true;
    bool key_value_pair_exchange = true;
    bool shutdown = true;
    bool time_synchronization = true;
    bool vss = true;
};

// Synthetic SCSI storage (Hyper-V's SCSI controllers on VMBus, vm/storvsp): up to 4 controllers per virtual
// machine, each with up to 64 locations (the LUN numbers) holding a hard disk or a DVD drive.
inline constexpr unsigned max_scsi_controllers = 4;
inline constexpr unsigned max_scsi_locations = 64;

struct ScsiDriveConfig {
    enum class Kind { HardDisk, Dvd };
    Kind kind = Kind::HardDisk;
    unsigned controller = 0; // < MachineConfig::scsi_controllers
    unsigned location = 0;   // < max_scsi_locations, unique per controller
    // HardDisk: the image (raw, VHD or VHDX by extension). Dvd: an ISO image, or empty for a drive with no media.
    std::string path;
    bool read_only = false; // HardDisk only (a DVD is always read-only)

    friend bool operator==(const ScsiDriveConfig&, const ScsiDriveConfig&) = default;
};

// What the VMM does when the guest resets the machine.
enum class ResetAction { Restart, Exit };

struct MachineConfig {
    Generation generation = Generation::Two;
    uint64_t memory_bytes = 512ull << 20;
    unsigned processors = 1;
    std::string kernel_path; // bzImage or PVH ELF
    std::string initrd_path; // optional
    std::string cmdline;
    std::array<SerialPortConfig, 2> com{}; // COM1, COM2
    ResetAction on_reset = ResetAction::Restart;
    IntegrationServices integration_services{};
    // Identifies the virtual machine (the stored VM's UUID; empty for a throwaway VM): the SCSI controllers'
    // VMBus instance ids and the disks' serial numbers are derived from it, so they stay the same across runs.
    std::string vm_id;
    // SCSI controllers on VMBus (both generations have VMBus here). Hyper-V gives a new generation 2 VM one and
    // a generation 1 VM none; the CLI applies that default, this struct does not. At most max_scsi_controllers.
    unsigned scsi_controllers = 0;
    std::vector<ScsiDriveConfig> scsi_drives;
    // Offers the diagnostic VMBus echo device (vm/vmbus/echo_device.h) too: for ring benchmarks and tests.
    bool vmbus_echo_device = false;
};

} // namespace vmgen::vmm
