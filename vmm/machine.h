// Machine: a generation 1 or generation 2 virtual machine assembled on KVM, run until the guest stops.
//
//   auto machine = TRY(Machine::create(config));
//   auto outcome = TRY(machine->run());   // blocks; vCPUs run on their own threads
//   return exit_status(outcome);
//
// turn_off(), press_power_button() and the SCSI storage calls may be called from any thread (control socket,
// signal handler thread) while run() is blocked, and before or after it.
#pragma once

#include "support/result.h"
#include "vmm/machine_config.h"

#include <array>
#include <chrono>
#include <optional>
#include <memory>
#include <string>
#include <vector>

namespace vmgen::vmm {

enum class StopReason {
    PowerOff,      // ACPI S5 from the guest
    Reset,         // guest reset with ResetAction::Exit
    TripleFault,   // KVM_EXIT_SHUTDOWN
    InternalError, // KVM internal error / emulation failure / unexpected exit (detail says which)
    TurnedOff,     // turn_off() was called
};

struct RunOutcome {
    StopReason reason = StopReason::PowerOff;
    std::string detail; // human-readable: registers on a crash, the exit kind on an internal error
};

// Process exit status the CLI reports for an outcome (documented in docs/cli.md):
// 0 power off or turned off, 3 guest reset (ResetAction::Exit), 4 triple fault, 5 internal error.
[[nodiscard]] int exit_status(const RunOutcome& outcome);
[[nodiscard]] std::string_view to_string(StopReason reason);

// The heartbeat integration service as Get-VM's Heartbeat shows it.
enum class HeartbeatState {
    Disabled,          // the service is disabled for this VM
    NoContact,         // the guest has not (yet) answered a heartbeat
    Ok,                // the guest answers heartbeats
    LostCommunication, // the guest answered before but stopped answering
};
[[nodiscard]] std::string_view to_string(HeartbeatState state); // "OK", "No Contact", ...

struct MachineStats {
    std::chrono::nanoseconds uptime{0};
    std::chrono::nanoseconds vcpu_cpu_time{0}; // CPU time consumed by all vCPU threads
    uint64_t memory_assigned_bytes = 0;
    unsigned resets = 0;
    HeartbeatState heartbeat = HeartbeatState::NoContact;
    // The guest negotiated the shutdown integration service (stop-vm can ask it to shut down).
    bool shutdown_service_ready = false;
    // VM exits handled in userspace since the machine started, all vCPUs: the cost model of every device.
    struct Exits {
        uint64_t port_io = 0;   // port I/O, hypercalls excluded
        uint64_t mmio = 0;
        uint64_t msr = 0;
        uint64_t hypercall = 0; // the Hyper-V hypercall page's port-I/O stub
        uint64_t other = 0;     // EOI exits, kicks, ...
        [[nodiscard]] uint64_t total() const { return port_io + mmio + msr + hypercall + other; }
    };
    Exits exits{};
    // The guest's last crash report through the Hyper-V crash MSRs (P0-P4), like Hyper-V's guest crash event.
    std::optional<std::array<uint64_t, 5>> guest_crash;
};

class Machine {
public:
    static Result<std::unique_ptr<Machine>> create(const MachineConfig& config);
    virtual ~Machine() = default;

    // Runs the guest until it powers off, resets (with ResetAction::Exit), crashes or is turned off.
    // A reset with ResetAction::Restart reloads the kernel and starts again without returning.
    virtual Result<RunOutcome> run() = 0;

    // Pulls the power: every vCPU stops, run() returns TurnedOff.
    virtual void turn_off() = 0;
    // Presses the ACPI power button (a guest with an ACPI OS shuts down in response).
    virtual void press_power_button() = 0;

    // Asks the guest to shut down as Hyper-V's Stop-VM does: through the shutdown integration service when
    // the guest has negotiated it, else by pressing the ACPI power button. Says which it used.
    enum class ShutdownMethod { IntegrationService, PowerButton };
    virtual ShutdownMethod request_shutdown() = 0;

    [[nodiscard]] virtual MachineStats stats() const = 0;
    // The configuration the machine was created with (later storage changes are not reflected here: see
    // scsi_drives() and scsi_controllers()).
    [[nodiscard]] virtual const MachineConfig& config() const = 0;

    // SCSI storage, changed while the guest runs (hot plug) or not. The changes last for the machine's lifetime,
    // guest resets included. Errors (nothing changes): no such controller, a location out of range or taken, an
    // image that cannot be opened, no drive at a location.
    //
    // Attaches a hard disk or DVD drive (the guest's storvsc rescans and finds it).
    virtual Result<void> add_scsi_drive(const ScsiDriveConfig& drive) = 0;
    // Detaches a drive once the commands it is executing have completed; its image is closed before this returns.
    virtual Result<void> remove_scsi_drive(unsigned controller, unsigned location) = 0;
    // Inserts an ISO image into a DVD drive, replacing its media; an empty path ejects the media.
    virtual Result<void> set_dvd_media(unsigned controller, unsigned location, const std::string& path) = 0;
    // Adds a SCSI controller (a new VMBus offer); returns its number.
    virtual Result<unsigned> add_scsi_controller() = 0;
    // What is attached now, ordered by controller and location. A DVD drive whose media the guest ejected shows
    // an empty path.
    [[nodiscard]] virtual std::vector<ScsiDriveConfig> scsi_drives() const = 0;
    [[nodiscard]] virtual unsigned scsi_controllers() const = 0;
};

} // namespace vmgen::vmm
