#include "mgmt/store.h"

#include "mgmt/temp_home.h"

#include <gtest/gtest.h>

#include <fstream>

namespace vmgen::mgmt {
namespace {

VmConfig make_config(std::string name)
{
    VmConfig config;
    config.name = std::move(name);
    config.id = new_uuid();
    config.created = utc_now_iso8601();
    config.memory_bytes = 512ull << 20;
    return config;
}

TEST(Store, CreateLoadUpdateRemove)
{
    TempHome home;
    Store store(home.path() / "vms"); // the root is created on demand
    ASSERT_TRUE(store.list());
    EXPECT_TRUE(store.list()->empty());

    ASSERT_TRUE(store.create(make_config("web1")));
    EXPECT_TRUE(store.exists("web1"));
    auto loaded = store.load("web1");
    ASSERT_TRUE(loaded) << loaded.error().message();
    EXPECT_EQ(loaded->memory_bytes, 512ull << 20);

    {
        auto lock = store.lock("web1");
        ASSERT_TRUE(lock);
        loaded->processors = 2;
        ASSERT_TRUE(store.save(*loaded));
    }
    EXPECT_EQ(store.load("web1")->processors, 2u);

    auto duplicate = store.create(make_config("web1"));
    ASSERT_FALSE(duplicate);
    EXPECT_NE(duplicate.error().message().find("already exists"), std::string::npos);

    ASSERT_TRUE(store.remove("web1"));
    EXPECT_FALSE(store.exists("web1"));
    auto gone = store.load("web1");
    ASSERT_FALSE(gone);
    EXPECT_NE(gone.error().message().find("no virtual machine named 'web1'"), std::string::npos);
    EXPECT_FALSE(store.lock("web1"));
    // Nothing but the (now empty) root is left: no temporary folders.
    EXPECT_TRUE(std::filesystem::is_empty(store.root()));
}

TEST(Store, ListsSortedAndShowsBrokenConfigs)
{
    TempHome home;
    Store store(home.path());
    ASSERT_TRUE(store.create(make_config("b")));
    ASSERT_TRUE(store.create(make_config("a")));
    ASSERT_TRUE(store.create(make_config("c")));
    std::ofstream(store.config_path("b"), std::ios::trunc) << "{\"version\": 1, \"name\": ";
    std::filesystem::create_directory(home.path() / ".hidden");
    std::ofstream(home.path() / "stray-file") << "x";

    auto entries = store.list();
    ASSERT_TRUE(entries);
    ASSERT_EQ(entries->size(), 3u);
    EXPECT_EQ((*entries)[0].name, "a");
    EXPECT_EQ((*entries)[1].name, "b");
    EXPECT_EQ((*entries)[2].name, "c");
    EXPECT_TRUE((*entries)[0].config);
    ASSERT_FALSE((*entries)[1].config);
    auto message = (*entries)[1].config.error().message();
    EXPECT_NE(message.find("VM 'b': config " + store.config_path("b").string() + ": not valid JSON"),
              std::string::npos)
        << message;
    EXPECT_TRUE((*entries)[2].config);
}

TEST(Store, MissingConfigFile)
{
    TempHome home;
    Store store(home.path());
    std::filesystem::create_directory(home.path() / "empty");
    auto loaded = store.load("empty");
    ASSERT_FALSE(loaded);
    EXPECT_NE(loaded.error().message().find("VM 'empty': config "), std::string::npos);
    EXPECT_NE(loaded.error().message().find("No such file"), std::string::npos);
}

TEST(Store, RejectsInvalidNames)
{
    TempHome home;
    Store store(home.path());
    EXPECT_FALSE(store.create(make_config("../escape")));
    EXPECT_FALSE(store.create(make_config(".hidden")));
    EXPECT_FALSE(store.load(".."));
    EXPECT_FALSE(store.remove("."));
    EXPECT_TRUE(std::filesystem::is_empty(home.path()));
}

TEST(Store, DefaultRootHonoursVmgenHome)
{
    ::setenv("VMGEN_HOME", "/tmp/somewhere", 1);
    EXPECT_EQ(Store::default_root(), "/tmp/somewhere");
    ::unsetenv("VMGEN_HOME");
    auto root = Store::default_root().string();
    EXPECT_TRUE(root.ends_with(".local/share/vmgen")) << root;
}

} // namespace
} // namespace vmgen::mgmt
