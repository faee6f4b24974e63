// Whole-image operations built on BlockDevice, shared by the CLI (new-vhd, convert-vhd, resize-vhd, merge-vhd,
// test-vhd) and the VMM: opening and creating an image by its file name, converting between formats, merging a
// differencing disk into its parent, resizing, and checking. Pure library code: no VMM dependency.
#pragma once

#include "support/result.h"
#include "vm/disk/block_device.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace vmgen::vm::disk {

// The format a file name implies: .vhd → VHD, .vhdx → VHDX (any case), anything else raw.
DiskFormat format_from_path(const std::string& path);
std::string_view format_name(DiskFormat format); // "VHD", "VHDX", "Raw"
std::string_view type_name(DiskType type);       // "Fixed", "Dynamic", "Differencing"

// Opens an existing image in the format its name implies (a missing file is an error, not a new raw image).
Result<std::unique_ptr<BlockDevice>> open_disk(const std::string& path, bool read_only);

struct CreateOptions {
    DiskType type = DiskType::Dynamic;  // raw images are always sparse files whatever this says
    uint64_t size = 0;                  // ignored for differencing disks (the parent's)
    uint32_t block_size = 0;            // 0: the format's default
    uint32_t logical_sector_size = 512; // 4096 only for VHDX
    std::string parent;                 // differencing disks
};
// Creates a new image in the format its name implies. Fails if the file exists; leaves nothing behind on failure.
Result<void> create_disk(const std::string& path, const CreateOptions& options);

// Called now and then with the virtual bytes processed so far and the total.
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

struct ConvertOptions {
    std::optional<DiskType> type;              // Fixed or Dynamic; default: the source's (Dynamic for differencing)
    uint32_t block_size = 0;                   // 0: the destination format's default
    std::optional<uint32_t> logical_sector_size; // default: the source's where the destination allows it
};
// Copies the virtual disk `source` (any format; a differencing chain is flattened) into a new image `destination`
// (format from its name) of the same size. Only stored ranges are read and all-zero chunks are not written, so
// the result is as sparse as the format allows. Reading and writing overlap (a reader thread). The destination
// is flushed before success is reported and removed on failure.
Result<void> convert_disk(const std::string& source, const std::string& destination, const ConvertOptions& options,
                          const ProgressFn& progress = {});

// Writes every range a differencing disk stores into its parent (which is opened read-write), flushes the
// parent, then deletes the child, as Hyper-V's Merge-VHD does. Returns the parent's path. The child's view never
// changes while this runs (only ranges the child itself stores are written to the parent), so an interrupted
// merge loses nothing: for VHD it can simply be run again; a VHDX child is refused afterwards because its parent's
// DataWriteGuid changed, but the parent then holds the merged data of every range copied so far.
Result<std::string> merge_disk(const std::string& child, const ProgressFn& progress = {});

// Resizes an image. Shrinking is refused while the part to be dropped stores data (extents that are not Zero),
// unless `allow_data_loss`.
Result<void> resize_disk(const std::string& path, uint64_t new_size, bool allow_data_loss);

struct OptimizeReport {
    uint64_t file_size_before = 0;
    uint64_t file_size_after = 0;
    uint64_t allocated_before = 0; // bytes the file system holds for the file (st_blocks; raw images are sparse)
    uint64_t allocated_after = 0;
    uint64_t zero_bytes_released = 0; // stored all-zero ranges discarded by the scan
};
// Hyper-V's Optimize-VHD: on a dynamic VHD/VHDX or a raw image, reads every stored range and discards the
// block-sized (raw: 64 KiB) pieces that hold only zeroes, then lets the format give the space back
// (BlockDevice::compact). Fixed images keep their size and differencing disks their blocks (a zero range in a
// child hides the parent's data); for those only compact() runs. The contents never change.
Result<OptimizeReport> optimize_disk(const std::string& path, const ProgressFn& progress = {});

struct CheckReport {
    uint64_t data_bytes = 0;   // stored in the image itself
    uint64_t zero_bytes = 0;   // unallocated / holes
    uint64_t parent_bytes = 0; // left to the parent (differencing)
};
// Hyper-V's Test-VHD: opens the image read-only (validating every structure of it and of its parents), then
// reads every range the image stores (not the unallocated ones), so a large sparse image checks quickly.
Result<CheckReport> check_disk(const std::string& path, const ProgressFn& progress = {});

} // namespace vmgen::vm::disk
