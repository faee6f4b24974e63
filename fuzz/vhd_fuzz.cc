// libFuzzer target: a VHD image is a file the user hands us, so hostile input. open_vhd must reject anything
// malformed with an error (never crash or hang), and whatever it opens must serve reads (first, middle and
// last sector) and, opened read-write, a one-sector write and a flush without crashing.
// The disk library opens images by path: each input is written to one scratch file per process (in a
// private directory under /dev/shm, else /tmp) and opened read-only, then read-write.
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
    static const std::string path = [] {
        for (const char* base : {"/dev/shm", "/tmp"}) {
            std::string dir = std::string(base) + "/vhd_fuzz.XXXXXX";
            if (::mkdtemp(dir.data()) != nullptr) {
                // libFuzzer ends the process with exit(): remove the scratch folder then.
                static std::string folder = dir;
                std::atexit([] {
                    std::filesystem::remove_all(folder);
                });
                return dir + "/disk.vhd";
            }
        }
        std::abort();
    }();
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

void exercise(vmgen::vm::disk::BlockDevice& disk, bool writable)
{
    const uint64_t sector = disk.sector_size();
    const uint64_t size = disk.size();
    if (sector == 0 || sector > 4096 || size < sector)
        return;
    const uint64_t sectors = size / sector;
    std::vector<uint8_t> buf(sector);
    for (const uint64_t lba : {uint64_t{0}, sectors / 2, sectors - 1})
        (void)disk.read(lba * sector, buf);
    (void)disk.read(size, buf); // past the end: must fail cleanly
    if (writable && !disk.read_only()) {
        for (size_t i = 0; i < buf.size(); ++i)
            buf[i] = static_cast<uint8_t>(i * 7 + 1);
        (void)disk.write((sectors / 2) * sector, buf);
        (void)disk.flush();
        (void)disk.read((sectors / 2) * sector, buf);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string& path = scratch_path();
    if (!write_image(path, data, size))
        return 0;
    if (auto disk = vmgen::vm::disk::open_vhd(path, true))
        exercise(**disk, false);
    if (auto disk = vmgen::vm::disk::open_vhd(path, false))
        exercise(**disk, true);
    return 0;
}
