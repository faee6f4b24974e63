// Drives the real vmgen binary as a child process against a temporary store ($VMGEN_HOME). No KVM needed:
// start-vm is only exercised up to its checks.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

using nlohmann::json;

struct RunResult {
    int code = -1;
    std::string out;
    std::string err;
};

std::string slurp(const std::filesystem::path& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

class VmgenCli : public ::testing::Test {
protected:
    VmgenCli()
    {
        std::string pattern = (std::filesystem::temp_directory_path() / "vmgen-cli-XXXXXX").string();
        m_dir = ::mkdtemp(pattern.data());
        m_home = m_dir / "home";
        m_kernel = m_dir / "bzImage";
        std::ofstream(m_kernel) << "not really a kernel";
    }
    ~VmgenCli() override { std::filesystem::remove_all(m_dir); }

    RunResult vmgen(std::vector<std::string> args)
    {
        std::vector<std::string> argv_storage = {VMGEN_BINARY};
        argv_storage.insert(argv_storage.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& a : argv_storage)
            argv.push_back(a.data());
        argv.push_back(nullptr);

        std::vector<std::string> env_storage = {"VMGEN_HOME=" + m_home.string(), "HOME=" + m_dir.string(),
                                                "PATH=/usr/bin:/bin"};
        std::vector<char*> env;
        for (auto& e : env_storage)
            env.push_back(e.data());
        env.push_back(nullptr);

        auto out_path = m_dir / "stdout";
        auto err_path = m_dir / "stderr";
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                         0644);
        posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                         0644);
        pid_t pid = 0;
        RunResult run;
        if (posix_spawn(&pid, VMGEN_BINARY, &actions, nullptr, argv.data(), env.data()) != 0) {
            posix_spawn_file_actions_destroy(&actions);
            return run;
        }
        posix_spawn_file_actions_destroy(&actions);
        int status = 0;
        ::waitpid(pid, &status, 0);
        run.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        run.out = slurp(out_path);
        run.err = slurp(err_path);
        return run;
    }

    std::map<std::string, std::string> snapshot()
    {
        std::map<std::string, std::string> files;
        if (!std::filesystem::exists(m_home))
            return files;
        for (const auto& entry : std::filesystem::recursive_directory_iterator(m_home))
            files[entry.path().string()] = entry.is_regular_file() ? slurp(entry.path()) : "<dir>";
        return files;
    }

    void expect_error(std::vector<std::string> args, const std::string& expected)
    {
        auto before = snapshot();
        auto run = vmgen(args);
        EXPECT_EQ(run.code, 1) << args[0] << ": " << run.err;
        EXPECT_NE(run.err.find("vmgen: error: "), std::string::npos) << run.err;
        EXPECT_NE(run.err.find(expected), std::string::npos) << "expected '" << expected << "' in: " << run.err;
        EXPECT_EQ(snapshot(), before) << args[0] << " changed the store";
    }

    json get_vm_json(const std::string& name = {})
    {
        std::vector<std::string> args = {"get-vm", "--format", "json"};
        if (!name.empty())
            args.push_back(name);
        auto run = vmgen(args);
        EXPECT_EQ(run.code, 0) << run.err;
        return json::parse(run.out);
    }

    std::filesystem::path m_dir;
    std::filesystem::path m_home;
    std::filesystem::path m_kernel;
};

TEST_F(VmgenCli, Help)
{
    auto help = vmgen({"help"});
    EXPECT_EQ(help.code, 0);
    EXPECT_NE(help.out.find("new-vm"), std::string::npos);
    auto command = vmgen({"set-vmcomport", "--help"});
    EXPECT_EQ(command.code, 0);
    EXPECT_NE(command.out.find("--number"), std::string::npos);
    EXPECT_EQ(vmgen({}).code, 1);
    expect_error({"bogus"}, "unknown command 'bogus'");
}

TEST_F(VmgenCli, Lifecycle)
{
    auto created = vmgen({"new-vm", "web1", "--generation", "2", "--memory", "256M", "--processors", "2",
                          "--kernel", m_kernel.string(), "--cmdline", "console=ttyS0"});
    ASSERT_EQ(created.code, 0) << created.err;
    EXPECT_NE(created.out.find("web1"), std::string::npos);
    EXPECT_NE(created.out.find("Operating normally"), std::string::npos);
    EXPECT_TRUE(std::filesystem::exists(m_home / "web1" / "config.json"));

    auto vm = get_vm_json("web1")[0];
    EXPECT_EQ(vm["State"], "Off");
    EXPECT_EQ(vm["Generation"], 2);
    EXPECT_EQ(vm["VirtualSystemSubType"], "Microsoft:Hyper-V:SubType:2");
    EXPECT_EQ(vm["MemoryStartup"], 256ull << 20);
    EXPECT_EQ(vm["ProcessorCount"], 2);

    ASSERT_EQ(vmgen({"set-vm", "web1", "--memory", "1G", "--processors", "4"}).code, 0);
    vm = get_vm_json("web1")[0];
    EXPECT_EQ(vm["MemoryStartup"], 1ull << 30);
    EXPECT_EQ(vm["ProcessorCount"], 4);

    auto log = (m_dir / "com1.log").string();
    ASSERT_EQ(vmgen({"set-vmcomport", "web1", "--number", "1", "--path", "file:" + log}).code, 0);
    auto config = json::parse(slurp(m_home / "web1" / "config.json"));
    EXPECT_EQ(config["com_ports"]["1"]["kind"], "file");
    EXPECT_EQ(config["com_ports"]["1"]["path"], log);
    EXPECT_EQ(config["version"], 1);

    auto stop = vmgen({"stop-vm", "web1"});
    EXPECT_EQ(stop.code, 0);
    EXPECT_NE(stop.out.find("already off"), std::string::npos);

    ASSERT_EQ(vmgen({"new-vm", "web2", "--memory", "64M"}).code, 0);
    auto table = vmgen({"get-vm"});
    EXPECT_EQ(table.code, 0);
    EXPECT_NE(table.out.find("web1"), std::string::npos);
    EXPECT_NE(table.out.find("web2"), std::string::npos);

    ASSERT_EQ(vmgen({"remove-vm", "web1"}).code, 0);
    EXPECT_FALSE(std::filesystem::exists(m_home / "web1"));
    EXPECT_TRUE(std::filesystem::exists(m_kernel));
    EXPECT_EQ(get_vm_json().size(), 1u);
}

TEST_F(VmgenCli, BadInput)
{
    ASSERT_EQ(vmgen({"new-vm", "web1", "--memory", "64M"}).code, 0);
    expect_error({"new-vm", "web1"}, "already exists");
    expect_error({"new-vm", ".."}, "must not start with '.'");
    expect_error({"new-vm", "a/b"}, "must not contain '/'");
    expect_error({"new-vm", "x", "--processors", "0"}, "invalid processor count 0");
    expect_error({"new-vm", "x", "--memory", "100000G"}, "more than the host has");
    expect_error({"new-vm", "x", "--kernel", (m_dir / "missing").string()}, "No such file");
    expect_error({"new-vm", "x", "--wat"}, "unknown option '--wat'");
    expect_error({"new-vm", "x", "--memory"}, "option --memory needs a value");
    expect_error({"get-vm", "nope"}, "no virtual machine named 'nope'");
    expect_error({"set-vm", "nope", "--memory", "64M"}, "no virtual machine named 'nope'");
    expect_error({"set-vm", "web1", "--generation", "2"}, "fixed when it is created");
    expect_error({"set-vmcomport", "web1", "--number", "9", "--path", "stdio"}, "invalid COM port number");
    expect_error({"remove-vm", "nope"}, "no virtual machine named 'nope'");
    expect_error({"start-vm", "web1"}, "has no kernel to boot");
    expect_error({"start-vm", "nope"}, "no virtual machine named 'nope'");
    expect_error({"run"}, "run needs --kernel FILE");
}

TEST_F(VmgenCli, CorruptConfig)
{
    ASSERT_EQ(vmgen({"new-vm", "good", "--memory", "64M"}).code, 0);
    ASSERT_EQ(vmgen({"new-vm", "bad", "--memory", "64M"}).code, 0);
    auto path = m_home / "bad" / "config.json";
    auto text = slurp(path);
    std::ofstream(path, std::ios::trunc) << text.substr(0, text.size() / 3);

    auto list = get_vm_json();
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0]["Name"], "bad");
    EXPECT_NE(list[0]["Status"].get<std::string>().find("config " + path.string() + ": not valid JSON"),
              std::string::npos)
        << list[0]["Status"];
    EXPECT_EQ(list[1]["Status"], "Operating normally");
    expect_error({"get-vm", "bad"}, "VM 'bad': config " + path.string());
    expect_error({"set-vm", "bad", "--processors", "2"}, "VM 'bad': config " + path.string());

    auto config = json::parse(slurp(m_home / "good" / "config.json"));
    config["memory_bytes"] = "a lot";
    std::ofstream(m_home / "good" / "config.json", std::ios::trunc) << config.dump();
    expect_error({"get-vm", "good"}, "field 'memory_bytes' is not a number");

    ASSERT_EQ(vmgen({"remove-vm", "bad"}).code, 0);
}

TEST_F(VmgenCli, IntegrationServices)
{
    auto help = vmgen({"help"});
    EXPECT_NE(help.out.find("get-vmintegrationservice"), std::string::npos);
    EXPECT_NE(help.out.find("enable-vmintegrationservice"), std::string::npos);
    EXPECT_NE(help.out.find("disable-vmintegrationservice"), std::string::npos);
    EXPECT_EQ(vmgen({"enable-vmintegrationservice", "--help"}).code, 0);

    ASSERT_EQ(vmgen({"new-vm", "web1", "--memory", "64M"}).code, 0);
    auto config = json::parse(slurp(m_home / "web1" / "config.json"));
    EXPECT_EQ(config["version"], 1);
    EXPECT_EQ(config["integration_services"]["guest_service_interface"], false);
    EXPECT_EQ(config["integration_services"]["heartbeat"], true);

    auto table = vmgen({"get-vmintegrationservice", "web1"});
    ASSERT_EQ(table.code, 0) << table.err;
    EXPECT_EQ(table.out, "VMName Name                    Enabled PrimaryStatusDescription SecondaryStatusDescription\n"
                         "------ ----                    ------- ------------------------ --------------------------\n"
                         "web1   Guest Service Interface False\n"
                         "web1   Heartbeat               True\n"
                         "web1   Key-Value Pair Exchange True\n"
                         "web1   Shutdown                True\n"
                         "web1   Time Synchronization    True\n"
                         "web1   VSS                     True\n");

    ASSERT_EQ(vmgen({"disable-vmintegrationservice", "web1", "--name", "time synchronization"}).code, 0);
    ASSERT_EQ(vmgen({"enable-vmintegrationservice", "web1", "--name", "Guest Service Interface"}).code, 0);
    auto services = json::parse(vmgen({"get-vmintegrationservice", "web1", "--format", "json"}).out);
    ASSERT_EQ(services.size(), 6u);
    EXPECT_EQ(services[0]["Name"], "Guest Service Interface");
    EXPECT_EQ(services[0]["Enabled"], true);
    EXPECT_EQ(services[4]["Name"], "Time Synchronization");
    EXPECT_EQ(services[4]["Enabled"], false);
    EXPECT_EQ(services[4]["PrimaryStatusDescription"], "");
    config = json::parse(slurp(m_home / "web1" / "config.json"));
    EXPECT_EQ(config["integration_services"]["time_synchronization"], false);
    EXPECT_EQ(config["integration_services"]["guest_service_interface"], true);

    expect_error({"enable-vmintegrationservice", "web1", "--name", "Backup"},
                 "unknown integration service 'Backup': the services are 'Guest Service Interface'");
    expect_error({"disable-vmintegrationservice", "web1"}, "needs --name SERVICE");
    expect_error({"get-vmintegrationservice", "nope"}, "no virtual machine named 'nope'");

    // Off: get-vm's Heartbeat is null.
    EXPECT_TRUE(get_vm_json("web1")[0]["Heartbeat"].is_null());

    // A config.json written before integration services existed loads with Hyper-V's defaults.
    config.erase("integration_services");
    std::ofstream(m_home / "web1" / "config.json", std::ios::trunc) << config.dump(2);
    services = json::parse(vmgen({"get-vmintegrationservice", "web1", "--format", "json"}).out);
    ASSERT_EQ(services.size(), 6u);
    EXPECT_EQ(services[0]["Enabled"], false);
    EXPECT_EQ(services[4]["Enabled"], true);
    EXPECT_EQ(get_vm_json("web1")[0]["State"], "Off");

    // A field of the wrong type is a clear error.
    config["integration_services"] = {{"guest_service_interface", false}, {"heartbeat", "on"},
                                      {"key_value_pair_exchange", true},  {"shutdown", true},
                                      {"time_synchronization", true},     {"vss", true}};
    std::ofstream(m_home / "web1" / "config.json", std::ios::trunc) << config.dump(2);
    expect_error({"get-vmintegrationservice", "web1"}, "field 'integration_services.heartbeat' is not a boolean");
    expect_error({"enable-vmintegrationservice", "web1", "--name", "VSS"},
                 "field 'integration_services.heartbeat' is not a boolean");
}

TEST_F(VmgenCli, StalePidFileMeansOff)
{
    ASSERT_EQ(vmgen({"new-vm", "web1", "--memory", "64M"}).code, 0);
    // A live process that is not web1's worker: this test.
    std::ofstream(m_home / "web1" / "worker.pid") << ::getpid() << "\n";
    auto vm = get_vm_json("web1")[0];
    EXPECT_EQ(vm["State"], "Off");
    EXPECT_NE(vm["Status"].get<std::string>().find("The worker process exited unexpectedly"), std::string::npos);
    auto stop = vmgen({"stop-vm", "web1"});
    EXPECT_EQ(stop.code, 0);
    EXPECT_NE(stop.out.find("already off"), std::string::npos);
}

} // namespace
