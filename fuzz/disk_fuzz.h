// Shared by the disk-format fuzz targets (vhd_fuzz.cc, vhdx_fuzz.cc): a scratch file to hold the image,
// and the I/O every opened image gets.
#pragma once

#include "vm/disk/block_device.h"

#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace disk_fuzz {

// One scratch image file per fuzzer process, in a private folder that is removed at exit (libFuzzer ends
// with exit()). `name` tags the folder; `file` is the image's name (libraries look at its extension).
inline std::string make_scratch_path(const char* name, const char* file)
{
    for (const char* base : {"/dev/shm", "/tmp"}) {
        std::string dir = std::string(base) + "/" + name + ".XXXXXX";
        if (::mkdtemp(dir.data()) != nullptr) {
            static std::string folder;
            folder = dir;
            std::atexit([] { std::filesystem::remove_all(folder); });
            return dir + "/" + file;
        }
    }
    std::abort();
}

// Reads the first, middle and last sectors and one past the end (which must fail cleanly); when writable,
// writes the middle sector, flushes and reads it back.
inline void exercise(vmgen::vm::disk::BlockDevice& disk, bool writable)
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

} // namespace disk_fuzz
