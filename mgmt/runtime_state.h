// A VM's runtime files and the state derived from them. The state is always the truth about the process:
// worker.pid naming a dead process, or a process that is not this VM's worker, means Off.
//
//   <dir>/worker.pid      pid of the running worker (flock'ed by it for its lifetime)
//   <dir>/control.sock    the worker's control socket (control_socket.h)
//   <dir>/worker.log      the worker's stderr (and stdout when started in the background)
//   <dir>/last-exit.json  how the last run ended: {"reason","exit_status","detail","time","signal"}
#pragma once

#include "support/result.h"

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace vmgen::mgmt {

constexpr const char* worker_pid_file = "worker.pid";
constexpr const char* control_socket_file = "control.sock";
constexpr const char* worker_log_file = "worker.log";
constexpr const char* last_exit_file = "last-exit.json";
constexpr const char* normal_status = "Operating normally";

enum class VmState { Off, Starting, Running, Stopping };
std::string_view to_string(VmState state);

// reason: a vmm::to_string(StopReason) ("power-off", "reset", "triple-fault", "internal-error", "turned-off"),
// or "start-failed" (the machine could not be created), "error" (run() failed), "killed" (the worker died
// by a signal; `signal` says which).
struct LastExit {
    std::string reason;
    int exit_status = 0;
    std::string detail;
    std::string time; // UTC ISO 8601
    int signal = 0;
};

std::string serialize_last_exit(const LastExit& last_exit);
Result<LastExit> parse_last_exit(std::string_view text);
Result<void> write_last_exit(const std::filesystem::path& dir, const LastExit& last_exit);
// Empty when the file does not exist; an error when it is unreadable or malformed.
Result<std::optional<LastExit>> read_last_exit(const std::filesystem::path& dir);
// The Status column for a VM that stopped this way ("Operating normally" after a power off).
std::string describe_last_exit(const LastExit& last_exit);

// Whether `pid` is the worker process of VM `name`. The default checks /proc/<pid>/cmdline for
// "<exe> __worker <name>"; tests substitute their own.
using WorkerProbe = std::function<bool(pid_t pid, std::string_view name)>;
[[nodiscard]] bool is_worker_process(pid_t pid, std::string_view name);

// The pid in worker.pid, if the file exists and holds one.
std::optional<pid_t> read_worker_pid(const std::filesystem::path& dir);

struct VmRuntime {
    VmState state = VmState::Off;
    pid_t pid = 0; // the live worker, 0 when Off
    std::string status = normal_status;
    std::chrono::nanoseconds uptime{0};
    uint64_t memory_assigned_bytes = 0;
    unsigned cpu_usage_percent = 0;
    // The heartbeat as the worker reports it (vmm::to_string(HeartbeatState): "OK", "No Contact", ...);
    // empty when Off or when the worker did not say.
    std::optional<std::string> heartbeat;
    // The shutdown integration service as the worker reports it ("OK" once the guest negotiated it).
    std::optional<std::string> shutdown_service;
};

// Hyper-V's text for a guest crash report (the five crash parameters), e.g. "The guest operating system
// reported that it failed with the following error codes: ErrorCode0: 0x1e, ErrorCode1: 0x0, ...".
std::string describe_guest_crash(const std::array<uint64_t, 5>& params);

// Derives the state from the runtime files in `dir`, asking a live worker for its figures over the control
// socket (waiting at most control_timeout).
VmRuntime inspect_runtime(const std::filesystem::path& dir, std::string_view name, const WorkerProbe& probe,
                          std::chrono::milliseconds control_timeout);

} // namespace vmgen::mgmt
