// A stored VM's life under KVM, driven through the real vmgen binary: start-vm runs a worker in the
// background, get-vm reports it Running, stop-vm presses the ACPI power button (the guest powers off),
// stop-vm --turn-off pulls the power, and a killed worker shows as Off with a Status saying so.
#include "tests/guest_runner.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>

namespace vmgen::guest_test {
namespace {

using namespace std::chrono_literals;

class VmLifecycle : public ::testing::TestWithParam<int> {
protected:
    void SetUp() override
    {
        if (!kvm_accessible())
            GTEST_SKIP() << "/dev/kvm is not accessible";
        ::setenv("VMGEN_HOME", m_home.path().c_str(), 1);
        m_serial = m_home.path() + "/com1.txt";
        auto created = vmgen({"new-vm", "vm1", "--generation", std::to_string(GetParam()), "--memory", "128M",
                              "--kernel", guest_path("wait_power_button")});
        ASSERT_EQ(created.exit_status, 0) << created.err;
        auto com = vmgen({"set-vmcomport", "vm1", "--number", "1", "--path", "file:" + m_serial});
        ASSERT_EQ(com.exit_status, 0) << com.err;
    }

    void TearDown() override
    {
        if (kvm_accessible())
            vmgen({"stop-vm", "vm1", "--turn-off"});
        ::unsetenv("VMGEN_HOME");
    }

    static ProcessResult vmgen(const std::vector<std::string>& args)
    {
        std::vector<std::string> argv{VMGEN_PATH};
        argv.reserve(args.size() + 1);
        for (const auto& a : args)
            argv.push_back(a);
        return run_process(argv, 60s);
    }

    static nlohmann::json get_vm()
    {
        auto r = vmgen({"get-vm", "vm1", "--format", "json"});
        EXPECT_EQ(r.exit_status, 0) << r.err;
        auto parsed = nlohmann::json::parse(r.out, nullptr, false);
        if (!parsed.is_array() || parsed.empty())
            return nlohmann::json::object();
        return parsed[0];
    }

    // Waits until the guest has printed `line` on COM1.
    bool wait_for_serial(std::string_view line, std::chrono::seconds timeout = 30s) const
    {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            if (has_line(guest_lines(read_text_file(m_serial)), line))
                return true;
            std::this_thread::sleep_for(20ms);
        }
        return false;
    }

    TempDir m_home;
    std::string m_serial;
};

TEST_P(VmLifecycle, StopVmPressesThePowerButton)
{
    auto started = vmgen({"start-vm", "vm1"});
    ASSERT_EQ(started.exit_status, 0) << started.err;
    ASSERT_TRUE(wait_for_serial("waiting for the power button")) << read_text_file(m_serial);

    auto vm = get_vm();
    EXPECT_EQ(vm.value("State", ""), "Running") << vm.dump();
    EXPECT_EQ(vm.value("MemoryAssigned", 0ull), 128ull << 20) << vm.dump();
    EXPECT_EQ(vm.value("Status", ""), "Operating normally") << vm.dump();
    EXPECT_EQ(vm.value("VirtualSystemSubType", ""), "Microsoft:Hyper-V:SubType:" + std::to_string(GetParam()));

    auto again = vmgen({"start-vm", "vm1"});
    EXPECT_NE(again.exit_status, 0) << "a running VM must not start twice";

    auto stopped = vmgen({"stop-vm", "vm1", "--timeout", "30"});
    EXPECT_EQ(stopped.exit_status, 0) << stopped.err;
    EXPECT_TRUE(has_line(guest_lines(read_text_file(m_serial)), "power button pressed"))
        << read_text_file(m_serial);
    vm = get_vm();
    EXPECT_EQ(vm.value("State", ""), "Off") << vm.dump();
    EXPECT_EQ(vm.value("MemoryAssigned", 1ull), 0ull) << vm.dump();
}

TEST_P(VmLifecycle, TurnOffPullsThePower)
{
    ASSERT_EQ(vmgen({"start-vm", "vm1"}).exit_status, 0);
    ASSERT_TRUE(wait_for_serial("waiting for the power button"));
    auto stopped = vmgen({"stop-vm", "vm1", "--turn-off"});
    EXPECT_EQ(stopped.exit_status, 0) << stopped.err;
    EXPECT_FALSE(has_line(guest_lines(read_text_file(m_serial)), "power button pressed"));
    auto vm = get_vm();
    EXPECT_EQ(vm.value("State", ""), "Off") << vm.dump();
}

TEST_P(VmLifecycle, KilledWorkerShowsOffWithAReason)
{
    ASSERT_EQ(vmgen({"start-vm", "vm1"}).exit_status, 0);
    ASSERT_TRUE(wait_for_serial("waiting for the power button"));
    auto pid_text = read_text_file(m_home.path() + "/vm1/worker.pid");
    int pid = std::atoi(pid_text.c_str());
    ASSERT_GT(pid, 1) << pid_text;
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    // The worker is not our child: wait until it is gone.
    for (int i = 0; i < 500 && ::kill(pid, 0) == 0; ++i)
        std::this_thread::sleep_for(10ms);
    auto vm = get_vm();
    EXPECT_EQ(vm.value("State", ""), "Off") << vm.dump();
    EXPECT_NE(vm.value("Status", "").find("unexpectedly"), std::string::npos) << vm.dump();
    // And it can start again.
    ASSERT_EQ(vmgen({"start-vm", "vm1"}).exit_status, 0);
    EXPECT_EQ(get_vm().value("State", ""), "Running");
}

// A guest that reports a crash through the Hyper-V crash MSRs: get-vm's Status says so while it runs (like
// Hyper-V's guest crash event) and after it stops.
TEST_P(VmLifecycle, GuestCrashReportShowsInStatus)
{
    ASSERT_EQ(vmgen({"set-vm", "vm1", "--kernel", guest_path("guest_crash")}).exit_status, 0);
    ASSERT_EQ(vmgen({"start-vm", "vm1"}).exit_status, 0);
    ASSERT_TRUE(wait_for_serial("crash reported")) << read_text_file(m_serial);
    auto vm = get_vm();
    EXPECT_EQ(vm.value("State", ""), "Running") << vm.dump();
    const std::string expected = "The guest operating system reported that it failed with the following error "
                                 "codes: ErrorCode0: 0x1e, ErrorCode1: 0xffffffffc0000005, ErrorCode2: "
                                 "0xfffff80000001234, ErrorCode3: 0x0, ErrorCode4: 0xdeadbeef";
    EXPECT_EQ(vm.value("Status", ""), expected) << vm.dump();
    ASSERT_EQ(vmgen({"stop-vm", "vm1"}).exit_status, 0);
    vm = get_vm();
    EXPECT_EQ(vm.value("State", ""), "Off") << vm.dump();
    EXPECT_EQ(vm.value("Status", ""), expected) << vm.dump();
}

// The VMBus conformance guest (Linux 6.1's hv_vmbus + hv_utils, replayed) negotiates the shutdown and
// heartbeat integration services: get-vm shows Heartbeat OK, get-vmintegrationservice shows both OK, and
// stop-vm shuts the guest down through the shutdown service (not the power button).
TEST_P(VmLifecycle, StopVmUsesTheShutdownIntegrationService)
{
    ASSERT_EQ(vmgen({"set-vm", "vm1", "--kernel", guest_path("vmbus_client")}).exit_status, 0);
    ASSERT_EQ(vmgen({"start-vm", "vm1"}).exit_status, 0);
    ASSERT_TRUE(wait_for_serial("ic shutdown negotiated fw=3.0 msg=3.2 (host offered fw=3.0,1.0 msg=3.2,3.1,3.0,1.0)"))
        << read_text_file(m_serial);
    // Heartbeats are sent every second; the guest answers them.
    nlohmann::json vm;
    for (int i = 0; i < 100; ++i) {
        vm = get_vm();
        if (vm.value("Heartbeat", nlohmann::json()).is_string() && vm["Heartbeat"] == "OK")
            break;
        std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(vm.value("Heartbeat", nlohmann::json()), "OK") << vm.dump();
    auto services = vmgen({"get-vmintegrationservice", "vm1", "--format", "json"});
    auto parsed = nlohmann::json::parse(services.out, nullptr, false);
    ASSERT_TRUE(parsed.is_array()) << services.out;
    for (const auto& service : parsed) {
        if (service["Name"] == "Heartbeat" || service["Name"] == "Shutdown") {
            EXPECT_EQ(service["PrimaryStatusDescription"], "OK") << service.dump();
        }
    }
    ASSERT_TRUE(wait_for_serial("waiting for shutdown request (timeout 60 s)")) << read_text_file(m_serial);
    auto stopped = vmgen({"stop-vm", "vm1", "--timeout", "30"});
    EXPECT_EQ(stopped.exit_status, 0) << stopped.err;
    auto lines = guest_lines(read_text_file(m_serial));
    EXPECT_TRUE(has_line(lines, "shutdown requested (flags=0)")) << read_text_file(m_serial);
    EXPECT_EQ(guest_result(lines), "PASS") << read_text_file(m_serial);
    EXPECT_EQ(get_vm().value("State", ""), "Off");
}

// SCSI storage of a stored VM, Off and hot-plugged into the running machine through the worker (the guest does
// not drive the controller here: tests/guest_storage_test.cc does). Generation 1 gets its controller first.
TEST_P(VmLifecycle, StorageChangesOffAndWhileRunning)
{
    const std::string disk = m_home.path() + "/d.vhdx";
    const std::string other = m_home.path() + "/e.vhd";
    const std::string iso = m_home.path() + "/c.iso";
    ASSERT_EQ(vmgen({"new-vhd", disk, "--size", "8M"}).exit_status, 0);
    ASSERT_EQ(vmgen({"new-vhd", other, "--size", "8M"}).exit_status, 0);
    ASSERT_TRUE(write_file(iso, std::string(16 * 2048, 'i')));
    if (GetParam() == 1) {
        auto refused = vmgen({"add-vmharddiskdrive", "vm1", "--path", disk});
        EXPECT_NE(refused.err.find("has no SCSI controller"), std::string::npos) << refused.err;
        ASSERT_EQ(vmgen({"add-vmscsicontroller", "vm1"}).exit_status, 0);
    }
    auto added = vmgen({"add-vmharddiskdrive", "vm1", "--path", disk});
    ASSERT_EQ(added.exit_status, 0) << added.err;
    ASSERT_EQ(vmgen({"add-vmdvddrive", "vm1"}).exit_status, 0);

    ASSERT_EQ(vmgen({"start-vm", "vm1"}).exit_status, 0);
    ASSERT_TRUE(wait_for_serial("waiting for the power button")) << read_text_file(m_serial);
    // The running machine holds the attached image: nobody else may open it for writing.
    auto busy = vmgen({"resize-vhd", disk, "--size", "16M"});
    EXPECT_NE(busy.exit_status, 0) << busy.out;

    auto hot = vmgen({"add-vmharddiskdrive", "vm1", "--path", other, "--controller-location", "7", "--read-only"});
    ASSERT_EQ(hot.exit_status, 0) << hot.err;
    ASSERT_EQ(vmgen({"set-vmdvddrive", "vm1", "--path", iso}).exit_status, 0);
    ASSERT_EQ(vmgen({"add-vmscsicontroller", "vm1"}).exit_status, 0);
    auto removed = vmgen({"remove-vmharddiskdrive", "vm1", "--controller-number", "0", "--controller-location", "0"});
    ASSERT_EQ(removed.exit_status, 0) << removed.err;
    auto missing = vmgen({"add-vmdvddrive", "vm1", "--path", m_home.path() + "/none.iso"});
    EXPECT_NE(missing.exit_status, 0);

    auto disks = nlohmann::json::parse(vmgen({"get-vmharddiskdrive", "vm1", "--json"}).out, nullptr, false);
    ASSERT_TRUE(disks.is_array());
    ASSERT_EQ(disks.size(), 1u) << disks.dump();
    EXPECT_EQ(disks[0]["ControllerLocation"], 7);
    EXPECT_EQ(disks[0]["Path"], other);
    auto dvds = nlohmann::json::parse(vmgen({"get-vmdvddrive", "vm1", "--json"}).out, nullptr, false);
    ASSERT_TRUE(dvds.is_array());
    ASSERT_EQ(dvds.size(), 1u) << dvds.dump();
    EXPECT_EQ(dvds[0]["DvdMediaType"], "ISO");
    EXPECT_EQ(dvds[0]["Path"], iso);
    // The removed image was closed and unlocked by the running machine.
    EXPECT_EQ(vmgen({"resize-vhd", disk, "--size", "16M"}).exit_status, 0);

    ASSERT_EQ(vmgen({"stop-vm", "vm1", "--turn-off"}).exit_status, 0);
    // Every change was stored: the next start builds the same storage.
    auto stored = nlohmann::json::parse(read_text_file(m_home.path() + "/vm1/config.json"), nullptr, false);
    EXPECT_EQ(stored["scsi"]["controllers"], 2) << stored.dump(); // generation 1: added Off, then hot-added
    EXPECT_EQ(stored["scsi"]["drives"].size(), 2u) << stored.dump();
    ASSERT_EQ(vmgen({"start-vm", "vm1"}).exit_status, 0);
    EXPECT_EQ(get_vm().value("State", ""), "Running");
}

INSTANTIATE_TEST_SUITE_P(Generations, VmLifecycle, ::testing::Values(1, 2),
                         [](const auto& param_info) { return "Gen" + std::to_string(param_info.param); });

} // namespace
} // namespace vmgen::guest_test
