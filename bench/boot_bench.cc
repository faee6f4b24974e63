// boot_bench: the VMM core benchmark. Boots tests/guests/bench_boot (a PVH ELF whose first instruction
// writes '<' to COM1 and which writes '>' right before its ACPI power off) under vmgen (generation 2 and
// generation 1) and under QEMU (the pc machine, as the issue defines the peer, and microvm when it can boot
// the guest), each run N times, interleaved, and reports medians [min, max] of
//   - start -> first guest instruction: the child's clock just before execve() to the arrival of '<' on
//     the child's stdout (COM1 connected to stdio);
//   - power off -> exit: the arrival of '>' to the process's exit (pidfd);
//   - total: execve() to exit;
// and, in separate runs with the command line "wait" (the guest prints "ready" and halts), the process's
// memory from /proc/<pid>/smaps: total Rss, Rss of the guest RAM mapping (the anonymous mapping whose size
// is the guest RAM size) and the overhead, total minus guest.
// Every child runs under a deadline: on timeout it is killed and the run reported as failed.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fmt/core.h>
#include <fstream>
#include <optional>
#include <poll.h>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

constexpr uint64_t guest_ram_mib = 256;

// ---- time ----

int64_t now_ns()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

double ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

// ---- child processes ----

// A page shared with every child: the child stores its clock there right before execve().
int64_t* exec_clock = nullptr;

struct Child {
    pid_t pid = -1;
    int pidfd = -1;
    int out = -1; // the child's stdout (COM1)
    int err = -1; // the child's stderr
    int64_t exec_ns = 0;
    std::string out_text;
    std::string err_text;
    bool out_open = true;
    bool err_open = true;
    bool exited = false;
    int status = 0;
    int64_t exit_ns = 0;
};

void close_fd(int& fd)
{
    if (fd >= 0)
        close(fd);
    fd = -1;
}

std::optional<Child> spawn(const std::vector<std::string>& argv, std::string& error)
{
    int out_pipe[2];
    int err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
        error = fmt::format("pipe: {}", strerror(errno));
        return std::nullopt;
    }
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        error = fmt::format("pipe: {}", strerror(errno));
        close(out_pipe[0]);
        close(out_pipe[1]);
        return std::nullopt;
    }
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    *exec_clock = 0;

    pid_t pid = fork();
    if (pid == 0) {
        // Only async-signal-safe calls from here on.
        setpgid(0, 0);
        int null_fd = open("/dev/null", O_RDONLY);
        if (null_fd >= 0)
            dup2(null_fd, 0);
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        *exec_clock = int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
        execvp(args[0], args.data());
        const char msg[] = "boot_bench: exec failed\n";
        ssize_t ignored = write(2, msg, sizeof msg - 1);
        (void)ignored;
        _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (pid < 0) {
        error = fmt::format("fork: {}", strerror(errno));
        close(out_pipe[0]);
        close(err_pipe[0]);
        return std::nullopt;
    }
    setpgid(pid, pid); // also here: no race with a kill of the group
    Child c;
    c.pid = pid;
    c.out = out_pipe[0];
    c.err = err_pipe[0];
    c.pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (c.pidfd < 0) {
        error = fmt::format("pidfd_open: {}", strerror(errno));
        kill(-pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        close_fd(c.out);
        close_fd(c.err);
        return std::nullopt;
    }
    return c;
}

void drain(int& fd, std::string& into, bool& open)
{
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
        into.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        open = false;
        close_fd(fd);
    }
}

// Polls the child until done() or the deadline; returns false on timeout. The exit time is the clock right
// after poll() returns; done() runs right after each read and timestamps the bytes it sees arrive.
template <typename Done>
bool pump(Child& c, int64_t deadline_ns, Done done)
{
    while (!done()) {
        int64_t now = now_ns();
        if (now >= deadline_ns)
            return false;
        pollfd fds[3];
        nfds_t n = 0;
        int out_index = -1;
        int err_index = -1;
        int pid_index = -1;
        if (c.out_open) {
            out_index = static_cast<int>(n);
            fds[n++] = {c.out, POLLIN, 0};
        }
        if (c.err_open) {
            err_index = static_cast<int>(n);
            fds[n++] = {c.err, POLLIN, 0};
        }
        if (!c.exited) {
            pid_index = static_cast<int>(n);
            fds[n++] = {c.pidfd, POLLIN, 0};
        }
        if (n == 0)
            return done();
        int timeout_ms = static_cast<int>(std::min<int64_t>((deadline_ns - now) / 1'000'000 + 1, 1000));
        int r = poll(fds, n, timeout_ms);
        int64_t t = now_ns();
        if (r < 0 && errno != EINTR)
            return false;
        if (r <= 0)
            continue;
        if (out_index >= 0 && fds[out_index].revents)
            drain(c.out, c.out_text, c.out_open);
        if (err_index >= 0 && fds[err_index].revents)
            drain(c.err, c.err_text, c.err_open);
        if (pid_index >= 0 && fds[pid_index].revents) {
            if (waitpid(c.pid, &c.status, WNOHANG) == c.pid) {
                c.exited = true;
                c.exit_ns = t;
            }
        }
    }
    return true;
}

void kill_and_reap(Child& c)
{
    if (!c.exited && c.pid > 0) {
        kill(-c.pid, SIGKILL);
        kill(c.pid, SIGKILL);
        waitpid(c.pid, &c.status, 0);
        c.exited = true;
    }
    close_fd(c.out);
    close_fd(c.err);
    close_fd(c.pidfd);
}

std::string tail(const std::string& s, size_t n = 400)
{
    std::string t = s.size() > n ? s.substr(s.size() - n) : s;
    for (auto& ch : t)
        if (ch == '\n')
            ch = '|';
    return t;
}

std::string describe_status(int status)
{
    if (WIFEXITED(status))
        return fmt::format("exit status {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return fmt::format("killed by signal {}", WTERMSIG(status));
    return "unknown status";
}

// ---- the peers ----

struct Peer {
    std::string name;
    std::vector<std::string> boot;  // runs the guest to its power off
    std::vector<std::string> wait;  // boots the guest with "wait" on its command line
    bool is_vmgen = false;
    bool optional = false;          // skipped (not failed) when it cannot run the guest
    std::string skipped;            // why, when skipped
};

struct BootSample {
    double first_ms = 0;
    double off_ms = 0;
    double total_ms = 0;
};

struct MemorySample {
    double total_kib = 0;
    double guest_kib = 0;
    double anon_kib = 0;       // Anonymous of every mapping
    double guest_anon_kib = 0; // Anonymous of the guest RAM mapping(s)
    unsigned guest_mappings = 0;
};

struct Results {
    std::vector<BootSample> boots;
    std::vector<MemorySample> memory;
    unsigned failures = 0;
    std::string last_error;
};

std::optional<BootSample> boot_once(const Peer& peer, int64_t timeout_ns, std::string& error)
{
    auto child = spawn(peer.boot, error);
    if (!child)
        return std::nullopt;
    Child& c = *child;
    int64_t first_ns = 0;
    int64_t off_ns = 0;
    size_t seen = 0;
    int64_t deadline = now_ns() + timeout_ns;
    bool ok = pump(c, deadline, [&] {
        int64_t t = now_ns();
        for (; seen < c.out_text.size(); ++seen) {
            char ch = c.out_text[seen];
            if (ch == '<' && !first_ns)
                first_ns = t;
            else if (ch == '>' && first_ns && !off_ns)
                off_ns = t;
        }
        return c.exited && !c.out_open;
    });
    c.exec_ns = *exec_clock;
    if (!ok) {
        error = fmt::format("timed out after {:.0f} s (stdout: '{}', stderr: '{}')", ms(timeout_ns) / 1000,
                            tail(c.out_text), tail(c.err_text));
        kill_and_reap(c);
        return std::nullopt;
    }
    kill_and_reap(c);
    if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0 || !first_ns || !off_ns || !c.exec_ns) {
        error = fmt::format("{}, first marker {}, power-off marker {} (stdout: '{}', stderr: '{}')",
                            describe_status(c.status), first_ns ? "seen" : "missing", off_ns ? "seen" : "missing",
                            tail(c.out_text), tail(c.err_text));
        return std::nullopt;
    }
    return BootSample{ms(first_ns - c.exec_ns), ms(c.exit_ns - off_ns), ms(c.exit_ns - c.exec_ns)};
}

struct SmapsTotals {
    uint64_t rss_kib = 0;
    uint64_t anon_kib = 0;
    uint64_t guest_rss_kib = 0;
    uint64_t guest_anon_kib = 0;
    unsigned guest_mappings = 0;
};

std::optional<uint64_t> parse_u64(std::string_view s, int base = 10)
{
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (ec != std::errc{} || p == s.data())
        return std::nullopt;
    return v;
}

// Reads /proc/<pid>/smaps. The guest RAM mappings are the anonymous (no path, inode 0) mappings whose
// size is the guest RAM size.
std::optional<SmapsTotals> read_smaps(pid_t pid, uint64_t ram_kib, std::string& error)
{
    std::ifstream in(fmt::format("/proc/{}/smaps", pid));
    if (!in) {
        error = fmt::format("cannot read /proc/{}/smaps", pid);
        return std::nullopt;
    }
    SmapsTotals t;
    bool guest = false;
    std::string line;
    auto field_kib = [](const std::string& l) -> uint64_t {
        std::istringstream s(l);
        std::string name;
        uint64_t v = 0;
        s >> name >> v;
        return v;
    };
    while (std::getline(in, line)) {
        if (line.empty())
            continue;
        auto dash = line.find('-');
        auto space = line.find(' ');
        bool header = dash != std::string::npos && space != std::string::npos && dash < space &&
                      parse_u64(std::string_view(line).substr(0, dash), 16).has_value() && line.back() != ':' &&
                      line.find(':') > space;
        if (header) {
            std::istringstream s(line);
            std::string range, perms, offset, dev, inode, path;
            s >> range >> perms >> offset >> dev >> inode >> path;
            auto start = parse_u64(std::string_view(range).substr(0, dash), 16);
            auto end = parse_u64(std::string_view(range).substr(dash + 1), 16);
            guest = start && end && path.empty() && inode == "0" && (*end - *start) / 1024 == ram_kib;
            if (guest)
                ++t.guest_mappings;
            continue;
        }
        if (line.starts_with("Rss:")) {
            uint64_t v = field_kib(line);
            t.rss_kib += v;
            if (guest)
                t.guest_rss_kib += v;
        } else if (line.starts_with("Anonymous:")) {
            uint64_t v = field_kib(line);
            t.anon_kib += v;
            if (guest)
                t.guest_anon_kib += v;
        }
    }
    if (t.rss_kib == 0) {
        error = fmt::format("/proc/{}/smaps has no Rss", pid);
        return std::nullopt;
    }
    return t;
}

std::optional<MemorySample> memory_once(const Peer& peer, int64_t timeout_ns, int64_t settle_ns,
                                        std::string& error)
{
    auto child = spawn(peer.wait, error);
    if (!child)
        return std::nullopt;
    Child& c = *child;
    int64_t deadline = now_ns() + timeout_ns;
    bool ok = pump(c, deadline, [&] { return c.out_text.find("ready\n") != std::string::npos || c.exited; });
    if (!ok || c.exited) {
        error = ok ? fmt::format("{} before 'ready' (stdout: '{}', stderr: '{}')", describe_status(c.status),
                                 tail(c.out_text), tail(c.err_text))
                   : fmt::format("no 'ready' within {:.0f} s (stdout: '{}', stderr: '{}')", ms(timeout_ns) / 1000,
                                 tail(c.out_text), tail(c.err_text));
        kill_and_reap(c);
        return std::nullopt;
    }
    // Let the VMM settle (the guest is halted), still draining its output.
    int64_t settle_end = now_ns() + settle_ns;
    pump(c, settle_end, [&] { return c.exited; });
    if (c.exited) {
        error = fmt::format("{} while the guest waited (stderr: '{}')", describe_status(c.status), tail(c.err_text));
        kill_and_reap(c);
        return std::nullopt;
    }
    auto smaps = read_smaps(c.pid, guest_ram_mib * 1024, error);
    kill_and_reap(c);
    if (!smaps)
        return std::nullopt;
    if (smaps->guest_mappings == 0) {
        error = fmt::format("no anonymous mapping of {} MiB (the guest RAM) in /proc/<pid>/smaps", guest_ram_mib);
        return std::nullopt;
    }
    MemorySample m;
    m.total_kib = static_cast<double>(smaps->rss_kib);
    m.guest_kib = static_cast<double>(smaps->guest_rss_kib);
    m.anon_kib = static_cast<double>(smaps->anon_kib);
    m.guest_anon_kib = static_cast<double>(smaps->guest_anon_kib);
    m.guest_mappings = smaps->guest_mappings;
    return m;
}

// ---- statistics and output ----

struct Stat {
    double median = 0;
    double min = 0;
    double max = 0;
    bool valid = false;
};

template <typename T, typename F>
Stat stat_of(const std::vector<T>& samples, F field)
{
    Stat s;
    if (samples.empty())
        return s;
    std::vector<double> v;
    for (const auto& x : samples)
        v.push_back(field(x));
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    s.min = v.front();
    s.max = v.back();
    s.valid = true;
    return s;
}

std::string show_ms(const Stat& s)
{
    if (!s.valid)
        return "n/a";
    return fmt::format("{:.2f} [{:.2f}, {:.2f}]", s.median, s.min, s.max);
}

std::string show_mib(const Stat& s)
{
    if (!s.valid)
        return "n/a";
    return fmt::format("{:.2f}", s.median / 1024);
}

std::string ratio(const Stat& a, const Stat& b)
{
    if (!a.valid || !b.valid || b.median <= 0)
        return "n/a";
    return fmt::format("{:.3f}", a.median / b.median);
}

std::string cpu_model()
{
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.starts_with("model name")) {
            auto colon = line.find(':');
            return colon == std::string::npos ? line : line.substr(colon + 2);
        }
    return "unknown";
}

void usage()
{
    fmt::print(
        "Usage: boot_bench [options]\n\n"
        "Boots tests/guests/bench_boot.elf (PVH, {} MiB, 1 vCPU) under vmgen (generations 2 and 1) and QEMU\n"
        "(pc, and microvm when it can boot the guest) and reports start -> first guest instruction, power off\n"
        "-> VMM exit, total wall time and the VMM's memory overhead (Rss minus guest RAM Rss).\n\n"
        "Options:\n"
        "  --runs N         boot runs per VMM, after one warm-up run (default 20)\n"
        "  --memory-runs N  memory runs per VMM (default 3)\n"
        "  --timeout S      limit per child process in seconds (default 60)\n"
        "  --settle-ms MS   wait after 'ready' before reading smaps (default 100)\n"
        "  --vmgen PATH     default {}\n"
        "  --guest PATH     default {}\n"
        "  --qemu PATH      default qemu-system-x86_64 (from PATH)\n"
        "  --no-microvm     leave out the QEMU microvm peer\n",
        guest_ram_mib, BOOT_BENCH_VMGEN, BOOT_BENCH_GUEST);
}

} // namespace

int main(int argc, char** argv)
{
    unsigned runs = 20;
    unsigned memory_runs = 3;
    double timeout_s = 60;
    double settle_ms = 100;
    std::string vmgen = BOOT_BENCH_VMGEN;
    std::string guest = BOOT_BENCH_GUEST;
    std::string qemu = "qemu-system-x86_64";
    bool microvm = true;

    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) {
                fmt::print(stderr, "boot_bench: {} needs a value\n", a);
                std::exit(2);
            }
            return argv[++i];
        };
        auto number = [&](std::string_view v) -> uint64_t {
            auto n = parse_u64(v);
            if (!n || *n == 0 || *n > 100000) {
                fmt::print(stderr, "boot_bench: {}: bad value '{}'\n", a, v);
                std::exit(2);
            }
            return *n;
        };
        if (a == "--runs")
            runs = static_cast<unsigned>(number(value()));
        else if (a == "--memory-runs")
            memory_runs = static_cast<unsigned>(number(value()));
        else if (a == "--timeout")
            timeout_s = static_cast<double>(number(value()));
        else if (a == "--settle-ms")
            settle_ms = static_cast<double>(number(value()));
        else if (a == "--vmgen")
            vmgen = value();
        else if (a == "--guest")
            guest = value();
        else if (a == "--qemu")
            qemu = value();
        else if (a == "--no-microvm")
            microvm = false;
        else if (a == "--help" || a == "-h") {
            usage();
            return 0;
        } else {
            fmt::print(stderr, "boot_bench: unknown option {} (see --help)\n", a);
            return 2;
        }
    }
    if (access(guest.c_str(), R_OK) != 0) {
        fmt::print(stderr, "boot_bench: guest {} not readable: {}\n", guest, strerror(errno));
        return 1;
    }
    void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        fmt::print(stderr, "boot_bench: mmap: {}\n", strerror(errno));
        return 1;
    }
    exec_clock = static_cast<int64_t*>(page);
    signal(SIGPIPE, SIG_IGN);

    const std::string memory = fmt::format("{}M", guest_ram_mib);
    auto vmgen_peer = [&](int generation) {
        Peer p;
        p.name = fmt::format("vmgen gen {}", generation);
        p.boot = {vmgen, "run", "--generation", std::to_string(generation), "--memory", memory, "--kernel", guest,
                  "--com1", "stdio"};
        p.wait = p.boot;
        p.wait.insert(p.wait.end(), {"--cmdline", "wait"});
        p.is_vmgen = true;
        return p;
    };
    auto qemu_peer = [&](std::string name, std::vector<std::string> machine, bool optional) {
        Peer p;
        p.name = std::move(name);
        p.boot = {qemu};
        p.boot.insert(p.boot.end(), machine.begin(), machine.end());
        p.boot.insert(p.boot.end(), {"-enable-kvm", "-m", std::to_string(guest_ram_mib), "-kernel", guest,
                                     "-serial", "stdio", "-display", "none", "-nodefaults", "-no-user-config",
                                     "-no-reboot"});
        p.wait = p.boot;
        p.wait.insert(p.wait.end(), {"-append", "wait"});
        p.optional = optional;
        return p;
    };
    std::vector<Peer> peers;
    peers.push_back(vmgen_peer(2));
    peers.push_back(vmgen_peer(1));
    peers.push_back(qemu_peer("qemu pc", {}, false));
    if (microvm)
        peers.push_back(qemu_peer("qemu microvm", {"-M", "microvm,acpi=on"}, true));
    const size_t qemu_pc = 2;

    auto timeout_ns = static_cast<int64_t>(timeout_s * 1e9);
    auto settle_ns = static_cast<int64_t>(settle_ms * 1e6);
    std::vector<Results> results(peers.size());

    utsname uts{};
    uname(&uts);
    fmt::print("boot_bench: {}\n", guest);
    fmt::print("host: {} CPUs ({}), Linux {}, {} MiB guest, 1 vCPU, {} runs (+1 warm-up) per VMM, "
               "{} memory runs\n",
               sysconf(_SC_NPROCESSORS_ONLN), cpu_model(), uts.release, guest_ram_mib, runs, memory_runs);
    std::fflush(stdout);

    // Warm-up (page cache, first-use costs); an optional peer that cannot boot the guest is skipped.
    for (size_t p = 0; p < peers.size(); ++p) {
        std::string error;
        if (!boot_once(peers[p], timeout_ns, error)) {
            if (peers[p].optional) {
                peers[p].skipped = error;
                fmt::print("{}: skipped: {}\n", peers[p].name, error);
            } else {
                ++results[p].failures;
                results[p].last_error = error;
                fmt::print(stderr, "{}: warm-up failed: {}\n", peers[p].name, error);
            }
        }
    }
    // Boot runs, interleaved so that a drift of the host affects every peer alike.
    for (unsigned i = 0; i < runs; ++i) {
        for (size_t p = 0; p < peers.size(); ++p) {
            if (!peers[p].skipped.empty())
                continue;
            std::string error;
            if (auto s = boot_once(peers[p], timeout_ns, error)) {
                results[p].boots.push_back(*s);
            } else {
                ++results[p].failures;
                results[p].last_error = error;
                fmt::print(stderr, "{}: run {} failed: {}\n", peers[p].name, i + 1, error);
            }
        }
    }
    for (unsigned i = 0; i < memory_runs; ++i) {
        for (size_t p = 0; p < peers.size(); ++p) {
            if (!peers[p].skipped.empty())
                continue;
            std::string error;
            if (auto m = memory_once(peers[p], timeout_ns, settle_ns, error)) {
                results[p].memory.push_back(*m);
            } else {
                ++results[p].failures;
                results[p].last_error = error;
                fmt::print(stderr, "{}: memory run {} failed: {}\n", peers[p].name, i + 1, error);
            }
        }
    }

    struct Row {
        Stat first, off, total, rss, guest_rss, overhead, overhead_anon;
    };
    std::vector<Row> rows(peers.size());
    for (size_t p = 0; p < peers.size(); ++p) {
        const auto& r = results[p];
        rows[p].first = stat_of(r.boots, [](const BootSample& s) { return s.first_ms; });
        rows[p].off = stat_of(r.boots, [](const BootSample& s) { return s.off_ms; });
        rows[p].total = stat_of(r.boots, [](const BootSample& s) { return s.total_ms; });
        rows[p].rss = stat_of(r.memory, [](const MemorySample& s) { return s.total_kib; });
        rows[p].guest_rss = stat_of(r.memory, [](const MemorySample& s) { return s.guest_kib; });
        rows[p].overhead = stat_of(r.memory, [](const MemorySample& s) { return s.total_kib - s.guest_kib; });
        rows[p].overhead_anon =
            stat_of(r.memory, [](const MemorySample& s) { return s.anon_kib - s.guest_anon_kib; });
    }

    fmt::print("\nTimes in ms: median [min, max]\n");
    fmt::print("{:<14} {:>5}  {:<28} {:<28} {:<28}\n", "VMM", "runs", "start -> first instruction",
               "power off -> exit", "total");
    for (size_t p = 0; p < peers.size(); ++p) {
        if (!peers[p].skipped.empty()) {
            fmt::print("{:<14} skipped\n", peers[p].name);
            continue;
        }
        fmt::print("{:<14} {:>5}  {:<28} {:<28} {:<28}\n", peers[p].name, results[p].boots.size(),
                   show_ms(rows[p].first), show_ms(rows[p].off), show_ms(rows[p].total));
    }
    fmt::print("\nMemory in MiB (median of the memory runs), guest idle after 'ready'\n");
    fmt::print("{:<14} {:>10} {:>10} {:>10} {:>16}\n", "VMM", "total Rss", "guest Rss", "overhead",
               "overhead (anon)");
    for (size_t p = 0; p < peers.size(); ++p) {
        if (!peers[p].skipped.empty())
            continue;
        fmt::print("{:<14} {:>10} {:>10} {:>10} {:>16}\n", peers[p].name, show_mib(rows[p].rss),
                   show_mib(rows[p].guest_rss), show_mib(rows[p].overhead), show_mib(rows[p].overhead_anon));
    }

    fmt::print("\nRatios vmgen / QEMU (medians; ratio < 1 means vmgen is faster/smaller)\n");
    fmt::print("{:<28} {:>12} {:>12} {:>8} {:>10}\n", "", "first instr.", "power off", "total", "overhead");
    for (size_t p = 0; p < peers.size(); ++p) {
        if (!peers[p].is_vmgen)
            continue;
        for (size_t q = 0; q < peers.size(); ++q) {
            if (peers[q].is_vmgen || !peers[q].skipped.empty())
                continue;
            fmt::print("{:<28} {:>12} {:>12} {:>8} {:>10}\n", fmt::format("{} / {}", peers[p].name, peers[q].name),
                       ratio(rows[p].first, rows[q].first), ratio(rows[p].off, rows[q].off),
                       ratio(rows[p].total, rows[q].total), ratio(rows[p].overhead, rows[q].overhead));
        }
    }

    fmt::print("\nGoals\n");
    for (size_t p = 0; p < peers.size(); ++p) {
        if (!peers[p].is_vmgen)
            continue;
        const Row& r = rows[p];
        const Row& q = rows[qemu_pc];
        if (r.first.valid && q.first.valid) {
            double limit = q.first.median / 4;
            fmt::print("{}: start -> first instruction {:.2f} ms <= 1/4 of QEMU's {:.2f} ms ({:.2f} ms): {}\n",
                       peers[p].name, r.first.median, q.first.median, limit,
                       r.first.median <= limit ? "met" : "MISSED");
        } else {
            fmt::print("{}: start -> first instruction vs QEMU: not measured\n", peers[p].name);
        }
        if (r.first.valid)
            fmt::print("{}: start -> first instruction {:.2f} ms < 5 ms (goal for a hardware KVM host; judge it "
                       "there): {} here\n",
                       peers[p].name, r.first.median, r.first.median < 5 ? "met" : "not met");
        if (r.overhead.valid)
            fmt::print("{}: memory overhead {:.2f} MiB <= 5 MiB: {}\n", peers[p].name, r.overhead.median / 1024,
                       r.overhead.median <= 5 * 1024 ? "met" : "MISSED");
    }

    bool failed = false;
    for (size_t p = 0; p < peers.size(); ++p) {
        if (results[p].failures) {
            failed = true;
            fmt::print("\n{}: {} failed run(s); last: {}\n", peers[p].name, results[p].failures,
                       results[p].last_error);
        }
        if (!peers[p].skipped.empty())
            fmt::print("\n{}: skipped (could not boot and power off the guest): {}\n", peers[p].name,
                       peers[p].skipped);
    }
    return failed ? 1 : 0;
}
