// disk_bench: throughput of the disk image libraries (vm::disk::BlockDevice) against the host doing the same
// I/O on a raw file with pread/pwrite, measured in the same run (docs/performance.md, "Virtual disks").
//
// For every format (raw, dynamic VHDX with 32 MiB and 1 MiB blocks, fixed VHDX, dynamic and fixed VHD) and every
// run, a fresh image of --size bytes and a fresh sparse host file of the same size are created side by side, then
// each workload runs once through the library and once on the host file. The order alternates between runs, so
// keep --runs even: on a loaded VM, of two identical files the one written first can read 30 % slower (memory
// placement, not code), which would otherwise favour one side:
//
//   seq write new    1 MiB writes covering the disk in order, into the fresh image (so dynamic formats allocate
//                    every block), then flush()/fdatasync(); the time includes the flush
//   seq read         1 MiB reads covering the disk in order
//   rand read        --read-ops reads of 4 KiB at 4 KiB-aligned offsets drawn from --seed (queue depth 1)
//   seq rewrite      the first workload again over the now allocated blocks (other data), flush included
//   rand rewrite     --write-ops writes of 4 KiB at other seeded offsets, flush included
//   rand write new   --write-ops writes of 4 KiB into a second fresh image/host file pair, flush included
//
// Both sides issue the same offsets, sizes and bytes. Page cache: with --cache warm (the default) both files are
// read in full before the read workloads (that pass also compares every byte the library returns with the host
// file); with --cache cold both files are flushed and dropped from the cache (POSIX_FADV_DONTNEED) instead, after
// the same comparison. The library cannot do O_DIRECT, so neither side does. The figures are medians over --runs;
// the ratio column is the median of the per-run ratios library/host of throughput (> 1: the library is faster).
#include "support/errno_error.h"
#include "support/result.h"
#include "support/unique_fd.h"
#include "vm/disk/block_device.h"
#include "vm/disk/raw/raw_disk.h"
#include "vm/disk/vhd/vhd_disk.h"
#include "vm/disk/vhdx/vhdx.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fmt/core.h>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace vmgen;
namespace disk = vmgen::vm::disk;

constexpr uint64_t mib = uint64_t { 1 } << 20;
constexpr size_t seq_chunk = mib;
constexpr size_t rand_chunk = 4096;
constexpr size_t pool_size = 16 * mib; // random bytes the writes take their data from

struct Options {
    uint64_t size = 1024 * mib;
    uint64_t read_ops = 200000;
    uint64_t write_ops = 20000;
    int runs = 6;
    uint64_t seed = 1;
    std::string dir = "/var/tmp";
    bool cold = false;
    bool verbose = false;
    std::vector<std::string> formats;
};

struct FormatSpec {
    const char* name;
    const char* extension;
    std::function<Result<void>(const std::string&, uint64_t)> create;
    std::function<Result<std::unique_ptr<disk::BlockDevice>>(const std::string&)> open;
};

std::vector<FormatSpec> all_formats()
{
    auto open_vhdx = [](const std::string& p) { return disk::open_vhdx(p, false); };
    auto open_vhd = [](const std::string& p) { return disk::open_vhd(p, false); };
    return {
        { "raw", ".img", disk::create_raw, [](const std::string& p) { return disk::open_raw(p, false); } },
        { "vhdx-dyn-32m", ".vhdx",
            [](const std::string& p, uint64_t s) { return disk::create_vhdx(p, s, disk::DiskType::Dynamic, 0, 512); },
            open_vhdx },
        { "vhdx-dyn-1m", ".vhdx",
            [](const std::string& p, uint64_t s) {
                return disk::create_vhdx(p, s, disk::DiskType::Dynamic, static_cast<uint32_t>(mib), 512);
            },
            open_vhdx },
        { "vhdx-fixed", ".vhdx",
            [](const std::string& p, uint64_t s) { return disk::create_vhdx(p, s, disk::DiskType::Fixed, 0, 512); },
            open_vhdx },
        { "vhd-dyn-2m", ".vhd",
            [](const std::string& p, uint64_t s) { return disk::create_vhd(p, s, disk::DiskType::Dynamic); },
            open_vhd },
        { "vhd-fixed", ".vhd",
            [](const std::string& p, uint64_t s) { return disk::create_vhd(p, s, disk::DiskType::Fixed); }, open_vhd },
    };
}

enum class Workload { SeqWriteNew, SeqRead, RandRead, SeqRewrite, RandRewrite, RandWriteNew };
constexpr std::array all_workloads { Workload::SeqWriteNew, Workload::SeqRead, Workload::RandRead, Workload::SeqRewrite,
    Workload::RandRewrite, Workload::RandWriteNew };

const char* workload_name(Workload w)
{
    switch (w) {
    case Workload::SeqWriteNew:
        return "seq write new";
    case Workload::SeqRead:
        return "seq read";
    case Workload::RandRead:
        return "rand read";
    case Workload::SeqRewrite:
        return "seq rewrite";
    case Workload::RandRewrite:
        return "rand rewrite";
    case Workload::RandWriteNew:
        return "rand write new";
    }
    return "?";
}

bool is_sequential(Workload w)
{
    return w == Workload::SeqWriteNew || w == Workload::SeqRead || w == Workload::SeqRewrite;
}
bool is_write(Workload w)
{
    return w != Workload::SeqRead && w != Workload::RandRead;
}

double now_s()
{
    timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

uint64_t splitmix64(uint64_t& state)
{
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

std::vector<uint64_t> random_offsets(uint64_t seed, uint64_t count, uint64_t disk_size)
{
    std::vector<uint64_t> offsets(count);
    uint64_t state = seed;
    for (auto& o : offsets)
        o = splitmix64(state) % (disk_size / rand_chunk) * rand_chunk;
    return offsets;
}

// One side of a comparison: the library's BlockDevice, or the host's raw file.
class Side {
public:
    virtual ~Side() = default;
    virtual Result<void> read(uint64_t offset, std::span<uint8_t> out) = 0;
    virtual Result<void> write(uint64_t offset, std::span<const uint8_t> in) = 0;
    virtual Result<void> flush() = 0;
};

class LibrarySide final : public Side {
public:
    explicit LibrarySide(disk::BlockDevice& device)
        : m_device(device)
    {
    }
    Result<void> read(uint64_t offset, std::span<uint8_t> out) override { return m_device.read(offset, out); }
    Result<void> write(uint64_t offset, std::span<const uint8_t> in) override { return m_device.write(offset, in); }
    Result<void> flush() override { return m_device.flush(); }

private:
    disk::BlockDevice& m_device;
};

class HostSide final : public Side {
public:
    explicit HostSide(UniqueFd fd)
        : m_fd(std::move(fd))
    {
    }
    Result<void> read(uint64_t offset, std::span<uint8_t> out) override
    {
        return disk::pread_full(m_fd.get(), out, offset);
    }
    Result<void> write(uint64_t offset, std::span<const uint8_t> in) override
    {
        return disk::pwrite_full(m_fd.get(), in, offset);
    }
    Result<void> flush() override
    {
        if (::fdatasync(m_fd.get()) != 0)
            return errno_failure("fdatasync");
        return {};
    }

private:
    UniqueFd m_fd;
};

// A fresh sparse raw file of `size` bytes for the host side.
Result<std::unique_ptr<HostSide>> create_host_file(const std::string& path, uint64_t size)
{
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid())
        return errno_failure(fmt::format("creating {}", path));
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
        return errno_failure(fmt::format("sizing {}", path));
    return std::make_unique<HostSide>(std::move(fd));
}

// Writes back and drops the cached pages of `path` (clean pages only are dropped, hence the fdatasync).
Result<void> drop_cache(const std::string& path)
{
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
        return errno_failure(fmt::format("opening {}", path));
    if (::fdatasync(fd.get()) != 0)
        return errno_failure(fmt::format("fdatasync {}", path));
    if (int err = ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED); err != 0)
        return errno_failure(fmt::format("posix_fadvise {}", path), err);
    return {};
}

Result<void> sync_file_system(const std::string& dir)
{
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid() || ::syncfs(fd.get()) != 0)
        return errno_failure(fmt::format("syncfs {}", dir));
    return {};
}

void remove_file(const std::string& path)
{
    std::error_code ec;
    std::filesystem::remove(path, ec);
}

// Reads the whole disk through both sides and compares (untimed); warms the page cache for both files.
Result<void> compare_sides(Side& library, Side& host, uint64_t size)
{
    std::vector<uint8_t> a(seq_chunk), b(seq_chunk);
    for (uint64_t offset = 0; offset < size; offset += seq_chunk) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(seq_chunk, size - offset));
        TRY_CTX(library.read(offset, std::span(a).first(n)), "library read at {}", offset);
        TRY_CTX(host.read(offset, std::span(b).first(n)), "host read at {}", offset);
        if (std::memcmp(a.data(), b.data(), n) != 0)
            return fail("the library and the host file differ in the 1 MiB at {}", offset);
    }
    return {};
}

struct Timing {
    double total_s = 0; // the workload, flush included
    double before_flush_s = 0;
};

class Runner {
public:
    Runner(const Options& o, const std::vector<uint8_t>& pool)
        : m_options(o)
        , m_pool(pool)
    {
    }

    // Runs workload `w` on `side`; `salt` picks other data (and, for random writes, other offsets).
    Result<Timing> run(Workload w, Side& side, uint64_t salt) const
    {
        std::vector<uint8_t> buffer(seq_chunk);
        const uint64_t size = m_options.size;
        std::vector<uint64_t> offsets; // random workloads: drawn before the clock starts
        if (w == Workload::RandRead)
            offsets = random_offsets(m_options.seed, m_options.read_ops, size);
        else if (w == Workload::RandRewrite || w == Workload::RandWriteNew)
            offsets = random_offsets(m_options.seed + salt, m_options.write_ops, size);
        Timing t;
        const double start = now_s();
        switch (w) {
        case Workload::SeqRead:
            for (uint64_t offset = 0; offset < size; offset += seq_chunk)
                TRY(side.read(offset, std::span(buffer).first(chunk_at(offset))));
            break;
        case Workload::SeqWriteNew:
        case Workload::SeqRewrite:
            for (uint64_t offset = 0; offset < size; offset += seq_chunk)
                TRY(side.write(offset, data(offset, chunk_at(offset), salt)));
            break;
        case Workload::RandRead:
            for (uint64_t offset : offsets)
                TRY(side.read(offset, std::span(buffer).first(rand_chunk)));
            break;
        case Workload::RandRewrite:
        case Workload::RandWriteNew:
            for (uint64_t offset : offsets)
                TRY(side.write(offset, data(offset, rand_chunk, salt)));
            break;
        }
        t.before_flush_s = now_s() - start;
        if (is_write(w))
            TRY(side.flush());
        t.total_s = now_s() - start;
        return t;
    }

private:
    size_t chunk_at(uint64_t offset) const
    {
        return static_cast<size_t>(std::min<uint64_t>(seq_chunk, m_options.size - offset));
    }
    // `n` bytes of the random pool, chosen by the offset and the salt (never all zeroes).
    std::span<const uint8_t> data(uint64_t offset, size_t n, uint64_t salt) const
    {
        const uint64_t start = (offset + salt * 69632) % (m_pool.size() - seq_chunk);
        return std::span(m_pool).subspan(static_cast<size_t>(start), n);
    }

    const Options& m_options;
    const std::vector<uint8_t>& m_pool;
};

struct Sample {
    Timing library;
    Timing host;
};
using Samples = std::map<std::pair<std::string, Workload>, std::vector<Sample>>;

class FormatRun {
public:
    FormatRun(const Options& o, const Runner& runner, const FormatSpec& format, std::string dir, int run)
        : m_options(o)
        , m_runner(runner)
        , m_format(format)
        , m_dir(std::move(dir))
        , m_run(run)
    {
    }

    Result<void> execute(Samples& samples)
    {
        const std::string image = path("image", m_format.extension);
        const std::string host = path("host", ".raw");
        TRY_CTX(m_format.create(image, m_options.size), "creating {}", image);
        auto device = TRY(m_format.open(image));
        auto host_side = TRY(create_host_file(host, m_options.size));
        LibrarySide library(*device);

        TRY(measure(Workload::SeqWriteNew, library, *host_side, 0, samples));
        TRY(settle_cache(library, *host_side, image, host));
        TRY(measure(Workload::SeqRead, library, *host_side, 0, samples));
        TRY(settle_cache(library, *host_side, image, host));
        TRY(measure(Workload::RandRead, library, *host_side, 0, samples));
        TRY(measure(Workload::SeqRewrite, library, *host_side, 1, samples));
        TRY(measure(Workload::RandRewrite, library, *host_side, 2, samples));
        TRY(compare_sides(library, *host_side, m_options.size));
        TRY(device->close());
        device.reset();
        host_side.reset();
        remove_file(image);
        remove_file(host);

        const std::string image2 = path("image-rand", m_format.extension);
        const std::string host2 = path("host-rand", ".raw");
        TRY_CTX(m_format.create(image2, m_options.size), "creating {}", image2);
        auto device2 = TRY(m_format.open(image2));
        auto host_side2 = TRY(create_host_file(host2, m_options.size));
        LibrarySide library2(*device2);
        TRY(measure(Workload::RandWriteNew, library2, *host_side2, 3, samples));
        TRY(compare_sides(library2, *host_side2, m_options.size));
        TRY(device2->close());
        device2.reset();
        host_side2.reset();
        remove_file(image2);
        remove_file(host2);
        return {};
    }

private:
    std::string path(std::string_view what, std::string_view extension) const
    {
        return fmt::format("{}/{}-{}{}", m_dir, m_format.name, what, extension);
    }

    // Library and host, in an order that alternates between runs; the file system is synced before each
    // (untimed), so that neither side pays for write-back or discards the other left behind.
    Result<void> measure(Workload w, Side& library, Side& host, uint64_t salt, Samples& samples)
    {
        auto one = [&](Side& side, const char* who) -> Result<Timing> {
            TRY(sync_file_system(m_dir));
            return TRY_CTX(m_runner.run(w, side, salt), "{} {} ({})", m_format.name, workload_name(w), who);
        };
        Sample s;
        if (m_run % 2 == 0) {
            s.library = TRY(one(library, "library"));
            s.host = TRY(one(host, "host"));
        } else {
            s.host = TRY(one(host, "host"));
            s.library = TRY(one(library, "library"));
        }
        if (m_options.verbose)
            fmt::print(stderr,
                "disk_bench: run {} {} {}: {} first, library {:.4f} s ({:.4f} before the flush), host "
                "{:.4f} s ({:.4f})\n",
                m_run + 1, m_format.name, workload_name(w), m_run % 2 == 0 ? "library" : "host", s.library.total_s,
                s.library.before_flush_s, s.host.total_s, s.host.before_flush_s);
        samples[{ m_format.name, w }].push_back(s);
        return {};
    }

    // Before a read workload: both files compared (which reads them in full: warm), then dropped if cold.
    Result<void> settle_cache(Side& library, Side& host, const std::string& image, const std::string& host_path)
    {
        TRY(compare_sides(library, host, m_options.size));
        if (m_options.cold) {
            TRY(drop_cache(image));
            TRY(drop_cache(host_path));
        }
        return {};
    }

    const Options& m_options;
    const Runner& m_runner;
    const FormatSpec& m_format;
    std::string m_dir;
    int m_run;
};

double median(std::vector<double> v)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 != 0 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void print_results(const Options& o, const std::vector<FormatSpec>& formats, const Samples& samples)
{
    utsname u {};
    ::uname(&u);
    fmt::print("disk_bench: {} MiB disks, {} runs (medians), sequential 1 MiB, random {} reads / {} writes of 4 KiB "
               "at QD1 (seed {}), page cache {}; {} {}, {} CPUs\n",
        o.size / mib, o.runs, o.read_ops, o.write_ops, o.seed,
        o.cold ? "cold (dropped before reads)" : "warm (read before reads)", u.sysname, u.release,
        ::sysconf(_SC_NPROCESSORS_ONLN));
    fmt::print(
        "writes include the final flush (library flush(), host fdatasync); 'no flush' is the ratio before it\n\n");
    fmt::print("{:<13} {:<15} {:>10} {:>9} {:>10} {:>9} {:>9} {:>14} {:>9}\n", "format", "workload", "lib MiB/s",
        "lib IOPS", "host MiB/s", "host IOPS", "lib/host", "[min, max]", "no flush");
    for (const auto& f : formats) {
        for (Workload w : all_workloads) {
            auto it = samples.find({ f.name, w });
            if (it == samples.end())
                continue;
            const double ops = is_sequential(w) ? static_cast<double>((o.size + seq_chunk - 1) / seq_chunk)
                                                : static_cast<double>(is_write(w) ? o.write_ops : o.read_ops);
            const double bytes = is_sequential(w) ? static_cast<double>(o.size) : ops * rand_chunk;
            std::vector<double> lib_s, host_s, ratio, ratio_no_flush;
            for (const Sample& s : it->second) {
                lib_s.push_back(s.library.total_s);
                host_s.push_back(s.host.total_s);
                ratio.push_back(s.host.total_s / s.library.total_s);
                ratio_no_flush.push_back(s.host.before_flush_s / s.library.before_flush_s);
            }
            const double lib = median(lib_s);
            const double host = median(host_s);
            const auto [lo, hi] = std::minmax_element(ratio.begin(), ratio.end());
            fmt::print("{:<13} {:<15} {:>10.1f} {:>9.0f} {:>10.1f} {:>9.0f} {:>9.3f} {:>14} {:>9}\n", f.name,
                workload_name(w), bytes / mib / lib, ops / lib, bytes / mib / host, ops / host, median(ratio),
                fmt::format("[{:.2f}, {:.2f}]", *lo, *hi),
                is_write(w) ? fmt::format("{:.3f}", median(ratio_no_flush)) : std::string("-"));
        }
    }
}

Result<uint64_t> parse_size(std::string_view text)
{
    char* end = nullptr;
    const std::string s(text);
    uint64_t value = std::strtoull(s.c_str(), &end, 10);
    const std::string_view suffix(end);
    if (end == s.c_str())
        return fail("bad size '{}'", text);
    if (suffix == "K" || suffix == "KiB")
        value <<= 10;
    else if (suffix == "M" || suffix == "MiB")
        value <<= 20;
    else if (suffix == "G" || suffix == "GiB")
        value <<= 30;
    else if (!suffix.empty())
        return fail("bad size suffix in '{}' (K, M or G)", text);
    if (value == 0 || value % mib != 0)
        return fail("size {} is not a non-zero multiple of 1 MiB", value);
    return value;
}

void usage()
{
    std::puts("usage: disk_bench [--size 1G] [--read-ops 200000] [--write-ops 20000] [--runs 6]\n"
              "                  [--seed 1] [--dir /var/tmp] [--cache warm|cold] [--verbose]\n"
              "                  [--formats raw,vhdx-dyn-32m,vhdx-dyn-1m,vhdx-fixed,vhd-dyn-2m,vhd-fixed]\n"
              "Disk image library throughput against pread/pwrite on a raw host file, see docs/performance.md.\n"
              "Needs about 2x --size of free space in --dir.");
}

Result<int> run_main(int argc, char** argv)
{
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--help" || a == "-h") {
            usage();
            return 0;
        }
        if (a == "--verbose") {
            o.verbose = true;
            continue;
        }
        if (i + 1 >= argc) {
            usage();
            return 2;
        }
        const std::string_view v = argv[++i];
        if (a == "--size")
            o.size = TRY(parse_size(v));
        else if (a == "--read-ops")
            o.read_ops = std::strtoull(std::string(v).c_str(), nullptr, 10);
        else if (a == "--write-ops")
            o.write_ops = std::strtoull(std::string(v).c_str(), nullptr, 10);
        else if (a == "--runs")
            o.runs = std::max(1, std::atoi(std::string(v).c_str()));
        else if (a == "--seed")
            o.seed = std::strtoull(std::string(v).c_str(), nullptr, 10);
        else if (a == "--dir")
            o.dir = v;
        else if (a == "--cache" && (v == "warm" || v == "cold"))
            o.cold = v == "cold";
        else if (a == "--formats") {
            std::istringstream in { std::string(v) };
            std::string name;
            while (std::getline(in, name, ','))
                o.formats.push_back(name);
        } else {
            usage();
            return 2;
        }
    }
    if (o.read_ops == 0 || o.write_ops == 0)
        return fail("--read-ops and --write-ops must be positive");

    std::vector<FormatSpec> formats;
    for (auto& f : all_formats())
        if (o.formats.empty() || std::find(o.formats.begin(), o.formats.end(), f.name) != o.formats.end())
            formats.push_back(std::move(f));
    if (formats.empty() || (!o.formats.empty() && formats.size() != o.formats.size()))
        return fail("unknown format in --formats (see --help)");

    std::string templ = o.dir + "/disk_bench.XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr)
        return errno_failure(fmt::format("creating a directory in {}", o.dir));
    const std::string dir = templ;
    struct RemoveDir {
        std::string path;
        ~RemoveDir()
        {
            std::error_code ec;
            std::filesystem::remove_all(path, ec);
        }
    } remove_dir { dir };

    std::vector<uint8_t> pool(pool_size + seq_chunk);
    uint64_t state = o.seed ^ 0xD15CBE7C4ULL;
    for (size_t i = 0; i < pool.size(); i += 8) {
        const uint64_t r = splitmix64(state) | 1; // no all-zero words: the VHD library skips zero writes
        std::memcpy(pool.data() + i, &r, sizeof(r));
    }
    const Runner runner(o, pool);
    Samples samples;
    for (int run = 0; run < o.runs; ++run) {
        for (const auto& f : formats) {
            FormatRun format_run(o, runner, f, dir, run);
            TRY_CTX(format_run.execute(samples), "run {}", run + 1);
        }
        fmt::print(stderr, "disk_bench: run {}/{} done\n", run + 1, o.runs);
    }
    print_results(o, formats, samples);
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    auto r = run_main(argc, argv);
    if (!r) {
        fmt::print(stderr, "disk_bench: {}\n", r.error().message());
        return 1;
    }
    return *r;
}
