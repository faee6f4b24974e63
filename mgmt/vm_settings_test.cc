#include "mgmt/vm_settings.h"

#include "mgmt/temp_home.h"

#include <gtest/gtest.h>

#include <fstream>

namespace vmgen::mgmt {
namespace {

TEST(MemorySize, ParsesUnitsAndBytes)
{
    EXPECT_EQ(*parse_memory_size("512M"), 512 * mib);
    EXPECT_EQ(*parse_memory_size("512m"), 512 * mib);
    EXPECT_EQ(*parse_memory_size("1024MB"), 1024 * mib);
    EXPECT_EQ(*parse_memory_size("2G"), 2048 * mib);
    EXPECT_EQ(*parse_memory_size("2GiB"), 2048 * mib);
    EXPECT_EQ(*parse_memory_size("65536K"), 64 * mib);
    EXPECT_EQ(*parse_memory_size("1T"), 1ull << 40);
    EXPECT_EQ(*parse_memory_size("536870912"), 512 * mib);
    EXPECT_EQ(*parse_memory_size("536870912B"), 512 * mib);
}

TEST(MemorySize, RejectsGarbage)
{
    for (const char* text : {"", "M", "-1G", "1.5G", "12X", "0x100", "1 G", "99999999999999999999", "20000000T"}) {
        auto parsed = parse_memory_size(text);
        EXPECT_FALSE(parsed) << text;
        if (!parsed) {
            EXPECT_NE(parsed.error().message().find("invalid memory size"), std::string::npos);
        }
    }
}

TEST(MemorySize, Formats)
{
    EXPECT_EQ(format_memory_size(512 * mib), "512M");
    EXPECT_EQ(format_memory_size(2048 * mib), "2G");
    EXPECT_EQ(format_memory_size(1000), "1000");
}

TEST(Memory, FollowsHyperVRules)
{
    EXPECT_TRUE(validate_memory(32 * mib, 0));
    EXPECT_TRUE(validate_memory(514 * mib, 0));
    EXPECT_FALSE(validate_memory(30 * mib, 0));
    EXPECT_FALSE(validate_memory(0, 0));
    auto odd = validate_memory(513 * mib, 0);
    ASSERT_FALSE(odd);
    EXPECT_NE(odd.error().message().find("multiple of 2M"), std::string::npos);
    auto big = validate_memory(4096 * mib, 2048 * mib);
    ASSERT_FALSE(big);
    EXPECT_NE(big.error().message().find("more than the host"), std::string::npos);
    EXPECT_TRUE(validate_memory(2048 * mib, 2048 * mib));
}

TEST(Processors, LimitsDependOnGeneration)
{
    EXPECT_EQ(*parse_processors("1", vmm::Generation::One), 1u);
    EXPECT_EQ(*parse_processors("64", vmm::Generation::One), 64u);
    EXPECT_FALSE(parse_processors("65", vmm::Generation::One));
    EXPECT_EQ(*parse_processors("240", vmm::Generation::Two), 240u);
    EXPECT_FALSE(parse_processors("241", vmm::Generation::Two));
    EXPECT_FALSE(parse_processors("0", vmm::Generation::Two));
    EXPECT_FALSE(parse_processors("-1", vmm::Generation::Two));
    EXPECT_FALSE(parse_processors("two", vmm::Generation::Two));
    EXPECT_FALSE(parse_processors("", vmm::Generation::Two));
    EXPECT_FALSE(parse_processors("99999999999999999999999", vmm::Generation::Two));
    auto zero = parse_processors("0", vmm::Generation::One);
    ASSERT_FALSE(zero);
    EXPECT_NE(zero.error().message().find("generation 1 virtual machine has 1 to 64"), std::string::npos);
}

TEST(Generation, OneOrTwo)
{
    EXPECT_EQ(*parse_generation("1"), vmm::Generation::One);
    EXPECT_EQ(*parse_generation("2"), vmm::Generation::Two);
    EXPECT_FALSE(parse_generation("3"));
    EXPECT_FALSE(parse_generation(""));
}

TEST(VmName, Rules)
{
    EXPECT_TRUE(validate_vm_name("web1"));
    EXPECT_TRUE(validate_vm_name("My VM (test)"));
    EXPECT_TRUE(validate_vm_name(std::string(100, 'a')));
    EXPECT_FALSE(validate_vm_name(std::string(101, 'a')));
    EXPECT_FALSE(validate_vm_name(""));
    EXPECT_FALSE(validate_vm_name("."));
    EXPECT_FALSE(validate_vm_name(".."));
    EXPECT_FALSE(validate_vm_name(".hidden"));
    EXPECT_FALSE(validate_vm_name("a/b"));
    EXPECT_FALSE(validate_vm_name("tab\there"));
    EXPECT_FALSE(validate_vm_name("new\nline"));
    EXPECT_FALSE(validate_vm_name(std::string("del\x7f")));
}

TEST(InputFile, MustExistAndBeARegularFile)
{
    TempHome home;
    auto file = home.path() / "kernel";
    std::ofstream(file) << "x";
    auto resolved = resolve_input_file(file.string());
    ASSERT_TRUE(resolved);
    EXPECT_EQ(*resolved, file.string());
    EXPECT_FALSE(resolve_input_file((home.path() / "missing").string()));
    EXPECT_FALSE(resolve_input_file(home.path().string()));
    EXPECT_FALSE(resolve_input_file(""));
}

TEST(ComPort, ParsesTargets)
{
    EXPECT_EQ(parse_com_port("none")->kind, vmm::SerialPortConfig::Kind::None);
    EXPECT_EQ(parse_com_port("stdio")->kind, vmm::SerialPortConfig::Kind::Stdio);
    auto file = parse_com_port("file:/tmp/com1.log");
    ASSERT_TRUE(file);
    EXPECT_EQ(file->kind, vmm::SerialPortConfig::Kind::File);
    EXPECT_EQ(file->path, "/tmp/com1.log");
    EXPECT_EQ(format_com_port(*file), "file:/tmp/com1.log");
    auto unix_socket = parse_com_port("unix:/tmp/com2.sock");
    ASSERT_TRUE(unix_socket);
    EXPECT_EQ(unix_socket->kind, vmm::SerialPortConfig::Kind::UnixSocket);
    auto relative = parse_com_port("file:relative.log");
    ASSERT_TRUE(relative);
    EXPECT_TRUE(std::filesystem::path(relative->path).is_absolute());
    for (const char* bad : {"", "file:", "unix:", "tcp:1234", "stdout", "file:/no/such/dir/x.log"})
        EXPECT_FALSE(parse_com_port(bad)) << bad;
}

TEST(ResetAction, RestartOrExit)
{
    EXPECT_EQ(*parse_reset_action("restart"), vmm::ResetAction::Restart);
    EXPECT_EQ(*parse_reset_action("exit"), vmm::ResetAction::Exit);
    EXPECT_FALSE(parse_reset_action("reboot"));
}

TEST(IntegrationService, FindsHyperVNamesCaseInsensitively)
{
    ASSERT_EQ(integration_service_list.size(), 6u);
    EXPECT_EQ(integration_service_list[0].name, "Guest Service Interface");
    EXPECT_EQ(integration_service_list[5].name, "VSS");
    for (const auto& service : integration_service_list) {
        auto found = find_integration_service(service.name);
        ASSERT_TRUE(found) << service.name;
        EXPECT_EQ(*found, &service);
    }
    EXPECT_EQ((*find_integration_service("time synchronization"))->config_key, "time_synchronization");
    EXPECT_EQ((*find_integration_service("KEY-VALUE PAIR EXCHANGE"))->config_key, "key_value_pair_exchange");
    EXPECT_EQ((*find_integration_service("vss"))->enabled, &vmm::IntegrationServices::vss);
    for (const char* bad : {"", "Time", "time_synchronization", "Heartbeat ", "Backup"}) {
        auto found = find_integration_service(bad);
        ASSERT_FALSE(found) << bad;
        EXPECT_NE(found.error().message().find("unknown integration service"), std::string::npos);
        EXPECT_NE(found.error().message().find("'Guest Service Interface', 'Heartbeat', 'Key-Value Pair Exchange', "
                                               "'Shutdown', 'Time Synchronization', 'VSS'"),
                  std::string::npos)
            << found.error().message();
    }
}

TEST(HostMemory, ReadsMemTotal) { EXPECT_GT(host_memory_total(), 0u); }

} // namespace
} // namespace vmgen::mgmt
