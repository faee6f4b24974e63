// The vmgen command line: `vmgen <command> [options]`, managed like Hyper-V (new-vm, get-vm, start-vm, ...).
// docs/cli.md documents every command, option and exit status.
//
// run_cli() is the whole program minus process setup, so tests drive it in-process with a fake machine
// factory, a fake worker spawner and a temporary store.
#pragma once

#include "mgmt/runtime_state.h"
#include "mgmt/worker.h"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <ostream>
#include <span>
#include <string>

namespace vmgen::mgmt {

// Exit statuses of the CLI itself; start-vm --wait and run return vmm::exit_status() of the outcome.
constexpr int exit_ok = 0;
constexpr int exit_error = 1;

struct CliContext {
    std::filesystem::path home;    // the store root
    uint64_t host_memory_bytes = 0; // memory settings may not exceed this (0: no limit)
    MachineFactory machine_factory;
    WorkerSpawner spawn_worker;
    WorkerProbe is_worker = is_worker_process;
    bool handle_signals = false; // run, start-vm --wait and the worker turn the VM off on SIGINT/SIGTERM
    std::chrono::milliseconds start_timeout{30'000};  // start-vm: until the worker must report running
    std::chrono::milliseconds control_timeout{2'000}; // one control socket request
    // A storage change sent to a running worker (opening an image, waiting for a removed drive's I/O).
    std::chrono::milliseconds storage_timeout{30'000};
    std::chrono::milliseconds turn_off_timeout{10'000}; // stop-vm: after turn-off, until the worker must be gone
    std::chrono::milliseconds kill_grace{5'000};        // stop-vm: after SIGTERM, before SIGKILL
    std::chrono::milliseconds poll_interval{20};
    bool show_progress = false; // long disk commands draw a progress bar on `err` (set when stderr is a terminal)
};

// The context of the real program: the store at Store::default_root(), the host's MemTotal, the real worker
// spawner and /proc probe, signal handling on, progress bars when stderr is a terminal.
CliContext default_cli_context(MachineFactory factory);

// Runs one command (args excludes the program name). Output goes to `out`, errors to `err` as
// "vmgen: error: <message>". Returns the process exit status.
int run_cli(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext& context);

} // namespace vmgen::mgmt
