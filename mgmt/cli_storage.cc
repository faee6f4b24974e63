// add-vmscsicontroller, add-vmharddiskdrive, add-vmdvddrive, set-vmdvddrive, remove-vmharddiskdrive,
// remove-vmdvddrive, get-vmharddiskdrive, get-vmdvddrive: a virtual machine's SCSI controllers and drives.
//
// A change to a VM that is Off edits config.json (under the VM's lock, written atomically). A change to a running
// VM goes to its worker first, over the control socket ({"op":"scsi-add"}, "scsi-remove", "dvd-media",
// "scsi-controller-add"), which hot-plugs it into the machine; config.json is updated only once the machine has
// accepted it, so the change also holds at the next start.
#include "mgmt/cli_internal.h"
#include "mgmt/control_socket.h"
#include "mgmt/scsi_settings.h"
#include "mgmt/vm_settings.h"

#include <nlohmann/json.hpp>

#include <functional>

namespace vmgen::mgmt::cli {
namespace {

using nlohmann::json;
using vmm::ScsiDriveConfig;

int finish(Result<int> result, std::ostream& err) { return result ? *result : report_error(err, result.error()); }

std::string_view kind_text(ScsiDriveKind kind) { return kind == ScsiDriveKind::HardDisk ? "hard disk" : "DVD drive"; }

json drive_request(std::string_view op, const ScsiDriveConfig& drive)
{
    json request = {{"op", op}, {"controller", drive.controller}, {"location", drive.location}};
    if (op == "scsi-add") {
        request["type"] = std::string(to_string(drive.kind));
        request["path"] = drive.path;
        request["read_only"] = drive.read_only;
    } else if (op == "dvd-media") {
        request["path"] = drive.path;
    }
    return request;
}

// Sends a storage request to the running worker. Returns the reply, or nothing when the worker went away
// meanwhile (the VM is Off now: the caller edits config.json alone).
Result<std::optional<json>> send_to_worker(const Store& store, std::string_view name, const json& request,
                                           const CliContext& context)
{
    auto dir = store.vm_dir(name);
    auto reply = control_request(dir / control_socket_file, request, context.storage_timeout);
    if (!reply) {
        auto runtime = inspect_runtime(dir, name, context.is_worker, context.control_timeout);
        if (runtime.state == VmState::Off)
            return std::optional<json>();
        return fail("VM '{}' is {} but its worker did not take the change: {}", name, to_string(runtime.state),
                    reply.error().message());
    }
    if (!reply->is_object() || !reply->value("ok", false)) {
        std::string why = "the worker gave an invalid reply";
        if (reply->is_object() && reply->contains("error") && (*reply)["error"].is_string())
            why = (*reply)["error"].get<std::string>();
        return fail("VM '{}' (running) refused the change: {}", name, why);
    }
    return std::optional<json>(std::move(*reply));
}

// What a command wants changed: `edit` validates and edits the config and returns the worker request for a
// running VM; `after` (optional) adjusts the config with the worker's reply.
using EditFn = std::function<Result<json>(VmConfig& config)>;
using AfterFn = std::function<void(VmConfig& config, const json& reply)>;

// The read-modify-write of a storage change, Off or running (see the file comment). Returns the worker's reply
// (null when the VM was Off).
Result<json> change_storage(std::string_view name, const CliContext& context, const EditFn& edit,
                            const AfterFn& after = {})
{
    TRY(validate_vm_name(name));
    Store store(context.home);
    auto lock = TRY(store.lock(name)); // also keeps start-vm out until the change is stored
    auto config = TRY(store.load(name));
    auto request = TRY(edit(config));
    TRY(validate_scsi_layout(config.scsi_controllers, config.scsi_drives));
    sort_drives(config.scsi_drives);

    auto runtime = inspect_runtime(store.vm_dir(name), name, context.is_worker, context.control_timeout);
    json reply = nullptr;
    if (runtime.state == VmState::Starting || runtime.state == VmState::Stopping)
        return fail("VM '{}' is {}: change its storage once it is Running or Off", name, to_string(runtime.state));
    if (runtime.state == VmState::Running) {
        auto answered = TRY(send_to_worker(store, name, request, context));
        if (answered) {
            reply = std::move(*answered);
            if (after)
                after(config, reply);
        }
    }
    auto saved = store.save(config);
    if (!saved && !reply.is_null())
        return fail("VM '{}': the running virtual machine took the change but config.json was not updated, so it "
                    "will not be there at the next start: {}",
                    name, saved.error().message());
    TRY(std::move(saved));
    return reply;
}

// The drives a VM has now: the running machine's (a guest may have ejected a DVD), else config.json's.
Result<std::vector<ScsiDriveConfig>> current_drives(std::string_view name, const CliContext& context)
{
    TRY(validate_vm_name(name));
    Store store(context.home);
    auto config = TRY(store.load(name));
    auto runtime = inspect_runtime(store.vm_dir(name), name, context.is_worker, context.control_timeout);
    if (runtime.state != VmState::Running)
        return config.scsi_drives;
    auto reply
        = control_request(store.vm_dir(name) / control_socket_file, json{{"op", "scsi-list"}}, context.control_timeout);
    if (!reply || !reply->is_object() || !reply->value("ok", false) || !(*reply)["drives"].is_array())
        return config.scsi_drives; // an older or busy worker: what is stored
    std::vector<ScsiDriveConfig> drives;
    for (const auto& entry : (*reply)["drives"]) {
        ScsiDriveConfig drive;
        auto kind = parse_drive_kind(entry.value("type", std::string()));
        if (!kind)
            return config.scsi_drives;
        drive.kind = *kind;
        drive.controller = entry.value("controller", 0u);
        drive.location = entry.value("location", 0u);
        drive.path = entry.value("path", std::string());
        drive.read_only = entry.value("read_only", false);
        drives.push_back(std::move(drive));
    }
    sort_drives(drives);
    return drives;
}

Result<bool> json_format(const ParsedArgs& parsed)
{
    bool as_json = parsed.flag("json");
    if (const auto* format = parsed.value("format")) {
        if (*format != "table" && *format != "json")
            return fail("invalid format '{}': must be table or json", *format);
        as_json = as_json || *format == "json";
    }
    return as_json;
}

// --controller-number / --controller-location, as given.
struct Address {
    std::optional<unsigned> controller;
    std::optional<unsigned> location;
};

Result<Address> parse_address(const ParsedArgs& parsed)
{
    Address address;
    if (const auto* number = parsed.value("controller-number"))
        address.controller = TRY(parse_controller_number(*number));
    if (const auto* location = parsed.value("controller-location"))
        address.location = TRY(parse_controller_location(*location));
    return address;
}

Result<void> require_controller(const VmConfig& config, unsigned controller)
{
    if (config.scsi_controllers == 0)
        return fail("VM '{}' has no SCSI controller: add one with 'vmgen add-vmscsicontroller {}'", config.name,
                    config.name);
    if (controller >= config.scsi_controllers)
        return fail("VM '{}' has no SCSI controller {}: it has {} (0-{}); add one with 'vmgen add-vmscsicontroller "
                    "{}'",
                    config.name, controller, config.scsi_controllers, config.scsi_controllers - 1, config.name);
    return {};
}

// Where a new drive goes: the given address, else the first free location of the given controller, else of the
// first controller with one.
Result<void> place_new_drive(const VmConfig& config, const Address& address, ScsiDriveConfig& drive)
{
    if (config.scsi_controllers == 0)
        TRY(require_controller(config, 0));
    std::vector<unsigned> candidates;
    if (address.controller) {
        TRY(require_controller(config, *address.controller));
        candidates.push_back(*address.controller);
    } else if (address.location) {
        candidates.push_back(0);
    } else {
        for (unsigned c = 0; c < config.scsi_controllers; ++c)
            candidates.push_back(c);
    }
    for (unsigned controller : candidates) {
        drive.controller = controller;
        if (address.location) {
            if (const auto* taken = find_drive(config.scsi_drives, controller, *address.location))
                return fail("location {} of SCSI controller {} of VM '{}' already holds a {} ({})", *address.location,
                            controller, config.name, kind_text(taken->kind),
                            taken->path.empty() ? std::string("no media") : taken->path);
            drive.location = *address.location;
            return {};
        }
        if (auto free = first_free_location(config.scsi_drives, controller)) {
            drive.location = *free;
            return {};
        }
    }
    if (address.controller)
        return fail("SCSI controller {} of VM '{}' has no free location (it holds {} drives)", *address.controller,
                    config.name, vmm::max_scsi_locations);
    return fail("every SCSI controller of VM '{}' is full: add one with 'vmgen add-vmscsicontroller {}'", config.name,
                config.name);
}

// The drive of `kind` at a full address.
Result<ScsiDriveConfig*> drive_at(VmConfig& config, const Address& address, ScsiDriveKind kind,
                                  std::string_view command)
{
    if (!address.controller || !address.location)
        return fail("{} needs --controller-number N and --controller-location L (see 'vmgen get-{} {}')", command,
                    kind == ScsiDriveKind::HardDisk ? "vmharddiskdrive" : "vmdvddrive", config.name);
    auto it = std::find_if(config.scsi_drives.begin(), config.scsi_drives.end(), [&](const auto& d) {
        return d.controller == *address.controller && d.location == *address.location;
    });
    if (it == config.scsi_drives.end())
        return fail("VM '{}' has no drive at SCSI controller {} location {}", config.name, *address.controller,
                    *address.location);
    if (it->kind != kind)
        return fail("SCSI controller {} location {} of VM '{}' holds a {}, not a {}", *address.controller,
                    *address.location, config.name, kind_text(it->kind), kind_text(kind));
    return &*it;
}

Result<ParsedArgs> parse_command(std::string_view command, std::span<const std::string> args,
                                 std::span<const OptionSpec> specs, std::ostream& out)
{
    auto parsed = TRY(parse_args(command, args, specs, 1, 1));
    if (parsed.help)
        print_command_help(out, command);
    return parsed;
}

Result<int> add_vmscsicontroller(std::span<const std::string> args, std::ostream& out, const CliContext& context)
{
    auto parsed = TRY(parse_command("add-vmscsicontroller", args, {}, out));
    if (parsed.help)
        return exit_ok;
    const auto& name = parsed.positionals[0];
    auto edit = [&](VmConfig& config) -> Result<json> {
        if (config.scsi_controllers >= vmm::max_scsi_controllers)
            return fail("VM '{}' already has {} SCSI controllers, the most a virtual machine can have", name,
                        vmm::max_scsi_controllers);
        ++config.scsi_controllers;
        return json{{"op", "scsi-controller-add"}};
    };
    auto after = [](VmConfig& config, const json& reply) {
        if (reply.contains("controller") && reply["controller"].is_number_unsigned())
            config.scsi_controllers = std::max(config.scsi_controllers, reply["controller"].get<unsigned>() + 1);
    };
    TRY(change_storage(name, context, edit, after));
    return exit_ok;
}

constexpr OptionSpec add_hard_disk_options[]
    = {{"path"}, {"controller-type"}, {"controller-number"}, {"controller-location"}, {"read-only", false}};

Result<int> add_vmharddiskdrive(std::span<const std::string> args, std::ostream& out, const CliContext& context)
{
    auto parsed = TRY(parse_command("add-vmharddiskdrive", args, add_hard_disk_options, out));
    if (parsed.help)
        return exit_ok;
    const auto& name = parsed.positionals[0];
    if (const auto* type = parsed.value("controller-type")) {
        auto lowered = *type;
        for (auto& c : lowered)
            c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        if (lowered == "IDE")
            return fail("IDE controllers are not implemented: attach the disk to a SCSI controller "
                        "(--controller-type SCSI, the default)");
        if (lowered != "SCSI")
            return fail("invalid controller type '{}': must be SCSI (or IDE, not implemented yet)", *type);
    }
    const auto* path = parsed.value("path");
    if (path == nullptr)
        return fail("add-vmharddiskdrive needs --path IMAGE (a .vhdx, .vhd or raw image)");
    ScsiDriveConfig drive;
    drive.kind = ScsiDriveKind::HardDisk;
    drive.path = TRY(resolve_disk_image(*path));
    drive.read_only = parsed.flag("read-only");
    auto address = TRY(parse_address(parsed));
    TRY(check_disk_image(drive.path, drive.read_only));
    auto edit = [&](VmConfig& config) -> Result<json> {
        TRY(place_new_drive(config, address, drive));
        config.scsi_drives.push_back(drive);
        return drive_request("scsi-add", drive);
    };
    TRY(change_storage(name, context, edit));
    return exit_ok;
}

constexpr OptionSpec add_dvd_options[] = {{"path"}, {"controller-number"}, {"controller-location"}};

Result<int> add_vmdvddrive(std::span<const std::string> args, std::ostream& out, const CliContext& context)
{
    auto parsed = TRY(parse_command("add-vmdvddrive", args, add_dvd_options, out));
    if (parsed.help)
        return exit_ok;
    const auto& name = parsed.positionals[0];
    ScsiDriveConfig drive;
    drive.kind = ScsiDriveKind::Dvd;
    drive.read_only = true;
    if (const auto* path = parsed.value("path"))
        drive.path = TRY(resolve_iso_image(*path));
    if (!drive.path.empty())
        TRY(check_iso_image(drive.path));
    auto address = TRY(parse_address(parsed));
    auto edit = [&](VmConfig& config) -> Result<json> {
        TRY(place_new_drive(config, address, drive));
        config.scsi_drives.push_back(drive);
        return drive_request("scsi-add", drive);
    };
    TRY(change_storage(name, context, edit));
    return exit_ok;
}

Result<int> set_vmdvddrive(std::span<const std::string> args, std::ostream& out, const CliContext& context)
{
    auto parsed = TRY(parse_command("set-vmdvddrive", args, add_dvd_options, out));
    if (parsed.help)
        return exit_ok;
    const auto& name = parsed.positionals[0];
    const auto* path_option = parsed.value("path");
    if (path_option == nullptr)
        return fail("set-vmdvddrive needs --path ISO, or --path none to eject the media");
    auto path = TRY(resolve_iso_image(*path_option));
    if (!path.empty())
        TRY(check_iso_image(path));
    auto address = TRY(parse_address(parsed));
    auto edit = [&](VmConfig& config) -> Result<json> {
        ScsiDriveConfig* target = nullptr;
        if (address.location) {
            auto full = address;
            full.controller = address.controller.value_or(0);
            target = TRY(drive_at(config, full, ScsiDriveKind::Dvd, "set-vmdvddrive"));
        } else {
            std::vector<ScsiDriveConfig*> dvds;
            for (auto& drive : config.scsi_drives) {
                if (drive.kind == ScsiDriveKind::Dvd
                    && (!address.controller || drive.controller == *address.controller))
                    dvds.push_back(&drive);
            }
            if (dvds.empty())
                return fail("VM '{}' has no DVD drive{}: add one with 'vmgen add-vmdvddrive {}'", name,
                            address.controller ? fmt::format(" on SCSI controller {}", *address.controller) : "", name);
            if (dvds.size() > 1)
                return fail("VM '{}' has {} DVD drives: say which with --controller-number and "
                            "--controller-location",
                            name, dvds.size());
            target = dvds.front();
        }
        target->path = path;
        return drive_request("dvd-media", *target);
    };
    TRY(change_storage(name, context, edit));
    return exit_ok;
}

constexpr OptionSpec remove_options[] = {{"controller-number"}, {"controller-location"}};

Result<int> remove_drive(std::string_view command, ScsiDriveKind kind, std::span<const std::string> args,
                         std::ostream& out, const CliContext& context)
{
    auto parsed = TRY(parse_command(command, args, remove_options, out));
    if (parsed.help)
        return exit_ok;
    const auto& name = parsed.positionals[0];
    auto address = TRY(parse_address(parsed)); // option errors before the store is touched
    if (!address.controller || !address.location)
        return fail("{} needs --controller-number N and --controller-location L (see 'vmgen get-{} {}')", command,
                    kind == ScsiDriveKind::HardDisk ? "vmharddiskdrive" : "vmdvddrive", name);
    auto edit = [&](VmConfig& config) -> Result<json> {
        auto* drive = TRY(drive_at(config, address, kind, command));
        auto request = drive_request("scsi-remove", *drive);
        config.scsi_drives.erase(config.scsi_drives.begin() + (drive - config.scsi_drives.data()));
        return request;
    };
    TRY(change_storage(name, context, edit));
    return exit_ok;
}

constexpr OptionSpec get_options[] = {{"json", false}, {"format"}};

Result<int> get_drives(std::string_view command, ScsiDriveKind kind, std::span<const std::string> args,
                       std::ostream& out, const CliContext& context)
{
    auto parsed = TRY(parse_command(command, args, get_options, out));
    if (parsed.help)
        return exit_ok;
    const auto& name = parsed.positionals[0];
    bool as_json = TRY(json_format(parsed));
    auto drives = TRY(current_drives(name, context));
    std::erase_if(drives, [&](const auto& d) { return d.kind != kind; });

    if (as_json) {
        auto array = json::array();
        for (const auto& drive : drives) {
            if (kind == ScsiDriveKind::HardDisk) {
                array.push_back({{"VMName", name},
                                 {"ControllerType", "SCSI"},
                                 {"ControllerNumber", drive.controller},
                                 {"ControllerLocation", drive.location},
                                 {"DiskNumber", nullptr},
                                 {"Path", drive.path},
                                 {"ReadOnly", drive.read_only}});
            } else {
                array.push_back({{"VMName", name},
                                 {"ControllerNumber", drive.controller},
                                 {"ControllerLocation", drive.location},
                                 {"DvdMediaType", drive.path.empty() ? "None" : "ISO"},
                                 {"Path", drive.path.empty() ? json(nullptr) : json(drive.path)}});
            }
        }
        out << array.dump(2) << '\n';
        return exit_ok;
    }
    if (drives.empty())
        return exit_ok; // like Hyper-V: nothing to show
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> headers;
    if (kind == ScsiDriveKind::HardDisk) {
        headers = {"VMName", "ControllerType", "ControllerNumber", "ControllerLocation", "DiskNumber", "Path"};
        for (const auto& drive : drives)
            rows.push_back(
                {name, "SCSI", fmt::format("{}", drive.controller), fmt::format("{}", drive.location), "", drive.path});
    } else {
        headers = {"VMName", "ControllerNumber", "ControllerLocation", "DvdMediaType", "Path"};
        for (const auto& drive : drives)
            rows.push_back({name, fmt::format("{}", drive.controller), fmt::format("{}", drive.location),
                            drive.path.empty() ? "None" : "ISO", drive.path});
    }
    print_table(out, headers, rows);
    return exit_ok;
}

} // namespace

int cmd_add_vmscsicontroller(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                             const CliContext& context)
{
    return finish(add_vmscsicontroller(args, out, context), err);
}

int cmd_add_vmharddiskdrive(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                            const CliContext& context)
{
    return finish(add_vmharddiskdrive(args, out, context), err);
}

int cmd_add_vmdvddrive(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                       const CliContext& context)
{
    return finish(add_vmdvddrive(args, out, context), err);
}

int cmd_set_vmdvddrive(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                       const CliContext& context)
{
    return finish(set_vmdvddrive(args, out, context), err);
}

int cmd_remove_vmharddiskdrive(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                               const CliContext& context)
{
    return finish(remove_drive("remove-vmharddiskdrive", ScsiDriveKind::HardDisk, args, out, context), err);
}

int cmd_remove_vmdvddrive(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                          const CliContext& context)
{
    return finish(remove_drive("remove-vmdvddrive", ScsiDriveKind::Dvd, args, out, context), err);
}

int cmd_get_vmharddiskdrive(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                            const CliContext& context)
{
    return finish(get_drives("get-vmharddiskdrive", ScsiDriveKind::HardDisk, args, out, context), err);
}

int cmd_get_vmdvddrive(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                       const CliContext& context)
{
    return finish(get_drives("get-vmdvddrive", ScsiDriveKind::Dvd, args, out, context), err);
}

} // namespace vmgen::mgmt::cli
