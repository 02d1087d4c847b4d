#include "log.hpp"

// Only forwards to the public functions of log_sink.cpp. Kept apart so that the testing
// library, which links this object statically, resolves those functions to libiii-sdk.so and
// shares its sink instead of owning a second one.

namespace iii::detail {

LogLevel log_threshold() noexcept { return iii::log_level(); }

void log_line(LogLevel level, std::string_view text) noexcept { iii::log_message(level, text); }

}  // namespace iii::detail
