// The VHD file's layout, as functions over the wire structs (protocols/disk/vhd.h) that do no file I/O: the
// footer (validating, filling, resizing it), where the metadata of a dynamic or differencing disk lies, and
// the plan for compacting one: which blocks move where so that the file can end right after its last block
// (VhdDisk::compact in vhd_disk.cc carries the plan out, crash-safely).
#pragma once

#include "protocols/disk/vhd.h"
#include "support/result.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace vmgen::vm::disk {

// The footer's unique id (or the header's parent id) as text: xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
std::string vhd_uuid_text(const uint8_t (&id)[16]);
// Validates a footer read from a file: cookie, checksum, version, size (a non-zero multiple of 512 up to
// 2040 GiB) and type.
Result<void> check_vhd_footer(const protocols::disk::VhdFooter& footer);
// Sets the footer's size, the CHS geometry the spec's algorithm derives from it, and its checksum.
void set_vhd_footer_size(protocols::disk::VhdFooter& footer, uint64_t size);
// A new footer: Hyper-V's creator, the current time, a random (version 4) unique id.
void fill_vhd_footer(protocols::disk::VhdFooter& footer, uint64_t size, uint32_t type, uint64_t data_offset);

// A byte range [begin, end) of the image file.
struct VhdFileRange {
    uint64_t begin = 0;
    uint64_t end = 0;
    friend bool operator==(const VhdFileRange&, const VhdFileRange&) = default;
};

// The metadata of a dynamic or differencing VHD whose trailing footer is at `footer_offset`, as opening
// validates it: the footer copy at 0, the dynamic header, the first `entries` BAT entries and, for a
// differencing disk, the data of every parent locator that lies inside [0, footer_offset). Unsorted,
// unrounded.
std::vector<VhdFileRange> vhd_metadata_ranges(const protocols::disk::VhdFooter& footer,
    const protocols::disk::VhdDynamicHeader& header, uint64_t entries, uint64_t footer_offset);

struct VhdBlockMove {
    size_t index = 0; // BAT entry
    uint64_t from = 0; // file offsets of the block (its sector bitmap)
    uint64_t to = 0;
    friend bool operator==(const VhdBlockMove&, const VhdBlockMove&) = default;
};

struct VhdCompaction {
    // In order. Each destination lies wholly below its source and is free when its move runs: clear of the
    // reserved ranges, of every block (where it is before the move) and of earlier moves' destinations.
    std::vector<VhdBlockMove> moves;
    // Where the trailing footer goes once the blocks moved: the end of the last block or reserved range
    // (at most the current footer offset; equal to it when there is nothing to give back).
    uint64_t footer_offset = 0;
};

// Plans a compaction. `reserved`: file ranges blocks must stay clear of (the metadata; rounded out to whole
// sectors here). `bat`: the blocks' sector numbers, vhd_bat_unallocated for none. `slot`: a block's bytes
// (sector bitmap and data). `data_begin`: no block moves below it (the end of the BAT). `footer_offset`: the
// current trailing footer's offset; every block and reserved range lies below it. The block stored last in
// the file moves first, into the lowest free space that holds it; moves stop at the first block that no free
// space below it can hold (none below a lower one can either) or that ends below the reserved ranges and the
// blocks moved so far (moving it would not shorten the file).
VhdCompaction plan_vhd_compaction(std::vector<VhdFileRange> reserved, std::span<const uint32_t> bat, uint64_t slot,
    uint64_t data_begin, uint64_t footer_offset);

} // namespace vmgen::vm::disk
