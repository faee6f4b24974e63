// The command sequences Linux 6.1 sends when it finds a disk (scsi_scan.c, scsi.c, sd.c) and a DVD drive (sr.c,
// sr_ioctl.c, sr_vendor.c, cdrom.c) behind storvsc, replayed against our LUNs. Each step parses the answer the
// way the kernel does and the test checks the conclusions the kernel would draw (capacity, block sizes, write
// protect, write cache and FUA, discard mode, rotation, CD capabilities, multisession offset, media events).
// storvsc's settings: BLIST_REPORTLUN2 | BLIST_TRY_VPD_PAGES, no_report_opcodes (no REPORT SUPPORTED OPERATION
// CODES), max_cmd_len 16; use_10_for_ms stays 0, so mode pages are read with MODE SENSE(6).
#include "vm/scsi/memory_disk.h"
#include "vm/scsi/scsi_disk.h"
#include "vm/scsi/scsi_dvd.h"
#include "vm/scsi/scsi_test_initiator.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>

namespace vmgen::vm::scsi {
namespace {

using namespace testing;

// An initiator that logs every command as "<name> <allocation>" and requires GOOD status unless told otherwise.
class LinuxInitiator {
public:
    explicit LinuxInitiator(ScsiLun& lun)
        : m_lun(lun)
    {
    }

    Reply in(const std::string& name, const std::vector<uint8_t>& cdb, uint32_t length)
    {
        m_log.push_back(fmt::format("{} {}", name, length));
        return data_in(m_lun, cdb, length);
    }
    Reply none(const std::string& name, const std::vector<uint8_t>& cdb)
    {
        m_log.push_back(name);
        return no_data(m_lun, cdb);
    }
    // scsi_test_unit_ready: retried while the answer is a unit attention (3 tries).
    Reply test_unit_ready_retrying()
    {
        Reply reply;
        for (int tries = 0; tries < 3; ++tries) {
            reply = none("TEST UNIT READY", testing::test_unit_ready());
            if (reply.good() || reply.key() != protocols::scsi::sense_key::unit_attention)
                break;
        }
        return reply;
    }
    // scsi_vpd_inquiry: the page's length + 4, or -1 (failed, wrong page, zero length).
    int vpd_inquiry(uint8_t page, uint16_t length, std::vector<uint8_t>* out = nullptr)
    {
        const Reply reply = in(fmt::format("INQUIRY VPD {:02x}", page), inquiry(true, page, length), length);
        if (!reply.good() || reply.data.size() < 4 || reply.data[1] != page || be16(reply.data, 2) == 0)
            return -1;
        if (out)
            *out = reply.data;
        return be16(reply.data, 2) + 4;
    }
    // scsi_get_vpd_buf: the page, or empty.
    std::vector<uint8_t> get_vpd_buf(uint8_t page)
    {
        int size = 0;
        if (page != 0) { // scsi_get_vpd_size: is the page in the list?
            std::vector<uint8_t> list;
            const int result = vpd_inquiry(0, 36, &list);
            if (result < 4)
                return {};
            if (std::find(list.begin() + 4, list.end(), page) == list.end())
                return {};
        }
        size = vpd_inquiry(page, 4);
        if (size < 4)
            return {};
        std::vector<uint8_t> data;
        if (vpd_inquiry(page, static_cast<uint16_t>(size), &data) < 0)
            return {};
        return data;
    }
    // scsi_attach_vpd: page 0, then every page it lists that the kernel keeps.
    std::map<uint8_t, std::vector<uint8_t>> attach_vpd()
    {
        std::map<uint8_t, std::vector<uint8_t>> pages;
        const auto list = get_vpd_buf(0);
        for (size_t i = 4; i < list.size(); ++i) {
            const uint8_t page = list[i];
            if (page == 0x00 || page == 0x80 || page == 0x83 || page == 0x89 || page == 0xb0 || page == 0xb1
                || page == 0xb2)
                pages[page] = get_vpd_buf(page);
        }
        return pages;
    }
    // scsi_probe_lun: INQUIRY 36, then the length the device reports.
    std::vector<uint8_t> probe_inquiry()
    {
        Reply reply = in("INQUIRY", inquiry(false, 0, 36), 36);
        EXPECT_TRUE(reply.good());
        const int response_length = reply.data.at(4) + 5;
        if (response_length > 36) {
            reply = in("INQUIRY", inquiry(false, 0, static_cast<uint16_t>(response_length)),
                static_cast<uint32_t>(response_length));
            EXPECT_TRUE(reply.good());
        }
        return reply.data;
    }

    [[nodiscard]] const std::vector<std::string>& log() const { return m_log; }

private:
    ScsiLun& m_lun;
    std::vector<std::string> m_log;
};

// What sd concludes about a disk.
struct SdView {
    int scsi_level = 0;
    bool removable = false;
    uint64_t capacity = 0; // logical blocks
    uint32_t sector_size = 0;
    uint32_t physical_block_size = 0;
    bool lbpme = false;
    bool lbprz = false;
    bool lbpu = false;
    bool lbpws = false;
    uint32_t max_xfer_blocks = 0;
    uint32_t max_unmap_blocks = 0;
    bool nonrot = false;
    bool write_protect = false;
    bool wce = false;
    bool dpofua = false;
    uint32_t luns_reported = 0;
};

SdView sd_probe(LinuxInitiator& guest)
{
    SdView view;
    // scsi_probe_lun and scsi_add_lun.
    const auto inq = guest.probe_inquiry();
    EXPECT_EQ(inq.at(0) & 0x1f, 0);
    view.removable = (inq.at(1) & 0x80) != 0;
    view.scsi_level = (inq.at(2) & 7) + 1; // >= 2: one more than the version
    // scsi_report_lun_scan (sent to LUN 0; storvsp answers it for the target).
    Reply reply = guest.in("REPORT LUNS", report_luns(512 * 8), 512 * 8);
    EXPECT_TRUE(reply.good());
    view.luns_reported = be32(reply.data, 0) / 8;
    // scsi_attach_vpd (BLIST_TRY_VPD_PAGES).
    auto vpd = guest.attach_vpd();

    // sd_revalidate_disk: sd_spinup_disk.
    EXPECT_TRUE(guest.none("TEST UNIT READY", test_unit_ready()).good());
    // sd_read_capacity: READ CAPACITY(16) first (scsi_level > SCSI_SPC_2 and max_cmd_len 16).
    EXPECT_GT(view.scsi_level, 5);
    reply = guest.in("READ CAPACITY(16)", read_capacity_16(32), 32);
    EXPECT_TRUE(reply.good());
    view.sector_size = be32(reply.data, 8);
    view.capacity = be64(reply.data, 0) + 1;
    view.physical_block_size = (1u << (reply.data.at(13) & 0xf)) * view.sector_size;
    view.lbpme = (reply.data.at(14) & 0x80) != 0;
    view.lbprz = (reply.data.at(14) & 0x40) != 0;
    // VPD pages the kernel cached: sd_read_block_provisioning, sd_read_block_limits, sd_read_block_characteristics.
    if (view.lbpme && vpd.count(0xb2) && vpd[0xb2].size() >= 8) {
        view.lbpu = (vpd[0xb2][5] >> 7) & 1;
        view.lbpws = (vpd[0xb2][5] >> 6) & 1;
    }
    if (vpd.count(0xb0) && vpd[0xb0].size() >= 16) {
        view.max_xfer_blocks = be32(vpd[0xb0], 8);
        if (vpd[0xb0].size() >= 64 && view.lbpme && be32(vpd[0xb0], 20) && be32(vpd[0xb0], 24))
            view.max_unmap_blocks = be32(vpd[0xb0], 20);
    }
    if (vpd.count(0xb1) && vpd[0xb1].size() > 8)
        view.nonrot = be16(vpd[0xb1], 4) == 1;

    // sd_read_write_protect_flag: MODE SENSE(6), all pages, 4 bytes.
    reply = guest.in("MODE SENSE(6) 3f", mode_sense_6(0x3f, 4), 4);
    EXPECT_TRUE(reply.good());
    view.write_protect = (reply.data.at(2) & 0x80) != 0;
    // sd_read_cache_type: MODE SENSE(6) page 8, 4 bytes, then the whole length; the caching page after the
    // header and block descriptors.
    reply = guest.in("MODE SENSE(6) 08", mode_sense_6(0x08, 4), 4);
    EXPECT_TRUE(reply.good());
    const int length = reply.data.at(0) + 1;
    EXPECT_GE(length, 3);
    reply
        = guest.in("MODE SENSE(6) 08", mode_sense_6(0x08, static_cast<uint8_t>(length)), static_cast<uint32_t>(length));
    EXPECT_TRUE(reply.good());
    const size_t offset = 4 + reply.data.at(3);
    EXPECT_EQ(reply.data.at(offset) & 0x3f, 8) << "caching page where sd looks for it";
    view.wce = (reply.data.at(offset + 2) & 0x04) != 0;
    view.dpofua = (reply.data.at(2) & 0x10) != 0;
    // sd_read_app_tag_own (no protection), sd_read_write_same and sd_read_security (no_report_opcodes) send nothing.
    return view;
}

std::vector<std::string> expected_sd_log(const std::vector<uint8_t>& vpd_pages)
{
    std::vector<std::string> log = { "INQUIRY 36", "INQUIRY 74", "REPORT LUNS 4096", "INQUIRY VPD 00 4",
        fmt::format("INQUIRY VPD 00 {}", 4 + vpd_pages.size()) };
    for (const uint8_t page : vpd_pages) {
        if (page == 0) {
            log.push_back("INQUIRY VPD 00 4");
            log.push_back(fmt::format("INQUIRY VPD 00 {}", 4 + vpd_pages.size()));
            continue;
        }
        log.push_back("INQUIRY VPD 00 36");
        log.push_back(fmt::format("INQUIRY VPD {:02x} 4", page));
        log.push_back(fmt::format("INQUIRY VPD {:02x} *", page));
    }
    for (const char* line : { "TEST UNIT READY", "READ CAPACITY(16) 32", "MODE SENSE(6) 3f 4", "MODE SENSE(6) 08 4",
             "MODE SENSE(6) 08 32" })
        log.emplace_back(line);
    return log;
}

void expect_log(const std::vector<std::string>& got, const std::vector<std::string>& want)
{
    ASSERT_EQ(got.size(), want.size()) << fmt::format("got:\n  {}", fmt::join(got, "\n  "));
    for (size_t i = 0; i < got.size(); ++i) {
        if (want[i].ends_with('*'))
            EXPECT_TRUE(got[i].starts_with(want[i].substr(0, want[i].size() - 1))) << i << ": " << got[i];
        else
            EXPECT_EQ(got[i], want[i]) << i;
    }
}

TEST(ScsiLinuxProbeTest, SdProbesADisk)
{
    auto memory = std::make_unique<MemoryDisk>(64 << 20, 512, 4096);
    auto* disk = memory.get();
    auto lun = std::move(*ScsiDisk::create(std::move(memory), {}));
    LinuxInitiator guest(*lun);
    const SdView view = sd_probe(guest);
    expect_log(guest.log(), expected_sd_log({ 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2 }));
    EXPECT_EQ(view.scsi_level, 7) << "SPC-4";
    EXPECT_FALSE(view.removable);
    EXPECT_EQ(view.luns_reported, 1u);
    EXPECT_EQ(view.capacity, (64u << 20) / 512);
    EXPECT_EQ(view.sector_size, 512u);
    EXPECT_EQ(view.physical_block_size, 4096u);
    EXPECT_TRUE(view.lbpme);
    EXPECT_TRUE(view.lbprz) << "write zeroes become WRITE SAME(16) with UNMAP";
    EXPECT_TRUE(view.lbpu) << "discard uses UNMAP";
    EXPECT_TRUE(view.lbpws);
    EXPECT_EQ(view.max_unmap_blocks, (4ull << 30) / 512);
    EXPECT_EQ(view.max_xfer_blocks, (8u << 20) / 512);
    EXPECT_TRUE(view.nonrot);
    EXPECT_FALSE(view.write_protect);
    EXPECT_TRUE(view.wce);
    EXPECT_TRUE(view.dpofua);

    // Then the block layer reads the partition table, and the file system writes with FUA, flushes and discards
    // the way sd builds those commands (sd_setup_read_write_cmnd, sd_setup_flush_cmnd, sd_setup_unmap_cmnd,
    // sd_setup_write_same16_cmnd).
    EXPECT_TRUE(data_in(*lun, rw10(op::read_10, 0, 8), 4096).good());
    EXPECT_TRUE(data_out(*lun, rw10(op::write_10, 2048, 8, 0x08), std::vector<uint8_t>(4096, 7)).good());
    EXPECT_TRUE(no_data(*lun, rw10(op::synchronize_cache_10, 0, 0)).good());
    std::vector<uint8_t> unmap_data(24, 0);
    put16(unmap_data, 0, 6 + 16);
    put16(unmap_data, 2, 16);
    put64(unmap_data, 8, 2048);
    put32(unmap_data, 16, 8);
    EXPECT_TRUE(data_out(*lun, unmap(24), unmap_data).good());
    EXPECT_EQ(disk->bytes()[2048 * 512], 0);
    EXPECT_TRUE(data_out(*lun, rw16(op::write_same_16, 4096, 64, 0x08), std::vector<uint8_t>(512, 0)).good());
    EXPECT_EQ(disk->discards().size(), 2u);
}

TEST(ScsiLinuxProbeTest, SdProbesA4kReadOnlyDiskWithoutDiscard)
{
    ScsiDiskOptions options;
    options.read_only = true;
    auto lun = std::move(*ScsiDisk::create(std::make_unique<MemoryDisk>(64 << 20, 4096), options));
    LinuxInitiator guest(*lun);
    const SdView view = sd_probe(guest);
    expect_log(guest.log(), expected_sd_log({ 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2 }));
    EXPECT_EQ(view.sector_size, 4096u);
    EXPECT_EQ(view.physical_block_size, 4096u);
    EXPECT_EQ(view.capacity, (64u << 20) / 4096);
    EXPECT_FALSE(view.lbpme);
    EXPECT_EQ(view.max_unmap_blocks, 0u);
    EXPECT_TRUE(view.write_protect);
}

// What sr and the cdrom layer conclude about a drive.
struct SrView {
    int speed = 0;
    bool dvd = false;
    bool can_eject = false;
    bool mrw = false;
    bool random_writable = false;
    uint32_t ms_offset = 0;
    bool data_track = false;
    uint64_t capacity = 0; // 512-byte sectors, after get_sectorsize
    int mmc3_profile = 0;
    int media_event = 0;
};

SrView sr_probe(LinuxInitiator& guest)
{
    SrView view;
    const auto inq = guest.probe_inquiry();
    EXPECT_EQ(inq.at(0) & 0x1f, 5);
    EXPECT_EQ(inq.at(1) & 0x80, 0x80);
    (void)guest.attach_vpd();

    // sr_probe -> get_capabilities: eat unit attentions, then MODE SENSE(6) page 2Ah with 128 bytes.
    (void)guest.test_unit_ready_retrying();
    Reply reply = guest.in("MODE SENSE(6) 2a", mode_sense_6(0x2a, 128), 128);
    EXPECT_TRUE(reply.good());
    const size_t n = 4 + reply.data.at(3);
    EXPECT_LE(size_t { reply.data.at(0) } + 1, 128u);
    view.speed = be16(reply.data, n + 8) / 176;
    view.dvd = (reply.data.at(n + 2) & 0x08) != 0;
    view.can_eject = (reply.data.at(n + 6) & 0x08) != 0;
    // cdrom_probe_write_features: cdrom_is_mrw, cdrom_is_random_writable.
    reply = guest.in("GET CONFIGURATION 0028", get_configuration(0, 0x28, 16), 16);
    EXPECT_TRUE(reply.good());
    reply.data.resize(16, 0); // the kernel's buffer was zeroed
    view.mrw = be16(reply.data, 8) == 0x28;
    reply = guest.in("GET CONFIGURATION 0020", get_configuration(0, 0x20, 24), 24);
    EXPECT_TRUE(reply.good());
    reply.data.resize(24, 0);
    view.random_writable = be16(reply.data, 8) == 0x20;

    // sr_revalidate_disk: TUR, sr_cd_check (VENDOR_SCSI3: READ TOC session info the SFF-8020 way; sr_disk_status:
    // the TOC header, then each track's entry), get_sectorsize (READ CAPACITY(10); cdrom_get_last_written: disc
    // information 2 then full, track information 8 then full).
    if (!guest.test_unit_ready_retrying().good())
        return view;
    reply = guest.in("READ TOC 40", read_toc(false, 0, 0, 12, 0x40), 12);
    EXPECT_TRUE(reply.good());
    EXPECT_GE(be16(reply.data, 0), 0x0a) << "multisession capable";
    view.ms_offset = reply.data.at(6) <= 1 ? 0 : be32(reply.data, 8);
    reply = guest.in("READ TOC", read_toc(false, 0, 0, 12), 12);
    EXPECT_TRUE(reply.good());
    for (int track = reply.data.at(2); track <= reply.data.at(3); ++track) {
        const Reply entry = guest.in("READ TOC", read_toc(false, 0, static_cast<uint8_t>(track), 12), 12);
        EXPECT_TRUE(entry.good());
        if (entry.data.at(5) & 0x04)
            view.data_track = true;
    }
    reply = guest.in("READ CAPACITY(10)", read_capacity_10(), 8);
    EXPECT_TRUE(reply.good());
    uint64_t capacity = be32(reply.data, 0) + 1ull;
    reply = guest.in("READ DISC INFORMATION", read_disc_information(2), 2);
    EXPECT_TRUE(reply.good());
    const uint16_t disc_length = std::min<uint16_t>(static_cast<uint16_t>(be16(reply.data, 0) + 2), 34);
    reply = guest.in("READ DISC INFORMATION", read_disc_information(disc_length), disc_length);
    EXPECT_TRUE(reply.good());
    const uint32_t last_track = reply.data.at(6);
    reply = guest.in("READ TRACK INFORMATION", read_track_information(1, last_track, 8), 8);
    const uint16_t track_length = std::min<uint16_t>(static_cast<uint16_t>(be16(reply.data, 0) + 2), 32);
    reply = guest.in("READ TRACK INFORMATION", read_track_information(1, last_track, track_length), track_length);
    EXPECT_TRUE(reply.good());
    EXPECT_EQ(reply.data.at(6) & 0x40, 0) << "not blank";
    const uint64_t last_written
        = (reply.data.at(7) & 0x02) ? be32(reply.data, 28) : be32(reply.data, 8) + uint64_t { be32(reply.data, 24) };
    capacity = std::max(capacity, last_written);
    view.capacity = capacity * 4; // 2048-byte blocks in 512-byte sectors

    // The disk is added: the events poller (sr_check_events -> sr_get_events) and an open (cdrom_open:
    // cdrom_mmc3_profile, then the door lock).
    reply = guest.in("GET EVENT STATUS NOTIFICATION", get_event_status(0x10, 8), 8);
    EXPECT_TRUE(reply.good());
    if (be16(reply.data, 0) >= 4 && !(reply.data.at(2) & 0x80) && reply.data.at(2) == 4)
        view.media_event = reply.data.at(4) & 0x0f;
    reply = guest.in("GET CONFIGURATION 0000", get_configuration(0, 0, 32), 32);
    EXPECT_TRUE(reply.good());
    view.mmc3_profile = be16(reply.data, 6);
    EXPECT_TRUE(guest.none("PREVENT ALLOW MEDIUM REMOVAL", prevent_allow(1)).good());
    return view;
}

TEST(ScsiLinuxProbeTest, SrProbesADvdDrive)
{
    auto medium = std::make_unique<MemoryDisk>(400 * 2048, 512, 0, true);
    for (size_t i = 0; i < medium->bytes().size(); ++i)
        medium->bytes()[i] = pattern_byte(i, 3);
    ScsiDvd dvd({});
    ASSERT_TRUE(dvd.change_media(std::move(medium)));
    LinuxInitiator guest(dvd);
    const SrView view = sr_probe(guest);
    const std::vector<std::string> want
        = { "INQUIRY 36", "INQUIRY 74", "INQUIRY VPD 00 4", "INQUIRY VPD 00 7", "INQUIRY VPD 00 4", "INQUIRY VPD 00 7",
              "INQUIRY VPD 00 36", "INQUIRY VPD 80 4", "INQUIRY VPD 80 *", "INQUIRY VPD 00 36", "INQUIRY VPD 83 4",
              "INQUIRY VPD 83 *", "TEST UNIT READY", "TEST UNIT READY", // the new medium's unit attention, eaten
              "MODE SENSE(6) 2a 128", "GET CONFIGURATION 0028 16", "GET CONFIGURATION 0020 24", "TEST UNIT READY",
              "READ TOC 40 12", "READ TOC 12", "READ TOC 12", "READ CAPACITY(10) 8", "READ DISC INFORMATION 2",
              "READ DISC INFORMATION 34", "READ TRACK INFORMATION 8", "READ TRACK INFORMATION 32",
              "GET EVENT STATUS NOTIFICATION 8", "GET CONFIGURATION 0000 32", "PREVENT ALLOW MEDIUM REMOVAL" };
    expect_log(guest.log(), want);
    EXPECT_EQ(view.speed, 24);
    EXPECT_TRUE(view.dvd);
    EXPECT_TRUE(view.can_eject);
    EXPECT_FALSE(view.mrw);
    EXPECT_FALSE(view.random_writable) << "the disk stays read-only";
    EXPECT_EQ(view.ms_offset, 0u);
    EXPECT_TRUE(view.data_track);
    EXPECT_EQ(view.capacity, 400u * 4);
    EXPECT_EQ(view.mmc3_profile, 0x0008) << "a small medium is a CD-ROM";
    EXPECT_EQ(view.media_event, 2) << "new media";
    EXPECT_TRUE(dvd.removal_prevented());

    // Mounting reads the ISO 9660 volume descriptor at block 16.
    const Reply pvd = data_in(dvd, rw10(op::read_10, 16, 1), 2048);
    ASSERT_TRUE(pvd.good());
    EXPECT_EQ(pvd.data, pattern(16 * 2048, 2048, 3));
}

TEST(ScsiLinuxProbeTest, SrProbesAnEmptyDrive)
{
    ScsiDvd dvd({});
    LinuxInitiator guest(dvd);
    const SrView view = sr_probe(guest);
    EXPECT_EQ(view.speed, 24);
    EXPECT_EQ(view.capacity, 0u) << "sr_revalidate_disk stops at the failed TEST UNIT READY";
    EXPECT_EQ(guest.log().back(), "TEST UNIT READY");
}

} // namespace
} // namespace vmgen::vm::scsi
