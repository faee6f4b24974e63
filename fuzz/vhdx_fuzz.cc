// libFuzzer target: a VHDX image is a file the user hands us, so hostile input. open_vhdx must reject anything
// malformed with an error (never crash or hang), and whatever it opens must serve reads (first, middle and
// last sector) and, opened read-write (which replays a pending log: writes), a one-sector write and a flush
// without crashing.
// The disk library opens images by path: each input is written to one scratch file per process (in a
// private directory under /dev/shm, else /tmp) and opened read-only, then read-write.
//
// A valid VHDX places its regions on 1 MiB boundaries (headers, log, BAT, metadata: over 3 MiB), far past
// libFuzzer's input sizes, so the input is a sparse image instead: a u32 little-endian file length (capped
// at 64 MiB), then records of u32 LE file offset, u16 LE length, and that many bytes, written in order (a
// record is clipped to the file length; a truncated last record is written as far as it goes). Everything
// not written reads as zeroes. The seeds in fuzz/corpus/vhdx/ are real images in this encoding.
#include "fuzz/disk_fuzz.h"
#include "vm/disk/vhdx/vhdx.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <filesystem>
#include <vector>

namespace {

const std::string& scratch_path()
{
    static const std::string path = disk_fuzz::make_scratch_path("vhdx_fuzz", "disk.vhdx");
    return path;
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


} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string& path = scratch_path();
    if (!write_image(path, data, size))
        return 0;
    if (auto disk = vmgen::vm::disk::open_vhdx(path, true))
        disk_fuzz::exercise(**disk, false);
    if (auto disk = vmgen::vm::disk::open_vhdx(path, false))
        disk_fuzz::exercise(**disk, true);
    return 0;
}
