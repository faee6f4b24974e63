#include "support/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <unistd.h>

namespace vmgen {
namespace {

LogLevel level_from_env()
{
    const char* env = std::getenv("VMGEN_LOG");
    if (env == nullptr)
        return LogLevel::Warn;
    if (std::strcmp(env, "error") == 0)
        return LogLevel::Error;
    if (std::strcmp(env, "warn") == 0)
        return LogLevel::Warn;
    if (std::strcmp(env, "debug") == 0)
        return LogLevel::Debug;
    return LogLevel::Info;
}

std::atomic<int>& threshold()
{
    static std::atomic<int> value{static_cast<int>(level_from_env())};
    return value;
}

} // namespace

bool log_enabled(LogLevel level) { return static_cast<int>(level) <= threshold().load(std::memory_order_relaxed); }

void set_log_level(LogLevel level) { threshold().store(static_cast<int>(level), std::memory_order_relaxed); }

void log_write(LogLevel level, std::string_view component, std::string_view message)
{
    static constexpr const char* names[] = {"error", "warn", "info", "debug"};
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    // One write() per line so concurrent threads never interleave within a line.
    auto line = fmt::format("[{:6}.{:06}] {}: {}: {}\n", ts.tv_sec, ts.tv_nsec / 1000, names[static_cast<int>(level)],
                            component, message);
    auto written = ::write(STDERR_FILENO, line.data(), line.size());
    (void)written;
}

} // namespace vmgen
