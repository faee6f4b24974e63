// VHDX images ([MS-VHDX], wire structures in protocols/disk/vhdx.h) behind vm::disk::BlockDevice.
//
// Opening validates the file identifier, both headers (CRC-32C, current = valid one with the greater sequence
// number), the region tables, the metadata table and items, and every BAT entry before any I/O. Files are
// treated as hostile: anything inconsistent is refused with a message naming the problem, and nothing is
// written to a file that failed validation. A non-empty log is replayed on a read-write open; a read-only open
// of an image with a non-empty log is refused (replaying would write).
//
// Supported: fixed and dynamic images (differencing images are refused), reads through the BAT, writes
// (a write to a block without data gives it a new block at the end of the file, then updates the BAT through
// the log; the log is emptied on close), creation.
#pragma once

#include "support/result.h"
#include "vm/disk/block_device.h"

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace vmgen::vm::disk {

Result<std::unique_ptr<BlockDevice>> open_vhdx(const std::string& path, bool read_only);
// Creates a fixed or dynamic image of `size` bytes (a multiple of logical_sector_size, up to 64 TiB);
// block_size 0 picks 32 MiB. Fails if the file exists; removes what it made if creation fails.
Result<void> create_vhdx(const std::string& path, uint64_t size, DiskType type, uint32_t block_size,
                         uint32_t logical_sector_size);

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as [MS-VHDX] uses for its checksums.
uint32_t vhdx_crc32c(std::span<const uint8_t> data);

} // namespace vmgen::vm::disk
