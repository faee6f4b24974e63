// storage_bench: synthetic SCSI (storvsp) throughput from a guest ring-3 client against the host doing the same
// I/O on the same image file directly (docs/performance.md, "Synthetic SCSI (storvsp)").
//
// Images, made once per invocation in a fresh directory under --dir: a raw image of --size-mib MiB filled with
// pseudo-random bytes, and a dynamic VHDX (32 MiB blocks) with the same contents, written once in order through
// the disk library so that every block is allocated and the payload blocks lie in the file in virtual order; the
// benchmark finds where (the virtual disk at a fixed file offset) and checks it.
//
// Cases: seq read / seq write (1 MiB requests in order, wrapping at the end) and rand read / rand write (4 KiB
// requests at 4 KiB-aligned offsets from splitmix64(seed, i)), each at queue depth 1 and 32, for --seconds each:
//
//   guest   vmgen run --generation 2 --memory 256M --kernel storvsc_bench.elf --com1 stdio --stats
//               --scsi-disk IMAGE --cmdline "op=read pattern=seq bs=1048576 qd=32 seconds=S"
//           (tests/guests/storvsc_bench: storvsc client in ring 3, qd requests in flight, one buffer per slot)
//   host    pread/pwrite on the same file, request i at the same offset as the guest's request i (for the VHDX
//           the file offset of that virtual offset); qd 1: one thread, one request at a time; qd N: N threads
//           each with one request in flight, taking the next request number from a shared counter
//
// Same durability on both sides: the guest's WRITEs have no FUA and the disk's write cache is on, so vmgen does a
// buffered pwrite and no flush; the host does buffered pwrites and no fsync. Page cache: before each case the
// file system is synced and the whole image file read once (both sides then find it cached); before each side
// the file system is synced again (untimed), so no side pays for the other's write-back. Both sides are timed
// from the first request to the last completion. Every round boots a baseline guest (`requests=0`: boot, VMBus,
// storvsc init, disk discovery, teardown) whose VM exits are subtracted from the cases' (vmgen's `--stats`).
// Rounds interleave the cases; within a round the side that goes first alternates.
//
// While the guest runs, the benchmark samples the CPU time of vmgen's threads (/proc/PID/task/TID/schedstat)
// when the guest prints "storage start" and when it prints its result, and splits it by thread name into the vCPU
// thread ("vcpu0"), the controller's channel worker ("vmbus-chN"; the busiest one) and the rest (the controller's
// I/O threads "scsi0-ioN"; the other VMM threads stay idle): CPU time per request of each, against the host
// threads' CPU time per request (CLOCK_THREAD_CPUTIME_ID).
#include "bench/bench_util.h"
#include "support/errno_error.h"
#include "support/result.h"
#include "support/unique_fd.h"
#include "vm/disk/block_device.h"
#include "vm/disk/raw/raw_disk.h"
#include "vm/disk/vhdx/vhdx.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fmt/core.h>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using vmgen::bench::Fields;
using vmgen::bench::median;
using vmgen::bench::now_ns;
using vmgen::bench::num;
using vmgen::bench::parse_line;

using namespace vmgen;
namespace disk = vmgen::vm::disk;

constexpr uint64_t mib = uint64_t { 1 } << 20;

struct Options {
    std::string vmgen = STORAGE_BENCH_VMGEN;
    std::string guest = STORAGE_BENCH_GUEST;
    std::string dir = "/var/tmp";
    uint64_t size_mib = 1024;
    int runs = 3;
    int seconds = 2;
    uint64_t seed = 1;
    unsigned batch = 1;
    std::vector<std::string> formats { "raw", "vhdx" };
    std::vector<std::string> workloads { "seq-read", "seq-write", "rand-read", "rand-write" };
    std::vector<unsigned> qds { 1, 32 };
    int timeout_s = 120;
    bool keep = false;
    bool verbose = false;
    bool host_spin = false; // the host side runs a spinning thread too, as the guest's vCPU spins
    std::string guest_wait = "spin"; // the guest's wait=: spin (ring 3 pause loop) or halt (hlt in ring 0)
};

int64_t thread_cpu_ns()
{
    timespec ts {};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return int64_t { ts.tv_sec } * 1'000'000'000 + ts.tv_nsec;
}

// The request offsets; tests/guests/storvsc_bench has the same function.
uint64_t splitmix64(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// The image contents: 1 MiB chunk `index`, pseudo-random.
void fill_chunk(std::vector<uint8_t>& buf, uint64_t index)
{
    for (size_t i = 0; i < buf.size(); i += 8) {
        uint64_t v = splitmix64(0x5eed ^ index, i / 8);
        std::memcpy(buf.data() + i, &v, 8);
    }
}

struct Workload {
    std::string name; // "seq-read"
    bool write = false;
    bool random = false;
    uint32_t bs = 0;
};

std::optional<Workload> workload(const std::string& name)
{
    if (name == "seq-read")
        return Workload { name, false, false, static_cast<uint32_t>(mib) };
    if (name == "seq-write")
        return Workload { name, true, false, static_cast<uint32_t>(mib) };
    if (name == "rand-read")
        return Workload { name, false, true, 4096 };
    if (name == "rand-write")
        return Workload { name, true, true, 4096 };
    return std::nullopt;
}

// ---- images ----

struct Image {
    std::string format; // "raw", "vhdx"
    std::string path;
    uint64_t data_offset = 0; // file offset of virtual offset 0 (the payload is contiguous and in order)
};

Result<void> sync_file_system(const std::string& dir)
{
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid() || ::syncfs(fd.get()) != 0)
        return errno_failure(fmt::format("syncfs {}", dir));
    return {};
}

Result<void> make_raw(const std::string& path, uint64_t size)
{
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid())
        return errno_failure(fmt::format("creating {}", path));
    std::vector<uint8_t> buf(mib);
    for (uint64_t off = 0; off < size; off += mib) {
        fill_chunk(buf, off / mib);
        TRY(disk::pwrite_full(fd.get(), buf, off));
    }
    if (::fdatasync(fd.get()) != 0)
        return errno_failure(fmt::format("fdatasync {}", path));
    return {};
}

// A dynamic VHDX written once in order through the library; returns the file offset of the payload.
Result<uint64_t> make_vhdx(const std::string& path, uint64_t size)
{
    TRY_CTX(disk::create_vhdx(path, size, disk::DiskType::Dynamic, 0, 512), "creating {}", path);
    {
        auto image = TRY_CTX(disk::open_vhdx(path, false), "opening {}", path);
        std::vector<uint8_t> buf(mib);
        for (uint64_t off = 0; off < size; off += mib) {
            fill_chunk(buf, off / mib);
            TRY(image->write(off, buf));
        }
        TRY(image->flush());
        TRY(image->close());
    }
    // Where the payload is: 1 MiB-aligned (VHDX payload blocks are), found by the first chunk, checked at 16 more.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
        return errno_failure(fmt::format("opening {}", path));
    struct stat st { };
    if (::fstat(fd.get(), &st) != 0)
        return errno_failure(fmt::format("fstat {}", path));
    const auto file_size = static_cast<uint64_t>(st.st_size);
    std::vector<uint8_t> want(mib), got(mib);
    fill_chunk(want, 0);
    std::optional<uint64_t> found;
    for (uint64_t off = 0; off + size <= file_size && !found; off += mib) {
        TRY(disk::pread_full(fd.get(), got, off));
        if (got == want)
            found = off;
    }
    if (!found)
        return fail("{}: the first MiB of the virtual disk is nowhere in the file at a 1 MiB boundary", path);
    for (uint64_t k = 0; k < 16; ++k) {
        uint64_t chunk = (size / mib) * k / 16 + k % 3;
        if (chunk >= size / mib)
            continue;
        fill_chunk(want, chunk);
        TRY(disk::pread_full(fd.get(), got, *found + chunk * mib));
        if (got != want)
            return fail("{}: virtual MiB {} is not at file offset {} + {} MiB: the payload is not in order", path,
                chunk, *found, chunk);
    }
    return *found;
}

Result<void> warm(const std::string& path)
{
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
        return errno_failure(fmt::format("opening {}", path));
    std::vector<uint8_t> buf(4 * mib);
    uint64_t off = 0;
    for (;;) {
        ssize_t n = ::pread(fd.get(), buf.data(), buf.size(), static_cast<off_t>(off));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno_failure(fmt::format("reading {}", path));
        if (n == 0)
            return {};
        off += static_cast<uint64_t>(n);
    }
}

// ---- the host side ----

struct Measured {
    uint64_t requests = 0;
    uint64_t bytes = 0;
    double seconds = 0;
    double cpu_s = 0; // host side: the threads' CPU time
};

Result<Measured> host_run(
    const Image& image, uint64_t disk_bytes, const Workload& w, unsigned qd, int seconds, uint64_t seed, bool spin)
{
    UniqueFd fd(::open(image.path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd.valid())
        return errno_failure(fmt::format("opening {}", image.path));
    const uint64_t slots = disk_bytes / w.bs;
    std::atomic<uint64_t> next { 0 }, done { 0 };
    std::atomic<int64_t> cpu { 0 };
    std::atomic<bool> stop { false };
    std::mutex error_mutex;
    std::optional<Error> error;
    auto worker = [&] {
        int64_t cpu0 = thread_cpu_ns();
        std::vector<uint8_t> buf(w.bs);
        for (size_t i = 0; i < buf.size(); i += 8) {
            uint64_t v = 0x5a5a000000000000ULL ^ i;
            std::memcpy(buf.data() + i, &v, 8);
        }
        while (!stop.load(std::memory_order_relaxed)) {
            uint64_t i = next.fetch_add(1, std::memory_order_relaxed);
            uint64_t pos = w.random ? splitmix64(seed, i) % slots : i % slots;
            uint64_t off = image.data_offset + pos * w.bs;
            auto r = w.write ? disk::pwrite_full(fd.get(), buf, off) : disk::pread_full(fd.get(), buf, off);
            if (!r) {
                std::lock_guard lock(error_mutex);
                if (!error)
                    error = std::move(r).error();
                stop = true;
                break;
            }
            done.fetch_add(1, std::memory_order_relaxed);
        }
        cpu.fetch_add(thread_cpu_ns() - cpu0);
    };
    int64_t start = now_ns();
    std::vector<std::thread> threads;
    std::thread spinner;
    if (spin) {
        // What the guest's vCPU does while it waits for completions: a pause loop on one CPU.
        spinner = std::thread([&] {
            while (!stop.load(std::memory_order_relaxed))
                __builtin_ia32_pause();
        });
    }
    for (unsigned t = 0; t < qd; ++t)
        threads.emplace_back(worker);
    int64_t end_at = start + int64_t { seconds } * 1'000'000'000;
    while (!stop.load() && now_ns() < end_at)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    stop = true;
    for (auto& t : threads)
        t.join();
    int64_t end = now_ns();
    if (spinner.joinable())
        spinner.join();
    if (error)
        return fail("host {} on {}: {}", w.name, image.path, error->message());
    Measured m;
    m.requests = done.load();
    m.bytes = m.requests * w.bs;
    m.seconds = static_cast<double>(end - start) * 1e-9;
    m.cpu_s = static_cast<double>(cpu.load()) * 1e-9;
    return m;
}

// ---- the guest side ----


struct ThreadState {
    uint64_t cpu_ns = 0;
    std::string comm;
};
using Snapshot = std::map<long, ThreadState>;

std::string read_small(const std::string& path)
{
    std::ifstream in(path);
    std::string s;
    std::getline(in, s);
    return s;
}

Snapshot snapshot(pid_t pid)
{
    Snapshot out;
    std::string dir = fmt::format("/proc/{}/task", pid);
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr)
        return out;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.')
            continue;
        long tid = std::strtol(e->d_name, nullptr, 10);
        std::string base = dir + "/" + e->d_name;
        ThreadState t;
        t.cpu_ns = std::strtoull(read_small(base + "/schedstat").c_str(), nullptr, 10);
        t.comm = read_small(base + "/comm");
        out[tid] = t;
    }
    ::closedir(d);
    return out;
}

struct GuestRun {
    Fields guest;
    Fields stats;
    // CPU time during the timed loop, seconds.
    double vcpu_s = 0, worker_s = 0, other_s = 0;
    bool profiled = false;
};

// Runs argv with stdout and stderr into one pipe, sampling the child's threads; nullopt (error set) on failure.
std::optional<std::string> run_guest(const std::vector<std::string>& argv, int timeout_s, std::string& error,
    Snapshot& at_start, Snapshot& at_end)
{
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        error = fmt::format("pipe: {}", std::strerror(errno));
        return std::nullopt;
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        error = fmt::format("fork: {}", std::strerror(errno));
        return std::nullopt;
    }
    if (pid == 0) {
        int null = ::open("/dev/null", O_RDONLY);
        ::dup2(null, 0);
        ::dup2(fds[1], 1);
        ::dup2(fds[1], 2);
        std::vector<char*> args;
        for (const auto& a : argv)
            args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    std::string out;
    int64_t deadline = now_ns() + int64_t { timeout_s } * 1'000'000'000;
    bool timed_out = false, started = false, ended = false;
    size_t scanned = 0; // output before this offset has been looked at for the markers
    for (;;) {
        int64_t left_ms = (deadline - now_ns()) / 1'000'000;
        if (left_ms <= 0) {
            timed_out = true;
            ::kill(pid, SIGKILL);
            break;
        }
        pollfd p { fds[0], POLLIN, 0 };
        int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left_ms, 20)));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        char buf[4096];
        ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        out.append(buf, static_cast<size_t>(n));
        // Complete lines only.
        for (;;) {
            size_t nl = out.find('\n', scanned);
            if (nl == std::string::npos)
                break;
            std::string_view line(out.data() + scanned, nl - scanned);
            // The guest's COM1 bytes and vmgen's own log lines share the pipe and can meet inside one line:
            // look for the markers anywhere in it.
            if (!started && line.find("vmgen-guest: storage start") != std::string_view::npos) {
                at_start = snapshot(pid);
                started = true;
            } else if (started && !ended && line.find("vmgen-guest: storage op=") != std::string_view::npos) {
                at_end = snapshot(pid);
                ended = true;
            }
            scanned = nl + 1;
        }
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (timed_out) {
        error = fmt::format("timed out after {} s; output:\n{}", timeout_s, out);
        return std::nullopt;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        error = fmt::format("exit status {:#x}; output:\n{}", status, out);
        return std::nullopt;
    }
    if (started && !ended)
        at_end.clear();
    return out;
}

std::optional<GuestRun> guest_run(
    const Options& o, const Image& image, const std::string& cmdline, std::string_view prefix, std::string& error)
{
    std::vector<std::string> argv { o.vmgen, "run", "--generation", "2", "--memory", "256M", "--kernel", o.guest,
        "--com1", "stdio", "--stats", "--scsi-disk", image.path, "--cmdline", cmdline };
    Snapshot a, b;
    auto out = run_guest(argv, o.timeout_s, error, a, b);
    if (!out)
        return std::nullopt;
    if (out->find("vmgen-guest: result PASS") == std::string::npos) {
        error = fmt::format("the guest did not pass; output:\n{}", *out);
        return std::nullopt;
    }
    auto stats = parse_line(*out, "vmgen: stats: ");
    auto guest = parse_line(*out, prefix);
    if (!stats || !guest) {
        error = fmt::format("no {} line; output:\n{}", stats ? std::string(prefix) : "stats", *out);
        return std::nullopt;
    }
    GuestRun r;
    r.guest = *guest;
    r.stats = *stats;
    if (!a.empty() && !b.empty()) {
        // vmgen names its threads (support/thread_name.h).
        auto delta = [&](long tid) {
            auto it = a.find(tid);
            uint64_t before = it == a.end() ? 0 : it->second.cpu_ns;
            return b[tid].cpu_ns - std::min(before, b[tid].cpu_ns);
        };
        long vcpu = -1, worker = -1;
        for (const auto& [tid, t] : b) {
            if (t.comm == "vcpu0")
                vcpu = tid;
            else if (t.comm.starts_with("vmbus-ch") && (worker < 0 || delta(tid) > delta(worker)))
                worker = tid; // the storage channel's worker is the busy one
        }
        for (const auto& [tid, t] : b) {
            double d = static_cast<double>(delta(tid)) * 1e-9;
            if (tid == vcpu)
                r.vcpu_s += d;
            else if (tid == worker)
                r.worker_s += d;
            else
                r.other_s += d;
        }
        r.profiled = vcpu >= 0 && worker >= 0;
    }
    if (!r.profiled && prefix == "vmgen-guest: storage op=" && std::getenv("STORAGE_BENCH_DEBUG"))
        fmt::print(stderr, "storage_bench: no thread profile: {} threads at start, {} at the end\n{}\n", a.size(),
            b.size(), *out);
    return r;
}

// ---- statistics ----

struct Sample {
    GuestRun guest;
    Measured host;
    double base_exits = 0, base_pio = 0, base_hcalls = 0;
};

struct Case {
    const Image* image = nullptr;
    Workload w;
    unsigned qd = 1;
    std::vector<Sample> samples;
};

void usage()
{
    std::puts(
        "usage: storage_bench [--runs N] [--seconds S] [--size-mib N] [--dir DIR] [--formats raw,vhdx]\n"
        "                     [--workloads seq-read,seq-write,rand-read,rand-write] [--qd 1,32] [--batch N]\n"
        "                     [--seed N] [--keep] [--verbose] [--host-spin] [--vmgen PATH] [--guest PATH]\n"
        "                     [--timeout S]\n"
        "                     [--guest-wait spin|halt]\n"
        "--host-spin: the host side also runs a thread spinning in a pause loop, as the guest's vCPU does.\n"
        "--guest-wait halt: the guest halts (ring 0) while it waits for completions instead of spinning in ring 3.\n"
        "Synthetic SCSI from a guest ring-3 client (vmgen run --scsi-disk) against pread/pwrite on the same file;\n"
        "see docs/performance.md, \"Synthetic SCSI (storvsp)\".");
}

std::vector<std::string> split(const std::string& s)
{
    std::vector<std::string> out;
    std::istringstream in(s);
    std::string item;
    while (std::getline(in, item, ','))
        if (!item.empty())
            out.push_back(item);
    return out;
}

} // namespace

int main(int argc, char** argv)
{
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                fmt::print(stderr, "storage_bench: {} needs a value\n", a);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--runs")
            o.runs = std::max(1, std::atoi(value().c_str()));
        else if (a == "--seconds")
            o.seconds = std::clamp(std::atoi(value().c_str()), 1, 600);
        else if (a == "--size-mib")
            o.size_mib = std::max<uint64_t>(64, std::strtoull(value().c_str(), nullptr, 10));
        else if (a == "--dir")
            o.dir = value();
        else if (a == "--formats")
            o.formats = split(value());
        else if (a == "--workloads")
            o.workloads = split(value());
        else if (a == "--qd") {
            o.qds.clear();
            for (const auto& q : split(value()))
                o.qds.push_back(static_cast<unsigned>(std::clamp(std::atoi(q.c_str()), 1, 64)));
        } else if (a == "--batch")
            o.batch = static_cast<unsigned>(std::clamp(std::atoi(value().c_str()), 1, 64));
        else if (a == "--seed")
            o.seed = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--keep")
            o.keep = true;
        else if (a == "--verbose")
            o.verbose = true;
        else if (a == "--host-spin")
            o.host_spin = true;
        else if (a == "--guest-wait") {
            o.guest_wait = value();
            if (o.guest_wait != "spin" && o.guest_wait != "halt") {
                fmt::print(stderr, "storage_bench: --guest-wait spin|halt\n");
                return 2;
            }
        } else if (a == "--vmgen")
            o.vmgen = value();
        else if (a == "--guest")
            o.guest = value();
        else if (a == "--timeout")
            o.timeout_s = std::max(1, std::atoi(value().c_str()));
        else if (a == "--help" || a == "-h") {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    std::vector<Workload> workloads;
    for (const auto& name : o.workloads) {
        auto w = workload(name);
        if (!w) {
            fmt::print(stderr, "storage_bench: unknown workload {}\n", name);
            return 2;
        }
        workloads.push_back(*w);
    }
    for (const auto& f : o.formats) {
        if (f != "raw" && f != "vhdx") {
            fmt::print(stderr, "storage_bench: unknown format {} (raw, vhdx)\n", f);
            return 2;
        }
    }

    const uint64_t size = o.size_mib * mib;
    struct statvfs vfs { };
    if (::statvfs(o.dir.c_str(), &vfs) != 0) {
        fmt::print(stderr, "storage_bench: {}: {}\n", o.dir, std::strerror(errno));
        return 1;
    }
    uint64_t free_bytes = uint64_t { vfs.f_bavail } * vfs.f_frsize;
    uint64_t need = size * o.formats.size() + 256 * mib;
    if (free_bytes < need) {
        fmt::print(stderr,
            "storage_bench: {} has {} MiB free, {} MiB needed: use a smaller --size-mib or another --dir\n", o.dir,
            free_bytes / mib, need / mib);
        return 1;
    }
    std::string tmpl = o.dir + "/vmgen-storage-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
        fmt::print(stderr, "storage_bench: mkdtemp in {}: {}\n", o.dir, std::strerror(errno));
        return 1;
    }
    const std::string dir = tmpl;
    auto cleanup = [&] {
        if (!o.keep) {
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
        }
    };

    std::vector<Image> images;
    for (const auto& f : o.formats) {
        Image image;
        image.format = f;
        int64_t t0 = now_ns();
        if (f == "raw") {
            image.path = dir + "/disk.img";
            if (auto r = make_raw(image.path, size); !r) {
                fmt::print(stderr, "storage_bench: {}\n", r.error().message());
                cleanup();
                return 1;
            }
        } else {
            image.path = dir + "/disk.vhdx";
            auto r = make_vhdx(image.path, size);
            if (!r) {
                fmt::print(stderr, "storage_bench: {}\n", r.error().message());
                cleanup();
                return 1;
            }
            image.data_offset = *r;
        }
        fmt::print(stderr, "storage_bench: {} image {} ({} MiB, payload at file offset {}) made in {:.1f} s\n", f,
            image.path, o.size_mib, image.data_offset, static_cast<double>(now_ns() - t0) * 1e-9);
        images.push_back(image);
    }

    std::vector<Case> cases;
    for (const auto& image : images)
        for (const auto& w : workloads)
            for (unsigned qd : o.qds)
                cases.push_back(Case { &image, w, qd, {} });

    int64_t bench_start = now_ns();
    for (int run = 0; run < o.runs; ++run) {
        std::map<std::string, GuestRun> baselines;
        for (const auto& image : images) {
            std::string error;
            auto base = guest_run(o, image, "requests=0", "vmgen-guest: storage baseline", error);
            if (!base) {
                fmt::print(stderr, "storage_bench: baseline on {}: {}\n", image.path, error);
                cleanup();
                return 1;
            }
            baselines[image.format] = *base;
        }
        for (auto& c : cases) {
            const Image& image = *c.image;
            auto check = [&](const Result<void>& r) {
                if (!r) {
                    fmt::print(stderr, "storage_bench: {}\n", r.error().message());
                    cleanup();
                    std::exit(1);
                }
            };
            check(sync_file_system(dir));
            check(warm(image.path));
            Sample s;
            const GuestRun& base = baselines[image.format];
            s.base_exits = num(base.stats, "exits");
            s.base_pio = num(base.stats, "port_io");
            s.base_hcalls = num(base.stats, "hypercall");
            std::string cmdline = fmt::format("op={} pattern={} bs={} qd={} seconds={} seed={} batch={} wait={}",
                c.w.write ? "write" : "read", c.w.random ? "rand" : "seq", c.w.bs, c.qd, o.seconds, o.seed, o.batch,
                o.guest_wait);
            bool guest_first = run % 2 == 0;
            for (int side = 0; side < 2; ++side) {
                check(sync_file_system(dir));
                if ((side == 0) == guest_first) {
                    std::string error;
                    auto g = guest_run(o, image, cmdline, "vmgen-guest: storage op=", error);
                    if (!g) {
                        fmt::print(stderr, "storage_bench: {} (--cmdline \"{}\"): {}\n", image.path, cmdline, error);
                        cleanup();
                        return 1;
                    }
                    s.guest = *g;
                } else {
                    auto h = host_run(image, size, c.w, c.qd, o.seconds, o.seed, o.host_spin);
                    if (!h) {
                        fmt::print(stderr, "storage_bench: {}\n", h.error().message());
                        cleanup();
                        return 1;
                    }
                    s.host = *h;
                }
            }
            if (o.verbose) {
                double gm = num(s.guest.guest, "mbps");
                double hm = static_cast<double>(s.host.bytes) / s.host.seconds / 1e6;
                fmt::print(stderr, "storage_bench: run {} {} {} qd={}: guest {:.1f} MB/s, host {:.1f} MB/s ({:.3f})\n",
                    run + 1, image.format, c.w.name, c.qd, gm, hm, gm / hm);
            }
            c.samples.push_back(std::move(s));
        }
        fmt::print(stderr, "storage_bench: round {}/{} done ({:.0f} s)\n", run + 1, o.runs,
            static_cast<double>(now_ns() - bench_start) * 1e-9);
    }

    utsname u {};
    ::uname(&u);
    fmt::print("vmgen synthetic SCSI benchmark: {} runs per case (medians), {} s per side, {} MiB images in {}; "
               "host {} {}, {} CPUs\n",
        o.runs, o.seconds, o.size_mib, o.dir, u.sysname, u.release, ::sysconf(_SC_NPROCESSORS_ONLN));
    fmt::print("guest: storvsc_bench in ring 3 (storvsc rings 128 KiB, one controller, LUN 0), batch={}, wait={}; "
               "host: pread/pwrite on the same file, qd threads with one request each{}\n",
        o.batch, o.guest_wait, o.host_spin ? ", plus one thread spinning (--host-spin)" : "");
    fmt::print("writes: no FUA, write cache on (vmgen: buffered pwrite, no flush) / host: buffered pwrite, no fsync\n");
    fmt::print("MB/s = 10^6 bytes/s; guest/host = median of per-run ratios [min, max]; exits/req = (vmgen --stats "
               "exits - baseline run's) / requests\n\n");

    auto med = [](const Case& c, auto f) {
        std::vector<double> v;
        for (const auto& s : c.samples)
            v.push_back(f(s));
        return median(v);
    };
    auto minmax = [](const Case& c, auto f) {
        double lo = 1e300, hi = -1e300;
        for (const auto& s : c.samples) {
            double x = f(s);
            lo = std::min(lo, x);
            hi = std::max(hi, x);
        }
        return std::pair { lo, hi };
    };
    auto guest_mbps = [](const Sample& s) { return num(s.guest.guest, "mbps"); };
    auto host_mbps = [](const Sample& s) { return static_cast<double>(s.host.bytes) / s.host.seconds / 1e6; };
    auto ratio = [&](const Sample& s) { return guest_mbps(s) / host_mbps(s); };
    auto requests = [](const Sample& s) { return std::max(1.0, num(s.guest.guest, "requests")); };

    fmt::print("{:<6} {:<10} {:>3} {:>10} {:>9} {:>10} {:>9} {:>10} {:>13}\n", "format", "workload", "qd", "guest MB/s",
        "guest IOPS", "host MB/s", "host IOPS", "guest/host", "[min, max]");
    for (const auto& c : cases) {
        auto [lo, hi] = minmax(c, ratio);
        fmt::print("{:<6} {:<10} {:>3} {:>10.1f} {:>9.0f} {:>10.1f} {:>9.0f} {:>10.3f}  [{:.2f}, {:.2f}]\n",
            c.image->format, c.w.name, c.qd, med(c, guest_mbps),
            med(c, [](const Sample& s) { return num(s.guest.guest, "iops"); }), med(c, host_mbps),
            med(c, [](const Sample& s) { return static_cast<double>(s.host.requests) / s.host.seconds; }),
            med(c, ratio), lo, hi);
    }

    fmt::print("\nper request (guest side): VM exits (all; without port I/O; hypercalls), guest signals "
               "(HvSignalEvent), host interrupts (host -> guest signals), guest halts (wait=halt), requests per "
               "published batch, mean latency (submission to completion seen)\n");
    fmt::print("{:<6} {:<10} {:>3} {:>9} {:>10} {:>11} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9}\n", "format", "workload",
        "qd", "requests", "exits/req", "non-PIO/req", "hcalls/req", "signals/req", "irqs/req", "halts/req", "req/batch",
        "lat us");
    for (const auto& c : cases) {
        fmt::print("{:<6} {:<10} {:>3} {:>9.0f} {:>10.4f} {:>11.4f} {:>10.4f} {:>11.4f} {:>9.4f} {:>9.4f} {:>9.2f} "
                   "{:>9.1f}\n",
            c.image->format, c.w.name, c.qd, med(c, requests),
            med(c, [&](const Sample& s) { return (num(s.guest.stats, "exits") - s.base_exits) / requests(s); }),
            med(c,
                [&](const Sample& s) {
                    return (num(s.guest.stats, "exits") - num(s.guest.stats, "port_io") - (s.base_exits - s.base_pio))
                        / requests(s);
                }),
            med(c, [&](const Sample& s) { return (num(s.guest.stats, "hypercall") - s.base_hcalls) / requests(s); }),
            med(c, [&](const Sample& s) { return num(s.guest.guest, "signals") / requests(s); }),
            med(c, [&](const Sample& s) { return num(s.guest.guest, "interrupts") / requests(s); }),
            med(c, [&](const Sample& s) { return num(s.guest.guest, "halts") / requests(s); }),
            med(c, [&](const Sample& s) { return requests(s) / std::max(1.0, num(s.guest.guest, "publishes")); }),
            med(c, [](const Sample& s) { return num(s.guest.guest, "lat_us"); }));
    }

    fmt::print("\nCPU time per request in us during the timed loop: vmgen's vCPU thread (the guest's ring-3 loop, its "
               "exits, and its spinning or halting between completions), the channel's worker thread (reads the ring, "
               "checks each SRB, hands bursts on, executes a lone command that cannot block itself and completes it, "
               "polls for the next), the other vmgen threads (the controller's I/O threads: execute, "
               "pread/pwrite, send the completion), "
               "against the host side's threads; wall time per request on each side\n");
    fmt::print("{:<6} {:<10} {:>3} {:>9} {:>9} {:>9} {:>11} {:>9} {:>11} {:>10}\n", "format", "workload", "qd", "vCPU",
        "worker", "I/O thr", "worker+I/O", "host", "guest wall", "host wall");
    for (const auto& c : cases) {
        // Medians over the runs whose threads could be told apart (all of them, normally).
        Case p = c;
        std::erase_if(p.samples, [](const Sample& s) { return !s.guest.profiled; });
        auto per = [&](auto f) { return med(p, [&](const Sample& s) { return f(s) * 1e6 / requests(s); }); };
        if (p.samples.empty()) {
            fmt::print("{:<6} {:<10} {:>3}  (no thread profile)\n", c.image->format, c.w.name, c.qd);
            continue;
        }
        std::string note = p.samples.size() == c.samples.size()
            ? std::string()
            : fmt::format("  ({} of {} runs profiled)", p.samples.size(), c.samples.size());
        fmt::print("{:<6} {:<10} {:>3} {:>9.2f} {:>9.2f} {:>9.2f} {:>11.2f} {:>9.2f} {:>11.2f} {:>10.2f}{}\n",
            c.image->format, c.w.name, c.qd, per([](const Sample& s) { return s.guest.vcpu_s; }),
            per([](const Sample& s) { return s.guest.worker_s; }), per([](const Sample& s) { return s.guest.other_s; }),
            per([](const Sample& s) { return s.guest.worker_s + s.guest.other_s; }),
            med(p,
                [](const Sample& s) {
                    return s.host.cpu_s * 1e6 / std::max<double>(1.0, static_cast<double>(s.host.requests));
                }),
            med(p, [](const Sample& s) { return num(s.guest.guest, "ns_per_request") / 1000; }),
            med(p,
                [](const Sample& s) {
                    return s.host.seconds * 1e6 / std::max<double>(1.0, static_cast<double>(s.host.requests));
                }),
            note);
    }
    fmt::print("\ntotal benchmark time {:.0f} s\n", static_cast<double>(now_ns() - bench_start) * 1e-9);
    cleanup();
    return 0;
}
