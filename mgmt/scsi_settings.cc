#include "mgmt/scsi_settings.h"

#include "support/errno_error.h"
#include "vm/disk/disk_ops.h"
#include "vm/disk/image_lock.h"
#include "vm/disk/raw/raw_disk.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

namespace vmgen::mgmt {
namespace {

Result<unsigned> parse_small(std::string_view text, unsigned limit, std::string_view what)
{
    bool digits = !text.empty() && text.size() <= 4
        && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits)
        return fail("invalid {} '{}': expected a number from 0 to {}", what, text, limit - 1);
    unsigned value = 0;
    for (char c : text)
        value = value * 10 + static_cast<unsigned>(c - '0');
    if (value >= limit)
        return fail("invalid {} {}: must be 0 to {}", what, value, limit - 1);
    return value;
}

std::string absolute_path(std::string_view path)
{
    std::error_code ec;
    auto abs = std::filesystem::absolute(std::filesystem::path(path), ec);
    return ec ? std::string(path) : abs.lexically_normal().string();
}

std::string lower(std::string_view text)
{
    std::string out(text);
    for (auto& c : out)
        c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return out;
}

Result<std::string> resolve_readable(std::string_view path, bool allow_block_device)
{
    if (path.empty())
        return fail("the file name is empty");
    std::string p(path);
    struct stat st { };
    if (::stat(p.c_str(), &st) != 0)
        return errno_failure(p);
    if (!S_ISREG(st.st_mode) && !(allow_block_device && S_ISBLK(st.st_mode)))
        return fail("{}: not a regular file", p);
    if (::access(p.c_str(), R_OK) != 0)
        return errno_failure(p);
    return absolute_path(path);
}

} // namespace

unsigned default_scsi_controllers(vmm::Generation generation) { return generation == vmm::Generation::Two ? 1 : 0; }

std::string_view to_string(ScsiDriveKind kind) { return kind == ScsiDriveKind::HardDisk ? "HardDisk" : "DvdDrive"; }

Result<ScsiDriveKind> parse_drive_kind(std::string_view text)
{
    if (text == "HardDisk")
        return ScsiDriveKind::HardDisk;
    if (text == "DvdDrive")
        return ScsiDriveKind::Dvd;
    return fail("invalid drive type '{}': must be HardDisk or DvdDrive", text);
}

Result<unsigned> parse_controller_number(std::string_view text)
{
    return parse_small(text, vmm::max_scsi_controllers, "controller number");
}

Result<unsigned> parse_controller_location(std::string_view text)
{
    return parse_small(text, vmm::max_scsi_locations, "controller location");
}

Result<std::string> resolve_disk_image(std::string_view path)
{
    return resolve_readable(path, /*allow_block_device=*/true);
}

Result<std::string> resolve_iso_image(std::string_view path)
{
    if (path.empty() || lower(path) == "none")
        return std::string();
    return resolve_readable(path, /*allow_block_device=*/false);
}

Result<void> check_disk_image(const std::string& path, bool read_only)
{
    auto image = TRY_CTX(vm::disk::open_disk(path, /*read_only=*/true), "hard disk image {}", path);
    image.reset();
    // Another VM or program writing it (or, for a writable disk, using it at all) holds a conflicting lock.
    auto mode = read_only ? vm::disk::LockMode::Shared : vm::disk::LockMode::Exclusive;
    auto lock = TRY_CTX(vm::disk::lock_image(path, mode), "hard disk image {}", path);
    if (!read_only && ::access(path.c_str(), W_OK) != 0)
        return fail("hard disk image {}: {} (attach it with --read-only)", path, errno_text(errno));
    return {};
}

Result<void> check_iso_image(const std::string& path)
{
    auto image = TRY_CTX(vm::disk::open_raw(path, /*read_only=*/true), "ISO image {}", path);
    auto lock = TRY_CTX(vm::disk::lock_image(path, vm::disk::LockMode::Shared), "ISO image {}", path);
    if (image->size() < 2048)
        return fail("ISO image {}: holds no 2048-byte block", path);
    return {};
}

Result<DriveSpec> parse_drive_spec(std::string_view spec, ScsiDriveKind kind)
{
    DriveSpec out;
    out.drive.kind = kind;
    out.drive.read_only = kind == ScsiDriveKind::Dvd;
    std::vector<std::string_view> parts;
    for (size_t start = 0;;) {
        auto comma = spec.find(',', start);
        parts.push_back(spec.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
        if (comma == std::string_view::npos)
            break;
        start = comma + 1;
    }
    bool controller_given = false;
    for (size_t i = 1; i < parts.size(); ++i) {
        auto part = parts[i];
        if (part.starts_with("controller=")) {
            if (controller_given)
                return fail("controller= is given twice");
            controller_given = true;
            out.drive.controller = TRY(parse_controller_number(part.substr(11)));
        } else if (part.starts_with("location=")) {
            if (out.location_given)
                return fail("location= is given twice");
            out.location_given = true;
            out.drive.location = TRY(parse_controller_location(part.substr(9)));
        } else if (part == "read-only" && kind == ScsiDriveKind::HardDisk) {
            out.drive.read_only = true;
        } else {
            return fail("unknown drive option '{}' (expected controller=N, location=N{})", part,
                        kind == ScsiDriveKind::HardDisk ? " or read-only" : "");
        }
    }
    if (kind == ScsiDriveKind::HardDisk) {
        if (parts[0].empty())
            return fail("no image path (expected PATH[,controller=N][,location=N][,read-only])");
        out.drive.path = TRY(resolve_disk_image(parts[0]));
    } else {
        out.drive.path = TRY(resolve_iso_image(parts[0]));
    }
    return out;
}

Result<std::vector<vmm::ScsiDriveConfig>> place_drives(std::span<const DriveSpec> specs, unsigned controllers)
{
    std::vector<vmm::ScsiDriveConfig> drives;
    for (const auto& spec : specs) {
        if (!spec.location_given)
            continue;
        if (spec.drive.controller >= controllers)
            return fail("SCSI controller {} does not exist", spec.drive.controller);
        if (find_drive(drives, spec.drive.controller, spec.drive.location) != nullptr)
            return fail("location {} of SCSI controller {} is given to two drives", spec.drive.location,
                        spec.drive.controller);
        drives.push_back(spec.drive);
    }
    for (const auto& spec : specs) {
        if (spec.location_given)
            continue;
        if (spec.drive.controller >= controllers)
            return fail("SCSI controller {} does not exist", spec.drive.controller);
        auto location = first_free_location(drives, spec.drive.controller);
        if (!location)
            return fail("SCSI controller {} has no free location left", spec.drive.controller);
        drives.push_back(spec.drive);
        drives.back().location = *location;
    }
    TRY(validate_scsi_layout(controllers, drives));
    sort_drives(drives);
    return drives;
}

const vmm::ScsiDriveConfig* find_drive(std::span<const vmm::ScsiDriveConfig> drives, unsigned controller,
                                       unsigned location)
{
    for (const auto& drive : drives) {
        if (drive.controller == controller && drive.location == location)
            return &drive;
    }
    return nullptr;
}

std::optional<unsigned> first_free_location(std::span<const vmm::ScsiDriveConfig> drives, unsigned controller)
{
    for (unsigned location = 0; location < vmm::max_scsi_locations; ++location) {
        if (find_drive(drives, controller, location) == nullptr)
            return location;
    }
    return std::nullopt;
}

Result<void> validate_scsi_layout(unsigned controllers, std::span<const vmm::ScsiDriveConfig> drives)
{
    if (controllers > vmm::max_scsi_controllers)
        return fail("{} SCSI controllers: a virtual machine has at most {}", controllers, vmm::max_scsi_controllers);
    std::set<std::pair<unsigned, unsigned>> taken;
    for (const auto& drive : drives) {
        auto where = fmt::format("SCSI {}:{}", drive.controller, drive.location);
        if (drive.controller >= controllers)
            return fail("{}: SCSI controller {} does not exist (the virtual machine has {})", where, drive.controller,
                        controllers);
        if (drive.location >= vmm::max_scsi_locations)
            return fail("{}: location {} is out of range (0-{})", where, drive.location, vmm::max_scsi_locations - 1);
        if (!taken.emplace(drive.controller, drive.location).second)
            return fail("{}: two drives at the same location", where);
        if (drive.kind == ScsiDriveKind::HardDisk) {
            if (drive.path.empty() || drive.path.front() != '/')
                return fail("{}: a hard disk needs an absolute image path (it is '{}')", where, drive.path);
            // Against the drives listed before it, so a drive just appended is the one named.
            for (const auto& other : drives.first(static_cast<size_t>(&drive - drives.data()))) {
                if (other.kind != ScsiDriveKind::HardDisk || other.path != drive.path)
                    continue;
                if (!drive.read_only || !other.read_only)
                    return fail("{}: the image {} is also attached at SCSI {}:{} (only read-only images may be "
                                "attached twice)",
                                where, drive.path, other.controller, other.location);
            }
        } else {
            if (!drive.path.empty() && drive.path.front() != '/')
                return fail("{}: a DVD image path must be absolute (it is '{}')", where, drive.path);
            if (!drive.read_only)
                return fail("{}: a DVD drive is always read-only", where);
        }
    }
    return {};
}

void sort_drives(std::vector<vmm::ScsiDriveConfig>& drives)
{
    std::sort(drives.begin(), drives.end(), [](const auto& a, const auto& b) {
        return std::pair(a.controller, a.location) < std::pair(b.controller, b.location);
    });
}

} // namespace vmgen::mgmt
