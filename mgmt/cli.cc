#include "mgmt/cli.h"

#include "mgmt/cli_internal.h"
#include "mgmt/vm_settings.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>

namespace vmgen::mgmt {
namespace cli {
namespace {

constexpr std::string_view usage_text = R"(Usage: vmgen <command> [options]

Manages generation 1 and generation 2 virtual machines on this host, like Hyper-V.

Commands:
)";

constexpr std::string_view footer_text = R"(
Run 'vmgen <command> --help' for a command's options. Virtual machines live in $VMGEN_HOME
(default ~/.local/share/vmgen), one folder each.
)";

constexpr std::array commands = {
    Command{"new-vm", "Create a virtual machine",
            R"(Usage: vmgen new-vm NAME [options]

Creates a virtual machine (Off) and shows it.

Options:
  --generation 1|2        1 (legacy PC) or 2 (UEFI + VMBus); fixed once created. Default 1.
                          Generation 2 gets one SCSI controller (add-vmscsicontroller adds more).
  --memory SIZE           startup memory: 512M, 2G, 1024MB or bytes; a multiple of 2M, at least 32M,
                          at most the host's memory. Default 1G.
  --processors N          virtual processors: 1-64 (generation 1), 1-240 (generation 2). Default 1.
  --kernel FILE           Linux kernel (bzImage or PVH ELF) to boot.
  --initrd FILE           initial ramdisk.
  --cmdline TEXT          kernel command line.
  --on-reset restart|exit what a guest reset does. Default restart.
)",
            cmd_new_vm},
    Command{"get-vm", "Show virtual machines",
            R"(Usage: vmgen get-vm [NAME] [--format table|json]

Shows one virtual machine, or all of them: Name, State, CPUUsage(%), MemoryAssigned(M), Uptime,
Status, Generation. A virtual machine whose config is unusable is listed with the problem as Status.
The JSON form has more keys, among them Heartbeat (OK, No Contact, Lost Communication or Disabled
while the virtual machine runs; null when it is Off).

Options:
  --format table|json     output format. Default table.
)",
            cmd_get_vm},
    Command{"set-vm", "Change a virtual machine's settings (while Off)",
            R"(Usage: vmgen set-vm NAME [options]

Changes the settings of a virtual machine that is Off. The generation cannot be changed.

Options:
  --memory SIZE           startup memory (same rules as new-vm).
  --processors N          virtual processors.
  --kernel FILE           kernel to boot ("" removes it).
  --initrd FILE           initial ramdisk ("" removes it).
  --cmdline TEXT          kernel command line.
  --on-reset restart|exit what a guest reset does.
)",
            cmd_set_vm},
    Command{"set-vmcomport", "Connect a COM port (while Off)",
            R"(Usage: vmgen set-vmcomport NAME --number 1|2 --path TARGET

Connects COM1 or COM2 of a virtual machine that is Off.

Options:
  --number 1|2            the COM port.
  --path TARGET           file:FILE (append output to FILE), unix:SOCKET (listen on SOCKET),
                          stdio (the worker's stdout: worker.log, or the terminal with start-vm --wait)
                          or none (disconnected).
)",
            cmd_set_vmcomport},
    Command{"get-vmintegrationservice", "Show a virtual machine's integration services",
            R"(Usage: vmgen get-vmintegrationservice NAME [--name SERVICE] [--format table|json]

Shows the integration services of a virtual machine: VMName, Name, Enabled, PrimaryStatusDescription,
SecondaryStatusDescription. The services are Guest Service Interface, Heartbeat, Key-Value Pair Exchange,
Shutdown, Time Synchronization and VSS; all but the Guest Service Interface are enabled by default.

PrimaryStatusDescription is empty while the virtual machine is Off or the service is disabled. While it
runs, the Heartbeat shows what the guest does: OK, No Contact or Lost Communication; the other services
show No Contact (the machine does not report on them yet).

Options:
  --name SERVICE          show only this service (case-insensitive, e.g. "time synchronization").
  --format table|json     output format. Default table.
)",
            cmd_get_vmintegrationservice},
    Command{"enable-vmintegrationservice", "Enable an integration service (while Off)",
            R"(Usage: vmgen enable-vmintegrationservice NAME --name SERVICE

Enables an integration service of a virtual machine that is Off; it is offered to the guest from the
next start.

Options:
  --name SERVICE          Guest Service Interface, Heartbeat, Key-Value Pair Exchange, Shutdown,
                          Time Synchronization or VSS (case-insensitive).
)",
            cmd_enable_vmintegrationservice},
    Command{"disable-vmintegrationservice", "Disable an integration service (while Off)",
            R"(Usage: vmgen disable-vmintegrationservice NAME --name SERVICE

Disables an integration service of a virtual machine that is Off; it is no longer offered to the guest
from the next start.

Options:
  --name SERVICE          Guest Service Interface, Heartbeat, Key-Value Pair Exchange, Shutdown,
                          Time Synchronization or VSS (case-insensitive).
)",
            cmd_disable_vmintegrationservice},
    Command{"add-vmscsicontroller", "Add a SCSI controller to a virtual machine",
            R"(Usage: vmgen add-vmscsicontroller NAME

Adds a synthetic SCSI controller (a VMBus device). A virtual machine has at most 4; a new generation 2
virtual machine has one (controller 0), a generation 1 virtual machine none. While the virtual machine
runs, the controller is hot-added: the guest sees a new VMBus device. Prints nothing.
)",
            cmd_add_vmscsicontroller},
    Command{"add-vmharddiskdrive", "Attach a virtual hard disk to a virtual machine",
            R"(Usage: vmgen add-vmharddiskdrive NAME --path IMAGE [--controller-number N]
                                 [--controller-location L] [--read-only] [--controller-type SCSI]

Attaches a virtual hard disk image (.vhdx, .vhd, anything else raw) to a SCSI controller. The image
must exist and open; its path is stored absolute. While the virtual machine runs the disk is
hot-added (the guest rescans the controller).

Options:
  --path IMAGE            the image (required).
  --controller-number N   0-3; the controller must exist. Default: the first with a free location.
  --controller-location L 0-63; must be free. Default: the controller's first free location.
  --read-only             the guest cannot write the disk.
  --controller-type SCSI  the only kind there is; IDE is not implemented yet.
)",
            cmd_add_vmharddiskdrive},
    Command{"add-vmdvddrive", "Add a DVD drive to a virtual machine",
            R"(Usage: vmgen add-vmdvddrive NAME [--path ISO|none] [--controller-number N]
                            [--controller-location L]

Adds a DVD drive on a SCSI controller, with an ISO image inserted or empty (no --path, or
--path none). While the virtual machine runs the drive is hot-added.

Options:
  --path ISO|none         the ISO image to insert. Default: none (an empty drive).
  --controller-number N   0-3; the controller must exist. Default: the first with a free location.
  --controller-location L 0-63; must be free. Default: the controller's first free location.
)",
            cmd_add_vmdvddrive},
    Command{"set-vmdvddrive", "Insert or eject a DVD drive's media",
            R"(Usage: vmgen set-vmdvddrive NAME --path ISO|none [--controller-number N]
                            [--controller-location L]

Inserts another ISO image into a DVD drive, or ejects its media (--path none); the guest sees the
media change at once when the virtual machine runs. Without --controller-location the virtual
machine's only DVD drive (on --controller-number, when given) is changed; with several, say which.

Options:
  --path ISO|none         the ISO image to insert, or none to eject (required).
  --controller-number N   the drive's controller. Default 0 with --controller-location.
  --controller-location L the drive's location.
)",
            cmd_set_vmdvddrive},
    Command{"remove-vmharddiskdrive", "Detach a virtual hard disk from a virtual machine",
            R"(Usage: vmgen remove-vmharddiskdrive NAME --controller-number N --controller-location L

Detaches the hard disk at that address; the image file is kept. While the virtual machine runs the
disk is hot-removed: the commands it is executing complete first, then the image is closed.
)",
            cmd_remove_vmharddiskdrive},
    Command{"remove-vmdvddrive", "Remove a DVD drive from a virtual machine",
            R"(Usage: vmgen remove-vmdvddrive NAME --controller-number N --controller-location L

Removes the DVD drive at that address (hot-removed while the virtual machine runs); the ISO image
file is kept.
)",
            cmd_remove_vmdvddrive},
    Command{"get-vmharddiskdrive", "Show a virtual machine's hard disks",
            R"(Usage: vmgen get-vmharddiskdrive NAME [--json]

Shows the virtual machine's hard disks: VMName, ControllerType, ControllerNumber, ControllerLocation,
DiskNumber (always empty: no pass-through disks), Path. The JSON form has the same keys plus
ReadOnly.

Options:
  --json                  JSON output (also: --format table|json).
)",
            cmd_get_vmharddiskdrive},
    Command{"get-vmdvddrive", "Show a virtual machine's DVD drives",
            R"(Usage: vmgen get-vmdvddrive NAME [--json]

Shows the virtual machine's DVD drives: VMName, ControllerNumber, ControllerLocation, DvdMediaType (ISO,
or None for an empty drive), Path. While the virtual machine runs this is what the machine has: a
medium the guest ejected is gone.

Options:
  --json                  JSON output (also: --format table|json).
)",
            cmd_get_vmdvddrive},
    Command{"start-vm", "Start a virtual machine in the background",
            R"(Usage: vmgen start-vm NAME [--wait]

Starts the virtual machine in a background worker process and returns once it runs.

Options:
  --wait                  stay in the foreground until the virtual machine stops; COM ports set to
                          stdio write to this terminal; Ctrl-C turns the virtual machine off. Exits with
                          the outcome: 0 power off, 3 reset (on-reset exit), 4 triple fault, 5 internal
                          error.
)",
            cmd_start_vm},
    Command{"stop-vm", "Shut down or turn off a virtual machine",
            R"(Usage: vmgen stop-vm NAME [--turn-off] [--timeout SECONDS]

Presses the ACPI power button and waits for the guest to shut down; turns the virtual machine off
when it has not stopped within the timeout. Stopping a virtual machine that is Off does nothing.

Options:
  --turn-off              pull the power at once instead.
  --timeout SECONDS       how long to wait for the guest to shut down. Default 30.
)",
            cmd_stop_vm},
    Command{"remove-vm", "Delete a virtual machine (while Off)",
            R"(Usage: vmgen remove-vm NAME

Deletes the virtual machine's folder. Kernels, initrds and files it refers to are kept.
)",
            cmd_remove_vm},
    Command{"new-vhd", "Create a virtual hard disk image (VHD, VHDX or raw)",
            R"(Usage: vmgen new-vhd PATH [--size SIZE] [--fixed|--dynamic|--differencing --parent PARENT]
                    [--block-size SIZE] [--logical-sector 512|4096]

Creates a virtual hard disk image and shows it as get-vhd does. The format follows PATH's extension:
.vhd (VHD), .vhdx (VHDX), anything else (.img, .raw) a raw image. PATH must not exist; nothing is
left behind when creation fails.

Options:
  --size SIZE             virtual size: 64G, 512M, 1T or bytes (binary units); a multiple of the
                          logical sector size. Required, except for --differencing.
  --fixed                 allocate the whole disk now (raw images are always this type, created
                          sparse).
  --dynamic               grow the file as the disk is written (the default for VHD and VHDX).
  --differencing          record only the changes to --parent PARENT, an image of the same format
                          (VHD or VHDX), with the parent's size, sector size and block size.
  --block-size SIZE       allocation unit of a dynamic disk. VHD: a power of two from 4K to 256M,
                          default 2M. VHDX: default 32M. Not for fixed or raw images.
  --logical-sector 512|4096
                          logical sector size; 4096 only for VHDX. Default 512.
)",
            cmd_new_vhd},
    Command{"get-vhd", "Show a virtual hard disk image",
            R"(Usage: vmgen get-vhd PATH [--format table|json]

Opens the image read-only and shows Path, VhdFormat (VHD, VHDX or Raw), VhdType (Fixed, Dynamic or
Differencing), FileSize, Size, LogicalSectorSize, PhysicalSectorSize, BlockSize (0 when fixed or
raw), ParentPath and DiskIdentifier. The table is a "Key : Value" list like Get-VHD | Format-List;
the JSON form also has MinimumSize (always null).

Options:
  --format table|json     output format. Default table.
)",
            cmd_get_vhd},
    Command{"test-vhd", "Check a virtual hard disk image",
            R"(Usage: vmgen test-vhd PATH

Opens the image read-only, which validates its structures (and those of its parents), then reads
every range the image stores; unallocated ranges are not read, so a large sparse image checks
quickly. A differencing disk's parents are checked the same way. Prints "PATH: OK" and exits 0, or
prints the problem and exits 1. Shows a progress bar when stderr is a terminal.
)",
            cmd_test_vhd},
    Command{"convert-vhd", "Copy a virtual hard disk into a new image of another format or type",
            R"(Usage: vmgen convert-vhd SOURCE DESTINATION [--vhd-type fixed|dynamic] [--block-size SIZE]
                        [--logical-sector 512|4096]

Copies the virtual disk SOURCE (VHD, VHDX or raw; a differencing disk is flattened with its
parents) into the new image DESTINATION, whose format follows its extension as in new-vhd, then
shows it as get-vhd does. Only the ranges the source stores are read and chunks of zeroes are not
written, so dynamic and raw destinations stay sparse. DESTINATION must not exist; it is flushed
before the command succeeds and removed if the copy fails. Shows a progress bar when stderr is a
terminal.

Options:
  --vhd-type fixed|dynamic  the destination's type. Default: the source's (dynamic for a
                          differencing source). Raw destinations are always sparse files.
  --block-size SIZE       allocation unit of a dynamic destination. Default: the format's.
  --logical-sector 512|4096
                          the destination's logical sector size (VHDX only). Default: the
                          source's for VHDX, 512 otherwise.
)",
            cmd_convert_vhd},
    Command{"resize-vhd", "Change the virtual size of a virtual hard disk",
            R"(Usage: vmgen resize-vhd PATH --size SIZE [--allow-data-loss]

Grows or shrinks the virtual disk (raw, VHD fixed or dynamic, VHDX fixed or dynamic), then shows it
as get-vhd does. The added range reads as zeroes. A differencing disk keeps its parent's size.
Shrinking is refused while the part that would be dropped stores data, unless --allow-data-loss.
The file systems and partitions inside are not changed: grow them from the guest afterwards, and
shrink them before shrinking the disk.

Options:
  --size SIZE             the new virtual size (64G, 512M, bytes); a multiple of the logical
                          sector size.
  --allow-data-loss       shrink even if data past the new end is lost.
)",
            cmd_resize_vhd},
    Command{"merge-vhd", "Merge a differencing disk into its parent and delete it",
            R"(Usage: vmgen merge-vhd CHILD

Writes every range the differencing disk CHILD stores into its parent, flushes the parent, deletes
CHILD and shows the parent as get-vhd does. Other differencing disks of the same parent become
invalid, as with Hyper-V's Merge-VHD. Shows a progress bar when stderr is a terminal.
)",
            cmd_merge_vhd},
    Command{"optimize-vhd", "Give back the file space a virtual hard disk no longer uses",
            R"(Usage: vmgen optimize-vhd PATH

Hyper-V's Optimize-VHD (full mode). On a dynamic VHD or VHDX, or a raw image, reads every stored
range and releases the blocks (raw: 64 KiB pieces) that hold only zeroes; then the format gives
the space back: blocks from the end of the file move into the holes and the file is truncated
(raw images get holes punched). The virtual disk's contents do not change. Prints the image as
get-vhd does, plus FileSizeBefore. Shows a progress bar when stderr is a terminal.
)",
            cmd_optimize_vhd},
    Command{"run", "Run a throwaway virtual machine in the foreground",
            R"(Usage: vmgen run --kernel FILE [options]

Runs a virtual machine that is not stored, in the foreground, until the guest stops. SIGINT and
SIGTERM turn it off. Exits with the outcome: 0 power off, 3 reset (on-reset exit), 4 triple fault,
5 internal error; 1 when it could not run.

Options:
  --generation 1|2        Default 2.
  --memory SIZE           Default 512M.
  --processors N          Default 1.
  --kernel FILE           kernel to boot (required).
  --initrd FILE           initial ramdisk.
  --cmdline TEXT          kernel command line.
  --com1 TARGET           stdio, file:FILE, unix:SOCKET or none. Default none.
  --com2 TARGET           Default none.
  --on-reset restart|exit Default restart.
  --scsi-disk SPEC        attach a hard disk image on a SCSI controller; repeatable.
                          SPEC: PATH[,controller=N][,location=N][,read-only]
  --dvd SPEC              add a DVD drive; repeatable. SPEC: [PATH][,controller=N][,location=N]
                          where PATH none or empty is an empty drive.
                          The VM gets max(1 for generation 2, highest controller= + 1) SCSI
                          controllers (at most 4). Drives without location= take the lowest free
                          location of their controller (from 0), in command-line order, after
                          the drives that name one.
  --vmbus-echo            Also offer a diagnostic VMBus echo device (not a Hyper-V device; no
                          Linux driver binds to it): it echoes every packet, for ring benchmarks.
  --stats                 On exit, print the run's statistics on stderr (uptime, vCPU time, VM
                          exits by kind) as one "vmgen: stats: key=value ..." line.
)",
            cmd_run},
};

const Command* find_command(std::string_view name)
{
    for (const auto& command : commands) {
        if (command.name == name)
            return &command;
    }
    return nullptr;
}

void print_usage(std::ostream& out)
{
    constexpr std::string_view help_usage = "help [COMMAND]";
    size_t width = help_usage.size();
    for (const auto& command : commands)
        width = std::max(width, command.name.size());
    width += 2;
    out << usage_text;
    for (const auto& command : commands)
        out << fmt::format("  {:<{}}{}\n", command.name, width, command.summary);
    out << fmt::format("  {:<{}}{}\n", help_usage, width, "Show this help or a command's");
    out << footer_text;
}

std::string pad(std::string_view text, size_t width) { return fmt::format("{:<{}}", text, width); }

} // namespace

Result<ParsedArgs> parse_args(std::string_view command, std::span<const std::string> args,
                              std::span<const OptionSpec> specs, size_t min_positionals, size_t max_positionals)
{
    ParsedArgs parsed;
    bool options_done = false;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (options_done || arg.size() < 2 || arg[0] != '-') {
            parsed.positionals.push_back(arg);
            continue;
        }
        if (arg == "--") {
            options_done = true;
            continue;
        }
        if (arg == "-h" || arg == "--help") {
            parsed.help = true;
            continue;
        }
        if (!arg.starts_with("--"))
            return fail("unknown option '{}' for {} (see 'vmgen {} --help')", arg, command, command);
        std::string_view body = std::string_view(arg).substr(2);
        std::optional<std::string> inline_value;
        if (auto eq = body.find('='); eq != std::string_view::npos) {
            inline_value = std::string(body.substr(eq + 1));
            body = body.substr(0, eq);
        }
        auto spec = std::find_if(specs.begin(), specs.end(), [&](const OptionSpec& s) { return s.name == body; });
        if (spec == specs.end())
            return fail("unknown option '--{}' for {} (see 'vmgen {} --help')", body, command, command);
        if (parsed.values.contains(body) || parsed.flags.contains(body))
            return fail("option --{} is given more than once", body);
        if (!spec->takes_value) {
            if (inline_value)
                return fail("option --{} takes no value", body);
            parsed.flags.emplace(body);
            continue;
        }
        if (!inline_value) {
            if (i + 1 >= args.size() || (args[i + 1].starts_with("--") && args[i + 1].size() > 2))
                return fail("option --{} needs a value", body);
            inline_value = args[++i];
        }
        if (spec->repeatable)
            parsed.repeated.emplace_back(std::string(body), std::move(*inline_value));
        else
            parsed.values.emplace(body, std::move(*inline_value));
    }
    if (parsed.help)
        return parsed;
    if (parsed.positionals.size() < min_positionals)
        return fail("{} needs a virtual machine name (see 'vmgen {} --help')", command, command);
    if (parsed.positionals.size() > max_positionals)
        return fail("unexpected argument '{}' for {}", parsed.positionals[max_positionals], command);
    return parsed;
}

int report_error(std::ostream& err, const Error& error)
{
    err << "vmgen: error: " << error.message() << '\n';
    return exit_error;
}

void print_command_help(std::ostream& out, std::string_view command)
{
    if (const auto* found = find_command(command))
        out << found->usage;
}

std::string format_uptime(std::chrono::nanoseconds uptime)
{
    auto total = std::chrono::duration_cast<std::chrono::seconds>(uptime).count();
    if (total < 0)
        total = 0;
    auto days = total / 86400;
    auto hours = (total / 3600) % 24;
    auto minutes = (total / 60) % 60;
    auto seconds = total % 60;
    if (days > 0)
        return fmt::format("{}.{:02}:{:02}:{:02}", days, hours, minutes, seconds);
    return fmt::format("{:02}:{:02}:{:02}", hours, minutes, seconds);
}

VmView inspect_vm(const Store& store, const StoreEntry& entry, const CliContext& context)
{
    VmView view;
    view.name = entry.name;
    view.dir = entry.dir;
    view.runtime = inspect_runtime(store.vm_dir(entry.name), entry.name, context.is_worker, context.control_timeout);
    if (entry.config) {
        view.config = *entry.config;
    } else {
        view.runtime.status = entry.config.error().message();
    }
    return view;
}

void print_table(std::ostream& out, std::span<const std::string> headers,
                 std::span<const std::vector<std::string>> rows)
{
    std::vector<size_t> widths(headers.size());
    for (size_t c = 0; c < headers.size(); ++c) {
        widths[c] = headers[c].size();
        for (const auto& row : rows)
            widths[c] = std::max(widths[c], row[c].size());
    }
    auto print_row = [&](std::span<const std::string> cells) {
        std::string line;
        for (size_t c = 0; c < cells.size(); ++c) {
            if (c + 1 == cells.size())
                line += cells[c];
            else
                line += pad(cells[c], widths[c]) + " ";
        }
        while (!line.empty() && line.back() == ' ')
            line.pop_back();
        out << line << '\n';
    };
    print_row(headers);
    std::vector<std::string> dashes;
    for (const auto& header : headers)
        dashes.emplace_back(header.size(), '-');
    print_row(dashes);
    for (const auto& row : rows)
        print_row(row);
}

void print_vm_table(std::ostream& out, std::span<const VmView> vms)
{
    const std::vector<std::string> headers = {"Name",   "State",  "CPUUsage(%)", "MemoryAssigned(M)",
                                              "Uptime", "Status", "Generation"};
    std::vector<std::vector<std::string>> rows;
    for (const auto& vm : vms) {
        rows.push_back({
            vm.name,
            std::string(to_string(vm.runtime.state)),
            fmt::format("{}", vm.runtime.cpu_usage_percent),
            fmt::format("{}", vm.runtime.memory_assigned_bytes / mib),
            format_uptime(vm.runtime.uptime),
            vm.runtime.status,
            vm.config ? fmt::format("{}", static_cast<int>(vm.config->generation)) : std::string("-"),
        });
    }
    print_table(out, headers, rows);
}

void print_vm_json(std::ostream& out, std::span<const VmView> vms)
{
    auto array = nlohmann::json::array();
    for (const auto& vm : vms) {
        nlohmann::json object = {
            {"Name", vm.name},
            {"State", std::string(to_string(vm.runtime.state))},
            {"CPUUsage", vm.runtime.cpu_usage_percent},
            {"MemoryAssigned", vm.runtime.memory_assigned_bytes},
            {"Uptime", std::chrono::duration_cast<std::chrono::seconds>(vm.runtime.uptime).count()},
            {"Status", vm.runtime.status},
            {"Path", vm.dir.string()},
            // What the worker reports ("OK", "No Contact", "Lost Communication", "Disabled"); null when Off.
            {"Heartbeat", vm.runtime.heartbeat ? nlohmann::json(*vm.runtime.heartbeat) : nlohmann::json(nullptr)},
        };
        if (vm.config) {
            auto generation = static_cast<int>(vm.config->generation);
            object["Generation"] = generation;
            object["VirtualSystemSubType"] = fmt::format("Microsoft:Hyper-V:SubType:{}", generation);
            object["ProcessorCount"] = vm.config->processors;
            object["MemoryStartup"] = vm.config->memory_bytes;
            object["Id"] = vm.config->id;
        } else {
            for (const char* key : {"Generation", "VirtualSystemSubType", "ProcessorCount", "MemoryStartup", "Id"})
                object[key] = nullptr;
        }
        array.push_back(std::move(object));
    }
    out << array.dump(2) << '\n';
}

std::string describe_outcome(std::string_view reason, std::string_view detail)
{
    auto with_detail = [&](std::string_view what) {
        return detail.empty() ? std::string(what) : fmt::format("{}: {}", what, detail);
    };
    if (reason == "reset")
        return with_detail("the guest reset the virtual machine (on-reset action: exit)");
    if (reason == "triple-fault")
        return with_detail("the guest triple-faulted");
    if (reason == "internal-error")
        return with_detail("the virtual machine stopped on an internal error");
    return {};
}

} // namespace cli

CliContext default_cli_context(MachineFactory factory)
{
    CliContext context;
    context.home = Store::default_root();
    context.host_memory_bytes = host_memory_total();
    context.machine_factory = std::move(factory);
    context.spawn_worker = spawn_worker_process;
    context.is_worker = is_worker_process;
    context.handle_signals = true;
    context.show_progress = ::isatty(STDERR_FILENO) == 1;
    return context;
}

int run_cli(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext& context)
{
    if (args.empty()) {
        cli::print_usage(err);
        return exit_error;
    }
    const std::string& name = args[0];
    if (name == "help" || name == "--help" || name == "-h") {
        if (args.size() > 1) {
            if (cli::find_command(args[1]) == nullptr)
                return cli::report_error(err, Error::format("unknown command '{}' (see 'vmgen help')", args[1]));
            cli::print_command_help(out, args[1]);
            return exit_ok;
        }
        cli::print_usage(out);
        return exit_ok;
    }
    if (name == "__worker")
        return cli::cmd_worker(args.subspan(1), out, err, context);
    const auto* command = cli::find_command(name);
    if (command == nullptr)
        return cli::report_error(err, Error::format("unknown command '{}' (see 'vmgen help')", name));
    return command->run(args.subspan(1), out, err, context);
}

} // namespace vmgen::mgmt
