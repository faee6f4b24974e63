#include "mgmt/worker.h"

#include "mgmt/control_socket.h"
#include "mgmt/fake_machine.h"
#include "mgmt/runtime_state.h"
#include "mgmt/temp_home.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <future>
#include <thread>

namespace vmgen::mgmt {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class WorkerTest : public ::testing::Test {
protected:
    WorkerTest() : m_store(m_home.path())
    {
        VmConfig config;
        config.name = "vm";
        config.id = new_uuid();
        config.created = utc_now_iso8601();
        config.generation = vmm::Generation::Two;
        config.memory_bytes = 64ull << 20;
        config.processors = 2;
        config.kernel = "/boot/vmlinuz";
        config.cmdline = "console=ttyS0";
        EXPECT_TRUE(m_store.create(config));
    }

    std::future<int> start(FakeMachineScript script)
    {
        auto factory = fake_machine_factory(std::move(script), m_log);
        return std::async(std::launch::async, [this, factory] {
            return run_worker(m_store, "vm", factory, {.handle_signals = false, .sample_interval = 10ms});
        });
    }

    Result<json> request(std::string_view op)
    {
        return control_request(m_store.vm_dir("vm") / control_socket_file, json{{"op", op}}, 1000ms);
    }

    // Waits for the control socket to answer.
    bool wait_running()
    {
        for (int i = 0; i < 500; ++i) {
            if (auto reply = request("status"); reply && (*reply)["ok"] == true)
                return true;
            std::this_thread::sleep_for(10ms);
        }
        return false;
    }

    LastExit last_exit()
    {
        auto read = read_last_exit(m_store.vm_dir("vm"));
        EXPECT_TRUE(read && read->has_value());
        return read && read->has_value() ? **read : LastExit{};
    }

    bool runtime_files_gone()
    {
        auto dir = m_store.vm_dir("vm");
        return !std::filesystem::exists(dir / worker_pid_file) && !std::filesystem::exists(dir / control_socket_file);
    }

    TempHome m_home;
    Store m_store;
    std::shared_ptr<FakeMachineLog> m_log = std::make_shared<FakeMachineLog>();
};

TEST_F(WorkerTest, ServesStatusAndTurnsOff)
{
    auto worker = start({});
    ASSERT_TRUE(wait_running());
    EXPECT_EQ(read_worker_pid(m_store.vm_dir("vm")), ::getpid());
    auto status = request("status");
    ASSERT_TRUE(status);
    EXPECT_EQ((*status)["state"], "Running");
    EXPECT_EQ((*status)["uptime_ns"], 65'000'000'000);
    EXPECT_EQ((*status)["memory_bytes"], 64ull << 20);
    EXPECT_EQ((*status)["processors"], 2);
    EXPECT_EQ((*status)["pid"], ::getpid());
    EXPECT_TRUE((*status).contains("cpu_usage_percent"));
    EXPECT_TRUE((*status).contains("vcpu_cpu_time_ns"));

    // The machine was built from the stored config.
    {
        std::lock_guard guard(m_log->mutex);
        ASSERT_TRUE(m_log->last_config);
        EXPECT_EQ(m_log->last_config->processors, 2u);
        EXPECT_EQ(m_log->last_config->kernel_path, "/boot/vmlinuz");
        EXPECT_EQ(m_log->last_config->cmdline, "console=ttyS0");
    }

    auto bad = request("dance");
    ASSERT_TRUE(bad);
    EXPECT_EQ((*bad)["ok"], false);

    auto off = request("turn-off");
    ASSERT_TRUE(off);
    EXPECT_EQ((*off)["ok"], true);
    EXPECT_EQ(worker.get(), 0);
    EXPECT_EQ(last_exit().reason, "turned-off");
    EXPECT_TRUE(runtime_files_gone());
}

TEST_F(WorkerTest, StatusReportsTheHeartbeat)
{
    auto worker = start({});
    ASSERT_TRUE(wait_running());
    auto status = request("status");
    ASSERT_TRUE(status);
    EXPECT_EQ((*status)["heartbeat"], "No Contact");
    {
        std::lock_guard guard(m_log->mutex);
        ASSERT_TRUE(m_log->last_config);
        EXPECT_TRUE(m_log->last_config->integration_services.heartbeat);
        EXPECT_FALSE(m_log->last_config->integration_services.guest_service_interface);
    }
    ASSERT_TRUE(request("turn-off"));
    EXPECT_EQ(worker.get(), 0);

    worker = start(FakeMachineScript::reports_heartbeat(vmm::HeartbeatState::Ok));
    ASSERT_TRUE(wait_running());
    status = request("status");
    ASSERT_TRUE(status);
    EXPECT_EQ((*status)["heartbeat"], "OK");
    ASSERT_TRUE(request("turn-off"));
    EXPECT_EQ(worker.get(), 0);

    // The stored settings reach the machine: with the service off, the machine reports it disabled.
    auto config = *m_store.load("vm");
    config.integration_services.heartbeat = false;
    ASSERT_TRUE(m_store.save(config));
    worker = start(FakeMachineScript::reports_heartbeat(vmm::HeartbeatState::Ok));
    ASSERT_TRUE(wait_running());
    status = request("status");
    ASSERT_TRUE(status);
    EXPECT_EQ((*status)["heartbeat"], "Disabled");
    {
        std::lock_guard guard(m_log->mutex);
        EXPECT_FALSE(m_log->last_config->integration_services.heartbeat);
    }
    ASSERT_TRUE(request("turn-off"));
    EXPECT_EQ(worker.get(), 0);
}

TEST_F(WorkerTest, ShutdownPressesThePowerButton)
{
    auto worker = start({});
    ASSERT_TRUE(wait_running());
    ASSERT_TRUE(request("shutdown"));
    EXPECT_EQ(worker.get(), 0);
    EXPECT_EQ(m_log->power_button_presses, 1);
    EXPECT_EQ(last_exit().reason, "power-off");
    EXPECT_TRUE(runtime_files_gone());
}

TEST_F(WorkerTest, CrashOutcomesAreRecorded)
{
    auto worker = start(FakeMachineScript::stops_with(vmm::StopReason::TripleFault, "rip=0xfff0"));
    EXPECT_EQ(worker.get(), 4);
    auto report = last_exit();
    EXPECT_EQ(report.reason, "triple-fault");
    EXPECT_EQ(report.exit_status, 4);
    EXPECT_EQ(report.detail, "rip=0xfff0");
    EXPECT_FALSE(report.time.empty());
    EXPECT_TRUE(runtime_files_gone());
    auto runtime = inspect_runtime(m_store.vm_dir("vm"), "vm", is_worker_process, 100ms);
    EXPECT_EQ(runtime.state, VmState::Off);
    EXPECT_EQ(runtime.status, "The guest triple-faulted: rip=0xfff0");
}

TEST_F(WorkerTest, CreateFailureIsRecorded)
{
    auto worker = start(FakeMachineScript::fails_to_create("KVM_CREATE_VM: Permission denied"));
    EXPECT_EQ(worker.get(), 1);
    auto report = last_exit();
    EXPECT_EQ(report.reason, "start-failed");
    EXPECT_EQ(report.detail, "KVM_CREATE_VM: Permission denied");
    EXPECT_TRUE(runtime_files_gone());
}

TEST_F(WorkerTest, RunFailureIsRecorded)
{
    auto worker = start(FakeMachineScript::fails_to_run("vCPU thread failed"));
    EXPECT_EQ(worker.get(), 1);
    EXPECT_EQ(last_exit().reason, "error");
    EXPECT_TRUE(runtime_files_gone());
}

TEST_F(WorkerTest, SecondWorkerForTheSameVmIsRefused)
{
    auto first = start({});
    ASSERT_TRUE(wait_running());
    auto second = start({});
    EXPECT_EQ(second.get(), 1);
    EXPECT_EQ(m_log->created, 1);
    ASSERT_TRUE(request("status")); // the first one is untouched
    ASSERT_TRUE(request("turn-off"));
    EXPECT_EQ(first.get(), 0);
}

TEST_F(WorkerTest, BrokenConfigIsRecorded)
{
    ASSERT_TRUE(write_file_atomically(m_store.config_path("vm"), "{}"));
    auto worker = start({});
    EXPECT_EQ(worker.get(), 1);
    auto report = last_exit();
    EXPECT_EQ(report.reason, "start-failed");
    EXPECT_NE(report.detail.find("field 'version' is missing"), std::string::npos);
}

} // namespace
} // namespace vmgen::mgmt
