// get-vmintegrationservice, enable-vmintegrationservice, disable-vmintegrationservice: Hyper-V's integration
// services of a stored virtual machine (config.json's "integration_services").
#include "mgmt/cli_internal.h"
#include "mgmt/vm_settings.h"

#include <nlohmann/json.hpp>

namespace vmgen::mgmt::cli {
namespace {

int finish(Result<int> result, std::ostream& err) { return result ? *result : report_error(err, result.error()); }

struct ServiceRow {
    std::string vm_name;
    std::string name;
    bool enabled = false;
    std::string primary_status;
    std::string secondary_status;
};

// PrimaryStatusDescription: empty while the VM is Off or the service is disabled. In a VM that is not Off,
// the heartbeat and the shutdown service are what the worker reports; the other services have no VMBus device
// yet, so they show "No Contact".
std::string primary_status(const IntegrationServiceInfo& service, bool enabled, const VmRuntime& runtime)
{
    if (runtime.state == VmState::Off || !enabled)
        return {};
    if (service.enabled == &vmm::IntegrationServices::heartbeat) {
        if (!runtime.heartbeat)
            return "No Contact";
        // The running machine was built with the service off (config.json was edited behind our back).
        if (*runtime.heartbeat == vmm::to_string(vmm::HeartbeatState::Disabled))
            return {};
        return *runtime.heartbeat;
    }
    if (service.enabled == &vmm::IntegrationServices::shutdown)
        return runtime.shutdown_service.value_or("No Contact");
    return "No Contact";
}

constexpr OptionSpec get_options[] = {{"name"}, {"format"}};

Result<int> get_vmintegrationservice(std::span<const std::string> args, std::ostream& out,
                                     const CliContext& context)
{
    auto parsed = TRY(parse_args("get-vmintegrationservice", args, get_options, 1, 1));
    if (parsed.help) {
        print_command_help(out, "get-vmintegrationservice");
        return exit_ok;
    }
    const auto& name = parsed.positionals[0];
    TRY(validate_vm_name(name));
    std::string format = "table";
    if (const auto* value = parsed.value("format")) {
        if (*value != "table" && *value != "json")
            return fail("invalid format '{}': must be table or json", *value);
        format = *value;
    }
    const IntegrationServiceInfo* only = nullptr;
    if (const auto* service = parsed.value("name"))
        only = TRY(find_integration_service(*service));

    Store store(context.home);
    auto config = TRY(store.load(name));
    auto runtime = inspect_runtime(store.vm_dir(name), name, context.is_worker, context.control_timeout);
    std::vector<ServiceRow> rows;
    for (const auto& service : integration_service_list) {
        if (only != nullptr && only != &service)
            continue;
        bool enabled = config.integration_services.*service.enabled;
        rows.push_back({name, std::string(service.name), enabled, primary_status(service, enabled, runtime), ""});
    }

    if (format == "json") {
        auto array = nlohmann::json::array();
        for (const auto& row : rows) {
            array.push_back({
                {"VMName", row.vm_name},
                {"Name", row.name},
                {"Enabled", row.enabled},
                {"PrimaryStatusDescription", row.primary_status},
                {"SecondaryStatusDescription", row.secondary_status},
            });
        }
        out << array.dump(2) << '\n';
        return exit_ok;
    }
    const std::vector<std::string> headers = {"VMName", "Name", "Enabled", "PrimaryStatusDescription",
                                              "SecondaryStatusDescription"};
    std::vector<std::vector<std::string>> cells;
    for (const auto& row : rows)
        cells.push_back({row.vm_name, row.name, row.enabled ? "True" : "False", row.primary_status,
                         row.secondary_status});
    print_table(out, headers, cells);
    return exit_ok;
}

constexpr OptionSpec change_options[] = {{"name"}};

// enable-vmintegrationservice / disable-vmintegrationservice: the change is stored for the next start.
Result<int> set_vmintegrationservice(std::string_view command, bool enable, std::span<const std::string> args,
                                     std::ostream& out, const CliContext& context)
{
    auto parsed = TRY(parse_args(command, args, change_options, 1, 1));
    if (parsed.help) {
        print_command_help(out, command);
        return exit_ok;
    }
    const auto& name = parsed.positionals[0];
    TRY(validate_vm_name(name));
    const auto* service_name = parsed.value("name");
    if (service_name == nullptr)
        return fail("{} needs --name SERVICE (see 'vmgen {} --help')", command, command);
    const auto* service = TRY(find_integration_service(*service_name));

    Store store(context.home);
    auto lock = TRY(store.lock(name));
    auto config = TRY(store.load(name));
    auto runtime = inspect_runtime(store.vm_dir(name), name, context.is_worker, context.control_timeout);
    if (runtime.state != VmState::Off)
        return fail("VM '{}' is {}: integration services can be {} only while it is Off, and changes take effect at "
                    "the next start; stop the VM first ('vmgen stop-vm {}'). Enabling or disabling a service in a "
                    "running virtual machine comes with the VMBus devices",
                    name, to_string(runtime.state), enable ? "enabled" : "disabled", name);
    auto& enabled = config.integration_services.*service->enabled;
    if (enabled == enable)
        return exit_ok; // already so: nothing to write, as Hyper-V
    enabled = enable;
    TRY(store.save(config));
    return exit_ok;
}

} // namespace

int cmd_get_vmintegrationservice(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                                 const CliContext& context)
{
    return finish(get_vmintegrationservice(args, out, context), err);
}

int cmd_enable_vmintegrationservice(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                                    const CliContext& context)
{
    return finish(set_vmintegrationservice("enable-vmintegrationservice", true, args, out, context), err);
}

int cmd_disable_vmintegrationservice(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                                     const CliContext& context)
{
    return finish(set_vmintegrationservice("disable-vmintegrationservice", false, args, out, context), err);
}

} // namespace vmgen::mgmt::cli
