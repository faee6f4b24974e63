// CliTest: the fixture of the CLI tests (cli_test.cc, cli_storage_test.cc). run_cli runs in-process against a
// temporary store, with fake machines; start-vm's workers run on threads of the test process (their "pid" is
// ours), so get-vm, stop-vm and the control socket work as with real workers.
#pragma once

#include "mgmt/atomic_file.h"
#include "mgmt/cli.h"
#include "mgmt/fake_machine.h"
#include "mgmt/store.h"
#include "mgmt/temp_home.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <map>
#include <sstream>

namespace vmgen::mgmt::cli_testing {

using namespace std::chrono_literals;
using nlohmann::json;

struct CliResult {
    int code = 0;
    std::string out;
    std::string err;
};

// Runs the CLI with `args` in `context`, capturing its exit code and both streams.
inline CliResult run_captured(const std::vector<std::string>& args, const CliContext& context)
{
    std::ostringstream out;
    std::ostringstream err;
    CliResult result;
    result.code = run_cli(args, out, err, context);
    result.out = out.str();
    result.err = err.str();
    return result;
}

// A worker run on a thread of the test process (its "pid" is ours).
class ThreadWorker final : public WorkerHandle {
public:
    explicit ThreadWorker(std::shared_future<int> result)
        : m_result(std::move(result))
    {
    }
    [[nodiscard]] pid_t pid() const override { return ::getpid(); }
    std::optional<WorkerExit> try_wait() override
    {
        if (!m_exit && m_result.wait_for(0s) == std::future_status::ready)
            m_exit = WorkerExit{.exit_code = m_result.get(), .signal = 0};
        return m_exit;
    }

private:
    std::shared_future<int> m_result;
    std::optional<WorkerExit> m_exit;
};

// The store's files and their contents, to check that failed commands change nothing.
inline std::map<std::string, std::string> snapshot(const std::filesystem::path& root)
{
    std::map<std::string, std::string> files;
    std::error_code ec;
    if (!std::filesystem::exists(root, ec))
        return files;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
        auto key = entry.path().lexically_relative(root).string();
        files[key] = entry.is_regular_file() ? read_small_file(entry.path()).value_or(std::string("?")) : "<dir>";
    }
    return files;
}

class CliTest : public ::testing::Test {
protected:
    CliTest()
    {
        m_kernel = m_home.path() / "bzImage";
        std::ofstream(m_kernel) << "kernel";
        m_initrd = m_home.path() / "initrd.img";
        std::ofstream(m_initrd) << "initrd";
        m_root = m_home.path() / "store";
        m_context.home = m_root;
        m_context.host_memory_bytes = 4ull << 30;
        m_context.is_worker = in_process_probe();
        m_context.start_timeout = 5000ms;
        m_context.control_timeout = 1000ms;
        m_context.turn_off_timeout = 2000ms;
        m_context.kill_grace = 300ms;
        m_context.poll_interval = 5ms;
        set_script({});
    }

    ~CliTest() override
    {
        // Never leave a worker thread behind.
        for (auto& entry : snapshot(m_root)) {
            if (entry.first.ends_with("control.sock"))
                run({"stop-vm", std::filesystem::path(entry.first).parent_path().string(), "--turn-off"});
        }
    }

    // Worker "processes" are threads of this process: one is alive while its worker.pid names us.
    WorkerProbe in_process_probe()
    {
        return [root = m_root](pid_t pid, std::string_view name) {
            return pid == ::getpid() && read_worker_pid(root / std::string(name)) == pid;
        };
    }

    void set_script(FakeMachineScript script)
    {
        m_context.machine_factory = fake_machine_factory(std::move(script), m_log);
        m_context.spawn_worker = [this](const std::filesystem::path&, std::string_view name,
                                        bool) -> Result<std::unique_ptr<WorkerHandle>> {
            auto factory = m_context.machine_factory;
            std::string vm(name);
            auto root = m_root;
            std::shared_future<int> result = std::async(std::launch::async, [root, vm, factory] {
                return run_worker(Store(root), vm, factory, {.handle_signals = false, .sample_interval = 10ms});
            });
            // start-vm forgets its handle while the worker runs on: the fixture joins the thread at the end.
            m_workers.push_back(result);
            return std::unique_ptr<WorkerHandle>(std::make_unique<ThreadWorker>(std::move(result)));
        };
    }

    CliResult run(std::vector<std::string> args) { return run_captured(args, m_context); }

    // Runs a command that must fail with exit 1, an error naming `expected`, and no change to the store.
    void expect_failure(std::vector<std::string> args, std::string_view expected)
    {
        auto before = snapshot(m_root);
        auto result = run(args);
        std::string command;
        for (const auto& a : args)
            command += a + " ";
        EXPECT_EQ(result.code, 1) << command;
        EXPECT_TRUE(result.err.starts_with("vmgen: error: ")) << command << ": " << result.err;
        EXPECT_NE(result.err.find(expected), std::string::npos)
            << command << ": expected '" << expected << "' in: " << result.err;
        EXPECT_EQ(snapshot(m_root), before) << command << " changed the store";
    }

    json get_json(std::string_view name = {})
    {
        std::vector<std::string> args = {"get-vm", "--format", "json"};
        if (!name.empty())
            args.emplace_back(name);
        auto result = run(args);
        EXPECT_EQ(result.code, 0) << result.err;
        return json::parse(result.out);
    }

    VmConfig config(std::string_view name) { return *Store(m_root).load(name); }

    void new_vm(std::string name, std::vector<std::string> options = {})
    {
        std::vector<std::string> args = {"new-vm", std::move(name), "--memory", "64M", "--kernel", m_kernel.string()};
        args.insert(args.end(), options.begin(), options.end());
        auto result = run(args);
        ASSERT_EQ(result.code, 0) << result.err;
    }

    TempHome m_home;
    std::filesystem::path m_root;
    std::filesystem::path m_kernel;
    std::filesystem::path m_initrd;
    std::shared_ptr<FakeMachineLog> m_log = std::make_shared<FakeMachineLog>();
    CliContext m_context;
    std::vector<std::shared_future<int>> m_workers;
};

} // namespace vmgen::mgmt::cli_testing
