// Crash consistency: a writer process (writer/disk_crash_writer.cc) doing heavy random I/O on an image is killed
// with SIGKILL, round after round on the same image (so the image accumulates state and every round starts from
// a crashed one): by this process after a random delay, or by itself at a chosen file-changing call (a crash
// point, writer/crash_points.h). After each kill the image is reopened read-write (the VHDX log replays), every
// 512-byte unit is checked against the model (crash_model.h: every write acknowledged as flushed is there,
// nothing is garbage, misplaced or older than it should be), check_disk (Test-VHD) passes, and for VHDX
// `qemu-img check` passes and qemu, replaying the same dirty log on a copy, sees the same disk. Some rounds skip
// the check and let the next writer's open replay the log, and some of those writers are killed while they
// open: replay must survive being interrupted.
//
// VMGEN_CRASH_SEED=N repeats a run's operations, crash points and kill delays; with VMGEN_CRASH_KILLS=points
// (crash points only) the repeat is exact, a timer kill lands where the scheduler puts it. VMGEN_CRASH_ROUNDS=N
// sets the rounds per image (soak runs); VMGEN_CRASH_DIR puts the images elsewhere than $TMPDIR. A failing run
// keeps its images and says where.
#include "support/errno_error.h"
#include "vm/disk/crash/crash_model.h"
#include "vm/disk/crash/crash_protocol.h"
#include "vm/disk/disk_ops.h"
#include "vm/disk/vhd/vhd_disk.h"
#include "vm/disk/vhdx/vhdx.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace vmgen::vm::disk::crash {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t default_rounds = 24;
constexpr uint64_t mib = 1 << 20;

uint64_t env_number(const char* name, uint64_t fallback)
{
    const char* text = std::getenv(name);
    if (text == nullptr || *text == '\0')
        return fallback;
    return std::strtoull(text, nullptr, 0);
}

// The run's seed: VMGEN_CRASH_SEED, or a fresh one (printed, so a failure can be repeated).
uint64_t run_seed()
{
    static const uint64_t seed = [] {
        if (const char* text = std::getenv("VMGEN_CRASH_SEED"); text != nullptr && *text != '\0')
            return uint64_t { std::strtoull(text, nullptr, 0) };
        std::random_device rd;
        return (uint64_t { rd() } << 32) ^ rd();
    }();
    return seed;
}

// Runs a shell command; its exit status, with its output in `output`.
int shell(const std::string& command, std::string* output = nullptr)
{
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (pipe == nullptr)
        return -1;
    std::string text;
    char buffer[4096];
    size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0)
        text.append(buffer, n);
    const int status = ::pclose(pipe);
    if (output != nullptr)
        *output = text;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool have_qemu_img()
{
    static const bool have = shell("command -v qemu-img") == 0;
    return have;
}

std::vector<uint8_t> file_bytes(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    return { std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>() };
}

// One writer run: how it is killed.
struct WriterPlan {
    uint64_t seed = 0;
    uint64_t max_ops = 1'000'000;
    uint64_t crash_point = 0; // > 0: the writer kills itself at that call (crash_points.h)
    std::chrono::microseconds delay { std::chrono::seconds(30) }; // otherwise: killed this long after Ready ...
    bool from_spawn = false; // ... or after it was started
};

// How a writer run ended.
struct WriterRun {
    std::vector<Record> records;
    bool killed = false; // by us or by its crash point; otherwise it finished and closed the image
    bool ready = false; // the image opened (a kill during the open leaves no records)
};

// Runs the writer on `image` as `plan` says, collecting its records until it is gone.
Result<WriterRun> run_writer(const std::string& image, const WriterPlan& plan, uint64_t first_seq)
{
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        return fail("pipe2: {}", errno_text(errno));
    const std::string args[] = { std::to_string(plan.seed), std::to_string(first_seq), std::to_string(plan.max_ops),
        std::to_string(plan.crash_point) };
    const auto start = Clock::now();
    const pid_t pid = ::fork();
    if (pid < 0)
        return fail("fork: {}", errno_text(errno));
    if (pid == 0) {
        // The child: the pipe's write end becomes fd 3 (without close-on-exec).
        if (fds[1] == report_fd ? ::fcntl(report_fd, F_SETFD, 0) != 0 : ::dup2(fds[1], report_fd) < 0)
            ::_exit(126);
        ::execl(VMGEN_CRASH_WRITER, VMGEN_CRASH_WRITER, image.c_str(), args[0].c_str(), args[1].c_str(),
            args[2].c_str(), args[3].c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(fds[1]);
    const int in = fds[0];

    WriterRun run;
    bool we_killed = false;
    std::optional<Clock::time_point> deadline;
    if (plan.from_spawn)
        deadline = start + plan.delay;
    const auto give_up = start + std::chrono::seconds(60); // the writer is stuck: kill it and fail
    std::vector<uint8_t> buffer;
    bool closed = false;
    for (;;) {
        const auto now = Clock::now();
        if (!we_killed && ((deadline && now >= *deadline) || now >= give_up)) {
            ::kill(pid, SIGKILL);
            we_killed = true;
        }
        int timeout_ms = -1;
        if (!we_killed) {
            const auto until = deadline ? std::min(*deadline, give_up) : give_up;
            timeout_ms = static_cast<int>(
                std::chrono::ceil<std::chrono::milliseconds>(std::max(until - now, Clock::duration::zero())).count());
        }
        pollfd p { in, POLLIN, 0 };
        const int ready = ::poll(&p, 1, timeout_ms);
        if (ready < 0 && errno != EINTR) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
            ::close(in);
            return fail("poll: {}", errno_text(errno));
        }
        if (ready <= 0)
            continue;
        uint8_t chunk[4096];
        const ssize_t n = ::read(in, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; // the writer is gone (records are written whole: a pipe write of 32 bytes is atomic)
        buffer.insert(buffer.end(), chunk, chunk + n);
        size_t used = 0;
        for (; buffer.size() - used >= sizeof(Record); used += sizeof(Record)) {
            Record r;
            std::memcpy(&r, buffer.data() + used, sizeof(r));
            run.records.push_back(r);
            if (r.kind == RecordKind::Ready) {
                run.ready = true;
                if (!plan.from_spawn && plan.crash_point == 0)
                    deadline = Clock::now() + plan.delay;
            }
            closed |= r.kind == RecordKind::Closed;
        }
        buffer.erase(buffer.begin(), buffer.begin() + static_cast<ptrdiff_t>(used));
    }
    ::close(in);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) { }
    if (we_killed && Clock::now() >= give_up && (!deadline || *deadline >= give_up))
        return fail("the writer did not finish in 60 s");
    if (!buffer.empty())
        return fail("the writer left {} bytes of a record", buffer.size());
    const bool sigkill = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    if (sigkill && (we_killed || plan.crash_point != 0)) {
        run.killed = true;
        return run;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && closed)
        return run;
    return fail("the writer failed ({}; its messages are above)",
        WIFEXITED(status) ? fmt::format("exit status {}", WEXITSTATUS(status))
                          : fmt::format("signal {}", WTERMSIG(status)));
}

// How rounds kill the writer: VMGEN_CRASH_KILLS=points (crash points only: a run is exactly repeatable from
// its seed), timer (SIGKILL from this process after a delay), or both (the default).
enum class KillMode { Both, Points, Timer };

KillMode kill_mode()
{
    const char* text = std::getenv("VMGEN_CRASH_KILLS");
    const std::string_view mode = text != nullptr ? text : "";
    return mode == "points" ? KillMode::Points : mode == "timer" ? KillMode::Timer : KillMode::Both;
}

struct RoundPlan {
    WriterPlan writer;
    bool check = true; // reopen and check afterwards; otherwise the next writer's open replays the crash
    std::string text;
};

RoundPlan plan_round(uint64_t case_seed, uint64_t round, bool after_unchecked_crash, bool last)
{
    Rng rng(mix_seed(case_seed, round + 1000));
    RoundPlan p;
    WriterPlan& w = p.writer;
    w.seed = mix_seed(case_seed, round);
    const KillMode mode = kill_mode();
    const bool points = mode == KillMode::Points || (mode == KillMode::Both && rng.percent(50));
    if (after_unchecked_crash && rng.percent(50)) {
        // Killed while its open replays the last crash's log, or right after.
        if (points) {
            w.crash_point = rng.between(1, 12);
        } else {
            w.delay = std::chrono::microseconds(rng.between(0, 15000));
            w.from_spawn = true;
        }
    } else if (rng.percent(10)) {
        w.max_ops = rng.between(20, 300); // runs to the end and closes
    } else if (points) {
        w.crash_point = rng.between(1, 400);
    } else if (rng.percent(20)) {
        w.delay = std::chrono::microseconds(rng.between(0, 5000)); // the first writes (header updates)
    } else {
        w.delay = std::chrono::milliseconds(rng.between(5, 200));
    }
    p.check = last || !rng.percent(25);
    std::string how = w.crash_point != 0 ? fmt::format("crash point {}", w.crash_point)
        : w.max_ops != WriterPlan {}.max_ops
        ? fmt::format("{} operations, then close", w.max_ops)
        : fmt::format("killed {} us after {}", w.delay.count(), w.from_spawn ? "spawn" : "Ready");
    p.text = fmt::format("writer seed {}, {}{}", w.seed, how, p.check ? "" : ", not checked");
    return p;
}

struct CrashCase {
    const char* name;
    const char* file;
    DiskType type; // Dynamic, or Differencing (VHD over a dynamic VHD holding data)
    uint64_t size; // virtual bytes
    uint32_t block_size;
    uint32_t sector; // VHDX logical sector size
};

void PrintTo(const CrashCase& c, std::ostream* os)
{
    *os << c.name;
}

// Small blocks, so that allocations (BAT updates, the VHDX log) are frequent.
const CrashCase crash_cases[] = {
    { "Vhdx512", "disk.vhdx", DiskType::Dynamic, 64 * mib, 1 * mib, 512 },
    { "Vhdx4096", "disk.vhdx", DiskType::Dynamic, 64 * mib, 1 * mib, 4096 },
    { "VhdDynamic", "disk.vhd", DiskType::Dynamic, 48 * mib, 256 << 10, 512 },
    { "VhdDifferencing", "child.vhd", DiskType::Differencing, 48 * mib, 256 << 10, 512 },
};

class DiskCrashTest : public ::testing::TestWithParam<CrashCase> {
protected:
    void SetUp() override
    {
        const char* base = std::getenv("VMGEN_CRASH_DIR");
        std::string dir
            = (base != nullptr && *base != '\0' ? std::filesystem::path(base) : std::filesystem::temp_directory_path())
            / "vmgen_crash_XXXXXX";
        ASSERT_NE(::mkdtemp(dir.data()), nullptr) << dir;
        m_dir = dir;
    }
    void TearDown() override
    {
        if (HasFailure())
            std::printf("disk crash test: images kept in %s\n", m_dir.c_str());
        else
            std::filesystem::remove_all(m_dir);
    }
    std::string path(const std::string& name) const { return m_dir + "/" + name; }

    std::string m_dir;
};

// A dynamic VHD parent with stamped data on part of it (sequence numbers from 1), for a differencing child.
void make_parent(const std::string& parent, const CrashCase& c, uint64_t seed)
{
    ASSERT_TRUE(create_vhd(parent, c.size, DiskType::Dynamic, c.block_size));
    auto disk = open_vhd(parent, false);
    ASSERT_TRUE(disk) << disk.error().message();
    Rng rng(seed);
    std::vector<uint8_t> data;
    for (uint64_t seq = 1; seq <= 40; ++seq) {
        const uint64_t length = rng.between(1, 2 * mib / unit_size) * unit_size;
        const uint64_t offset = rng.below((c.size - length) / unit_size + 1) * unit_size;
        data.resize(static_cast<size_t>(length));
        stamp_units(data, offset / unit_size, seq);
        ASSERT_TRUE((*disk)->write(offset, data));
    }
    ASSERT_TRUE((*disk)->close());
}

TEST_P(DiskCrashTest, FlushedWritesSurviveSigkill)
{
    const CrashCase& c = GetParam();
    uint64_t case_id = 0;
    for (const char* n = c.name; *n != '\0'; ++n)
        case_id = case_id * 131 + static_cast<uint8_t>(*n);
    const uint64_t seed = mix_seed(run_seed(), case_id);
    const uint64_t rounds = std::max<uint64_t>(1, env_number("VMGEN_CRASH_ROUNDS", default_rounds));
    const std::string image = path(c.file);
    const bool vhdx = c.file == std::string_view("disk.vhdx");
    // qemu 7.2 opens VHDX with 512-byte logical sectors only (ENOTSUP otherwise) and cannot check VHD.
    const bool qemu = vhdx && c.sector == 512 && have_qemu_img();
    const char* kills = std::getenv("VMGEN_CRASH_KILLS");
    SCOPED_TRACE(fmt::format("{}: this case's seed {}; repeat with VMGEN_CRASH_SEED={}{} vm_disk_crash_test "
                             "--gtest_filter='*/{}'",
        c.name, seed, run_seed(), kills != nullptr ? fmt::format(" VMGEN_CRASH_KILLS={}", kills) : "", c.name));

    std::vector<uint8_t> parent_bytes;
    if (c.type == DiskType::Differencing) {
        const std::string parent = path("parent.vhd");
        ASSERT_NO_FATAL_FAILURE(make_parent(parent, c, seed));
        ASSERT_TRUE(create_vhd_differencing(image, parent));
        parent_bytes = file_bytes(parent);
    } else if (vhdx) {
        ASSERT_TRUE(create_vhdx(image, c.size, DiskType::Dynamic, c.block_size, c.sector));
    } else {
        ASSERT_TRUE(create_vhd(image, c.size, DiskType::Dynamic, c.block_size));
    }
    CrashModel model(c.size);
    {
        auto disk = open_disk(image, true);
        ASSERT_TRUE(disk) << disk.error().message();
        ASSERT_TRUE(model.observe(**disk));
    }

    uint64_t point_kills = 0, timer_kills = 0, kills_in_open = 0, closes = 0, writer_replays = 0, dirty = 0,
             qemu_replays = 0, operations = 0, flushes = 0;
    bool unchecked_crash = false; // the last writer was killed and nothing reopened the image since
    for (uint64_t round = 0; round < rounds; ++round) {
        const RoundPlan plan = plan_round(seed, round, unchecked_crash, round + 1 == rounds);
        SCOPED_TRACE(fmt::format("round {}: {}", round, plan.text));
        writer_replays += unchecked_crash;

        auto run = run_writer(image, plan.writer, model.next_seq());
        ASSERT_TRUE(run) << run.error().message();
        for (const Record& r : run->records) {
            auto applied = model.apply(r);
            ASSERT_TRUE(applied) << applied.error().message();
            operations += r.kind == RecordKind::Write || r.kind == RecordKind::Discard;
            flushes += r.kind == RecordKind::Flushed;
        }
        point_kills += run->killed && plan.writer.crash_point != 0;
        timer_kills += run->killed && plan.writer.crash_point == 0;
        closes += !run->killed;
        kills_in_open += run->killed && !run->ready;
        unchecked_crash = run->killed || unchecked_crash;
        if (!plan.check)
            continue;
        unchecked_crash = false;
        // A VHDX killed while its log held entries refuses a read-only open until replayed. qemu replays a copy.
        const std::string qemu_copy = path("qemu.vhdx");
        bool replayed_by_qemu = false;
        if (vhdx) {
            auto ro = open_vhdx(image, true);
            if (!ro) {
                ASSERT_NE(ro.error().message().find("the log has entries to replay"), std::string::npos)
                    << ro.error().message();
                ++dirty;
                if (qemu) {
                    std::string out;
                    ASSERT_EQ(shell(fmt::format("cp --sparse=always {} {}", image, qemu_copy), &out), 0) << out;
                    const int status = shell("qemu-img check -r all -f vhdx " + qemu_copy, &out);
                    EXPECT_EQ(status, 0) << "qemu-img check -r all (replaying our log):\n" << out;
                    replayed_by_qemu = status == 0;
                    qemu_replays += replayed_by_qemu;
                }
            }
        }

        // Reopen read-write (replay), compare every unit with the model, close (makes the state durable).
        {
            auto disk = open_disk(image, false);
            ASSERT_TRUE(disk) << "reopening after the crash: " << disk.error().message();
            auto problems = model.check(**disk);
            ASSERT_TRUE(problems) << problems.error().message();
            std::string text;
            for (const auto& p : *problems)
                text += "\n  " + p;
            EXPECT_TRUE(problems->empty()) << problems->size() << " units hold what they must not:" << text;
            auto closed = (*disk)->close();
            ASSERT_TRUE(closed) << closed.error().message();
        }
        auto checked = check_disk(image);
        EXPECT_TRUE(checked) << "check_disk (Test-VHD): " << checked.error().message();
        if (qemu) {
            std::string out;
            EXPECT_EQ(shell("qemu-img check -f vhdx " + image, &out), 0) << "qemu-img check:\n" << out;
            if (replayed_by_qemu) {
                EXPECT_EQ(shell(fmt::format("qemu-img compare -f vhdx -F vhdx {} {}", qemu_copy, image), &out), 0)
                    << "qemu's replay of the log and ours differ:\n"
                    << out;
            }
            std::filesystem::remove(qemu_copy);
        }
        if (!parent_bytes.empty()) {
            EXPECT_TRUE(file_bytes(path("parent.vhd")) == parent_bytes) << "the parent changed";
        }
        if (HasFailure())
            return;
    }

    fmt::print("{}: seed {}, {} rounds: {} killed at a crash point, {} by a timer ({} while opening), {} closed; "
               "{} opens of an unchecked crashed image; {} operations, {} flushes",
        c.name, seed, rounds, point_kills, timer_kills, kills_in_open, closes, writer_replays, operations, flushes);
    if (vhdx)
        fmt::print("; {} dirty logs replayed on checking ({} also by qemu)", dirty, qemu_replays);
    fmt::print("\n");
    std::fflush(stdout);
}

INSTANTIATE_TEST_SUITE_P(Images, DiskCrashTest, ::testing::ValuesIn(crash_cases),
    [](const ::testing::TestParamInfo<CrashCase>& param) { return std::string(param.param.name); });

} // namespace
} // namespace vmgen::vm::disk::crash
