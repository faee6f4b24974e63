// Power failures for the VHDX tests (vhdx_crash_test.cc): vm_disk_vhdx_test is linked with -Wl,--wrap= for the
// calls that change a file (pwrite, ftruncate, fallocate, fdatasync, fsync), so every such call the disk library
// makes passes through power_loss.cc. Disarmed they only count. Armed, they also remember, per file and per
// 4 KiB page, every content a page had since the file's last fdatasync/fsync; at the crash point (the N-th call,
// before it happens) the process loses power: each page the disk had not been told to keep takes the content
// of one of its versions since the last flush (the oldest, the newest, or any, as the mode says: writes reach
// the disk in any order, a page at a time), the file its size at the last flush or its latest one, and the
// process is killed (SIGKILL). Run the code under test in a forked child.
// Test code only: it lives in a folder of its own so fuzz/build.sh (vm/disk/*/*.cc) does not link it.
#pragma once

#include <cstdint>

namespace vmgen::vm::disk::vhdx_testing {

enum class PowerLossMode {
    KeepAll,  // a process crash: everything written stays
    LoseAll,  // every page and the size as of the last flush
    Random,   // each page and the size a version chosen at random (from the seed)
};

// Counts from zero again; with `crash_at` > 0 the `crash_at`-th call loses power as `mode` says.
void arm_power_loss(uint64_t crash_at, PowerLossMode mode, uint64_t seed);
// Stops journaling and counting.
void disarm_power_loss();
// File-changing calls since arm_power_loss, and of those the fdatasync/fsync calls.
uint64_t power_loss_calls();
uint64_t power_loss_syncs();

} // namespace vmgen::vm::disk::vhdx_testing
