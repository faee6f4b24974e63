// Checks the generated tables with the ACPICA tools: every table is disassembled with `iasl -d` (which
// reports bad checksums and malformed AML), the disassembly is compiled back with iasl, and the result must
// equal our bytes apart from the fields the compiler stamps (checksum, creator id and revision). iasl is a
// required build tool (acpica-tools, installed by ./setup.sh); without it this test fails.
#include "vm/acpi/tables.h"

#include "protocols/acpi/tables.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <sstream>

namespace vmgen::vm::acpi {
namespace {

namespace fs = std::filesystem;
namespace pa = protocols::acpi;

constexpr uint64_t base = 0xe0000;
constexpr uint64_t max_size = 128 * 1024;
// iasl error 6033, "_HID string must be exactly 7 or 8 characters": the VMBus _HID "VMBus" is what Hyper-V
// uses and what Linux's hv_vmbus matches, so the compile step ignores exactly this diagnostic (the
// Generation2VmbusHidIsTheOnlyCompilerError test proves that nothing else is hidden by it).
constexpr std::string_view vmbus_hid_error = "6033";

std::optional<fs::path> find_iasl()
{
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        const fs::path candidate = fs::path(dir.empty() ? "." : dir) / "iasl";
        if (::access(candidate.c_str(), X_OK) == 0)
            return candidate;
    }
    return std::nullopt;
}

struct CommandResult {
    int exit_status = -1;
    std::string output; // stdout and stderr
};

CommandResult run_shell(const std::string& command)
{
    CommandResult result;
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (pipe == nullptr) {
        result.output = "popen failed: " + std::string(std::strerror(errno));
        return result;
    }
    std::array<char, 4096> chunk {};
    size_t n = 0;
    while ((n = std::fread(chunk.data(), 1, chunk.size(), pipe)) > 0)
        result.output.append(chunk.data(), n);
    const int status = ::pclose(pipe);
    result.exit_status = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

std::string read_text(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    std::string text;
    std::array<char, 4096> chunk {};
    while (in.read(chunk.data(), chunk.size()) || in.gcount() > 0)
        text.append(chunk.data(), static_cast<size_t>(in.gcount()));
    return text;
}

std::vector<uint8_t> read_binary(const fs::path& path)
{
    const std::string text = read_text(path);
    return { text.begin(), text.end() };
}

void write_binary(const fs::path& path, std::span<const uint8_t> bytes)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Lines of iasl output that report a problem: errors, warnings (including ACPICA's "Firmware Warning" for
// a checksum mismatch) and the disassembler's checksum annotations.
std::vector<std::string> problems_in(const std::string& text)
{
    std::vector<std::string> problems;
    std::stringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        for (const char* marker : { "Error", "Warning", "Incorrect checksum", "Invalid", "not contain a valid" }) {
            if (line.find(marker) != std::string::npos) {
                problems.push_back(line);
                break;
            }
        }
    }
    return problems;
}

std::string joined(const std::vector<std::string>& lines)
{
    std::string out;
    for (const std::string& line : lines)
        out += line + "\n";
    return out;
}

class TempDir {
public:
    TempDir()
    {
        std::string pattern = (fs::temp_directory_path() / "vmgen-acpi-iasl-XXXXXX").string();
        if (::mkdtemp(pattern.data()) != nullptr)
            m_path = pattern;
    }
    ~TempDir()
    {
        std::error_code ignored;
        if (!m_path.empty())
            fs::remove_all(m_path, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const fs::path& path() const { return m_path; }

private:
    fs::path m_path;
};

// Runs iasl in a scratch directory.
class Iasl {
public:
    explicit Iasl(fs::path iasl)
        : m_iasl(std::move(iasl))
    {
    }

    [[nodiscard]] bool ready() const { return !m_dir.path().empty(); }
    [[nodiscard]] const fs::path& dir() const { return m_dir.path(); }

    CommandResult run(const std::string& arguments) const
    {
        return run_shell(fmt::format("cd '{}' && '{}' {}", m_dir.path().string(), m_iasl.string(), arguments));
    }

    struct Disassembly {
        CommandResult result;
        std::string dsl;
        std::vector<std::string> problems;
    };

    // Writes `bytes` to NAME.dat and disassembles it to NAME.dsl.
    Disassembly disassemble(const std::string& name, std::span<const uint8_t> bytes) const
    {
        write_binary(dir() / (name + ".dat"), bytes);
        Disassembly d;
        d.result = run(fmt::format("-d {}.dat", name));
        d.dsl = read_text(dir() / (name + ".dsl"));
        d.problems = problems_in(d.result.output + d.dsl);
        return d;
    }

    // Compiles NAME.dsl to re_NAME.aml; returns the AML, or nothing with the failure recorded.
    std::optional<std::vector<uint8_t>> compile(const std::string& name, const std::string& options) const
    {
        const CommandResult result = run(fmt::format("{} -p re_{} {}.dsl", options, name, name));
        const std::vector<std::string> problems = problems_in(result.output);
        const bool clean = result.exit_status == 0 && result.output.find("Compilation successful") != std::string::npos;
        // The summary line reads "0 Errors, 0 Warnings"; anything else is a finding.
        const bool reported = std::any_of(problems.begin(), problems.end(),
            [](const std::string& line) { return line.find("0 Errors, 0 Warnings") == std::string::npos; });
        if (!clean || reported) {
            ADD_FAILURE() << "iasl could not compile the disassembly of " << name << " (exit " << result.exit_status
                          << "):\n"
                          << result.output;
            return std::nullopt;
        }
        return read_binary(dir() / ("re_" + name + ".aml"));
    }

private:
    fs::path m_iasl;
    TempDir m_dir;
};

std::unique_ptr<Iasl> make_iasl()
{
    const auto iasl = find_iasl();
    if (!iasl) {
        ADD_FAILURE() << "iasl (acpica-tools) is not installed or not in PATH: it is required to check the ACPI "
                         "tables; run ./setup.sh";
        return nullptr;
    }
    auto tool = std::make_unique<Iasl>(*iasl);
    if (!tool->ready()) {
        ADD_FAILURE() << "cannot create a temporary directory for iasl";
        return nullptr;
    }
    return tool;
}

AcpiConfig make_config(int generation, size_t cpus, bool serial)
{
    AcpiConfig config;
    config.generation = generation;
    for (size_t i = 0; i < cpus; ++i)
        config.lapic_ids.push_back(static_cast<uint8_t>(i));
    config.pm_base = 0x400;
    if (serial)
        config.serial_ports = { { .io_base = 0x3f8, .irq = 4 }, { .io_base = 0x2f8, .irq = 3 } };
    if (generation == 1) {
        config.pic = true;
        config.pit = true;
        config.post_port = true;
    } else {
        config.vmbus = AcpiConfig::Vmbus { .irq = 5,
            .low_mmio_base = 0xf8000000,
            .low_mmio_size = 0x4000000,
            .high_mmio_base = 0xfe0000000,
            .high_mmio_size = 0x20000000 };
    }
    return config;
}

// The bytes of one table from the blob (FACS: its fixed 64 bytes).
std::vector<uint8_t> table_bytes(const AcpiTables& tables, const std::string& signature)
{
    const uint64_t offset = tables.table_gpa.at(signature) - base;
    uint32_t length = sizeof(pa::Facs);
    if (signature != "FACS")
        std::memcpy(&length, tables.blob.data() + offset + offsetof(pa::TableHeader, length), sizeof(length));
    const auto begin = tables.blob.begin() + static_cast<std::ptrdiff_t>(offset);
    return { begin, begin + length };
}

// Compares a recompiled table with ours, skipping the checksum and the creator id and revision, which iasl
// replaces with its own.
void expect_same_table(
    const std::string& signature, const std::vector<uint8_t>& ours, const std::vector<uint8_t>& recompiled)
{
    ASSERT_EQ(ours.size(), recompiled.size()) << signature << " changed size through iasl";
    for (size_t i = 0; i < ours.size(); ++i) {
        const bool stamped = signature != "FACS"
            && (i == offsetof(pa::TableHeader, checksum) || (i >= offsetof(pa::TableHeader, creator_id) && i < 36));
        if (!stamped) {
            ASSERT_EQ(ours[i], recompiled[i]) << signature << " differs at offset " << i;
        }
    }
}

struct Case {
    int generation;
    size_t cpus;
    bool serial;
};

class IaslTables : public testing::TestWithParam<Case> { };

TEST_P(IaslTables, DisassembleAndRecompileCleanly)
{
    const Case c = GetParam();
    auto iasl = make_iasl();
    ASSERT_TRUE(iasl);
    auto tables = build_acpi_tables(make_config(c.generation, c.cpus, c.serial), base, max_size);
    ASSERT_TRUE(tables) << tables.error().message();

    std::string dsdt;
    for (const char* name : { "RSDT", "XSDT", "FACP", "FACS", "APIC", "DSDT" }) {
        const std::string signature = name;
        SCOPED_TRACE(signature);
        const std::vector<uint8_t> ours = table_bytes(*tables, signature);
        const Iasl::Disassembly d = iasl->disassemble(signature, ours);
        EXPECT_EQ(d.result.exit_status, 0) << d.result.output;
        EXPECT_TRUE(d.problems.empty()) << joined(d.problems) << d.result.output;
        ASSERT_FALSE(d.dsl.empty()) << "no disassembly:\n" << d.result.output;

        // -oa: no optimisations, so that iasl encodes names and integers as we do.
        std::string options = signature == "DSDT" ? "-oa" : "";
        if (signature == "DSDT" && c.generation == 2)
            options += fmt::format(" -vw {}", vmbus_hid_error);
        const auto recompiled = iasl->compile(signature, options);
        ASSERT_TRUE(recompiled);
        expect_same_table(signature, ours, *recompiled);
        if (signature == "DSDT")
            dsdt = d.dsl;
    }

    EXPECT_NE(dsdt.find("Name (\\_S5, Package (0x04)"), std::string::npos) << dsdt;
    EXPECT_NE(dsdt.find("Device (RTC0)"), std::string::npos);
    EXPECT_NE(dsdt.find("EisaId (\"PNP0B00\")"), std::string::npos);
    EXPECT_NE(dsdt.find("EisaId (\"PNP0C02\")"), std::string::npos);
    EXPECT_EQ(dsdt.find("Device (C00" + std::to_string(c.cpus) + ")"), std::string::npos);
    EXPECT_NE(dsdt.find("Device (C00" + std::to_string(c.cpus - 1) + ")"), std::string::npos);
    EXPECT_EQ(dsdt.find("EisaId (\"PNP0501\")") != std::string::npos, c.serial);
    EXPECT_EQ(dsdt.find("Device (COM2)") != std::string::npos, c.serial);
    if (c.generation == 2) {
        EXPECT_NE(dsdt.find("Device (VMOD)"), std::string::npos);
        EXPECT_NE(dsdt.find("Name (_HID, \"ACPI0004\""), std::string::npos);
        EXPECT_NE(dsdt.find("Device (VMBS)"), std::string::npos);
        EXPECT_NE(dsdt.find("Name (_HID, \"VMBus\")"), std::string::npos);
        EXPECT_NE(dsdt.find("Name (_STA, 0x0F)"), std::string::npos);
        EXPECT_NE(dsdt.find("QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite"),
            std::string::npos);
        EXPECT_NE(dsdt.find("0x00000000FBFFFFFF, // Range Maximum"), std::string::npos);
        EXPECT_NE(dsdt.find("0x0000000FFFFFFFFF, // Range Maximum"), std::string::npos);
        for (const char* legacy : { "PNP0000", "PNP0100", "PNP0303", "PNP0700", "PNP0400", "PNP0A03", "PNP0A08" })
            EXPECT_EQ(dsdt.find(legacy), std::string::npos) << legacy;
    } else {
        EXPECT_NE(dsdt.find("EisaId (\"PNP0000\")"), std::string::npos);
        EXPECT_NE(dsdt.find("EisaId (\"PNP0100\")"), std::string::npos);
        EXPECT_EQ(dsdt.find("VMBus"), std::string::npos);
        EXPECT_EQ(dsdt.find("ACPI0004"), std::string::npos);
    }
}

INSTANTIATE_TEST_SUITE_P(Configurations, IaslTables,
    testing::Values(Case { 1, 1, false }, Case { 1, 4, true }, Case { 2, 1, false }, Case { 2, 4, true }),
    [](const testing::TestParamInfo<Case>& param_info) {
        const Case& c = param_info.param;
        return fmt::format("Gen{}Cpus{}{}", c.generation, c.cpus, c.serial ? "WithCom" : "NoCom");
    });

// The checker must be able to fail: a corrupted byte makes iasl report a checksum mismatch.
TEST(IaslChecker, DetectsCorruptedTables)
{
    auto iasl = make_iasl();
    ASSERT_TRUE(iasl);
    auto tables = build_acpi_tables(make_config(2, 2, true), base, max_size);
    ASSERT_TRUE(tables);

    std::vector<uint8_t> dsdt = table_bytes(*tables, "DSDT");
    const Iasl::Disassembly good = iasl->disassemble("DSDT", dsdt);
    EXPECT_TRUE(good.problems.empty()) << joined(good.problems);

    dsdt[dsdt.size() - 1] ^= 0x01; // the last element of \_S5: still valid AML, wrong checksum
    const Iasl::Disassembly bad = iasl->disassemble("DSDT", dsdt);
    ASSERT_FALSE(bad.problems.empty()) << bad.result.output;
    EXPECT_NE(joined(bad.problems).find("Incorrect checksum"), std::string::npos) << joined(bad.problems);

    std::vector<uint8_t> fadt = table_bytes(*tables, "FACP");
    fadt[offsetof(pa::Fadt, sci_int)] = 10;
    const Iasl::Disassembly bad_fadt = iasl->disassemble("FACP", fadt);
    EXPECT_NE(joined(bad_fadt.problems).find("Incorrect checksum"), std::string::npos)
        << bad_fadt.result.output << bad_fadt.dsl;
}

// Without -vw 6033 the only compiler error in a generation 2 DSDT is the non-standard "VMBus" _HID.
TEST(IaslChecker, Generation2VmbusHidIsTheOnlyCompilerError)
{
    auto iasl = make_iasl();
    ASSERT_TRUE(iasl);
    auto tables = build_acpi_tables(make_config(2, 1, true), base, max_size);
    ASSERT_TRUE(tables);
    const Iasl::Disassembly d = iasl->disassemble("DSDT", table_bytes(*tables, "DSDT"));
    ASSERT_TRUE(d.problems.empty()) << joined(d.problems);
    const CommandResult result = iasl->run("-oa -p strict DSDT.dsl");
    EXPECT_NE(result.exit_status, 0);
    EXPECT_NE(result.output.find("1 Errors"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find(fmt::format("Error    {}", vmbus_hid_error)), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("(VMBus)"), std::string::npos) << result.output;
}

} // namespace
} // namespace vmgen::vm::acpi
