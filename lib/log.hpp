#pragma once
// Internal diagnostics on stderr. Level from $III_LOG (error, warn, info, debug); default warn.

#include <fmt/core.h>

#include <cstdio>
#include <string_view>

namespace iii::detail {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };

LogLevel log_threshold() noexcept;
void log_line(LogLevel level, std::string_view text) noexcept;

template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) noexcept {
    if (level > log_threshold()) return;
    try {
        log_line(level, fmt::format(format, std::forward<Args>(args)...));
    } catch (...) {
    }
}

}  // namespace iii::detail
