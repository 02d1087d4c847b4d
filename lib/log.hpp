#pragma once
// Internal diagnostics: formatted here, emitted through the public sink of iii/log.hpp
// (stderr by default, level from $III_LOG).

#include "iii/log.hpp"

#include <fmt/core.h>

#include <string_view>

namespace iii::detail {

using iii::LogLevel;

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
