// Pieces shared by the VHDX image code (vhdx.cc) and its log (vhdx_log.cc). Not a public interface.
#pragma once

#include "protocols/disk/vhdx.h"
#include "support/result.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace vmgen::vm::disk::vhdx_detail {

// CRC-32C of `data` computed as if the 4 bytes at `field` were zero.
uint32_t checksum_zeroed(std::span<const uint8_t> data, size_t field);
// Stores checksum_zeroed(data, field) at `field`.
void store_checksum(std::span<uint8_t> data, size_t field);
std::string guid_text(const protocols::disk::VhdxGuid& g);
Result<protocols::disk::VhdxGuid> random_guid();
Result<void> read_at(int fd, std::span<uint8_t> out, uint64_t offset);
Result<void> write_at(int fd, std::span<const uint8_t> in, uint64_t offset);
// Writes `header` (checksum recomputed) into header slot 0 (64 KiB) or 1 (128 KiB) and flushes.
Result<void> write_header(int fd, protocols::disk::VhdxHeader header, int slot);
// [MS-VHDX] 2.3.3: finds the active log sequence, validates all of it, applies it to the file, flushes, and
// writes a header with an empty log (log GUID zero) into the non-current slot. Writes nothing when anything in
// the active sequence is invalid. `file_size` is updated when the log extends the file.
Result<void> replay_log(int fd, const protocols::disk::VhdxHeader& header, int header_index, uint64_t& file_size);

// [MS-VHDX] 2.3: appends one log entry at `log_head` (wrapping to the log's start when it does not fit) that
// rewrites the 4 KiB `sector` at `file_offset`, and flushes it. The caller must have flushed everything earlier
// entries wrote (each entry's tail is the entry itself) and `file_size` (a multiple of 1 MiB) must be durable.
Result<void> append_log_sector(int fd, const protocols::disk::VhdxHeader& header, uint64_t& log_head,
                               uint64_t sequence, uint64_t file_offset, std::span<const uint8_t> sector,
                               uint64_t file_size);

} // namespace vmgen::vm::disk::vhdx_detail
