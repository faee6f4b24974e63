// FakeMachine: a vmm::Machine for tests of the CLI and the worker. run() blocks until turn_off(), or until
// press_power_button() when the fake guest obeys it, or returns a scripted outcome at once.
#pragma once

#include "mgmt/worker.h"
#include "vmm/machine.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace vmgen::mgmt {

struct FakeMachineScript {
    std::optional<vmm::RunOutcome> immediate; // run() returns this at once
    std::optional<Error> run_error;            // run() fails with this
    std::optional<Error> create_error;         // the factory fails with this
    bool obeys_power_button = true;
    std::optional<Error> storage_error; // every SCSI hot-plug call fails with this
    // What stats() reports while the heartbeat service is enabled (Disabled when the config turns it off).
    vmm::HeartbeatState heartbeat = vmm::HeartbeatState::NoContact;

    static FakeMachineScript stops_with(vmm::StopReason reason, std::string detail = {})
    {
        FakeMachineScript script;
        script.immediate = vmm::RunOutcome{reason, std::move(detail)};
        return script;
    }
    static FakeMachineScript fails_to_create(std::string message)
    {
        FakeMachineScript script;
        script.create_error = Error(std::move(message));
        return script;
    }
    static FakeMachineScript fails_to_run(std::string message)
    {
        FakeMachineScript script;
        script.run_error = Error(std::move(message));
        return script;
    }
    static FakeMachineScript reports_heartbeat(vmm::HeartbeatState state)
    {
        FakeMachineScript script;
        script.heartbeat = state;
        return script;
    }
    static FakeMachineScript refuses_storage_changes(std::string message)
    {
        FakeMachineScript script;
        script.storage_error = Error(std::move(message));
        return script;
    }
    static FakeMachineScript ignores_power_button()
    {
        FakeMachineScript script;
        script.obeys_power_button = false;
        return script;
    }
};

// What the fake machines of a factory saw, shared with the test.
struct FakeMachineLog {
    std::mutex mutex;
    int created = 0;
    int turn_offs = 0;
    int power_button_presses = 0;
    std::optional<vmm::MachineConfig> last_config;
    // SCSI hot-plug calls that succeeded: "add 0:1 HardDisk /x", "remove 0:1", "media 0:1 /y", "controller 1".
    std::vector<std::string> storage_changes;
};

class FakeMachine final : public vmm::Machine {
public:
    FakeMachine(vmm::MachineConfig config, FakeMachineScript script, std::shared_ptr<FakeMachineLog> log);

    Result<vmm::RunOutcome> run() override;
    void turn_off() override;
    void press_power_button() override;
    // The fake guest has no shutdown integration service: like a guest without it, it gets the power button.
    ShutdownMethod request_shutdown() override
    {
        press_power_button();
        return ShutdownMethod::PowerButton;
    }
    [[nodiscard]] vmm::MachineStats stats() const override;
    [[nodiscard]] const vmm::MachineConfig& config() const override { return m_config; }

    // SCSI storage kept in memory with the real machine's rules (controller exists, location 0-63 and free, a
    // DVD where media changes); hard disk and ISO files must exist. No image is opened.
    Result<void> add_scsi_drive(const vmm::ScsiDriveConfig& drive) override;
    Result<void> remove_scsi_drive(unsigned controller, unsigned location) override;
    Result<void> set_dvd_media(unsigned controller, unsigned location, const std::string& path) override;
    Result<unsigned> add_scsi_controller() override;
    [[nodiscard]] std::vector<vmm::ScsiDriveConfig> scsi_drives() const override;
    [[nodiscard]] unsigned scsi_controllers() const override;

private:
    void log_storage_change(std::string change);

    vmm::MachineConfig m_config;
    FakeMachineScript m_script;
    std::shared_ptr<FakeMachineLog> m_log;
    mutable std::mutex m_mutex;
    std::condition_variable m_changed;
    std::optional<vmm::StopReason> m_stop;
    unsigned m_scsi_controllers = 0;              // guarded by m_mutex
    std::vector<vmm::ScsiDriveConfig> m_scsi_drives; // guarded by m_mutex
};

MachineFactory fake_machine_factory(FakeMachineScript script, std::shared_ptr<FakeMachineLog> log);

} // namespace vmgen::mgmt
