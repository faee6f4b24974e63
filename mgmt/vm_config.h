// A virtual machine's stored settings (config.json, "version": 1) and their JSON form.
//
// Loading is strict: a truncated file, a wrong version, a missing field or a field of the wrong type is an
// error naming the file and the field ("config /x/config.json: field 'memory_bytes' is not a number").
// Two fields are optional (added later within version 1):
//   "integration_services": a file without it gets Hyper-V's defaults; when present, all six services must be
//     there as booleans.
//   "scsi": {"controllers": N, "drives": [{"type": "HardDisk"|"DvdDrive", "controller": C, "location": L,
//     "path": "/abs/image", "read_only": bool}, ...]}: a file without it gets Hyper-V's default (generation 2:
//     one controller, generation 1: none) and no drives; when present every key is required and the layout is
//     checked (validate_scsi_layout: at most 4 controllers, locations 0-63, one drive per location, absolute
//     paths). Image files are not opened when a config is read.
#pragma once

#include "support/result.h"
#include "vmm/machine_config.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vmgen::mgmt {

constexpr int config_version = 1;

struct VmConfig {
    std::string name;
    std::string id;      // random UUID, fixed at creation
    std::string created; // UTC, ISO 8601 ("2024-05-01T12:00:00Z")
    vmm::Generation generation = vmm::Generation::One;
    uint64_t memory_bytes = 512ull << 20;
    unsigned processors = 1;
    std::string kernel; // absolute path or empty
    std::string initrd; // absolute path or empty
    std::string cmdline;
    std::array<vmm::SerialPortConfig, 2> com{}; // COM1, COM2
    vmm::ResetAction on_reset = vmm::ResetAction::Restart;
    vmm::IntegrationServices integration_services{}; // Hyper-V's defaults: all on but the Guest Service Interface
    unsigned scsi_controllers = 0;                   // new-vm: default_scsi_controllers(generation)
    std::vector<vmm::ScsiDriveConfig> scsi_drives;   // sorted by controller, then location
};

// The JSON text written to config.json (pretty-printed, trailing newline).
std::string serialize_vm_config(const VmConfig& config);

// Parses config.json text. `file` names the file in errors; `folder_name` is the VM folder's name, which
// the stored name must match.
Result<VmConfig> parse_vm_config(std::string_view text, std::string_view file, std::string_view folder_name);

vmm::MachineConfig to_machine_config(const VmConfig& config);

// A random (version 4) UUID: "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".
std::string new_uuid();
[[nodiscard]] bool is_uuid(std::string_view text);
// The current time as UTC ISO 8601 with seconds ("2024-05-01T12:00:00Z").
std::string utc_now_iso8601();

} // namespace vmgen::mgmt
