// Shared pieces of the CLI's command implementations (cli.cc, cli_vm.cc, cli_power.cc, cli_disk.cc,
// cli_storage.cc).
#pragma once

#include "mgmt/cli.h"
#include "mgmt/store.h"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace vmgen::mgmt::cli {

struct OptionSpec {
    std::string_view name; // without the leading "--"
    bool takes_value = true;
    bool repeatable = false; // a value option that may be given several times (ParsedArgs::all)
};

struct ParsedArgs {
    std::vector<std::string> positionals;
    std::map<std::string, std::string, std::less<>> values;
    std::set<std::string, std::less<>> flags;
    // Every value of the repeatable options, in command-line order.
    std::vector<std::pair<std::string, std::string>> repeated;
    bool help = false;

    [[nodiscard]] const std::string* value(std::string_view option) const
    {
        auto it = values.find(option);
        return it == values.end() ? nullptr : &it->second;
    }
    [[nodiscard]] bool flag(std::string_view option) const { return flags.contains(option); }
    // The values of a repeatable option, in order.
    [[nodiscard]] std::vector<std::string> all(std::string_view option) const
    {
        std::vector<std::string> out;
        for (const auto& [name, value] : repeated) {
            if (name == option)
                out.push_back(value);
        }
        return out;
    }
};

// Parses "--name value", "--name=value", "--flag", "-h/--help" and positionals ("--" ends options). An option
// given twice is an error unless its spec is repeatable.
Result<ParsedArgs> parse_args(std::string_view command, std::span<const std::string> args,
                              std::span<const OptionSpec> specs, size_t min_positionals, size_t max_positionals);

struct Command {
    std::string_view name;
    std::string_view summary;
    std::string_view usage; // full help text
    int (*run)(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext& context);
};

// Prints "vmgen: error: <message>" and returns exit_error.
int report_error(std::ostream& err, const Error& error);
void print_command_help(std::ostream& out, std::string_view command);

// "00:01:05", or "2.03:04:05" past a day (days.hh:mm:ss, like Hyper-V's Uptime).
std::string format_uptime(std::chrono::nanoseconds uptime);

// The VM as get-vm shows it.
struct VmView {
    std::string name;
    std::filesystem::path dir;
    std::optional<VmConfig> config; // empty when config.json is unusable
    VmRuntime runtime;
};
// Prints a table as Hyper-V's Format-Table does: headers, a row of dashes under them, then the rows; columns are
// left-aligned and one space apart, trailing spaces are trimmed. Every row has as many cells as headers.
void print_table(std::ostream& out, std::span<const std::string> headers,
                 std::span<const std::vector<std::string>> rows);

VmView inspect_vm(const Store& store, const StoreEntry& entry, const CliContext& context);
void print_vm_table(std::ostream& out, std::span<const VmView> vms);
void print_vm_json(std::ostream& out, std::span<const VmView> vms);

// Outcome text for a stop that was not a normal power off ("the guest triple-faulted: …"); empty otherwise.
std::string describe_outcome(std::string_view reason, std::string_view detail);

int cmd_new_vm(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_get_vm(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_set_vm(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_set_vmcomport(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_remove_vm(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_get_vmintegrationservice(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_enable_vmintegrationservice(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_disable_vmintegrationservice(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_start_vm(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_stop_vm(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_run(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_new_vhd(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_get_vhd(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_test_vhd(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_convert_vhd(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_resize_vhd(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_merge_vhd(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_optimize_vhd(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_add_vmscsicontroller(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_add_vmharddiskdrive(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_add_vmdvddrive(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_set_vmdvddrive(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_remove_vmharddiskdrive(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_remove_vmdvddrive(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_get_vmharddiskdrive(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_get_vmdvddrive(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);
int cmd_worker(std::span<const std::string>, std::ostream&, std::ostream&, const CliContext&);

} // namespace vmgen::mgmt::cli
