// The crash test's own checker: stamps decode, and the model catches every kind of inconsistency it is meant to
// (a checker that never fails proves nothing).
#include "vm/disk/crash/crash_model.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace vmgen::vm::disk::crash {
namespace {

// A disk in memory.
class MemoryDisk final : public BlockDevice {
public:
    explicit MemoryDisk(uint64_t size)
        : m_bytes(size)
    {
        m_info.virtual_size = size;
    }
    [[nodiscard]] const DiskInfo& info() const override { return m_info; }
    [[nodiscard]] bool read_only() const override { return false; }
    Result<void> read(uint64_t offset, std::span<uint8_t> out) override
    {
        std::memcpy(out.data(), m_bytes.data() + offset, out.size());
        return {};
    }
    Result<void> write(uint64_t offset, std::span<const uint8_t> in) override
    {
        std::memcpy(m_bytes.data() + offset, in.data(), in.size());
        return {};
    }
    Result<void> flush() override { return {}; }
    Result<void> discard(uint64_t offset, uint64_t length) override
    {
        std::memset(m_bytes.data() + offset, 0, length);
        return {};
    }

    // Puts the stamps of write `seq` at [offset, offset + length) without telling any model.
    void stamp(uint64_t offset, uint64_t length, uint64_t seq)
    {
        stamp_units(std::span<uint8_t>(m_bytes.data() + offset, length), offset / unit_size, seq);
    }

    std::vector<uint8_t> m_bytes;

private:
    DiskInfo m_info;
};

constexpr uint64_t disk_size = 64 * unit_size;

Record ready(uint64_t seq)
{
    return { RecordKind::Ready, 0, seq, 0, 0 };
}
Record write(uint64_t seq, uint64_t offset, uint64_t length)
{
    return { RecordKind::Write, 0, seq, offset, length };
}
Record discard(uint64_t seq, uint64_t offset, uint64_t length)
{
    return { RecordKind::Discard, 0, seq, offset, length };
}
Record flushed(uint64_t seq)
{
    return { RecordKind::Flushed, 0, seq, 0, 0 };
}

std::vector<std::string> check(CrashModel& model, MemoryDisk& disk)
{
    auto problems = model.check(disk);
    EXPECT_TRUE(problems) << problems.error().message();
    return problems ? *problems : std::vector<std::string> { "check failed" };
}

TEST(CrashStamp, DecodesWhatItStamped)
{
    std::vector<uint8_t> units(3 * unit_size);
    stamp_units(units, 10, 77);
    for (uint64_t i = 0; i < 3; ++i) {
        auto c = decode_unit(std::span<const uint8_t>(units).subspan(i * unit_size, unit_size), 10 + i);
        EXPECT_EQ(c.kind, UnitKind::Stamped);
        EXPECT_EQ(c.seq, 77u);
    }
    // Another place: misplaced data is garbage, naming the unit it belongs to.
    auto misplaced = decode_unit(std::span<const uint8_t>(units).first(unit_size), 11);
    EXPECT_EQ(misplaced.kind, UnitKind::Garbage);
    EXPECT_TRUE(misplaced.has_magic);
    EXPECT_EQ(misplaced.claimed_unit, 10u);
    // A flipped bit anywhere is garbage.
    for (size_t at : { size_t { 0 }, size_t { 9 }, size_t { 17 }, size_t { 300 }, size_t { unit_size - 1 } }) {
        auto copy = units;
        copy[at] ^= 0x10;
        EXPECT_EQ(decode_unit(std::span<const uint8_t>(copy).first(unit_size), 10).kind, UnitKind::Garbage) << at;
    }
    std::vector<uint8_t> zeroes(unit_size);
    EXPECT_EQ(decode_unit(zeroes, 0).kind, UnitKind::Zero);
    zeroes[100] = 1;
    EXPECT_EQ(decode_unit(zeroes, 0).kind, UnitKind::Garbage);
}

TEST(CrashModel, AcknowledgedWritesMustBePresent)
{
    CrashModel model(disk_size);
    MemoryDisk disk(disk_size);
    ASSERT_TRUE(model.apply(ready(1)));
    ASSERT_TRUE(model.apply(write(1, 0, 4 * unit_size)));
    ASSERT_TRUE(model.apply(flushed(1)));
    // Lost: the disk still holds zeroes.
    auto problems = check(model, disk);
    ASSERT_EQ(problems.size(), 4u);
    EXPECT_NE(problems[0].find("holds zeroes; the last acknowledged operation left write #1"), std::string::npos)
        << problems[0];

    // Present: no problem.
    CrashModel again(disk_size);
    ASSERT_TRUE(again.apply(ready(1)));
    ASSERT_TRUE(again.apply(write(1, 0, 4 * unit_size)));
    ASSERT_TRUE(again.apply(flushed(1)));
    disk.stamp(0, 4 * unit_size, 1);
    EXPECT_TRUE(check(again, disk).empty());
}

TEST(CrashModel, PendingWritesMayBeThereOrNotInAnyMix)
{
    CrashModel model(disk_size);
    MemoryDisk disk(disk_size);
    ASSERT_TRUE(model.apply(ready(1)));
    ASSERT_TRUE(model.apply(write(1, 0, 8 * unit_size)));
    ASSERT_TRUE(model.apply(flushed(1)));
    ASSERT_TRUE(model.apply(write(2, 0, 4 * unit_size)));
    ASSERT_TRUE(model.apply(write(3, 2 * unit_size, 4 * unit_size)));
    disk.stamp(0, 8 * unit_size, 1);
    disk.stamp(unit_size, unit_size, 2); // unit 1: the pending write #2
    disk.stamp(3 * unit_size, unit_size, 3); // unit 3: #3 (which overwrote #2 there)
    disk.stamp(2 * unit_size, unit_size, 2); // unit 2: #2 (#3 did not reach it)
    EXPECT_TRUE(check(model, disk).empty());
    // The check made what it read durable.
    EXPECT_EQ(model.durable(0), 1u);
    EXPECT_EQ(model.durable(1), 2u);
    EXPECT_EQ(model.durable(3), 3u);
    EXPECT_EQ(model.pending(), 0u);
    EXPECT_EQ(model.next_seq(), 4u);
}

TEST(CrashModel, OlderDataIsAProblem)
{
    CrashModel model(disk_size);
    MemoryDisk disk(disk_size);
    ASSERT_TRUE(model.apply(ready(1)));
    ASSERT_TRUE(model.apply(write(1, 0, 2 * unit_size)));
    ASSERT_TRUE(model.apply(write(2, 0, 2 * unit_size)));
    ASSERT_TRUE(model.apply(flushed(2)));
    ASSERT_TRUE(model.apply(write(3, 0, 2 * unit_size)));
    disk.stamp(0, 2 * unit_size, 2);
    disk.stamp(unit_size, unit_size, 1); // unit 1 went back to #1
    auto problems = check(model, disk);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_NE(problems[0].find("unit 1 "), std::string::npos) << problems[0];
    EXPECT_NE(problems[0].find("holds write #1"), std::string::npos) << problems[0];
    EXPECT_NE(problems[0].find("pending on it: write #3"), std::string::npos) << problems[0];
}

TEST(CrashModel, GarbageAndMisplacedDataAreProblems)
{
    CrashModel model(disk_size);
    MemoryDisk disk(disk_size);
    ASSERT_TRUE(model.apply(ready(1)));
    ASSERT_TRUE(model.apply(write(1, 0, 16 * unit_size)));
    disk.stamp(0, 16 * unit_size, 1);
    disk.m_bytes[5 * unit_size + 100] ^= 1; // torn
    std::memcpy(&disk.m_bytes[7 * unit_size], &disk.m_bytes[9 * unit_size], unit_size); // misplaced
    std::memset(&disk.m_bytes[11 * unit_size], 0xAB, unit_size); // not ours at all
    auto problems = check(model, disk);
    ASSERT_EQ(problems.size(), 3u);
    EXPECT_NE(problems[0].find("bad checksum"), std::string::npos) << problems[0];
    EXPECT_NE(problems[1].find("a stamp of unit 9 from write #1, misplaced"), std::string::npos) << problems[1];
    EXPECT_NE(problems[2].find("garbage (no stamp)"), std::string::npos) << problems[2];
}

TEST(CrashModel, DiscardsReadAsZeroes)
{
    CrashModel model(disk_size);
    MemoryDisk disk(disk_size);
    ASSERT_TRUE(model.apply(ready(1)));
    ASSERT_TRUE(model.apply(write(1, 0, 8 * unit_size)));
    ASSERT_TRUE(model.apply(discard(2, 0, 2 * unit_size)));
    ASSERT_TRUE(model.apply(flushed(2)));
    ASSERT_TRUE(model.apply(discard(3, 4 * unit_size, 2 * unit_size)));
    disk.stamp(0, 8 * unit_size, 1);
    std::memset(&disk.m_bytes[4 * unit_size], 0, unit_size); // pending discard #3 reached unit 4 only
    auto problems = check(model, disk);
    // Units 0 and 1 were discarded and acknowledged: write #1 there is older data.
    ASSERT_EQ(problems.size(), 2u);
    EXPECT_NE(problems[0].find("unit 0 "), std::string::npos) << problems[0];
    EXPECT_NE(problems[0].find("left zeroes (discard #2)"), std::string::npos) << problems[0];
    EXPECT_NE(problems[1].find("unit 1 "), std::string::npos) << problems[1];
}

TEST(CrashModel, AKilledWritersOperationsStayPendingUntilOverwrittenAndAcknowledged)
{
    CrashModel model(disk_size);
    MemoryDisk disk(disk_size);
    ASSERT_TRUE(model.apply(ready(1)));
    ASSERT_TRUE(model.apply(write(1, 0, 4 * unit_size)));
    // Killed. The next writer (which replays the log on open) flushes: that does not make #1 durable.
    ASSERT_TRUE(model.apply(ready(2)));
    ASSERT_TRUE(model.apply(write(2, 2 * unit_size, 2 * unit_size)));
    ASSERT_TRUE(model.apply(flushed(2)));
    EXPECT_EQ(model.durable(0), 0u);
    EXPECT_EQ(model.durable(2), 2u);
    disk.stamp(0, 4 * unit_size, 1); // #1 reached the file, and #2 ...
    disk.stamp(3 * unit_size, unit_size, 2); // ... only unit 3
    auto problems = check(model, disk);
    // Units 0 and 1: #1 may be there. Unit 2: #1 is older than the acknowledged #2.
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_NE(problems[0].find("unit 2 "), std::string::npos) << problems[0];
}

TEST(CrashModel, RefusesNonsenseRecords)
{
    CrashModel model(disk_size);
    ASSERT_TRUE(model.apply(ready(5)));
    EXPECT_FALSE(model.apply(write(4, 0, unit_size))); // backwards
    EXPECT_FALSE(model.apply(write(5, 0, 100))); // not whole units
    EXPECT_FALSE(model.apply(write(5, disk_size - unit_size, 1024))); // past the end
    EXPECT_FALSE(model.apply(flushed(9))); // nothing issued yet
    ASSERT_TRUE(model.apply(write(5, 0, unit_size)));
    EXPECT_FALSE(model.apply(ready(3)));
}

} // namespace
} // namespace vmgen::vm::disk::crash
