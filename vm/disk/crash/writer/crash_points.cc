#include "vm/disk/crash/writer/crash_points.h"

#include "vm/disk/crash/crash_protocol.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

namespace vmgen::vm::disk::crash {
namespace {

constexpr uint64_t page = 4096;

struct CrashPoint {
    uint64_t at = 0; // 0: disarmed
    uint64_t calls = 0;
    uint64_t seed = 0;
    int ignored_fd = -1;
};
CrashPoint g_point;

[[noreturn]] void die()
{
    ::kill(::getpid(), SIGKILL);
    for (;;)
        ::pause();
}

// True when this call is the crash point.
bool reached(int fd)
{
    if (g_point.at == 0 || fd == g_point.ignored_fd)
        return false;
    return ++g_point.calls == g_point.at;
}

} // namespace

void arm_crash_point(uint64_t call, uint64_t seed, int ignored_fd)
{
    g_point = CrashPoint { call, 0, seed, ignored_fd };
}

} // namespace vmgen::vm::disk::crash

using vmgen::vm::disk::crash::die;
using vmgen::vm::disk::crash::g_point;
using vmgen::vm::disk::crash::page;
using vmgen::vm::disk::crash::reached;
using vmgen::vm::disk::crash::Rng;

// The wrapped calls (-Wl,--wrap=NAME sends the program's calls to __wrap_NAME; __real_NAME is the C library's).
extern "C" {
ssize_t __real_pwrite(int fd, const void* buf, size_t count, off_t offset);
ssize_t __real_write(int fd, const void* buf, size_t count);
int __real_ftruncate(int fd, off_t length);
int __real_fallocate(int fd, int mode, off_t offset, off_t length);
int __real_fdatasync(int fd);
int __real_fsync(int fd);

ssize_t __wrap_pwrite(int fd, const void* buf, size_t count, off_t offset)
{
    if (reached(fd)) {
        // Half the time, a torn write: a prefix ending on a page boundary of the file.
        Rng rng(g_point.seed);
        const auto start = static_cast<uint64_t>(offset);
        const uint64_t first_boundary = (start / page + 1) * page;
        if (rng.percent(50) && first_boundary < start + count) {
            const uint64_t boundaries = (start + count - first_boundary + page - 1) / page;
            const uint64_t cut = first_boundary + rng.below(boundaries) * page;
            (void)__real_pwrite(fd, buf, static_cast<size_t>(cut - start), offset);
        }
        die();
    }
    return __real_pwrite(fd, buf, count, offset);
}

ssize_t __wrap_write(int fd, const void* buf, size_t count)
{
    if (reached(fd))
        die();
    return __real_write(fd, buf, count);
}

int __wrap_ftruncate(int fd, off_t length)
{
    if (reached(fd))
        die();
    return __real_ftruncate(fd, length);
}

int __wrap_fallocate(int fd, int mode, off_t offset, off_t length)
{
    if (reached(fd))
        die();
    return __real_fallocate(fd, mode, offset, length);
}

int __wrap_fdatasync(int fd)
{
    if (reached(fd))
        die();
    return __real_fdatasync(fd);
}

int __wrap_fsync(int fd)
{
    if (reached(fd))
        die();
    return __real_fsync(fd);
}
}
