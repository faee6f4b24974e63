// BlockDevice: the one interface every virtual disk format implements (raw, VHD, VHDX), used by the CLI
// (new-vhd, convert-vhd, ...) and by the VMM's storage devices alike. Pure library code: no VMM dependency.
//
// Offsets and lengths are in bytes and must be multiples of logical_sector_size(); a request past the end
// is an error. Implementations are safe to call from several threads at once (they lock what they must).
// Data written is visible to later reads at once; it is durable only after flush() returns (a FUA write is
// write() followed by flush() of that range — formats may do better).
#pragma once

#include "support/result.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace vmgen::vm::disk {

enum class DiskFormat { Raw, Vhd, Vhdx };
enum class DiskType { Fixed, Dynamic, Differencing };

struct DiskInfo {
    DiskFormat format = DiskFormat::Raw;
    DiskType type = DiskType::Fixed;
    uint64_t virtual_size = 0;          // bytes the guest sees
    uint64_t file_size = 0;             // bytes the image file occupies (its length)
    uint32_t logical_sector_size = 512; // 512 or 4096
    uint32_t physical_sector_size = 512;
    uint32_t block_size = 0;            // dynamic/differencing allocation unit; 0 for fixed/raw
    std::string parent_path;            // differencing: the resolved parent
    std::string identifier;             // VHD/VHDX unique id as text, "" for raw
};

// Where the bytes of a range of the virtual disk come from, as this image stores them.
enum class ExtentKind {
    Data,   // stored in this image's file (may still hold zeroes)
    Zero,   // reads as zeroes and nothing is stored for it (unallocated, unmapped, a hole)
    Parent, // differencing images: read from the parent
};

struct Extent {
    uint64_t offset = 0;
    uint64_t length = 0;
    ExtentKind kind = ExtentKind::Data;
    friend bool operator==(const Extent&, const Extent&) = default;
};

class BlockDevice {
public:
    virtual ~BlockDevice() = default;

    [[nodiscard]] virtual const DiskInfo& info() const = 0;
    [[nodiscard]] uint64_t size() const { return info().virtual_size; }
    [[nodiscard]] uint32_t sector_size() const { return info().logical_sector_size; }
    [[nodiscard]] virtual bool read_only() const = 0;

    virtual Result<void> read(uint64_t offset, std::span<uint8_t> out) = 0;
    virtual Result<void> write(uint64_t offset, std::span<const uint8_t> in) = 0;

    // The same read or write, done only if it can complete without waiting for the storage or for another
    // caller's lock: for a thread that must stay responsive (a VMBus channel's worker) and hands the request to
    // a thread that may block when the answer is false. true: done, exactly as read()/write() would have done
    // it. false: it would block; part of the range may have been moved already, so the caller must redo the
    // whole request with read()/write(). Errors as read()/write(). Reads come from the page cache only
    // (preadv2 RWF_NOWAIT). Writes are buffered writes that never wait for the device: RWF_NOWAIT where the
    // file system takes it, else a plain buffered pwrite (Linux 6.1-6.18 ext4), which can only wait while the
    // kernel throttles a writer with too much dirty data; writes that need a metadata update (allocating a
    // block) answer false. The default answers false: the format has no such path.
    virtual Result<bool> read_nowait(uint64_t offset, std::span<uint8_t> out);
    virtual Result<bool> write_nowait(uint64_t offset, std::span<const uint8_t> in);
    // Makes every completed write durable (data and metadata) before returning.
    virtual Result<void> flush() = 0;
    // The guest no longer needs [offset, offset + length): the range reads as zeroes afterwards and the
    // format may release the space (punch holes, unmap blocks). Formats that cannot release space write zeroes.
    virtual Result<void> discard(uint64_t offset, uint64_t length) = 0;

    // Describes [offset, offset + length) (sector-aligned, inside the disk) as consecutive extents that cover
    // it exactly, adjacent extents of the same kind merged. The granularity is the format's (blocks, sector
    // bitmaps, file holes). Tools use it to copy, check or merge only what is stored. The default says
    // "all Data", which is always correct and never cheap.
    virtual Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length);

    // Changes the virtual size to `new_size` (a non-zero multiple of the logical sector size). Growing adds
    // a range that reads as zeroes; shrinking drops everything past the new end. Formats that cannot say so.
    virtual Result<void> resize(uint64_t new_size);

    // Gives back to the file system the file space of ranges that no longer store data (discarded or unmapped
    // blocks): moves stored blocks from the end of the file into the holes and truncates, or punches holes.
    // Leaves the virtual disk's contents unchanged; crash-safe like every other metadata update. The default
    // does nothing (nothing to reclaim that the format can give back cheaply).
    virtual Result<void> compact() { return {}; }

    // Flushes and releases what the image holds open, reporting a failed final write (the destructor closes
    // too but can only log). No other call may follow.
    virtual Result<void> close() { return read_only() ? Result<void>{} : flush(); }
};

// Appends `e` to `out`, merging it with the last extent when they touch and have the same kind.
void append_extent(std::vector<Extent>& out, Extent e);

} // namespace vmgen::vm::disk
