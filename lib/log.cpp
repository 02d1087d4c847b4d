#include "log.hpp"

#include "redact.hpp"

#include <cstdlib>
#include <cstring>
#include <string>

namespace iii::detail {

LogLevel log_threshold() noexcept {
    static const LogLevel threshold = [] {
        const char* env = std::getenv("III_LOG");
        if (!env) return LogLevel::Warn;
        if (std::strcmp(env, "error") == 0) return LogLevel::Error;
        if (std::strcmp(env, "info") == 0) return LogLevel::Info;
        if (std::strcmp(env, "debug") == 0) return LogLevel::Debug;
        return LogLevel::Warn;
    }();
    return threshold;
}

void log_line(LogLevel level, std::string_view text) noexcept {
    static constexpr const char* names[] = {"error", "warn", "info", "debug"};
    // Every line, whoever formatted it: a URL token or channel key must never reach a log.
    std::string safe;
    try {
        safe = redact_text(text);
    } catch (...) {
        safe = "(log line dropped: out of memory while redacting it)";
    }
    std::fprintf(stderr, "[iii %s] %.*s\n", names[static_cast<int>(level)],
                 static_cast<int>(safe.size()), safe.data());
}

}  // namespace iii::detail
