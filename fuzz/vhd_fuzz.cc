// libFuzzer target: a VHD image is a file the user hands us, so hostile input. open_vhd must reject anything
// malformed with an error (never crash or hang), and whatever it opens must serve reads (first, middle and
// last sector) and, opened read-write, a one-sector write and a flush without crashing.
// The disk library opens images by path: each input is written to one scratch file per process (in a
// private directory under /dev/shm, else /tmp) and opened read-only, then read-write.
#include "fuzz/disk_fuzz.h"
#include "vm/disk/vhd/vhd_disk.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <filesystem>
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


} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string& path = scratch_path();
    if (!write_image(path, data, size))
        return 0;
    if (auto disk = vmgen::vm::disk::open_vhd(path, true))
        disk_fuzz::exercise(**disk, false);
    if (auto disk = vmgen::vm::disk::open_vhd(path, false))
        disk_fuzz::exercise(**disk, true);
    return 0;
}
