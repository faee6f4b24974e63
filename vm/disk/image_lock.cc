#include "vm/disk/image_lock.h"

#include "support/errno_error.h"
#include "vm/disk/disk_ops.h"

#include <fcntl.h>

#include <cerrno>

#include <algorithm>

namespace vmgen::vm::disk {

namespace {

constexpr size_t max_chain = 64; // the formats refuse deeper chains long before this

Result<UniqueFd> lock_file(const std::string& path, LockMode mode)
{
    bool exclusive = mode == LockMode::Exclusive;
    // A write lock needs a descriptor open for writing; a read-only file can still be locked shared.
    UniqueFd fd(::open(path.c_str(), (exclusive ? O_RDWR : O_RDONLY) | O_CLOEXEC));
    if (!fd.valid()) {
        if (errno == ENOENT)
            return fail("{}: no such file", path);
        return errno_failure(fmt::format("opening {} to lock it", path));
    }
    struct flock lock {};
    lock.l_type = static_cast<short>(exclusive ? F_WRLCK : F_RDLCK);
    lock.l_whence = SEEK_SET;
    lock.l_start = 0;
    lock.l_len = 0; // the whole file, however it grows
    if (::fcntl(fd.get(), F_OFD_SETLK, &lock) != 0) {
        if (errno == EAGAIN || errno == EACCES) {
            return fail("{} is in use by another virtual machine or program (it holds a {} lock)", path,
                        exclusive ? "conflicting" : "write");
        }
        return errno_failure(fmt::format("locking {}", path));
    }
    return fd;
}

} // namespace

Result<ImageLock> lock_image(const std::string& path, LockMode mode, bool parents)
{
    ImageLock locks;
    locks.m_fds.push_back(TRY(lock_file(path, mode)));
    locks.m_paths.push_back(path);
    if (!parents)
        return locks;
    // Parents: read to find them (after the child is locked, so nobody rewrites its locator meanwhile).
    std::string current = path;
    for (;;) {
        auto disk = TRY_CTX(open_disk(current, /*read_only=*/true), "finding the parent of {}", current);
        std::string parent = disk->info().parent_path;
        disk.reset();
        if (parent.empty())
            break;
        if (locks.m_paths.size() >= max_chain ||
            std::find(locks.m_paths.begin(), locks.m_paths.end(), parent) != locks.m_paths.end())
            return fail("{}: the parent chain loops or is deeper than {}", path, max_chain);
        locks.m_fds.push_back(TRY(lock_file(parent, LockMode::Shared)));
        locks.m_paths.push_back(parent);
        current = parent;
    }
    return locks;
}

} // namespace vmgen::vm::disk
