#include "mgmt/cli_test_fixture.h"

namespace vmgen::mgmt {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using cli_testing::CliTest;
using cli_testing::CliResult;
using cli_testing::snapshot;

TEST_F(CliTest, Help)
{
    auto help = run({"help"});
    EXPECT_EQ(help.code, 0);
    for (const char* command : {"new-vm", "get-vm", "set-vm", "set-vmcomport", "start-vm", "stop-vm", "remove-vm",
                                "run"})
        EXPECT_NE(help.out.find(command), std::string::npos) << command;
    EXPECT_EQ(run({"--help"}).code, 0);
    auto command_help = run({"new-vm", "--help"});
    EXPECT_EQ(command_help.code, 0);
    EXPECT_NE(command_help.out.find("--generation"), std::string::npos);
    EXPECT_EQ(run({"help", "stop-vm"}).code, 0);
    EXPECT_EQ(run({"help", "bogus"}).code, 1);
    auto none = run({});
    EXPECT_EQ(none.code, 1);
    EXPECT_NE(none.err.find("Usage"), std::string::npos);
    expect_failure({"frobnicate"}, "unknown command 'frobnicate'");
}

TEST_F(CliTest, NewVmDefaultsToGenerationOne)
{
    auto result = run({"new-vm", "web1"});
    ASSERT_EQ(result.code, 0) << result.err;
    EXPECT_NE(result.out.find("Name"), std::string::npos);
    EXPECT_NE(result.out.find("web1"), std::string::npos);
    EXPECT_NE(result.out.find("Off"), std::string::npos);
    EXPECT_NE(result.out.find("Operating normally"), std::string::npos);
    auto stored = config("web1");
    EXPECT_EQ(stored.generation, vmm::Generation::One);
    EXPECT_EQ(stored.memory_bytes, 1ull << 30);
    EXPECT_EQ(stored.processors, 1u);
    EXPECT_TRUE(is_uuid(stored.id));
    auto text = *read_small_file(m_root / "web1" / "config.json");
    EXPECT_EQ(json::parse(text)["version"], 1);
}

TEST_F(CliTest, NewVmWithEverySetting)
{
    auto result = run({"new-vm", "db", "--generation", "2", "--memory", "2G", "--processors", "4", "--kernel",
                       m_kernel.string(), "--initrd", m_initrd.string(), "--cmdline", "console=ttyS0 quiet",
                       "--on-reset=exit"});
    ASSERT_EQ(result.code, 0) << result.err;
    auto stored = config("db");
    EXPECT_EQ(stored.generation, vmm::Generation::Two);
    EXPECT_EQ(stored.memory_bytes, 2ull << 30);
    EXPECT_EQ(stored.processors, 4u);
    EXPECT_EQ(stored.kernel, m_kernel.string());
    EXPECT_EQ(stored.initrd, m_initrd.string());
    EXPECT_EQ(stored.cmdline, "console=ttyS0 quiet");
    EXPECT_EQ(stored.on_reset, vmm::ResetAction::Exit);

    auto vms = get_json("db");
    ASSERT_EQ(vms.size(), 1u);
    const auto& vm = vms[0];
    EXPECT_EQ(vm["Name"], "db");
    EXPECT_EQ(vm["State"], "Off");
    EXPECT_EQ(vm["CPUUsage"], 0);
    EXPECT_EQ(vm["MemoryAssigned"], 0);
    EXPECT_EQ(vm["Uptime"], 0);
    EXPECT_EQ(vm["Status"], "Operating normally");
    EXPECT_EQ(vm["Generation"], 2);
    EXPECT_EQ(vm["VirtualSystemSubType"], "Microsoft:Hyper-V:SubType:2");
    EXPECT_EQ(vm["ProcessorCount"], 4);
    EXPECT_EQ(vm["MemoryStartup"], 2ull << 30);
    EXPECT_EQ(vm["Id"], stored.id);
    EXPECT_EQ(vm["Path"], (m_root / "db").string());
}

TEST_F(CliTest, NewVmErrorsChangeNothing)
{
    new_vm("web1");
    auto missing = (m_home.path() / "missing").string();
    expect_failure({"new-vm", "web1"}, "a virtual machine named 'web1' already exists");
    expect_failure({"new-vm"}, "needs a virtual machine name");
    expect_failure({"new-vm", "."}, "must not start with '.'");
    expect_failure({"new-vm", ".."}, "must not start with '.'");
    expect_failure({"new-vm", ".x"}, "must not start with '.'");
    expect_failure({"new-vm", "a/b"}, "must not contain '/'");
    expect_failure({"new-vm", ""}, "the name is empty");
    expect_failure({"new-vm", std::string(101, 'n')}, "at most 100");
    expect_failure({"new-vm", "bad\x01name"}, "control characters");
    expect_failure({"new-vm", "x", "--processors", "0"}, "invalid processor count 0");
    expect_failure({"new-vm", "x", "--processors", "65"}, "generation 1 virtual machine has 1 to 64");
    expect_failure({"new-vm", "x", "--generation", "2", "--processors", "241"}, "1 to 240");
    expect_failure({"new-vm", "x", "--memory", "8G"}, "more than the host has");
    expect_failure({"new-vm", "x", "--memory", "33M"}, "not a multiple of 2M");
    expect_failure({"new-vm", "x", "--memory", "16M"}, "at least 32M");
    expect_failure({"new-vm", "x", "--memory", "lots"}, "invalid memory size 'lots'");
    expect_failure({"new-vm", "x", "--kernel", missing}, "kernel: " + missing);
    expect_failure({"new-vm", "x", "--initrd", missing}, "initrd: " + missing);
    expect_failure({"new-vm", "x", "--generation", "3"}, "invalid generation '3'");
    expect_failure({"new-vm", "x", "--on-reset", "reboot"}, "invalid reset action");
    expect_failure({"new-vm", "x", "--frobnicate"}, "unknown option '--frobnicate'");
    expect_failure({"new-vm", "x", "-q"}, "unknown option '-q'");
    expect_failure({"new-vm", "x", "--memory"}, "option --memory needs a value");
    expect_failure({"new-vm", "x", "--memory", "--processors", "2"}, "option --memory needs a value");
    expect_failure({"new-vm", "x", "--memory", "64M", "--memory", "128M"}, "given more than once");
    expect_failure({"new-vm", "x", "y"}, "unexpected argument 'y'");
}

TEST_F(CliTest, NewVmDefaultMemoryMustFitTheHost)
{
    m_context.host_memory_bytes = 512ull << 20;
    expect_failure({"new-vm", "x"}, "the default memory (1G)");
    EXPECT_EQ(run({"new-vm", "x", "--memory", "256M"}).code, 0);
}

TEST_F(CliTest, GetVmListsEverythingIncludingBrokenConfigs)
{
    new_vm("a");
    new_vm("b");
    new_vm("c", {"--generation", "2"});
    std::ofstream(m_root / "b" / "config.json", std::ios::trunc) << R"({"version": 1, "name": "b", "memory_bytes": "x"})";

    auto table = run({"get-vm"});
    ASSERT_EQ(table.code, 0) << table.err;
    EXPECT_NE(table.out.find("Name"), std::string::npos);
    EXPECT_NE(table.out.find("CPUUsage(%)"), std::string::npos);
    EXPECT_NE(table.out.find("MemoryAssigned(M)"), std::string::npos);
    EXPECT_NE(table.out.find("00:00:00"), std::string::npos);
    EXPECT_NE(table.out.find("VM 'b': config " + (m_root / "b" / "config.json").string()), std::string::npos)
        << table.out;

    auto vms = get_json();
    ASSERT_EQ(vms.size(), 3u);
    EXPECT_EQ(vms[0]["Name"], "a");
    EXPECT_EQ(vms[0]["Generation"], 1);
    EXPECT_EQ(vms[0]["VirtualSystemSubType"], "Microsoft:Hyper-V:SubType:1");
    EXPECT_EQ(vms[1]["Name"], "b");
    EXPECT_EQ(vms[1]["State"], "Off");
    EXPECT_TRUE(vms[1]["Generation"].is_null());
    EXPECT_NE(vms[1]["Status"].get<std::string>().find("field"), std::string::npos);
    EXPECT_EQ(vms[2]["Generation"], 2);

    expect_failure({"get-vm", "b"}, "VM 'b': config " + (m_root / "b" / "config.json").string() + ": field");
    expect_failure({"get-vm", "nope"}, "no virtual machine named 'nope'");
    expect_failure({"get-vm", "--format", "xml"}, "invalid format 'xml'");
    expect_failure({"get-vm", "a", "b"}, "unexpected argument 'b'");
}

TEST_F(CliTest, GetVmOnAnEmptyStore)
{
    auto table = run({"get-vm"});
    EXPECT_EQ(table.code, 0);
    EXPECT_EQ(table.out, "");
    EXPECT_EQ(get_json(), json::array());
}

TEST_F(CliTest, SetVmChangesSettings)
{
    new_vm("web1", {"--generation", "2"});
    auto result = run({"set-vm", "web1", "--memory", "128M", "--processors", "8", "--initrd", m_initrd.string(),
                       "--cmdline", "root=/dev/sda", "--on-reset", "exit"});
    ASSERT_EQ(result.code, 0) << result.err;
    auto stored = config("web1");
    EXPECT_EQ(stored.memory_bytes, 128ull << 20);
    EXPECT_EQ(stored.processors, 8u);
    EXPECT_EQ(stored.initrd, m_initrd.string());
    EXPECT_EQ(stored.cmdline, "root=/dev/sda");
    EXPECT_EQ(stored.on_reset, vmm::ResetAction::Exit);
    ASSERT_EQ(run({"set-vm", "web1", "--initrd", ""}).code, 0);
    EXPECT_EQ(config("web1").initrd, "");
    // No temporary files are left next to config.json.
    for (const auto& entry : std::filesystem::directory_iterator(m_root / "web1"))
        EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
}

TEST_F(CliTest, SetVmErrorsChangeNothing)
{
    new_vm("web1");
    expect_failure({"set-vm", "web1", "--generation", "2"},
                   "the generation of a virtual machine is fixed when it is created");
    expect_failure({"set-vm", "web1", "--processors", "0"}, "invalid processor count 0");
    expect_failure({"set-vm", "web1", "--processors", "100"}, "generation 1 virtual machine has 1 to 64");
    expect_failure({"set-vm", "web1", "--memory", "1T"}, "more than the host");
    expect_failure({"set-vm", "web1", "--kernel", "/no/such/kernel"}, "kernel: /no/such/kernel");
    expect_failure({"set-vm", "web1", "--bogus", "1"}, "unknown option '--bogus'");
    expect_failure({"set-vm", "web1", "--cmdline"}, "option --cmdline needs a value");
    expect_failure({"set-vm", "nope", "--processors", "2"}, "no virtual machine named 'nope'");
    expect_failure({"set-vm"}, "needs a virtual machine name");
    std::ofstream(m_root / "web1" / "config.json", std::ios::trunc) << "{";
    expect_failure({"set-vm", "web1", "--processors", "2"}, "config " + (m_root / "web1" / "config.json").string());
}

TEST_F(CliTest, SetVmComPort)
{
    new_vm("web1");
    auto log = (m_home.path() / "com1.log").string();
    ASSERT_EQ(run({"set-vmcomport", "web1", "--number", "1", "--path", "file:" + log}).code, 0);
    ASSERT_EQ(run({"set-vmcomport", "web1", "--number", "2", "--path", "stdio"}).code, 0);
    auto stored = config("web1");
    EXPECT_EQ(stored.com[0].kind, vmm::SerialPortConfig::Kind::File);
    EXPECT_EQ(stored.com[0].path, log);
    EXPECT_EQ(stored.com[1].kind, vmm::SerialPortConfig::Kind::Stdio);
    ASSERT_EQ(run({"set-vmcomport", "web1", "--number", "1", "--path", "none"}).code, 0);
    EXPECT_EQ(config("web1").com[0].kind, vmm::SerialPortConfig::Kind::None);

    expect_failure({"set-vmcomport", "web1", "--path", "stdio"}, "needs --number");
    expect_failure({"set-vmcomport", "web1", "--number", "1"}, "needs --path");
    expect_failure({"set-vmcomport", "web1", "--number", "3", "--path", "stdio"}, "invalid COM port number '3'");
    expect_failure({"set-vmcomport", "web1", "--number", "1", "--path", "tcp:80"}, "invalid COM port 'tcp:80'");
    expect_failure({"set-vmcomport", "web1", "--number", "1", "--path", "file:/no/such/dir/log"}, "does not exist");
    expect_failure({"set-vmcomport", "nope", "--number", "1", "--path", "stdio"}, "no virtual machine named 'nope'");
}

TEST_F(CliTest, RemoveVm)
{
    new_vm("web1");
    new_vm("web2");
    ASSERT_EQ(run({"remove-vm", "web1"}).code, 0);
    EXPECT_FALSE(std::filesystem::exists(m_root / "web1"));
    EXPECT_TRUE(std::filesystem::exists(m_kernel)); // files it referred to are kept
    expect_failure({"remove-vm", "web1"}, "no virtual machine named 'web1'");
    expect_failure({"remove-vm"}, "needs a virtual machine name");
    // A broken config does not prevent removal.
    std::ofstream(m_root / "web2" / "config.json", std::ios::trunc) << "garbage";
    ASSERT_EQ(run({"remove-vm", "web2"}).code, 0);
    EXPECT_TRUE(std::filesystem::is_empty(m_root));
}

TEST_F(CliTest, StartGetStop)
{
    new_vm("web1", {"--generation", "2", "--processors", "2"});
    auto start = run({"start-vm", "web1"});
    ASSERT_EQ(start.code, 0) << start.err;

    auto vms = get_json("web1");
    EXPECT_EQ(vms[0]["State"], "Running");
    EXPECT_EQ(vms[0]["MemoryAssigned"], 64ull << 20);
    EXPECT_EQ(vms[0]["Uptime"], 65);
    EXPECT_EQ(vms[0]["Status"], "Operating normally");
    auto table = run({"get-vm", "web1"});
    EXPECT_NE(table.out.find("Running"), std::string::npos);
    EXPECT_NE(table.out.find("00:01:05"), std::string::npos);
    EXPECT_NE(table.out.find(" 64 "), std::string::npos) << table.out;

    expect_failure({"start-vm", "web1"}, "VM 'web1' is already running");
    expect_failure({"set-vm", "web1", "--processors", "1"}, "VM 'web1' is Running");
    expect_failure({"set-vmcomport", "web1", "--number", "1", "--path", "stdio"}, "is Running");
    expect_failure({"remove-vm", "web1"}, "is Running");

    auto stop = run({"stop-vm", "web1"});
    ASSERT_EQ(stop.code, 0) << stop.err;
    EXPECT_EQ(m_log->power_button_presses, 1);
    vms = get_json("web1");
    EXPECT_EQ(vms[0]["State"], "Off");
    EXPECT_EQ(vms[0]["MemoryAssigned"], 0);
    EXPECT_EQ(vms[0]["Status"], "Operating normally");

    auto again = run({"stop-vm", "web1"});
    EXPECT_EQ(again.code, 0);
    EXPECT_NE(again.out.find("already off"), std::string::npos);
    expect_failure({"stop-vm", "nope"}, "no virtual machine named 'nope'");
    expect_failure({"stop-vm", "web1", "--timeout", "soon"}, "invalid timeout 'soon'");

    // It can start again.
    ASSERT_EQ(run({"start-vm", "web1"}).code, 0);
    ASSERT_EQ(run({"stop-vm", "web1", "--turn-off"}).code, 0);
    EXPECT_EQ(get_json("web1")[0]["State"], "Off");
    EXPECT_EQ(m_log->created, 2);
}

TEST_F(CliTest, StopTurnsOffAGuestThatIgnoresThePowerButton)
{
    set_script(FakeMachineScript::ignores_power_button());
    new_vm("web1");
    ASSERT_EQ(run({"start-vm", "web1"}).code, 0);
    auto stop = run({"stop-vm", "web1", "--timeout", "0"});
    EXPECT_EQ(stop.code, 0) << stop.err;
    EXPECT_NE(stop.out.find("did not shut down within 0 seconds; turning VM 'web1' off"), std::string::npos);
    EXPECT_EQ(m_log->turn_offs, 1);
    EXPECT_EQ(get_json("web1")[0]["State"], "Off");
}

TEST_F(CliTest, StartVmFailures)
{
    ASSERT_EQ(run({"new-vm", "nokernel", "--memory", "64M"}).code, 0);
    expect_failure({"start-vm", "nokernel"}, "VM 'nokernel' has no kernel to boot");
    expect_failure({"start-vm", "nope"}, "no virtual machine named 'nope'");
    expect_failure({"start-vm", "nokernel", "--wait=yes"}, "option --wait takes no value");

    new_vm("web1");
    std::filesystem::remove(m_kernel);
    expect_failure({"start-vm", "web1"}, "VM 'web1': kernel: ");
    std::ofstream(m_kernel) << "kernel";

    set_script(FakeMachineScript::fails_to_create("KVM is not available: /dev/kvm: No such file or directory"));
    auto start = run({"start-vm", "web1"});
    EXPECT_EQ(start.code, 1);
    EXPECT_NE(start.err.find("VM 'web1' failed to start: KVM is not available"), std::string::npos) << start.err;
    auto vm = get_json("web1")[0];
    EXPECT_EQ(vm["State"], "Off");
    EXPECT_EQ(vm["Status"], "The virtual machine failed to start: KVM is not available: /dev/kvm: No such file or "
                            "directory");
}

TEST_F(CliTest, StartVmWaitReturnsTheOutcome)
{
    new_vm("web1");
    set_script(FakeMachineScript::stops_with(vmm::StopReason::TripleFault, "cr0=0x11"));
    auto crashed = run({"start-vm", "web1", "--wait"});
    EXPECT_EQ(crashed.code, 4);
    EXPECT_NE(crashed.err.find("the guest triple-faulted: cr0=0x11"), std::string::npos) << crashed.err;
    auto vm = get_json("web1")[0];
    EXPECT_EQ(vm["State"], "Off");
    EXPECT_EQ(vm["Status"], "The guest triple-faulted: cr0=0x11");

    set_script(FakeMachineScript::stops_with(vmm::StopReason::PowerOff, ""));
    auto clean = run({"start-vm", "web1", "--wait"});
    EXPECT_EQ(clean.code, 0) << clean.err;
    EXPECT_EQ(clean.err, "");
    EXPECT_EQ(get_json("web1")[0]["Status"], "Operating normally");

    set_script(FakeMachineScript::stops_with(vmm::StopReason::Reset, ""));
    EXPECT_EQ(run({"start-vm", "web1", "--wait"}).code, 3);
    set_script(FakeMachineScript::stops_with(vmm::StopReason::InternalError, "KVM_EXIT_FAIL_ENTRY"));
    auto internal = run({"start-vm", "web1", "--wait"});
    EXPECT_EQ(internal.code, 5);
    EXPECT_NE(internal.err.find("internal error: KVM_EXIT_FAIL_ENTRY"), std::string::npos);
}

TEST_F(CliTest, StateFollowsTheProcessNotTheFiles)
{
    new_vm("web1");
    pid_t child = ::fork();
    if (child == 0)
        ::_exit(0);
    int status = 0;
    ::waitpid(child, &status, 0);
    std::ofstream(m_root / "web1" / "worker.pid") << child << "\n";
    std::ofstream(m_root / "web1" / "control.sock") << "";
    m_context.is_worker = is_worker_process;
    auto vm = get_json("web1")[0];
    EXPECT_EQ(vm["State"], "Off");
    EXPECT_EQ(vm["MemoryAssigned"], 0);
    EXPECT_NE(vm["Status"].get<std::string>().find("The worker process exited unexpectedly"), std::string::npos);
    // set-vm works (the VM is Off), and start-vm clears the stale files.
    EXPECT_EQ(run({"set-vm", "web1", "--processors", "2"}).code, 0);
    m_context.is_worker = in_process_probe();
    ASSERT_EQ(run({"start-vm", "web1"}).code, 0);
    EXPECT_EQ(get_json("web1")[0]["State"], "Running");
    ASSERT_EQ(run({"stop-vm", "web1", "--turn-off"}).code, 0);
}

// A "worker" that never answers on its control socket: stop-vm sends SIGTERM, then SIGKILL.
TEST_F(CliTest, StopVmKillsAnUnresponsiveWorker)
{
    new_vm("web1");
    auto dir = m_root / "web1";
    int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    auto path = (dir / "control.sock").string();
    ASSERT_LT(path.size(), sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.data(), path.size());
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(listener, 4), 0);

    pid_t child = ::fork();
    if (child == 0) {
        ::signal(SIGTERM, SIG_IGN);
        for (;;)
            ::pause();
    }
    std::ofstream(dir / "worker.pid") << child << "\n";
    m_context.control_timeout = 200ms;
    m_context.is_worker = [child](pid_t pid, std::string_view) {
        if (pid != child)
            return false;
        auto stat = read_small_file(fmt::format("/proc/{}/stat", pid));
        return stat && stat->find(") Z") == std::string::npos;
    };
    auto stop = run({"stop-vm", "web1"});
    EXPECT_EQ(stop.code, 0) << stop.err;
    EXPECT_NE(stop.out.find("does not respond; sending SIGTERM"), std::string::npos) << stop.out;
    EXPECT_NE(stop.out.find("sending SIGKILL"), std::string::npos) << stop.out;
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGKILL);
    ::close(listener);
    auto vm = get_json("web1")[0];
    EXPECT_EQ(vm["State"], "Off");
    EXPECT_NE(vm["Status"].get<std::string>().find("killed by signal 9"), std::string::npos) << vm["Status"];
    EXPECT_FALSE(std::filesystem::exists(dir / "worker.pid"));
}

TEST_F(CliTest, IntegrationServicesHelp)
{
    auto help = run({"help"});
    for (const char* command :
         {"get-vmintegrationservice", "enable-vmintegrationservice", "disable-vmintegrationservice"}) {
        EXPECT_NE(help.out.find(command), std::string::npos) << command;
        auto command_help = run({command, "--help"});
        EXPECT_EQ(command_help.code, 0) << command;
        EXPECT_NE(command_help.out.find("--name SERVICE"), std::string::npos) << command;
        EXPECT_EQ(run({"help", command}).out, command_help.out);
    }
    // Every summary stays in one column, however long the command names.
    auto line_of = [&](std::string_view command) {
        auto start = help.out.find(fmt::format("  {} ", command));
        return help.out.substr(start, help.out.find('\n', start) - start);
    };
    auto column = line_of("new-vm").find("Create");
    EXPECT_EQ(line_of("disable-vmintegrationservice").find("Disable"), column);
    EXPECT_EQ(line_of("help [COMMAND]").find("Show this help"), column);
}

TEST_F(CliTest, IntegrationServicesDefaultsWhileOff)
{
    new_vm("web1");
    auto table = run({"get-vmintegrationservice", "web1"});
    ASSERT_EQ(table.code, 0) << table.err;
    EXPECT_EQ(table.out, "VMName Name                    Enabled PrimaryStatusDescription SecondaryStatusDescription\n"
                         "------ ----                    ------- ------------------------ --------------------------\n"
                         "web1   Guest Service Interface False\n"
                         "web1   Heartbeat               True\n"
                         "web1   Key-Value Pair Exchange True\n"
                         "web1   Shutdown                True\n"
                         "web1   Time Synchronization    True\n"
                         "web1   VSS                     True\n");

    auto result = run({"get-vmintegrationservice", "web1", "--format", "json"});
    ASSERT_EQ(result.code, 0) << result.err;
    auto services = json::parse(result.out);
    ASSERT_EQ(services.size(), 6u);
    const char* names[] = {"Guest Service Interface", "Heartbeat", "Key-Value Pair Exchange", "Shutdown",
                           "Time Synchronization", "VSS"};
    for (size_t i = 0; i < services.size(); ++i) {
        EXPECT_EQ(services[i]["VMName"], "web1");
        EXPECT_EQ(services[i]["Name"], names[i]);
        EXPECT_EQ(services[i]["Enabled"], i != 0);
        EXPECT_EQ(services[i]["PrimaryStatusDescription"], "");
        EXPECT_EQ(services[i]["SecondaryStatusDescription"], "");
    }

    auto one = run({"get-vmintegrationservice", "web1", "--name", "heartbeat", "--format=json"});
    ASSERT_EQ(one.code, 0) << one.err;
    auto heartbeat = json::parse(one.out);
    ASSERT_EQ(heartbeat.size(), 1u);
    EXPECT_EQ(heartbeat[0]["Name"], "Heartbeat");
    EXPECT_EQ(heartbeat[0]["Enabled"], true);

    EXPECT_TRUE(get_json("web1")[0]["Heartbeat"].is_null());

    expect_failure({"get-vmintegrationservice"}, "needs a virtual machine name");
    expect_failure({"get-vmintegrationservice", "nope"}, "no virtual machine named 'nope'");
    expect_failure({"get-vmintegrationservice", "web1", "--name", "Backup"}, "unknown integration service 'Backup'");
    expect_failure({"get-vmintegrationservice", "web1", "--format", "xml"}, "invalid format 'xml'");
    expect_failure({"get-vmintegrationservice", "web1", "--bogus"}, "unknown option '--bogus'");
}

TEST_F(CliTest, EnableAndDisableIntegrationServices)
{
    new_vm("web1");
    auto disabled = run({"disable-vmintegrationservice", "web1", "--name", "Time Synchronization"});
    ASSERT_EQ(disabled.code, 0) << disabled.err;
    EXPECT_EQ(disabled.out, "");
    EXPECT_FALSE(config("web1").integration_services.time_synchronization);
    ASSERT_EQ(run({"enable-vmintegrationservice", "web1", "--name=guest service interface"}).code, 0);
    ASSERT_EQ(run({"disable-vmintegrationservice", "web1", "--name", "VSS"}).code, 0);
    ASSERT_EQ(run({"disable-vmintegrationservice", "web1", "--name", "HEARTBEAT"}).code, 0);
    auto services = config("web1").integration_services;
    EXPECT_TRUE(services.guest_service_interface);
    EXPECT_FALSE(services.heartbeat);
    EXPECT_TRUE(services.key_value_pair_exchange);
    EXPECT_TRUE(services.shutdown);
    EXPECT_FALSE(services.time_synchronization);
    EXPECT_FALSE(services.vss);
    auto table = run({"get-vmintegrationservice", "web1", "--name", "time synchronization"});
    EXPECT_NE(table.out.find("web1   Time Synchronization False"), std::string::npos) << table.out;

    // Round trip back to the defaults; doing it twice changes nothing.
    ASSERT_EQ(run({"enable-vmintegrationservice", "web1", "--name", "time synchronization"}).code, 0);
    ASSERT_EQ(run({"disable-vmintegrationservice", "web1", "--name", "Guest Service Interface"}).code, 0);
    ASSERT_EQ(run({"enable-vmintegrationservice", "web1", "--name", "vss"}).code, 0);
    ASSERT_EQ(run({"enable-vmintegrationservice", "web1", "--name", "Heartbeat"}).code, 0);
    auto before = snapshot(m_root);
    ASSERT_EQ(run({"enable-vmintegrationservice", "web1", "--name", "Heartbeat"}).code, 0);
    EXPECT_EQ(snapshot(m_root), before);
    services = config("web1").integration_services;
    EXPECT_FALSE(services.guest_service_interface);
    EXPECT_TRUE(services.heartbeat);
    EXPECT_TRUE(services.time_synchronization);
    EXPECT_TRUE(services.vss);

    // The stored settings reach the machine.
    ASSERT_EQ(run({"disable-vmintegrationservice", "web1", "--name", "shutdown"}).code, 0);
    ASSERT_EQ(run({"start-vm", "web1"}).code, 0);
    {
        std::lock_guard guard(m_log->mutex);
        ASSERT_TRUE(m_log->last_config);
        EXPECT_FALSE(m_log->last_config->integration_services.shutdown);
        EXPECT_TRUE(m_log->last_config->integration_services.heartbeat);
    }
    ASSERT_EQ(run({"stop-vm", "web1", "--turn-off"}).code, 0);

    expect_failure({"enable-vmintegrationservice", "web1", "--name", "Time Sync"},
                   "unknown integration service 'Time Sync': the services are 'Guest Service Interface', "
                   "'Heartbeat', 'Key-Value Pair Exchange', 'Shutdown', 'Time Synchronization', 'VSS'");
    expect_failure({"disable-vmintegrationservice", "web1", "--name", ""}, "unknown integration service ''");
    expect_failure({"enable-vmintegrationservice", "web1"}, "enable-vmintegrationservice needs --name SERVICE");
    expect_failure({"disable-vmintegrationservice", "web1"}, "disable-vmintegrationservice needs --name SERVICE");
    expect_failure({"enable-vmintegrationservice", "--name", "VSS"}, "needs a virtual machine name");
    expect_failure({"enable-vmintegrationservice", "nope", "--name", "VSS"}, "no virtual machine named 'nope'");
    expect_failure({"disable-vmintegrationservice", "web1", "--name", "VSS", "extra"}, "unexpected argument 'extra'");
    expect_failure({"disable-vmintegrationservice", "web1", "--name", "VSS", "--name", "Shutdown"},
                   "given more than once");
    std::ofstream(m_root / "web1" / "config.json", std::ios::trunc) << "{";
    expect_failure({"disable-vmintegrationservice", "web1", "--name", "VSS"},
                   "config " + (m_root / "web1" / "config.json").string());
}

TEST_F(CliTest, IntegrationServicesWhileRunning)
{
    set_script(FakeMachineScript::reports_heartbeat(vmm::HeartbeatState::Ok));
    new_vm("web1");
    ASSERT_EQ(run({"disable-vmintegrationservice", "web1", "--name", "VSS"}).code, 0);
    ASSERT_EQ(run({"start-vm", "web1"}).code, 0);

    auto result = run({"get-vmintegrationservice", "web1", "--format", "json"});
    ASSERT_EQ(result.code, 0) << result.err;
    auto services = json::parse(result.out);
    ASSERT_EQ(services.size(), 6u);
    std::map<std::string, std::string> primary;
    for (const auto& service : services)
        primary[service["Name"].get<std::string>()] = service["PrimaryStatusDescription"].get<std::string>();
    EXPECT_EQ(primary["Guest Service Interface"], ""); // disabled
    EXPECT_EQ(primary["Heartbeat"], "OK");
    EXPECT_EQ(primary["Key-Value Pair Exchange"], "No Contact");
    EXPECT_EQ(primary["Shutdown"], "No Contact");
    EXPECT_EQ(primary["Time Synchronization"], "No Contact");
    EXPECT_EQ(primary["VSS"], ""); // disabled
    auto table = run({"get-vmintegrationservice", "web1"});
    EXPECT_NE(table.out.find("web1   Heartbeat               True    OK\n"), std::string::npos) << table.out;
    EXPECT_NE(table.out.find("web1   Shutdown                True    No Contact\n"), std::string::npos) << table.out;
    EXPECT_EQ(get_json("web1")[0]["Heartbeat"], "OK");

    // Changes are refused while the VM runs, and nothing changes.
    expect_failure({"disable-vmintegrationservice", "web1", "--name", "Heartbeat"},
                   "VM 'web1' is Running: integration services can be disabled only while it is Off, and changes "
                   "take effect at the next start; stop the VM first ('vmgen stop-vm web1')");
    expect_failure({"enable-vmintegrationservice", "web1", "--name", "vss"}, "comes with the VMBus devices");
    EXPECT_TRUE(config("web1").integration_services.heartbeat);
    EXPECT_FALSE(config("web1").integration_services.vss);

    ASSERT_EQ(run({"stop-vm", "web1", "--turn-off"}).code, 0);
    EXPECT_TRUE(get_json("web1")[0]["Heartbeat"].is_null());
    auto off = json::parse(run({"get-vmintegrationservice", "web1", "--name", "heartbeat", "--format", "json"}).out);
    EXPECT_EQ(off[0]["PrimaryStatusDescription"], "");
    ASSERT_EQ(run({"enable-vmintegrationservice", "web1", "--name", "vss"}).code, 0);
    EXPECT_TRUE(config("web1").integration_services.vss);
}

TEST_F(CliTest, HeartbeatWithoutContactAndDisabled)
{
    new_vm("web1");
    ASSERT_EQ(run({"start-vm", "web1"}).code, 0);
    EXPECT_EQ(get_json("web1")[0]["Heartbeat"], "No Contact");
    auto heartbeat_json = [&] {
        return json::parse(run({"get-vmintegrationservice", "web1", "--name", "Heartbeat", "--format", "json"}).out);
    };
    auto services = heartbeat_json();
    EXPECT_EQ(services[0]["PrimaryStatusDescription"], "No Contact");
    ASSERT_EQ(run({"stop-vm", "web1", "--turn-off"}).code, 0);

    ASSERT_EQ(run({"disable-vmintegrationservice", "web1", "--name", "Heartbeat"}).code, 0);
    ASSERT_EQ(run({"start-vm", "web1"}).code, 0);
    EXPECT_EQ(get_json("web1")[0]["Heartbeat"], "Disabled");
    services = heartbeat_json();
    EXPECT_EQ(services[0]["Enabled"], false);
    EXPECT_EQ(services[0]["PrimaryStatusDescription"], "");
    // The get-vm table keeps its columns.
    auto table = run({"get-vm", "web1"});
    EXPECT_TRUE(table.out.starts_with("Name State   CPUUsage(%) MemoryAssigned(M) Uptime   Status             "
                                      "Generation\n"))
        << table.out;
    ASSERT_EQ(run({"stop-vm", "web1", "--turn-off"}).code, 0);
}

TEST_F(CliTest, RunEphemeralVm)
{
    set_script(FakeMachineScript::stops_with(vmm::StopReason::PowerOff, ""));
    auto ok = run({"run", "--kernel", m_kernel.string(), "--memory", "256M", "--com1", "stdio"});
    EXPECT_EQ(ok.code, 0) << ok.err;
    EXPECT_EQ(ok.err, "");
    {
        std::lock_guard guard(m_log->mutex);
        ASSERT_TRUE(m_log->last_config);
        EXPECT_EQ(m_log->last_config->generation, vmm::Generation::Two);
        EXPECT_EQ(m_log->last_config->memory_bytes, 256ull << 20);
        EXPECT_EQ(m_log->last_config->com[0].kind, vmm::SerialPortConfig::Kind::Stdio);
    }
    EXPECT_FALSE(std::filesystem::exists(m_root)); // nothing stored

    set_script(FakeMachineScript::stops_with(vmm::StopReason::TripleFault, "rip=0"));
    auto crash = run({"run", "--generation", "1", "--kernel", m_kernel.string()});
    EXPECT_EQ(crash.code, 4);
    EXPECT_EQ(crash.err, "vmgen: the guest triple-faulted: rip=0\n");
    EXPECT_EQ(m_log->last_config->generation, vmm::Generation::One);

    set_script(FakeMachineScript::stops_with(vmm::StopReason::Reset, ""));
    EXPECT_EQ(run({"run", "--kernel", m_kernel.string(), "--on-reset", "exit"}).code, 3);
    set_script(FakeMachineScript::stops_with(vmm::StopReason::InternalError, "x"));
    EXPECT_EQ(run({"run", "--kernel", m_kernel.string()}).code, 5);

    set_script(FakeMachineScript::fails_to_create("KVM_CREATE_VM: Operation not permitted"));
    expect_failure({"run", "--kernel", m_kernel.string()}, "KVM_CREATE_VM: Operation not permitted");
    set_script(FakeMachineScript::fails_to_run("vCPU 0: KVM_RUN failed"));
    expect_failure({"run", "--kernel", m_kernel.string()}, "vCPU 0: KVM_RUN failed");

    expect_failure({"run"}, "run needs --kernel FILE");
    expect_failure({"run", "--kernel", "/no/such/kernel"}, "kernel: /no/such/kernel");
    expect_failure({"run", "--kernel", m_kernel.string(), "--processors", "0"}, "invalid processor count 0");
    expect_failure({"run", "--kernel", m_kernel.string(), "--memory", "100G"}, "more than the host");
    expect_failure({"run", "--kernel", m_kernel.string(), "--com1", "serial"}, "--com1: invalid COM port");
    expect_failure({"run", "--kernel", m_kernel.string(), "--generation"}, "option --generation needs a value");
    expect_failure({"run", "--kernel", m_kernel.string(), "extra"}, "unexpected argument 'extra'");
}

TEST_F(CliTest, RunTurnsOffOnSignal)
{
    m_context.handle_signals = true;
    set_script({});
    // As in the real program, no thread may exist with SIGTERM unblocked: block it before starting the killer.
    sigset_t set;
    sigset_t previous;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &set, &previous);
    auto killer = std::async(std::launch::async, [] {
        std::this_thread::sleep_for(200ms);
        ::kill(::getpid(), SIGTERM);
    });
    auto result = run({"run", "--kernel", m_kernel.string()});
    killer.get();
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    EXPECT_EQ(result.code, 0) << result.err;
    EXPECT_EQ(m_log->turn_offs, 1);
}

} // namespace
} // namespace vmgen::mgmt
