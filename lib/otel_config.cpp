#include "otel_config.hpp"

#include <algorithm>

namespace iii::detail::telemetry {
namespace {

bool is_hex(std::string_view s) noexcept {
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    });
}

int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return c - 'A' + 10;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

}  // namespace

std::optional<std::uint64_t> parse_env_uint(std::string_view text) noexcept {
    if (text.empty()) return std::nullopt;
    std::uint64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
        value = value * 10 + digit;
    }
    return value;
}

EnvConfig read_env_config(const std::function<const char*(const char*)>& getenv) {
    EnvConfig out;
    if (const char* v = getenv("OTEL_ENABLED")) out.enabled = std::string_view(v) == "true" || std::string_view(v) == "1";
    if (const char* v = getenv("OTEL_SERVICE_NAME")) out.service_name = v;
    if (const char* v = getenv("OTEL_LOGS_FLUSH_INTERVAL_MS")) out.logs_flush_interval_ms = parse_env_uint(v);
    if (const char* v = getenv("OTEL_LOGS_BATCH_SIZE")) out.logs_batch_size = parse_env_uint(v);
    return out;
}

std::optional<SpanContext> parse_traceparent(std::string_view h) {
    if (h.size() < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-') return std::nullopt;
    const auto version = h.substr(0, 2), trace = h.substr(3, 32), span = h.substr(36, 16),
               flags = h.substr(53, 2);
    // (Hex digits only: '|' 0x20 lower-cases A-F and leaves 0-9 alone.)
    const bool version_ff = (version[0] | 0x20) == 'f' && (version[1] | 0x20) == 'f';
    if (!is_hex(version) || !is_hex(trace) || !is_hex(span) || !is_hex(flags) || version_ff)
        return std::nullopt;
    // Later versions may append "-<more>"; what follows is not ours to check.
    if (h.size() > 55 && h[55] != '-') return std::nullopt;
    if (trace.find_first_not_of('0') == std::string_view::npos || span.find_first_not_of('0') == std::string_view::npos)
        return std::nullopt;
    SpanContext ctx;
    ctx.trace_id = lower(trace);
    ctx.span_id = lower(span);
    ctx.trace_flags = static_cast<std::uint8_t>(hex_digit(flags[0]) * 16 + hex_digit(flags[1]));
    return ctx;
}

}  // namespace iii::detail::telemetry
