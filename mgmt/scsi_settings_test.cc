#include "mgmt/scsi_settings.h"

#include "mgmt/temp_home.h"

#include <gtest/gtest.h>

#include <fstream>

namespace vmgen::mgmt {
namespace {

using Kind = vmm::ScsiDriveConfig::Kind;

vmm::ScsiDriveConfig drive(Kind kind, unsigned controller, unsigned location, std::string path, bool read_only)
{
    vmm::ScsiDriveConfig config;
    config.kind = kind;
    config.controller = controller;
    config.location = location;
    config.path = std::move(path);
    config.read_only = read_only;
    return config;
}

std::string error_of(const Result<void>& result) { return result ? std::string("(ok)") : result.error().message(); }

TEST(ScsiSettings, Numbers)
{
    EXPECT_EQ(parse_controller_number("3").value_or(99), 3u);
    EXPECT_EQ(parse_controller_location("63").value_or(99), 63u);
    EXPECT_EQ(parse_controller_location("007").value_or(99), 7u);
    EXPECT_FALSE(parse_controller_number("4"));
    EXPECT_FALSE(parse_controller_number("-1"));
    EXPECT_FALSE(parse_controller_number(""));
    EXPECT_FALSE(parse_controller_location("64"));
    EXPECT_FALSE(parse_controller_location("99999"));
    EXPECT_FALSE(parse_controller_location("1x"));
    EXPECT_EQ(default_scsi_controllers(vmm::Generation::One), 0u);
    EXPECT_EQ(default_scsi_controllers(vmm::Generation::Two), 1u);
    EXPECT_EQ(parse_drive_kind("HardDisk").value_or(Kind::Dvd), Kind::HardDisk);
    EXPECT_EQ(parse_drive_kind("DvdDrive").value_or(Kind::HardDisk), Kind::Dvd);
    EXPECT_FALSE(parse_drive_kind("hard disk"));
}

TEST(ScsiSettings, DriveSpecs)
{
    TempHome home;
    auto image = (home.path() / "disk.img").string();
    std::ofstream(image) << std::string(512, '\0');

    auto plain = parse_drive_spec(image, Kind::HardDisk);
    ASSERT_TRUE(plain) << plain.error().message();
    EXPECT_EQ(plain->drive, drive(Kind::HardDisk, 0, 0, image, false));
    EXPECT_FALSE(plain->location_given);

    auto full = parse_drive_spec(image + ",read-only,location=9,controller=2", Kind::HardDisk);
    ASSERT_TRUE(full) << full.error().message();
    EXPECT_EQ(full->drive, drive(Kind::HardDisk, 2, 9, image, true));
    EXPECT_TRUE(full->location_given);

    for (const char* empty : {"", "none", "None", ",location=1"}) {
        auto dvd = parse_drive_spec(empty, Kind::Dvd);
        ASSERT_TRUE(dvd) << empty << ": " << dvd.error().message();
        EXPECT_EQ(dvd->drive.path, "");
        EXPECT_TRUE(dvd->drive.read_only);
    }
    EXPECT_FALSE(parse_drive_spec("", Kind::HardDisk));
    EXPECT_FALSE(parse_drive_spec(image + ",", Kind::HardDisk));
    EXPECT_FALSE(parse_drive_spec(image + ",read-only", Kind::Dvd));
    EXPECT_FALSE(parse_drive_spec(image + ",controller=1,controller=1", Kind::HardDisk));
    EXPECT_FALSE(parse_drive_spec((home.path() / "nope").string(), Kind::HardDisk));
    EXPECT_FALSE(parse_drive_spec(home.path().string(), Kind::HardDisk)); // a folder
}

TEST(ScsiSettings, PlaceDrives)
{
    std::vector<DriveSpec> specs(4);
    specs[0].drive = drive(Kind::HardDisk, 0, 0, "/a", false);
    specs[1].drive = drive(Kind::HardDisk, 0, 0, "/b", false);
    specs[1].location_given = true; // takes 0 first
    specs[2].drive = drive(Kind::Dvd, 1, 0, "", true);
    specs[3].drive = drive(Kind::Dvd, 0, 0, "/c.iso", true);
    auto placed = place_drives(specs, 2);
    ASSERT_TRUE(placed) << placed.error().message();
    EXPECT_EQ(*placed,
              (std::vector<vmm::ScsiDriveConfig>{
                  drive(Kind::HardDisk, 0, 0, "/b", false), drive(Kind::HardDisk, 0, 1, "/a", false),
                  drive(Kind::Dvd, 0, 2, "/c.iso", true), drive(Kind::Dvd, 1, 0, "", true)}));
    EXPECT_FALSE(place_drives(specs, 1)); // controller 1 does not exist

    std::vector<DriveSpec> full(65);
    for (size_t i = 0; i < full.size(); ++i)
        full[i].drive = drive(Kind::Dvd, 0, 0, "", true);
    auto overflow = place_drives(full, 1);
    ASSERT_FALSE(overflow);
    EXPECT_NE(overflow.error().message().find("no free location left"), std::string::npos);
}

TEST(ScsiSettings, Layout)
{
    using Drives = std::vector<vmm::ScsiDriveConfig>;
    EXPECT_EQ(error_of(validate_scsi_layout(4, Drives{drive(Kind::HardDisk, 3, 63, "/a", false)})), "(ok)");
    EXPECT_EQ(error_of(validate_scsi_layout(5, Drives{})), "5 SCSI controllers: a virtual machine has at most 4");
    EXPECT_EQ(error_of(validate_scsi_layout(1, Drives{drive(Kind::HardDisk, 1, 0, "/a", false)})),
              "SCSI 1:0: SCSI controller 1 does not exist (the virtual machine has 1)");
    EXPECT_EQ(error_of(validate_scsi_layout(1, Drives{drive(Kind::HardDisk, 0, 64, "/a", false)})),
              "SCSI 0:64: location 64 is out of range (0-63)");
    EXPECT_EQ(error_of(validate_scsi_layout(1, Drives{drive(Kind::HardDisk, 0, 0, "a", false)})),
              "SCSI 0:0: a hard disk needs an absolute image path (it is 'a')");
    EXPECT_EQ(error_of(validate_scsi_layout(1, Drives{drive(Kind::Dvd, 0, 0, "c.iso", true)})),
              "SCSI 0:0: a DVD image path must be absolute (it is 'c.iso')");
    EXPECT_EQ(error_of(validate_scsi_layout(1, Drives{drive(Kind::Dvd, 0, 0, "", false)})),
              "SCSI 0:0: a DVD drive is always read-only");
    EXPECT_EQ(error_of(validate_scsi_layout(
                  1, Drives{drive(Kind::Dvd, 0, 0, "", true), drive(Kind::HardDisk, 0, 0, "/a", false)})),
              "SCSI 0:0: two drives at the same location");
    EXPECT_NE(
        error_of(validate_scsi_layout(
                     1, Drives{drive(Kind::HardDisk, 0, 0, "/a", true), drive(Kind::HardDisk, 0, 1, "/a", false)}))
            .find("SCSI 0:1: the image /a is also attached at SCSI 0:0"),
        std::string::npos);
    EXPECT_EQ(error_of(validate_scsi_layout(
                  1, Drives{drive(Kind::HardDisk, 0, 0, "/a", true), drive(Kind::HardDisk, 0, 1, "/a", true)})),
              "(ok)");
}

} // namespace
} // namespace vmgen::mgmt
