// [MS-VHDX] 2.3: log replay. Entries live in a circular buffer; the active sequence is the run of valid
// entries with consecutive sequence numbers ending at the entry with the greatest sequence number whose tail
// field leads, entry by entry, back to it. Everything in that run is validated before anything is written.
// Then writing entries: each one stands alone (its tail is itself), so qemu, which replays runs of consecutive
// entries whatever their tails say, ends at the same state.
#include "support/errno_error.h"
#include "vm/disk/vhdx/vhdx_internal.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

namespace vmgen::vm::disk::vhdx_detail {

using namespace vmgen::protocols::disk;

namespace {

// Replay refuses logs bigger than this (they are read into memory whole); writers use 1 MiB to a few MiB.
constexpr uint64_t max_log_length = 256 * vhdx_mib;
// Replay refuses writes past this file offset (64 TiB of payload plus generous metadata).
constexpr uint64_t max_file_offset = vhdx_max_virtual_size + (1ULL << 40);

struct Write {
    uint64_t file_offset;
    uint64_t length;
    const uint8_t* data; // nullptr: zeroes
    uint64_t leading;    // data descriptors: the sector's first 8 bytes
    uint32_t trailing;   // data descriptors: the sector's last 4 bytes
};

struct Entry {
    VhdxLogEntryHeader header;
    uint64_t log_offset;
    std::vector<Write> writes;
};

// Parses and checks the entry at `pos` of the log; an error says why it is not a valid entry.
Result<Entry> parse_entry(std::span<const uint8_t> log, uint64_t pos, const VhdxGuid& log_guid)
{
    if (log.size() - pos < sizeof(VhdxLogEntryHeader))
        return fail("no room");
    Entry e{};
    e.log_offset = pos;
    std::memcpy(&e.header, log.data() + pos, sizeof(e.header));
    const VhdxLogEntryHeader& h = e.header;
    if (h.signature != vhdx_log_entry_signature)
        return fail("no signature");
    if (h.entry_length == 0 || h.entry_length % vhdx_log_sector_size != 0 || h.entry_length > log.size() - pos)
        return fail("entry length {:#x}", h.entry_length);
    if (h.tail % vhdx_log_sector_size != 0 || h.tail >= log.size())
        return fail("tail {:#x}", h.tail);
    if (h.log_guid != log_guid)
        return fail("log GUID {}", guid_text(h.log_guid));
    auto bytes = log.subspan(pos, h.entry_length);
    if (checksum_zeroed(bytes, offsetof(VhdxLogEntryHeader, checksum)) != h.checksum)
        return fail("checksum");
    uint64_t descriptor_bytes = sizeof(VhdxLogEntryHeader) + uint64_t{h.descriptor_count} * vhdx_log_descriptor_size;
    uint64_t descriptor_area = (descriptor_bytes + vhdx_log_sector_size - 1) / vhdx_log_sector_size *
                               vhdx_log_sector_size;
    if (descriptor_area > h.entry_length)
        return fail("{} descriptors do not fit", h.descriptor_count);
    if (h.flushed_file_offset > max_file_offset || h.last_file_offset > max_file_offset ||
        h.flushed_file_offset % vhdx_mib != 0 || h.last_file_offset % vhdx_mib != 0)
        return fail("file offsets {:#x}/{:#x}", h.flushed_file_offset, h.last_file_offset);
    uint64_t data_pos = descriptor_area;
    for (uint32_t i = 0; i < h.descriptor_count; ++i) {
        const uint8_t* d = bytes.data() + sizeof(VhdxLogEntryHeader) + i * vhdx_log_descriptor_size;
        uint32_t signature;
        std::memcpy(&signature, d, sizeof(signature));
        if (signature == vhdx_log_zero_signature) {
            VhdxLogZeroDescriptor z;
            std::memcpy(&z, d, sizeof(z));
            if (z.sequence_number != h.sequence_number)
                return fail("descriptor {} sequence number", i);
            if (z.file_offset % vhdx_log_sector_size != 0 || z.zero_length % vhdx_log_sector_size != 0 ||
                z.file_offset > max_file_offset || z.zero_length > max_file_offset - z.file_offset)
                return fail("zero descriptor {}: {:#x} length {:#x}", i, z.file_offset, z.zero_length);
            e.writes.push_back({z.file_offset, z.zero_length, nullptr, 0, 0});
        } else if (signature == vhdx_log_desc_signature) {
            VhdxLogDataDescriptor dd;
            std::memcpy(&dd, d, sizeof(dd));
            if (dd.sequence_number != h.sequence_number)
                return fail("descriptor {} sequence number", i);
            if (dd.file_offset % vhdx_log_sector_size != 0 || dd.file_offset > max_file_offset)
                return fail("data descriptor {}: offset {:#x}", i, dd.file_offset);
            if (data_pos + vhdx_log_sector_size > h.entry_length)
                return fail("data descriptor {}: no data sector", i);
            VhdxLogDataSector s;
            std::memcpy(&s, bytes.data() + data_pos, sizeof(s));
            if (s.signature != vhdx_log_data_signature || s.sequence_high != (h.sequence_number >> 32) ||
                s.sequence_low != static_cast<uint32_t>(h.sequence_number))
                return fail("data sector {}: bad signature or sequence number", i);
            e.writes.push_back({dd.file_offset, vhdx_log_sector_size,
                                bytes.data() + data_pos + offsetof(VhdxLogDataSector, data), dd.leading_bytes,
                                dd.trailing_bytes});
            data_pos += vhdx_log_sector_size;
        } else {
            return fail("descriptor {}: signature {:#010x}", i, signature);
        }
    }
    if (data_pos != h.entry_length)
        return fail("entry length {:#x} does not match its descriptors ({:#x})", h.entry_length, data_pos);
    return e;
}

} // namespace

bool in_region_tables(uint64_t offset, uint64_t length)
{
    const uint64_t end = vhdx_region_table2_offset + vhdx_region_table_size;
    return offset >= vhdx_region_table1_offset && offset <= end && length <= end - offset;
}

Result<void> replay_log(int fd, const VhdxHeader& header, int header_index, uint64_t& file_size)
{
    if (header.log_length > max_log_length)
        return fail("log of {:#x} bytes is larger than supported ({:#x})", header.log_length, max_log_length);
    std::vector<uint8_t> log(header.log_length);
    TRY(read_at(fd, log, header.log_offset));

    std::map<uint64_t, Entry> valid; // by log offset
    for (uint64_t pos = 0; pos < log.size(); pos += vhdx_log_sector_size) {
        auto e = parse_entry(log, pos, header.log_guid);
        if (e)
            valid.emplace(pos, std::move(*e));
    }
    // Candidate heads, greatest sequence number first.
    std::vector<const Entry*> heads;
    for (const auto& [pos, e] : valid)
        heads.push_back(&e);
    std::sort(heads.begin(), heads.end(), [](const Entry* a, const Entry* b) {
        return a->header.sequence_number > b->header.sequence_number;
    });
    std::vector<const Entry*> sequence;
    for (const Entry* head : heads) {
        std::vector<const Entry*> run;
        uint64_t pos = head->header.tail;
        std::optional<uint64_t> expected;
        while (run.size() <= valid.size()) {
            auto it = valid.find(pos);
            if (it == valid.end())
                break;
            const Entry& e = it->second;
            if (expected && e.header.sequence_number != *expected)
                break;
            run.push_back(&e);
            if (&e == head)
                break;
            expected = e.header.sequence_number + 1;
            pos = (pos + e.header.entry_length) % log.size();
        }
        if (!run.empty() && run.back() == head) {
            sequence = std::move(run);
            break;
        }
    }

    if (!sequence.empty()) {
        const VhdxLogEntryHeader& head = sequence.back()->header;
        if (file_size < head.flushed_file_offset)
            return fail("file of {} bytes is shorter than the log says was flushed ({} bytes)", file_size,
                        head.flushed_file_offset);
        // Nothing may land in the log itself or the header section, but for the region tables (resizing moves
        // the BAT region through the log): the file identifier and the headers are never logged.
        for (const Entry* e : sequence)
            for (const Write& w : e->writes)
                if ((w.file_offset < vhdx_mib && !in_region_tables(w.file_offset, w.length)) ||
                    (w.file_offset < header.log_offset + header.log_length &&
                     header.log_offset < w.file_offset + w.length))
                    return fail("log entry {} writes {:#x} length {:#x} into the header section or the log",
                                e->header.sequence_number, w.file_offset, w.length);
        std::vector<uint8_t> sector(vhdx_log_sector_size);
        std::vector<uint8_t> zeroes(vhdx_mib);
        auto apply = [&](const Write& w) -> Result<void> {
            if (w.data == nullptr) {
                for (uint64_t done = 0; done < w.length;) {
                    uint64_t n = std::min<uint64_t>(w.length - done, zeroes.size());
                    TRY(write_at(fd, std::span<const uint8_t>(zeroes).subspan(0, n), w.file_offset + done));
                    done += n;
                }
                return {};
            }
            std::memcpy(sector.data(), &w.leading, sizeof(w.leading));
            std::memcpy(sector.data() + 8, w.data, 4084);
            std::memcpy(sector.data() + 4092, &w.trailing, sizeof(w.trailing));
            return write_at(fd, sector, w.file_offset);
        };
        // Region table 2 only once table 1 is durable: an interrupted replay leaves one of them valid (opening
        // checks them before replaying).
        auto in_table2 = [](const Write& w) {
            return w.file_offset >= vhdx_region_table2_offset && w.file_offset < vhdx_mib;
        };
        bool table2 = false;
        for (const Entry* e : sequence) {
            for (const Write& w : e->writes) {
                if (in_table2(w))
                    table2 = true;
                else
                    TRY(apply(w));
            }
        }
        if (table2) {
            if (::fdatasync(fd) != 0)
                return errno_failure("fdatasync");
            for (const Entry* e : sequence)
                for (const Write& w : e->writes)
                    if (in_table2(w))
                        TRY(apply(w));
        }
        if (file_size < head.last_file_offset) {
            if (::ftruncate(fd, static_cast<off_t>(head.last_file_offset)) != 0)
                return errno_failure("extending the file");
            file_size = head.last_file_offset;
        }
        if (::fdatasync(fd) != 0)
            return errno_failure("fdatasync");
    }
    VhdxHeader cleared = header;
    cleared.log_guid = VhdxGuid{};
    cleared.sequence_number += 1;
    TRY(write_header(fd, cleared, 1 - header_index));
    return {};
}

} // namespace vmgen::vm::disk::vhdx_detail


namespace vmgen::vm::disk::vhdx_detail {

namespace {

uint64_t descriptor_area(uint64_t descriptors)
{
    return (sizeof(VhdxLogEntryHeader) + descriptors * vhdx_log_descriptor_size + vhdx_log_sector_size - 1) /
           vhdx_log_sector_size * vhdx_log_sector_size;
}

// Bytes of the log one entry with `data_sectors` data descriptors and `zero_ranges` zero descriptors takes.
uint64_t log_entry_length(uint64_t data_sectors, uint64_t zero_ranges)
{
    return descriptor_area(data_sectors + zero_ranges) + data_sectors * vhdx_log_sector_size;
}

} // namespace

Result<void> append_log_entry(int fd, const VhdxHeader& header, uint64_t& log_head, uint64_t sequence,
                              std::span<const LogWrite> writes, uint64_t file_size)
{
    uint64_t data_sectors = 0;
    for (const LogWrite& w : writes) {
        const bool zero = w.data.empty();
        if (w.file_offset % vhdx_log_sector_size != 0 ||
            (zero ? w.zero_length == 0 || w.zero_length % vhdx_log_sector_size != 0
                  : w.data.size() != vhdx_log_sector_size))
            return fail("internal: bad log write at {:#x}", w.file_offset);
        data_sectors += zero ? 0 : 1;
    }
    const uint64_t entry_length = log_entry_length(data_sectors, writes.size() - data_sectors);
    if (writes.empty() || file_size % vhdx_mib != 0 || entry_length > header.log_length)
        return fail("internal: log entry of {} writes ({:#x} bytes, file size {:#x}) does not fit the log ({:#x} "
                    "bytes)", writes.size(), entry_length, file_size, header.log_length);
    if (log_head + entry_length > header.log_length)
        log_head = 0;
    std::vector<uint8_t> entry(entry_length);
    VhdxLogEntryHeader h{};
    h.signature = vhdx_log_entry_signature;
    h.entry_length = static_cast<uint32_t>(entry_length);
    // Each entry stands alone: when it is written, everything earlier entries wrote is already durable
    // (the caller flushes before appending), so the sequence starts at the entry itself.
    h.tail = static_cast<uint32_t>(log_head);
    h.sequence_number = sequence;
    h.descriptor_count = static_cast<uint32_t>(writes.size());
    h.log_guid = header.log_guid;
    // The file is never shorter than this while the log is in use (files are only truncated with an empty log).
    h.flushed_file_offset = file_size;
    h.last_file_offset = file_size;
    std::memcpy(entry.data(), &h, sizeof(h));
    uint64_t descriptor_at = sizeof(h);
    uint64_t data_at = descriptor_area(writes.size());
    for (const LogWrite& w : writes) {
        if (w.data.empty()) {
            VhdxLogZeroDescriptor z{};
            z.signature = vhdx_log_zero_signature;
            z.zero_length = w.zero_length;
            z.file_offset = w.file_offset;
            z.sequence_number = sequence;
            std::memcpy(entry.data() + descriptor_at, &z, sizeof(z));
        } else {
            VhdxLogDataDescriptor d{};
            d.signature = vhdx_log_desc_signature;
            std::memcpy(&d.trailing_bytes, w.data.data() + 4092, 4);
            std::memcpy(&d.leading_bytes, w.data.data(), 8);
            d.file_offset = w.file_offset;
            d.sequence_number = sequence;
            std::memcpy(entry.data() + descriptor_at, &d, sizeof(d));
            VhdxLogDataSector s{};
            s.signature = vhdx_log_data_signature;
            s.sequence_high = static_cast<uint32_t>(sequence >> 32);
            s.sequence_low = static_cast<uint32_t>(sequence);
            std::memcpy(s.data, w.data.data() + 8, sizeof(s.data));
            std::memcpy(entry.data() + data_at, &s, sizeof(s));
            data_at += vhdx_log_sector_size;
        }
        descriptor_at += vhdx_log_descriptor_size;
    }
    store_checksum(entry, offsetof(VhdxLogEntryHeader, checksum));
    TRY(write_at(fd, entry, header.log_offset + log_head));
    if (::fdatasync(fd) != 0)
        return errno_failure("fdatasync");
    log_head += entry_length;
    return {};
}

} // namespace vmgen::vm::disk::vhdx_detail
