// VHD images (Microsoft "Virtual Hard Disk Image Format Specification"; wire structs in protocols/disk/vhd.h):
// fixed, dynamic and differencing disks, read and write. The virtual size is the footer's current_size (as Hyper-V
// reads it), not the CHS geometry (as Virtual PC does).
//
// extents(): fixed disks are all Data; dynamic and differencing disks report unallocated blocks as Zero
// (dynamic) or Parent (differencing), allocated blocks per sector from their sector bitmap (absent sectors
// as for an unallocated block, matching what reads return). resize(): fixed and dynamic disks, up to 2040 GiB
// (differencing disks have their parent's size); growing a dynamic disk whose BAT has no room moves the
// blocks in its way to the end of the file. discard(): a dynamic disk releases the blocks the range covers
// whole (BAT entries unallocated; their space stays in the file until compact()) and punches the rest;
// a differencing disk stores zeroes (the range must not show the parent). compact(): dynamic and
// differencing disks move the blocks stored last into the space no BAT entry points at and truncate the file
// after the last block (layout and plan in vhd_layout.h); nothing to do for a fixed disk. Every step keeps a
// file that opens (the order is documented at the implementation). resize() and compact() must not run
// concurrently with other calls on the same device.
#pragma once

#include "protocols/disk/vhd.h"
#include "support/result.h"
#include "vm/disk/block_device.h"

#include <cstdint>
#include <memory>
#include <string>

namespace vmgen::vm::disk {

// Opens a VHD image, validating the footer, dynamic header and BAT before anything else touches the file.
Result<std::unique_ptr<BlockDevice>> open_vhd(const std::string& path, bool read_only);
// Creates a fixed or dynamic VHD of `size` bytes (a non-zero multiple of 512, at most 2040 GiB); fails if
// the file exists. `block_size` (dynamic only) is a power of two from 4 KiB to 256 MiB.
Result<void> create_vhd(const std::string& path, uint64_t size, DiskType type,
    uint32_t block_size = protocols::disk::vhd_default_block_size);
// Creates a differencing VHD over `parent_path` (any VHD): same size, the parent's block size (2 MiB for a
// fixed parent), parent id and timestamp in the header, W2ru (relative) and W2ku (absolute) locators.
// Opening resolves the parent through the locators and the parent name, beside the child as a last resort,
// and refuses a parent whose id or size does not match. The parent is opened read-only.
Result<void> create_vhd_differencing(const std::string& path, const std::string& parent_path);

} // namespace vmgen::vm::disk
