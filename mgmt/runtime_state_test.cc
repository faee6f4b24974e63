#include "mgmt/runtime_state.h"

#include "mgmt/atomic_file.h"
#include "mgmt/temp_home.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

namespace vmgen::mgmt {
namespace {

using namespace std::chrono_literals;

// A pid that is certainly dead: a child that exited and was reaped.
pid_t dead_pid()
{
    pid_t pid = ::fork();
    if (pid == 0)
        ::_exit(0);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return pid;
}

bool alive(pid_t pid, std::string_view /*name*/) { return ::kill(pid, 0) == 0; }

TEST(LastExit, RoundTripAndDescriptions)
{
    LastExit exit{.reason = "triple-fault", .exit_status = 4, .detail = "rip=0x1000", .time = "t", .signal = 0};
    auto parsed = parse_last_exit(serialize_last_exit(exit));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->reason, "triple-fault");
    EXPECT_EQ(parsed->exit_status, 4);
    EXPECT_EQ(parsed->detail, "rip=0x1000");
    EXPECT_EQ(describe_last_exit(*parsed), "The guest triple-faulted: rip=0x1000");
    EXPECT_EQ(describe_last_exit({.reason = "power-off", .exit_status = 0, .detail = "", .time = "", .signal = 0}),
              normal_status);
    EXPECT_NE(describe_last_exit({.reason = "internal-error", .exit_status = 5, .detail = "x", .time = "", .signal = 0})
                  .find("internal error"),
              std::string::npos);
    auto killed = describe_last_exit({.reason = "killed", .exit_status = 1, .detail = "", .time = "", .signal = 9});
    EXPECT_NE(killed.find("exited unexpectedly (killed by signal 9"), std::string::npos) << killed;
    EXPECT_FALSE(parse_last_exit("{"));
    EXPECT_FALSE(parse_last_exit("{\"reason\": 1}"));
}

TEST(RuntimeState, NoFilesIsOffAndNormal)
{
    TempHome home;
    auto runtime = inspect_runtime(home.path(), "vm", alive, 100ms);
    EXPECT_EQ(runtime.state, VmState::Off);
    EXPECT_EQ(runtime.status, normal_status);
    EXPECT_EQ(runtime.memory_assigned_bytes, 0u);
}

TEST(RuntimeState, DeadPidIsOffAndSaysTheWorkerDied)
{
    TempHome home;
    std::ofstream(home.path() / worker_pid_file) << dead_pid() << "\n";
    auto runtime = inspect_runtime(home.path(), "vm", alive, 100ms);
    EXPECT_EQ(runtime.state, VmState::Off);
    EXPECT_NE(runtime.status.find("The worker process exited unexpectedly"), std::string::npos) << runtime.status;
}

TEST(RuntimeState, LivePidThatIsNotOurWorkerIsOff)
{
    TempHome home;
    // Our own pid is alive, but this test binary is not "vmgen __worker vm".
    std::ofstream(home.path() / worker_pid_file) << ::getpid() << "\n";
    EXPECT_FALSE(is_worker_process(::getpid(), "vm"));
    auto runtime = inspect_runtime(home.path(), "vm", is_worker_process, 100ms);
    EXPECT_EQ(runtime.state, VmState::Off);
    EXPECT_NE(runtime.status.find("exited unexpectedly"), std::string::npos);
}

// A process whose command line is "vmgen __worker web1": /bin/sh running a script named __worker.
TEST(RuntimeState, RecognisesAWorkerByItsCommandLine)
{
    TempHome home;
    std::ofstream(home.path() / "__worker") << "sleep 10\n";
    std::string dir = home.path().string();
    pid_t child = ::fork();
    if (child == 0) {
        if (::chdir(dir.c_str()) != 0)
            ::_exit(1);
        char arg0[] = "vmgen";
        char arg1[] = "__worker";
        char arg2[] = "web1";
        char* argv[] = {arg0, arg1, arg2, nullptr};
        ::execv("/bin/sh", argv);
        ::_exit(127);
    }
    bool seen = false;
    for (int i = 0; i < 200 && !seen; ++i) {
        seen = is_worker_process(child, "web1");
        if (!seen)
            std::this_thread::sleep_for(5ms);
    }
    EXPECT_TRUE(seen);
    EXPECT_FALSE(is_worker_process(child, "web2"));
    std::ofstream(home.path() / worker_pid_file) << child << "\n";
    EXPECT_EQ(inspect_runtime(home.path(), "web1", is_worker_process, 100ms).state, VmState::Starting);
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_FALSE(is_worker_process(child, "web1"));
    EXPECT_EQ(inspect_runtime(home.path(), "web1", is_worker_process, 100ms).state, VmState::Off);
}

TEST(RuntimeState, GarbagePidFile)
{
    TempHome home;
    std::ofstream(home.path() / worker_pid_file) << "not a pid";
    auto runtime = inspect_runtime(home.path(), "vm", alive, 100ms);
    EXPECT_EQ(runtime.state, VmState::Off);
    EXPECT_NE(runtime.status.find("worker.pid is unreadable"), std::string::npos);
}

TEST(RuntimeState, LastExitDecidesStatus)
{
    TempHome home;
    ASSERT_TRUE(write_last_exit(home.path(), {.reason = "internal-error",
                                              .exit_status = 5,
                                              .detail = "KVM_EXIT_INTERNAL_ERROR",
                                              .time = "t",
                                              .signal = 0}));
    auto runtime = inspect_runtime(home.path(), "vm", alive, 100ms);
    EXPECT_EQ(runtime.state, VmState::Off);
    EXPECT_EQ(runtime.status, "The virtual machine stopped on an internal error: KVM_EXIT_INTERNAL_ERROR");

    std::ofstream(home.path() / last_exit_file, std::ios::trunc) << "garbage";
    runtime = inspect_runtime(home.path(), "vm", alive, 100ms);
    EXPECT_NE(runtime.status.find("last exit report is unreadable"), std::string::npos);
}

TEST(RuntimeState, LiveWorkerWithoutSocketIsStarting)
{
    TempHome home;
    std::ofstream(home.path() / worker_pid_file) << ::getpid() << "\n";
    auto runtime = inspect_runtime(home.path(), "vm", alive, 100ms);
    EXPECT_EQ(runtime.state, VmState::Starting);
    EXPECT_EQ(runtime.pid, ::getpid());
}

TEST(Uptime, WorkerPidReading)
{
    TempHome home;
    EXPECT_FALSE(read_worker_pid(home.path()));
    std::ofstream(home.path() / worker_pid_file) << "1234\n";
    EXPECT_EQ(read_worker_pid(home.path()), 1234);
}

} // namespace
} // namespace vmgen::mgmt
