// Power failures during resize() and compact(): a forked child opens a copy of an image and runs the operation
// with a crash point armed (vhdx_power_loss.h) at its N-th file-changing call, for every N until the operation
// completes, each time as a process crash (everything written stays), a power failure that loses everything
// not flushed, and one that keeps a random version of each page. The image must then open (replaying the log)
// and hold the old disk or the new one, never a mix: its size and every byte read. For images with 512-byte
// sectors, qemu replays the same log on a copy and must see the same disk and a clean image (every other crash
// point, to keep the test quick).
#include "vm/disk/vhdx/vhdx.h"

#include "protocols/disk/vhdx.h"
#include "vm/disk/vhdx/power_loss/power_loss.h"
#include "vm/disk/vhdx/vhdx_test_fixture.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace vmgen::vm::disk {
namespace {

using namespace vmgen::protocols::disk;
using namespace vhdx_testing;

constexpr uint64_t mib = 1 << 20;

std::vector<uint8_t> pattern(uint64_t offset, uint64_t length, uint8_t seed)
{
    std::vector<uint8_t> out(length);
    for (uint64_t i = 0; i < length; ++i) {
        const uint64_t pos = offset + i;
        out[i] = static_cast<uint8_t>(seed * 13 + pos / 512 * 5 + pos % 239 + 1);
    }
    return out;
}

// What a disk shows: its size, its first 16 MiB and its last 1 MiB.
struct View {
    uint64_t size = 0;
    std::vector<uint8_t> head;
    std::vector<uint8_t> tail;
    bool operator==(const View&) const = default;
};

View view_of(BlockDevice& d)
{
    View v;
    v.size = d.size();
    v.head.resize(std::min<uint64_t>(v.size, 16 * mib));
    v.tail.resize(std::min<uint64_t>(v.size, mib));
    EXPECT_TRUE(d.read(0, v.head));
    EXPECT_TRUE(d.read(v.size - v.tail.size(), v.tail));
    return v;
}

uint64_t qemu_size(const std::string& p)
{
    std::unique_ptr<FILE, int (*)(FILE*)> f(::popen(("qemu-img info --output=json " + p).c_str(), "r"), ::pclose);
    std::string out;
    char buf[4096];
    for (size_t n; f && (n = std::fread(buf, 1, sizeof(buf), f.get())) > 0;)
        out.append(buf, n);
    const auto at = out.find("\"virtual-size\": ");
    return at == std::string::npos ? 0 : std::stoull(out.substr(at + 16));
}

struct Scenario {
    const char* name;
    uint32_t sector;
    std::function<void(const std::string& dir)> setup; // makes dir/disk.vhdx (and a parent)
    std::function<Result<void>(BlockDevice&)> operation;
};

class VhdxCrashTest : public VhdxTest {
protected:
    std::unique_ptr<BlockDevice> open_ok(const std::string& p, bool read_only)
    {
        auto d = open_vhdx(p, read_only);
        EXPECT_TRUE(d) << d.error().message();
        return d ? std::move(*d) : nullptr;
    }

    // Runs the scenario's operation on a copy of the image in a child that loses power at its `crash_at`-th
    // file-changing call. Returns true when the operation completed before that.
    bool run_child(const Scenario& s, const std::string& image, uint64_t crash_at, PowerLossMode mode)
    {
        std::fflush(nullptr);
        const pid_t pid = ::fork();
        if (pid == 0) {
            arm_power_loss(crash_at, mode, crash_at * 7919 + static_cast<uint64_t>(mode));
            int code = 0;
            if (auto d = open_vhdx(image, false)) {
                if (!s.operation(**d) || !(*d)->close())
                    code = 3;
            } else {
                code = 2;
            }
            ::_exit(code);
        }
        int status = 0;
        EXPECT_EQ(::waitpid(pid, &status, 0), pid);
        if (WIFSIGNALED(status)) {
            EXPECT_EQ(WTERMSIG(status), SIGKILL);
            return false;
        }
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
        return true;
    }

    void run(const Scenario& s)
    {
        SCOPED_TRACE(s.name);
        const std::string base = path("disk.vhdx");
        sh("rm -f " + base + " " + path("parent.vhdx"));
        s.setup(m_dir);
        View before;
        {
            auto d = open_ok(base, true);
            ASSERT_TRUE(d);
            before = view_of(*d);
        }
        sh("cp " + base + " " + path("base.vhdx"));
        View after;
        {
            auto d = open_ok(base, false);
            ASSERT_TRUE(d);
            auto r = s.operation(*d);
            ASSERT_TRUE(r) << r.error().message();
            ASSERT_TRUE(d->close());
            d = open_ok(base, true);
            ASSERT_TRUE(d);
            after = view_of(*d);
        }
        const std::string work = path("disk.vhdx"); // beside the parent, where the locator finds it
        size_t crashes = 0;
        for (uint64_t n = 1; n < 10000; ++n) {
            bool completed = false;
            for (PowerLossMode mode : {PowerLossMode::KeepAll, PowerLossMode::LoseAll, PowerLossMode::Random}) {
                SCOPED_TRACE(fmt::format("crash at call {} mode {}", n, static_cast<int>(mode)));
                std::filesystem::copy_file(path("base.vhdx"), work, std::filesystem::copy_options::overwrite_existing);
                if (run_child(s, work, n, mode)) {
                    completed = true;
                    break;
                }
                ++crashes;
                const bool qemu = mode == PowerLossMode::LoseAll && s.sector == 512 && n % 2 == 1;
                if (qemu) // qemu replays the same log on a copy (opening it read-write)
                    sh("cp " + work + " " + path("qemu.vhdx") + " && qemu-io -f vhdx -c 'read 0 512' " +
                       path("qemu.vhdx") + " && qemu-img check -f vhdx " + path("qemu.vhdx"));
                auto d = open_ok(work, false);
                ASSERT_TRUE(d);
                const View v = view_of(*d);
                ASSERT_TRUE(v == before || v == after)
                    << "size " << v.size << " (old " << before.size << ", new " << after.size << ")";
                ASSERT_TRUE(d->close());
                if (qemu) {
                    ASSERT_EQ(qemu_size(path("qemu.vhdx")), v.size) << "qemu's replay differs";
                    if (v.size <= 16 * mib) {
                        sh("qemu-img convert -f vhdx -O raw " + path("qemu.vhdx") + " " + path("qemu.raw"));
                        auto raw = whole_file(path("qemu.raw"));
                        ASSERT_TRUE(std::equal(v.head.begin(), v.head.end(), raw.begin())) << "qemu's replay differs";
                    }
                }
            }
            if (completed)
                break;
        }
        EXPECT_GT(crashes, 3u);
        auto d = open_ok(work, true);
        ASSERT_TRUE(d);
        EXPECT_TRUE(view_of(*d) == after);
    }
};

// Fills `blocks` blocks (1 MiB) of the image with patterns and flushes.
void fill(const std::string& p, uint64_t first, uint64_t blocks)
{
    auto d = open_vhdx(p, false);
    ASSERT_TRUE(d) << d.error().message();
    for (uint64_t b = first; b < first + blocks; ++b)
        ASSERT_TRUE((*d)->write(b * mib, pattern(b * mib, mib, static_cast<uint8_t>(b))));
    ASSERT_TRUE((*d)->close());
}

void resize_to(const std::string& p, uint64_t size)
{
    auto d = open_vhdx(p, false);
    ASSERT_TRUE(d) << d.error().message();
    ASSERT_TRUE((*d)->resize(size));
    ASSERT_TRUE((*d)->close());
}

TEST_F(VhdxCrashTest, GrowingADynamicImage)
{
    for (uint32_t sector : {512u, 4096u}) {
        run({"dynamic grow", sector,
             [&](const std::string& dir) {
                 // A shrink left data past the end of the last block: the grow must not show it.
                 ASSERT_TRUE(create_vhdx(dir + "/disk.vhdx", 10 * mib, DiskType::Dynamic, 1 << 20, sector));
                 fill(dir + "/disk.vhdx", 0, 10);
                 resize_to(dir + "/disk.vhdx", 6 * mib + 8 * sector);
             },
             [](BlockDevice& d) { return d.resize(12 * mib); }});
    }
}

TEST_F(VhdxCrashTest, GrowingMovesTheBat)
{
    run({"BAT moved", 512,
         [&](const std::string& dir) {
             ASSERT_TRUE(create_vhdx(dir + "/disk.vhdx", 6 * mib, DiskType::Dynamic, 1 << 20, 512));
             fill(dir + "/disk.vhdx", 0, 6);
         },
         [](BlockDevice& d) { return d.resize(130ULL << 30); }});
}

TEST_F(VhdxCrashTest, GrowingAndShrinkingAFixedImage)
{
    run({"fixed grow", 512,
         [&](const std::string& dir) {
             ASSERT_TRUE(create_vhdx(dir + "/disk.vhdx", 6 * mib, DiskType::Fixed, 1 << 20, 512));
             fill(dir + "/disk.vhdx", 0, 6);
             resize_to(dir + "/disk.vhdx", 3 * mib + 512);
         },
         [](BlockDevice& d) { return d.resize(9 * mib); }});
    run({"fixed shrink", 4096,
         [&](const std::string& dir) {
             ASSERT_TRUE(create_vhdx(dir + "/disk.vhdx", 8 * mib, DiskType::Fixed, 1 << 20, 4096));
             fill(dir + "/disk.vhdx", 0, 8);
         },
         [](BlockDevice& d) { return d.resize(2 * mib + 4096); }});
}

TEST_F(VhdxCrashTest, ShrinkingADynamicImage)
{
    run({"dynamic shrink", 512,
         [&](const std::string& dir) {
             ASSERT_TRUE(create_vhdx(dir + "/disk.vhdx", 12 * mib, DiskType::Dynamic, 1 << 20, 512));
             fill(dir + "/disk.vhdx", 2, 10);
         },
         [](BlockDevice& d) { return d.resize(5 * mib + 1024); }});
}

TEST_F(VhdxCrashTest, CompactingADynamicImage)
{
    run({"dynamic compact", 512,
         [&](const std::string& dir) {
             const std::string p = dir + "/disk.vhdx";
             ASSERT_TRUE(create_vhdx(p, 16 * mib, DiskType::Dynamic, 1 << 20, 512));
             fill(p, 8, 8);
             fill(p, 0, 4);
             auto d = open_vhdx(p, false);
             ASSERT_TRUE(d);
             ASSERT_TRUE((*d)->discard(8 * mib, 4 * mib));
             ASSERT_TRUE((*d)->write(1 * mib + 4096, std::vector<uint8_t>(4096, 0))); // a sparse block
             ASSERT_TRUE((*d)->close());
         },
         [](BlockDevice& d) { return d.compact(); }});
}

TEST_F(VhdxCrashTest, CompactingADifferencingChild)
{
    run({"differencing compact", 4096,
         [&](const std::string& dir) {
             const std::string parent = dir + "/parent.vhdx";
             const std::string child = dir + "/disk.vhdx";
             ASSERT_TRUE(create_vhdx(parent, 12 * mib, DiskType::Dynamic, 1 << 20, 4096));
             fill(parent, 0, 12);
             ASSERT_TRUE(create_vhdx_differencing(child, parent));
             auto d = open_vhdx(child, false);
             ASSERT_TRUE(d);
             for (uint64_t b = 0; b < 12; ++b) // partially present blocks, then the first ones discarded
                 ASSERT_TRUE((*d)->write(b * mib + 8192, std::vector<uint8_t>(8192, static_cast<uint8_t>(b + 1))));
             ASSERT_TRUE((*d)->discard(0, 4 * mib));
             ASSERT_TRUE((*d)->close());
         },
         [](BlockDevice& d) { return d.compact(); }});
}

} // namespace
} // namespace vmgen::vm::disk
