// SCSI storage settings as users give them: controller numbers and locations, hard disk and ISO image paths,
// the drive specs of `vmgen run` (--scsi-disk, --dvd), and the layout rules (Hyper-V's limits: 4 controllers,
// locations 0-63, one drive per location) checked by the CLI, `run` and the config loader.
#pragma once

#include "support/result.h"
#include "vmm/machine_config.h"

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vmgen::mgmt {

using ScsiDriveKind = vmm::ScsiDriveConfig::Kind;

// Hyper-V: a new generation 2 virtual machine has one SCSI controller, a generation 1 virtual machine none.
[[nodiscard]] unsigned default_scsi_controllers(vmm::Generation generation);

// "HardDisk" / "DvdDrive": config.json's "type" and the control socket's.
std::string_view to_string(ScsiDriveKind kind);
Result<ScsiDriveKind> parse_drive_kind(std::string_view text);

// A decimal controller number 0-3 / location 0-63.
Result<unsigned> parse_controller_number(std::string_view text);
Result<unsigned> parse_controller_location(std::string_view text);

// An existing, readable hard disk image (regular file or block device); returns its absolute path.
Result<std::string> resolve_disk_image(std::string_view path);
// An ISO image path for a DVD drive: "" or "none" (any case) is an empty drive (""), anything else must be an
// existing readable file; returns its absolute path.
Result<std::string> resolve_iso_image(std::string_view path);
// Opens the image the way the machine will (read-only, so nothing in it changes), checks that no other VM or
// program holds a conflicting image lock (vm/disk/image_lock.h) and, for a writable disk, that the file is
// writable: "the image must exist and open" before config.json refers to it.
Result<void> check_disk_image(const std::string& path, bool read_only);
Result<void> check_iso_image(const std::string& path);

// `vmgen run` drive specs. Hard disk: PATH[,controller=N][,location=N][,read-only]. DVD:
// [PATH][,controller=N][,location=N] where PATH "none" or empty is an empty drive. Paths are made absolute
// and must exist.
struct DriveSpec {
    vmm::ScsiDriveConfig drive;
    bool location_given = false;
};
Result<DriveSpec> parse_drive_spec(std::string_view spec, ScsiDriveKind kind);

// Places drives from specs (in command-line order) on `controllers` controllers: those with a location first,
// then each of the others at the lowest free location of its controller. Fails on a taken location, a
// controller >= controllers, or a full controller.
Result<std::vector<vmm::ScsiDriveConfig>> place_drives(std::span<const DriveSpec> specs, unsigned controllers);

// The lowest free location of `controller`, if any.
std::optional<unsigned> first_free_location(std::span<const vmm::ScsiDriveConfig> drives, unsigned controller);
// The drive at (controller, location), if any.
const vmm::ScsiDriveConfig* find_drive(std::span<const vmm::ScsiDriveConfig> drives, unsigned controller,
                                       unsigned location);

// At most 4 controllers; every drive on an existing controller at a location 0-63, one drive per location;
// hard disks have an absolute path and no writable image is attached twice; DVD paths are empty or absolute
// and DVDs read-only. No file is opened.
Result<void> validate_scsi_layout(unsigned controllers, std::span<const vmm::ScsiDriveConfig> drives);

// Sorts drives by controller, then location (the order config.json and get-* list them in).
void sort_drives(std::vector<vmm::ScsiDriveConfig>& drives);

} // namespace vmgen::mgmt
