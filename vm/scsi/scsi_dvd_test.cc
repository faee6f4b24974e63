// ScsiDvd over in-memory media: removable media, unit attentions and events, the MMC reports, and the hostile
// cases.
#include "vm/scsi/scsi_dvd.h"

#include "vm/scsi/memory_disk.h"
#include "vm/scsi/scsi_test_initiator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace vmgen::vm::scsi {
namespace {

using namespace testing;
namespace wire = protocols::scsi;

constexpr uint8_t illegal = wire::sense_key::illegal_request;

void expect_sense(const Reply& reply, uint8_t key, uint8_t asc, uint8_t ascq = 0)
{
    EXPECT_EQ(reply.outcome.status, ScsiStatus::CheckCondition);
    EXPECT_EQ(reply.key(), key);
    EXPECT_EQ(reply.asc(), asc);
    EXPECT_EQ(reply.ascq(), ascq);
}

// A CD-sized medium with a pattern (512-byte sectors, like a raw ISO).
std::unique_ptr<MemoryDisk> cd_medium(uint32_t blocks = 300, uint8_t seed = 0x22)
{
    auto disk = std::make_unique<MemoryDisk>(uint64_t { blocks } * 2048, 512, 0, true);
    for (size_t i = 0; i < disk->bytes().size(); ++i)
        disk->bytes()[i] = pattern_byte(i, seed);
    return disk;
}

// A DVD-sized medium that reads as zeroes without holding memory.
class ZeroMedium final : public disk::BlockDevice {
public:
    explicit ZeroMedium(uint64_t size)
    {
        m_info.virtual_size = size;
        m_info.logical_sector_size = 2048;
    }
    const disk::DiskInfo& info() const override { return m_info; }
    bool read_only() const override { return true; }
    Result<void> read(uint64_t, std::span<uint8_t> out) override
    {
        std::fill(out.begin(), out.end(), 0);
        return {};
    }
    Result<void> write(uint64_t, std::span<const uint8_t>) override { return fail("read-only"); }
    Result<void> flush() override { return {}; }
    Result<void> discard(uint64_t, uint64_t) override { return fail("read-only"); }

private:
    disk::DiskInfo m_info;
};

// Clears the unit attention a fresh medium raises.
void settle(ScsiDvd& dvd)
{
    (void)no_data(dvd, test_unit_ready());
}

TEST(ScsiDvdTest, EmptyDrive)
{
    ScsiDvd dvd({});
    EXPECT_FALSE(dvd.has_media());
    auto reply = data_in(dvd, inquiry(false, 0, 96), 96);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(reply.data[0], 0x05);
    EXPECT_EQ(reply.data[1], 0x80) << "removable";
    EXPECT_EQ(std::string(reply.data.begin() + 16, reply.data.begin() + 32), "Virtual DVD-ROM ");
    EXPECT_EQ(be16(reply.data, 62), 0x04e0) << "MMC-6";

    expect_sense(no_data(dvd, test_unit_ready()), wire::sense_key::not_ready, 0x3a);
    expect_sense(data_in(dvd, read_capacity_10(), 8), wire::sense_key::not_ready, 0x3a);
    expect_sense(data_in(dvd, rw10(op::read_10, 0, 1), 2048), wire::sense_key::not_ready, 0x3a);
    expect_sense(data_in(dvd, read_toc(false, 0, 0, 12), 12), wire::sense_key::not_ready, 0x3a);
    expect_sense(data_in(dvd, read_disc_information(34), 34), wire::sense_key::not_ready, 0x3a);
    expect_sense(data_in(dvd, read_dvd_structure(0, 2052), 2052), wire::sense_key::not_ready, 0x3a);
    reply = data_in(dvd, request_sense(18), 18);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(reply.data[2], wire::sense_key::not_ready);
    EXPECT_EQ(reply.data[12], 0x3a);

    reply = data_in(dvd, get_configuration(0, 0, 32), 32);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(be16(reply.data, 6), 0) << "no current profile";
    reply = data_in(dvd, get_event_status(0x10, 8), 8);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(reply.data[2], 4);
    EXPECT_EQ(reply.data[4], 0) << "no event";
    EXPECT_EQ(reply.data[5], 0) << "no medium";
    EXPECT_TRUE(no_data(dvd, prevent_allow(1)).good());
    EXPECT_TRUE(no_data(dvd, start_stop_unit(0x03)).good()) << "load with nothing to load";
}

TEST(ScsiDvdTest, InsertReportsOnceThenReads)
{
    ScsiDvd dvd({});
    ASSERT_TRUE(dvd.change_media(cd_medium(300)));
    EXPECT_TRUE(dvd.has_media());
    // INQUIRY, GET CONFIGURATION and GET EVENT STATUS NOTIFICATION are not affected by the unit attention.
    EXPECT_TRUE(data_in(dvd, inquiry(false, 0, 36), 36).good());
    EXPECT_TRUE(data_in(dvd, get_configuration(0, 0, 8), 8).good());
    auto reply = data_in(dvd, get_event_status(0x10, 8), 8);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(be16(reply.data, 0), 6);
    EXPECT_EQ(reply.data[4], wire::media_event_new_media);
    EXPECT_EQ(reply.data[5], wire::media_status_present);
    reply = data_in(dvd, get_event_status(0x10, 8), 8);
    EXPECT_EQ(reply.data[4], 0) << "an event is reported once";

    expect_sense(data_in(dvd, rw10(op::read_10, 0, 1), 2048), wire::sense_key::unit_attention, 0x28);
    EXPECT_TRUE(no_data(dvd, test_unit_ready()).good());

    reply = data_in(dvd, read_capacity_10(), 8);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(be32(reply.data, 0), 299u);
    EXPECT_EQ(be32(reply.data, 4), 2048u);
    reply = data_in(dvd, rw10(op::read_10, 16, 2), 4096);
    ASSERT_TRUE(reply.good());
    EXPECT_EQ(reply.data, pattern(16 * 2048, 4096, 0x22));
    reply = data_in(dvd, rw12(op::read_12, 299, 1), 2048, { 1000, 1048 });
    EXPECT_EQ(reply.data, pattern(299 * 2048, 2048, 0x22));
}

TEST(ScsiDvdTest, RequestSenseReportsAndClearsTheUnitAttention)
{
    ScsiDvd dvd({});
    ASSERT_TRUE(dvd.change_media(cd_medium()));
    auto reply = data_in(dvd, request_sense(18), 18);
    EXPECT_EQ(reply.data[2], wire::sense_key::unit_attention);
    EXPECT_EQ(reply.data[12], 0x28);
    EXPECT_TRUE(no_data(dvd, test_unit_ready()).good());
    reply = data_in(dvd, request_sense(18), 18);
    EXPECT_EQ(reply.data[2], 0);
}

TEST(ScsiDvdTest, ChangeMediaChecksTheMedium)
{
    ScsiDvd dvd({});
    EXPECT_FALSE(dvd.change_media(std::make_unique<MemoryDisk>(8192, 4096)));
    EXPECT_FALSE(dvd.change_media(std::make_unique<MemoryDisk>(1024, 512)));
    EXPECT_FALSE(dvd.has_media());
    // A size that is not a whole number of blocks: the tail is not addressable.
    ASSERT_TRUE(dvd.change_media(std::make_unique<MemoryDisk>(2048 * 3 + 512, 512)));
    settle(dvd);
    EXPECT_EQ(be32(data_in(dvd, read_capacity_10(), 8).data, 0), 2u);
    expect_sense(data_in(dvd, rw10(op::read_10, 3, 1), 2048), illegal, 0x21);
}

TEST(ScsiDvdTest, HostRemovesAndReplaces)
{
    ScsiDvd dvd({});
    ASSERT_TRUE(dvd.change_media(cd_medium(300, 1)));
    settle(dvd);
    (void)data_in(dvd, get_event_status(0x10, 8), 8);
    ASSERT_TRUE(dvd.change_media(nullptr));
    auto reply = data_in(dvd, get_event_status(0x10, 8), 8);
    EXPECT_EQ(reply.data[4], wire::media_event_removal);
    EXPECT_EQ(reply.data[5], 0);
    expect_sense(no_data(dvd, test_unit_ready()), wire::sense_key::not_ready, 0x3a);

    ASSERT_TRUE(dvd.change_media(cd_medium(300, 2)));
    ASSERT_TRUE(dvd.change_media(cd_medium(400, 3))); // a swap: one unit attention, the new medium
    expect_sense(no_data(dvd, test_unit_ready()), wire::sense_key::unit_attention, 0x28);
    EXPECT_TRUE(no_data(dvd, test_unit_ready()).good());
    EXPECT_EQ(be32(data_in(dvd, read_capacity_10(), 8).data, 0), 399u);
    EXPECT_EQ(data_in(dvd, rw10(op::read_10, 0, 1), 2048).data, pattern(0, 2048, 3));
}

TEST(ScsiDvdTest, GuestLockAndEject)
{
    int ejected = 0;
    ScsiDvdOptions options;
    options.on_guest_eject = [&] { ++ejected; };
    ScsiDvd dvd(options);
    ASSERT_TRUE(dvd.change_media(cd_medium()));
    settle(dvd);
    (void)data_in(dvd, get_event_status(0x10, 8), 8);

    EXPECT_TRUE(no_data(dvd, prevent_allow(1)).good());
    EXPECT_TRUE(dvd.removal_prevented());
    auto page = data_in(dvd, mode_sense_10(0x2a, 64), 64);
    EXPECT_EQ(page.data[8 + 6] & 0x03, 0x03) << "lock supported, locked";
    expect_sense(no_data(dvd, start_stop_unit(0x02)), illegal, 0x53, 0x02);
    EXPECT_TRUE(dvd.has_media());

    // The eject button while locked: the guest hears about it.
    EXPECT_FALSE(dvd.request_eject());
    EXPECT_TRUE(dvd.has_media());
    EXPECT_EQ(data_in(dvd, get_event_status(0x10, 8), 8).data[4], wire::media_event_eject_request);

    EXPECT_TRUE(no_data(dvd, prevent_allow(0)).good());
    EXPECT_TRUE(no_data(dvd, start_stop_unit(0x02)).good());
    EXPECT_FALSE(dvd.has_media());
    EXPECT_EQ(ejected, 1);
    EXPECT_EQ(data_in(dvd, get_event_status(0x10, 8), 8).data[4], wire::media_event_removal);
    EXPECT_TRUE(no_data(dvd, start_stop_unit(0x02)).good()) << "ejecting an empty drive";
    EXPECT_EQ(ejected, 1);

    // The button when unlocked removes the medium at once; a reset ends the prevention.
    ASSERT_TRUE(dvd.change_media(cd_medium()));
    expect_sense(no_data(dvd, prevent_allow(1)), wire::sense_key::unit_attention, 0x28); // the new medium first
    EXPECT_TRUE(no_data(dvd, prevent_allow(1)).good());
    dvd.reset();
    EXPECT_FALSE(dvd.removal_prevented());
    EXPECT_TRUE(dvd.request_eject());
    EXPECT_FALSE(dvd.has_media());
    EXPECT_TRUE(dvd.request_eject());
}

TEST(ScsiDvdTest, GetConfiguration)
{
    ScsiDvd dvd({});
    ASSERT_TRUE(dvd.change_media(cd_medium()));
    // What cdrom_mmc3_profile asks: 32 bytes from feature 0.
    auto reply = data_in(dvd, get_configuration(0, 0, 32), 32);
    ASSERT_TRUE(reply.good());
    ASSERT_EQ(reply.data.size(), 32u);
    EXPECT_EQ(be16(reply.data, 6), wire::profile::cd_rom);
    const uint32_t total = be32(reply.data, 0) + 4;
    EXPECT_EQ(be16(reply.data, 8), 0x0000);
    EXPECT_EQ(reply.data[11], 8) << "two profile descriptors";
    EXPECT_EQ(be16(reply.data, 12), wire::profile::dvd_rom);
    EXPECT_EQ(reply.data[14] & 1, 0);
    EXPECT_EQ(be16(reply.data, 16), wire::profile::cd_rom);
    EXPECT_EQ(reply.data[18] & 1, 1) << "CD-ROM current";

    reply = data_in(dvd, get_configuration(0, 0, 1024), 1024);
    ASSERT_EQ(reply.data.size(), total);
    std::vector<uint16_t> codes;
    std::vector<bool> current;
    for (size_t at = 8; at + 4 <= reply.data.size(); at += size_t { 4 } + reply.data[at + 3]) {
        codes.push_back(be16(reply.data, at));
        current.push_back((reply.data[at + 2] & 1) != 0);
    }
    EXPECT_EQ(codes, (std::vector<uint16_t> { 0x0000, 0x0001, 0x0002, 0x0003, 0x0010, 0x001e, 0x001f }));
    EXPECT_EQ(current, (std::vector<bool> { true, true, true, true, true, true, false }));

    // RT 1: current features only; RT 2: exactly one.
    reply = data_in(dvd, get_configuration(1, 0x0010, 1024), 1024);
    EXPECT_EQ(reply.data.size(), 8u + 12 + 8);
    reply = data_in(dvd, get_configuration(2, 0x001f, 1024), 1024);
    ASSERT_EQ(reply.data.size(), 8u + 8);
    EXPECT_EQ(be16(reply.data, 8), 0x001f);
    // What cdrom_is_mrw / cdrom_get_random_writable ask: MRW (0x28) and Random Writable (0x20) are not there.
    reply = data_in(dvd, get_configuration(0, 0x0028, 16), 16);
    EXPECT_EQ(reply.data.size(), 8u) << "no feature at or after 0x28";
    reply = data_in(dvd, get_configuration(0, 0x0020, 24), 24);
    EXPECT_EQ(reply.data.size(), 8u);
    expect_sense(data_in(dvd, get_configuration(3, 0, 64), 64), illegal, 0x24);

    ScsiDvd big({});
    ASSERT_TRUE(big.change_media(std::make_unique<ZeroMedium>(1ull << 30)));
    reply = data_in(big, get_configuration(0, 0, 32), 32);
    EXPECT_EQ(be16(reply.data, 6), wire::profile::dvd_rom);
}

TEST(ScsiDvdTest, EventStatusRefusalsAndClasses)
{
    ScsiDvd dvd({});
    ASSERT_TRUE(dvd.change_media(cd_medium()));
    expect_sense(data_in(dvd, get_event_status(0x10, 8, false), 8), illegal, 0x24);
    auto reply = data_in(dvd, get_event_status(0x02, 8), 8); // operational change only: not supported
    ASSERT_TRUE(reply.good());
    ASSERT_EQ(reply.data.size(), 4u);
    EXPECT_EQ(reply.data[2], 0x80) << "NEA";
    EXPECT_EQ(reply.data[3], 0x10);
    // A 4-byte ask does not consume the event.
    reply = data_in(dvd, get_event_status(0x10, 4), 4);
    EXPECT_EQ(be16(reply.data, 0), 6);
    EXPECT_EQ(data_in(dvd, get_event_status(0x10, 8), 8).data[4], wire::media_event_new_media);
}

TEST(ScsiDvdTest, ReadToc)
{
    ScsiDvd dvd({});
    ASSERT_TRUE(dvd.change_media(cd_medium(300)));
    settle(dvd);
    auto reply = data_in(dvd, read_toc(false, 0, 0, 100), 100);
    ASSERT_TRUE(reply.good());
    ASSERT_EQ(reply.data.size(), 4u + 16);
    EXPECT_EQ(be16(reply.data, 0), 18);
    EXPECT_EQ(reply.data[2], 1);
    EXPECT_EQ(reply.data[3], 1);
    EXPECT_EQ(reply.data[5], 0x14);
    EXPECT_EQ(reply.data[6], 1);
    EXPECT_EQ(be32(reply.data, 8), 0u);
    EXPECT_EQ(reply.data[14], 0xaa);
    EXPECT_EQ(be32(reply.data, 16), 300u);

    reply = data_in(dvd, read_toc(true, 0, 1, 100), 100);
    EXPECT_EQ(
        (std::vector<uint8_t>(reply.data.begin() + 8, reply.data.begin() + 12)), (std::vector<uint8_t> { 0, 0, 2, 0 }))
        << "track 1 at 00:02:00";
    // Lead-out at LBA 300 + 150 = 450 frames = 00:06:00.
    EXPECT_EQ((std::vector<uint8_t>(reply.data.begin() + 16, reply.data.begin() + 20)),
        (std::vector<uint8_t> { 0, 0, 6, 0 }));
    reply = data_in(dvd, read_toc(false, 0, 0xaa, 100), 100);
    ASSERT_EQ(reply.data.size(), 12u);
    EXPECT_EQ(reply.data[6], 0xaa);
    expect_sense(data_in(dvd, read_toc(false, 0, 2, 100), 100), illegal, 0x24);

    // Session information, asked the SFF-8020 way as Linux's sr_cd_check does (format in the control byte).
    reply = data_in(dvd, read_toc(false, 0, 0, 12, 0x40), 12);
    ASSERT_EQ(reply.data.size(), 12u);
    EXPECT_EQ(be16(reply.data, 0), 10);
    EXPECT_EQ(reply.data[6], 1) << "first track in last session";
    EXPECT_EQ(be32(reply.data, 8), 0u);
    EXPECT_EQ(data_in(dvd, read_toc(false, 1, 0, 12), 12).data, reply.data);
    expect_sense(data_in(dvd, read_toc(false, 2, 0, 100), 100), illegal, 0x24);
    expect_sense(data_in(dvd, read_toc(false, 5, 0, 100), 100), illegal, 0x24);
    // What sr_read_tochdr asks: 12 bytes, truncated response, full length in the header.
    reply = data_in(dvd, read_toc(false, 0, 0, 12), 12);
    EXPECT_EQ(reply.data.size(), 12u);
    EXPECT_EQ(be16(reply.data, 0), 18);
}

TEST(ScsiDvdTest, DiscAndTrackInformation)
{
    ScsiDvd dvd({});
    ASSERT_TRUE(dvd.change_media(cd_medium(300)));
    settle(dvd);
    // cdrom_get_disc_info asks for 2 bytes first, then the length it got.
    auto reply = data_in(dvd, read_disc_information(2), 2);
    ASSERT_EQ(reply.data.size(), 2u);
    EXPECT_EQ(be16(reply.data, 0), 32);
    reply = data_in(dvd, read_disc_information(34), 34);
    ASSERT_EQ(reply.data.size(), 34u);
    EXPECT_EQ(reply.data[2] & 0x03, 2) << "complete disc";
    EXPECT_EQ(reply.data[6], 1) << "last track in last session";
    auto bad = read_disc_information(34);
    bad[1] = 1;
    expect_sense(data_in(dvd, bad, 34), illegal, 0x24);

    reply = data_in(dvd, read_track_information(1, 1, 8), 8);
    EXPECT_EQ(be16(reply.data, 0), 34);
    reply = data_in(dvd, read_track_information(1, 1, 36), 36);
    ASSERT_EQ(reply.data.size(), 36u);
    EXPECT_EQ(reply.data[2], 1);
    EXPECT_EQ(reply.data[6] & 0x40, 0) << "not blank";
    EXPECT_EQ(reply.data[7] & 0x02, 0) << "no LRA_V: Linux computes start + size";
    EXPECT_EQ(be32(reply.data, 8), 0u);
    EXPECT_EQ(be32(reply.data, 24), 300u);
    EXPECT_TRUE(data_in(dvd, read_track_information(0, 299, 36), 36).good());
    expect_sense(data_in(dvd, read_track_information(0, 300, 36), 36), illegal, 0x21);
    EXPECT_TRUE(data_in(dvd, read_track_information(2, 1, 36), 36).good());
    expect_sense(data_in(dvd, read_track_information(1, 2, 36), 36), illegal, 0x24);
    expect_sense(data_in(dvd, read_track_information(1, 0xff, 36), 36), illegal, 0x24);
    expect_sense(data_in(dvd, read_track_information(3, 1, 36), 36), illegal, 0x24);
}

TEST(ScsiDvdTest, DvdStructureAndPerformance)
{
    ScsiDvd dvd({});
    ASSERT_TRUE(dvd.change_media(std::make_unique<ZeroMedium>(1ull << 30)));
    settle(dvd);
    auto reply = data_in(dvd, read_dvd_structure(0, 2052), 2052);
    ASSERT_TRUE(reply.good());
    ASSERT_EQ(reply.data.size(), 2052u);
    EXPECT_EQ(be16(reply.data, 0), 2050);
    EXPECT_EQ(reply.data[4] >> 4, 0) << "DVD-ROM book";
    EXPECT_EQ(be32(reply.data, 8), 0x30000u);
    EXPECT_EQ(be32(reply.data, 12), 0x30000u + (1u << 30) / 2048 - 1);
    reply = data_in(dvd, read_dvd_structure(1, 8), 8);
    EXPECT_EQ(be16(reply.data, 0), 6);
    reply = data_in(dvd, read_dvd_structure(0xff, 100), 100);
    EXPECT_EQ(be16(reply.data, 0), 2 + 12);
    expect_sense(data_in(dvd, read_dvd_structure(0, 2052, 1), 2052), illegal, 0x24);
    expect_sense(data_in(dvd, read_dvd_structure(0x04, 2052), 2052), illegal, 0x24);

    reply = data_in(dvd, get_performance(0, 1), 24);
    ASSERT_TRUE(reply.good());
    ASSERT_EQ(reply.data.size(), 24u);
    EXPECT_EQ(be32(reply.data, 0), 20u);
    EXPECT_EQ(be32(reply.data, 16), (1u << 30) / 2048 - 1);
    EXPECT_EQ(data_in(dvd, get_performance(0x04, 1), 24).data.size(), 8u) << "write performance: none";
    EXPECT_EQ(data_in(dvd, get_performance(0, 0), 24).data.size(), 8u);
    expect_sense(data_in(dvd, get_performance(0, 1, 3), 24), illegal, 0x24);
    EXPECT_TRUE(no_data(dvd, { op::set_cd_speed, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0 }).good());

    ScsiDvd cd({});
    ASSERT_TRUE(cd.change_media(cd_medium()));
    settle(cd);
    expect_sense(data_in(cd, read_dvd_structure(0, 2052), 2052), illegal, 0x30, 0x02);
}

TEST(ScsiDvdTest, ModePages)
{
    ScsiDvd dvd({});
    // What sr's get_capabilities asks: MODE SENSE(6), page 2Ah, 128 bytes.
    auto reply = data_in(dvd, mode_sense_6(0x2a, 128), 128);
    ASSERT_TRUE(reply.good());
    ASSERT_EQ(reply.data.size(), 4u + 22);
    EXPECT_EQ(reply.data[0], 25);
    EXPECT_EQ(reply.data[3], 0) << "no block descriptor";
    const size_t n = 4;
    EXPECT_EQ(reply.data[n], 0x2a);
    EXPECT_EQ(reply.data[n + 1], 0x14);
    EXPECT_EQ(reply.data[n + 2] & 0x08, 0x08) << "reads DVD-ROM";
    EXPECT_EQ(reply.data[n + 3], 0) << "writes nothing";
    EXPECT_EQ(reply.data[n + 6] >> 5, 1) << "tray";
    EXPECT_EQ(reply.data[n + 6] & 0x08, 0x08) << "can eject";
    EXPECT_EQ(be16(reply.data, n + 8) / 176, 24);
    reply = data_in(dvd, mode_sense_10(0x3f, 200), 200);
    EXPECT_EQ(be16(reply.data, 0), 6 + 22);
    expect_sense(data_in(dvd, mode_sense_6(0x08, 128), 128), illegal, 0x24);
    expect_sense(data_in(dvd, mode_sense_10(0x2a, 128, false, false, 3), 128), illegal, 0x39);

    EXPECT_TRUE(data_out(dvd, mode_select_10(8), std::vector<uint8_t>(8, 0)).good());
    std::vector<uint8_t> blocklength = { 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x08, 0x00 };
    EXPECT_TRUE(data_out(dvd, mode_select_6(12), blocklength).good());
    blocklength[10] = 0x02;
    expect_sense(data_out(dvd, mode_select_6(12), blocklength), illegal, 0x26);
    std::vector<uint8_t> with_page = { 0, 0, 0, 0, 0x2a, 0x02, 0, 0 };
    expect_sense(data_out(dvd, mode_select_6(8), with_page), illegal, 0x26);
}

TEST(ScsiDvdTest, HostileCommands)
{
    ScsiDvd dvd({});
    ASSERT_TRUE(dvd.change_media(cd_medium(300)));
    settle(dvd);
    expect_sense(data_in(dvd, rw10(op::read_10, 299, 2), 4096), illegal, 0x21);
    expect_sense(data_in(dvd, rw12(op::read_12, 0xffffffff, 0xffffffff), 4096), illegal, 0x21);
    auto reply = data_in(dvd, rw10(op::read_10, 0, 3), 4096);
    expect_sense(reply, illegal, 0x24);
    EXPECT_TRUE(reply.outcome.buffer_too_small);
    EXPECT_TRUE(run(dvd, rw10(op::read_10, 0, 1), DataDirection::Out, 2048, std::vector<uint8_t>(2048))
                    .outcome.buffer_too_small);
    expect_sense(data_in(dvd, rw10(op::read_10, 0, 1, 0x20), 2048), illegal, 0x24);
    // A DVD-ROM drive does not write.
    for (const auto& cdb : { rw10(op::write_10, 0, 1), rw12(op::write_12, 0, 1), rw16(op::write_16, 0, 1),
             rw6(op::write_6, 0, 1), rw10(op::synchronize_cache_10, 0, 0) })
        expect_sense(data_out(dvd, cdb, std::vector<uint8_t>(2048)), illegal, 0x20);
    const auto list = unmap_list({ { 0, 1 } });
    expect_sense(data_out(dvd, unmap(static_cast<uint16_t>(list.size())), list), illegal, 0x20);
    auto short_cdb = get_configuration(0, 0, 32);
    short_cdb.resize(9);
    expect_sense(data_in(dvd, short_cdb, 32), illegal, 0x20);
    expect_sense(data_in(dvd, inquiry(true, 0xb0, 64), 64), illegal, 0x24);
    EXPECT_TRUE(data_in(dvd, inquiry(true, 0x83, 64), 64).good());
}

TEST(ScsiDvdTest, MediaChangesWhileReading)
{
    ScsiDvd dvd({});
    ASSERT_TRUE(dvd.change_media(cd_medium(64, 5)));
    std::atomic<bool> stop { false };
    std::atomic<int> wrong { 0 };
    std::vector<std::thread> readers;
    for (int t = 0; t < 4; ++t) {
        readers.emplace_back([&] {
            std::vector<uint8_t> memory(8 * 2048);
            while (!stop.load()) {
                SpanDataBuffer buffer(memory);
                const auto outcome
                    = dvd.execute(ScsiCommand::make(rw10(op::read_10, 8, 8), DataDirection::In, 8 * 2048), buffer);
                if (outcome.good()) {
                    // Whichever medium it read, the data is that medium's.
                    const uint8_t seed = static_cast<uint8_t>(memory[0] - pattern_byte(8 * 2048, 0));
                    if (memory != pattern(8 * 2048, memory.size(), seed))
                        ++wrong;
                } else if (outcome.sense.key() != wire::sense_key::unit_attention
                    && outcome.sense.key() != wire::sense_key::not_ready) {
                    ++wrong;
                }
            }
        });
    }
    for (int i = 0; i < 200; ++i) {
        if (i % 3 == 0)
            ASSERT_TRUE(dvd.change_media(nullptr));
        else
            ASSERT_TRUE(dvd.change_media(cd_medium(64, static_cast<uint8_t>(i))));
    }
    stop.store(true);
    for (auto& reader : readers)
        reader.join();
    EXPECT_EQ(wrong.load(), 0);
}

} // namespace
} // namespace vmgen::vm::scsi
