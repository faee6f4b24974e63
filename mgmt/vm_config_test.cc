#include "mgmt/vm_config.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace vmgen::mgmt {
namespace {

using nlohmann::json;

VmConfig sample()
{
    VmConfig config;
    config.name = "web1";
    config.id = new_uuid();
    config.created = "2024-05-01T12:00:00Z";
    config.generation = vmm::Generation::Two;
    config.memory_bytes = 2048ull << 20;
    config.processors = 4;
    config.kernel = "/boot/vmlinuz";
    config.initrd = "/boot/initrd.img";
    config.cmdline = "console=ttyS0 quiet";
    config.com[0] = {vmm::SerialPortConfig::Kind::File, "/tmp/com1.log"};
    config.com[1] = {vmm::SerialPortConfig::Kind::Stdio, ""};
    config.on_reset = vmm::ResetAction::Exit;
    return config;
}

std::string error_of(const std::string& text, std::string_view folder = "web1")
{
    auto parsed = parse_vm_config(text, "/store/web1/config.json", folder);
    return parsed ? std::string("(parsed)") : parsed.error().message();
}

std::string mutate(const std::function<void(json&)>& change)
{
    auto root = json::parse(serialize_vm_config(sample()));
    change(root);
    return root.dump();
}

TEST(VmConfig, RoundTrips)
{
    auto config = sample();
    auto text = serialize_vm_config(config);
    auto parsed = parse_vm_config(text, "config.json", "web1");
    ASSERT_TRUE(parsed) << parsed.error().message();
    EXPECT_EQ(parsed->name, config.name);
    EXPECT_EQ(parsed->id, config.id);
    EXPECT_EQ(parsed->created, config.created);
    EXPECT_EQ(parsed->generation, config.generation);
    EXPECT_EQ(parsed->memory_bytes, config.memory_bytes);
    EXPECT_EQ(parsed->processors, config.processors);
    EXPECT_EQ(parsed->kernel, config.kernel);
    EXPECT_EQ(parsed->initrd, config.initrd);
    EXPECT_EQ(parsed->cmdline, config.cmdline);
    EXPECT_EQ(parsed->com[0].kind, config.com[0].kind);
    EXPECT_EQ(parsed->com[0].path, config.com[0].path);
    EXPECT_EQ(parsed->com[1].kind, config.com[1].kind);
    EXPECT_EQ(parsed->on_reset, config.on_reset);
    EXPECT_EQ(serialize_vm_config(*parsed), text);
    EXPECT_EQ(json::parse(text)["version"], 1);
}

TEST(VmConfig, ToMachineConfig)
{
    auto machine = to_machine_config(sample());
    EXPECT_EQ(machine.generation, vmm::Generation::Two);
    EXPECT_EQ(machine.memory_bytes, 2048ull << 20);
    EXPECT_EQ(machine.processors, 4u);
    EXPECT_EQ(machine.kernel_path, "/boot/vmlinuz");
    EXPECT_EQ(machine.initrd_path, "/boot/initrd.img");
    EXPECT_EQ(machine.cmdline, "console=ttyS0 quiet");
    EXPECT_EQ(machine.com[0].kind, vmm::SerialPortConfig::Kind::File);
    EXPECT_EQ(machine.on_reset, vmm::ResetAction::Exit);
}

TEST(VmConfig, CorruptFilesNameTheFileAndTheProblem)
{
    auto full = serialize_vm_config(sample());
    struct Case {
        std::string text;
        std::string expected;
    };
    std::vector<Case> cases = {
        {"", "the file is empty"},
        {full.substr(0, full.size() / 2), "not valid JSON"},
        {"\x01\x02garbage", "not valid JSON"},
        {"[1,2]", "the top level is an array"},
        {mutate([](json& j) { j.erase("version"); }), "field 'version' is missing"},
        {mutate([](json& j) { j["version"] = 2; }), "unsupported config version 2"},
        {mutate([](json& j) { j["version"] = "1"; }), "field 'version' is not a whole number"},
        {mutate([](json& j) { j.erase("memory_bytes"); }), "field 'memory_bytes' is missing"},
        {mutate([](json& j) { j["memory_bytes"] = "lots"; }), "field 'memory_bytes' is not a number"},
        {mutate([](json& j) { j["memory_bytes"] = -5; }), "field 'memory_bytes' is negative"},
        {mutate([](json& j) { j["memory_bytes"] = 1.5; }), "field 'memory_bytes' is not a whole number"},
        {mutate([](json& j) { j["memory_bytes"] = 3 << 20; }), "field 'memory_bytes': memory 3M is too small"},
        {mutate([](json& j) { j["processors"] = 0; }), "field 'processors' is 0"},
        {mutate([](json& j) { j["processors"] = 241; }), "field 'processors' is 241"},
        {mutate([](json& j) { j["generation"] = 3; }), "field 'generation' is 3"},
        {mutate([](json& j) { j["generation"] = nullptr; }), "field 'generation' is not a number (it is null)"},
        {mutate([](json& j) { j["name"] = 7; }), "field 'name' is not a string"},
        {mutate([](json& j) { j["name"] = "other"; }), "field 'name' is 'other' but the folder is 'web1'"},
        {mutate([](json& j) { j["id"] = "nope"; }), "field 'id' is not a UUID"},
        {mutate([](json& j) { j.erase("created"); }), "field 'created' is missing"},
        {mutate([](json& j) { j["kernel"] = true; }), "field 'kernel' is not a string (it is a boolean)"},
        {mutate([](json& j) { j.erase("initrd"); }), "field 'initrd' is missing"},
        {mutate([](json& j) { j["cmdline"] = json::array(); }), "field 'cmdline' is not a string"},
        {mutate([](json& j) { j["com_ports"] = 1; }), "field 'com_ports' is not an object"},
        {mutate([](json& j) { j["com_ports"].erase("2"); }), "field 'com_ports.2' is missing"},
        {mutate([](json& j) { j["com_ports"]["1"]["kind"] = "tcp"; }), "field 'com_ports.1.kind'"},
        {mutate([](json& j) { j["com_ports"]["1"]["path"] = ""; }), "field 'com_ports.1.path' is empty"},
        {mutate([](json& j) { j["com_ports"]["2"].erase("path"); }), "field 'com_ports.2.path' is missing"},
        {mutate([](json& j) { j["on_reset"] = "reboot"; }), "field 'on_reset'"},
    };
    for (const auto& c : cases) {
        auto message = error_of(c.text);
        EXPECT_NE(message.find("config /store/web1/config.json: "), std::string::npos) << message;
        EXPECT_NE(message.find(c.expected), std::string::npos) << "expected '" << c.expected << "' in: " << message;
    }
}

TEST(VmConfig, IntegrationServicesRoundTripAndReachTheMachine)
{
    auto config = sample();
    config.integration_services.guest_service_interface = true;
    config.integration_services.time_synchronization = false;
    auto text = serialize_vm_config(config);
    auto stored = json::parse(text)["integration_services"];
    EXPECT_EQ(stored, json({{"guest_service_interface", true},
                            {"heartbeat", true},
                            {"key_value_pair_exchange", true},
                            {"shutdown", true},
                            {"time_synchronization", false},
                            {"vss", true}}));
    auto parsed = parse_vm_config(text, "config.json", "web1");
    ASSERT_TRUE(parsed) << parsed.error().message();
    EXPECT_TRUE(parsed->integration_services.guest_service_interface);
    EXPECT_FALSE(parsed->integration_services.time_synchronization);
    EXPECT_TRUE(parsed->integration_services.heartbeat);
    EXPECT_EQ(serialize_vm_config(*parsed), text);

    auto machine = to_machine_config(*parsed);
    EXPECT_TRUE(machine.integration_services.guest_service_interface);
    EXPECT_TRUE(machine.integration_services.heartbeat);
    EXPECT_TRUE(machine.integration_services.key_value_pair_exchange);
    EXPECT_TRUE(machine.integration_services.shutdown);
    EXPECT_FALSE(machine.integration_services.time_synchronization);
    EXPECT_TRUE(machine.integration_services.vss);
}

// A config.json written before integration services existed loads with Hyper-V's defaults.
TEST(VmConfig, ConfigWithoutIntegrationServicesGetsTheDefaults)
{
    auto text = mutate([](json& j) { j.erase("integration_services"); });
    auto parsed = parse_vm_config(text, "config.json", "web1");
    ASSERT_TRUE(parsed) << parsed.error().message();
    const auto& services = parsed->integration_services;
    EXPECT_FALSE(services.guest_service_interface);
    EXPECT_TRUE(services.heartbeat);
    EXPECT_TRUE(services.key_value_pair_exchange);
    EXPECT_TRUE(services.shutdown);
    EXPECT_TRUE(services.time_synchronization);
    EXPECT_TRUE(services.vss);
    // Saving it again writes the field (still version 1).
    auto saved = json::parse(serialize_vm_config(*parsed));
    EXPECT_EQ(saved["version"], 1);
    EXPECT_EQ(saved["integration_services"]["guest_service_interface"], false);
    EXPECT_EQ(saved["integration_services"]["vss"], true);
}

TEST(VmConfig, CorruptIntegrationServicesAreRejected)
{
    struct Case {
        std::string text;
        std::string expected;
    };
    std::vector<Case> cases = {
        {mutate([](json& j) { j["integration_services"] = true; }),
         "field 'integration_services' is not an object (it is a boolean)"},
        {mutate([](json& j) { j["integration_services"] = nullptr; }),
         "field 'integration_services' is not an object (it is null)"},
        {mutate([](json& j) { j["integration_services"] = json::array(); }),
         "field 'integration_services' is not an object (it is an array)"},
        {mutate([](json& j) { j["integration_services"]["heartbeat"] = "yes"; }),
         "field 'integration_services.heartbeat' is not a boolean (it is a string)"},
        {mutate([](json& j) { j["integration_services"]["vss"] = 1; }),
         "field 'integration_services.vss' is not a boolean (it is a number)"},
        {mutate([](json& j) { j["integration_services"].erase("shutdown"); }),
         "field 'integration_services.shutdown' is missing"},
    };
    for (const auto& c : cases) {
        auto message = error_of(c.text);
        EXPECT_NE(message.find("config /store/web1/config.json: "), std::string::npos) << message;
        EXPECT_NE(message.find(c.expected), std::string::npos) << "expected '" << c.expected << "' in: " << message;
    }
}

TEST(VmConfig, ScsiStorageRoundTripsAndReachesTheMachine)
{
    auto config = sample();
    config.scsi_controllers = 2;
    vmm::ScsiDriveConfig disk;
    disk.controller = 1;
    disk.location = 63;
    disk.path = "/srv/disk.vhdx";
    disk.read_only = true;
    vmm::ScsiDriveConfig dvd;
    dvd.kind = vmm::ScsiDriveConfig::Kind::Dvd;
    dvd.path = "/srv/setup.iso";
    dvd.read_only = true;
    config.scsi_drives = {dvd, disk};
    auto text = serialize_vm_config(config);
    EXPECT_EQ(json::parse(text)["scsi"], json::parse(R"({"controllers": 2, "drives": [
        {"type": "DvdDrive", "controller": 0, "location": 0, "path": "/srv/setup.iso", "read_only": true},
        {"type": "HardDisk", "controller": 1, "location": 63, "path": "/srv/disk.vhdx", "read_only": true}]})"));
    auto parsed = parse_vm_config(text, "config.json", "web1");
    ASSERT_TRUE(parsed) << parsed.error().message();
    EXPECT_EQ(parsed->scsi_controllers, 2u);
    EXPECT_EQ(parsed->scsi_drives, config.scsi_drives);
    EXPECT_EQ(serialize_vm_config(*parsed), text);

    auto machine = to_machine_config(*parsed);
    EXPECT_EQ(machine.vm_id, config.id);
    EXPECT_EQ(machine.scsi_controllers, 2u);
    EXPECT_EQ(machine.scsi_drives, config.scsi_drives);
}

// A config.json written before SCSI storage existed: Hyper-V's default controllers for its generation, no drives.
TEST(VmConfig, ConfigWithoutScsiGetsTheGenerationsDefault)
{
    auto two = parse_vm_config(mutate([](json& j) { j.erase("scsi"); }), "config.json", "web1");
    ASSERT_TRUE(two) << two.error().message();
    EXPECT_EQ(two->scsi_controllers, 1u);
    EXPECT_TRUE(two->scsi_drives.empty());
    EXPECT_EQ(json::parse(serialize_vm_config(*two))["scsi"], json::parse(R"({"controllers": 1, "drives": []})"));
    auto one = parse_vm_config(mutate([](json& j) {
                                   j.erase("scsi");
                                   j["generation"] = 1;
                               }),
                               "config.json", "web1");
    ASSERT_TRUE(one) << one.error().message();
    EXPECT_EQ(one->scsi_controllers, 0u);
}

TEST(VmConfig, CorruptScsiStorageIsRejected)
{
    auto with_drive = [](const std::function<void(json&)>& change) {
        return mutate([&](json& j) {
            j["scsi"] = {{"controllers", 1},
                         {"drives", json::array({{{"type", "HardDisk"},
                                                  {"controller", 0},
                                                  {"location", 0},
                                                  {"path", "/a.vhdx"},
                                                  {"read_only", false}}})}};
            change(j);
        });
    };
    EXPECT_EQ(error_of(with_drive([](json&) {})), "(parsed)");
    struct Case {
        std::string text;
        std::string expected;
    };
    std::vector<Case> cases = {
        {mutate([](json& j) { j["scsi"] = 1; }), "field 'scsi' is not an object (it is a number)"},
        {mutate([](json& j) { j["scsi"].erase("controllers"); }), "field 'scsi.controllers' is missing"},
        {mutate([](json& j) { j["scsi"]["controllers"] = 5; }), "field 'scsi.controllers' is 5, a virtual machine "
                                                                "has at most 4"},
        {mutate([](json& j) { j["scsi"]["controllers"] = -1; }), "field 'scsi.controllers' is negative"},
        {mutate([](json& j) { j["scsi"]["drives"] = json::object(); }), "field 'scsi.drives' is not an array"},
        {mutate([](json& j) { j["scsi"].erase("drives"); }), "field 'scsi.drives' is missing"},
        {with_drive([](json& j) { j["scsi"]["drives"][0] = "disk"; }), "field 'scsi.drives[0]' is not an object"},
        {with_drive([](json& j) { j["scsi"]["drives"][0]["type"] = "Floppy"; }),
         "field 'scsi.drives[0].type': invalid drive type 'Floppy'"},
        {with_drive([](json& j) { j["scsi"]["drives"][0].erase("path"); }), "field 'scsi.drives[0].path' is missing"},
        {with_drive([](json& j) { j["scsi"]["drives"][0]["read_only"] = 0; }),
         "field 'scsi.drives[0].read_only' is not a boolean"},
        {with_drive([](json& j) { j["scsi"]["drives"][0]["location"] = 64; }),
         "field 'scsi.drives[0]': SCSI 0:64 is out of range"},
        {with_drive([](json& j) { j["scsi"]["drives"][0]["controller"] = 1; }),
         "field 'scsi': SCSI 1:0: SCSI controller 1 does not exist (the virtual machine has 1)"},
        {with_drive([](json& j) { j["scsi"]["drives"][0]["path"] = "relative.vhdx"; }),
         "field 'scsi': SCSI 0:0: a hard disk needs an absolute image path"},
        {with_drive([](json& j) { j["scsi"]["drives"].push_back(j["scsi"]["drives"][0]); }),
         "field 'scsi': SCSI 0:0: two drives at the same location"},
        {with_drive([](json& j) {
             j["scsi"]["drives"][0]["type"] = "DvdDrive";
         }),
         "field 'scsi': SCSI 0:0: a DVD drive is always read-only"},
    };
    for (const auto& c : cases) {
        auto message = error_of(c.text);
        EXPECT_NE(message.find("config /store/web1/config.json: "), std::string::npos) << message;
        EXPECT_NE(message.find(c.expected), std::string::npos) << "expected '" << c.expected << "' in: " << message;
    }
}

TEST(VmConfig, GenerationOneProcessorLimit)
{
    auto text = mutate([](json& j) {
        j["generation"] = 1;
        j["processors"] = 65;
    });
    EXPECT_NE(error_of(text).find("field 'processors' is 65"), std::string::npos);
}

TEST(Uuid, RandomAndWellFormed)
{
    auto a = new_uuid();
    auto b = new_uuid();
    EXPECT_NE(a, b);
    EXPECT_TRUE(is_uuid(a));
    EXPECT_EQ(a[14], '4');
    EXPECT_FALSE(is_uuid("not-a-uuid"));
    EXPECT_FALSE(is_uuid("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"));
}

TEST(Time, Iso8601)
{
    auto now = utc_now_iso8601();
    EXPECT_EQ(now.size(), 20u);
    EXPECT_EQ(now.back(), 'Z');
    EXPECT_EQ(now[10], 'T');
}

} // namespace
} // namespace vmgen::mgmt
