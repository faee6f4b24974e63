// libFuzzer target: a VHD image is a file the user hands us, so hostile input. open_vhd must reject anything
// malformed with an error (never crash or hang), and whatever it opens must serve reads (first, middle and
// last sector) and, opened read-write, a one-sector write and a flush without crashing. Read-write, its
// extents must cover the disk exactly, and a resize (grow, then shrink) that succeeds must leave a file that
// reopens with the new size. Then the image is reopened read-write, its first blocks discarded, and compacted:
// whether or not compact() succeeds, the file must reopen with the same size, extents and stored bytes (as
// after the discard), and be no longer than before.
// A broken promise aborts.
// The disk library opens images by path: each input is written to one scratch file per process (in a
// private directory under /dev/shm, else /tmp) and opened read-only, then read-write.
#include "fuzz/disk_fuzz.h"
#include "vm/disk/vhd/vhd_disk.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace {

const std::string& scratch_path()
{
    static const std::string path = disk_fuzz::make_scratch_path("vhd_fuzz", "disk.vhd");
    return path;
}

bool write_image(const std::string& path, const uint8_t* data, size_t size)
{
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    size_t done = 0;
    while (done < size) {
        const ssize_t n = ::write(fd, data + done, size - done);
        if (n <= 0)
            break;
        done += static_cast<size_t>(n);
    }
    ::close(fd);
    return done == size;
}

void exercise_extents_and_resize(vmgen::vm::disk::BlockDevice& disk, const std::string& path)
{
    const uint64_t size = disk.size();
    if (auto extents = disk.extents(0, size)) {
        uint64_t at = 0;
        for (const auto& e : *extents) {
            if (e.offset != at || e.length == 0 || e.length % 512 != 0)
                std::abort();
            at += e.length;
        }
        if (at != size)
            std::abort();
    }
    for (const uint64_t new_size : { size + (1 << 20) + 1536, size / 1024 * 512 }) {
        if (new_size == 0 || !disk.resize(new_size))
            continue;
        if (disk.size() != new_size)
            std::abort();
        auto reopened = vmgen::vm::disk::open_vhd(path, true);
        if (!reopened || (*reopened)->size() != new_size)
            std::abort();
        disk_fuzz::exercise(**reopened, false);
    }
}

// What a disk holds: its size, its extents and, when they total at most 16 MiB, the bytes of those that are
// not Zero.
struct Contents {
    uint64_t size = 0;
    std::vector<vmgen::vm::disk::Extent> extents;
    std::vector<uint8_t> bytes;
    bool operator==(const Contents&) const = default;
};

std::optional<Contents> contents_of(vmgen::vm::disk::BlockDevice& disk)
{
    constexpr uint64_t max_bytes = 16 << 20;
    Contents c;
    c.size = disk.size();
    auto extents = disk.extents(0, c.size);
    if (!extents)
        return std::nullopt;
    c.extents = std::move(*extents);
    uint64_t stored = 0;
    for (const auto& e : c.extents)
        stored += e.kind == vmgen::vm::disk::ExtentKind::Zero ? 0 : e.length;
    if (stored > max_bytes)
        return c;
    for (const auto& e : c.extents) {
        if (e.kind == vmgen::vm::disk::ExtentKind::Zero)
            continue;
        const size_t at = c.bytes.size();
        c.bytes.resize(at + e.length);
        if (!disk.read(e.offset, std::span(c.bytes).subspan(at)))
            return std::nullopt;
    }
    return c;
}

void exercise_compact(const std::string& path)
{
    auto disk = vmgen::vm::disk::open_vhd(path, false);
    if (!disk)
        return;
    // A discard first: a dynamic disk releases the blocks it covers, leaving holes to fill. What it did shows
    // in the reopened file too; after a failed one, the file is opened again.
    const auto& info = (*disk)->info();
    const uint64_t span = info.type == vmgen::vm::disk::DiskType::Dynamic ? uint64_t { info.block_size } * 4 : 65536;
    if (!(*disk)->discard(0, std::min(info.virtual_size, span))) {
        disk->reset();
        disk = vmgen::vm::disk::open_vhd(path, false);
        if (!disk)
            std::abort();
    }
    const auto before = contents_of(**disk);
    if (!before)
        return;
    std::error_code ec;
    const uint64_t file_size = std::filesystem::file_size(path, ec);
    if (ec || (*disk)->info().file_size != file_size)
        std::abort();
    if ((*disk)->compact() && (*disk)->info().file_size != std::filesystem::file_size(path, ec))
        std::abort();
    disk->reset();
    auto reopened = vmgen::vm::disk::open_vhd(path, true);
    if (!reopened || contents_of(**reopened) != before || std::filesystem::file_size(path, ec) > file_size)
        std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string& path = scratch_path();
    if (!write_image(path, data, size))
        return 0;
    if (auto disk = vmgen::vm::disk::open_vhd(path, true))
        disk_fuzz::exercise(**disk, false);
    if (auto disk = vmgen::vm::disk::open_vhd(path, false)) {
        disk_fuzz::exercise(**disk, true);
        exercise_extents_and_resize(**disk, path);
        disk->reset();
        exercise_compact(path);
    }
    return 0;
}
