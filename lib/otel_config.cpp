#include "otel_config.hpp"

#include "swar.hpp"
#include "telemetry_internal.hpp"

#include <array>
#include <cstdint>
#include <cstring>

namespace iii::detail::telemetry {
namespace {

// The lower-case form of each hex digit; 0 for any other byte.
constexpr auto hex_lower = [] {
    std::array<char, 256> table{};
    for (char c = '0'; c <= '9'; ++c) table[static_cast<unsigned char>(c)] = c;
    for (char c = 'a'; c <= 'f'; ++c) {
        table[static_cast<unsigned char>(c)] = c;
        table[static_cast<unsigned char>(c - 'a' + 'A')] = c;
    }
    return table;
}();

char lower_hex(char c) noexcept { return hex_lower[static_cast<unsigned char>(c)]; }

int hex_digit(char c) noexcept { return c <= '9' ? c - '0' : c - 'a' + 10; }  // of lower_hex()

/// Copies the hex digits `from` to `to` in lower case; false when one is not a hex digit or
/// all are zero (an invalid id). Eight digits at a time (this runs for every call served), the
/// rest one by one.
bool copy_id(std::string_view from, char* to) noexcept {
    using namespace swar;
    bool all_hex = true, nonzero = false;
    std::size_t i = 0;
    for (; i + 8 <= from.size(); i += 8) {
        const std::uint64_t x = load(from.data() + i);
        const std::uint64_t letter = hex_letter_bytes(x, true);
        all_hex &= (digit_bytes(x) | letter) == highs;
        const std::uint64_t lower = x | (letter >> 2);  // 0x80 >> 2: the case bit of each letter
        nonzero |= lower != ones * '0';
        std::memcpy(to + i, &lower, 8);
    }
    for (; i < from.size(); ++i) {
        const char c = lower_hex(from[i]);
        all_hex &= c != 0;
        nonzero |= c != '0';
        to[i] = c;
    }
    return all_hex && nonzero;
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

bool parse_traceparent_ids(std::string_view h, TraceId& trace_id, SpanId& span_id,
                           std::uint8_t& flags) noexcept {
    if (h.size() < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-') return false;
    // Later versions may append "-<more>"; what follows is not ours to check.
    if (h.size() > 55 && h[55] != '-') return false;
    const char v0 = lower_hex(h[0]), v1 = lower_hex(h[1]), f0 = lower_hex(h[53]), f1 = lower_hex(h[54]);
    if (!v0 || !v1 || !f0 || !f1 || (v0 == 'f' && v1 == 'f')) return false;
    if (!copy_id(h.substr(3, 32), trace_id.fill()) || !copy_id(h.substr(36, 16), span_id.fill()))
        return false;
    flags = static_cast<std::uint8_t>(hex_digit(f0) * 16 + hex_digit(f1));
    return true;
}

std::optional<SpanContext> parse_traceparent(std::string_view h) {
    TraceId trace_id;
    SpanId span_id;
    SpanContext ctx;
    if (!parse_traceparent_ids(h, trace_id, span_id, ctx.trace_flags)) return std::nullopt;
    ctx.trace_id = trace_id.view();
    ctx.span_id = span_id.view();
    return ctx;
}

}  // namespace iii::detail::telemetry
