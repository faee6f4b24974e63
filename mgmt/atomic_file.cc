#include "mgmt/atomic_file.h"

#include "support/errno_error.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace vmgen::mgmt {
namespace {

Result<void> write_all(int fd, std::string_view data, const std::string& what)
{
    while (!data.empty()) {
        auto n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno_failure(fmt::format("writing {}", what));
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return {};
}

} // namespace

Result<void> sync_directory(const std::filesystem::path& dir)
{
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid())
        return errno_failure(fmt::format("opening {}", dir.string()));
    if (::fsync(fd.get()) != 0)
        return errno_failure(fmt::format("syncing {}", dir.string()));
    return {};
}

Result<void> write_file_atomically(const std::filesystem::path& path, std::string_view contents)
{
    auto dir = path.parent_path();
    if (dir.empty())
        dir = ".";
    std::string temp = (dir / fmt::format(".{}.tmp-XXXXXX", path.filename().string())).string();
    UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));
    if (!fd.valid())
        return errno_failure(fmt::format("creating a temporary file in {}", dir.string()));
    auto result = [&]() -> Result<void> {
        if (::fchmod(fd.get(), 0644) != 0)
            return errno_failure(fmt::format("chmod {}", temp));
        TRY(write_all(fd.get(), contents, temp));
        if (::fsync(fd.get()) != 0)
            return errno_failure(fmt::format("syncing {}", temp));
        fd.reset();
        if (::rename(temp.c_str(), path.c_str()) != 0)
            return errno_failure(fmt::format("renaming {} to {}", temp, path.string()));
        return {};
    }();
    if (!result) {
        ::unlink(temp.c_str());
        return result;
    }
    return sync_directory(dir);
}

Result<std::string> read_small_file(const std::filesystem::path& path, size_t max_bytes)
{
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
        return errno_failure(path.string());
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        return errno_failure(path.string());
    if (S_ISDIR(st.st_mode))
        return fail("{}: is a directory, not a file", path.string());
    std::string out;
    char buffer[8192];
    for (;;) {
        auto n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno_failure(fmt::format("reading {}", path.string()));
        }
        if (n == 0)
            break;
        out.append(buffer, static_cast<size_t>(n));
        if (out.size() > max_bytes)
            return fail("{}: the file is too large (more than {} bytes)", path.string(), max_bytes);
    }
    return out;
}

Result<FileLock> FileLock::acquire(const std::filesystem::path& path, Mode mode, bool* busy)
{
    if (busy != nullptr)
        *busy = false;
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd.valid())
        return errno_failure(fmt::format("opening lock {}", path.string()));
    int op = LOCK_EX | (mode == Mode::TryOnce ? LOCK_NB : 0);
    while (::flock(fd.get(), op) != 0) {
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK && busy != nullptr)
            *busy = true;
        return errno_failure(fmt::format("locking {}", path.string()));
    }
    return FileLock(std::move(fd));
}

} // namespace vmgen::mgmt
