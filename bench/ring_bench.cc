// ring_bench: VMBus ring throughput between a guest ring-3 loop and vmgen's diagnostic echo device
// (docs/performance.md, "VMBus ring throughput"). Boots tests/guests/vmbus_ring_bench under
//   vmgen run --generation 2 --memory 256M --kernel vmbus_ring_bench.elf --com1 stdio --vmbus-echo --stats
//       --cmdline "<one case>"
// one case per run, so that vmgen's exit counters (`vmgen: stats: ... exits=N ... hypercall=N`, whole run)
// belong to that case; a run with `packets=0` (boot, VMBus setup and teardown only) is the baseline that is
// subtracted. Reports, medians over --runs runs: packets/s, ns per packet, VM exits per packet (all, and
// hypercall exits), guest signals (HvSignalEvent) per packet; and the cost of the operations a packet may
// need, measured by the same guest in ring 3: a port I/O exit (`outb 0x80`), a null ring-3 -> ring-0 gate
// call, a gate call with a hypercall exit that wakes nothing, and a gate call signalling the channel.
#include "bench/bench_util.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fmt/core.h>
#include <map>
#include <optional>
#include <poll.h>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

using vmgen::bench::Fields;
using vmgen::bench::median;
using vmgen::bench::now_ns;
using vmgen::bench::num;
using vmgen::bench::parse_line;


struct Options {
    std::string vmgen = RING_BENCH_VMGEN;
    std::string guest = RING_BENCH_GUEST;
    int runs = 3;
    bool pipelined = false;
    bool calibrate = true;
    std::vector<uint32_t> sizes {64, 4096};
    std::optional<uint64_t> packets;
    int timeout_s = 180;
};

// Runs argv with stdout and stderr into one pipe; returns the output, or nullopt (error set) on failure.
std::optional<std::string> run_capture(const std::vector<std::string>& argv, int timeout_s, std::string& error)
{
    int fds[2];
    if (pipe(fds) != 0) {
        error = fmt::format("pipe: {}", std::strerror(errno));
        return std::nullopt;
    }
    pid_t pid = fork();
    if (pid < 0) {
        error = fmt::format("fork: {}", std::strerror(errno));
        return std::nullopt;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        std::vector<char*> args;
        for (const auto& a : argv)
            args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execv(args[0], args.data());
        _exit(127);
    }
    close(fds[1]);
    std::string out;
    int64_t deadline = now_ns() + int64_t {timeout_s} * 1'000'000'000;
    bool timed_out = false;
    for (;;) {
        int64_t left_ms = (deadline - now_ns()) / 1'000'000;
        if (left_ms <= 0) {
            timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        pollfd p {fds[0], POLLIN, 0};
        int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(left_ms, 1000)));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        char buf[4096];
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        out.append(buf, static_cast<size_t>(n));
    }
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (timed_out) {
        error = fmt::format("timed out after {} s; output:\n{}", timeout_s, out);
        return std::nullopt;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        error = fmt::format("exit status {:#x}; output:\n{}", status, out);
        return std::nullopt;
    }
    return out;
}

struct Run {
    Fields guest; // the case's line
    Fields stats; // vmgen's stats line
};

std::optional<Run> boot(const Options& o, const std::string& cmdline, std::string_view guest_prefix, std::string& error)
{
    std::vector<std::string> argv {o.vmgen, "run", "--generation", "2", "--memory", "256M", "--kernel", o.guest,
                                   "--com1", "stdio", "--vmbus-echo", "--stats", "--cmdline", cmdline};
    auto out = run_capture(argv, o.timeout_s, error);
    if (!out)
        return std::nullopt;
    if (out->find("vmgen-guest: result PASS") == std::string::npos) {
        error = fmt::format("the guest did not pass; output:\n{}", *out);
        return std::nullopt;
    }
    Run r;
    auto stats = parse_line(*out, "vmgen: stats: ");
    auto guest = parse_line(*out, guest_prefix);
    if (!stats || !guest) {
        error = fmt::format("no {} line; output:\n{}", stats ? std::string(guest_prefix) : "stats", *out);
        return std::nullopt;
    }
    r.stats = *stats;
    r.guest = *guest;
    return r;
}

struct Case {
    std::string label; // column text
    std::string cmdline;
    std::string prefix; // the guest line to parse
    std::vector<Run> runs;
};

void usage()
{
    std::puts("usage: ring_bench [--runs N] [--pipelined] [--no-calibrate] [--sizes 64,4096] [--packets N]\n"
              "                  [--vmgen PATH] [--guest PATH] [--timeout S]\n"
              "Boots the vmbus_ring_bench guest under vmgen once per case (and run), see docs/performance.md.");
}

} // namespace

int main(int argc, char** argv)
{
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                fmt::print(stderr, "ring_bench: {} needs a value\n", a);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--runs")
            o.runs = std::max(1, std::atoi(value().c_str()));
        else if (a == "--pipelined")
            o.pipelined = true;
        else if (a == "--no-calibrate")
            o.calibrate = false;
        else if (a == "--packets")
            o.packets = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--vmgen")
            o.vmgen = value();
        else if (a == "--guest")
            o.guest = value();
        else if (a == "--timeout")
            o.timeout_s = std::max(1, std::atoi(value().c_str()));
        else if (a == "--sizes") {
            o.sizes.clear();
            std::istringstream in(value());
            std::string s;
            while (std::getline(in, s, ','))
                o.sizes.push_back(static_cast<uint32_t>(std::strtoul(s.c_str(), nullptr, 10)));
        } else if (a == "--help" || a == "-h") {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }

    std::vector<Case> cases;
    cases.push_back({"baseline", "packets=0", "vmgen-guest: ring baseline", {}});
    std::vector<std::string> modes {"unbatched", "batched"};
    if (o.pipelined)
        modes.push_back("pipelined");
    for (uint32_t size : o.sizes)
        for (const auto& mode : modes) {
            std::string cmd = fmt::format("size={} mode={}", size, mode);
            if (o.packets)
                cmd += fmt::format(" packets={}", *o.packets);
            cases.push_back({fmt::format("{} {}", size, mode), cmd, "vmgen-guest: ring size=", {}});
        }
    struct Calib {
        const char* kind;
        uint64_t count;
        const char* what;
    };
    const Calib calibs[] = {
        {"portio", 20000, "port I/O exit (ring-3 outb 0x80, unclaimed port)"},
        {"gate", 20000, "null gate call (ring 3 -> ring 0 -> ring 3, no VMM exit)"},
        {"hypercall", 20000, "gate + HvSignalEvent to an unknown connection id (1 hypercall exit)"},
        {"signal", 20000, "gate + HvSignalEvent on the idle echo channel (+ host worker wake-up)"},
    };
    if (o.calibrate)
        for (const auto& c : calibs)
            cases.push_back({fmt::format("calibrate {}", c.kind), fmt::format("calibrate={} count={}", c.kind, c.count),
                             "vmgen-guest: calibrate kind=", {}});

    // Runs interleaved: round r boots every case once.
    for (int r = 0; r < o.runs; ++r) {
        for (auto& c : cases) {
            std::string error;
            auto run = boot(o, c.cmdline, c.prefix, error);
            if (!run) {
                fmt::print(stderr, "ring_bench: {} (--cmdline \"{}\"): {}\n", c.label, c.cmdline, error);
                return 1;
            }
            c.runs.push_back(std::move(*run));
        }
        fmt::print(stderr, "ring_bench: round {}/{} done\n", r + 1, o.runs);
    }

    auto med = [](const Case& c, bool stats, const std::string& key) {
        std::vector<double> v;
        for (const auto& r : c.runs)
            v.push_back(num(stats ? r.stats : r.guest, key));
        return median(v);
    };
    const Case& base = cases.front();
    double base_exits = med(base, true, "exits");
    double base_hyper = med(base, true, "hypercall");
    double base_pio = med(base, true, "port_io");

    utsname u {};
    uname(&u);
    fmt::print("vmgen VMBus ring benchmark: {} runs per case (medians), host {} {}, {} CPUs\n", o.runs, u.sysname,
               u.release, sysconf(_SC_NPROCESSORS_ONLN));
    fmt::print("baseline run (packets=0: boot, VMBus setup and teardown): {:.0f} exits ({:.0f} port I/O, {:.0f} "
               "hypercall), subtracted below; exits/pkt includes the COM1 bytes of the case's result line (port I/O), "
               "non-PIO/pkt does not\n\n",
               base_exits, base_pio, base_hyper);
    fmt::print("{:>6} {:<10} {:>8} {:>7} {:>12} {:>10} {:>10} {:>13} {:>11} {:>11}\n", "size", "mode", "packets",
               "window", "packets/s", "ns/packet", "exits/pkt", "non-PIO/pkt", "hcalls/pkt", "signals/pkt");
    for (const auto& c : cases) {
        if (c.prefix != "vmgen-guest: ring size=")
            continue;
        double packets = med(c, false, "packets");
        double pps = med(c, false, "pps");
        double nspp = med(c, false, "ns_per_packet");
        double exits = (med(c, true, "exits") - base_exits) / packets;
        double hcalls = (med(c, true, "hypercall") - base_hyper) / packets;
        double non_pio = (med(c, true, "exits") - med(c, true, "port_io") - (base_exits - base_pio)) / packets;
        double signals = med(c, false, "signals") / packets;
        const Fields& g = c.runs.front().guest;
        fmt::print("{:>6} {:<10} {:>8.0f} {:>7} {:>12.0f} {:>10.0f} {:>10.4f} {:>13.4f} {:>11.4f} {:>11.4f}\n",
                   g.count("size") ? g.at("size") : "?", g.count("mode") ? g.at("mode") : "?", packets,
                   g.count("window") ? g.at("window") : "?", pps, nspp, exits, non_pio, hcalls, signals);
    }
    if (o.calibrate) {
        fmt::print("\ncost of one operation, measured by the guest in ring 3 (TSC, Hyper-V frequency MSR):\n");
        fmt::print("{:<10} {:>8} {:>10} {:>9} {:>11}  {}\n", "kind", "count", "ns/op", "exits/op", "hcalls/op",
                   "what");
        for (const auto& cal : calibs) {
            for (const auto& c : cases) {
                if (c.label != fmt::format("calibrate {}", cal.kind))
                    continue;
                double count = med(c, false, "count");
                fmt::print("{:<10} {:>8.0f} {:>10.0f} {:>9.3f} {:>11.3f}  {}\n", cal.kind, count,
                           med(c, false, "ns_per_op"), (med(c, true, "exits") - base_exits) / count,
                           (med(c, true, "hypercall") - base_hyper) / count, cal.what);
            }
        }
    }
    return 0;
}
