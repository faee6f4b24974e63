#include "mgmt/control_socket.h"

#include "mgmt/temp_home.h"

#include <gtest/gtest.h>

#include <atomic>

namespace vmgen::mgmt {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

json echo(const json& request) { return {{"ok", true}, {"echo", request}}; }

TEST(ControlSocket, RequestReply)
{
    TempHome home;
    auto path = home.path() / "control.sock";
    std::atomic<int> ticks{0};
    auto server = ControlServer::start(path, echo, [&] { ++ticks; }, 10ms);
    ASSERT_TRUE(server) << server.error().message();
    auto reply = control_request(path, json{{"op", "status"}}, 1000ms);
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_EQ((*reply)["echo"]["op"], "status");
    std::this_thread::sleep_for(50ms);
    EXPECT_GT(ticks.load(), 0);
    (*server)->stop();
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_FALSE(control_request(path, json{{"op", "status"}}, 100ms));
}

TEST(ControlSocket, LongPathsGoThroughProc)
{
    TempHome home;
    auto dir = home.path() / std::string(100, 'd');
    std::filesystem::create_directories(dir);
    auto path = dir / "control.sock";
    ASSERT_GT(path.string().size(), 108u);
    auto server = ControlServer::start(path, echo, {}, 1000ms);
    ASSERT_TRUE(server) << server.error().message();
    auto reply = control_request(path, json{{"op", "x"}}, 1000ms);
    ASSERT_TRUE(reply) << reply.error().message();
    EXPECT_TRUE(std::filesystem::exists(path));
}

TEST(ControlSocket, NoListenerIsAnError)
{
    TempHome home;
    auto reply = control_request(home.path() / "control.sock", json{{"op", "status"}}, 100ms);
    ASSERT_FALSE(reply);
}

} // namespace
} // namespace vmgen::mgmt
