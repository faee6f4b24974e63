// libFuzzer target: a VHDX image is a file the user hands us, so hostile input. open_vhdx must reject anything
// malformed with an error (never crash or hang), and whatever it opens must serve reads (first, middle and
// last sector) and, opened read-write (which replays a pending log: writes), a one-sector write and a flush
// without crashing. Then, each time closed and reopened: the image is grown (by 1 MiB and a sector) and shrunk
// (to half its size): a resize that succeeds must leave a file that reopens with the new size, what lies below
// the smaller size unchanged (extents, and stored bytes up to 16 MiB) and the grown range reading zeroes; one
// that fails must leave the old size or the new. Last it is compacted: whether or not compact() succeeds, the
// file must reopen with the same size, extents and stored bytes, and be no longer than before. A broken promise
// aborts.
// The disk library opens images by path: each input is written to one scratch file per process (in a
// private directory under /dev/shm, else /tmp) and opened read-only, then read-write.
//
// A valid VHDX places its regions on 1 MiB boundaries (headers, log, BAT, metadata: over 3 MiB), far past
// libFuzzer's input sizes, so the input is a sparse image instead: a u32 little-endian file length (capped
// at 64 MiB), then records of u32 LE file offset, u16 LE length, and that many bytes, written in order (a
// record is clipped to the file length; a truncated last record is written as far as it goes). Everything
// not written reads as zeroes. The seeds in fuzz/corpus/vhdx/ are real images in this encoding.
//
// Differencing images: beside the scratch image lies parent.vhdx (made once per process: 4 MiB, 1 MiB blocks,
// 512-byte sectors, some data, its DataWriteGuid set to parent_guid below), so a child whose locator names it
// (the seed differencing_4m.bin) opens with its parent and its sector bitmaps and parent reads get exercised.
// Children whose parent is missing still have their locator parsed; and every record's bytes also go straight
// to the parent locator parser.
#include "fuzz/disk_fuzz.h"
#include "vm/disk/vhdx/vhdx.h"
#include "vm/disk/vhdx/vhdx_internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace {

const std::string& scratch_path()
{
    static const std::string path = disk_fuzz::make_scratch_path("vhdx_fuzz", "disk.vhdx");
    return path;
}

// The DataWriteGuid of parent.vhdx: 6a3c1e52-9d0b-4f57-8e21-c4b5a7f0d913.
constexpr uint8_t parent_guid[16] = {0x52, 0x1e, 0x3c, 0x6a, 0x0b, 0x9d, 0x57, 0x4f,
                                     0x8e, 0x21, 0xc4, 0xb5, 0xa7, 0xf0, 0xd9, 0x13};

// Makes parent.vhdx beside the scratch image (see the top of the file). Failures only make the differencing
// seeds less useful: they are ignored.
void make_parent()
{
    namespace vd = vmgen::vm::disk;
    const std::string path = std::filesystem::path(scratch_path()).parent_path() / "parent.vhdx";
    if (!vd::create_vhdx(path, 4 << 20, vd::DiskType::Dynamic, 1 << 20, 512))
        return;
    if (auto disk = vd::open_vhdx(path, false)) {
        std::vector<uint8_t> data(64 << 10);
        for (size_t i = 0; i < data.size(); ++i)
            data[i] = static_cast<uint8_t>(i / 512 + 1);
        (void)(*disk)->write(0, data);
        (void)(*disk)->write(3 << 20, data);
        (void)(*disk)->close();
    }
    // Both headers get the fixed DataWriteGuid ([MS-VHDX] 2.2.2: offset 32), checksums recomputed.
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return;
    for (const off_t offset : {off_t{64 << 10}, off_t{128 << 10}}) {
        std::vector<uint8_t> header(4096);
        if (::pread(fd, header.data(), header.size(), offset) != static_cast<ssize_t>(header.size()))
            break;
        std::memcpy(header.data() + 32, parent_guid, sizeof(parent_guid));
        std::memset(header.data() + 4, 0, 4);
        const uint32_t crc = vd::vhdx_crc32c(header);
        std::memcpy(header.data() + 4, &crc, sizeof(crc));
        (void)::pwrite(fd, header.data(), header.size(), offset);
    }
    ::close(fd);
}

uint64_t le(const uint8_t* p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i)
        v |= uint64_t{p[i]} << (8 * i);
    return v;
}

bool write_image(const std::string& path, const uint8_t* data, size_t size)
{
    constexpr uint64_t max_file = 64u << 20;
    if (size < 4)
        return false;
    const uint64_t file_size = std::min<uint64_t>(le(data, 4), max_file);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    bool ok = ::ftruncate(fd, static_cast<off_t>(file_size)) == 0;
    size_t pos = 4;
    while (ok && pos + 6 <= size) {
        const uint64_t offset = le(data + pos, 4);
        size_t length = static_cast<size_t>(le(data + pos + 4, 2));
        pos += 6;
        length = std::min(length, size - pos);
        const uint8_t* bytes = data + pos;
        pos += length;
        if (offset >= file_size)
            continue;
        length = static_cast<size_t>(std::min<uint64_t>(length, file_size - offset));
        if (::pwrite(fd, bytes, length, static_cast<off_t>(offset)) != static_cast<ssize_t>(length))
            ok = false;
    }
    ::close(fd);
    return ok;
}

// The extents of the first 64 MiB (BAT states and sector bitmaps), which must cover the range exactly.
void extents(vmgen::vm::disk::BlockDevice& disk)
{
    const uint64_t length = std::min<uint64_t>(disk.size(), 64 << 20);
    auto extents = disk.extents(0, length);
    if (!extents)
        return;
    uint64_t pos = 0;
    for (const auto& e : *extents) {
        if (e.offset != pos || e.length == 0)
            std::abort();
        pos += e.length;
    }
    if (pos != length)
        std::abort();
}

namespace vd = vmgen::vm::disk;

// What a disk holds below `end`: its extents and, when they total at most 16 MiB, the bytes of those that are not
// Zero.
struct Contents {
    std::vector<vd::Extent> extents;
    std::vector<uint8_t> bytes;
    bool operator==(const Contents&) const = default;
};

std::optional<Contents> contents_of(vd::BlockDevice& disk, uint64_t end)
{
    constexpr uint64_t max_bytes = 16 << 20;
    Contents c;
    auto extents = disk.extents(0, end);
    if (!extents)
        return std::nullopt;
    c.extents = std::move(*extents);
    uint64_t stored = 0;
    for (const auto& e : c.extents)
        stored += e.kind == vd::ExtentKind::Zero ? 0 : e.length;
    if (stored > max_bytes)
        return c;
    for (const auto& e : c.extents) {
        if (e.kind == vd::ExtentKind::Zero)
            continue;
        const size_t at = c.bytes.size();
        c.bytes.resize(at + e.length);
        if (!disk.read(e.offset, std::span(c.bytes).subspan(at)))
            return std::nullopt;
    }
    return c;
}

// Reads `length` bytes at `offset` (at most 1 MiB) and aborts unless they are zeroes.
void expect_zeroes(vd::BlockDevice& disk, uint64_t offset, uint64_t length)
{
    std::vector<uint8_t> buf(std::min<uint64_t>(length, 1 << 20));
    if (!disk.read(offset, buf) || std::any_of(buf.begin(), buf.end(), [](uint8_t b) { return b != 0; }))
        std::abort();
}

// Resizes the closed image at `path` to `new_size` (see the top of the file).
void exercise_resize(const std::string& path, uint64_t new_size)
{
    std::optional<Contents> before;
    uint64_t old_size = 0;
    bool resized = false;
    {
        auto disk = vd::open_vhdx(path, false);
        if (!disk)
            return;
        old_size = (*disk)->size();
        before = contents_of(**disk, std::min(old_size, new_size));
        resized = (*disk)->resize(new_size).has_value();
        if (resized && ((*disk)->size() != new_size || !(*disk)->close()))
            std::abort();
    }
    // Replays whatever a failed resize left in the log, then must hold the old size or the new one.
    auto disk = vd::open_vhdx(path, false);
    if (!disk || ((*disk)->size() != new_size && (resized || (*disk)->size() != old_size)))
        std::abort();
    if (!before || (*disk)->size() != new_size)
        return;
    if (contents_of(**disk, std::min(old_size, new_size)) != before)
        std::abort();
    if (new_size > old_size) {
        expect_zeroes(**disk, old_size, new_size - old_size);
        const uint64_t sector = (*disk)->sector_size();
        expect_zeroes(**disk, new_size - sector, sector);
    }
}

void exercise_compact(const std::string& path)
{
    std::optional<Contents> before;
    uint64_t size = 0;
    std::error_code ec;
    const uint64_t file_size = std::filesystem::file_size(path, ec);
    {
        auto disk = vd::open_vhdx(path, false);
        if (!disk)
            return;
        size = (*disk)->size();
        before = contents_of(**disk, size);
        if ((*disk)->compact() && (*disk)->info().file_size != std::filesystem::file_size(path, ec))
            std::abort();
    }
    auto disk = vd::open_vhdx(path, false);
    if (!disk || (*disk)->size() != size || std::filesystem::file_size(path, ec) > file_size)
        std::abort();
    if (before && contents_of(**disk, size) != before)
        std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    static const bool parent_made = (make_parent(), true);
    (void)parent_made;
    // Each record's bytes as a parent locator item.
    for (size_t pos = 4; pos + 6 <= size;) {
        const size_t length = std::min(static_cast<size_t>(le(data + pos + 4, 2)), size - pos - 6);
        (void)vmgen::vm::disk::vhdx_detail::parse_parent_locator(std::span<const uint8_t>(data + pos + 6, length));
        pos += 6 + length;
    }
    const std::string& path = scratch_path();
    if (!write_image(path, data, size))
        return 0;
    if (auto disk = vmgen::vm::disk::open_vhdx(path, true)) {
        disk_fuzz::exercise(**disk, false);
        extents(**disk);
    }
    uint64_t disk_size = 0;
    uint64_t sector = 0;
    if (auto disk = vmgen::vm::disk::open_vhdx(path, false)) {
        disk_fuzz::exercise(**disk, true);
        // A discard of the first sector (a part of a block: zeroes written, in differencing images allocating).
        (void)(*disk)->discard(0, (*disk)->sector_size());
        // And of the blocks after it (whole blocks of dynamic and differencing images: holes to compact).
        const uint64_t block = (*disk)->info().block_size;
        if (block != 0 && (*disk)->size() >= 4 * block)
            (void)(*disk)->discard(block, 2 * block);
        extents(**disk);
        disk_size = (*disk)->size();
        sector = (*disk)->sector_size();
    }
    if (sector == 0)
        return 0;
    exercise_resize(path, disk_size + (1 << 20) + sector);
    exercise_resize(path, std::max<uint64_t>(disk_size / 2 / sector * sector, sector));
    exercise_compact(path);
    return 0;
}
