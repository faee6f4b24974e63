// VHDX images ([MS-VHDX], wire structures in protocols/disk/vhdx.h) behind vm::disk::BlockDevice.
//
// Opening validates the file identifier, both headers (CRC-32C, current = valid one with the greater sequence
// number), the region tables, the metadata table and items, and every BAT entry before any I/O. Files are
// treated as hostile: anything inconsistent is refused with a message naming the problem, and nothing is
// written to a file that failed validation. A non-empty log is replayed on a read-write open; a read-only open
// of an image with a non-empty log is refused (replaying would write).
//
// Supported: fixed, dynamic and differencing images, reads through the BAT (and the sector bitmaps and the parent
// of differencing images), writes (a write to a block without data gives it a new block at the end of the file,
// and differencing images a sector bitmap block per chunk where blocks are written in part, then updates the BAT
// and bitmaps through the log at the next flush; the log is emptied on close), discard, extents, creation,
// resize (fixed and dynamic images; the BAT region moves to the end of the file when it has no room) and compact
// (dynamic and differencing images: blocks stored last move into free space, the file is truncated).
//
// Differencing images: the parent is found through the parent locator's relative_path, then its
// absolute_win32_path, then each path's file name beside the child; it is opened read-only (recursively: chains
// up to 64 deep, loops refused) and must be a VHDX whose DataWriteGuid matches parent_linkage (or
// parent_linkage2), with the child's virtual size and logical sector size. DiskInfo::parent_path is the file
// used. The first write or discard of an open gives the image a new DataWriteGuid, so children of a parent that
// changed are refused.
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

// Creates a differencing image over the VHDX image `parent_path` (opened, with its chain, to check it): the
// parent's virtual size, sector sizes and virtual disk id; its block size (2 MiB under a fixed parent); a parent
// locator with parent_linkage (the parent's DataWriteGuid), relative_path and absolute_win32_path ("\\?\" and
// the absolute path, backslash separators). Fails if `path` exists; removes what it made if creation fails.
Result<void> create_vhdx_differencing(const std::string& path, const std::string& parent_path);

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as [MS-VHDX] uses for its checksums.
uint32_t vhdx_crc32c(std::span<const uint8_t> data);

} // namespace vmgen::vm::disk
