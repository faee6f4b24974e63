// Moving disk data between a BlockDevice and a window of the initiator's DataBuffer without an intermediate copy:
// the window is walked as host segments and each run of whole sectors inside a segment goes straight to
// BlockDevice::read/write. A sector split across two segments (a guest buffer that is not sector aligned on the
// host, or 4096-byte sectors over scattered 4 KiB pages with an offset) goes through a one-sector bounce buffer.
// Internal to vm/scsi.
#pragma once

#include "vm/disk/block_device.h"
#include "vm/scsi/scsi_lun.h"

#include <cstdint>
#include <optional>

namespace vmgen::vm::scsi {

struct TransferResult {
    // WouldBlock: only with Blocking::no, the disk could not do it without waiting (redo it blocking).
    enum class Failure : uint8_t { None, Disk, Buffer, WouldBlock };
    Failure failure = Failure::None;
    uint64_t done = 0; // bytes of the transfer completed before the failure (all of them on success)
    std::optional<Error> error;

    [[nodiscard]] bool ok() const { return failure == Failure::None; }
};

// Blocking::no uses BlockDevice::read_nowait/write_nowait and stops at the first range that would block.
enum class Blocking : uint8_t { yes, no };

// Preconditions (the callers check them against the CDB): disk_offset and length are multiples of the device's
// logical sector size and lie inside the disk; [buffer_offset, buffer_offset + length) lies inside the buffer.
TransferResult read_to_buffer(disk::BlockDevice& disk, uint64_t disk_offset, uint64_t length, DataBuffer& buffer,
    uint64_t buffer_offset, Blocking blocking = Blocking::yes);
TransferResult write_from_buffer(disk::BlockDevice& disk, uint64_t disk_offset, uint64_t length, DataBuffer& buffer,
    uint64_t buffer_offset, Blocking blocking = Blocking::yes);

} // namespace vmgen::vm::scsi
