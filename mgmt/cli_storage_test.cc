// The storage verbs (add-vmscsicontroller, add-/set-/remove-/get-vm*drive) against a temporary store, Off and
// running (fake machines behind in-process workers), and `vmgen run --scsi-disk/--dvd`.
#include "mgmt/cli_test_fixture.h"
#include "mgmt/scsi_settings.h"
#include "vm/disk/disk_ops.h"
#include "vm/disk/raw/raw_disk.h"

namespace vmgen::mgmt {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
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

class CliStorageTest : public cli_testing::CliTest {
protected:
    CliStorageTest()
    {
        m_vhdx = file("a.vhdx");
        m_raw = file("b.img");
        m_iso = file("c.iso");
        m_iso2 = file("d.iso");
        vm::disk::CreateOptions options;
        options.size = 4 << 20;
        EXPECT_TRUE(vm::disk::create_disk(m_vhdx, options));
        EXPECT_TRUE(vm::disk::create_raw(m_raw, 1 << 20));
        EXPECT_TRUE(vm::disk::create_raw(m_iso, 16 * 2048));
        EXPECT_TRUE(vm::disk::create_raw(m_iso2, 8 * 2048));
    }

    [[nodiscard]] std::string file(std::string_view name) const { return (m_home.path() / name).string(); }

    json get(std::string_view verb, std::string_view name)
    {
        auto result = run({std::string(verb), std::string(name), "--json"});
        EXPECT_EQ(result.code, 0) << result.err;
        return json::parse(result.out, nullptr, false);
    }

    std::vector<std::string> storage_changes()
    {
        std::lock_guard guard(m_log->mutex);
        return m_log->storage_changes;
    }

    std::string m_vhdx, m_raw, m_iso, m_iso2;
};

TEST_F(CliStorageTest, Help)
{
    auto help = run({"help"});
    for (const char* verb : {"add-vmscsicontroller", "add-vmharddiskdrive", "add-vmdvddrive", "set-vmdvddrive",
                             "remove-vmharddiskdrive", "remove-vmdvddrive", "get-vmharddiskdrive", "get-vmdvddrive"}) {
        EXPECT_NE(help.out.find(verb), std::string::npos) << verb;
        auto usage = run({verb, "--help"});
        EXPECT_EQ(usage.code, 0) << verb;
        EXPECT_TRUE(usage.out.starts_with(fmt::format("Usage: vmgen {} NAME", verb))) << usage.out;
    }
    EXPECT_NE(run({"run", "--help"}).out.find("--scsi-disk SPEC"), std::string::npos);
}

TEST_F(CliStorageTest, NewVmGetsHyperVsDefaultControllers)
{
    new_vm("g1");
    new_vm("g2", {"--generation", "2"});
    EXPECT_EQ(config("g1").scsi_controllers, 0u);
    EXPECT_EQ(config("g2").scsi_controllers, 1u);
    auto text = *read_small_file(m_root / "g2" / "config.json");
    EXPECT_EQ(json::parse(text)["scsi"], json::parse(R"({"controllers": 1, "drives": []})"));
    expect_failure({"add-vmharddiskdrive", "g1", "--path", m_raw},
                   "VM 'g1' has no SCSI controller: add one with 'vmgen add-vmscsicontroller g1'");
}

TEST_F(CliStorageTest, HardDisksWhileOff)
{
    new_vm("web1", {"--generation", "2"});
    ASSERT_EQ(run({"add-vmharddiskdrive", "web1", "--path", m_vhdx}).code, 0);
    auto added = run({"add-vmharddiskdrive", "web1", "--path", m_raw, "--controller-location", "5", "--read-only",
                      "--controller-type", "scsi"});
    ASSERT_EQ(added.code, 0) << added.err;
    EXPECT_EQ(added.out, "");
    ASSERT_EQ(run({"add-vmharddiskdrive", "web1", "--path", m_raw, "--read-only"}).code, 0); // read-only twice: ok
    auto stored = config("web1");
    ASSERT_EQ(stored.scsi_drives.size(), 3u);
    EXPECT_EQ(stored.scsi_drives[0], drive(Kind::HardDisk, 0, 0, m_vhdx, false));
    EXPECT_EQ(stored.scsi_drives[1], drive(Kind::HardDisk, 0, 1, m_raw, true));
    EXPECT_EQ(stored.scsi_drives[2], drive(Kind::HardDisk, 0, 5, m_raw, true));

    auto table = run({"get-vmharddiskdrive", "web1"});
    ASSERT_EQ(table.code, 0) << table.err;
    std::string expected = "VMName ControllerType ControllerNumber ControllerLocation DiskNumber Path\n"
                           "------ -------------- ---------------- ------------------ ---------- ----\n";
    expected += fmt::format("web1   SCSI           0                0                             {}\n", m_vhdx);
    expected += fmt::format("web1   SCSI           0                1                             {}\n", m_raw);
    expected += fmt::format("web1   SCSI           0                5                             {}\n", m_raw);
    EXPECT_EQ(table.out, expected);
    auto disks = get("get-vmharddiskdrive", "web1");
    ASSERT_EQ(disks.size(), 3u);
    EXPECT_EQ(disks[0],
              json::parse(fmt::format(R"({{"VMName": "web1", "ControllerType": "SCSI", "ControllerNumber": 0,
        "ControllerLocation": 0, "DiskNumber": null, "Path": "{}", "ReadOnly": false}})",
                                      m_vhdx)));
    EXPECT_EQ(disks[2]["ReadOnly"], true);
    EXPECT_EQ(run({"get-vmharddiskdrive", "web1", "--format", "json"}).out,
              run({"get-vmharddiskdrive", "web1", "--json"}).out);

    // A second controller, then an address on it.
    ASSERT_EQ(run({"add-vmscsicontroller", "web1"}).code, 0);
    ASSERT_EQ(run({"add-vmharddiskdrive", "web1", "--path", file("b.img"), "--controller-number", "1",
                   "--controller-location", "63", "--read-only"})
                  .code,
              0);
    EXPECT_EQ(config("web1").scsi_drives.back(), drive(Kind::HardDisk, 1, 63, m_raw, true));

    ASSERT_EQ(run({"remove-vmharddiskdrive", "web1", "--controller-number", "0", "--controller-location", "1"}).code,
              0);
    EXPECT_EQ(config("web1").scsi_drives.size(), 3u);
    EXPECT_EQ(find_drive(config("web1").scsi_drives, 0, 1), nullptr);
    EXPECT_TRUE(std::filesystem::exists(m_raw)); // the image is kept
}

TEST_F(CliStorageTest, HardDiskErrorsChangeNothing)
{
    new_vm("web1", {"--generation", "2"});
    ASSERT_EQ(run({"add-vmharddiskdrive", "web1", "--path", m_vhdx}).code, 0);
    auto missing = file("missing.vhdx");
    auto garbage = file("garbage.vhdx");
    std::ofstream(garbage) << "not a vhdx";
    expect_failure({"add-vmharddiskdrive", "web1"}, "add-vmharddiskdrive needs --path IMAGE");
    expect_failure({"add-vmharddiskdrive", "web1", "--path", missing}, missing + ": No such file or directory");
    expect_failure({"add-vmharddiskdrive", "web1", "--path", garbage}, "hard disk image " + garbage);
    expect_failure({"add-vmharddiskdrive", "web1", "--path", m_raw, "--controller-type", "IDE"},
                   "IDE controllers are not implemented");
    expect_failure({"add-vmharddiskdrive", "web1", "--path", m_raw, "--controller-type", "SATA"},
                   "invalid controller type 'SATA'");
    expect_failure({"add-vmharddiskdrive", "web1", "--path", m_raw, "--controller-number", "1"},
                   "VM 'web1' has no SCSI controller 1: it has 1 (0-0)");
    expect_failure({"add-vmharddiskdrive", "web1", "--path", m_raw, "--controller-number", "4"},
                   "invalid controller number 4: must be 0 to 3");
    expect_failure({"add-vmharddiskdrive", "web1", "--path", m_raw, "--controller-location", "64"},
                   "invalid controller location 64: must be 0 to 63");
    expect_failure({"add-vmharddiskdrive", "web1", "--path", m_raw, "--controller-location", "x"},
                   "invalid controller location 'x'");
    expect_failure({"add-vmharddiskdrive", "web1", "--path", m_raw, "--controller-location", "0"},
                   "location 0 of SCSI controller 0 of VM 'web1' already holds a hard disk (" + m_vhdx + ")");
    expect_failure({"add-vmharddiskdrive", "web1", "--path", m_vhdx},
                   "the image " + m_vhdx + " is also attached at SCSI 0:0");
    expect_failure({"add-vmharddiskdrive", "nope", "--path", m_raw}, "no virtual machine named 'nope'");
    expect_failure({"remove-vmharddiskdrive", "web1", "--controller-number", "0"},
                   "remove-vmharddiskdrive needs --controller-number N and --controller-location L");
    expect_failure({"remove-vmharddiskdrive", "web1", "--controller-number", "0", "--controller-location", "9"},
                   "VM 'web1' has no drive at SCSI controller 0 location 9");
    ASSERT_EQ(run({"add-vmdvddrive", "web1"}).code, 0);
    expect_failure({"remove-vmharddiskdrive", "web1", "--controller-number", "0", "--controller-location", "1"},
                   "holds a DVD drive, not a hard disk");
    expect_failure({"remove-vmdvddrive", "web1", "--controller-number", "0", "--controller-location", "0"},
                   "holds a hard disk, not a DVD drive");
}

TEST_F(CliStorageTest, ControllersUpToFour)
{
    new_vm("web1", {"--generation", "2"});
    for (int i = 0; i < 3; ++i) {
        auto added = run({"add-vmscsicontroller", "web1"});
        ASSERT_EQ(added.code, 0) << added.err;
        EXPECT_EQ(added.out, "");
    }
    EXPECT_EQ(config("web1").scsi_controllers, 4u);
    expect_failure({"add-vmscsicontroller", "web1"}, "VM 'web1' already has 4 SCSI controllers");
    expect_failure({"add-vmscsicontroller"}, "needs a virtual machine name");
}

TEST_F(CliStorageTest, DvdDrivesWhileOff)
{
    new_vm("web1", {"--generation", "2"});
    ASSERT_EQ(run({"add-vmdvddrive", "web1", "--path", m_iso}).code, 0);
    ASSERT_EQ(run({"set-vmdvddrive", "web1", "--path", m_iso2}).code, 0); // the only DVD drive
    EXPECT_EQ(config("web1").scsi_drives[0], drive(Kind::Dvd, 0, 0, m_iso2, true));
    ASSERT_EQ(run({"add-vmdvddrive", "web1", "--path", "none", "--controller-location", "7"}).code, 0);
    expect_failure({"set-vmdvddrive", "web1", "--path", m_iso}, "VM 'web1' has 2 DVD drives: say which");
    ASSERT_EQ(run({"set-vmdvddrive", "web1", "--path", m_iso, "--controller-location", "7"}).code, 0);
    ASSERT_EQ(
        run({"set-vmdvddrive", "web1", "--path", "NONE", "--controller-number", "0", "--controller-location", "0"})
            .code,
        0);

    auto table = run({"get-vmdvddrive", "web1"});
    ASSERT_EQ(table.code, 0) << table.err;
    std::string expected = "VMName ControllerNumber ControllerLocation DvdMediaType Path\n"
                           "------ ---------------- ------------------ ------------ ----\n"
                           "web1   0                0                  None\n";
    expected += fmt::format("web1   0                7                  ISO          {}\n", m_iso);
    EXPECT_EQ(table.out, expected);
    auto dvds = get("get-vmdvddrive", "web1");
    ASSERT_EQ(dvds.size(), 2u);
    EXPECT_EQ(dvds[0], json::parse(R"({"VMName": "web1", "ControllerNumber": 0, "ControllerLocation": 0,
                                       "DvdMediaType": "None", "Path": null})"));
    EXPECT_EQ(dvds[1]["DvdMediaType"], "ISO");
    EXPECT_EQ(dvds[1]["Path"], m_iso);
    EXPECT_EQ(get("get-vmharddiskdrive", "web1"), json::array()); // DVD drives are not hard disks
    EXPECT_EQ(run({"get-vmharddiskdrive", "web1"}).out, "");

    expect_failure({"set-vmdvddrive", "web1"}, "set-vmdvddrive needs --path ISO, or --path none");
    expect_failure({"set-vmdvddrive", "web1", "--path", file("nope.iso"), "--controller-location", "7"},
                   "nope.iso: No such file or directory");
    expect_failure({"set-vmdvddrive", "web1", "--path", m_iso, "--controller-location", "3"},
                   "VM 'web1' has no drive at SCSI controller 0 location 3");
    expect_failure({"set-vmdvddrive", "web1", "--path", m_iso, "--controller-number", "2"},
                   "VM 'web1' has no DVD drive on SCSI controller 2");
    ASSERT_EQ(run({"remove-vmdvddrive", "web1", "--controller-number", "0", "--controller-location", "0"}).code, 0);
    ASSERT_EQ(run({"remove-vmdvddrive", "web1", "--controller-number", "0", "--controller-location", "7"}).code, 0);
    expect_failure({"set-vmdvddrive", "web1", "--path", m_iso},
                   "VM 'web1' has no DVD drive: add one with 'vmgen add-vmdvddrive web1'");
    EXPECT_TRUE(config("web1").scsi_drives.empty());
}

TEST_F(CliStorageTest, HotPlugWhileRunning)
{
    new_vm("web1", {"--generation", "2"});
    ASSERT_EQ(run({"add-vmdvddrive", "web1", "--path", m_iso}).code, 0);
    ASSERT_EQ(run({"start-vm", "web1"}).code, 0);
    {
        std::lock_guard guard(m_log->mutex);
        ASSERT_TRUE(m_log->last_config);
        EXPECT_EQ(m_log->last_config->scsi_controllers, 1u);
        EXPECT_EQ(m_log->last_config->scsi_drives,
                  (std::vector<vmm::ScsiDriveConfig>{drive(Kind::Dvd, 0, 0, m_iso, true)}));
        EXPECT_EQ(m_log->last_config->vm_id, config("web1").id);
    }

    auto added = run({"add-vmharddiskdrive", "web1", "--path", m_vhdx});
    ASSERT_EQ(added.code, 0) << added.err;
    ASSERT_EQ(run({"add-vmscsicontroller", "web1"}).code, 0);
    ASSERT_EQ(run({"add-vmdvddrive", "web1", "--controller-number", "1"}).code, 0);
    ASSERT_EQ(run({"set-vmdvddrive", "web1", "--path", m_iso2, "--controller-location", "0"}).code, 0);
    ASSERT_EQ(run({"remove-vmharddiskdrive", "web1", "--controller-number", "0", "--controller-location", "1"}).code,
              0);
    EXPECT_EQ(storage_changes(),
              (std::vector<std::string>{
                  "add 0:1 HardDisk " + m_vhdx,
                  "controller 1",
                  "add 1:0 DvdDrive ",
                  "media 0:0 " + m_iso2,
                  "remove 0:1",
              }));
    // Every change is also stored for the next start.
    auto stored = config("web1");
    EXPECT_EQ(stored.scsi_controllers, 2u);
    EXPECT_EQ(
        stored.scsi_drives,
        (std::vector<vmm::ScsiDriveConfig>{drive(Kind::Dvd, 0, 0, m_iso2, true), drive(Kind::Dvd, 1, 0, "", true)}));
    // get-* show what the running machine has.
    auto dvds = get("get-vmdvddrive", "web1");
    ASSERT_EQ(dvds.size(), 2u);
    EXPECT_EQ(dvds[0]["Path"], m_iso2);
    EXPECT_EQ(dvds[1]["DvdMediaType"], "None");

    // The machine's errors come back, and config.json stays as it was.
    expect_failure({"add-vmharddiskdrive", "web1", "--path", m_raw, "--controller-number", "2"},
                   "VM 'web1' has no SCSI controller 2");
    ASSERT_EQ(run({"stop-vm", "web1", "--turn-off"}).code, 0);

    set_script(FakeMachineScript::refuses_storage_changes("the controller is busy"));
    ASSERT_EQ(run({"start-vm", "web1"}).code, 0);
    expect_failure({"add-vmharddiskdrive", "web1", "--path", m_raw},
                   "VM 'web1' (running) refused the change: the controller is busy");
    expect_failure({"set-vmdvddrive", "web1", "--path", "none", "--controller-location", "0"},
                   "refused the change: the controller is busy");
    expect_failure({"add-vmscsicontroller", "web1"}, "refused the change");
    ASSERT_EQ(run({"stop-vm", "web1", "--turn-off"}).code, 0);
    EXPECT_EQ(config("web1").scsi_drives, stored.scsi_drives);
}

TEST_F(CliStorageTest, RunDriveFlags)
{
    set_script(FakeMachineScript::stops_with(vmm::StopReason::PowerOff, ""));
    auto last_config = [&] {
        std::lock_guard guard(m_log->mutex);
        return *m_log->last_config;
    };
    auto ok = run({"run", "--kernel", m_kernel.string(), "--scsi-disk", m_vhdx, "--scsi-disk",
                   m_raw + ",location=3,read-only", "--dvd", m_iso});
    ASSERT_EQ(ok.code, 0) << ok.err;
    auto machine = last_config();
    EXPECT_EQ(machine.scsi_controllers, 1u);
    EXPECT_EQ(machine.scsi_drives,
              (std::vector<vmm::ScsiDriveConfig>{drive(Kind::HardDisk, 0, 0, m_vhdx, false),
                                                 drive(Kind::Dvd, 0, 1, m_iso, true),
                                                 drive(Kind::HardDisk, 0, 3, m_raw, true)}));

    // Generation 1 has no controller unless a drive asks for one; controller= adds them up to the one named.
    ASSERT_EQ(run({"run", "--generation", "1", "--kernel", m_kernel.string()}).code, 0);
    EXPECT_EQ(last_config().scsi_controllers, 0u);
    ASSERT_EQ(run({"run", "--generation", "1", "--kernel", m_kernel.string(), "--dvd", "none,controller=2", "--dvd",
                   ",controller=2,location=0", "--scsi-disk=" + m_raw + ",controller=1,read-only"})
                  .code,
              0);
    machine = last_config();
    EXPECT_EQ(machine.scsi_controllers, 3u);
    EXPECT_EQ(machine.scsi_drives,
              (std::vector<vmm::ScsiDriveConfig>{drive(Kind::HardDisk, 1, 0, m_raw, true),
                                                 drive(Kind::Dvd, 2, 0, "", true), drive(Kind::Dvd, 2, 1, "", true)}));

    auto kernel = m_kernel.string();
    expect_failure({"run", "--kernel", kernel, "--scsi-disk", file("missing.img")},
                   "--scsi-disk " + file("missing.img") + ": " + file("missing.img") + ": No such file");
    expect_failure({"run", "--kernel", kernel, "--scsi-disk", ""}, "no image path");
    expect_failure({"run", "--kernel", kernel, "--scsi-disk", m_raw + ",location=64"}, "must be 0 to 63");
    expect_failure({"run", "--kernel", kernel, "--scsi-disk", m_raw + ",controller=4"}, "must be 0 to 3");
    expect_failure({"run", "--kernel", kernel, "--scsi-disk", m_raw + ",writeback"},
                   "unknown drive option 'writeback'");
    expect_failure({"run", "--kernel", kernel, "--dvd", m_iso + ",read-only"}, "unknown drive option 'read-only'");
    expect_failure({"run", "--kernel", kernel, "--scsi-disk", m_raw + ",location=1,location=2"}, "given twice");
    expect_failure({"run", "--kernel", kernel, "--scsi-disk", m_raw + ",location=2,read-only", "--dvd", ",location=2"},
                   "location 2 of SCSI controller 0 is given to two drives");
    expect_failure({"run", "--kernel", kernel, "--scsi-disk", m_raw, "--scsi-disk", m_raw},
                   "is also attached at SCSI 0:");
    expect_failure({"run", "--kernel", kernel, "--com1", "stdio", "--com1", "none"}, "given more than once");
}

// config.json written before the "scsi" field existed, and strict checks of the field.
TEST_F(CliStorageTest, StoredLayoutIsCheckedOnLoad)
{
    new_vm("web1", {"--generation", "2"});
    auto path = m_root / "web1" / "config.json";
    auto root = json::parse(*read_small_file(path));
    root["scsi"] = {
        {"controllers", 1},
        {"drives",
         json::array({{{"type", "HardDisk"}, {"controller", 0}, {"location", 0}, {"path", m_raw}, {"read_only", false}},
                      {{"type", "DvdDrive"}, {"controller", 0}, {"location", 0}, {"path", ""}, {"read_only", true}}})}};
    ASSERT_TRUE(write_file_atomically(path, root.dump()));
    expect_failure({"get-vmharddiskdrive", "web1"}, "field 'scsi': SCSI 0:0: two drives at the same location");
    expect_failure({"add-vmscsicontroller", "web1"}, "two drives at the same location");
}

} // namespace
} // namespace vmgen::mgmt
