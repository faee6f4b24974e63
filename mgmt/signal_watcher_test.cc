#include "mgmt/signal_watcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace vmgen::mgmt {
namespace {

using namespace std::chrono_literals;

TEST(SignalWatcher, DeliversSigtermToTheCallback)
{
    std::atomic<int> seen{0};
    {
        SignalWatcher watcher([&](int signal) { seen = signal; });
        ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
        for (int i = 0; i < 500 && seen == 0; ++i)
            std::this_thread::sleep_for(1ms);
    }
    EXPECT_EQ(seen, SIGTERM);
}

TEST(SignalWatcher, StopsWithoutWaitingForATick)
{
    // The VMM's exit after a guest powers off waits for this destructor: it must not poll.
    auto start = std::chrono::steady_clock::now();
    {
        SignalWatcher watcher([](int) {});
        std::this_thread::sleep_for(5ms);
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, 50ms);
}

} // namespace
} // namespace vmgen::mgmt
