// ScsiStorage on its own (controllers, drives, hot plug, a guest's view of the offers across a VMBus server's
// replacement) and through a real KvmMachine built from a MachineConfig (skipped without /dev/kvm).
#include "vmm/scsi_storage.h"

#include "vm/disk/image_lock.h"
#include "vm/disk/raw/raw_disk.h"
#include "vm/scsi/scsi_lun.h"
#include "vm/storvsp/storvsp.h"
#include "vm/vmbus/scripted_guest.h"
#include "vmm/boot/synthetic_kernels.h"
#include "vmm/machine.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace vmgen::vmm {
namespace {

using Kind = ScsiDriveConfig::Kind;
namespace wire = protocols::vmbus;

class TempDir {
public:
    TempDir()
    {
        std::string pattern = (std::filesystem::temp_directory_path() / "vmgen-scsi-XXXXXX").string();
        if (::mkdtemp(pattern.data()) != nullptr)
            m_path = pattern;
    }
    ~TempDir()
    {
        std::error_code ec;
        std::filesystem::remove_all(m_path, ec);
    }
    [[nodiscard]] std::string file(std::string_view name) const { return (m_path / name).string(); }

private:
    std::filesystem::path m_path;
};

ScsiDriveConfig drive(Kind kind, unsigned controller, unsigned location, std::string path, bool read_only = false)
{
    ScsiDriveConfig config;
    config.kind = kind;
    config.controller = controller;
    config.location = location;
    config.path = std::move(path);
    config.read_only = read_only;
    return config;
}

// INQUIRY through the LUN attached at (controller, location): its peripheral type, or -1 when nothing answers.
int peripheral_type(const ScsiStorage& storage, unsigned controller, unsigned location)
{
    auto* device = storage.controller(controller);
    if (device == nullptr)
        return -1;
    auto unit = device->lun(location);
    return unit ? unit->peripheral_type() : -1;
}

class ScsiStorageTest : public ::testing::Test {
protected:
    ScsiStorageTest()
    {
        m_disk = m_dir.file("disk.img");
        m_disk2 = m_dir.file("disk2.img");
        m_iso = m_dir.file("cd.iso");
        m_iso2 = m_dir.file("other.iso");
        EXPECT_TRUE(vm::disk::create_raw(m_disk, 1 << 20));
        EXPECT_TRUE(vm::disk::create_raw(m_disk2, 1 << 20));
        EXPECT_TRUE(vm::disk::create_raw(m_iso, 64 * 2048));
        EXPECT_TRUE(vm::disk::create_raw(m_iso2, 32 * 2048));
    }

    MachineConfig config(unsigned controllers, std::vector<ScsiDriveConfig> drives = {}) const
    {
        MachineConfig config;
        config.vm_id = "0e1a5d3c-2b7f-4c8e-9d10-123456789abc";
        config.scsi_controllers = controllers;
        config.scsi_drives = std::move(drives);
        return config;
    }

    static std::string create_error(const MachineConfig& config)
    {
        auto storage = ScsiStorage::create(config);
        return storage ? std::string("(created)") : storage.error().message();
    }

    TempDir m_dir;
    std::string m_disk, m_disk2, m_iso, m_iso2;
};

TEST_F(ScsiStorageTest, AttachesTheConfiguredDrives)
{
    auto storage
        = ScsiStorage::create(config(2,
                                     {drive(Kind::HardDisk, 0, 0, m_disk), drive(Kind::HardDisk, 1, 63, m_disk2, true),
                                      drive(Kind::Dvd, 0, 1, m_iso), drive(Kind::Dvd, 0, 2, "")}));
    ASSERT_TRUE(storage) << storage.error().message();
    auto& s = **storage;
    EXPECT_EQ(s.controller_count(), 2u);
    EXPECT_EQ(s.controller(0)->options().name, "scsi0");
    EXPECT_EQ(s.controller(1)->options().name, "scsi1");
    EXPECT_NE(s.controller(0)->offer().instance_id, s.controller(1)->offer().instance_id);
    EXPECT_EQ(s.controller(0)->offer().class_id, vm::storvsp::scsi_class_id);
    EXPECT_EQ(s.controller(2), nullptr);
    EXPECT_EQ(s.controller(0)->attached_luns(), (std::vector<unsigned>{0, 1, 2}));
    EXPECT_EQ(s.controller(1)->attached_luns(), (std::vector<unsigned>{63}));
    EXPECT_EQ(peripheral_type(s, 0, 0), 0x00);
    EXPECT_EQ(peripheral_type(s, 0, 1), 0x05);

    auto drives = s.drives();
    ASSERT_EQ(drives.size(), 4u);
    EXPECT_EQ(drives[0], drive(Kind::HardDisk, 0, 0, m_disk));
    EXPECT_EQ(drives[1], drive(Kind::Dvd, 0, 1, m_iso, true));
    EXPECT_EQ(drives[2], drive(Kind::Dvd, 0, 2, "", true));
    EXPECT_EQ(drives[3], drive(Kind::HardDisk, 1, 63, m_disk2, true));
}

TEST_F(ScsiStorageTest, IdentityIsStablePerVmAndController)
{
    auto a = ScsiStorage::create(config(2));
    auto b = ScsiStorage::create(config(2));
    auto other_config = config(2);
    other_config.vm_id = "another";
    auto c = ScsiStorage::create(other_config);
    ASSERT_TRUE(a && b && c);
    EXPECT_EQ((*a)->controller(0)->offer().instance_id, (*b)->controller(0)->offer().instance_id);
    EXPECT_EQ((*a)->controller(1)->offer().instance_id, (*b)->controller(1)->offer().instance_id);
    EXPECT_NE((*a)->controller(0)->offer().instance_id, (*c)->controller(0)->offer().instance_id);
}

TEST_F(ScsiStorageTest, ConfigurationErrors)
{
    auto missing = m_dir.file("missing.vhdx");
    EXPECT_NE(create_error(config(5)).find("at most 4"), std::string::npos);
    EXPECT_NE(create_error(config(1, {drive(Kind::HardDisk, 0, 0, missing)}))
                  .find("SCSI 0:0: hard disk image '" + missing + "'"),
              std::string::npos)
        << create_error(config(1, {drive(Kind::HardDisk, 0, 0, missing)}));
    EXPECT_NE(create_error(config(1, {drive(Kind::HardDisk, 0, 0, m_disk), drive(Kind::Dvd, 0, 0, m_iso)}))
                  .find("SCSI 0:0: location 0 of SCSI controller 0 already holds a hard disk"),
              std::string::npos);
    EXPECT_NE(create_error(config(1, {drive(Kind::HardDisk, 0, 64, m_disk)})).find("location 64 is out of range"),
              std::string::npos);
    EXPECT_NE(create_error(config(1, {drive(Kind::HardDisk, 1, 0, m_disk)}))
                  .find("SCSI controller 1 does not exist: the virtual machine has 1 (0-0)"),
              std::string::npos);
    EXPECT_NE(create_error(config(0, {drive(Kind::Dvd, 0, 0, "")})).find("has no SCSI controller"), std::string::npos);
    EXPECT_NE(create_error(config(1, {drive(Kind::HardDisk, 0, 0, "")})).find("a hard disk needs an image"),
              std::string::npos);
    EXPECT_NE(create_error(config(1, {drive(Kind::Dvd, 0, 0, missing)})).find("SCSI 0:0: ISO image '" + missing + "'"),
              std::string::npos);
    EXPECT_NE(create_error(config(1, {drive(Kind::HardDisk, 0, 0, m_disk), drive(Kind::HardDisk, 0, 1, m_disk)}))
                  .find("already attached at SCSI 0:0"),
              std::string::npos);
    // The same image read-only twice is fine.
    EXPECT_EQ(
        create_error(config(1, {drive(Kind::HardDisk, 0, 0, m_disk, true), drive(Kind::HardDisk, 0, 1, m_disk, true)})),
        "(created)");
}

TEST_F(ScsiStorageTest, HotPlug)
{
    auto created = ScsiStorage::create(config(1, {drive(Kind::Dvd, 0, 0, m_iso)}));
    ASSERT_TRUE(created) << created.error().message();
    auto& s = **created;

    ASSERT_TRUE(s.add_drive(drive(Kind::HardDisk, 0, 5, m_disk)));
    EXPECT_EQ(peripheral_type(s, 0, 5), 0x00);
    EXPECT_FALSE(vm::disk::lock_image(m_disk, vm::disk::LockMode::Shared)); // attached writable: locked
    auto taken = s.add_drive(drive(Kind::HardDisk, 0, 5, m_disk2));
    ASSERT_FALSE(taken);
    EXPECT_NE(taken.error().message().find("already holds a hard disk"), std::string::npos);
    EXPECT_FALSE(s.add_drive(drive(Kind::HardDisk, 1, 0, m_disk2)));

    // Media changes, eject, and the errors.
    ASSERT_TRUE(s.set_dvd_media(0, 0, m_iso2));
    EXPECT_EQ(s.drives()[0].path, m_iso2);
    EXPECT_TRUE(vm::disk::lock_image(m_iso, vm::disk::LockMode::Exclusive)); // the old medium is let go
    EXPECT_FALSE(vm::disk::lock_image(m_iso2, vm::disk::LockMode::Exclusive));
    ASSERT_TRUE(s.set_dvd_media(0, 0, ""));
    EXPECT_EQ(s.drives()[0].path, "");
    auto not_dvd = s.set_dvd_media(0, 5, m_iso);
    ASSERT_FALSE(not_dvd);
    EXPECT_NE(not_dvd.error().message().find("holds a hard disk, not a DVD drive"), std::string::npos);
    EXPECT_FALSE(s.set_dvd_media(0, 9, m_iso));
    auto bad_iso = s.set_dvd_media(0, 0, m_dir.file("nope.iso"));
    ASSERT_FALSE(bad_iso);
    EXPECT_EQ(s.drives()[0].path, ""); // unchanged

    // Remove: the LUN is gone from the controller and the image is closed (it can be opened read-write).
    ASSERT_TRUE(s.remove_drive(0, 5));
    EXPECT_EQ(peripheral_type(s, 0, 5), -1);
    EXPECT_TRUE(vm::disk::lock_image(m_disk, vm::disk::LockMode::Exclusive));
    EXPECT_EQ(s.drives().size(), 1u);
    auto missing = s.remove_drive(0, 5);
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message().find("SCSI 0:5: no drive is attached there"), std::string::npos);

    // Controllers up to 4.
    EXPECT_EQ(s.add_controller().value_or(99), 1u);
    EXPECT_EQ(s.add_controller().value_or(99), 2u);
    EXPECT_EQ(s.add_controller().value_or(99), 3u);
    auto fifth = s.add_controller();
    ASSERT_FALSE(fifth);
    EXPECT_NE(fifth.error().message().find("at most 4 SCSI controllers"), std::string::npos);
    ASSERT_TRUE(s.add_drive(drive(Kind::HardDisk, 3, 0, m_disk)));
    EXPECT_EQ(s.drives().back(), drive(Kind::HardDisk, 3, 0, m_disk));
}

// A guest's view: the controllers are offered on a server, a hot-added controller is offered at once, and after
// the server is replaced (a VM reset) the next guest gets every controller again with the same instance ids.
TEST_F(ScsiStorageTest, OffersSurviveAServerReplacement)
{
    auto memory = vm::GuestMemory::create_x86(16 << 20, 0xe0000000);
    ASSERT_TRUE(memory);
    auto created = ScsiStorage::create(config(1, {drive(Kind::HardDisk, 0, 0, m_disk)}));
    ASSERT_TRUE(created) << created.error().message();
    auto& s = **created;

    auto offers_of = [](const std::vector<wire::OfferChannel>& offers) {
        std::vector<std::string> ids;
        for (const auto& offer : offers) {
            if (offer.offer.interface_type == vm::storvsp::scsi_class_id)
                ids.push_back(offer.offer.interface_instance.to_string());
        }
        return ids;
    };

    std::vector<std::string> first_ids;
    {
        vm::vmbus::testing::FakeSynic synic;
        auto server = std::make_unique<vm::vmbus::VmbusServer>(*memory, synic);
        ASSERT_TRUE(s.connect(*server));
        vm::vmbus::testing::ScriptedGuest guest(*server, synic, *memory);
        ASSERT_TRUE(guest.connect(wire::version_win10_v5_3));
        first_ids = offers_of(guest.request_offers());
        ASSERT_EQ(first_ids.size(), 1u);
        ASSERT_TRUE(s.add_controller());
        auto hot = guest.expect(wire::MessageType::offer_channel);
        ASSERT_TRUE(hot);
        first_ids.push_back(hot->as<wire::OfferChannel>().offer.interface_instance.to_string());
        s.disconnect();
        server.reset();
        s.reset_controllers();
    }
    // Between boots: hot plug still works on the controllers.
    ASSERT_TRUE(s.add_drive(drive(Kind::Dvd, 1, 0, m_iso)));
    {
        vm::vmbus::testing::FakeSynic synic;
        auto server = std::make_unique<vm::vmbus::VmbusServer>(*memory, synic);
        ASSERT_TRUE(s.connect(*server));
        vm::vmbus::testing::ScriptedGuest guest(*server, synic, *memory);
        ASSERT_TRUE(guest.connect(wire::version_win10_v5_3));
        EXPECT_EQ(offers_of(guest.request_offers()), first_ids);
        s.disconnect();
    }
    EXPECT_EQ(s.controller(1)->attached_luns(), (std::vector<unsigned>{0}));
}

// The same wiring through KvmMachine (Machine::create), before and after run(): no guest code executes.
TEST_F(ScsiStorageTest, KvmMachineWiring)
{
    if (::access("/dev/kvm", R_OK | W_OK) != 0)
        GTEST_SKIP() << "/dev/kvm is not accessible";
    auto kernel = m_dir.file("kernel.elf");
    {
        auto image = testing::make_pvh_elf();
        std::ofstream(kernel, std::ios::binary)
            .write(reinterpret_cast<const char*>(image.data()), static_cast<std::streamsize>(image.size()));
    }
    auto machine_config = config(1, {drive(Kind::HardDisk, 0, 0, m_disk), drive(Kind::Dvd, 0, 1, "")});
    machine_config.memory_bytes = 64 << 20;
    machine_config.kernel_path = kernel;

    auto bad = machine_config;
    bad.scsi_drives.push_back(drive(Kind::HardDisk, 0, 0, m_disk2));
    auto refused = Machine::create(bad);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message().find("SCSI 0:0: location 0 of SCSI controller 0 already holds"),
              std::string::npos)
        << refused.error().message();

    auto created = Machine::create(machine_config);
    ASSERT_TRUE(created) << created.error().message();
    auto& machine = **created;
    EXPECT_EQ(machine.scsi_controllers(), 1u);
    EXPECT_EQ(machine.scsi_drives().size(), 2u);
    ASSERT_TRUE(machine.set_dvd_media(0, 1, m_iso));
    ASSERT_TRUE(machine.add_scsi_drive(drive(Kind::HardDisk, 0, 2, m_disk2, true)));
    EXPECT_EQ(machine.add_scsi_controller().value_or(99), 1u);
    ASSERT_TRUE(machine.add_scsi_drive(drive(Kind::HardDisk, 1, 7, m_disk2, true)));
    ASSERT_TRUE(machine.remove_scsi_drive(0, 0));

    // A turn-off before run() ends the boot at once; the storage outlives the boot's VMBus server.
    machine.turn_off();
    auto outcome = machine.run();
    ASSERT_TRUE(outcome) << outcome.error().message();
    EXPECT_EQ(outcome->reason, StopReason::TurnedOff);
    auto drives = machine.scsi_drives();
    ASSERT_EQ(drives.size(), 3u);
    EXPECT_EQ(drives[0], drive(Kind::Dvd, 0, 1, m_iso, true));
    EXPECT_EQ(drives[1], drive(Kind::HardDisk, 0, 2, m_disk2, true));
    EXPECT_EQ(drives[2], drive(Kind::HardDisk, 1, 7, m_disk2, true));
    ASSERT_TRUE(machine.set_dvd_media(0, 1, ""));
    EXPECT_EQ(machine.scsi_drives()[0].path, "");
}

} // namespace
} // namespace vmgen::vmm
