// A test initiator for the SCSI LUN tests: builds CDBs, runs them with Data-In / Data-Out buffers (with guard
// bytes after the declared buffer that must never change) and returns the outcome and the data.
#pragma once

#include "protocols/scsi/mmc.h"
#include "protocols/scsi/sbc.h"
#include "vm/scsi/scsi_lun.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace vmgen::vm::scsi::testing {

namespace op = protocols::scsi::opcode;

struct Reply {
    ScsiOutcome outcome;
    std::vector<uint8_t> data; // the Data-In bytes transferred

    [[nodiscard]] bool good() const { return outcome.good(); }
    [[nodiscard]] uint8_t key() const { return outcome.sense.key(); }
    [[nodiscard]] uint8_t asc() const { return outcome.sense.asc(); }
    [[nodiscard]] uint8_t ascq() const { return outcome.sense.ascq(); }
};

inline constexpr uint8_t guard_byte = 0xa5;
inline constexpr size_t guard_size = 64;

// Runs `cdb` with a buffer of `length` bytes split into segments of the given sizes (their sum is the length;
// empty: one segment), followed in memory by guard bytes. Data-Out buffers hold `out`.
inline Reply run(ScsiLun& lun, const std::vector<uint8_t>& cdb, DataDirection direction, uint32_t length,
    const std::vector<uint8_t>& out = {}, const std::vector<size_t>& segments = {})
{
    std::vector<uint8_t> memory(length + guard_size, guard_byte);
    if (direction == DataDirection::Out)
        std::copy(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(std::min<size_t>(out.size(), length)),
            memory.begin());
    std::vector<std::span<uint8_t>> spans;
    if (segments.empty()) {
        spans.emplace_back(memory.data(), length);
    } else {
        size_t at = 0;
        for (const size_t size : segments) {
            spans.emplace_back(memory.data() + at, size);
            at += size;
        }
        EXPECT_EQ(at, length) << "segment sizes must add up to the length";
    }
    SpanDataBuffer buffer(std::move(spans));
    Reply reply;
    reply.outcome = lun.execute(ScsiCommand::make(cdb, direction, length), buffer);
    for (size_t i = length; i < memory.size(); ++i) {
        if (memory[i] != guard_byte) {
            ADD_FAILURE() << "guard byte " << (i - length) << " past the buffer was overwritten";
            break;
        }
    }
    EXPECT_LE(reply.outcome.transferred, length) << "transferred more than the buffer holds";
    if (direction == DataDirection::In)
        reply.data.assign(memory.begin(),
            memory.begin() + static_cast<std::ptrdiff_t>(std::min<uint64_t>(reply.outcome.transferred, length)));
    return reply;
}

inline Reply data_in(
    ScsiLun& lun, const std::vector<uint8_t>& cdb, uint32_t length, const std::vector<size_t>& segments = {})
{
    return run(lun, cdb, DataDirection::In, length, {}, segments);
}
inline Reply data_out(ScsiLun& lun, const std::vector<uint8_t>& cdb, const std::vector<uint8_t>& out,
    const std::vector<size_t>& segments = {})
{
    return run(lun, cdb, DataDirection::Out, static_cast<uint32_t>(out.size()), out, segments);
}
inline Reply no_data(ScsiLun& lun, const std::vector<uint8_t>& cdb)
{
    return run(lun, cdb, DataDirection::None, 0);
}

// ---- big-endian access to response bytes ----
inline uint16_t be16(const std::vector<uint8_t>& d, size_t at)
{
    return static_cast<uint16_t>((d.at(at) << 8) | d.at(at + 1));
}
inline uint32_t be32(const std::vector<uint8_t>& d, size_t at)
{
    return (uint32_t { be16(d, at) } << 16) | be16(d, at + 2);
}
inline uint64_t be64(const std::vector<uint8_t>& d, size_t at)
{
    return (uint64_t { be32(d, at) } << 32) | be32(d, at + 4);
}
inline void put16(std::vector<uint8_t>& d, size_t at, uint64_t v)
{
    d.at(at) = static_cast<uint8_t>(v >> 8);
    d.at(at + 1) = static_cast<uint8_t>(v);
}
inline void put32(std::vector<uint8_t>& d, size_t at, uint64_t v)
{
    put16(d, at, v >> 16);
    put16(d, at + 2, v & 0xffff);
}
inline void put64(std::vector<uint8_t>& d, size_t at, uint64_t v)
{
    put32(d, at, v >> 32);
    put32(d, at + 4, v & 0xffffffff);
}

// ---- CDBs ----
inline std::vector<uint8_t> cdb6(uint8_t opcode, uint8_t b1 = 0, uint8_t b2 = 0, uint8_t b3 = 0, uint8_t b4 = 0)
{
    return { opcode, b1, b2, b3, b4, 0 };
}
inline std::vector<uint8_t> test_unit_ready()
{
    return cdb6(op::test_unit_ready);
}
inline std::vector<uint8_t> inquiry(bool evpd, uint8_t page, uint16_t allocation)
{
    return { op::inquiry, static_cast<uint8_t>(evpd ? 1 : 0), page, static_cast<uint8_t>(allocation >> 8),
        static_cast<uint8_t>(allocation), 0 };
}
inline std::vector<uint8_t> request_sense(uint8_t allocation)
{
    return cdb6(op::request_sense, 0, 0, 0, allocation);
}
inline std::vector<uint8_t> report_luns(uint32_t allocation)
{
    std::vector<uint8_t> c(12, 0);
    c[0] = op::report_luns;
    put32(c, 6, allocation);
    return c;
}
inline std::vector<uint8_t> read_capacity_10()
{
    return std::vector<uint8_t> { op::read_capacity_10, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
}
inline std::vector<uint8_t> read_capacity_16(uint32_t allocation)
{
    std::vector<uint8_t> c(16, 0);
    c[0] = op::service_action_in_16;
    c[1] = protocols::scsi::service_action_read_capacity_16;
    put32(c, 10, allocation);
    return c;
}
inline std::vector<uint8_t> mode_sense_6(uint8_t page, uint8_t allocation, bool dbd = false, uint8_t control = 0)
{
    return cdb6(op::mode_sense_6, dbd ? 0x08 : 0, static_cast<uint8_t>(page | (control << 6)), 0, allocation);
}
inline std::vector<uint8_t> mode_sense_10(
    uint8_t page, uint16_t allocation, bool dbd = false, bool llbaa = false, uint8_t control = 0)
{
    std::vector<uint8_t> c(10, 0);
    c[0] = op::mode_sense_10;
    c[1] = static_cast<uint8_t>((dbd ? 0x08 : 0) | (llbaa ? 0x10 : 0));
    c[2] = static_cast<uint8_t>(page | (control << 6));
    put16(c, 7, allocation);
    return c;
}
inline std::vector<uint8_t> mode_select_6(uint8_t length, uint8_t flags = 0x10)
{
    return cdb6(op::mode_select_6, flags, 0, 0, length);
}
inline std::vector<uint8_t> mode_select_10(uint16_t length, uint8_t flags = 0x10)
{
    std::vector<uint8_t> c(10, 0);
    c[0] = op::mode_select_10;
    c[1] = flags;
    put16(c, 7, length);
    return c;
}
inline std::vector<uint8_t> rw6(uint8_t opcode, uint32_t lba, uint8_t count)
{
    return { opcode, static_cast<uint8_t>((lba >> 16) & 0x1f), static_cast<uint8_t>(lba >> 8),
        static_cast<uint8_t>(lba), count, 0 };
}
inline std::vector<uint8_t> rw10(uint8_t opcode, uint32_t lba, uint16_t count, uint8_t flags = 0)
{
    std::vector<uint8_t> c(10, 0);
    c[0] = opcode;
    c[1] = flags;
    put32(c, 2, lba);
    put16(c, 7, count);
    return c;
}
inline std::vector<uint8_t> rw12(uint8_t opcode, uint32_t lba, uint32_t count, uint8_t flags = 0)
{
    std::vector<uint8_t> c(12, 0);
    c[0] = opcode;
    c[1] = flags;
    put32(c, 2, lba);
    put32(c, 6, count);
    return c;
}
inline std::vector<uint8_t> rw16(uint8_t opcode, uint64_t lba, uint32_t count, uint8_t flags = 0)
{
    std::vector<uint8_t> c(16, 0);
    c[0] = opcode;
    c[1] = flags;
    put64(c, 2, lba);
    put32(c, 10, count);
    return c;
}
inline std::vector<uint8_t> unmap(uint16_t length, uint8_t flags = 0)
{
    std::vector<uint8_t> c(10, 0);
    c[0] = op::unmap;
    c[1] = flags;
    put16(c, 7, length);
    return c;
}
// An UNMAP parameter list with these (lba, blocks) descriptors.
inline std::vector<uint8_t> unmap_list(const std::vector<std::pair<uint64_t, uint32_t>>& ranges)
{
    std::vector<uint8_t> list(8 + 16 * ranges.size(), 0);
    put16(list, 0, list.size() - 2);
    put16(list, 2, 16 * ranges.size());
    for (size_t i = 0; i < ranges.size(); ++i) {
        put64(list, 8 + 16 * i, ranges[i].first);
        put32(list, 16 + 16 * i, ranges[i].second);
    }
    return list;
}
inline std::vector<uint8_t> start_stop_unit(uint8_t flags)
{
    return cdb6(op::start_stop_unit, 0, 0, 0, flags);
}
inline std::vector<uint8_t> prevent_allow(uint8_t prevent)
{
    return cdb6(op::prevent_allow_medium_removal, 0, 0, 0, prevent);
}

inline std::vector<uint8_t> get_configuration(uint8_t rt, uint16_t start, uint16_t allocation)
{
    std::vector<uint8_t> c(10, 0);
    c[0] = op::get_configuration;
    c[1] = rt;
    put16(c, 2, start);
    put16(c, 7, allocation);
    return c;
}
inline std::vector<uint8_t> get_event_status(uint8_t classes, uint16_t allocation, bool polled = true)
{
    std::vector<uint8_t> c(10, 0);
    c[0] = op::get_event_status_notification;
    c[1] = polled ? 1 : 0;
    c[4] = classes;
    put16(c, 7, allocation);
    return c;
}
inline std::vector<uint8_t> read_toc(bool msf, uint8_t format, uint8_t track, uint16_t allocation, uint8_t control = 0)
{
    std::vector<uint8_t> c(10, 0);
    c[0] = op::read_toc_pma_atip;
    c[1] = msf ? 0x02 : 0;
    c[2] = format;
    c[6] = track;
    put16(c, 7, allocation);
    c[9] = control;
    return c;
}
inline std::vector<uint8_t> read_disc_information(uint16_t allocation)
{
    std::vector<uint8_t> c(10, 0);
    c[0] = op::read_disc_information;
    put16(c, 7, allocation);
    return c;
}
inline std::vector<uint8_t> read_track_information(uint8_t type, uint32_t address, uint16_t allocation)
{
    std::vector<uint8_t> c(10, 0);
    c[0] = op::read_track_information;
    c[1] = type;
    put32(c, 2, address);
    put16(c, 7, allocation);
    return c;
}
inline std::vector<uint8_t> read_dvd_structure(uint8_t format, uint16_t allocation, uint8_t layer = 0)
{
    std::vector<uint8_t> c(12, 0);
    c[0] = op::read_dvd_structure;
    c[6] = layer;
    c[7] = format;
    put16(c, 8, allocation);
    return c;
}
inline std::vector<uint8_t> get_performance(uint8_t flags, uint16_t descriptors, uint8_t type = 0)
{
    std::vector<uint8_t> c(12, 0);
    c[0] = op::get_performance;
    c[1] = flags;
    put16(c, 8, descriptors);
    c[10] = type;
    return c;
}

// A recognisable byte pattern: byte i of the disk holds pattern_byte(i, seed).
inline uint8_t pattern_byte(uint64_t i, uint8_t seed)
{
    return static_cast<uint8_t>((i * 131 + (i >> 9) * 7 + seed) & 0xff);
}
inline std::vector<uint8_t> pattern(uint64_t offset, size_t length, uint8_t seed)
{
    std::vector<uint8_t> v(length);
    for (size_t i = 0; i < length; ++i)
        v[i] = pattern_byte(offset + i, seed);
    return v;
}

} // namespace vmgen::vm::scsi::testing
