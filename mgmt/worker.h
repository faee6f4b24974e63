// The worker: the process that runs one stored virtual machine in the background.
//
// `vmgen start-vm NAME` re-executes /proc/self/exe as "vmgen __worker NAME" in a new session. The worker
// builds the machine from config.json, records its pid in worker.pid (flock'ed for its lifetime, so two
// workers never run one VM), serves control.sock on a thread, runs the machine on its main thread and, when
// the guest stops, writes last-exit.json and removes worker.pid and control.sock.
#pragma once

#include "mgmt/store.h"
#include "support/result.h"
#include "vmm/machine.h"

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

namespace vmgen::mgmt {

using MachineFactory = std::function<Result<std::unique_ptr<vmm::Machine>>(const vmm::MachineConfig&)>;

struct WorkerOptions {
    bool handle_signals = true; // SIGINT/SIGTERM turn the machine off cleanly
    std::chrono::milliseconds sample_interval{1000}; // CPU usage sampling period
};

// Runs VM `name` in this process until it stops. Returns the process exit status: vmm::exit_status() of the
// outcome, or 1 when the machine could not be built or run (last-exit.json says why).
int run_worker(const Store& store, std::string_view name, const MachineFactory& factory,
               const WorkerOptions& options);

// How a worker process ended: its exit code, or the signal that killed it.
struct WorkerExit {
    int exit_code = 0;
    int signal = 0; // non-zero when killed by a signal
};

// A started worker, as seen by the command that started it.
class WorkerHandle {
public:
    virtual ~WorkerHandle() = default;
    [[nodiscard]] virtual pid_t pid() const = 0;
    // Empty while the worker runs.
    virtual std::optional<WorkerExit> try_wait() = 0;
};

// Starts the worker of the VM in `vm_dir`. foreground: the worker's stdout is the caller's (start-vm
// --wait); otherwise it goes to worker.log. stderr always goes to worker.log.
using WorkerSpawner = std::function<Result<std::unique_ptr<WorkerHandle>>(
    const std::filesystem::path& vm_dir, std::string_view name, bool foreground)>;

// The real spawner: fork, setsid, exec /proc/self/exe __worker NAME.
Result<std::unique_ptr<WorkerHandle>> spawn_worker_process(const std::filesystem::path& vm_dir,
                                                           std::string_view name, bool foreground);

} // namespace vmgen::mgmt
