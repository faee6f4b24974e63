// Crash points for disk_crash_writer: the writer is linked with `-Wl,--wrap=` for the calls that change a file
// (pwrite, write, ftruncate, fallocate, fdatasync, fsync), so every such call the disk library makes passes
// through here. With a crash point N the process kills itself with SIGKILL at the N-th call, before the call
// happens or, for a write longer than a page, after only part of it reached the file (the kernel copies a
// write page by page, so a process killed inside a write can leave any whole-page prefix of it). Killing at a
// counted call instead of after a delay makes a crash exactly repeatable from the writer's seed.
#pragma once

#include <cstdint>

namespace vmgen::vm::disk::crash {

// Arms the crash point: kill at the `call`-th file-changing call (1-based; 0 disarms). `seed` decides whether
// and where a long write is torn. Calls on `ignored_fd` (the report pipe) are not counted.
void arm_crash_point(uint64_t call, uint64_t seed, int ignored_fd);

} // namespace vmgen::vm::disk::crash
