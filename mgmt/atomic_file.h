// Crash-safe file updates and advisory locks for the VM store.
//
//   TRY(write_file_atomically(dir / "config.json", text)); // temp file + fsync + rename + fsync(dir)
//   auto lock = TRY(FileLock::acquire(dir / ".lock"));    // flock(LOCK_EX) until `lock` goes away
#pragma once

#include "support/result.h"
#include "support/unique_fd.h"

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace vmgen::mgmt {

// Replaces `path` with `contents`: writes a temporary file in the same folder, fsyncs it, renames it over
// `path` and fsyncs the folder. Readers see the old or the new file, never a mix; no temporary file is
// left behind on failure.
Result<void> write_file_atomically(const std::filesystem::path& path, std::string_view contents);

// Reads a whole file of at most max_bytes. A missing file is an error whose message says so
// ("{path}: No such file or directory").
Result<std::string> read_small_file(const std::filesystem::path& path, size_t max_bytes = 1 << 20);

// fsync of a folder (after a rename or an unlink in it).
Result<void> sync_directory(const std::filesystem::path& dir);

// An exclusive flock on a file, created if needed; released when destroyed.
class FileLock {
public:
    enum class Mode { Wait, TryOnce };
    // Wait: blocks until the lock is free. TryOnce: fails with `busy` set when another holder has it.
    static Result<FileLock> acquire(const std::filesystem::path& path, Mode mode = Mode::Wait,
                                    bool* busy = nullptr);

    [[nodiscard]] int fd() const { return m_fd.get(); }

private:
    explicit FileLock(UniqueFd fd) : m_fd(std::move(fd)) {}
    UniqueFd m_fd;
};

} // namespace vmgen::mgmt
