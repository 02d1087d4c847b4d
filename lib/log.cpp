#include "log.hpp"

#include "redact.hpp"

#include <string>

// Redacts, then forwards to the public functions of log_sink.cpp. Kept apart so that the
// testing library, which links this object statically, resolves those functions to
// libiii-sdk.so and shares its sink instead of owning a second one.

namespace iii::detail {

LogLevel log_threshold() noexcept { return iii::log_level(); }

void log_line(LogLevel level, std::string_view text) noexcept {
    // Every line, whoever formatted it: a URL token or channel key must never reach a log,
    // the application's sink included.
    std::string safe;
    try {
        safe = redact_text(text);
    } catch (...) {
        safe = "(log line dropped: out of memory while redacting it)";
    }
    iii::log_message(level, safe);
}

}  // namespace iii::detail
