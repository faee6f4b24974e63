// Image locks: what two users of one image (two VMs, a VM and a CLI verb, vmgen and QEMU) may hold at once.
#include "vm/disk/image_lock.h"

#include "vm/disk/disk_ops.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace vmgen::vm::disk {
namespace {

class ImageLockTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/vmgen_lock_XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
        CreateOptions options;
        options.size = 4 << 20;
        ASSERT_TRUE(create_disk(path("base.vhdx"), options));
        CreateOptions child;
        child.type = DiskType::Differencing;
        child.parent = path("base.vhdx");
        ASSERT_TRUE(create_disk(path("child.vhdx"), child));
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }
    std::string path(const std::string& name) const { return m_dir + "/" + name; }
    std::string m_dir;
};

TEST_F(ImageLockTest, ExclusiveExcludesEverything)
{
    auto held = lock_image(path("base.vhdx"), LockMode::Exclusive);
    ASSERT_TRUE(held) << held.error().message();
    auto second = lock_image(path("base.vhdx"), LockMode::Exclusive);
    ASSERT_FALSE(second);
    EXPECT_NE(second.error().message().find("in use"), std::string::npos) << second.error().message();
    EXPECT_FALSE(lock_image(path("base.vhdx"), LockMode::Shared));
}

TEST_F(ImageLockTest, SharedLocksShare)
{
    auto first = lock_image(path("base.vhdx"), LockMode::Shared);
    auto second = lock_image(path("base.vhdx"), LockMode::Shared);
    EXPECT_TRUE(first);
    EXPECT_TRUE(second);
    EXPECT_FALSE(lock_image(path("base.vhdx"), LockMode::Exclusive));
}

TEST_F(ImageLockTest, ReleasedWithTheLock)
{
    {
        auto held = lock_image(path("base.vhdx"), LockMode::Exclusive);
        ASSERT_TRUE(held);
    }
    EXPECT_TRUE(lock_image(path("base.vhdx"), LockMode::Exclusive));
}

TEST_F(ImageLockTest, DifferencingLocksItsParentShared)
{
    auto child = lock_image(path("child.vhdx"), LockMode::Exclusive);
    ASSERT_TRUE(child) << child.error().message();
    ASSERT_EQ(child->paths().size(), 2u);
    EXPECT_EQ(child->paths()[1], path("base.vhdx"));
    // Nobody may write the parent while a child uses it; reading it is fine.
    EXPECT_FALSE(lock_image(path("base.vhdx"), LockMode::Exclusive));
    EXPECT_TRUE(lock_image(path("base.vhdx"), LockMode::Shared));
    // A second child user conflicts on the child itself.
    EXPECT_FALSE(lock_image(path("child.vhdx"), LockMode::Shared));
}

TEST_F(ImageLockTest, OtherProcessesSeeTheLock)
{
    auto held = lock_image(path("base.vhdx"), LockMode::Exclusive);
    ASSERT_TRUE(held);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        // A new open file description in another process: must conflict.
        _exit(lock_image(path("base.vhdx"), LockMode::Shared) ? 1 : 0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_F(ImageLockTest, QemuImgRespectsOurLock)
{
    if (std::system("command -v qemu-img >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "qemu-img not installed";
    auto held = lock_image(path("base.vhdx"), LockMode::Exclusive);
    ASSERT_TRUE(held);
    std::string cmd = "qemu-img info " + path("base.vhdx") + " >/dev/null 2>&1";
    EXPECT_NE(std::system(cmd.c_str()), 0) << "qemu-img opened an image a VM holds";
}

TEST_F(ImageLockTest, MissingFileIsAnError)
{
    EXPECT_FALSE(lock_image(path("nothing.vhdx"), LockMode::Shared));
}

} // namespace
} // namespace vmgen::vm::disk
