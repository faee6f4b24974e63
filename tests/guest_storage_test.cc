// Synthetic SCSI end to end: the storvsc conformance guest (tests/guests/storvsc_client: Linux 6.1's storvsc, SCSI
// scan, sd and sr replayed by a test guest) boots under vmgen with disk images made here by the disk library and
// checks the host's storvsp the way Linux would use it; afterwards this test reopens every image and checks each
// block: the ones the guest wrote hold its pattern, the others the original one, a read-only disk is untouched.
//
//  - DisksInEveryFormatAndDvd: raw, VHD dynamic, VHDX dynamic with 512- and 4096-byte logical sectors, a
//    read-only VHD, on two SCSI controllers, and an ISO 9660 DVD made with xorriso (left out, with a message,
//    without xorriso): initialisation, scan, whole-disk reads at queue depth 32, a max_transfer_bytes request,
//    buffers at odd page offsets, reads past the end, writes with and without FUA, SYNCHRONIZE CACHE, the
//    read-only refusal, RESET_BUS with 32 reads in flight, the ISO's primary volume descriptor and a file.
//  - ScanFindsTheLunsBesideLunZero: disks at locations 0, 1 and 2: Linux sends REPORT LUNS to LUN 0 once it has
//    found a unit there, and must learn about the others from its answer.
//
// The pattern (also documented in the guest): logical block `lba` of B bytes holds the LBA as 8 bytes
// little-endian, then byte i (8 <= i < B) = (lba * 31 + i * 7 + (i >> 8) * 3 + seed) & 0xff; seed 0 written here,
// seed 0xa5 where the guest writes (LBAs 2, 10..17, 32..32+qd-1 and the last one). The ISO's PATTERN.BIN: the same
// with B = 2048, lba = the block index inside the file, seed 0x3c, cut at a length that is not a block multiple.
//
// Needs /dev/kvm (skipped without it). Each VM runs for about a second here (the guest does all its SCSI work in
// ring 3, at native speed even under a software KVM).
#include "tests/guest_runner.h"
#include "vm/disk/disk_ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace vmgen::guest_test {
namespace {

using namespace std::chrono_literals;
namespace disk = vmgen::vm::disk;

constexpr uint8_t seed_host = 0;
constexpr uint8_t seed_guest = 0xa5;
constexpr uint8_t seed_iso = 0x3c;
constexpr unsigned queue_depth = 32;
constexpr uint64_t disk_size = 4u << 20;
constexpr uint32_t iso_file_size = 300 * 1024 + 123;

uint8_t pattern_byte(uint64_t lba, uint32_t i, uint8_t seed)
{
    return static_cast<uint8_t>(lba * 31 + i * 7 + (i >> 8) * 3 + seed);
}

void fill_block(uint8_t* p, uint64_t lba, uint32_t block_size, uint8_t seed)
{
    for (unsigned k = 0; k < 8; ++k)
        p[k] = static_cast<uint8_t>(lba >> (8 * k));
    for (uint32_t i = 8; i < block_size; ++i)
        p[i] = pattern_byte(lba, i, seed);
}

struct Image {
    std::string file;      // name in the temporary directory (the extension picks the format)
    uint32_t sector = 512; // logical sector size
    bool read_only = false;
    unsigned controller = 0;
    unsigned location = 0;
    std::string path{};
    uint64_t blocks() const { return disk_size / sector; }
};

// Creates the image with the disk library and writes the host pattern into every block.
void make_image(Image& image, const std::string& dir)
{
    image.path = dir + "/" + image.file;
    disk::CreateOptions options;
    options.type = disk::DiskType::Dynamic;
    options.size = disk_size;
    options.logical_sector_size = image.sector;
    auto created = disk::create_disk(image.path, options);
    ASSERT_TRUE(created) << image.file << ": " << created.error().message();
    auto opened = disk::open_disk(image.path, false);
    ASSERT_TRUE(opened) << image.file << ": " << opened.error().message();
    auto& dev = **opened;
    ASSERT_EQ(dev.size(), disk_size) << image.file;
    ASSERT_EQ(dev.sector_size(), image.sector) << image.file;
    std::vector<uint8_t> chunk(1 << 20);
    for (uint64_t offset = 0; offset < disk_size; offset += chunk.size()) {
        for (size_t b = 0; b < chunk.size() / image.sector; ++b)
            fill_block(chunk.data() + b * image.sector, offset / image.sector + b, image.sector, seed_host);
        auto w = dev.write(offset, chunk);
        ASSERT_TRUE(w) << image.file << ": " << w.error().message();
    }
    auto c = dev.close();
    ASSERT_TRUE(c) << image.file << ": " << c.error().message();
}

// The blocks the guest writes with write=1 (storvsc_client's write_checks).
std::set<uint64_t> written_blocks(const Image& image, unsigned qd)
{
    std::set<uint64_t> s = {2, image.blocks() - 1};
    for (uint64_t lba = 10; lba <= 17; ++lba)
        s.insert(lba);
    for (uint64_t lba = 32; lba < 32 + qd; ++lba)
        s.insert(lba);
    return s;
}

// Reopens the image and checks every block; "" when all are as expected.
std::string check_image(const Image& image, unsigned qd = queue_depth)
{
    auto opened = disk::open_disk(image.path, true);
    if (!opened)
        return image.file + ": " + opened.error().message();
    auto& dev = **opened;
    const std::set<uint64_t> guest = image.read_only ? std::set<uint64_t>{} : written_blocks(image, qd);
    std::vector<uint8_t> data(disk_size), want(image.sector);
    auto r = dev.read(0, data);
    if (!r)
        return image.file + ": " + r.error().message();
    for (uint64_t lba = 0; lba < image.blocks(); ++lba) {
        uint8_t seed = guest.count(lba) ? seed_guest : seed_host;
        fill_block(want.data(), lba, image.sector, seed);
        const uint8_t* got = data.data() + lba * image.sector;
        for (uint32_t i = 0; i < image.sector; ++i)
            if (got[i] != want[i]) {
                char text[200];
                std::snprintf(text, sizeof text, "%s: block %llu byte %u: expected 0x%02x (seed 0x%02x), got 0x%02x",
                              image.file.c_str(), static_cast<unsigned long long>(lba), i, want[i], seed, got[i]);
                return text;
            }
    }
    return "";
}

// An ISO 9660 image with PATTERN.BIN in its root, made with xorriso; "" when xorriso is missing.
std::string make_iso(const std::string& dir)
{
    std::string xorriso = find_in_path("xorriso");
    if (xorriso.empty())
        return "";
    std::string tree = dir + "/iso";
    std::string iso = dir + "/dvd.iso";
    std::vector<uint8_t> bytes(iso_file_size);
    for (uint32_t pos = 0; pos < iso_file_size; pos += 2048) {
        uint8_t block[2048];
        fill_block(block, pos / 2048, 2048, seed_iso);
        std::copy(block, block + std::min<uint32_t>(2048, iso_file_size - pos), bytes.begin() + pos);
    }
    std::filesystem::create_directory(tree);
    EXPECT_TRUE(write_file(tree + "/PATTERN.BIN",
                           std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size())));
    ProcessResult r = run_process({xorriso, "-as", "mkisofs", "-V", "VMGEN", "-o", iso, tree}, 60s);
    EXPECT_EQ(r.exit_status, 0) << "xorriso: " << r.err;
    return iso;
}

std::string join_lines(const std::vector<std::string>& lines)
{
    std::string s;
    for (const auto& l : lines)
        s += "  " + l + "\n";
    return s;
}

struct VmRun {
    ProcessResult process;
    std::string serial;
    std::vector<std::string> lines;
    std::string what() const { return describe(process, serial); }
};

// vmgen run --generation 2 with the storvsc guest, the images and (when not empty) the ISO.
VmRun run_guest(const std::string& dir, const std::vector<Image>& images, const std::string& iso,
                unsigned dvd_controller, unsigned dvd_location, const std::string& cmdline)
{
    std::string serial = dir + "/com1.txt";
    std::remove(serial.c_str());
    std::vector<std::string> argv = {VMGEN_PATH, "run", "--generation", "2", "--memory", "256M", "--kernel",
                                     guest_path("storvsc_client"), "--com1", "file:" + serial, "--cmdline", cmdline};
    for (const Image& image : images) {
        std::string spec = image.path + ",controller=" + std::to_string(image.controller) +
                           ",location=" + std::to_string(image.location);
        if (image.read_only)
            spec += ",read-only";
        argv.insert(argv.end(), {"--scsi-disk", spec});
    }
    if (!iso.empty())
        argv.insert(argv.end(), {"--dvd", iso + ",controller=" + std::to_string(dvd_controller) +
                                              ",location=" + std::to_string(dvd_location)});
    VmRun run;
    run.process = run_process(argv, 120s);
    run.serial = read_text_file(serial);
    run.lines = guest_lines(run.serial);
    std::fprintf(stderr, "vmgen ran %.2f s\n", run.process.seconds);
    return run;
}

std::string id(unsigned controller, unsigned location)
{
    return "ctrl=" + std::to_string(controller) + " lun=" + std::to_string(location);
}

std::string disk_line(const Image& image)
{
    return "lun " + id(image.controller, image.location) +
           " type=disk vendor=Msft product=\"Virtual Disk\" blocks=" + std::to_string(image.blocks()) +
           " block_size=" + std::to_string(image.sector) + " ro=" + (image.read_only ? "1" : "0") + " ";
}

class GuestStorage : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (!kvm_accessible())
            GTEST_SKIP() << "/dev/kvm is not accessible";
        ProcessResult help = run_process({VMGEN_PATH, "run", "--help"}, 30s);
        ASSERT_NE(help.out.find("--scsi-disk"), std::string::npos)
            << "vmgen run has no --scsi-disk option:\n" << help.out << help.err;
    }
    TempDir m_dir;
};

// Every image format on two controllers, a read-only disk and a DVD; the whole data path. Location 0 of
// controller 0 stays empty here (LUN 0 present is ScanFindsTheLunsBesideLunZero's subject).
TEST_F(GuestStorage, DisksInEveryFormatAndDvd)
{
    std::vector<Image> images = {
        {.file = "raw512.img", .location = 1},
        {.file = "vhd512.vhd", .location = 2},
        {.file = "vhdx512.vhdx", .location = 3},
        {.file = "vhdx4k.vhdx", .sector = 4096, .location = 4},
        {.file = "readonly.vhd", .read_only = true, .location = 6},
        {.file = "second.vhdx", .controller = 1, .location = 1},
    };
    for (Image& image : images) {
        make_image(image, m_dir.path());
        if (HasFatalFailure())
            return;
    }
    std::string iso = make_iso(m_dir.path());
    if (iso.empty())
        std::fprintf(stderr, "xorriso not found: the DVD part of this test is left out\n");
    const unsigned dvd_controller = 1, dvd_location = 2;
    unsigned luns = static_cast<unsigned>(images.size()) + (iso.empty() ? 0 : 1);
    VmRun run = run_guest(m_dir.path(), images, iso, dvd_controller, dvd_location,
                          "pattern=lba write=1 qd=32 reset=1 iso_file=PATTERN.BIN expect_luns=" + std::to_string(luns));
    const std::string what = run.what();
    const auto& lines = run.lines;

    EXPECT_FALSE(run.process.timed_out) << what;
    EXPECT_EQ(guest_result(lines), "PASS") << what;
    EXPECT_EQ(run.process.exit_status, 0) << what;

    // Initialisation: Linux's newest protocol version on both controllers.
    for (const char* ctrl : {"scsi0", "scsi1"})
        EXPECT_FALSE(find_line(lines, std::string("storvsc ") + ctrl + " ready version=0x0602 (win10) ").empty())
            << what;
    // The scan finds every LUN where it was attached, as sd / sr see it; then the data checks.
    for (const Image& image : images) {
        std::string at = id(image.controller, image.location);
        EXPECT_FALSE(find_line(lines, disk_line(image)).empty())
            << "no line starting with \"" << disk_line(image) << "\"\n" << what;
        std::string read = find_line(lines, "read " + at + " ");
        EXPECT_TRUE(read.starts_with("read " + at + " bytes=" + std::to_string(disk_size) + " ")) << what;
        EXPECT_TRUE(read.ends_with(" ok")) << what;
        EXPECT_TRUE(find_line(lines, "edges " + at + " ").ends_with("past_end=5/21/00 ok")) << what;
        EXPECT_TRUE(find_line(lines, "queue " + at + " ").starts_with("queue " + at + " requests=32 in_flight=32 "))
            << what;
        EXPECT_TRUE(find_line(lines, "reset " + at + " ").ends_with(" ok")) << what;
        if (image.read_only) {
            EXPECT_TRUE(has_line(lines, "readonly " + at + " write refused sense=7/27/00 ok")) << what;
        } else {
            EXPECT_TRUE(has_line(lines, "write " + at + " lbas=2,10-17,32-63," + std::to_string(image.blocks() - 1) +
                                            " fua=2 sync=1 ok"))
                << what;
        }
    }
    if (!iso.empty()) {
        std::string at = id(dvd_controller, dvd_location);
        std::string lun = find_line(lines, "lun " + at + " type=dvd ");
        EXPECT_TRUE(lun.starts_with("lun " + at + " type=dvd vendor=Msft product=\"Virtual DVD-ROM\" ")) << what;
        EXPECT_NE(lun.find(" block_size=2048 ro=1 media=1 "), std::string::npos) << what;
        EXPECT_FALSE(find_line(lines, "dvd " + at + " pvd ok volume=\"VMGEN\" ").empty()) << what;
        EXPECT_TRUE(find_line(lines, "dvd " + at + " file PATTERN.BIN ")
                        .ends_with(" bytes=" + std::to_string(iso_file_size) + " ok"))
            << what;
    }
    EXPECT_FALSE(find_line(lines, "scan luns=" + std::to_string(luns) + " disks=" + std::to_string(images.size()) +
                                      " dvds=" + (iso.empty() ? "0" : "1") + " ")
                     .empty())
        << what;

    // What the guest wrote is in the images, nothing else changed, the read-only disk is untouched (only worth
    // looking at when the guest got through its writes).
    if (guest_result(lines) == "PASS") {
        for (const Image& image : images)
            EXPECT_EQ(check_image(image), "") << "guest lines:\n" << join_lines(lines);
    }
}

// Linux's scan with a disk at LUN 0 (the default location): INQUIRY to LUN 0 finds it, then REPORT LUNS goes
// to that same LUN 0 (scsi_report_lun_scan) and must list every LUN of the target (Hyper-V's disks share path 0
// / target 0), or Linux never sees the disks at locations 1 and 2.
TEST_F(GuestStorage, ScanFindsTheLunsBesideLunZero)
{
    std::vector<Image> images = {
        {.file = "lun0.img", .location = 0},
        {.file = "lun1.vhdx", .location = 1},
        {.file = "lun2.vhd", .read_only = true, .location = 2},
    };
    for (Image& image : images) {
        make_image(image, m_dir.path());
        if (HasFatalFailure())
            return;
    }
    VmRun run = run_guest(m_dir.path(), images, "", 0, 0, "pattern=lba write=1 qd=8 expect_luns=3");
    const std::string what = run.what();
    EXPECT_FALSE(run.process.timed_out) << what;
    EXPECT_EQ(guest_result(run.lines), "PASS") << what;
    EXPECT_EQ(run.process.exit_status, 0) << what;
    for (const Image& image : images)
        EXPECT_FALSE(find_line(run.lines, disk_line(image)).empty())
            << "no line starting with \"" << disk_line(image) << "\"\n" << what;
    EXPECT_FALSE(find_line(run.lines, "scan luns=3 disks=3 dvds=0 ").empty()) << what;
    if (guest_result(run.lines) == "PASS") {
        for (const Image& image : images)
            EXPECT_EQ(check_image(image, 8), "") << "guest lines:\n" << join_lines(run.lines);
    }
}

} // namespace
} // namespace vmgen::guest_test
