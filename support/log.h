// Logging: one line per event on stderr, with a level and a component tag.
//   log_info("vmbus", "channel {} opened", relid);
// The level threshold comes from VMGEN_LOG (error|warn|info|debug), default info.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace vmgen {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };

[[nodiscard]] bool log_enabled(LogLevel level);
void log_write(LogLevel level, std::string_view component, std::string_view message);
void set_log_level(LogLevel level);

template <typename... Args>
void log_at(LogLevel level, std::string_view component, fmt::format_string<Args...> f, Args&&... args)
{
    if (log_enabled(level))
        log_write(level, component, fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
void log_error(std::string_view c, fmt::format_string<Args...> f, Args&&... args)
{
    log_at(LogLevel::Error, c, f, std::forward<Args>(args)...);
}
template <typename... Args>
void log_warn(std::string_view c, fmt::format_string<Args...> f, Args&&... args)
{
    log_at(LogLevel::Warn, c, f, std::forward<Args>(args)...);
}
template <typename... Args>
void log_info(std::string_view c, fmt::format_string<Args...> f, Args&&... args)
{
    log_at(LogLevel::Info, c, f, std::forward<Args>(args)...);
}
template <typename... Args>
void log_debug(std::string_view c, fmt::format_string<Args...> f, Args&&... args)
{
    log_at(LogLevel::Debug, c, f, std::forward<Args>(args)...);
}

} // namespace vmgen
