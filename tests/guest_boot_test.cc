// Guest-boot tests: boots the test guests (tests/guests/) under vmgen on KVM and checks what they report
// on COM1 and how vmgen exits. Skipped without /dev/kvm.
#include "tests/guest_runner.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
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
    const char* on_reset = nullptr; // --on-reset restart|exit; vmgen's default when null
    std::string kernel{};             // default: guest_path(guest)
    std::string initrd{};             // --initrd, when not empty
    const char* cmdline = nullptr;    // --cmdline, when not null
    bool vmbus_echo = false;          // --vmbus-echo
    std::vector<std::string> extra{}; // more options (the demo's drives: --scsi-disk, --dvd)
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
        "--kernel",       options.kernel.empty() ? guest_path(guest) : options.kernel,
        "--com1",         "file:" + serial_path,
    };
    if (options.on_reset) {
        argv.emplace_back("--on-reset");
        argv.emplace_back(options.on_reset);
    }
    if (!options.initrd.empty()) {
        argv.emplace_back("--initrd");
        argv.emplace_back(options.initrd);
    }
    if (options.cmdline) {
        argv.emplace_back("--cmdline");
        argv.emplace_back(options.cmdline);
    }
    if (options.vmbus_echo)
        argv.emplace_back("--vmbus-echo");
    argv.insert(argv.end(), options.extra.begin(), options.extra.end());
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
    VmgenRun run = run_vmgen(generation(), "reset", {.on_reset = "exit"});
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

// The conformance client (tests/guests/vmbus_client, modelled on Linux 6.1's hv_vmbus) finds a Hyper-V host:
// CPUID identity, synthetic MSRs, hypercall page, reference TSC page, SynIC; then negotiates VMBus 5.3 on
// connection id 4, gets the shutdown and heartbeat offers (and, in generation 2, the default SCSI controller's),
// opens both integration service channels (ring GPADLs), splits a
// 64-page GPADL over header and body messages, negotiates both integration services, closes and unloads.
TEST_P(GuestBoot, HyperVEnlightenmentsAndVmbusHandshake)
{
    VmgenRun run = run_vmgen(generation(), "vmbus_client", {.processors = 2, .cmdline = "noshutdown"});
    expect_passed_and_powered_off(run);
    EXPECT_FALSE(find_line(run.lines, "hyperv detected max_leaf=0x4000000a").empty()) << run.what();
    EXPECT_FALSE(find_line(run.lines, "hypercall page gpa=").empty()) << run.what();
    EXPECT_NE(find_line(run.lines, "hypercall page gpa=").find("code=f3 0f 1e fa e6 e0 c3"), std::string::npos)
        << run.what();
    EXPECT_FALSE(find_line(run.lines, "reference tsc sequence=").empty()) << run.what();
    EXPECT_TRUE(has_line(run.lines, "vp index=0")) << run.what();
    EXPECT_FALSE(find_line(run.lines, "vmbus version 5.3 accepted conn_id=4").empty()) << run.what();
    // Shutdown and heartbeat; generation 2 also has its default SCSI controller (vmgen run gives it one, as
    // Hyper-V's New-VM does).
    const char* offers = generation() == 2 ? "all offers delivered count=3" : "all offers delivered count=2";
    EXPECT_TRUE(has_line(run.lines, offers)) << run.what();
    EXPECT_FALSE(find_line(run.lines, "channel shutdown open").empty()) << run.what();
    EXPECT_FALSE(find_line(run.lines, "channel heartbeat open").empty()) << run.what();
    EXPECT_FALSE(find_line(run.lines, "gpadl id=0xe1e12 relid=1 pages=64 created (header 26 pfns + 2 body messages)")
                     .empty())
        << run.what();
    EXPECT_FALSE(find_line(run.lines, "ic shutdown negotiated fw=3.0 msg=3.2").empty()) << run.what();
    EXPECT_FALSE(find_line(run.lines, "ic heartbeat negotiated fw=3.0 msg=3.0").empty()) << run.what();
    EXPECT_TRUE(has_line(run.lines, "vmbus unloaded")) << run.what();
}

// The ring benchmark's guest (tests/guests/vmbus_ring_bench) as a functional check of the echo device and the
// ring rules: 1000 packets of 64 B and 4 KiB, unbatched, batched and pipelined, every echo checked (order,
// type, length, payload) in ring 3, HvSignalEvent through the kit's ring-3 gate.
TEST_P(GuestBoot, VmbusRingEchoesPackets)
{
    for (const char* mode : {"mode=unbatched", "mode=batched", "mode=pipelined"}) {
        std::string cmdline = std::string("packets=1000 ") + mode;
        VmgenRun run = run_vmgen(generation(), "vmbus_ring_bench", {.cmdline = cmdline.c_str(), .vmbus_echo = true});
        expect_passed_and_powered_off(run);
        for (const char* size : {"64", "4096"})
            EXPECT_FALSE(find_line(run.lines, std::string("ring size=") + size + " " + mode + " packets=1000 ").empty())
                << run.what();
    }
}

TEST_P(GuestBoot, Ring3Loop)
{
    VmgenRun run = run_vmgen(generation(), "ring3_loop");
    expect_passed_and_powered_off(run);
    EXPECT_TRUE(has_line(run.lines, "ring3 iterations=100000000 ok")) << run.what();
}

// Device interrupts through the I/O APIC to the bootstrap processor (tests/guests/interrupts): the RTC's
// periodic interrupt edge-triggered (one interrupt per edge, none while the line stays high), COM1's
// THR-empty interrupt level-triggered (one per arming, no storm after the EOI, delivered again when
// EOI'd with the line still high). Generation 1: KVM's in-kernel I/O APIC; generation 2: vmgen's I/O APIC
// with KVM's split irqchip, where the EOIs come back from KVM through the mirrored MSI routes.
void expect_interrupts_reach_the_bsp(int generation, const VmgenRun& run)
{
    expect_passed_and_powered_off(run);
    EXPECT_LT(run.process.seconds, 5.0) << run.what();
    EXPECT_TRUE(find_line(run.lines, "irq setup ").starts_with("irq setup apic_id=0 ")) << run.what();
    std::string ioapic = find_line(run.lines, "irq ioapic base=");
    EXPECT_TRUE(ioapic.starts_with("irq ioapic base=0xfec00000 ")) << run.what();
    EXPECT_TRUE(ioapic.ends_with(" max_entry=23")) << run.what();
    if (generation == 2) {
        EXPECT_EQ(ioapic, "irq ioapic base=0xfec00000 version=0x20 max_entry=23") << run.what();
    }
    EXPECT_TRUE(has_line(run.lines, "irq ioapic readback ok")) << run.what();
    EXPECT_TRUE(has_line(run.lines, "irq rtc edge count=5")) << run.what();
    EXPECT_TRUE(has_line(run.lines, "irq rtc edge held count=1 released count=2")) << run.what();
    EXPECT_TRUE(has_line(run.lines, "irq com1 level count=8 expected=8")) << run.what();
    EXPECT_TRUE(find_line(run.lines, "irq com1 level redelivered ").starts_with("irq com1 level redelivered acked=1 deferred=1 "))
        << run.what();
    EXPECT_EQ(find_line(run.lines, "check failed"), "") << run.what();
}

TEST_P(GuestBoot, InterruptsReachTheProcessor)
{
    VmgenRun run = run_vmgen(generation(), "interrupts");
    expect_interrupts_reach_the_bsp(generation(), run);
}

TEST_P(GuestBoot, InterruptsReachTheBspWithTwoProcessors)
{
    VmgenRun run = run_vmgen(generation(), "interrupts", {.processors = 2});
    expect_interrupts_reach_the_bsp(generation(), run);
    EXPECT_TRUE(has_line(run.lines, "cpus online 2/2")) << run.what();
}

// The line's index in lines, or -1.
int line_index(const std::vector<std::string>& lines, std::string_view line)
{
    auto it = std::find(lines.begin(), lines.end(), line);
    return it == lines.end() ? -1 : static_cast<int>(it - lines.begin());
}

TEST_P(GuestBoot, ResetRestartKeepsCmos)
{
    VmgenRun run = run_vmgen(generation(), "reset_restart", {.on_reset = "restart"});
    expect_passed_and_powered_off(run);
    int first = line_index(run.lines, "first boot, resetting");
    int second = line_index(run.lines, "second boot after reset");
    EXPECT_GE(first, 0) << run.what();
    EXPECT_GT(second, first) << run.what();
    EXPECT_EQ(std::count(run.lines.begin(), run.lines.end(), "first boot, resetting"), 1) << run.what();
}

TEST_P(GuestBoot, ResetRestartWithExitAction)
{
    VmgenRun run = run_vmgen(generation(), "reset_restart", {.on_reset = "exit"});
    EXPECT_FALSE(run.process.timed_out) << run.what();
    EXPECT_TRUE(has_line(run.lines, "first boot, resetting")) << run.what();
    EXPECT_FALSE(has_line(run.lines, "second boot after reset")) << run.what();
    EXPECT_EQ(guest_result(run.lines), "") << run.what();
    EXPECT_EQ(run.process.exit_status, 3) << run.what();
}

// The demo guest (what ./setup.sh boots through tools/demo.sh): its plain-words report passes in both generations.
// Generation 2 also brings up VMBus and reports storage: here the default SCSI controller (vmgen run gives
// generation 2 one, as Hyper-V's New-VM does) without any drive. Generation 1 has no VMBus in its DSDT: nothing
// about VMBus or storage.
TEST_P(GuestBoot, DemoReportsTheMachine)
{
    VmgenRun run = run_vmgen(generation(), "demo", {.processors = 2});
    expect_passed_and_powered_off(run);
    EXPECT_TRUE(has_line(run.lines, "processors: 2 of 2 online (APIC ids 0 1)")) << run.what();
    EXPECT_TRUE(find_line(run.lines, "ACPI: ").ends_with("(all checksums valid)")) << run.what();
    EXPECT_TRUE(find_line(run.lines, "hardware model: ")
                    .starts_with("hardware model: generation " + std::to_string(generation()) + " virtual machine"))
        << run.what();
    std::vector<std::string> storage;
    for (const auto& l : run.lines)
        if (l.starts_with("storage: "))
            storage.push_back(l);
    if (generation() == 2) {
        std::string offers = find_line(run.lines, "VMBus: ");
        EXPECT_TRUE(offers.starts_with("VMBus: protocol 5.3, 3 devices offered: ")) << run.what();
        for (const char* device : {"SCSI controller", "shutdown", "heartbeat"})
            EXPECT_NE(offers.find(device), std::string::npos) << device << "\n" << run.what();
        EXPECT_EQ(storage, std::vector<std::string>{"storage: SCSI controller 0: no drives (storage protocol 6.2, "
                                                    "Windows 10)"})
            << run.what();
    } else {
        EXPECT_EQ(find_line(run.lines, "VMBus"), "") << run.what();
        EXPECT_TRUE(storage.empty()) << run.what();
    }
}

// The demo's storage report with drives, as tools/demo.sh attaches them: a disk with an MBR and a DVD with an ISO
// 9660 medium (made with xorriso; an empty drive without it) on controller 0, a blank read-only disk on controller 1.
TEST_P(GuestBoot, DemoReportsDisksAndDvd)
{
    if (generation() != 2)
        GTEST_SKIP() << "the demo reports storage in generation 2 only";
    TempDir dir;
    std::string mbr_disk = dir.path() + "/mbr.img", blank_disk = dir.path() + "/blank.img";
    std::string bytes(8 << 20, '\0');
    bytes[450] = '\x83'; // a Linux partition
    bytes[510] = '\x55';
    bytes[511] = '\xaa';
    ASSERT_TRUE(write_file(mbr_disk, bytes));
    ASSERT_TRUE(write_file(blank_disk, std::string(1 << 20, '\0')));
    std::string dvd = "none";
    std::string xorriso = find_in_path("xorriso");
    if (!xorriso.empty()) {
        std::filesystem::create_directory(dir.path() + "/iso");
        ASSERT_TRUE(write_file(dir.path() + "/iso/HELLO.TXT", "Hello, demo.\nsecond line\n"));
        dvd = dir.path() + "/dvd.iso";
        ProcessResult r =
            run_process({xorriso, "-as", "mkisofs", "-quiet", "-V", "DEMO-TEST", "-o", dvd, dir.path() + "/iso"}, 60s);
        ASSERT_EQ(r.exit_status, 0) << "xorriso: " << r.err;
    }
    VmgenRun run = run_vmgen(2, "demo",
                             {.processors = 2,
                              .extra = {"--scsi-disk", mbr_disk + ",location=0", "--dvd", dvd + ",location=1",
                                        "--scsi-disk", blank_disk + ",controller=1,location=2,read-only"}});
    expect_passed_and_powered_off(run);
    EXPECT_TRUE(find_line(run.lines, "VMBus: ").starts_with("VMBus: protocol 5.3, 4 devices offered: ")) << run.what();
    EXPECT_TRUE(has_line(run.lines, "storage: SCSI controller 0: 2 drives (storage protocol 6.2, Windows 10)"))
        << run.what();
    EXPECT_TRUE(has_line(run.lines, "storage: SCSI 0:0 disk Msft Virtual Disk, 8 MiB (16384 x 512-byte blocks), "
                                    "partitioned (MBR)"))
        << run.what();
    if (xorriso.empty()) {
        EXPECT_TRUE(has_line(run.lines, "storage: SCSI 0:1 DVD Msft Virtual DVD-ROM, no medium")) << run.what();
    } else {
        std::string medium = find_line(run.lines, "storage: SCSI 0:1 DVD ");
        EXPECT_TRUE(medium.starts_with("storage: SCSI 0:1 DVD Msft Virtual DVD-ROM, medium: volume DEMO-TEST ("))
            << run.what();
        EXPECT_TRUE(medium.ends_with(" x 2048-byte blocks), files: HELLO.TXT")) << run.what();
        EXPECT_TRUE(has_line(run.lines, "storage: SCSI 0:1 file HELLO.TXT: \"Hello, demo.\"")) << run.what();
    }
    EXPECT_TRUE(has_line(run.lines, "storage: SCSI controller 1: 1 drive (storage protocol 6.2, Windows 10)"))
        << run.what();
    EXPECT_TRUE(has_line(run.lines, "storage: SCSI 1:2 disk Msft Virtual Disk, 1 MiB (2048 x 512-byte blocks), "
                                    "blank (block 0 is all zeros)"))
        << run.what();
}

// FNV-1a, 32-bit: what bzimage_check prints for the initrd.
uint32_t fnv1a(std::string_view bytes)
{
    uint32_t h = 2166136261u;
    for (char c : bytes) {
        h ^= static_cast<uint8_t>(c);
        h *= 16777619u;
    }
    return h;
}

// A recognisable initrd: "VMGEN-INITRD", then pseudo-random bytes; not a whole number of pages.
std::string make_initrd(size_t size)
{
    std::string bytes = "VMGEN-INITRD";
    uint32_t x = 0x12345678;
    while (bytes.size() < size) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.push_back(static_cast<char>(x >> 24));
    }
    return bytes;
}

std::string hex32(uint32_t v)
{
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
}

// A real bzImage file through vmgen's Linux loader (64-bit boot protocol) under KVM.
TEST_P(GuestBoot, BzImageBootProtocol)
{
    TempDir dir;
    std::string initrd_path = dir.path() + "/initrd.img";
    std::string initrd = make_initrd(100003);
    ASSERT_TRUE(write_file(initrd_path, initrd));
    static constexpr const char* cmdline = "console=ttyS0 vmgen.test=bzimage_check  two spaces \"quoted words\" end";

    VmgenRun run = run_vmgen(generation(), "bzimage_check",
                             {.kernel = guest_bzimage_path("bzimage_check"), .initrd = initrd_path, .cmdline = cmdline});
    expect_passed_and_powered_off(run);
    EXPECT_TRUE(has_line(run.lines, "entry mode=64-bit")) << run.what();
    EXPECT_TRUE(has_line(run.lines, std::string("cmdline ") + cmdline)) << run.what();
    EXPECT_TRUE(find_line(run.lines, "initrd addr=").ends_with(" size=" + std::to_string(initrd.size())))
        << run.what();
    EXPECT_TRUE(has_line(run.lines, "initrd magic=ok fnv1a=" + hex32(fnv1a(initrd)))) << run.what();
    EXPECT_TRUE(find_line(run.lines, "setup_header ").starts_with("setup_header boot_flag=0xaa55 header=HdrS "))
        << run.what();
    EXPECT_TRUE(find_line(run.lines, "rsdp addr=").ends_with("checksum=ok extended_checksum=ok")) << run.what();
    // 256 MiB less the 0x9fc00 .. 1 MiB hole.
    EXPECT_EQ(find_line(run.lines, "e820 ram_kib="), "e820 ram_kib=" + std::to_string(256 * 1024 - 385))
        << run.what();
    EXPECT_EQ(find_line(run.lines, "check failed"), "") << run.what();
}

INSTANTIATE_TEST_SUITE_P(Generations, GuestBoot, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& param) { return "Gen" + std::to_string(param.param); });

} // namespace
} // namespace vmgen::guest_test
