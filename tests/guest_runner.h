// Runs a VMM (vmgen or QEMU) as a child process with a hard timeout and reads back what a test guest
// printed on its serial port. Shared by guest_boot_test and guest_qemu_test.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace vmgen::guest_test {

struct ProcessResult {
    bool started = false;   // fork/exec worked
    bool timed_out = false; // killed after the timeout
    int exit_status = -1;   // exit status, -1 when killed by a signal
    int signal = 0;         // terminating signal, 0 when it exited
    std::string out;        // stdout
    std::string err;        // stderr
    double seconds = 0;     // wall time
};

// fork/exec argv[0] (looked up in PATH) in its own process group; on timeout the whole group is killed.
ProcessResult run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// Path of a built test guest, e.g. guest_path("hello") -> <build>/tests/guests/hello.elf.
std::string guest_path(std::string_view name);
// Path of a built bzImage test guest, e.g. <build>/tests/guests/bzimage_check.bzImage.
std::string guest_bzimage_path(std::string_view name);

// A fresh empty directory under $TMPDIR (or /tmp), removed by the destructor.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::string& path() const { return m_path; }

private:
    std::string m_path;
};

std::string read_text_file(const std::string& path);
bool write_file(const std::string& path, std::string_view bytes);

// The guest's protocol lines ("vmgen-guest: ..."), prefix and trailing CR stripped, in order.
std::vector<std::string> guest_lines(std::string_view serial_output);
bool has_line(const std::vector<std::string>& lines, std::string_view line);
// The first line starting with prefix, or "" when there is none.
std::string find_line(const std::vector<std::string>& lines, std::string_view prefix);
// The guest's verdict: "PASS", "FAIL <reason>", or "" when it printed no result line.
std::string guest_result(const std::vector<std::string>& lines);

// Everything worth seeing when a test fails: exit, timing, stderr and the serial output.
std::string describe(const ProcessResult& r, std::string_view serial_output);

bool kvm_accessible();
// Full path of an executable found in PATH, or "".
std::string find_in_path(std::string_view name);

} // namespace vmgen::guest_test
