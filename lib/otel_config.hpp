#pragma once
// The text the telemetry layer accepts from outside the program: OTEL_* environment variables
// and the W3C traceparent of incoming invocations. Pure functions (no environment, no clock), so
// that they can be unit-tested and fuzzed (test/fuzz/config_fuzz.cpp).

#include <iii/telemetry.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace iii::detail::telemetry {

/// A count or duration from the environment: ASCII digits only (no sign, space or suffix; a
/// leading "-" must not wrap to 2^64-1) and at most 2^64-1; nullopt otherwise.
std::optional<std::uint64_t> parse_env_uint(std::string_view text) noexcept;

/// The OTEL_* variables the SDK reads; each nullopt when unset (or, for numbers, malformed).
struct EnvConfig {
    std::optional<bool> enabled;                    ///< OTEL_ENABLED: on iff "true" or "1"
    std::optional<std::string> service_name;        ///< OTEL_SERVICE_NAME
    std::optional<std::uint64_t> logs_flush_interval_ms;  ///< OTEL_LOGS_FLUSH_INTERVAL_MS
    std::optional<std::uint64_t> logs_batch_size;   ///< OTEL_LOGS_BATCH_SIZE
};

/// Reads EnvConfig through `getenv` (std::getenv in production, a table in tests).
EnvConfig read_env_config(const std::function<const char*(const char*)>& getenv);

/// A W3C traceparent "<2 hex version>-<32 hex trace id>-<16 hex span id>-<2 hex flags>", ids
/// lower-cased; nullopt when malformed, version ff, or an id is all zeros. Anything after the
/// 55th character must follow a '-' (room for future versions, W3C Trace Context §3.2.4).
std::optional<SpanContext> parse_traceparent(std::string_view header);

}  // namespace iii::detail::telemetry
