// Guest-boot tests: boots the test guests (tests/guests/) under vmgen on KVM and checks what they report
// on COM1 and how vmgen exits. Skipped without /dev/kvm.
#include "tests/guest_runner.h"

#include <algorithm>
#include <cctype>
#include <gtest/gtest.h>

namespace vmgen::guest_test {
namespace {

using namespace std::chrono_literals;

struct VmgenRun {
    ProcessResult process;
    std::string serial;
    std::vector<std::string> lines;
    [[nodiscard]] std::string what() const { return describe(process, serial); }
};

struct RunOptions {
    unsigned processors = 1;
    bool exit_on_reset = false;
};

VmgenRun run_vmgen(int generation, std::string_view guest, const RunOptions& options = {})
{
    TempDir dir;
    std::string serial_path = dir.path() + "/com1.txt";
    std::vector<std::string> argv = {
        VMGEN_PATH,       "run",
        "--generation",   std::to_string(generation),
        "--memory",       "256M",
        "--processors",   std::to_string(options.processors),
        "--kernel",       guest_path(guest),
        "--com1",         "file:" + serial_path,
    };
    if (options.exit_on_reset) {
        argv.emplace_back("--on-reset");
        argv.emplace_back("exit");
    }
    VmgenRun run;
    run.process = run_process(argv, 120s);
    run.serial = read_text_file(serial_path);
    run.lines = guest_lines(run.serial);
    return run;
}

bool contains_case_insensitive(std::string_view haystack, std::string_view needle)
{
    auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
    });
    return it != haystack.end();
}

// "port <name> <present|absent> (...)" -> "present", "absent" or "" when the line is missing.
std::string port_state(const std::vector<std::string>& lines, std::string_view name)
{
    std::string l = find_line(lines, "port " + std::string(name) + " ");
    if (l.empty())
        return "";
    l = l.substr(6 + name.size());
    return l.substr(0, l.find(' '));
}

class GuestBoot : public ::testing::TestWithParam<int> {
protected:
    void SetUp() override
    {
        if (!kvm_accessible())
            GTEST_SKIP() << "/dev/kvm is not accessible";
    }
    [[nodiscard]] int generation() const { return GetParam(); }
};

// The guest ran to its end: it passed and vmgen exited 0 after the ACPI power off.
void expect_passed_and_powered_off(const VmgenRun& run)
{
    EXPECT_FALSE(run.process.timed_out) << run.what();
    EXPECT_EQ(guest_result(run.lines), "PASS") << run.what();
    EXPECT_EQ(run.process.exit_status, 0) << run.what();
}

TEST_P(GuestBoot, HelloPowersOff)
{
    VmgenRun run = run_vmgen(generation(), "hello");
    expect_passed_and_powered_off(run);
    EXPECT_TRUE(has_line(run.lines, "hello from cpu 0")) << run.what();
}

TEST_P(GuestBoot, SmpAllProcessorsComeUp)
{
    VmgenRun run = run_vmgen(generation(), "smp", {.processors = 4});
    expect_passed_and_powered_off(run);
    EXPECT_TRUE(has_line(run.lines, "cpus online 4/4")) << run.what();
    for (int id = 0; id < 4; ++id)
        EXPECT_TRUE(has_line(run.lines, "cpu apic_id=" + std::to_string(id) + " online")) << run.what();
}

TEST_P(GuestBoot, AcpiTablesAreValid)
{
    VmgenRun run = run_vmgen(generation(), "acpi_check", {.processors = 2});
    expect_passed_and_powered_off(run);
    unsigned tables = 0;
    for (const auto& l : run.lines) {
        if (l.starts_with("table ")) {
            ++tables;
            EXPECT_TRUE(l.ends_with("checksum=ok")) << l << "\n" << run.what();
        }
    }
    EXPECT_GE(tables, 4u) << run.what(); // XSDT, FACP, APIC, DSDT at least
    for (const char* sig : {"FACP", "APIC", "DSDT"})
        EXPECT_FALSE(find_line(run.lines, std::string("table ") + sig + " ").empty()) << sig << "\n" << run.what();
    EXPECT_TRUE(find_line(run.lines, "rsdp ").ends_with("checksum=ok extended_checksum=ok")) << run.what();

    std::string madt = find_line(run.lines, "madt lapics=");
    EXPECT_TRUE(madt.starts_with("madt lapics=2 ")) << run.what();
    if (generation() == 2) {
        EXPECT_TRUE(madt.ends_with(" pcat_compat=0")) << run.what();
        EXPECT_TRUE(has_line(run.lines, "dsdt vmbus=yes")) << run.what();
    } else {
        EXPECT_TRUE(madt.ends_with(" pcat_compat=1")) << run.what();
    }
    EXPECT_FALSE(find_line(run.lines, "fadt sci=").empty()) << run.what();
    std::string s5 = find_line(run.lines, "s5 slp_typ=");
    EXPECT_FALSE(s5.empty() || s5 == "s5 slp_typ=-1") << run.what();
}

TEST_P(GuestBoot, LegacyPorts)
{
    VmgenRun run = run_vmgen(generation(), "legacy_ports");
    expect_passed_and_powered_off(run);
    if (generation() == 2) {
        for (const char* dev : {"pic", "pit", "i8042", "ide", "floppy", "vga", "pci", "dma", "port80", "port92",
                                "speaker", "com2"})
            EXPECT_EQ(port_state(run.lines, dev), "absent") << dev << "\n" << run.what();
        for (const char* dev : {"rtc", "com1"})
            EXPECT_EQ(port_state(run.lines, dev), "present") << dev << "\n" << run.what();
        unsigned reads = 0;
        for (const auto& l : run.lines) {
            if (!l.starts_with("read 0x"))
                continue;
            ++reads;
            std::string value = l.substr(l.find(" = 0x") + 5);
            EXPECT_TRUE(!value.empty() && value.find_first_not_of('f') == std::string::npos) << l << "\n" << run.what();
        }
        EXPECT_GT(reads, 10u) << run.what();
    } else {
        // Generation 1 devices that exist so far; IDE, VGA, PCI and the i8042 are not asserted yet.
        for (const char* dev : {"pic", "pit", "rtc", "port80", "port92", "com1", "com2"})
            EXPECT_EQ(port_state(run.lines, dev), "present") << dev << "\n" << run.what();
    }
}

TEST_P(GuestBoot, ResetExitsWithStatus3)
{
    VmgenRun run = run_vmgen(generation(), "reset", {.exit_on_reset = true});
    EXPECT_FALSE(run.process.timed_out) << run.what();
    EXPECT_FALSE(find_line(run.lines, "resetting via reset_reg=").empty()) << run.what();
    EXPECT_EQ(guest_result(run.lines), "") << run.what();
    EXPECT_EQ(run.process.exit_status, 3) << run.what();
}

TEST_P(GuestBoot, TripleFaultIsReported)
{
    VmgenRun run = run_vmgen(generation(), "triple_fault");
    EXPECT_FALSE(run.process.timed_out) << run.what();
    EXPECT_TRUE(has_line(run.lines, "triple fault now")) << run.what();
    EXPECT_EQ(run.process.exit_status, 4) << run.what();
    EXPECT_TRUE(contains_case_insensitive(run.process.err, "triple fault")) << run.what();
}

TEST_P(GuestBoot, Ring3Loop)
{
    VmgenRun run = run_vmgen(generation(), "ring3_loop");
    expect_passed_and_powered_off(run);
    EXPECT_TRUE(has_line(run.lines, "ring3 iterations=100000000 ok")) << run.what();
}

INSTANTIATE_TEST_SUITE_P(Generations, GuestBoot, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& param) { return "Gen" + std::to_string(param.param); });

} // namespace
} // namespace vmgen::guest_test
