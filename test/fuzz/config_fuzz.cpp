// libFuzzer target for the telemetry configuration the SDK reads from outside: OTEL_* values
// (lib/otel_config.*) and the W3C traceparent of incoming invocations.
// Invariants: parse_env_uint agrees with a digit-by-digit reference; a traceparent that parses
// yields lower-case ids that parse again, unchanged, when written back.

#include "otel_config.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

std::optional<std::uint64_t> reference_uint(std::string_view s) {
    if (s.empty()) return std::nullopt;
    unsigned __int128 v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<unsigned>(c - '0');
        if (v > UINT64_MAX) return std::nullopt;  // leading zeros are fine, overflow is not
    }
    return static_cast<std::uint64_t>(v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace tel = iii::detail::telemetry;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    require(tel::parse_env_uint(text) == reference_uint(text));

    // The same bytes as each variable's value (up to the first NUL, as getenv would see it).
    const std::string value(text.substr(0, text.find('\0')));
    const auto config = tel::read_env_config([&](const char*) { return value.c_str(); });
    require(config.enabled == (value == "true" || value == "1"));
    require(config.service_name == value);
    require(config.logs_batch_size == reference_uint(value));

    if (const auto ctx = tel::parse_traceparent(text)) {
        require(ctx->trace_id.size() == 32 && ctx->span_id.size() == 16);
        for (char c : ctx->trace_id + ctx->span_id) require((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
        static constexpr char hex[] = "0123456789abcdef";
        std::string back = "00-" + ctx->trace_id + "-" + ctx->span_id + "-";
        back += hex[ctx->trace_flags >> 4];
        back += hex[ctx->trace_flags & 15];
        const auto again = tel::parse_traceparent(back);
        require(again && again->trace_id == ctx->trace_id && again->span_id == ctx->span_id &&
                again->trace_flags == ctx->trace_flags);
    }
    return 0;
}
