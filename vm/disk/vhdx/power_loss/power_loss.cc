#include "vm/disk/vhdx/power_loss/power_loss.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <vector>

extern "C" {
ssize_t __real_pwrite(int fd, const void* buf, size_t count, off_t offset);
int __real_ftruncate(int fd, off_t length);
int __real_fallocate(int fd, int mode, off_t offset, off_t length);
int __real_fdatasync(int fd);
int __real_fsync(int fd);
}

namespace vmgen::vm::disk::vhdx_testing {
namespace {

constexpr uint64_t page = 4096;

// What a file went through since its last flush.
struct Journal {
    uint64_t synced_size = 0;
    std::map<uint64_t, std::vector<std::vector<uint8_t>>> pages; // page index → contents, oldest first
};

struct State {
    bool armed = false;
    uint64_t crash_at = 0;
    PowerLossMode mode = PowerLossMode::KeepAll;
    uint64_t seed = 0;
    uint64_t calls = 0;
    uint64_t syncs = 0;
    std::map<int, Journal> files;
};
State g_state;

uint64_t next_random()
{
    // splitmix64
    uint64_t z = (g_state.seed += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t file_size(int fd)
{
    struct stat st {};
    return ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

std::vector<uint8_t> read_page(int fd, uint64_t index)
{
    std::vector<uint8_t> out(page);
    const ssize_t n = ::pread(fd, out.data(), page, static_cast<off_t>(index * page));
    if (n < static_cast<ssize_t>(page))
        std::fill(out.begin() + std::max<ssize_t>(n, 0), out.end(), uint8_t{0});
    return out;
}

Journal& journal(int fd)
{
    auto it = g_state.files.find(fd);
    if (it == g_state.files.end())
        it = g_state.files.emplace(fd, Journal{file_size(fd), {}}).first;
    return it->second;
}

// Before a change of [offset, offset + length): the pages' contents as they are, when not journaled yet.
void before_change(int fd, uint64_t offset, uint64_t length)
{
    Journal& j = journal(fd);
    for (uint64_t p = offset / page; p * page < offset + length; ++p)
        if (j.pages.find(p) == j.pages.end())
            j.pages[p].push_back(read_page(fd, p));
}

// After it: the pages' new contents.
void after_change(int fd, uint64_t offset, uint64_t length)
{
    Journal& j = journal(fd);
    for (uint64_t p = offset / page; p * page < offset + length; ++p)
        j.pages[p].push_back(read_page(fd, p));
}

[[noreturn]] void lose_power()
{
    for (auto& [fd, j] : g_state.files) {
        const uint64_t size_now = file_size(fd);
        uint64_t size = size_now;
        if (g_state.mode == PowerLossMode::LoseAll || (g_state.mode == PowerLossMode::Random && next_random() % 2 == 0))
            size = j.synced_size;
        if (g_state.mode != PowerLossMode::KeepAll) {
            for (auto& [index, versions] : j.pages) {
                const size_t pick = g_state.mode == PowerLossMode::LoseAll ? 0 : next_random() % versions.size();
                (void)__real_pwrite(fd, versions[pick].data(), page, static_cast<off_t>(index * page));
            }
        }
        (void)__real_ftruncate(fd, static_cast<off_t>(size));
    }
    ::kill(::getpid(), SIGKILL);
    for (;;)
        ::pause();
}

// Counts the call; true when it is to be journaled.
bool count(bool sync)
{
    if (!g_state.armed)
        return false;
    ++g_state.calls;
    if (sync)
        ++g_state.syncs;
    if (g_state.crash_at != 0 && g_state.calls == g_state.crash_at)
        lose_power();
    return g_state.crash_at != 0;
}

} // namespace

void arm_power_loss(uint64_t crash_at, PowerLossMode mode, uint64_t seed)
{
    g_state = State{};
    g_state.armed = true;
    g_state.crash_at = crash_at;
    g_state.mode = mode;
    g_state.seed = seed;
}

void disarm_power_loss() { g_state = State{}; }
uint64_t power_loss_calls() { return g_state.calls; }
uint64_t power_loss_syncs() { return g_state.syncs; }

} // namespace vmgen::vm::disk::vhdx_testing

using namespace vmgen::vm::disk::vhdx_testing;

// The wrapped calls (-Wl,--wrap=NAME sends the program's calls to __wrap_NAME; __real_NAME is the C library's).
extern "C" {

ssize_t __wrap_pwrite(int fd, const void* buf, size_t count_, off_t offset)
{
    if (!count(false))
        return __real_pwrite(fd, buf, count_, offset);
    before_change(fd, static_cast<uint64_t>(offset), count_);
    const ssize_t r = __real_pwrite(fd, buf, count_, offset);
    after_change(fd, static_cast<uint64_t>(offset), count_);
    return r;
}

int __wrap_ftruncate(int fd, off_t length)
{
    if (!count(false))
        return __real_ftruncate(fd, length);
    // Shrinking: the pages cut off keep their contents as a version (the size may come back).
    const uint64_t old_size = file_size(fd);
    const auto new_size = static_cast<uint64_t>(length);
    if (new_size < old_size)
        before_change(fd, new_size, old_size - new_size);
    const int r = __real_ftruncate(fd, length);
    if (new_size < old_size)
        after_change(fd, new_size, old_size - new_size);
    return r;
}

int __wrap_fallocate(int fd, int mode, off_t offset, off_t length)
{
    if (!count(false))
        return __real_fallocate(fd, mode, offset, length);
    before_change(fd, static_cast<uint64_t>(offset), static_cast<uint64_t>(length));
    const int r = __real_fallocate(fd, mode, offset, length);
    after_change(fd, static_cast<uint64_t>(offset), static_cast<uint64_t>(length));
    return r;
}

int __wrap_fdatasync(int fd)
{
    const bool journaled = count(true);
    const int r = __real_fdatasync(fd);
    if (journaled && r == 0)
        g_state.files[fd] = Journal{file_size(fd), {}};
    return r;
}

int __wrap_fsync(int fd)
{
    const bool journaled = count(true);
    const int r = __real_fsync(fd);
    if (journaled && r == 0)
        g_state.files[fd] = Journal{file_size(fd), {}};
    return r;
}
}
