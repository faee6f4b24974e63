// new-vm, get-vm, set-vm, set-vmcomport, remove-vm: the commands that work on the store.
#include "mgmt/cli_internal.h"
#include "mgmt/scsi_settings.h"
#include "mgmt/vm_settings.h"

namespace vmgen::mgmt::cli {
namespace {

constexpr uint64_t default_memory_bytes = 1ull << 30;

int finish(Result<int> result, std::ostream& err) { return result ? *result : report_error(err, result.error()); }

Result<void> require_off(const Store& store, std::string_view name, const CliContext& context,
                         std::string_view action)
{
    auto runtime = inspect_runtime(store.vm_dir(name), name, context.is_worker, context.control_timeout);
    if (runtime.state != VmState::Off)
        return fail("VM '{}' is {}: {} only while it is Off (stop it with 'vmgen stop-vm {}')", name,
                    to_string(runtime.state), action, name);
    return {};
}

// The settings new-vm and set-vm share, parsed before the store is touched.
struct SettingChanges {
    std::optional<uint64_t> memory;
    std::optional<std::string> processors; // checked against the generation
    std::optional<std::string> kernel;
    std::optional<std::string> initrd;
    std::optional<std::string> cmdline;
    std::optional<vmm::ResetAction> on_reset;
};

Result<SettingChanges> parse_changes(const ParsedArgs& parsed, const CliContext& context)
{
    SettingChanges changes;
    if (const auto* memory = parsed.value("memory")) {
        auto bytes = TRY(parse_memory_size(*memory));
        TRY(validate_memory(bytes, context.host_memory_bytes));
        changes.memory = bytes;
    }
    if (const auto* processors = parsed.value("processors"))
        changes.processors = *processors;
    if (const auto* kernel = parsed.value("kernel"))
        changes.kernel = kernel->empty() ? std::string() : TRY_CTX(resolve_input_file(*kernel), "kernel");
    if (const auto* initrd = parsed.value("initrd"))
        changes.initrd = initrd->empty() ? std::string() : TRY_CTX(resolve_input_file(*initrd), "initrd");
    if (const auto* cmdline = parsed.value("cmdline"))
        changes.cmdline = *cmdline;
    if (const auto* on_reset = parsed.value("on-reset"))
        changes.on_reset = TRY(parse_reset_action(*on_reset));
    return changes;
}

Result<void> apply_changes(VmConfig& config, const SettingChanges& changes)
{
    if (changes.memory)
        config.memory_bytes = *changes.memory;
    if (changes.processors)
        config.processors = TRY(parse_processors(*changes.processors, config.generation));
    if (changes.kernel)
        config.kernel = *changes.kernel;
    if (changes.initrd)
        config.initrd = *changes.initrd;
    if (changes.cmdline)
        config.cmdline = *changes.cmdline;
    if (changes.on_reset)
        config.on_reset = *changes.on_reset;
    return {};
}

constexpr OptionSpec new_vm_options[] = {{"generation"}, {"memory"},  {"processors"}, {"kernel"},
                                         {"initrd"},     {"cmdline"}, {"on-reset"}};

Result<int> new_vm(std::span<const std::string> args, std::ostream& out, const CliContext& context)
{
    auto parsed = TRY(parse_args("new-vm", args, new_vm_options, 1, 1));
    if (parsed.help) {
        print_command_help(out, "new-vm");
        return exit_ok;
    }
    VmConfig config;
    config.name = parsed.positionals[0];
    TRY(validate_vm_name(config.name));
    if (const auto* generation = parsed.value("generation"))
        config.generation = TRY(parse_generation(*generation));
    config.scsi_controllers = default_scsi_controllers(config.generation); // Hyper-V's New-VM
    auto changes = TRY(parse_changes(parsed, context));
    if (!changes.memory) {
        TRY_CTX(validate_memory(default_memory_bytes, context.host_memory_bytes), "the default memory (1G)");
        config.memory_bytes = default_memory_bytes;
    }
    TRY(apply_changes(config, changes));
    config.id = new_uuid();
    config.created = utc_now_iso8601();

    Store store(context.home);
    TRY(store.create(config));
    StoreEntry entry{config.name, store.vm_dir(config.name), config};
    std::vector<VmView> views = {inspect_vm(store, entry, context)};
    print_vm_table(out, views);
    return exit_ok;
}

constexpr OptionSpec get_vm_options[] = {{"format"}};

Result<int> get_vm(std::span<const std::string> args, std::ostream& out, const CliContext& context)
{
    auto parsed = TRY(parse_args("get-vm", args, get_vm_options, 0, 1));
    if (parsed.help) {
        print_command_help(out, "get-vm");
        return exit_ok;
    }
    std::string format = "table";
    if (const auto* value = parsed.value("format")) {
        if (*value != "table" && *value != "json")
            return fail("invalid format '{}': must be table or json", *value);
        format = *value;
    }
    Store store(context.home);
    std::vector<VmView> views;
    if (!parsed.positionals.empty()) {
        const auto& name = parsed.positionals[0];
        auto config = TRY(store.load(name));
        views.push_back(inspect_vm(store, StoreEntry{name, store.vm_dir(name), config}, context));
    } else {
        for (const auto& entry : TRY(store.list()))
            views.push_back(inspect_vm(store, entry, context));
    }
    if (format == "json")
        print_vm_json(out, views);
    else if (!views.empty() || !parsed.positionals.empty())
        print_vm_table(out, views);
    return exit_ok;
}

constexpr OptionSpec set_vm_options[] = {{"generation"}, {"memory"},  {"processors"}, {"kernel"},
                                         {"initrd"},     {"cmdline"}, {"on-reset"}};

Result<int> set_vm(std::span<const std::string> args, std::ostream& out, const CliContext& context)
{
    auto parsed = TRY(parse_args("set-vm", args, set_vm_options, 1, 1));
    if (parsed.help) {
        print_command_help(out, "set-vm");
        return exit_ok;
    }
    const auto& name = parsed.positionals[0];
    if (parsed.value("generation") != nullptr)
        return fail("the generation of a virtual machine is fixed when it is created");
    TRY(validate_vm_name(name));
    auto changes = TRY(parse_changes(parsed, context));

    Store store(context.home);
    auto lock = TRY(store.lock(name));
    auto config = TRY(store.load(name));
    TRY(require_off(store, name, context, "settings can be changed"));
    TRY(apply_changes(config, changes));
    TRY(store.save(config));
    return exit_ok;
}

constexpr OptionSpec set_vmcomport_options[] = {{"number"}, {"path"}};

Result<int> set_vmcomport(std::span<const std::string> args, std::ostream& out, const CliContext& context)
{
    auto parsed = TRY(parse_args("set-vmcomport", args, set_vmcomport_options, 1, 1));
    if (parsed.help) {
        print_command_help(out, "set-vmcomport");
        return exit_ok;
    }
    const auto& name = parsed.positionals[0];
    TRY(validate_vm_name(name));
    const auto* number = parsed.value("number");
    if (number == nullptr)
        return fail("set-vmcomport needs --number 1|2");
    if (*number != "1" && *number != "2")
        return fail("invalid COM port number '{}': must be 1 or 2", *number);
    const auto* path = parsed.value("path");
    if (path == nullptr)
        return fail("set-vmcomport needs --path file:FILE|unix:SOCKET|stdio|none");
    auto port = TRY(parse_com_port(*path));

    Store store(context.home);
    auto lock = TRY(store.lock(name));
    auto config = TRY(store.load(name));
    TRY(require_off(store, name, context, "COM ports can be changed"));
    config.com[*number == "1" ? 0 : 1] = port;
    TRY(store.save(config));
    return exit_ok;
}

Result<int> remove_vm(std::span<const std::string> args, std::ostream& out, const CliContext& context)
{
    auto parsed = TRY(parse_args("remove-vm", args, {}, 1, 1));
    if (parsed.help) {
        print_command_help(out, "remove-vm");
        return exit_ok;
    }
    const auto& name = parsed.positionals[0];
    TRY(validate_vm_name(name));
    Store store(context.home);
    // A virtual machine whose config is broken can still be removed.
    auto lock = TRY(store.lock(name));
    TRY(require_off(store, name, context, "it can be removed"));
    TRY(store.remove(name));
    return exit_ok;
}

} // namespace

int cmd_new_vm(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext& context)
{
    return finish(new_vm(args, out, context), err);
}

int cmd_get_vm(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext& context)
{
    return finish(get_vm(args, out, context), err);
}

int cmd_set_vm(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext& context)
{
    return finish(set_vm(args, out, context), err);
}

int cmd_set_vmcomport(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                      const CliContext& context)
{
    return finish(set_vmcomport(args, out, context), err);
}

int cmd_remove_vm(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext& context)
{
    return finish(remove_vm(args, out, context), err);
}

} // namespace vmgen::mgmt::cli
