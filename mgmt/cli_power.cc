// start-vm, stop-vm, run and the hidden __worker command: the commands that run virtual machines.
#include "mgmt/cli_internal.h"
#include "mgmt/control_socket.h"
#include "mgmt/scsi_settings.h"
#include "mgmt/signal_watcher.h"
#include "mgmt/vm_settings.h"

#include <signal.h>

#include <atomic>
#include <cstring>
#include <thread>

namespace vmgen::mgmt::cli {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

int finish(Result<int> result, std::ostream& err) { return result ? *result : report_error(err, result.error()); }

void sleep_for(std::chrono::milliseconds interval) { std::this_thread::sleep_for(interval); }

// Checks that the VM can be booted before a worker is started for it.
Result<void> check_bootable(const VmConfig& config, const CliContext& context)
{
    if (config.kernel.empty())
        return fail("VM '{}' has no kernel to boot: set one with 'vmgen set-vm {} --kernel FILE'", config.name,
                    config.name);
    TRY_CTX(resolve_input_file(config.kernel), "VM '{}': kernel", config.name);
    if (!config.initrd.empty())
        TRY_CTX(resolve_input_file(config.initrd), "VM '{}': initrd", config.name);
    TRY_CTX(validate_memory(config.memory_bytes, context.host_memory_bytes), "VM '{}'", config.name);
    return {};
}

// Reports how a worker started by this command ended; returns the exit status for the CLI.
int report_worker_end(std::string_view name, const std::filesystem::path& dir, const WorkerExit& exit,
                      std::ostream& err)
{
    auto last_exit = read_last_exit(dir);
    if (exit.signal != 0 && !(last_exit && last_exit->has_value())) {
        LastExit killed{.reason = "killed",
                        .exit_status = 1,
                        .detail = "the worker process died before it could report",
                        .time = utc_now_iso8601(),
                        .signal = exit.signal};
        (void)write_last_exit(dir, killed);
        ::unlink((dir / worker_pid_file).c_str());
        ::unlink((dir / control_socket_file).c_str());
        return report_error(err, Error::format("VM '{}': the worker process was killed by signal {} ({})", name,
                                               exit.signal, ::strsignal(exit.signal)));
    }
    if (!last_exit)
        return report_error(err, Error::format("VM '{}': {}", name, last_exit.error().message()));
    if (!last_exit->has_value())
        return report_error(err, Error::format("VM '{}': the worker process exited with status {} without "
                                               "reporting why; see {}",
                                               name, exit.exit_code, (dir / worker_log_file).string()));
    const auto& report = **last_exit;
    if (report.reason == "start-failed")
        return report_error(err, Error::format("VM '{}' failed to start: {}", name, report.detail));
    if (report.reason == "error" || report.reason == "killed")
        return report_error(err, Error::format("VM '{}': {}", name, describe_last_exit(report)));
    if (auto text = describe_outcome(report.reason, report.detail); !text.empty())
        err << fmt::format("vmgen: VM '{}': {}\n", name, text);
    return report.exit_status;
}

bool wait_until_gone(pid_t pid, std::string_view name, const CliContext& context,
                     std::chrono::milliseconds timeout)
{
    auto deadline = Clock::now() + timeout;
    while (context.is_worker(pid, name)) {
        if (Clock::now() >= deadline)
            return false;
        sleep_for(context.poll_interval);
    }
    return true;
}

constexpr OptionSpec start_vm_options[] = {{"wait", false}};

Result<int> start_vm(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                     const CliContext& context)
{
    auto parsed = TRY(parse_args("start-vm", args, start_vm_options, 1, 1));
    if (parsed.help) {
        print_command_help(out, "start-vm");
        return exit_ok;
    }
    const auto& name = parsed.positionals[0];
    bool wait = parsed.flag("wait");
    TRY(validate_vm_name(name));
    Store store(context.home);
    auto dir = store.vm_dir(name);

    std::atomic<bool> interrupted{false};
    std::optional<SignalWatcher> signals;
    if (wait && context.handle_signals)
        signals.emplace([&](int) { interrupted.store(true); });

    std::optional<FileLock> lock = TRY(store.lock(name));
    auto config = TRY(store.load(name));
    auto runtime = inspect_runtime(dir, name, context.is_worker, context.control_timeout);
    if (runtime.state != VmState::Off)
        return fail("VM '{}' is already {}", name, runtime.state == VmState::Running ? "running" : "starting");
    TRY(check_bootable(config, context));
    // Off: whatever runtime files remain are stale.
    for (const char* file : {worker_pid_file, control_socket_file, last_exit_file})
        ::unlink((dir / file).c_str());
    if (!context.spawn_worker)
        return fail("starting workers is not available here");
    auto worker = TRY_CTX(context.spawn_worker(dir, name, wait), "VM '{}': starting the worker", name);

    // Wait for the worker to answer on its control socket (or to end).
    auto deadline = Clock::now() + context.start_timeout;
    auto socket = dir / control_socket_file;
    for (;;) {
        if (auto exit = worker->try_wait())
            return report_worker_end(name, dir, *exit, err);
        std::error_code ec;
        if (std::filesystem::exists(socket, ec)) {
            auto reply = control_request(socket, json{{"op", "status"}}, context.control_timeout);
            if (reply && reply->is_object() && reply->value("ok", false))
                break;
        }
        if (Clock::now() >= deadline) {
            ::kill(worker->pid(), SIGKILL);
            while (!worker->try_wait())
                sleep_for(context.poll_interval);
            (void)write_last_exit(dir, LastExit{.reason = "start-failed",
                                                .exit_status = 1,
                                                .detail = "the worker did not report running in time; killed it",
                                                .time = utc_now_iso8601(),
                                                .signal = SIGKILL});
            ::unlink((dir / worker_pid_file).c_str());
            ::unlink(socket.c_str());
            return fail("VM '{}' did not report running within {} ms; the worker was killed (see {})", name,
                        context.start_timeout.count(), (dir / worker_log_file).string());
        }
        sleep_for(context.poll_interval);
    }
    lock.reset();
    if (!wait)
        return exit_ok;

    bool turned_off = false;
    for (;;) {
        if (auto exit = worker->try_wait())
            return report_worker_end(name, dir, *exit, err);
        if (interrupted.load() && !turned_off) {
            turned_off = true;
            err << fmt::format("vmgen: turning VM '{}' off\n", name);
            auto reply = control_request(socket, json{{"op", "turn-off"}}, context.control_timeout);
            if (!reply)
                ::kill(worker->pid(), SIGTERM);
        }
        sleep_for(context.poll_interval);
    }
}

constexpr OptionSpec stop_vm_options[] = {{"turn-off", false}, {"timeout"}};

// Signals an unresponsive worker: SIGTERM (its signal thread turns the machine off), then SIGKILL.
Result<int> kill_worker(const Store& store, std::string_view name, pid_t pid, std::ostream& out,
                        const CliContext& context)
{
    auto dir = store.vm_dir(name);
    out << fmt::format("The worker process of VM '{}' (pid {}) does not respond; sending SIGTERM.\n", name, pid);
    ::kill(pid, SIGTERM);
    if (wait_until_gone(pid, name, context, context.kill_grace))
        return exit_ok;
    out << fmt::format("The worker process of VM '{}' (pid {}) is still there; sending SIGKILL.\n", name, pid);
    ::kill(pid, SIGKILL);
    if (!wait_until_gone(pid, name, context, context.kill_grace))
        return fail("VM '{}': the worker process (pid {}) survived SIGKILL", name, pid);
    (void)write_last_exit(dir, LastExit{.reason = "killed",
                                        .exit_status = 1,
                                        .detail = "stop-vm killed the unresponsive worker process",
                                        .time = utc_now_iso8601(),
                                        .signal = SIGKILL});
    ::unlink((dir / worker_pid_file).c_str());
    ::unlink((dir / control_socket_file).c_str());
    out << fmt::format("VM '{}' was killed.\n", name);
    return exit_ok;
}

Result<int> stop_vm(std::span<const std::string> args, std::ostream& out, const CliContext& context)
{
    auto parsed = TRY(parse_args("stop-vm", args, stop_vm_options, 1, 1));
    if (parsed.help) {
        print_command_help(out, "stop-vm");
        return exit_ok;
    }
    const auto& name = parsed.positionals[0];
    TRY(validate_vm_name(name));
    std::chrono::seconds timeout{30};
    if (const auto* value = parsed.value("timeout")) {
        bool digits = !value->empty() && value->size() <= 6 &&
                      std::all_of(value->begin(), value->end(), [](char c) { return c >= '0' && c <= '9'; });
        if (!digits)
            return fail("invalid timeout '{}': expected a number of seconds", *value);
        timeout = std::chrono::seconds(std::stoll(*value));
    }
    Store store(context.home);
    if (!store.exists(name))
        return store.not_found(name);
    auto dir = store.vm_dir(name);
    auto runtime = inspect_runtime(dir, name, context.is_worker, context.control_timeout);
    if (runtime.state == VmState::Off) {
        out << fmt::format("VM '{}' is already off.\n", name);
        return exit_ok;
    }
    pid_t pid = runtime.pid;
    auto socket = dir / control_socket_file;
    auto request = [&](std::string_view op) {
        auto reply = control_request(socket, json{{"op", op}}, context.control_timeout);
        return reply && reply->is_object() && reply->value("ok", false);
    };

    if (!parsed.flag("turn-off")) {
        if (!request("shutdown"))
            return kill_worker(store, name, pid, out, context);
        if (wait_until_gone(pid, name, context, timeout))
            return exit_ok;
        out << fmt::format("The guest did not shut down within {} seconds; turning VM '{}' off.\n", timeout.count(),
                           name);
    }
    if (!request("turn-off"))
        return kill_worker(store, name, pid, out, context);
    if (wait_until_gone(pid, name, context, context.turn_off_timeout))
        return exit_ok;
    return kill_worker(store, name, pid, out, context);
}

constexpr OptionSpec run_options[] = {{"generation"}, {"memory"}, {"processors"}, {"kernel"},
                                      {"initrd"},     {"cmdline"}, {"com1"},     {"com2"},
                                      {"on-reset"},   {"vmbus-echo", false}, {"stats", false},
                                      {"scsi-disk", true, true}, {"dvd", true, true}};

// --scsi-disk and --dvd, in command-line order: the VM gets max(its generation's default, highest controller
// referenced + 1) SCSI controllers, and drives without location= the lowest free location of their controller.
Result<void> apply_drive_flags(const ParsedArgs& parsed, vmm::MachineConfig& config)
{
    std::vector<DriveSpec> specs;
    for (const auto& [option, value] : parsed.repeated) {
        auto kind = option == "dvd" ? ScsiDriveKind::Dvd : ScsiDriveKind::HardDisk;
        specs.push_back(TRY_CTX(parse_drive_spec(value, kind), "--{} {}", option, value));
    }
    config.scsi_controllers = default_scsi_controllers(config.generation);
    for (const auto& spec : specs)
        config.scsi_controllers = std::max(config.scsi_controllers, spec.drive.controller + 1);
    config.scsi_drives = TRY(place_drives(specs, config.scsi_controllers));
    return {};
}

Result<int> run(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext& context)
{
    auto parsed = TRY(parse_args("run", args, run_options, 0, 0));
    if (parsed.help) {
        print_command_help(out, "run");
        return exit_ok;
    }
    vmm::MachineConfig config;
    config.generation = vmm::Generation::Two;
    if (const auto* generation = parsed.value("generation"))
        config.generation = TRY(parse_generation(*generation));
    config.memory_bytes = 512 * mib;
    if (const auto* memory = parsed.value("memory"))
        config.memory_bytes = TRY(parse_memory_size(*memory));
    TRY(validate_memory(config.memory_bytes, context.host_memory_bytes));
    if (const auto* processors = parsed.value("processors"))
        config.processors = TRY(parse_processors(*processors, config.generation));
    const auto* kernel = parsed.value("kernel");
    if (kernel == nullptr)
        return fail("run needs --kernel FILE");
    config.kernel_path = TRY_CTX(resolve_input_file(*kernel), "kernel");
    if (const auto* initrd = parsed.value("initrd"); initrd != nullptr && !initrd->empty())
        config.initrd_path = TRY_CTX(resolve_input_file(*initrd), "initrd");
    if (const auto* cmdline = parsed.value("cmdline"))
        config.cmdline = *cmdline;
    if (const auto* com1 = parsed.value("com1"))
        config.com[0] = TRY_CTX(parse_com_port(*com1), "--com1");
    if (const auto* com2 = parsed.value("com2"))
        config.com[1] = TRY_CTX(parse_com_port(*com2), "--com2");
    if (const auto* on_reset = parsed.value("on-reset"))
        config.on_reset = TRY(parse_reset_action(*on_reset));
    config.vmbus_echo_device = parsed.flag("vmbus-echo");
    TRY(apply_drive_flags(parsed, config));
    if (!context.machine_factory)
        return fail("no virtual machine monitor is available");

    std::atomic<vmm::Machine*> running{nullptr};
    std::atomic<bool> stop_requested{false};
    std::optional<SignalWatcher> signals;
    if (context.handle_signals) {
        signals.emplace([&](int) {
            stop_requested.store(true);
            if (auto* machine = running.load())
                machine->turn_off();
        });
    }
    auto machine = TRY(context.machine_factory(config));
    running.store(machine.get());
    if (stop_requested.load())
        return exit_ok; // interrupted before the guest started: nothing ran
    auto outcome = machine->run();
    running.store(nullptr);
    if (!outcome)
        return fail(std::move(outcome).error());
    if (auto text = describe_outcome(vmm::to_string(outcome->reason), outcome->detail); !text.empty())
        err << "vmgen: " << text << '\n';
    if (parsed.flag("stats")) {
        auto stats = machine->stats();
        err << fmt::format("vmgen: stats: uptime_ns={} vcpu_cpu_ns={} exits={} port_io={} mmio={} msr={} "
                           "hypercall={} other={}\n",
                           stats.uptime.count(), stats.vcpu_cpu_time.count(), stats.exits.total(),
                           stats.exits.port_io, stats.exits.mmio, stats.exits.msr, stats.exits.hypercall,
                           stats.exits.other);
    }
    return vmm::exit_status(*outcome);
}

} // namespace

int cmd_start_vm(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext& context)
{
    return finish(start_vm(args, out, err, context), err);
}

int cmd_stop_vm(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext& context)
{
    return finish(stop_vm(args, out, context), err);
}

int cmd_run(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext& context)
{
    return finish(run(args, out, err, context), err);
}

int cmd_worker(std::span<const std::string> args, std::ostream& /*out*/, std::ostream& err, const CliContext& context)
{
    if (args.size() != 1)
        return report_error(err, Error("usage: vmgen __worker NAME (started by start-vm)"));
    if (auto valid = validate_vm_name(args[0]); !valid)
        return report_error(err, valid.error());
    if (!context.machine_factory)
        return report_error(err, Error("no virtual machine monitor is available"));
    Store store(context.home);
    WorkerOptions options;
    options.handle_signals = context.handle_signals;
    return run_worker(store, args[0], context.machine_factory, options);
}

} // namespace vmgen::mgmt::cli
