// Raw disk images: the file's bytes are the disk's bytes. Created sparse (ftruncate); discard punches holes;
// extents() reports the file's holes as Zero (SEEK_DATA/SEEK_HOLE); resize() truncates or extends the file
// sparsely (not block devices) and must not run concurrently with other calls on the same device.
#pragma once

#include "support/result.h"
#include "vm/disk/block_device.h"

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace vmgen::vm::disk {

// Opens an existing raw image. Its length must be a non-zero multiple of 512 bytes.
Result<std::unique_ptr<BlockDevice>> open_raw(const std::string& path, bool read_only);
// Creates a sparse raw image of `size` bytes (a non-zero multiple of 512); fails if the file exists.
Result<void> create_raw(const std::string& path, uint64_t size);

// Full-transfer positional I/O shared by the file-backed formats: retries on EINTR and short transfers;
// a read past the end of the file is an error.
Result<void> pread_full(int fd, std::span<uint8_t> out, uint64_t offset);
Result<void> pwrite_full(int fd, std::span<const uint8_t> in, uint64_t offset);
// BlockDevice::read_nowait/write_nowait for one file range: false when the kernel would block (EAGAIN, a short
// read of a partly cached range) or, for reads, cannot say (EOPNOTSUPP); a write the file system cannot do with
// RWF_NOWAIT (EOPNOTSUPP) is done as a plain buffered pwrite.
Result<bool> pread_nowait(int fd, std::span<uint8_t> out, uint64_t offset);
Result<bool> pwrite_nowait(int fd, std::span<const uint8_t> in, uint64_t offset);
// Checks a request against a device of `size` bytes with `sector`-byte sectors.
Result<void> check_request(uint64_t offset, uint64_t length, uint64_t size, uint32_t sector);

} // namespace vmgen::vm::disk
