#pragma once
// Helpers shared by the test engine's layers (engine.cpp, engine_registry.cpp, engine_router.cpp,
// engine_builtins.cpp): logging, JSON shaping, built-in input readers. Internal to the testing
// library.

#include <iii/json.hpp>

#include "log.hpp"
#include "protocol.hpp"
#include "transport/ws_transport.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace iii::testing::engine_detail {

namespace proto = iii::detail::protocol;
namespace transport = iii::detail::transport;
using iii::detail::LogLevel;

// One stderr line per event worth knowing about (level from $III_LOG, see log.hpp).
template <class... Args>
inline void note(LogLevel level, fmt::format_string<Args...> format, Args&&... args) noexcept {
    if (level > iii::detail::log_threshold()) return;
    try {
        iii::detail::log_line(level,
                              "test engine: " + fmt::format(format, std::forward<Args>(args)...));
    } catch (...) {
    }
}

template <class... F>
struct Overloaded : F... {
    using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

inline std::uint64_t now_ms() {
    using namespace std::chrono;
    return static_cast<std::uint64_t>(
        duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

// The real engine holds payloads as serde_json::Value without preserve_order, so every object
// it re-encodes comes out with sorted keys. Tests of the SDK must not depend on key order, and
// this is what makes them notice when they do.
inline void sort_keys(Value& value) {
    if (value.is_object()) {
        auto& members = value.as_object();
        // std::sort, not stable_sort: keys are unique in what serde_json holds (a map), and
        // libstdc++ 12's stable_sort uses get_temporary_buffer, which clang-19 flags deprecated.
        std::sort(members.begin(), members.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        for (auto& member : members) sort_keys(member.second);
    } else if (value.is_array()) {
        for (auto& element : value.as_array()) sort_keys(element);
    }
}
inline Value sorted(Value value) {
    sort_keys(value);
    return value;
}
inline std::optional<Value> sorted(std::optional<Value> value) {
    if (value) sort_keys(*value);
    return value;
}

inline Value or_null(const std::optional<std::string>& s) { return s ? Value(*s) : Value(); }
inline Value or_null(const std::optional<Value>& v) { return v ? *v : Value(); }

inline bool is_blank(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

inline bool is_telemetry(std::string_view frame) {
    return frame.starts_with("OTLP") || frame.starts_with("MTRC") || frame.starts_with("LOGS");
}

// The 0.10 engine declares a number data point's `asInt` as i64: a string there (as the Rust
// SDK writes it) fails the whole metrics frame (spec 7.2). Returns the reason, empty when fine.
inline std::string metrics_defect(const Value& body) {
    const Value* rms = body.find("resourceMetrics");
    if (!rms || !rms->is_array()) return {};
    for (const auto& rm : rms->as_array()) {
        const Value* sms = rm.find("scopeMetrics");
        if (!sms || !sms->is_array()) continue;
        for (const auto& sm : sms->as_array()) {
            const Value* ms = sm.find("metrics");
            if (!ms || !ms->is_array()) continue;
            for (const auto& m : ms->as_array()) {
                for (const char* kind : {"gauge", "sum"}) {
                    const Value* data = m.find(kind);
                    const Value* points = data ? data->find("dataPoints") : nullptr;
                    if (!points || !points->is_array()) continue;
                    for (const auto& p : points->as_array())
                        if (const Value* v = p.find("asInt");
                            v && !v->is_integer() && !v->is_null())
                            return fmt::format("asInt of {} is not an integer", m["name"].dump());
                }
            }
        }
    }
    return {};
}

// Flattens `bodies[].<outer>[].<middle>[].<inner>[]` (OTLP's resource/scope nesting).
inline std::vector<Value> flatten(const std::vector<Value>& bodies, std::string_view outer,
                                  std::string_view middle, std::string_view inner) {
    std::vector<Value> out;
    auto each = [](const Value& v, std::string_view key, auto&& f) {
        const Value* list = v.find(key);
        if (list && list->is_array())
            for (const auto& item : list->as_array()) f(item);
    };
    for (const auto& body : bodies)
        each(body, outer, [&](const Value& a) {
            each(a, middle, [&](const Value& b) {
                each(b, inner, [&](const Value& c) { out.push_back(c); });
            });
        });
    return out;
}

// Length of the valid UTF-8 sequence at the start of `s`, 0 when it is not one.
inline std::size_t utf8_sequence(std::string_view s) {
    const auto b0 = static_cast<unsigned char>(s[0]);
    std::size_t n = b0 < 0x80           ? 1
                    : (b0 >> 5) == 0x6  ? 2
                    : (b0 >> 4) == 0xE  ? 3
                    : (b0 >> 3) == 0x1E ? 4
                                        : 0;
    if (n == 0 || n > s.size()) return 0;
    for (std::size_t i = 1; i < n; ++i)
        if ((static_cast<unsigned char>(s[i]) >> 6) != 0x2) return 0;
    return n;
}

// A JSON string literal of arbitrary bytes: binary frames go into the log file as strings.
// Bytes that are not UTF-8 become \u00XX so that every line stays valid JSON.
inline std::string json_string(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() + 2);
    out += '"';
    while (!bytes.empty()) {
        const auto c = static_cast<unsigned char>(bytes[0]);
        std::size_t n = 1;
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            out += fmt::format("\\u{:04x}", c);
        } else if (c < 0x80) {
            out += static_cast<char>(c);
        } else if ((n = utf8_sequence(bytes)) != 0) {
            out.append(bytes.substr(0, n));
        } else {
            n = 1;
            out += fmt::format("\\u{:04x}", c);
        }
        bytes.remove_prefix(n);
    }
    out += '"';
    return out;
}

/// What a function call produced: a value (absent or null: no value) or an error.
struct Outcome {
    std::optional<Value> result;
    std::optional<RemoteError> error;

    static Outcome value(Value v) { return {std::move(v), std::nullopt}; }
    static Outcome nothing() { return {}; }
    static Outcome failure(std::string code, std::string message) {
        return {std::nullopt, RemoteError{std::move(code), std::move(message), std::nullopt}};
    }
};

// A built-in's input did not have the shape it expects; the real engine answers
// `deserialization_error` "Failed to deserialize input for <id>: <reason>".
struct BadInput {
    std::string reason;
};

// Built-in inputs are structs with optional fields on the real engine; null counts as absent.
inline const Value* field(const Value& input, std::string_view key) {
    const Value* v = input.find(key);
    return v && !v->is_null() ? v : nullptr;
}
inline void expect_object(const Value& input) {
    if (!input.is_object() && !input.is_null())
        throw BadInput{fmt::format("invalid type: {}, expected a map", kind_name(input.kind()))};
}
inline bool opt_bool(const Value& input, std::string_view key, bool fallback) {
    const Value* v = field(input, key);
    if (!v) return fallback;
    if (!v->is_bool())
        throw BadInput{
            fmt::format("invalid type: {}, expected a boolean at `{}`", kind_name(v->kind()), key)};
    return v->as_bool();
}
inline std::optional<std::string> opt_string(const Value& input, std::string_view key) {
    const Value* v = field(input, key);
    if (!v) return std::nullopt;
    if (!v->is_string())
        throw BadInput{
            fmt::format("invalid type: {}, expected a string at `{}`", kind_name(v->kind()), key)};
    return v->as_string();
}
inline std::optional<std::uint64_t> opt_uint(const Value& input, std::string_view key,
                                             std::uint64_t max) {
    const Value* v = field(input, key);
    if (!v) return std::nullopt;
    if (!v->is_integer() || (v->kind() == Value::Kind::Int && v->as_int() < 0) ||
        v->as_uint() > max)
        throw BadInput{
            fmt::format("invalid value at `{}`, expected an unsigned integer up to {}", key, max)};
    return v->as_uint();
}

constexpr std::string_view trigger_type_functions_available = "engine::functions-available";
constexpr std::string_view trigger_type_workers_available = "engine::workers-available";
// 0.22+: the standalone queue worker's enqueue provider.
constexpr std::string_view queue_provider_id = "engine::queue::enqueue";

// Trigger types the real engine (with the SDK fixture's modules) provides in-process. The two
// `engine::` ones are live here; the others are accepted and stored so that SDK code binding
// them behaves as against a real engine, but nothing ever fires them.
constexpr std::pair<std::string_view, std::string_view> builtin_trigger_types[] = {
    {trigger_type_functions_available, "Fires when the set of registered functions changes"},
    {trigger_type_workers_available, "Fires when workers connect, disconnect or update metadata"},
    {"http", "HTTP API trigger"},
    {"cron", "Cron schedule trigger"},
    {"durable:subscriber", "Durable queue subscriber"},
    {"subscribe", "Topic subscription"},
    {"state", "State change trigger"},
    {"stream", "Stream change trigger"},
    {"stream:join", "Stream join trigger"},
    {"stream:leave", "Stream leave trigger"},
    {"log", "Log record trigger"},
};

}  // namespace iii::testing::engine_detail
