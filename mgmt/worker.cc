#include "mgmt/worker.h"

#include "mgmt/control_socket.h"
#include "mgmt/runtime_state.h"
#include "mgmt/scsi_settings.h"
#include "mgmt/signal_watcher.h"
#include "support/errno_error.h"
#include "support/log.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <mutex>
#include <thread>
#include <vector>

namespace vmgen::mgmt {
namespace {

using nlohmann::json;

// Takes worker.pid's flock (failing when another worker holds it) and writes our pid into it.
Result<FileLock> claim_pid_file(const std::filesystem::path& dir, std::string_view name)
{
    auto path = dir / worker_pid_file;
    for (;;) {
        bool busy = false;
        auto lock = FileLock::acquire(path, FileLock::Mode::TryOnce, &busy);
        if (!lock) {
            if (busy)
                return fail("VM '{}' is already running", name);
            return fail(lock.error());
        }
        // The previous worker may have unlinked the file between our open and our flock: retry on the new one.
        struct stat held {};
        struct stat current {};
        if (::fstat(lock->fd(), &held) != 0)
            return errno_failure(path.string());
        if (::stat(path.c_str(), &current) != 0 || held.st_ino != current.st_ino || held.st_dev != current.st_dev)
            continue;
        auto text = fmt::format("{}\n", ::getpid());
        if (::ftruncate(lock->fd(), 0) != 0 ||
            ::pwrite(lock->fd(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
            return errno_failure(fmt::format("writing {}", path.string()));
        return lock;
    }
}

void record_exit(const std::filesystem::path& dir, std::string_view name, std::string reason, int exit_status,
                 std::string detail)
{
    LastExit last_exit;
    last_exit.reason = std::move(reason);
    last_exit.exit_status = exit_status;
    last_exit.detail = std::move(detail);
    last_exit.time = utc_now_iso8601();
    if (auto written = write_last_exit(dir, last_exit); !written)
        log_error("worker", "VM '{}': {}", name, written.error().message());
}

// CPU usage over the last sampling interval, as a percentage of the VM's processors.
class CpuSampler {
public:
    explicit CpuSampler(unsigned processors) : m_processors(processors) {}

    void sample(const vmm::MachineStats& stats)
    {
        std::lock_guard guard(m_mutex);
        auto now = std::chrono::steady_clock::now();
        if (m_have_sample) {
            auto wall = std::chrono::duration<double>(now - m_last_time).count();
            auto cpu = std::chrono::duration<double>(stats.vcpu_cpu_time - m_last_cpu).count();
            if (wall > 0 && m_processors > 0) {
                auto percent = std::lround(100.0 * cpu / (wall * m_processors));
                m_percent = static_cast<unsigned>(std::clamp<long>(percent, 0, 100));
            }
        }
        m_have_sample = true;
        m_last_time = now;
        m_last_cpu = stats.vcpu_cpu_time;
    }

    unsigned percent() const
    {
        std::lock_guard guard(m_mutex);
        return m_percent;
    }

private:
    mutable std::mutex m_mutex;
    unsigned m_processors;
    bool m_have_sample = false;
    std::chrono::steady_clock::time_point m_last_time{};
    std::chrono::nanoseconds m_last_cpu{0};
    unsigned m_percent = 0;
};

Result<unsigned> request_unsigned(const json& request, const char* key)
{
    auto it = request.find(key);
    if (it == request.end() || !it->is_number_unsigned())
        return fail("'{}' must be a non-negative whole number", key);
    auto value = it->get<uint64_t>();
    if (value > 0xffff)
        return fail("'{}' is out of range", key);
    return static_cast<unsigned>(value);
}

Result<std::string> request_string(const json& request, const char* key)
{
    auto it = request.find(key);
    if (it == request.end() || !it->is_string())
        return fail("'{}' must be a string", key);
    return it->get<std::string>();
}

json drive_json(const vmm::ScsiDriveConfig& drive)
{
    return {{"type", std::string(to_string(drive.kind))},
            {"controller", drive.controller},
            {"location", drive.location},
            {"path", drive.path},
            {"read_only", drive.read_only}};
}

// The storage ops of the control socket (control_socket.h): hot plug on the running machine.
Result<json> storage_op(vmm::Machine& machine, const std::string& op, const json& request)
{
    if (op == "scsi-list") {
        auto drives = json::array();
        for (const auto& drive : machine.scsi_drives())
            drives.push_back(drive_json(drive));
        return json{{"ok", true}, {"controllers", machine.scsi_controllers()}, {"drives", drives}};
    }
    if (op == "scsi-controller-add") {
        auto number = TRY(machine.add_scsi_controller());
        return json{{"ok", true}, {"controller", number}};
    }
    auto controller = TRY(request_unsigned(request, "controller"));
    auto location = TRY(request_unsigned(request, "location"));
    if (op == "scsi-remove") {
        TRY(machine.remove_scsi_drive(controller, location));
    } else if (op == "dvd-media") {
        auto path = TRY(request_string(request, "path"));
        TRY(machine.set_dvd_media(controller, location, path));
    } else {
        vmm::ScsiDriveConfig drive;
        auto type = TRY(request_string(request, "type"));
        drive.kind = TRY(parse_drive_kind(type));
        drive.controller = controller;
        drive.location = location;
        drive.path = TRY(request_string(request, "path"));
        auto read_only = request.find("read_only");
        if (read_only != request.end() && !read_only->is_boolean())
            return fail("'read_only' must be a boolean");
        drive.read_only = drive.kind == ScsiDriveKind::Dvd || (read_only != request.end() && read_only->get<bool>());
        TRY(machine.add_scsi_drive(drive));
    }
    return json{{"ok", true}};
}

// A guest may eject a DVD while it runs: config.json then forgets that medium too, as Hyper-V's configuration
// does. Only drives still holding the medium config.json names are changed. The VM's lock is only tried for a
// while: start-vm holds it until the worker reports running, and a worker that stopped before that must not wait
// for it.
void persist_guest_ejects(const Store& store, std::string_view name, const std::vector<vmm::ScsiDriveConfig>& now)
{
    auto ejected = [&](const VmConfig& config) {
        std::vector<size_t> out;
        for (size_t i = 0; i < config.scsi_drives.size(); ++i) {
            const auto& drive = config.scsi_drives[i];
            if (drive.kind != ScsiDriveKind::Dvd || drive.path.empty())
                continue;
            const auto* live = find_drive(now, drive.controller, drive.location);
            if (live != nullptr && live->kind == ScsiDriveKind::Dvd && live->path.empty())
                out.push_back(i);
        }
        return out;
    };
    auto unlocked = store.load(name);
    if (!unlocked || ejected(*unlocked).empty())
        return;
    std::optional<FileLock> lock;
    for (int attempt = 0; attempt < 250 && !lock; ++attempt) {
        auto taken = FileLock::acquire(store.vm_dir(name) / ".lock", FileLock::Mode::TryOnce);
        if (taken)
            lock.emplace(std::move(*taken));
        else
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    auto config = store.load(name);
    if (!lock || !config) {
        log_warn("worker", "VM '{}': the guest ejected a DVD but config.json could not be updated", name);
        return;
    }
    for (size_t i : ejected(*config)) {
        auto& drive = config->scsi_drives[i];
        log_info("worker", "VM '{}': SCSI {}:{}: the guest ejected {}", name, drive.controller, drive.location,
                 drive.path);
        drive.path.clear();
    }
    if (auto saved = store.save(*config); !saved)
        log_error("worker", "VM '{}': recording the guest's DVD eject: {}", name, saved.error().message());
}

} // namespace

int run_worker(const Store& store, std::string_view name, const MachineFactory& factory,
               const WorkerOptions& options)
{
    std::atomic<vmm::Machine*> running_machine{nullptr};
    std::atomic<bool> stop_requested{false};
    std::atomic<bool> stopping{false};
    std::optional<SignalWatcher> signals;
    if (options.handle_signals) {
        signals.emplace([&](int signal) {
            log_warn("worker", "VM '{}': signal {} received, turning the virtual machine off", name, signal);
            stop_requested.store(true);
            stopping.store(true);
            if (auto* machine = running_machine.load())
                machine->turn_off();
        });
    }

    auto dir = store.vm_dir(name);
    auto config = store.load(name);
    if (!config) {
        log_error("worker", "{}", config.error().message());
        if (store.exists(name))
            record_exit(dir, name, "start-failed", 1, config.error().message());
        return 1;
    }
    auto pid_lock = claim_pid_file(dir, name);
    if (!pid_lock) {
        log_error("worker", "{}", pid_lock.error().message());
        return 1;
    }
    ::unlink((dir / last_exit_file).c_str());
    ::unlink((dir / control_socket_file).c_str());
    auto remove_pid_file = [&] { ::unlink((dir / worker_pid_file).c_str()); };

    auto machine_config = to_machine_config(*config);
    Result<std::unique_ptr<vmm::Machine>> created =
        machine_config.kernel_path.empty()
            ? Result<std::unique_ptr<vmm::Machine>>(fail("the virtual machine has no kernel to boot"))
            : factory(machine_config);
    if (!created) {
        log_error("worker", "VM '{}': {}", name, created.error().message());
        record_exit(dir, name, "start-failed", 1, created.error().message());
        remove_pid_file();
        return 1;
    }
    std::unique_ptr<vmm::Machine> machine = std::move(*created);
    running_machine.store(machine.get());

    CpuSampler sampler(config->processors);
    sampler.sample(machine->stats());
    auto handler = [&](const json& request) -> json {
        if (!request.is_object() || !request.contains("op") || !request["op"].is_string())
            return {{"ok", false}, {"error", "a request is an object with a string 'op'"}};
        auto op = request["op"].get<std::string>();
        if (op == "status") {
            auto stats = machine->stats();
            return {
                {"ok", true},
                {"state", stopping.load() ? "Stopping" : "Running"},
                {"uptime_ns", stats.uptime.count()},
                {"vcpu_cpu_time_ns", stats.vcpu_cpu_time.count()},
                {"memory_bytes", stats.memory_assigned_bytes},
                {"cpu_usage_percent", sampler.percent()},
                {"processors", machine->config().processors},
                {"resets", stats.resets},
                {"heartbeat", std::string(vmm::to_string(stats.heartbeat))},
                {"shutdown_service", stats.shutdown_service_ready ? "OK" : "No Contact"},
                {"guest_crash", stats.guest_crash ? json(*stats.guest_crash) : json(nullptr)},
                {"pid", ::getpid()},
            };
        }
        if (op == "turn-off") {
            log_info("worker", "VM '{}': turned off through the control socket", name);
            stopping.store(true);
            machine->turn_off();
            return {{"ok", true}};
        }
        if (op == "shutdown") {
            bool ic = machine->request_shutdown() == vmm::Machine::ShutdownMethod::IntegrationService;
            log_info("worker", "VM '{}': asked the guest to shut down ({})", name,
                     ic ? "shutdown integration service" : "ACPI power button");
            return {{"ok", true}, {"method", ic ? "integration-service" : "power-button"}};
        }
        if (op == "scsi-add" || op == "scsi-remove" || op == "dvd-media" || op == "scsi-controller-add" ||
            op == "scsi-list") {
            auto reply = storage_op(*machine, op, request);
            if (!reply) {
                log_warn("worker", "VM '{}': {}: {}", name, op, reply.error().message());
                return {{"ok", false}, {"error", reply.error().message()}};
            }
            return *reply;
        }
        return {{"ok", false}, {"error", fmt::format("unknown op '{}'", op)}};
    };
    auto control = ControlServer::start(
        dir / control_socket_file, handler, [&] { sampler.sample(machine->stats()); }, options.sample_interval);
    if (!control) {
        log_error("worker", "VM '{}': control socket: {}", name, control.error().message());
        running_machine.store(nullptr);
        machine.reset();
        record_exit(dir, name, "start-failed", 1, fmt::format("control socket: {}", control.error().message()));
        remove_pid_file();
        return 1;
    }

    Result<vmm::RunOutcome> outcome = vmm::RunOutcome{vmm::StopReason::TurnedOff, "turned off before it started"};
    if (!stop_requested.load())
        outcome = machine->run();
    (*control)->stop();
    running_machine.store(nullptr);
    persist_guest_ejects(store, name, machine->scsi_drives());
    auto guest_crash = machine->stats().guest_crash;
    machine.reset();

    int status = 1;
    if (!outcome) {
        log_error("worker", "VM '{}': {}", name, outcome.error().message());
        record_exit(dir, name, "error", 1, outcome.error().message());
    } else {
        status = vmm::exit_status(*outcome);
        log_info("worker", "VM '{}' stopped: {} {}", name, vmm::to_string(outcome->reason), outcome->detail);
        if (guest_crash)
            record_exit(dir, name, "guest-crashed", status, describe_guest_crash(*guest_crash));
        else
            record_exit(dir, name, std::string(vmm::to_string(outcome->reason)), status, outcome->detail);
    }
    remove_pid_file();
    return status;
}

namespace {

class ChildWorker final : public WorkerHandle {
public:
    explicit ChildWorker(pid_t pid) : m_pid(pid) {}
    [[nodiscard]] pid_t pid() const override { return m_pid; }
    std::optional<WorkerExit> try_wait() override
    {
        if (m_exit)
            return m_exit;
        int status = 0;
        auto done = ::waitpid(m_pid, &status, WNOHANG);
        if (done == 0 || (done < 0 && errno == EINTR))
            return std::nullopt;
        if (done < 0) {
            m_exit = WorkerExit{.exit_code = 1, .signal = 0};
        } else if (WIFSIGNALED(status)) {
            m_exit = WorkerExit{.exit_code = 128 + WTERMSIG(status), .signal = WTERMSIG(status)};
        } else {
            m_exit = WorkerExit{.exit_code = WEXITSTATUS(status), .signal = 0};
        }
        return m_exit;
    }

private:
    pid_t m_pid;
    std::optional<WorkerExit> m_exit;
};

} // namespace

Result<std::unique_ptr<WorkerHandle>> spawn_worker_process(const std::filesystem::path& vm_dir,
                                                           std::string_view name, bool foreground)
{
    // Everything the child needs is prepared here: between fork and exec only async-signal-safe calls.
    auto log_path = vm_dir / worker_log_file;
    UniqueFd log_fd(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!log_fd.valid())
        return errno_failure(fmt::format("opening {}", log_path.string()));
    UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!null_fd.valid())
        return errno_failure("opening /dev/null");
    std::string exe = "/proc/self/exe";
    std::string arg0 = "vmgen";
    std::string arg1 = "__worker";
    std::string arg2(name);
    std::vector<char*> argv = {arg0.data(), arg1.data(), arg2.data(), nullptr};

    pid_t pid = ::fork();
    if (pid < 0)
        return errno_failure("fork");
    if (pid == 0) {
        ::setsid();
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::dup2(null_fd.get(), STDIN_FILENO);
        if (!foreground)
            ::dup2(log_fd.get(), STDOUT_FILENO);
        ::dup2(log_fd.get(), STDERR_FILENO);
        ::execv(exe.c_str(), argv.data());
        static constexpr char message[] = "vmgen: cannot execute /proc/self/exe for the worker\n";
        auto written = ::write(STDERR_FILENO, message, sizeof message - 1);
        (void)written;
        ::_exit(127);
    }
    return std::unique_ptr<WorkerHandle>(std::make_unique<ChildWorker>(pid));
}

} // namespace vmgen::mgmt
