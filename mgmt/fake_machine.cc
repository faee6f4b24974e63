#include "mgmt/fake_machine.h"

#include "mgmt/scsi_settings.h"

#include <algorithm>
#include <filesystem>

namespace vmgen::mgmt {

FakeMachine::FakeMachine(vmm::MachineConfig config, FakeMachineScript script, std::shared_ptr<FakeMachineLog> log)
    : m_config(std::move(config)), m_script(std::move(script)), m_log(std::move(log)),
      m_scsi_controllers(m_config.scsi_controllers), m_scsi_drives(m_config.scsi_drives)
{
    sort_drives(m_scsi_drives);
}

void FakeMachine::log_storage_change(std::string change)
{
    std::lock_guard guard(m_log->mutex);
    m_log->storage_changes.push_back(std::move(change));
}

Result<void> FakeMachine::add_scsi_drive(const vmm::ScsiDriveConfig& drive)
{
    if (m_script.storage_error)
        return fail(*m_script.storage_error);
    {
        std::lock_guard guard(m_mutex);
        auto where = fmt::format("SCSI {}:{}", drive.controller, drive.location);
        if (drive.controller >= m_scsi_controllers)
            return fail("{}: SCSI controller {} does not exist", where, drive.controller);
        if (drive.location >= vmm::max_scsi_locations)
            return fail("{}: location {} is out of range", where, drive.location);
        if (find_drive(m_scsi_drives, drive.controller, drive.location) != nullptr)
            return fail("{}: location {} of SCSI controller {} is taken", where, drive.location, drive.controller);
        std::error_code ec;
        if (!drive.path.empty() && !std::filesystem::exists(drive.path, ec))
            return fail("{}: opening image '{}': No such file or directory", where, drive.path);
        m_scsi_drives.push_back(drive);
        if (drive.kind == vmm::ScsiDriveConfig::Kind::Dvd)
            m_scsi_drives.back().read_only = true;
        sort_drives(m_scsi_drives);
    }
    log_storage_change(fmt::format("add {}:{} {} {}", drive.controller, drive.location, to_string(drive.kind),
                                   drive.path));
    return {};
}

Result<void> FakeMachine::remove_scsi_drive(unsigned controller, unsigned location)
{
    if (m_script.storage_error)
        return fail(*m_script.storage_error);
    {
        std::lock_guard guard(m_mutex);
        auto it = std::find_if(m_scsi_drives.begin(), m_scsi_drives.end(), [&](const auto& d) {
            return d.controller == controller && d.location == location;
        });
        if (it == m_scsi_drives.end())
            return fail("SCSI {}:{}: no drive is attached there", controller, location);
        m_scsi_drives.erase(it);
    }
    log_storage_change(fmt::format("remove {}:{}", controller, location));
    return {};
}

Result<void> FakeMachine::set_dvd_media(unsigned controller, unsigned location, const std::string& path)
{
    if (m_script.storage_error)
        return fail(*m_script.storage_error);
    {
        std::lock_guard guard(m_mutex);
        auto it = std::find_if(m_scsi_drives.begin(), m_scsi_drives.end(), [&](const auto& d) {
            return d.controller == controller && d.location == location;
        });
        if (it == m_scsi_drives.end())
            return fail("SCSI {}:{}: no drive is attached there", controller, location);
        if (it->kind != vmm::ScsiDriveConfig::Kind::Dvd)
            return fail("SCSI {}:{} holds a hard disk, not a DVD drive", controller, location);
        std::error_code ec;
        if (!path.empty() && !std::filesystem::exists(path, ec))
            return fail("SCSI {}:{}: opening ISO image '{}': No such file or directory", controller, location, path);
        it->path = path;
    }
    log_storage_change(fmt::format("media {}:{} {}", controller, location, path));
    return {};
}

Result<unsigned> FakeMachine::add_scsi_controller()
{
    if (m_script.storage_error)
        return fail(*m_script.storage_error);
    unsigned number = 0;
    {
        std::lock_guard guard(m_mutex);
        if (m_scsi_controllers >= vmm::max_scsi_controllers)
            return fail("a virtual machine has at most {} SCSI controllers", vmm::max_scsi_controllers);
        number = m_scsi_controllers++;
    }
    log_storage_change(fmt::format("controller {}", number));
    return number;
}

std::vector<vmm::ScsiDriveConfig> FakeMachine::scsi_drives() const
{
    std::lock_guard guard(m_mutex);
    return m_scsi_drives;
}

unsigned FakeMachine::scsi_controllers() const
{
    std::lock_guard guard(m_mutex);
    return m_scsi_controllers;
}

Result<vmm::RunOutcome> FakeMachine::run()
{
    if (m_script.run_error)
        return fail(*m_script.run_error);
    if (m_script.immediate)
        return *m_script.immediate;
    std::unique_lock guard(m_mutex);
    m_changed.wait(guard, [&] { return m_stop.has_value(); });
    return vmm::RunOutcome{*m_stop, ""};
}

void FakeMachine::turn_off()
{
    {
        std::lock_guard guard(m_log->mutex);
        ++m_log->turn_offs;
    }
    std::lock_guard guard(m_mutex);
    m_stop = vmm::StopReason::TurnedOff;
    m_changed.notify_all();
}

void FakeMachine::press_power_button()
{
    {
        std::lock_guard guard(m_log->mutex);
        ++m_log->power_button_presses;
    }
    if (!m_script.obeys_power_button)
        return;
    std::lock_guard guard(m_mutex);
    m_stop = vmm::StopReason::PowerOff;
    m_changed.notify_all();
}

vmm::MachineStats FakeMachine::stats() const
{
    vmm::MachineStats stats;
    stats.uptime = std::chrono::seconds(65);
    stats.vcpu_cpu_time = std::chrono::seconds(1);
    stats.memory_assigned_bytes = m_config.memory_bytes;
    stats.heartbeat = m_config.integration_services.heartbeat ? m_script.heartbeat : vmm::HeartbeatState::Disabled;
    return stats;
}

MachineFactory fake_machine_factory(FakeMachineScript script, std::shared_ptr<FakeMachineLog> log)
{
    return [script = std::move(script), log = std::move(log)](
               const vmm::MachineConfig& config) -> Result<std::unique_ptr<vmm::Machine>> {
        {
            std::lock_guard guard(log->mutex);
            log->last_config = config;
        }
        if (script.create_error)
            return fail(*script.create_error);
        {
            std::lock_guard guard(log->mutex);
            ++log->created;
        }
        return std::unique_ptr<vmm::Machine>(std::make_unique<FakeMachine>(config, script, log));
    };
}

} // namespace vmgen::mgmt
