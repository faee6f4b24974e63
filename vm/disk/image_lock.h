// Image locks: keep two users (two VMs, a VM and `merge-vhd`, vmgen and QEMU) from writing one image at once.
//
// A lock is an open file description lock (fcntl F_OFD_SETLK) over the whole image file: exclusive (F_WRLCK) for
// a user that writes the image, shared (F_RDLCK) for one that only reads it. Differencing images also lock their
// parent chain shared (parents are only read). OFD locks belong to the open file, not the process, so two
// attachments in one VMM conflict as two processes do; they go away with the descriptor, also when a process is
// killed. QEMU takes OFD locks on bytes of the same files (its "image locking"), so it sees ours and we see its.
//
// The disk library itself (open_disk, the formats) takes no locks: the users that hold an image for a while do,
// around their own opens (the VMM for every attached disk and ISO, the CLI verbs that change an image).
#pragma once

#include "support/result.h"
#include "support/unique_fd.h"

#include <string>
#include <vector>

namespace vmgen::vm::disk {

enum class LockMode { Shared, Exclusive };

class ImageLock {
public:
    ImageLock() = default;
    [[nodiscard]] bool held() const { return !m_fds.empty(); }
    // The files locked: the image, then its parents.
    [[nodiscard]] const std::vector<std::string>& paths() const { return m_paths; }

private:
    friend Result<ImageLock> lock_image(const std::string& path, LockMode mode, bool parents);
    std::vector<UniqueFd> m_fds;
    std::vector<std::string> m_paths;
};

// Locks `path` with `mode` and, if it is a differencing image and `parents` is set, its parents shared. Errors: the
// file cannot be opened, or another user holds a conflicting lock ("... is in use by another virtual machine or
// program").
Result<ImageLock> lock_image(const std::string& path, LockMode mode, bool parents = true);

} // namespace vmgen::vm::disk
