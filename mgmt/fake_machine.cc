#include "mgmt/fake_machine.h"

namespace vmgen::mgmt {

FakeMachine::FakeMachine(vmm::MachineConfig config, FakeMachineScript script, std::shared_ptr<FakeMachineLog> log)
    : m_config(std::move(config)), m_script(std::move(script)), m_log(std::move(log))
{
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
