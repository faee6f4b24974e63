// Pieces shared by the VHDX files: opening and validation (vhdx.cc), the open image (vhdx_disk.cc), the log
// (vhdx_log.cc), creation (vhdx_create.cc) and parents (vhdx_parent.cc). Not a public interface (the fuzz target
// calls parse_parent_locator directly).
#pragma once

#include "protocols/disk/vhdx.h"
#include "support/result.h"
#include "vm/disk/block_device.h"

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// Whether [offset, offset + length) lies inside the two region tables (the only part of the header section the
// log may change).
bool in_region_tables(uint64_t offset, uint64_t length);

// One change a log entry carries ([MS-VHDX] 2.3.1): a 4 KiB sector of new contents at `file_offset`, or, when
// `data` is empty, `zero_length` bytes (a multiple of 4 KiB) of zeroes there.
struct LogWrite {
    uint64_t file_offset = 0;
    std::span<const uint8_t> data;
    uint64_t zero_length = 0;
};
// [MS-VHDX] 2.3: appends one log entry holding `writes` at `log_head` (wrapping to the log's start when it does
// not fit) and flushes it: the entry is the commit of all its writes together. The caller must have flushed
// everything earlier entries wrote (each entry's tail is the entry itself) and `file_size` (a multiple of 1 MiB)
// must be durable. Fails when the entry is larger than the log.
Result<void> append_log_entry(int fd, const protocols::disk::VhdxHeader& header, uint64_t& log_head,
                              uint64_t sequence, std::span<const LogWrite> writes, uint64_t file_size);

// [MS-VHDX] 2.6.2.6: the VHDX parent locator, decoded (strings converted to UTF-8, paths as stored).
struct ParentLocator {
    protocols::disk::VhdxGuid linkage{};                 // parent_linkage: the parent's DataWriteGuid
    std::optional<protocols::disk::VhdxGuid> linkage2;   // parent_linkage2: an alternative one
    std::string relative_path;                           // empty when absent
    std::string volume_path;
    std::string absolute_win32_path;
};
// Decodes and validates a parent locator metadata item (hostile input: every offset and length is checked
// against the item, strings must be valid UTF-16LE without NULs, keys unique, parent_linkage and one path
// present, the locator type the VHDX one).
Result<ParentLocator> parse_parent_locator(std::span<const uint8_t> item);
// Encodes a VHDX parent locator item with these keys and values (in order), strings from UTF-8.
Result<std::vector<uint8_t>> build_parent_locator(const std::vector<std::pair<std::string, std::string>>& entries);
// "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" (either case) as parent_linkage values hold GUIDs.
std::optional<protocols::disk::VhdxGuid> parse_braced_guid(std::string_view text);

// What creating an image needs (vhdx_create.cc); the caller has validated the values.
struct CreateParams {
    uint64_t size = 0;
    uint32_t block_size = 0;
    uint32_t logical_sector_size = 512;
    uint32_t physical_sector_size = 4096;
    bool fixed = false;
    std::optional<protocols::disk::VhdxGuid> disk_id; // Virtual Disk ID (page 83 data); random when empty
    std::vector<uint8_t> parent_locator;              // non-empty: a differencing image with this locator item
};
// Creates the image file at `path` (which must not exist); removes what it made if creation fails.
Result<void> create_image_file(const std::string& path, const CreateParams& params);

class VhdxDisk;
// The files of a differencing chain being opened, child first (a file met twice is a loop).
struct OpenChain {
    struct Identity {
        dev_t dev;
        ino_t ino;
    };
    std::vector<Identity> files;
};
// Chains deeper than this are refused (Hyper-V allows 50 checkpoints per virtual machine).
inline constexpr size_t vhdx_max_chain_depth = 64;
// Opens the image at `path` (its parent too, read-only, for differencing images), validating everything.
Result<std::unique_ptr<VhdxDisk>> open_image(const std::string& path, bool read_only, OpenChain& chain);

struct ResolvedParent {
    std::unique_ptr<BlockDevice> disk;
    std::string path;
};
// Finds and opens the parent of the differencing image at `child_path` (vhdx_parent.cc): relative_path, then
// absolute_win32_path, then each path's file name beside the child; the first candidate that opens and matches
// the locator's linkage, the virtual size and the logical sector size wins.
Result<ResolvedParent> open_parent(const std::string& child_path, const ParentLocator& locator, uint64_t virtual_size,
                                   uint32_t logical_sector_size, OpenChain& chain);

} // namespace vmgen::vm::disk::vhdx_detail
