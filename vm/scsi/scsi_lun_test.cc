// The building blocks: data buffers, the zero-copy block transfer with its bounce path, sense data, and the
// target-level answers (REPORT LUNS, INQUIRY of an absent LUN).
#include "vm/scsi/block_transfer.h"
#include "vm/scsi/inquiry.h"
#include "vm/scsi/memory_disk.h"
#include "vm/scsi/scsi_lun.h"
#include "vm/scsi/scsi_request.h"
#include "vm/scsi/scsi_test_initiator.h"

#include <gtest/gtest.h>

#include <numeric>

namespace vmgen::vm::scsi {
namespace {

using namespace testing;
namespace wire = protocols::scsi;

TEST(ScsiLunTest, SpanDataBufferWalksWindowsAcrossSegments)
{
    std::vector<uint8_t> memory(100);
    std::iota(memory.begin(), memory.end(), 0);
    SpanDataBuffer buffer({ std::span<uint8_t>(memory.data(), 10), std::span<uint8_t>(memory.data() + 10, 0),
        std::span<uint8_t>(memory.data() + 10, 50), std::span<uint8_t>(memory.data() + 60, 40) });
    EXPECT_EQ(buffer.size(), 100u);
    std::vector<size_t> sizes;
    ASSERT_TRUE(buffer.for_each_segment(5, 60, [&](std::span<uint8_t> s) -> Result<void> {
        sizes.push_back(s.size());
        return {};
    }));
    EXPECT_EQ(sizes, (std::vector<size_t> { 5, 50, 5 }));
    std::vector<uint8_t> out(20);
    ASSERT_TRUE(buffer.copy_out(55, out));
    EXPECT_EQ(out[0], 55);
    EXPECT_EQ(out[19], 74);
    EXPECT_FALSE(buffer.copy_out(90, out)) << "window past the end";
    EXPECT_FALSE(buffer.for_each_segment(101, 0, [](std::span<uint8_t>) -> Result<void> { return {}; }));
    const std::vector<uint8_t> in(3, 0xee);
    ASSERT_TRUE(buffer.copy_in(98, std::span<const uint8_t>(in).first(2)));
    EXPECT_EQ(memory[99], 0xee);
}

// A DataBuffer that misbehaves: hands out more bytes than asked for, or fails part-way.
class LyingBuffer final : public DataBuffer {
public:
    explicit LyingBuffer(bool overlong)
        : m_memory(8192)
        , m_overlong(overlong)
    {
    }
    uint64_t size() const override { return 4096; }
    Result<void> for_each_segment(uint64_t offset, uint64_t length, const SegmentFn& fn) override
    {
        if (m_overlong)
            return fn(std::span<uint8_t>(m_memory.data() + offset, length + 512));
        if (length > 512)
            TRY(fn(std::span<uint8_t>(m_memory.data() + offset, 512)));
        return fail("guest page {:#x} is not RAM", 0x1234);
    }

private:
    std::vector<uint8_t> m_memory;
    bool m_overlong;
};

TEST(ScsiLunTest, CopiesRefuseABufferThatHandsOutTooMuch)
{
    LyingBuffer overlong(true);
    std::vector<uint8_t> out(100);
    EXPECT_FALSE(overlong.copy_out(0, out));
    EXPECT_FALSE(overlong.copy_in(0, out));
    MemoryDisk disk(1 << 20, 512);
    EXPECT_EQ(read_to_buffer(disk, 0, 1024, overlong, 0).failure, TransferResult::Failure::Buffer);
    EXPECT_EQ(write_from_buffer(disk, 0, 1024, overlong, 0).failure, TransferResult::Failure::Buffer);
}

TEST(ScsiLunTest, BufferFaultPartWayIsReported)
{
    LyingBuffer faulty(false);
    MemoryDisk disk(1 << 20, 512);
    const auto result = read_to_buffer(disk, 0, 2048, faulty, 0);
    EXPECT_EQ(result.failure, TransferResult::Failure::Buffer);
    EXPECT_EQ(result.done, 512u);
    ASSERT_TRUE(result.error);
    EXPECT_NE(result.error->message().find("not RAM"), std::string::npos);
}

// Reads and writes through buffers split at every awkward place: odd offsets, pieces smaller than a sector,
// sectors straddling three segments.
void check_transfers(uint32_t sector, const std::vector<size_t>& segments)
{
    const size_t length = std::accumulate(segments.begin(), segments.end(), size_t { 0 });
    ASSERT_EQ(length % sector, 0u);
    MemoryDisk disk(1 << 20, sector);
    const uint64_t disk_offset = 3 * sector;
    for (size_t i = 0; i < disk.bytes().size(); ++i)
        disk.bytes()[i] = pattern_byte(i, 1);

    std::vector<uint8_t> memory(length + 7, 0);
    std::vector<std::span<uint8_t>> spans;
    size_t at = 3; // the buffer starts at an odd host address
    for (const size_t size : segments) {
        spans.emplace_back(memory.data() + at, size);
        at += size;
    }
    SpanDataBuffer buffer(spans);
    const auto read = read_to_buffer(disk, disk_offset, length, buffer, 0);
    ASSERT_TRUE(read.ok()) << (read.error ? read.error->message() : "");
    EXPECT_EQ(read.done, length);
    EXPECT_EQ(std::vector<uint8_t>(memory.begin() + 3, memory.begin() + 3 + static_cast<std::ptrdiff_t>(length)),
        pattern(disk_offset, length, 1));

    for (size_t i = 0; i < length; ++i)
        memory[3 + i] = pattern_byte(i, 9);
    const auto write = write_from_buffer(disk, disk_offset, length, buffer, 0);
    ASSERT_TRUE(write.ok()) << (write.error ? write.error->message() : "");
    EXPECT_EQ(std::vector<uint8_t>(disk.bytes().begin() + static_cast<std::ptrdiff_t>(disk_offset),
                  disk.bytes().begin() + static_cast<std::ptrdiff_t>(disk_offset + length)),
        pattern(0, length, 9));
    EXPECT_EQ(disk.bytes()[disk_offset - 1], pattern_byte(disk_offset - 1, 1)) << "neighbour before untouched";
    EXPECT_EQ(disk.bytes()[disk_offset + length], pattern_byte(disk_offset + length, 1)) << "neighbour after untouched";
}

TEST(ScsiLunTest, BlockTransferHandlesEverySegmentShape)
{
    check_transfers(512, { 4096 });
    check_transfers(512, { 512, 512, 1024 });
    check_transfers(512, { 100, 412, 1, 1, 510, 1024 });
    check_transfers(512, { 3584, 4096, 512 });
    check_transfers(512, { 7, 1017 });
    check_transfers(4096, { 4096 });
    check_transfers(4096, { 3584, 4096, 512 }); // a guest buffer at page offset 0x200 over scattered pages
    check_transfers(4096, { 1000, 1000, 1000, 1096, 8192 });
    check_transfers(4096, { 1, 4095, 4095, 1 });
}

TEST(ScsiLunTest, BlockTransferReportsTheFailingOffset)
{
    MemoryDisk disk(1 << 20, 512);
    std::vector<uint8_t> memory(8192);
    SpanDataBuffer buffer(memory);
    disk.fail_reads_at(4096 + 3 * 512);
    auto read = read_to_buffer(disk, 4096, 8192, buffer, 0);
    EXPECT_EQ(read.failure, TransferResult::Failure::Disk);
    EXPECT_EQ(read.done, 0u) << "one direct read covers the whole segment";

    // Page-sized segments: the failure lands in the second page.
    std::vector<std::span<uint8_t>> pages
        = { std::span<uint8_t>(memory.data(), 4096), std::span<uint8_t>(memory.data() + 4096, 4096) };
    SpanDataBuffer paged(pages);
    disk.fail_reads_at(4096 + 4096 + 512);
    read = read_to_buffer(disk, 4096, 8192, paged, 0);
    EXPECT_EQ(read.failure, TransferResult::Failure::Disk);
    EXPECT_EQ(read.done, 4096u);
    disk.fail_writes_at(4096 + 512);
    auto write = write_from_buffer(disk, 4096, 8192, paged, 0);
    EXPECT_EQ(write.failure, TransferResult::Failure::Disk);
    EXPECT_EQ(write.done, 0u);
}

TEST(ScsiLunTest, SenseDataIsFixedFormat)
{
    const SenseData data = SenseData::make(wire::sense_key::illegal_request, wire::asc::lba_out_of_range);
    EXPECT_EQ(data.bytes.size(), 18u);
    EXPECT_EQ(data.bytes[0], 0x70);
    EXPECT_EQ(data.bytes[2], 0x05);
    EXPECT_EQ(data.bytes[7], 10);
    EXPECT_EQ(data.asc(), 0x21);
    EXPECT_FALSE(data.information_valid());
    const ScsiOutcome field = sense::invalid_field_in_cdb(7, 3);
    EXPECT_EQ(field.sense.bytes[15], 0x80 | 0x40 | 0x08 | 3);
    EXPECT_EQ(field.sense.field_pointer(), 7);
    const ScsiOutcome medium = sense::medium_error(wire::asc::unrecovered_read_error, 0x12345678, Error("eio"));
    EXPECT_TRUE(medium.sense.information_valid());
    EXPECT_EQ(medium.sense.information(), 0x12345678u);
    EXPECT_EQ(medium.sense.key(), wire::sense_key::medium_error);
    EXPECT_FALSE(sense::medium_error(wire::asc::write_error, 1ull << 32, Error("eio")).sense.information_valid());
    EXPECT_EQ(SenseData::none().key(), 0);
}

TEST(ScsiLunTest, CommandKeepsAtMostSixteenBytes)
{
    const std::vector<uint8_t> long_cdb(17, 0x28);
    EXPECT_EQ(ScsiCommand::make(long_cdb, DataDirection::In, 10).cdb_length, 0);
    const std::vector<uint8_t> cdb = { 0x12, 0, 0, 0, 36, 0 };
    const auto command = ScsiCommand::make(cdb, DataDirection::In, 36);
    EXPECT_EQ(command.cdb_length, 6);
    EXPECT_EQ(command.opcode(), 0x12);
}

class TargetLun final : public ScsiLun {
public:
    ScsiOutcome execute(const ScsiCommand& command, DataBuffer& data) override
    {
        if (command.opcode() == wire::opcode::report_luns)
            return report_luns(command, data, m_luns);
        return inquiry_for_absent_lun(command, data);
    }
    uint8_t peripheral_type() const override { return 0x1f; }
    std::vector<uint16_t> m_luns { 0, 1, 300 };
};

TEST(ScsiLunTest, ReportLunsForATarget)
{
    TargetLun target;
    auto reply = data_in(target, report_luns(512 * 8), 512 * 8);
    ASSERT_TRUE(reply.good());
    ASSERT_EQ(reply.data.size(), 8u + 3 * 8);
    EXPECT_EQ(be32(reply.data, 0), 24u);
    EXPECT_EQ(reply.data[8 + 1], 0);
    EXPECT_EQ(reply.data[16 + 1], 1);
    EXPECT_EQ(reply.data[24], 0x41) << "LUN 300: flat space addressing";
    EXPECT_EQ(reply.data[25], 300 & 0xff);

    reply = data_in(target, report_luns(16), 16); // room for one LUN: the length still says three
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(reply.data.size(), 16u);
    EXPECT_EQ(be32(reply.data, 0), 24u);

    reply = data_in(target, report_luns(15), 15);
    EXPECT_EQ(reply.key(), wire::sense_key::illegal_request);
    EXPECT_EQ(reply.asc(), 0x24) << "allocation length below 16";

    auto well_known = report_luns(64);
    well_known[2] = 1;
    reply = data_in(target, well_known, 64);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(be32(reply.data, 0), 0u);
    well_known[2] = 7;
    EXPECT_EQ(data_in(target, well_known, 64).asc(), 0x24);
}

TEST(ScsiLunTest, AbsentLunInquiry)
{
    TargetLun target;
    auto reply = data_in(target, inquiry(false, 0, 36), 36);
    ASSERT_TRUE(reply.good());
    ASSERT_EQ(reply.data.size(), 36u);
    EXPECT_EQ(reply.data[0], 0x7f);
    EXPECT_EQ(reply.data[4], 31);
    reply = data_in(target, inquiry(true, 0, 36), 36);
    EXPECT_EQ(reply.key(), wire::sense_key::illegal_request);
    EXPECT_EQ(reply.asc(), 0x25);
}

} // namespace
} // namespace vmgen::vm::scsi
