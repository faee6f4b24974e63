// Cross-check of the test guests themselves: boots them under QEMU (a VMM we did not write) with its PVH
// loader. Skipped when qemu-system-x86_64 is not installed; uses KVM when /dev/kvm is accessible, else TCG.
#include "tests/guest_runner.h"

#include <gtest/gtest.h>

namespace vmgen::guest_test {
namespace {

using namespace std::chrono_literals;

struct QemuRun {
    ProcessResult process;
    std::string serial;
    std::vector<std::string> lines;
    [[nodiscard]] std::string what() const { return describe(process, serial); }
};

class QemuGuest : public ::testing::Test {
protected:
    void SetUp() override
    {
        m_qemu = find_in_path("qemu-system-x86_64");
        if (m_qemu.empty())
            GTEST_SKIP() << "qemu-system-x86_64 is not installed";
    }

    // machine: "pc" (i440FX, ACPI 1.0 FADT) or "q35" (FADT with a reset register).
    QemuRun boot(std::string_view guest, unsigned cpus = 1, std::string_view machine = "pc")
    {
        TempDir dir;
        std::string serial_path = dir.path() + "/com1.txt";
        std::vector<std::string> argv = {
            m_qemu,   "-machine", std::string(machine), "-accel", kvm_accessible() ? "kvm" : "tcg",
            "-m",     "256",      "-smp",  std::to_string(cpus), "-display", "none", "-no-reboot",
            "-nodefaults", "-serial", "file:" + serial_path, "-kernel", guest_path(guest),
        };
        QemuRun run;
        run.process = run_process(argv, 60s);
        run.serial = read_text_file(serial_path);
        run.lines = guest_lines(run.serial);
        return run;
    }

private:
    std::string m_qemu;
};

TEST_F(QemuGuest, Hello)
{
    QemuRun run = boot("hello");
    EXPECT_FALSE(run.process.timed_out) << run.what();
    EXPECT_EQ(run.process.exit_status, 0) << run.what(); // QEMU exits 0 on the guest's ACPI power off
    EXPECT_TRUE(has_line(run.lines, "hello from cpu 0")) << run.what();
    EXPECT_EQ(guest_result(run.lines), "PASS") << run.what();
}

TEST_F(QemuGuest, AcpiCheck)
{
    for (std::string_view machine : {"pc", "q35"}) {
        QemuRun run = boot("acpi_check", 2, machine);
        EXPECT_FALSE(run.process.timed_out) << run.what();
        EXPECT_EQ(run.process.exit_status, 0) << run.what();
        EXPECT_EQ(guest_result(run.lines), "PASS") << run.what();
        for (const auto& l : run.lines) {
            if (l.starts_with("table ")) {
                EXPECT_TRUE(l.ends_with("checksum=ok")) << l;
            }
        }
        EXPECT_TRUE(find_line(run.lines, "madt lapics=").starts_with("madt lapics=2 ioapics=1 pcat_compat=1"))
            << run.what();
        EXPECT_TRUE(has_line(run.lines, "dsdt vmbus=no")) << run.what();
        EXPECT_TRUE(has_line(run.lines, "s5 slp_typ=0")) << run.what();
    }
}

TEST_F(QemuGuest, Smp)
{
    QemuRun run = boot("smp", 2);
    EXPECT_FALSE(run.process.timed_out) << run.what();
    EXPECT_TRUE(has_line(run.lines, "cpus online 2/2")) << run.what();
    EXPECT_EQ(guest_result(run.lines), "PASS") << run.what();
}

TEST_F(QemuGuest, LegacyPortsOnAPc)
{
    QemuRun run = boot("legacy_ports");
    EXPECT_FALSE(run.process.timed_out) << run.what();
    EXPECT_EQ(guest_result(run.lines), "PASS") << run.what();
    for (const char* dev : {"pic", "pit", "rtc", "pci", "port92", "com1"})
        EXPECT_FALSE(find_line(run.lines, std::string("port ") + dev + " present").empty()) << dev << "\n"
                                                                                           << run.what();
    EXPECT_FALSE(find_line(run.lines, "port com2 absent").empty()) << run.what();
}

TEST_F(QemuGuest, Ring3Loop)
{
    QemuRun run = boot("ring3_loop");
    EXPECT_FALSE(run.process.timed_out) << run.what();
    EXPECT_TRUE(has_line(run.lines, "ring3 iterations=100000000 ok")) << run.what();
    EXPECT_EQ(guest_result(run.lines), "PASS") << run.what();
}

// With -no-reboot QEMU exits on a guest reset and on a triple fault (shutdown) alike.
TEST_F(QemuGuest, ResetThroughTheFadtResetRegister)
{
    QemuRun run = boot("reset", 1, "q35");
    EXPECT_FALSE(run.process.timed_out) << run.what();
    EXPECT_TRUE(has_line(run.lines, "resetting via reset_reg=1:0xcf9 value=0xf")) << run.what();
    EXPECT_EQ(guest_result(run.lines), "") << run.what();
}

TEST_F(QemuGuest, TripleFault)
{
    QemuRun run = boot("triple_fault");
    EXPECT_FALSE(run.process.timed_out) << run.what();
    EXPECT_TRUE(has_line(run.lines, "triple fault now")) << run.what();
    EXPECT_EQ(guest_result(run.lines), "") << run.what();
}

} // namespace
} // namespace vmgen::guest_test
