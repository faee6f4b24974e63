// ScsiDisk command by command, over an in-memory BlockDevice: the data, the pages, and every hostile case.
#include "vm/scsi/scsi_disk.h"

#include "vm/scsi/memory_disk.h"
#include "vm/scsi/scsi_test_initiator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>

namespace vmgen::vm::scsi {
namespace {

using namespace testing;
namespace wire = protocols::scsi;

constexpr uint8_t illegal = wire::sense_key::illegal_request;

struct Fixture {
    MemoryDisk* disk = nullptr;
    std::unique_ptr<ScsiDisk> lun;
};

Fixture make_disk(uint64_t size = 8 << 20, uint32_t sector = 512, ScsiDiskOptions options = {}, uint32_t physical = 0,
    bool read_only = false)
{
    auto memory = std::make_unique<MemoryDisk>(size, sector, physical, read_only);
    for (size_t i = 0; i < memory->bytes().size(); ++i)
        memory->bytes()[i] = pattern_byte(i, 0x11);
    Fixture f;
    f.disk = memory.get();
    options.identity.id
        = { 0x6a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f };
    auto created = ScsiDisk::create(std::move(memory), std::move(options));
    EXPECT_TRUE(created) << created.error().message();
    f.lun = std::move(*created);
    return f;
}

void expect_sense(const Reply& reply, uint8_t key, uint8_t asc, uint8_t ascq = 0)
{
    EXPECT_EQ(reply.outcome.status, ScsiStatus::CheckCondition);
    EXPECT_EQ(reply.key(), key);
    EXPECT_EQ(reply.asc(), asc);
    EXPECT_EQ(reply.ascq(), ascq);
}

TEST(ScsiDiskTest, CreateChecksTheDisk)
{
    EXPECT_FALSE(ScsiDisk::create(nullptr, {}));
    EXPECT_FALSE(ScsiDisk::create(std::make_unique<MemoryDisk>(8192, 1024), {}));
    EXPECT_FALSE(ScsiDisk::create(std::make_unique<MemoryDisk>(0, 512), {}));
    ScsiDiskOptions tiny;
    tiny.max_transfer_bytes = 100;
    EXPECT_FALSE(ScsiDisk::create(std::make_unique<MemoryDisk>(8192, 512), tiny));
}

TEST(ScsiDiskTest, StandardInquiry)
{
    auto f = make_disk();
    auto reply = data_in(*f.lun, inquiry(false, 0, 36), 36);
    ASSERT_TRUE(reply.good());
    ASSERT_EQ(reply.data.size(), 36u);
    EXPECT_EQ(reply.data[0], 0x00);
    EXPECT_EQ(reply.data[1], 0x00) << "not removable";
    EXPECT_EQ(reply.data[2], 0x06) << "SPC-4";
    EXPECT_EQ(reply.data[3] & 0x0f, 2);
    EXPECT_EQ(reply.data[4], 74 - 5);
    EXPECT_EQ(reply.data[7] & 0x02, 0x02) << "CMDQUE";
    EXPECT_EQ(std::string(reply.data.begin() + 8, reply.data.begin() + 16), "Msft    ");
    EXPECT_EQ(std::string(reply.data.begin() + 16, reply.data.begin() + 32), "Virtual Disk    ");
    EXPECT_EQ(std::string(reply.data.begin() + 32, reply.data.begin() + 36), "1.0 ");
    reply = data_in(*f.lun, inquiry(false, 0, 255), 255);
    ASSERT_EQ(reply.data.size(), 74u);
    EXPECT_EQ(be16(reply.data, 58), 0x00a0);
    EXPECT_EQ(be16(reply.data, 62), 0x04c0);
    EXPECT_EQ(reply.outcome.transferred, 74u);

    // Five bytes asked: five bytes get.
    EXPECT_EQ(data_in(*f.lun, inquiry(false, 0, 5), 255).data.size(), 5u);
    // A buffer smaller than the allocation length: clamped, not an overrun.
    EXPECT_EQ(data_in(*f.lun, inquiry(false, 0, 255), 20).data.size(), 20u);
    // Allocation 0: nothing.
    EXPECT_EQ(data_in(*f.lun, inquiry(false, 0, 0), 36).outcome.transferred, 0u);

    auto bad = inquiry(false, 0x80, 36); // page code without EVPD
    expect_sense(data_in(*f.lun, bad, 36), illegal, 0x24);
    bad = inquiry(false, 0, 36);
    bad[1] = 0x02; // CMDDT
    auto cmddt = data_in(*f.lun, bad, 36);
    expect_sense(cmddt, illegal, 0x24);
    EXPECT_TRUE(cmddt.outcome.sense.field_in_cdb());
    EXPECT_EQ(cmddt.outcome.sense.field_pointer(), 1);
}

TEST(ScsiDiskTest, IdentityStringsAreCutAndCleaned)
{
    ScsiDiskOptions options;
    options.identity.vendor = "VeryLongVendorName";
    options.identity.product = "Prod\x01uct";
    options.identity.serial = "SER-1";
    auto f = make_disk(8 << 20, 512, options);
    auto reply = data_in(*f.lun, inquiry(false, 0, 36), 36);
    EXPECT_EQ(std::string(reply.data.begin() + 8, reply.data.begin() + 16), "VeryLong");
    EXPECT_EQ(std::string(reply.data.begin() + 16, reply.data.begin() + 23), "Prod_uc");
    reply = data_in(*f.lun, inquiry(true, 0x80, 255), 255);
    EXPECT_EQ(std::string(reply.data.begin() + 4, reply.data.end()), "SER-1");
}

TEST(ScsiDiskTest, VitalProductDataPages)
{
    auto f = make_disk(8 << 20, 512, {}, 4096);
    auto reply = data_in(*f.lun, inquiry(true, 0x00, 255), 255);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(reply.data, (std::vector<uint8_t> { 0, 0, 0, 6, 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2 }));

    reply = data_in(*f.lun, inquiry(true, 0x80, 255), 255);
    EXPECT_EQ(reply.data[1], 0x80);
    EXPECT_EQ(std::string(reply.data.begin() + 4, reply.data.end()), "6A0102030405060708090A0B0C0D0E0F");

    reply = data_in(*f.lun, inquiry(true, 0x83, 255), 255);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(be16(reply.data, 2), reply.data.size() - 4);
    EXPECT_EQ(reply.data[4] & 0x0f, 1) << "binary";
    EXPECT_EQ(reply.data[5] & 0x0f, 3) << "NAA";
    EXPECT_EQ(reply.data[7], 8);
    EXPECT_EQ(reply.data[8], 0x3a) << "NAA 3 with the id's low nibble";
    EXPECT_EQ(reply.data[9], 0x01);
    EXPECT_EQ(reply.data[16 + 1] & 0x0f, 1) << "T10 vendor ID";
    EXPECT_EQ(reply.data[16 + 3], 8 + 32);
    EXPECT_EQ(std::string(reply.data.begin() + 20, reply.data.begin() + 28), "Msft    ");

    reply = data_in(*f.lun, inquiry(true, 0xb0, 255), 255);
    ASSERT_EQ(reply.data.size(), 64u);
    EXPECT_EQ(be16(reply.data, 2), 0x3c);
    EXPECT_EQ(reply.data[4] & 1, 1) << "WSNZ";
    EXPECT_EQ(be16(reply.data, 6), 8) << "optimal granularity: one physical block";
    EXPECT_EQ(be32(reply.data, 8), (8u << 20) / 512);
    EXPECT_EQ(be32(reply.data, 20), (4ull << 30) / 512);
    EXPECT_EQ(be32(reply.data, 24), 256u);
    EXPECT_EQ(be32(reply.data, 28), 8u);
    EXPECT_EQ(be64(reply.data, 36), (4ull << 30) / 512);

    reply = data_in(*f.lun, inquiry(true, 0xb1, 255), 255);
    ASSERT_EQ(reply.data.size(), 64u);
    EXPECT_EQ(be16(reply.data, 4), 1) << "non-rotating";

    reply = data_in(*f.lun, inquiry(true, 0xb2, 255), 255);
    ASSERT_EQ(reply.data.size(), 8u);
    EXPECT_EQ(reply.data[5], 0x80 | 0x40 | 0x20 | 0x04) << "LBPU LBPWS LBPWS10 LBPRZ";

    expect_sense(data_in(*f.lun, inquiry(true, 0x89, 255), 255), illegal, 0x24);
    // Linux first asks for the 4-byte header only.
    reply = data_in(*f.lun, inquiry(true, 0xb0, 4), 4);
    EXPECT_EQ(reply.data.size(), 4u);
    EXPECT_EQ(be16(reply.data, 2), 0x3c);
}

TEST(ScsiDiskTest, NoDiscardAdvertisedWhenDisabledOrReadOnly)
{
    ScsiDiskOptions options;
    options.discard = false;
    for (bool read_only : { false, true }) {
        auto f = read_only ? make_disk(8 << 20, 512, {}, 0, true) : make_disk(8 << 20, 512, options);
        auto reply = data_in(*f.lun, inquiry(true, 0xb0, 255), 255);
        EXPECT_EQ(be32(reply.data, 20), 0u);
        EXPECT_EQ(be32(reply.data, 24), 0u);
        reply = data_in(*f.lun, inquiry(true, 0xb2, 255), 255);
        EXPECT_EQ(reply.data[5], 0);
        reply = data_in(*f.lun, read_capacity_16(32), 32);
        EXPECT_EQ(reply.data[14] & 0xc0, 0) << "no LBPME";
        const auto list = unmap_list({ { 0, 8 } });
        auto unmapped = data_out(*f.lun, unmap(static_cast<uint16_t>(list.size())), list);
        if (read_only)
            expect_sense(unmapped, wire::sense_key::data_protect, 0x27);
        else
            expect_sense(unmapped, illegal, 0x20);
    }
}

TEST(ScsiDiskTest, ReadCapacity)
{
    auto f = make_disk(8 << 20, 512);
    auto reply = data_in(*f.lun, read_capacity_10(), 8);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(be32(reply.data, 0), (8u << 20) / 512 - 1);
    EXPECT_EQ(be32(reply.data, 4), 512u);
    reply = data_in(*f.lun, read_capacity_16(32), 32);
    ASSERT_EQ(reply.data.size(), 32u);
    EXPECT_EQ(be64(reply.data, 0), (8u << 20) / 512 - 1);
    EXPECT_EQ(be32(reply.data, 8), 512u);
    EXPECT_EQ(reply.data[13] & 0x0f, 0);
    EXPECT_EQ(reply.data[14] & 0xc0, 0xc0) << "LBPME and LBPRZ";

    auto g = make_disk(8 << 20, 512, {}, 4096);
    reply = data_in(*g.lun, read_capacity_16(32), 32);
    EXPECT_EQ(reply.data[13] & 0x0f, 3) << "8 logical blocks per physical block";

    auto h = make_disk(8 << 20, 4096);
    reply = data_in(*h.lun, read_capacity_16(32), 32);
    EXPECT_EQ(be64(reply.data, 0), (8u << 20) / 4096 - 1);
    EXPECT_EQ(be32(reply.data, 8), 4096u);
    EXPECT_EQ(reply.data[13] & 0x0f, 0);

    // Allocation lengths: 12 bytes of READ CAPACITY(16); the 10-byte version always 8.
    EXPECT_EQ(data_in(*f.lun, read_capacity_16(12), 32).data.size(), 12u);
    auto obsolete_lba = read_capacity_10();
    obsolete_lba[5] = 1;
    expect_sense(data_in(*f.lun, obsolete_lba, 8), illegal, 0x24);
    auto other_action = read_capacity_16(32);
    other_action[1] = 0x12; // GET LBA STATUS
    expect_sense(data_in(*f.lun, other_action, 32), illegal, 0x24);
}

// A disk too large to hold in memory: reads return zeroes.
class HugeDisk final : public disk::BlockDevice {
public:
    HugeDisk() { m_info.virtual_size = 3ull << 40; }
    const disk::DiskInfo& info() const override { return m_info; }
    bool read_only() const override { return false; }
    Result<void> read(uint64_t, std::span<uint8_t> out) override
    {
        std::fill(out.begin(), out.end(), 0);
        return {};
    }
    Result<void> write(uint64_t, std::span<const uint8_t>) override { return {}; }
    Result<void> flush() override { return {}; }
    Result<void> discard(uint64_t, uint64_t) override { return {}; }

private:
    disk::DiskInfo m_info;
};

TEST(ScsiDiskTest, LargeDiskNeedsReadCapacity16)
{
    auto lun = std::move(*ScsiDisk::create(std::make_unique<HugeDisk>(), {}));
    auto reply = data_in(*lun, read_capacity_10(), 8);
    EXPECT_EQ(be32(reply.data, 0), 0xffffffffu);
    reply = data_in(*lun, read_capacity_16(32), 32);
    EXPECT_EQ(be64(reply.data, 0), (3ull << 40) / 512 - 1);
    // Beyond 2 TiB only the 16-byte commands reach.
    reply = data_in(*lun, rw16(op::read_16, (3ull << 40) / 512 - 1, 1), 512);
    EXPECT_TRUE(reply.good());
    expect_sense(data_in(*lun, rw16(op::read_16, (3ull << 40) / 512, 1), 512), illegal, 0x21);
    reply = data_in(*lun, mode_sense_6(0x08, 255), 255);
    EXPECT_EQ(be32(reply.data, 4), 0xffffffffu) << "short block descriptor saturates";
    reply = data_in(*lun, mode_sense_10(0x08, 255, false, true), 255);
    EXPECT_EQ(reply.data[4] & 1, 1) << "LONGLBA";
    EXPECT_EQ(be16(reply.data, 6), 16);
    EXPECT_EQ(be64(reply.data, 8), (3ull << 40) / 512);
}

TEST(ScsiDiskTest, ModeSense)
{
    auto f = make_disk();
    // Linux's first, cautious ask: 4 bytes of page 0x3f. The length says how much there is.
    auto reply = data_in(*f.lun, mode_sense_6(0x3f, 4), 4);
    ASSERT_TRUE(reply.good());
    ASSERT_EQ(reply.data.size(), 4u);
    const uint8_t full = reply.data[0];
    EXPECT_EQ(full + 1, 4 + 8 + 20 + 12);
    EXPECT_EQ(reply.data[2], 0x10) << "DPOFUA, not write protected";
    EXPECT_EQ(reply.data[3], 8);

    reply = data_in(*f.lun, mode_sense_6(0x3f, 255), 255);
    ASSERT_EQ(reply.data.size(), size_t { full } + 1);
    EXPECT_EQ(be32(reply.data, 4), (8u << 20) / 512);
    EXPECT_EQ(be32(reply.data, 8) & 0xffffff, 512u);
    EXPECT_EQ(reply.data[12], 0x08) << "caching page first, PS clear";
    EXPECT_EQ(reply.data[13], 0x12);
    EXPECT_EQ(reply.data[14] & 0x04, 0x04) << "WCE";
    EXPECT_EQ(reply.data[32], 0x0a);
    EXPECT_EQ(reply.data[33], 0x0a);

    reply = data_in(*f.lun, mode_sense_6(0x08, 255, true), 255);
    EXPECT_EQ(reply.data[0] + 1, 4 + 20);
    EXPECT_EQ(reply.data[3], 0) << "DBD";
    EXPECT_EQ(reply.data[4], 0x08);

    reply = data_in(*f.lun, mode_sense_10(0x0a, 255), 255);
    EXPECT_EQ(be16(reply.data, 0) + 2, 8 + 8 + 12);
    EXPECT_EQ(be16(reply.data, 6), 8);
    EXPECT_EQ(reply.data[16], 0x0a);

    reply = data_in(*f.lun, mode_sense_6(0x08, 255, true, 1), 255); // changeable
    EXPECT_EQ(reply.data[6], 0x05);
    reply = data_in(*f.lun, mode_sense_6(0x08, 255, true, 2), 255); // default
    EXPECT_EQ(reply.data[6], 0x04);
    expect_sense(data_in(*f.lun, mode_sense_6(0x08, 255, true, 3), 255), illegal, 0x39);
    expect_sense(data_in(*f.lun, mode_sense_6(0x1c, 255), 255), illegal, 0x24);
    auto subpage = mode_sense_6(0x08, 255);
    subpage[3] = 1;
    expect_sense(data_in(*f.lun, subpage, 255), illegal, 0x24);
    subpage[2] = 0x3f;
    subpage[3] = 0xff; // all pages and subpages
    EXPECT_TRUE(data_in(*f.lun, subpage, 255).good());

    auto ro = make_disk(8 << 20, 512, {}, 0, true);
    reply = data_in(*ro.lun, mode_sense_6(0x3f, 4), 4);
    EXPECT_EQ(reply.data[2], 0x90) << "write protected";
}

std::vector<uint8_t> caching_select(bool ten, uint8_t flags2)
{
    std::vector<uint8_t> list(ten ? 8 : 4, 0);
    std::vector<uint8_t> page(20, 0);
    page[0] = 0x08;
    page[1] = 0x12;
    page[2] = flags2;
    list.insert(list.end(), page.begin(), page.end());
    return list;
}

TEST(ScsiDiskTest, ModeSelectChangesTheWriteCache)
{
    auto f = make_disk();
    EXPECT_TRUE(f.lun->write_cache_enabled());
    auto list = caching_select(false, 0x00);
    auto reply = data_out(*f.lun, mode_select_6(static_cast<uint8_t>(list.size())), list);
    ASSERT_TRUE(reply.good()) << int(reply.asc());
    EXPECT_EQ(reply.outcome.transferred, list.size());
    EXPECT_FALSE(f.lun->write_cache_enabled());
    EXPECT_EQ(f.disk->flushes(), 1u) << "turning the cache off flushes it";
    EXPECT_EQ(data_in(*f.lun, mode_sense_6(0x08, 255, true), 255).data[6], 0x00);

    // Write-through: every write is flushed.
    const auto before = f.disk->flushes();
    EXPECT_TRUE(data_out(*f.lun, rw10(op::write_10, 0, 1), std::vector<uint8_t>(512, 1)).good());
    EXPECT_EQ(f.disk->flushes(), before + 1);

    list = caching_select(true, 0x05);
    reply = data_out(*f.lun, mode_select_10(static_cast<uint16_t>(list.size())), list);
    ASSERT_TRUE(reply.good());
    EXPECT_TRUE(f.lun->write_cache_enabled());
    EXPECT_EQ(data_in(*f.lun, mode_sense_6(0x08, 255, true), 255).data[6], 0x05);

    // A block descriptor restating the geometry is fine; another block length is not.
    std::vector<uint8_t> with_descriptor = { 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x02, 0x00 };
    auto page = caching_select(false, 0x04);
    with_descriptor.insert(with_descriptor.end(), page.begin() + 4, page.end());
    EXPECT_TRUE(data_out(*f.lun, mode_select_6(static_cast<uint8_t>(with_descriptor.size())), with_descriptor).good());
    with_descriptor[10] = 0x10;
    reply = data_out(*f.lun, mode_select_6(static_cast<uint8_t>(with_descriptor.size())), with_descriptor);
    expect_sense(reply, illegal, 0x26);
    EXPECT_FALSE(reply.outcome.sense.field_in_cdb());
    EXPECT_EQ(reply.outcome.sense.field_pointer(), 9);
}

TEST(ScsiDiskTest, ModeSelectRefusals)
{
    auto f = make_disk();
    auto list = caching_select(false, 0x04);
    expect_sense(data_out(*f.lun, mode_select_6(static_cast<uint8_t>(list.size()), 0x11), list), illegal, 0x24);
    expect_sense(data_out(*f.lun, mode_select_6(static_cast<uint8_t>(list.size()), 0x00), list), illegal, 0x24);
    EXPECT_TRUE(data_out(*f.lun, mode_select_6(0), {}).good());

    auto changed = caching_select(false, 0x04);
    changed[4 + 12] = 0x80; // FSW: not changeable
    auto reply = data_out(*f.lun, mode_select_6(static_cast<uint8_t>(changed.size())), changed);
    expect_sense(reply, illegal, 0x26);
    EXPECT_EQ(reply.outcome.sense.field_pointer(), 16);

    auto unknown = caching_select(false, 0x04);
    unknown[4] = 0x1c;
    expect_sense(data_out(*f.lun, mode_select_6(static_cast<uint8_t>(unknown.size())), unknown), illegal, 0x26);
    auto short_page = caching_select(false, 0x04);
    short_page[5] = 0x10;
    short_page.resize(4 + 18);
    expect_sense(data_out(*f.lun, mode_select_6(static_cast<uint8_t>(short_page.size())), short_page), illegal, 0x26);
    auto truncated = caching_select(false, 0x04);
    truncated.resize(10);
    expect_sense(data_out(*f.lun, mode_select_6(static_cast<uint8_t>(truncated.size())), truncated), illegal, 0x1a);
    const std::vector<uint8_t> header_only = { 0, 0 };
    expect_sense(data_out(*f.lun, mode_select_6(2), header_only), illegal, 0x1a);
    // The parameter list length exceeds the buffer the initiator declared.
    reply = data_out(*f.lun, mode_select_6(static_cast<uint8_t>(list.size() + 10)), list);
    expect_sense(reply, illegal, 0x24);
    EXPECT_TRUE(reply.outcome.buffer_too_small);
    // Nothing changed by any of the refusals.
    EXPECT_TRUE(f.lun->write_cache_enabled());
}

TEST(ScsiDiskTest, NowaitExecutesOnlyReadsAndWritesThatCannotBlock)
{
    auto f = make_disk();
    const uint64_t blocks = (8 << 20) / 512;
    std::vector<uint8_t> buf(4 * 512);
    SpanDataBuffer in(buf);
    auto outcome = f.lun->execute_nowait(ScsiCommand::make(rw10(op::read_10, 6, 4), DataDirection::In, 2048), in);
    ASSERT_TRUE(outcome);
    EXPECT_TRUE(outcome->good());
    EXPECT_EQ(outcome->transferred, 2048u);
    EXPECT_EQ(buf, pattern(6 * 512, 2048, 0x11));

    auto data = pattern(0, 2048, 0x42);
    SpanDataBuffer out(data);
    const auto flushes = f.disk->flushes();
    outcome = f.lun->execute_nowait(ScsiCommand::make(rw10(op::write_10, 10, 4), DataDirection::Out, 2048), out);
    ASSERT_TRUE(outcome);
    EXPECT_TRUE(outcome->good());
    EXPECT_EQ(std::vector<uint8_t>(f.disk->bytes().begin() + 10 * 512, f.disk->bytes().begin() + 14 * 512), data);

    // FUA (and write-through) need a flush: not without blocking, and nothing is written.
    EXPECT_FALSE(f.lun->execute_nowait(
        ScsiCommand::make(rw10(op::write_10, 20, 4, 0x08), DataDirection::Out, 2048), out));
    EXPECT_EQ(std::vector<uint8_t>(f.disk->bytes().begin() + 20 * 512, f.disk->bytes().begin() + 24 * 512),
        pattern(20 * 512, 2048, 0x11));
    EXPECT_EQ(f.disk->flushes(), flushes);
    // Anything but READ/WRITE is for execute().
    std::vector<uint8_t> inquiry_buf(96);
    SpanDataBuffer inquiry_in(inquiry_buf);
    EXPECT_FALSE(f.lun->execute_nowait(ScsiCommand::make(inquiry(false, 0, 96), DataDirection::In, 96), inquiry_in));

    // A checked error is a final answer on this path too.
    outcome = f.lun->execute_nowait(
        ScsiCommand::make(rw10(op::read_10, static_cast<uint32_t>(blocks - 1), 4), DataDirection::In, 2048), in);
    ASSERT_TRUE(outcome);
    EXPECT_EQ(outcome->status, ScsiStatus::CheckCondition);
    EXPECT_EQ(outcome->sense.asc(), 0x21);

    // The disk would block: declined, and execute() does it.
    f.disk->set_would_block(true);
    const auto read6 = ScsiCommand::make(rw10(op::read_10, 6, 4), DataDirection::In, 2048);
    EXPECT_FALSE(f.lun->execute_nowait(read6, in));
    EXPECT_GE(f.disk->nowait_refusals(), 1u);
    std::fill(buf.begin(), buf.end(), uint8_t {0});
    EXPECT_TRUE(f.lun->execute(read6, in).good());
    EXPECT_EQ(buf, pattern(6 * 512, 2048, 0x11));

    // A pending unit attention is reported by execute(), once, and not lost to the nowait attempt.
    f.disk->set_would_block(false);
    f.lun->notify_capacity_changed();
    EXPECT_FALSE(f.lun->execute_nowait(read6, in));
    auto attention = f.lun->execute(read6, in);
    EXPECT_EQ(attention.status, ScsiStatus::CheckCondition);
    EXPECT_EQ(attention.sense.key(), wire::sense_key::unit_attention);
    EXPECT_TRUE(f.lun->execute_nowait(read6, in));
}

TEST(ScsiDiskTest, ReadsAndWritesEveryCdbSize)
{
    for (const uint32_t sector : { 512u, 4096u }) {
        auto f = make_disk(8 << 20, sector);
        auto reply = data_in(*f.lun, rw6(op::read_6, 3, 2), 2 * sector);
        ASSERT_TRUE(reply.good());
        EXPECT_EQ(reply.data, pattern(3 * sector, 2 * sector, 0x11));
        reply = data_in(*f.lun, rw10(op::read_10, 5, 3), 3 * sector);
        EXPECT_EQ(reply.data, pattern(5 * sector, 3 * sector, 0x11));
        reply = data_in(*f.lun, rw12(op::read_12, 7, 1), sector);
        EXPECT_EQ(reply.data, pattern(7 * sector, sector, 0x11));
        reply = data_in(*f.lun, rw16(op::read_16, 9, 4), 4 * sector);
        EXPECT_EQ(reply.data, pattern(9 * sector, 4 * sector, 0x11));
        EXPECT_EQ(reply.outcome.transferred, 4u * sector);

        const auto data = pattern(0, 2 * sector, 0x77);
        for (const auto& cdb : { rw6(op::write_6, 20, 2), rw10(op::write_10, 30, 2), rw12(op::write_12, 40, 2),
                 rw16(op::write_16, 50, 2) }) {
            reply = data_out(*f.lun, cdb, data);
            ASSERT_TRUE(reply.good());
            EXPECT_EQ(reply.outcome.transferred, data.size());
        }
        for (const uint64_t lba : { 20u, 30u, 40u, 50u }) {
            EXPECT_EQ(std::vector<uint8_t>(f.disk->bytes().begin() + static_cast<std::ptrdiff_t>(lba * sector),
                          f.disk->bytes().begin() + static_cast<std::ptrdiff_t>((lba + 2) * sector)),
                data);
        }
        // Scattered buffers, split mid-sector.
        reply = data_in(*f.lun, rw10(op::read_10, 30, 2), 2 * sector, { 100, sector - 100, 7, sector - 7 });
        EXPECT_EQ(reply.data, data);
        // READ(6) with 0 blocks means 256.
        reply = data_in(*f.lun, rw6(op::read_6, 0, 0), 256 * sector);
        EXPECT_EQ(reply.outcome.transferred, 256u * sector);
        // The other sizes: 0 blocks is nothing at all.
        reply = data_in(*f.lun, rw10(op::read_10, 0, 0), 0);
        EXPECT_TRUE(reply.good());
        EXPECT_EQ(reply.outcome.transferred, 0u);
    }
}

TEST(ScsiDiskTest, ForceUnitAccessFlushesWrites)
{
    auto f = make_disk();
    const auto data = pattern(0, 512, 3);
    EXPECT_TRUE(data_out(*f.lun, rw10(op::write_10, 1, 1), data).good());
    EXPECT_EQ(f.disk->flushes(), 0u);
    EXPECT_TRUE(data_out(*f.lun, rw10(op::write_10, 1, 1, 0x08), data).good());
    EXPECT_EQ(f.disk->flushes(), 1u);
    EXPECT_TRUE(data_out(*f.lun, rw16(op::write_16, 1, 1, 0x08), data).good());
    EXPECT_EQ(f.disk->flushes(), 2u);
    EXPECT_TRUE(data_in(*f.lun, rw10(op::read_10, 1, 1, 0x08), 512).good()) << "FUA on a read is a no-op";
    EXPECT_EQ(f.disk->flushes(), 2u);
}

TEST(ScsiDiskTest, HostileTransfers)
{
    auto f = make_disk(8 << 20, 512);
    const uint64_t blocks = (8u << 20) / 512;
    expect_sense(data_in(*f.lun, rw10(op::read_10, static_cast<uint32_t>(blocks - 1), 2), 1024), illegal, 0x21);
    expect_sense(data_in(*f.lun, rw10(op::read_10, static_cast<uint32_t>(blocks), 0), 0), illegal, 0x21);
    expect_sense(data_in(*f.lun, rw16(op::read_16, UINT64_MAX, 1), 512), illegal, 0x21);
    expect_sense(data_in(*f.lun, rw16(op::read_16, UINT64_MAX - 1, 0xffffffff), 512), illegal, 0x21);
    expect_sense(data_out(*f.lun, rw16(op::write_16, 1ull << 63, 2), std::vector<uint8_t>(1024)), illegal, 0x21);
    EXPECT_TRUE(data_in(*f.lun, rw10(op::read_10, static_cast<uint32_t>(blocks - 1), 1), 512).good());

    // More than the maximum transfer length (Block Limits VPD).
    ScsiDiskOptions limited;
    limited.max_transfer_bytes = 64 << 10;
    auto g = make_disk(8 << 20, 512, limited);
    EXPECT_TRUE(data_in(*g.lun, rw12(op::read_12, 0, 128), 64 << 10).good());
    auto too_long = data_in(*g.lun, rw12(op::read_12, 0, 129), 1 << 20);
    expect_sense(too_long, illegal, 0x24);
    EXPECT_EQ(too_long.outcome.sense.field_pointer(), 6);
    EXPECT_FALSE(too_long.outcome.buffer_too_small);
    // More than the buffer: refused, nothing written past it (the test initiator checks its guard bytes).
    auto reply = data_in(*f.lun, rw10(op::read_10, 0, 8), 4095);
    expect_sense(reply, illegal, 0x24);
    EXPECT_TRUE(reply.outcome.buffer_too_small);
    EXPECT_EQ(reply.outcome.sense.field_pointer(), 7);
    EXPECT_EQ(reply.outcome.transferred, 0u);
    reply = data_out(*f.lun, rw10(op::write_10, 0, 8), std::vector<uint8_t>(512));
    EXPECT_TRUE(reply.outcome.buffer_too_small);
    // The direction the initiator declared is not the command's: no buffer for it.
    reply = run(*f.lun, rw10(op::read_10, 0, 1), DataDirection::Out, 512, std::vector<uint8_t>(512));
    EXPECT_TRUE(reply.outcome.buffer_too_small);
    reply = run(*f.lun, rw10(op::write_10, 0, 1), DataDirection::In, 512);
    EXPECT_TRUE(reply.outcome.buffer_too_small);
    EXPECT_EQ(f.disk->bytes()[0], pattern_byte(0, 0x11)) << "nothing written";
    reply = run(*f.lun, rw10(op::read_10, 0, 1), DataDirection::None, 0);
    EXPECT_TRUE(reply.outcome.buffer_too_small);
    // transfer_length smaller than the buffer: the declared length wins.
    std::vector<uint8_t> memory(4096, guard_byte);
    SpanDataBuffer buffer(memory);
    auto command = ScsiCommand::make(rw10(op::read_10, 0, 8), DataDirection::In, 512);
    EXPECT_TRUE(f.lun->execute(command, buffer).buffer_too_small);
    EXPECT_EQ(memory[0], guard_byte);

    // Protection information is not supported.
    expect_sense(data_in(*f.lun, rw10(op::read_10, 0, 1, 0x20), 512), illegal, 0x24);
    expect_sense(data_out(*f.lun, rw16(op::write_16, 0, 1, 0xe0), std::vector<uint8_t>(512)), illegal, 0x24);
}

TEST(ScsiDiskTest, CdbShapeChecks)
{
    auto f = make_disk();
    // A READ(10) cut to 6 bytes, an unknown group, a 17-byte CDB.
    auto short_read = rw10(op::read_10, 0, 1);
    short_read.resize(6);
    expect_sense(data_in(*f.lun, short_read, 512), illegal, 0x20);
    expect_sense(data_in(*f.lun, { 0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, 512), illegal, 0x20);
    expect_sense(data_in(*f.lun, { 0xc0, 0, 0, 0, 0, 0 }, 512), illegal, 0x20);
    expect_sense(data_in(*f.lun, std::vector<uint8_t>(17, 0x28), 512), illegal, 0x20);
    expect_sense(data_in(*f.lun, {}, 512), illegal, 0x20);
    // Longer than needed is fine.
    auto padded = rw10(op::read_10, 0, 1);
    padded.resize(16);
    EXPECT_TRUE(data_in(*f.lun, padded, 512).good());
    // NACA.
    auto naca = test_unit_ready();
    naca[5] = 0x04;
    expect_sense(no_data(*f.lun, naca), illegal, 0x24);
    // Unsupported commands.
    for (const uint8_t opcode : std::initializer_list<uint8_t> { 0x04 /* FORMAT UNIT */, 0x1d /* SEND DIAGNOSTIC */,
             0x3b /* WRITE BUFFER */, 0x4d /* LOG SENSE */, 0x5e /* PERSISTENT RESERVE IN */, 0xa3 /* MAINTENANCE IN */,
             0x43 /* READ TOC */, 0x46 /* GET CONFIGURATION */ }) {
        std::vector<uint8_t> cdb(protocols::scsi::cdb_size_for_opcode(opcode), 0);
        cdb[0] = opcode;
        expect_sense(data_in(*f.lun, cdb, 512), illegal, 0x20);
    }
}

TEST(ScsiDiskTest, SimpleCommands)
{
    auto f = make_disk();
    EXPECT_TRUE(no_data(*f.lun, test_unit_ready()).good());
    auto reply = data_in(*f.lun, request_sense(252), 252);
    ASSERT_TRUE(reply.good());
    ASSERT_EQ(reply.data.size(), 18u);
    EXPECT_EQ(reply.data[0], 0x70);
    EXPECT_EQ(reply.data[2], 0);
    auto desc = request_sense(252);
    desc[1] = 1;
    expect_sense(data_in(*f.lun, desc, 252), illegal, 0x24);
    EXPECT_TRUE(no_data(*f.lun, prevent_allow(1)).good());
    EXPECT_TRUE(no_data(*f.lun, prevent_allow(0)).good());
    EXPECT_TRUE(no_data(*f.lun, start_stop_unit(0x01)).good());
    EXPECT_EQ(f.disk->flushes(), 0u);
    EXPECT_TRUE(no_data(*f.lun, start_stop_unit(0x00)).good()) << "stop";
    EXPECT_EQ(f.disk->flushes(), 1u);
    EXPECT_TRUE(no_data(*f.lun, start_stop_unit(0x04)).good()) << "stop with NO_FLUSH";
    EXPECT_EQ(f.disk->flushes(), 1u);
    EXPECT_TRUE(no_data(*f.lun, start_stop_unit(0x30)).good()) << "a power condition";

    reply = data_in(*f.lun, report_luns(4096), 4096);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(be32(reply.data, 0), 8u);
}

TEST(ScsiDiskTest, SynchronizeCache)
{
    auto f = make_disk();
    EXPECT_TRUE(no_data(*f.lun, rw10(op::synchronize_cache_10, 0, 0)).good());
    EXPECT_TRUE(no_data(*f.lun, rw16(op::synchronize_cache_16, 100, 10)).good());
    EXPECT_EQ(f.disk->flushes(), 2u);
    expect_sense(no_data(*f.lun, rw10(op::synchronize_cache_10, 1u << 20, 0)), illegal, 0x21);
    f.disk->fail_flush(true);
    auto reply = no_data(*f.lun, rw10(op::synchronize_cache_10, 0, 0));
    expect_sense(reply, wire::sense_key::medium_error, 0x0c);
    EXPECT_TRUE(reply.outcome.host_error);
}

TEST(ScsiDiskTest, Verify)
{
    auto f = make_disk();
    EXPECT_TRUE(no_data(*f.lun, rw10(op::verify_10, 10, 100)).good());
    expect_sense(no_data(*f.lun, rw16(op::verify_16, 1u << 20, 1)), illegal, 0x21);
    // BYTCHK = 1: compare with the data sent.
    auto same = pattern(10 * 512, 2 * 512, 0x11);
    auto reply = data_out(*f.lun, rw10(op::verify_10, 10, 2, 0x02), same);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(reply.outcome.transferred, 1024u);
    same[700] ^= 1;
    reply = data_out(*f.lun, rw16(op::verify_16, 10, 2, 0x02), same);
    expect_sense(reply, wire::sense_key::miscompare, 0x1d);
    EXPECT_EQ(reply.outcome.sense.information(), 700u);
    // BYTCHK = 3: one block compared with every block.
    std::fill(f.disk->bytes().begin(), f.disk->bytes().begin() + 4 * 512, uint8_t { 0x42 });
    EXPECT_TRUE(data_out(*f.lun, rw10(op::verify_10, 0, 4, 0x06), std::vector<uint8_t>(512, 0x42)).good());
    f.disk->bytes()[3 * 512 + 5] = 0;
    reply = data_out(*f.lun, rw10(op::verify_10, 0, 4, 0x06), std::vector<uint8_t>(512, 0x42));
    expect_sense(reply, wire::sense_key::miscompare, 0x1d);
    EXPECT_EQ(reply.outcome.sense.information(), 5u);
    expect_sense(no_data(*f.lun, rw10(op::verify_10, 0, 4, 0x04)), illegal, 0x24); // BYTCHK 2 is reserved
    EXPECT_TRUE(data_out(*f.lun, rw10(op::verify_10, 0, 4, 0x02), std::vector<uint8_t>(100)).outcome.buffer_too_small);
}

TEST(ScsiDiskTest, Unmap)
{
    auto f = make_disk();
    auto list = unmap_list({ { 8, 16 }, { 100, 1 }, { 200, 0 } });
    auto reply = data_out(*f.lun, unmap(static_cast<uint16_t>(list.size())), list);
    ASSERT_TRUE(reply.good()) << int(reply.asc());
    EXPECT_EQ(reply.outcome.transferred, list.size());
    ASSERT_EQ(f.disk->discards().size(), 2u);
    EXPECT_EQ(f.disk->discards()[0], (std::pair<uint64_t, uint64_t> { 8 * 512, 16 * 512 }));
    EXPECT_EQ(f.disk->discards()[1], (std::pair<uint64_t, uint64_t> { 100 * 512, 512 }));
    EXPECT_EQ(f.disk->bytes()[8 * 512], 0);

    EXPECT_TRUE(data_out(*f.lun, unmap(0), {}).good());
    // A trailing partial descriptor is ignored.
    auto partial = unmap_list({ { 1, 1 }, { 2, 1 } });
    put16(partial, 2, 16 + 10);
    EXPECT_TRUE(data_out(*f.lun, unmap(static_cast<uint16_t>(partial.size())), partial).good());
    EXPECT_EQ(f.disk->discards().size(), 3u);
}

TEST(ScsiDiskTest, UnmapRefusalsChangeNothing)
{
    auto f = make_disk();
    const uint64_t blocks = (8u << 20) / 512;
    auto out_of_range = unmap_list({ { 0, 8 }, { blocks - 1, 2 } });
    expect_sense(data_out(*f.lun, unmap(static_cast<uint16_t>(out_of_range.size())), out_of_range), illegal, 0x21);
    auto overflow = unmap_list({ { UINT64_MAX - 1, 0xffffffff } });
    expect_sense(data_out(*f.lun, unmap(static_cast<uint16_t>(overflow.size())), overflow), illegal, 0x21);
    EXPECT_TRUE(f.disk->discards().empty()) << "validated before the first discard";

    const std::vector<uint8_t> tiny = { 0, 6, 0, 0 };
    expect_sense(data_out(*f.lun, unmap(4), tiny), illegal, 0x1a);
    auto list = unmap_list({ { 0, 8 } });
    auto reply = data_out(*f.lun, unmap(static_cast<uint16_t>(list.size() + 16)), list);
    EXPECT_TRUE(reply.outcome.buffer_too_small);
    expect_sense(data_out(*f.lun, unmap(static_cast<uint16_t>(list.size()), 0x01), list), illegal, 0x24);

    std::vector<std::pair<uint64_t, uint32_t>> many(257, { 0, 1 });
    auto too_many = unmap_list(many);
    expect_sense(data_out(*f.lun, unmap(static_cast<uint16_t>(too_many.size())), too_many), illegal, 0x26);

    ScsiDiskOptions small;
    small.max_unmap_bytes = 64 * 512;
    auto g = make_disk(8 << 20, 512, small);
    auto big = unmap_list({ { 0, 32 }, { 100, 33 } });
    reply = data_out(*g.lun, unmap(static_cast<uint16_t>(big.size())), big);
    expect_sense(reply, illegal, 0x26);
    EXPECT_EQ(reply.outcome.sense.field_pointer(), 8 + 16 + 8);
    EXPECT_TRUE(g.disk->discards().empty());
    // A block descriptor length larger than the list: only whole descriptors present count.
    auto lying = unmap_list({ { 0, 4 } });
    put16(lying, 2, 0xfff0);
    EXPECT_TRUE(data_out(*f.lun, unmap(static_cast<uint16_t>(lying.size())), lying).good());
    EXPECT_EQ(f.disk->discards().size(), 1u);
}

TEST(ScsiDiskTest, WriteSame)
{
    auto f = make_disk();
    const auto block = pattern(0, 512, 0x99);
    auto reply = data_out(*f.lun, rw10(op::write_same_10, 10, 5), block);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(reply.outcome.transferred, 512u);
    for (uint64_t lba = 10; lba < 15; ++lba)
        EXPECT_EQ(std::vector<uint8_t>(f.disk->bytes().begin() + static_cast<std::ptrdiff_t>(lba * 512),
                      f.disk->bytes().begin() + static_cast<std::ptrdiff_t>((lba + 1) * 512)),
            block);
    EXPECT_EQ(f.disk->bytes()[15 * 512], pattern_byte(15 * 512, 0x11));
    EXPECT_TRUE(f.disk->discards().empty());

    // UNMAP with a zero block deallocates; with a non-zero block it writes.
    reply = data_out(*f.lun, rw16(op::write_same_16, 20, 3000, 0x08), std::vector<uint8_t>(512, 0));
    ASSERT_TRUE(reply.good());
    ASSERT_EQ(f.disk->discards().size(), 1u);
    EXPECT_EQ(f.disk->discards()[0], (std::pair<uint64_t, uint64_t> { 20 * 512, 3000 * 512 }));
    reply = data_out(*f.lun, rw16(op::write_same_16, 4000, 3000, 0x08), block);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(f.disk->discards().size(), 1u);
    EXPECT_EQ(f.disk->bytes()[6999 * 512 + 1], block[1]);
    // NDOB: zeroes without a Data-Out buffer.
    reply = no_data(*f.lun, rw16(op::write_same_16, 30, 2, 0x09));
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(reply.outcome.transferred, 0u);
    EXPECT_EQ(f.disk->discards().size(), 2u);

    expect_sense(data_out(*f.lun, rw10(op::write_same_10, 10, 0), block), illegal, 0x24); // WSNZ
    expect_sense(no_data(*f.lun, rw10(op::write_same_10, 10, 1, 0x01)), illegal, 0x24); // no NDOB in WS(10)
    expect_sense(data_out(*f.lun, rw10(op::write_same_10, 10, 1, 0x10), block), illegal, 0x24); // ANCHOR
    expect_sense(data_out(*f.lun, rw10(op::write_same_10, 10, 1, 0x02), block), illegal, 0x24); // LBDATA
    expect_sense(data_out(*f.lun, rw16(op::write_same_16, (8u << 20) / 512, 1), block), illegal, 0x21);
    EXPECT_TRUE(data_out(*f.lun, rw10(op::write_same_10, 10, 1), std::vector<uint8_t>(100)).outcome.buffer_too_small);
}

TEST(ScsiDiskTest, ReadOnlyDiskRefusesEveryWrite)
{
    for (const bool by_option : { false, true }) {
        ScsiDiskOptions options;
        options.read_only = by_option;
        auto f = make_disk(8 << 20, 512, options, 0, !by_option);
        EXPECT_TRUE(f.lun->read_only());
        const std::vector<uint8_t> block(512, 1);
        expect_sense(data_out(*f.lun, rw10(op::write_10, 0, 1), block), wire::sense_key::data_protect, 0x27);
        expect_sense(data_out(*f.lun, rw6(op::write_6, 0, 1), block), wire::sense_key::data_protect, 0x27);
        expect_sense(data_out(*f.lun, rw16(op::write_16, 0, 0), {}), wire::sense_key::data_protect, 0x27);
        expect_sense(data_out(*f.lun, rw10(op::write_same_10, 0, 1), block), wire::sense_key::data_protect, 0x27);
        const auto list = unmap_list({ { 0, 1 } });
        expect_sense(
            data_out(*f.lun, unmap(static_cast<uint16_t>(list.size())), list), wire::sense_key::data_protect, 0x27);
        EXPECT_TRUE(data_in(*f.lun, rw10(op::read_10, 0, 1), 512).good());
        EXPECT_TRUE(no_data(*f.lun, rw10(op::synchronize_cache_10, 0, 0)).good());
        EXPECT_EQ(f.disk->bytes()[0], pattern_byte(0, 0x11));
    }
}

TEST(ScsiDiskTest, IoErrorsAreMediumErrors)
{
    auto f = make_disk();
    std::vector<size_t> pages(8, 512);
    f.disk->fail_reads_at(12 * 512);
    auto reply = data_in(*f.lun, rw10(op::read_10, 10, 8), 8 * 512, pages);
    expect_sense(reply, wire::sense_key::medium_error, 0x11);
    EXPECT_TRUE(reply.outcome.sense.information_valid());
    EXPECT_EQ(reply.outcome.sense.information(), 12u);
    EXPECT_EQ(reply.outcome.transferred, 2u * 512) << "the blocks before the failure arrived";
    ASSERT_TRUE(reply.outcome.host_error);
    EXPECT_NE(reply.outcome.host_error->message().find("injected"), std::string::npos);

    f.disk->fail_writes_at(5 * 512);
    reply = data_out(*f.lun, rw10(op::write_10, 4, 4), std::vector<uint8_t>(4 * 512, 1), { 512, 512, 1024 });
    expect_sense(reply, wire::sense_key::medium_error, 0x0c);
    EXPECT_EQ(reply.outcome.sense.information(), 5u);
    EXPECT_EQ(reply.outcome.transferred, 512u);

    f.disk->fail_writes_at(UINT64_MAX);
    f.disk->fail_flush(true);
    reply = data_out(*f.lun, rw10(op::write_10, 4, 1, 0x08), std::vector<uint8_t>(512, 1));
    expect_sense(reply, wire::sense_key::medium_error, 0x0c);
}

TEST(ScsiDiskTest, CapacityChangeIsAUnitAttention)
{
    auto f = make_disk();
    f.disk->set_size(16 << 20);
    f.lun->notify_capacity_changed();
    EXPECT_TRUE(data_in(*f.lun, inquiry(false, 0, 36), 36).good()) << "INQUIRY is not affected";
    expect_sense(no_data(*f.lun, test_unit_ready()), wire::sense_key::unit_attention, 0x2a, 0x09);
    EXPECT_TRUE(no_data(*f.lun, test_unit_ready()).good()) << "reported once";
    EXPECT_EQ(be32(data_in(*f.lun, read_capacity_10(), 8).data, 0), (16u << 20) / 512 - 1);
    f.lun->notify_capacity_changed();
    auto reply = data_in(*f.lun, request_sense(18), 18);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(reply.data[2], wire::sense_key::unit_attention);
    EXPECT_EQ(reply.data[12], 0x2a);
    EXPECT_TRUE(no_data(*f.lun, test_unit_ready()).good()) << "REQUEST SENSE cleared it";
}

TEST(ScsiDiskTest, ConcurrentIoFromManyThreads)
{
    auto f = make_disk(16 << 20, 512);
    std::vector<std::thread> threads;
    std::atomic<int> failures { 0 };
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            const uint32_t base = static_cast<uint32_t>(t) * 4096;
            for (int i = 0; i < 200; ++i) {
                const uint32_t lba = base + static_cast<uint32_t>(i % 64) * 8;
                const auto data = pattern(lba * 512ull, 4096, static_cast<uint8_t>(t));
                std::vector<uint8_t> memory = data;
                SpanDataBuffer out(memory);
                if (!f.lun->execute(ScsiCommand::make(rw10(op::write_10, lba, 8), DataDirection::Out, 4096), out)
                         .good())
                    ++failures;
                std::vector<uint8_t> back(4096);
                SpanDataBuffer in(back);
                if (!f.lun->execute(ScsiCommand::make(rw10(op::read_10, lba, 8), DataDirection::In, 4096), in).good()
                    || back != data)
                    ++failures;
            }
        });
    }
    for (auto& thread : threads)
        thread.join();
    EXPECT_EQ(failures.load(), 0);
}

} // namespace
} // namespace vmgen::vm::scsi
