// page_cache_probe: the two machine effects docs/performance.md ("Virtual disks") leans on, measured on plain
// files without any image library, so that they can be told apart from the libraries' own costs.
//
//   page_cache_probe align DIR     4 KiB preads at random block offsets of a cached 1 GiB file laid out as a
//                                  dynamic VHD lays out its 2 MiB blocks (data at 4096 + k x (2 MiB + 512)),
//                                  against the same layout with every block's data 4 KiB-aligned
//   page_cache_probe fallocate DIR 1 MiB sequential preads of a cached 1 GiB file preallocated with
//                                  posix_fallocate then written, against a sparse file written the same way
//
// Each prints the median over 7 alternating passes.
#include "support/errno_error.h"
#include "support/result.h"
#include "support/unique_fd.h"
#include "vm/disk/raw/raw_disk.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <fmt/core.h>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace vmgen;
namespace disk = vmgen::vm::disk;

constexpr uint64_t mib = uint64_t { 1 } << 20;
constexpr uint64_t block = 2 * mib;
constexpr uint64_t blocks = 512; // 1 GiB of data
constexpr int passes = 7;

double now_s()
{
    timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// An unlinked scratch file in `dir`.
Result<UniqueFd> scratch_file(const std::string& dir)
{
    UniqueFd fd(::open(dir.c_str(), O_RDWR | O_TMPFILE | O_CLOEXEC, 0600));
    if (!fd.valid())
        return errno_failure(fmt::format("creating a file in {}", dir));
    return fd;
}

Result<void> align(const std::string& dir)
{
    // The file offset of block k's data: the VHD layout (bitmap sector right before the data, blocks packed) or
    // the same with each block padded so that its data starts on a page.
    auto data_offset
        = [](bool aligned, uint64_t k) { return aligned ? 4096 + k * (block + 4096) : 4096 + k * (block + 512); };
    UniqueFd files[2];
    const std::vector<uint8_t> data(block, 0x5a);
    for (int aligned = 0; aligned < 2; ++aligned) {
        files[aligned] = TRY(scratch_file(dir));
        for (uint64_t k = 0; k < blocks; ++k)
            TRY(disk::pwrite_full(files[aligned].get(), data, data_offset(aligned != 0, k)));
    }
    std::vector<double> ns[2];
    std::vector<uint8_t> buffer(4096);
    constexpr int reads = 300000;
    for (int pass = 0; pass < 2 * passes; ++pass) {
        const int aligned = pass % 2;
        uint64_t state = 1;
        const double start = now_s();
        for (int i = 0; i < reads; ++i) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            const uint64_t page = (state >> 20) % (blocks * (block / 4096));
            const uint64_t offset = data_offset(aligned != 0, page / (block / 4096)) + page % (block / 4096) * 4096;
            TRY(disk::pread_full(files[aligned].get(), buffer, offset));
        }
        ns[aligned].push_back((now_s() - start) / reads * 1e9);
    }
    fmt::print(
        "4 KiB random preads, VHD block layout, data 512 bytes off a page (7 blocks in 8): {:.0f} ns\n", median(ns[0]));
    fmt::print(
        "4 KiB random preads, same layout with 4 KiB-aligned data:                      {:.0f} ns\n", median(ns[1]));
    return {};
}

Result<void> preallocated(const std::string& dir)
{
    constexpr uint64_t size = blocks * block;
    UniqueFd files[2];
    const std::vector<uint8_t> data(mib, 0x5a);
    for (int sparse = 0; sparse < 2; ++sparse) {
        files[sparse] = TRY(scratch_file(dir));
        if (sparse == 0) {
            if (int err = ::posix_fallocate(files[sparse].get(), 0, static_cast<off_t>(size)); err != 0)
                return errno_failure("posix_fallocate", err);
        } else if (::ftruncate(files[sparse].get(), static_cast<off_t>(size)) != 0) {
            return errno_failure("ftruncate");
        }
    }
    // Written in alternation, so that neither file gets the memory of an earlier phase first.
    for (uint64_t offset = 0; offset < size; offset += mib)
        for (auto& f : files)
            TRY(disk::pwrite_full(f.get(), data, offset));
    std::vector<double> mibps[2];
    std::vector<uint8_t> buffer(mib);
    for (int pass = 0; pass < 2 * passes; ++pass) {
        const int sparse = pass % 2;
        const double start = now_s();
        for (uint64_t offset = 0; offset < size; offset += mib)
            TRY(disk::pread_full(files[sparse].get(), buffer, offset));
        mibps[sparse].push_back(static_cast<double>(size / mib) / (now_s() - start));
    }
    fmt::print("1 MiB sequential preads, file preallocated with posix_fallocate: {:.0f} MiB/s\n", median(mibps[0]));
    fmt::print("1 MiB sequential preads, sparse file written the same way:       {:.0f} MiB/s\n", median(mibps[1]));
    return {};
}

} // namespace

int main(int argc, char** argv)
{
    const std::string_view mode = argc == 3 ? argv[1] : "";
    Result<void> r = mode == "align" ? align(argv[2])
        : mode == "fallocate"        ? preallocated(argv[2])
                                     : Result<void>(fail("usage: page_cache_probe align|fallocate DIR"));
    if (!r) {
        fmt::print(stderr, "page_cache_probe: {}\n", r.error().message());
        return mode.empty() ? 2 : 1;
    }
    return 0;
}
