#include "protocol.hpp"

#include "json_internal.hpp"
#include "swar.hpp"

#include <fmt/format.h>

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <random>
#include <type_traits>

namespace iii::detail::protocol {
namespace {

namespace ondemand = simdjson::ondemand;
using simdjson::error_code;

// Same order as the alternatives of Message, so that a variant index names its type.
constexpr std::array<std::string_view, std::variant_size_v<Message>> type_names = {
    "registerfunction", "unregisterfunction", "registertriggertype", "unregistertriggertype",
    "registertrigger",  "unregistertrigger",  "triggerregistrationresult", "invokefunction",
    "invocationresult", "registerservice",    "ping",                "pong",
    "workerregistered", "error",              "registrationrejected",
};

template <class T, std::size_t... I>
constexpr std::size_t index_of_impl(std::index_sequence<I...>) {
    std::size_t found = 0;
    ((std::is_same_v<T, std::variant_alternative_t<I, Message>> ? (found = I) : 0), ...);
    return found;
}
// The variant index of T in Message, usable as a case label.
template <class T>
constexpr std::size_t index_of() {
    return index_of_impl<T>(std::make_index_sequence<std::variant_size_v<Message>>());
}

int find_type(std::string_view name) noexcept {
    for (std::size_t i = 0; i < type_names.size(); ++i)
        if (type_names[i] == name) return static_cast<int>(i);
    return -1;
}

// ---------------------------------------------------------------------------------------------
// UUIDs

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    c = static_cast<char>(c | 0x20);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

bool iequals_ascii(std::string_view a, std::string_view lower) noexcept {
    if (a.size() != lower.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c | 0x20);
        if (c != lower[i]) return false;
    }
    return true;
}

// Writes the canonical form of `text` into out[0..36) without allocating.
bool canonicalize_uuid(std::string_view text, char* out) noexcept {
    // What every SDK sends: already canonical, copied as it is.
    if (text.size() == 36 && swar::canonical_uuid(text.data())) {
        std::memcpy(out, text.data(), 36);
        return true;
    }
    if (text.size() > 9 && iequals_ascii(text.substr(0, 9), "urn:uuid:"))
        text.remove_prefix(9);
    else if (text.size() > 2 && text.front() == '{' && text.back() == '}')
        text = text.substr(1, text.size() - 2);
    const bool hyphenated = text.size() == 36;
    if (!hyphenated && text.size() != 32) return false;
    static constexpr char digits[] = "0123456789abcdef";
    std::size_t o = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (hyphenated && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (text[i] != '-') return false;
            continue;
        }
        const int v = hex_value(text[i]);
        if (v < 0) return false;
        if (o == 8 || o == 13 || o == 18 || o == 23) out[o++] = '-';
        out[o++] = digits[v];
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Decoding
//
// A frame is read in one pass over its fields. `type` usually comes first (serde and our
// encoder put it there); once it is known, fields the message does not have are skipped
// unread. Fields that arrive before `type` are read into every slot that could use them, and a
// wrong-typed one is only reported if the message turns out to have that field.

enum Field : std::uint8_t {
    F_type, F_id, F_description, F_request_format, F_response_format, F_metadata, F_invocation,
    F_trigger_request_format, F_call_request_format, F_trigger_type, F_function_id, F_config,
    F_error, F_invocation_id, F_data, F_traceparent, F_baggage, F_action, F_result, F_name,
    F_parent_service_id, F_worker_id, F_reattach_token, F_code, F_owner_worker_id,
    F_namespace, F_trigger_namespace, F_count,
};

constexpr std::array<std::string_view, F_count> field_names = {
    "type", "id", "description", "request_format", "response_format", "metadata", "invocation",
    "trigger_request_format", "call_request_format", "trigger_type", "function_id", "config",
    "error", "invocation_id", "data", "traceparent", "baggage", "action", "result", "name",
    "parent_service_id", "worker_id", "reattach_token", "code", "owner_worker_id",
    "namespace", "trigger_namespace",
};

constexpr std::uint32_t bit(Field f) noexcept { return std::uint32_t{1} << f; }

enum class Shape : std::uint8_t { String, Uuid, Json, ErrorBody, Invocation, Action };

constexpr Shape shape_of(Field f) noexcept {
    switch (f) {
        case F_invocation_id: return Shape::Uuid;
        case F_request_format:
        case F_response_format:
        case F_metadata:
        case F_trigger_request_format:
        case F_call_request_format:
        case F_config:
        case F_data:
        case F_result: return Shape::Json;
        case F_error: return Shape::ErrorBody;
        case F_invocation: return Shape::Invocation;
        case F_action: return Shape::Action;
        default: return Shape::String;
    }
}

constexpr std::string_view expected_of(Field f) noexcept {
    switch (shape_of(f)) {
        case Shape::String: return "a string";
        case Shape::Uuid: return "a UUID string";
        case Shape::Json: return "a JSON value";
        case Shape::ErrorBody: return "an error object";
        case Shape::Invocation: return "an HTTP invocation object";
        case Shape::Action: return "an action object";
    }
    return "";
}

// Dispatch on length first: one or two comparisons per key.
Field find_field(std::string_view k) noexcept {
    switch (k.size()) {
        case 2: return k == "id" ? F_id : F_count;
        case 4:
            if (k == "type") return F_type;
            if (k == "data") return F_data;
            if (k == "name") return F_name;
            if (k == "code") return F_code;
            return F_count;
        case 5: return k == "error" ? F_error : F_count;
        case 6:
            if (k == "config") return F_config;
            if (k == "action") return F_action;
            if (k == "result") return F_result;
            return F_count;
        case 7: return k == "baggage" ? F_baggage : F_count;
        case 8: return k == "metadata" ? F_metadata : F_count;
        case 9:
            if (k == "worker_id") return F_worker_id;
            if (k == "namespace") return F_namespace;
            return F_count;
        case 10: return k == "invocation" ? F_invocation : F_count;
        case 11:
            if (k == "function_id") return F_function_id;
            if (k == "description") return F_description;
            if (k == "traceparent") return F_traceparent;
            return F_count;
        case 12: return k == "trigger_type" ? F_trigger_type : F_count;
        case 13: return k == "invocation_id" ? F_invocation_id : F_count;
        case 14:
            if (k == "request_format") return F_request_format;
            if (k == "reattach_token") return F_reattach_token;
            return F_count;
        case 15:
            if (k == "response_format") return F_response_format;
            if (k == "owner_worker_id") return F_owner_worker_id;
            return F_count;
        case 17:
            if (k == "parent_service_id") return F_parent_service_id;
            if (k == "trigger_namespace") return F_trigger_namespace;
            return F_count;
        case 19: return k == "call_request_format" ? F_call_request_format : F_count;
        case 22: return k == "trigger_request_format" ? F_trigger_request_format : F_count;
        default: return F_count;
    }
}

// The fields each message has, indexed like Message. `type` is not listed: a second `type`
// key is skipped.
constexpr std::array<std::uint32_t, std::variant_size_v<Message>> fields_of = {
    /* registerfunction */ bit(F_id) | bit(F_description) | bit(F_request_format) |
        bit(F_response_format) | bit(F_metadata) | bit(F_invocation),
    /* unregisterfunction */ bit(F_id),
    /* registertriggertype */ bit(F_id) | bit(F_description) | bit(F_trigger_request_format) |
        bit(F_call_request_format) | bit(F_namespace),
    /* unregistertriggertype */ bit(F_id),
    /* registertrigger */ bit(F_id) | bit(F_trigger_type) | bit(F_function_id) | bit(F_config) |
        bit(F_metadata) | bit(F_namespace) | bit(F_trigger_namespace),
    /* unregistertrigger */ bit(F_id) | bit(F_trigger_type),
    /* triggerregistrationresult */ bit(F_id) | bit(F_trigger_type) | bit(F_function_id) |
        bit(F_error),
    /* invokefunction */ bit(F_invocation_id) | bit(F_function_id) | bit(F_data) |
        bit(F_traceparent) | bit(F_baggage) | bit(F_action) | bit(F_metadata) | bit(F_namespace),
    /* invocationresult */ bit(F_invocation_id) | bit(F_function_id) | bit(F_result) |
        bit(F_error) | bit(F_traceparent) | bit(F_baggage),
    /* registerservice */ bit(F_id) | bit(F_name) | bit(F_description) |
        bit(F_parent_service_id),
    /* ping */ 0,
    /* pong */ 0,
    /* workerregistered */ bit(F_worker_id) | bit(F_reattach_token),
    /* error */ bit(F_error),
    /* registrationrejected */ bit(F_code) | bit(F_function_id) | bit(F_owner_worker_id),
};

// Fields that must be present (spec section 2.3). `data` and `config` may be null; the others
// must also be non-null.
constexpr std::array<std::uint32_t, std::variant_size_v<Message>> required_of = {
    /* registerfunction */ bit(F_id),
    /* unregisterfunction */ bit(F_id),
    /* registertriggertype */ bit(F_id) | bit(F_description),
    /* unregistertriggertype */ bit(F_id),
    /* registertrigger */ bit(F_id) | bit(F_trigger_type) | bit(F_function_id) | bit(F_config),
    /* unregistertrigger */ bit(F_id),
    /* triggerregistrationresult */ bit(F_id) | bit(F_trigger_type) | bit(F_function_id),
    /* invokefunction */ bit(F_function_id) | bit(F_data),
    /* invocationresult */ bit(F_invocation_id) | bit(F_function_id),
    /* registerservice */ bit(F_id),
    /* ping */ 0,
    /* pong */ 0,
    /* workerregistered */ bit(F_worker_id),
    /* error */ bit(F_error),
    /* registrationrejected */ 0,
};
constexpr std::uint32_t null_allowed = bit(F_data) | bit(F_config);

constexpr std::size_t registration_rejected_index = index_of<RegistrationRejected>();

// What was wrong with a field that was present but unusable.
struct Problem {
    std::string_view sub;     // nested field name, if the problem is inside an object
    std::string_view what;    // e.g. "expected a string"
    std::string_view detail;  // the offending text, quoted in the reason
};

// An HTTP auth object before its `type` is known.
struct AuthFields {
    std::string_view type, secret_key, token_key, header, value_key;
};

/// Payloads of finished invocations whose storage the next invocations' `data` is parsed into
/// (Decoder::recycle). Bounded in number and in total heap bytes, whatever the payloads' sizes.
struct SparePayloads {
    static constexpr std::size_t max_count = 64;
    static constexpr std::size_t max_total_bytes = 256 * 1024;

    /// Keeps `payload` when the bounds allow; true when kept.
    bool keep(Value&& payload) {
        if (payload.is_null() || items.size() >= max_count) return false;
        const auto bytes = storage_bytes(payload, std::min(recycled_value_bytes, max_total_bytes - total_bytes));
        if (!bytes) return false;
        items.push_back({std::move(payload), *bytes});
        total_bytes += *bytes;
        return true;
    }
    /// Moves the last kept payload into `slot`, if there is one.
    void lend(Value& slot) {
        if (items.empty()) return;
        slot = std::move(items.back().value);
        total_bytes -= items.back().bytes;
        items.pop_back();
    }

    struct Spare {
        Value value;
        std::size_t bytes;
    };
    std::vector<Spare> items;
    std::size_t total_bytes = 0;
};

struct Fields {
    std::uint32_t present = 0;  // key seen and read (value possibly null)
    std::uint32_t null = 0;     // value was null
    std::uint32_t bad = 0;      // value unusable; see problems
    std::array<std::string_view, F_count> strings{};  // String shapes, into the parser's buffer
    std::array<Problem, F_count> problems{};
    char invocation_id[36];
    Value request_format, response_format, metadata, trigger_request_format, call_request_format,
        config, data, result;
    RemoteError error;
    HttpInvocationConfig invocation;
    TriggerAction action;
    // Storage handed back by Decoder::recycle(), for an invocation's `data` and id.
    SparePayloads* spare_data = nullptr;
    std::vector<std::string>* spare_id = nullptr;
    std::vector<std::string>* spare_traceparent = nullptr;

    Value* json(Field f) noexcept {
        switch (f) {
            case F_request_format: return &request_format;
            case F_response_format: return &response_format;
            case F_metadata: return &metadata;
            case F_trigger_request_format: return &trigger_request_format;
            case F_call_request_format: return &call_request_format;
            case F_config: return &config;
            case F_data: return &data;
            case F_result: return &result;
            default: return nullptr;
        }
    }
};

// Readers return SUCCESS, INCORRECT_TYPE when the value has the wrong shape (then `problem`
// says why and the frame can still be walked), or any other simdjson error, which means the
// document itself is broken.

// Reads a string or null. `is_null` tells which.
error_code read_string(ondemand::value& v, std::string_view& out, bool& is_null) {
    is_null = false;
    error_code e = v.get_string().get(out);
    if (e != simdjson::INCORRECT_TYPE) return e;
    bool n = false;
    if (v.is_null().get(n) == simdjson::SUCCESS && n) {
        is_null = true;
        return simdjson::SUCCESS;
    }
    return simdjson::INCORRECT_TYPE;
}

// Reads an object or null into `object`.
error_code open_object(ondemand::value& v, ondemand::object& object, bool& is_null) {
    is_null = false;
    error_code e = v.get_object().get(object);
    if (e != simdjson::INCORRECT_TYPE) return e;
    bool n = false;
    if (v.is_null().get(n) == simdjson::SUCCESS && n) {
        is_null = true;
        return simdjson::SUCCESS;
    }
    return simdjson::INCORRECT_TYPE;
}

// Iterates the fields of an object, calling on_field(key, value) for each. on_field returns as
// the readers do; INCORRECT_TYPE stops the walk early (the caller's iterator skips the rest).
template <class F>
error_code for_each_field(ondemand::object& object, F&& on_field) {
    for (auto field : object) {
        std::string_view key;
        if (auto e = field.unescaped_key().get(key)) return e;
        ondemand::value value;
        if (auto e = field.value().get(value)) return e;
        if (auto e = on_field(key, value)) return e;
    }
    return simdjson::SUCCESS;
}

// A string member of a nested object: absent/null leave `out` empty.
error_code nested_string(ondemand::value& v, std::string_view key, std::string_view& out,
                         bool& seen, Problem& problem) {
    bool is_null = false;
    error_code e = read_string(v, out, is_null);
    if (e == simdjson::INCORRECT_TYPE) problem = {key, "expected a string", {}};
    if (!e) seen = !is_null;
    return e;
}

error_code read_error_body(ondemand::value& v, RemoteError& out, bool& is_null, Problem& problem) {
    ondemand::object object;
    if (auto e = open_object(v, object, is_null)) {
        if (e == simdjson::INCORRECT_TYPE) problem = {{}, "expected an error object", {}};
        return e;
    }
    if (is_null) return simdjson::SUCCESS;
    std::string_view code, message, stacktrace;
    bool has_code = false, has_message = false, has_stacktrace = false;
    if (auto e = for_each_field(object, [&](std::string_view key, ondemand::value& value) {
            if (key == "code") return nested_string(value, key, code, has_code, problem);
            if (key == "message") return nested_string(value, key, message, has_message, problem);
            if (key == "stacktrace")
                return nested_string(value, key, stacktrace, has_stacktrace, problem);
            return simdjson::SUCCESS;
        }))
        return e;
    if (!has_code || !has_message) {
        problem = {has_code ? "message" : "code", "missing field", {}};
        return simdjson::INCORRECT_TYPE;
    }
    out.code.assign(code);
    out.message.assign(message);
    if (has_stacktrace) out.stacktrace.emplace(stacktrace);
    return simdjson::SUCCESS;
}

bool parse_method(std::string_view s, HttpMethod& out) noexcept {
    // Exact upper case, as serde's derive does: "post" fails the whole registration.
    if (s == "GET") out = HttpMethod::Get;
    else if (s == "POST") out = HttpMethod::Post;
    else if (s == "PUT") out = HttpMethod::Put;
    else if (s == "PATCH") out = HttpMethod::Patch;
    else if (s == "DELETE") out = HttpMethod::Delete;
    else return false;
    return true;
}

error_code read_auth(ondemand::value& v, std::optional<HttpAuthConfig>& out, Problem& problem) {
    ondemand::object object;
    bool is_null = false;
    if (auto e = open_object(v, object, is_null)) {
        if (e == simdjson::INCORRECT_TYPE) problem = {"auth", "expected an auth object", {}};
        return e;
    }
    if (is_null) return simdjson::SUCCESS;
    AuthFields a;
    bool seen[5] = {};
    if (auto e = for_each_field(object, [&](std::string_view key, ondemand::value& value) {
            if (key == "type") return nested_string(value, "auth.type", a.type, seen[0], problem);
            if (key == "secret_key")
                return nested_string(value, "auth.secret_key", a.secret_key, seen[1], problem);
            if (key == "token_key")
                return nested_string(value, "auth.token_key", a.token_key, seen[2], problem);
            if (key == "header")
                return nested_string(value, "auth.header", a.header, seen[3], problem);
            if (key == "value_key")
                return nested_string(value, "auth.value_key", a.value_key, seen[4], problem);
            return simdjson::SUCCESS;
        }))
        return e;
    auto missing = [&](std::string_view key) {
        problem = {key, "missing field", {}};
        return simdjson::INCORRECT_TYPE;
    };
    if (!seen[0]) return missing("auth.type");
    if (a.type == "hmac") {
        if (!seen[1]) return missing("auth.secret_key");
        out.emplace(HmacAuth{std::string(a.secret_key)});
    } else if (a.type == "bearer") {
        if (!seen[2]) return missing("auth.token_key");
        out.emplace(BearerAuth{std::string(a.token_key)});
    } else if (a.type == "api_key") {
        if (!seen[3]) return missing("auth.header");
        if (!seen[4]) return missing("auth.value_key");
        out.emplace(ApiKeyAuth{std::string(a.header), std::string(a.value_key)});
    } else {
        problem = {"auth.type", "unknown auth type", a.type};
        return simdjson::INCORRECT_TYPE;
    }
    return simdjson::SUCCESS;
}

error_code read_headers(ondemand::value& v, std::map<std::string, std::string>& out,
                        Problem& problem) {
    ondemand::object object;
    bool is_null = false;
    if (auto e = open_object(v, object, is_null)) {
        if (e == simdjson::INCORRECT_TYPE) problem = {"headers", "expected an object", {}};
        return e;
    }
    if (is_null) return simdjson::SUCCESS;
    return for_each_field(object, [&](std::string_view key, ondemand::value& value) {
        std::string_view s;
        bool seen = false;
        if (auto e = nested_string(value, "headers", s, seen, problem)) return e;
        if (!seen) {  // a null header value
            problem = {"headers", "expected a string", {}};
            return simdjson::INCORRECT_TYPE;
        }
        out.insert_or_assign(std::string(key), std::string(s));
        return simdjson::SUCCESS;
    });
}

error_code read_invocation(ondemand::value& v, HttpInvocationConfig& out, bool& is_null,
                           Problem& problem) {
    ondemand::object object;
    if (auto e = open_object(v, object, is_null)) {
        if (e == simdjson::INCORRECT_TYPE) problem = {{}, "expected an HTTP invocation object", {}};
        return e;
    }
    if (is_null) return simdjson::SUCCESS;
    bool has_url = false;
    auto on_field = [&](std::string_view key, ondemand::value& value) -> error_code {
        if (key == "url") {
            std::string_view url;
            if (auto e = nested_string(value, key, url, has_url, problem)) return e;
            out.url.assign(url);
            return simdjson::SUCCESS;
        }
        if (key == "method") {
            std::string_view method;
            bool seen = false;
            if (auto e = nested_string(value, key, method, seen, problem)) return e;
            if (seen && !parse_method(method, out.method)) {
                problem = {"method", "unknown HTTP method", method};
                return simdjson::INCORRECT_TYPE;
            }
            return simdjson::SUCCESS;
        }
        if (key == "timeout_ms") {
            std::uint64_t ms = 0;
            error_code e = value.get_uint64().get(ms);
            if (!e) {
                out.timeout_ms = ms;
                return simdjson::SUCCESS;
            }
            bool n = false;
            if (value.is_null().get(n) == simdjson::SUCCESS && n) return simdjson::SUCCESS;
            problem = {"timeout_ms", "expected an unsigned integer", {}};
            return simdjson::INCORRECT_TYPE;
        }
        if (key == "headers") return read_headers(value, out.headers, problem);
        if (key == "auth") return read_auth(value, out.auth, problem);
        return simdjson::SUCCESS;
    };
    if (auto e = for_each_field(object, on_field)) return e;
    if (!has_url) {
        problem = {"url", "missing field", {}};
        return simdjson::INCORRECT_TYPE;
    }
    return simdjson::SUCCESS;
}

error_code read_action(ondemand::value& v, TriggerAction& out, bool& is_null, Problem& problem) {
    ondemand::object object;
    if (auto e = open_object(v, object, is_null)) {
        if (e == simdjson::INCORRECT_TYPE) problem = {{}, "expected an action object", {}};
        return e;
    }
    if (is_null) return simdjson::SUCCESS;
    std::string_view type, queue;
    bool has_type = false, has_queue = false;
    if (auto e = for_each_field(object, [&](std::string_view key, ondemand::value& value) {
            if (key == "type") return nested_string(value, key, type, has_type, problem);
            if (key == "queue") return nested_string(value, key, queue, has_queue, problem);
            return simdjson::SUCCESS;
        }))
        return e;
    if (!has_type) {
        problem = {"type", "missing field", {}};
        return simdjson::INCORRECT_TYPE;
    }
    if (type == "void") {
        out = Void{};
    } else if (type == "enqueue") {
        if (!has_queue) {
            problem = {"queue", "missing field", {}};
            return simdjson::INCORRECT_TYPE;
        }
        out = Enqueue{std::string(queue)};
    } else {
        problem = {"type", "unknown action type", type};
        return simdjson::INCORRECT_TYPE;
    }
    return simdjson::SUCCESS;
}

// Reads field `f` into `fields`. Returns only document-level errors; a wrong shape is recorded.
error_code read_field(ondemand::value& v, Field f, Fields& fields) {
    bool is_null = false;
    Problem& problem = fields.problems[f];
    error_code e = simdjson::SUCCESS;
    switch (shape_of(f)) {
        case Shape::String:
            e = read_string(v, fields.strings[f], is_null);
            if (e == simdjson::INCORRECT_TYPE) problem = {{}, "expected a string", {}};
            break;
        case Shape::Uuid: {
            std::string_view text;
            e = read_string(v, text, is_null);
            if (e == simdjson::INCORRECT_TYPE) {
                problem = {{}, "expected a UUID string", {}};
            } else if (!e && !is_null && !canonicalize_uuid(text, fields.invocation_id)) {
                problem = {{}, "not a UUID:", text};
                e = simdjson::INCORRECT_TYPE;
            }
            break;
        }
        case Shape::Json: {
            Value& slot = *fields.json(f);
            // A recycled payload lends its storage (read_value() reuses it in place).
            if (f == F_data && fields.spare_data) fields.spare_data->lend(slot);
            e = read_value(v, slot);
            // Any JSON value is acceptable here, so a type error means a malformed token
            // (`tru`), not a wrong shape.
            if (e == simdjson::INCORRECT_TYPE) e = simdjson::TAPE_ERROR;
            is_null = !e && slot.is_null();
            break;
        }
        case Shape::ErrorBody:
            fields.error = RemoteError{};
            e = read_error_body(v, fields.error, is_null, problem);
            break;
        case Shape::Invocation:
            fields.invocation = HttpInvocationConfig{};
            e = read_invocation(v, fields.invocation, is_null, problem);
            break;
        case Shape::Action: e = read_action(v, fields.action, is_null, problem); break;
    }
    if (e == simdjson::INCORRECT_TYPE) {
        fields.bad |= bit(f);
        fields.present &= ~bit(f);
        return simdjson::SUCCESS;
    }
    if (e) return e;
    fields.bad &= ~bit(f);
    fields.present |= bit(f);
    if (is_null)
        fields.null |= bit(f);
    else
        fields.null &= ~bit(f);
    return simdjson::SUCCESS;
}

int lowest_bit(std::uint32_t v) noexcept { return std::countr_zero(v); }

// A recycled string from `spares` (for its capacity: the caller assigns it), else a new one.
std::string take_spare(std::vector<std::string>* spares) {
    if (!spares || spares->empty()) return {};
    std::string s = std::move(spares->back());
    spares->pop_back();
    return s;
}

std::optional<std::string> opt_string(const Fields& f, Field field) {
    if ((f.present & bit(field)) && !(f.null & bit(field)))
        return std::string(f.strings[field]);
    return std::nullopt;
}

std::optional<Value> opt_json(Fields& f, Field field) {
    if ((f.present & bit(field)) && !(f.null & bit(field))) return std::move(*f.json(field));
    return std::nullopt;
}

std::string take_string(const Fields& f, Field field) { return std::string(f.strings[field]); }

// opt_string into an existing optional, reusing its string's capacity.
void assign_opt_string(std::optional<std::string>& out, const Fields& f, Field field) {
    if ((f.present & bit(field)) && !(f.null & bit(field))) {
        if (out) out->assign(f.strings[field]);
        else out.emplace(f.strings[field]);
    } else {
        out.reset();
    }
}

// Builds the message; every required field has been checked.
void build(std::size_t kind, Fields& f, Message& out) {
    switch (kind) {
        case index_of<RegisterFunction>(): {
            RegisterFunctionMessage& m = out.emplace<RegisterFunction>().message;
            m.id = take_string(f, F_id);
            m.description = opt_string(f, F_description);
            m.request_format = opt_json(f, F_request_format);
            m.response_format = opt_json(f, F_response_format);
            m.metadata = opt_json(f, F_metadata);
            if ((f.present & bit(F_invocation)) && !(f.null & bit(F_invocation)))
                m.invocation = std::move(f.invocation);
            break;
        }
        case index_of<UnregisterFunction>():
            out.emplace<UnregisterFunction>().id = take_string(f, F_id);
            break;
        case index_of<RegisterTriggerType>(): {
            RegisterTriggerType& m = out.emplace<RegisterTriggerType>();
            m.id = take_string(f, F_id);
            m.description = take_string(f, F_description);
            m.trigger_request_format = opt_json(f, F_trigger_request_format);
            m.call_request_format = opt_json(f, F_call_request_format);
            m.ns = opt_string(f, F_namespace);
            break;
        }
        case index_of<UnregisterTriggerType>():
            out.emplace<UnregisterTriggerType>().id = take_string(f, F_id);
            break;
        case index_of<RegisterTrigger>(): {
            RegisterTrigger& m = out.emplace<RegisterTrigger>();
            m.id = take_string(f, F_id);
            m.trigger_type = take_string(f, F_trigger_type);
            m.function_id = take_string(f, F_function_id);
            m.config = std::move(f.config);
            m.metadata = opt_json(f, F_metadata);
            m.ns = opt_string(f, F_namespace);
            m.trigger_namespace = opt_string(f, F_trigger_namespace);
            break;
        }
        case index_of<UnregisterTrigger>(): {
            UnregisterTrigger& m = out.emplace<UnregisterTrigger>();
            m.id = take_string(f, F_id);
            m.trigger_type = opt_string(f, F_trigger_type);
            break;
        }
        case index_of<TriggerRegistrationResult>(): {
            TriggerRegistrationResult& m = out.emplace<TriggerRegistrationResult>();
            m.id = take_string(f, F_id);
            m.trigger_type = take_string(f, F_trigger_type);
            m.function_id = take_string(f, F_function_id);
            if ((f.present & bit(F_error)) && !(f.null & bit(F_error)))
                m.error = std::move(f.error);
            break;
        }
        case index_of<InvokeFunction>(): {
            InvokeFunction& m = out.emplace<InvokeFunction>();
            if ((f.present & bit(F_invocation_id)) && !(f.null & bit(F_invocation_id)))
                m.invocation_id.emplace(take_spare(f.spare_id)).assign(f.invocation_id, sizeof f.invocation_id);
            m.function_id = take_string(f, F_function_id);
            m.data = std::move(f.data);
            if ((f.present & bit(F_traceparent)) && !(f.null & bit(F_traceparent)))
                m.traceparent.emplace(take_spare(f.spare_traceparent)).assign(f.strings[F_traceparent]);
            m.baggage = opt_string(f, F_baggage);
            if ((f.present & bit(F_action)) && !(f.null & bit(F_action)))
                m.action = std::move(f.action);
            m.metadata = opt_json(f, F_metadata);
            m.ns = opt_string(f, F_namespace);
            break;
        }
        case index_of<InvocationResult>(): {
            // An InvocationResult already in `out` (a decoder's caller that keeps its Message
            // between frames) is overwritten field by field: its strings keep their capacity,
            // so a steady stream of results allocates nothing here but the result itself.
            auto* reused = std::get_if<InvocationResult>(&out);
            InvocationResult& m = reused ? *reused : out.emplace<InvocationResult>();
            m.invocation_id.assign(f.invocation_id, sizeof f.invocation_id);
            m.function_id.assign(f.strings[F_function_id]);
            // `result: null` stays a present null; callers treat it like absence.
            if (f.present & bit(F_result)) m.result = std::move(f.result);
            else m.result.reset();
            if ((f.present & bit(F_error)) && !(f.null & bit(F_error)))
                m.error = std::move(f.error);
            else
                m.error.reset();
            assign_opt_string(m.traceparent, f, F_traceparent);
            assign_opt_string(m.baggage, f, F_baggage);
            break;
        }
        case index_of<RegisterService>(): {
            RegisterServiceMessage& m = out.emplace<RegisterService>().message;
            m.id = take_string(f, F_id);
            m.name = opt_string(f, F_name).value_or(std::string());
            m.description = opt_string(f, F_description);
            m.parent_service_id = opt_string(f, F_parent_service_id);
            break;
        }
        case index_of<Ping>(): out.emplace<Ping>(); break;
        case index_of<Pong>(): out.emplace<Pong>(); break;
        case index_of<WorkerRegistered>(): {
            WorkerRegistered& m = out.emplace<WorkerRegistered>();
            m.worker_id = take_string(f, F_worker_id);
            m.reattach_token = opt_string(f, F_reattach_token);
            break;
        }
        case index_of<EngineError>(): out.emplace<EngineError>().error = std::move(f.error); break;
        case index_of<RegistrationRejected>(): {
            // Logged, never acted on field by field: whatever is readable is kept.
            RegistrationRejected& m = out.emplace<RegistrationRejected>();
            m.code = opt_string(f, F_code).value_or(std::string());
            m.function_id = opt_string(f, F_function_id);
            m.owner_worker_id = opt_string(f, F_owner_worker_id);
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

class FrameWriter {
public:
    explicit FrameWriter(JsonWriter& w) : w_(w) {}

    void begin(const Message& m) { begin(m.index()); }
    void begin(std::size_t index) {
        w_.StartObject();
        string("type", type_names[index]);
    }
    void end() { w_.EndObject(); }

    // Every key written here is one of the protocol's field names (a literal): plain ASCII,
    // copied without a check.
    void key(std::string_view k) { w_.plain_string(k); }
    // Runs `write` (which writes the member `step`); an invalid UTF-8 string below it gets
    // `step` prepended to its path on the way out.
    template <class F>
    void at(std::string_view step, F&& write) {
        try {
            write();
        } catch (InvalidUtf8& e) {
            e.prepend_key(step);
            throw;
        }
    }
    void string(std::string_view k, std::string_view v) {
        at(k, [&] {
            key(k);
            write_string(w_, v);
        });
    }
    void opt_string(std::string_view k, const std::optional<std::string>& v) {
        if (v) string(k, *v);
    }
    void json(std::string_view k, const Value& v) {
        at(k, [&] {
            key(k);
            write_value(w_, v);
        });
    }
    void opt_json(std::string_view k, const std::optional<Value>& v) {
        if (v) json(k, *v);
    }
    void error_body(std::string_view k, const RemoteError& e) {
        key(k);
        w_.StartObject();
        at(k, [&] {
            string("code", e.code);
            string("message", e.message);
            opt_string("stacktrace", e.stacktrace);
        });
        w_.EndObject();
    }
    void action(const TriggerAction& a) {
        key("action");
        w_.StartObject();
        at("action", [&] { action_body(a); });
        w_.EndObject();
    }
    void action_body(const TriggerAction& a) {
        if (const Enqueue* q = std::get_if<Enqueue>(&a)) {
            string("type", "enqueue");
            string("queue", q->queue);
        } else {
            string("type", "void");
        }
    }
    void invocation(const HttpInvocationConfig& c) {
        key("invocation");
        w_.StartObject();
        at("invocation", [&] { invocation_body(c); });
        w_.EndObject();
    }
    void invocation_body(const HttpInvocationConfig& c) {
        string("url", c.url);
        string("method", to_string(c.method));
        if (c.timeout_ms) {
            key("timeout_ms");
            w_.Uint64(*c.timeout_ms);
        }
        key("headers");
        w_.StartObject();
        at("headers", [&] {
            for (const auto& [name, value] : c.headers) string(name, value);
        });
        w_.EndObject();
        if (c.auth) {
            key("auth");
            w_.StartObject();
            at("auth", [&] { auth_body(*c.auth); });
            w_.EndObject();
        }
    }
    template <class Auth>
    void auth_body(const Auth& a) {
        std::visit(
            [&](const auto& auth) {
                using T = std::decay_t<decltype(auth)>;
                if constexpr (std::is_same_v<T, HmacAuth>) {
                    string("type", "hmac");
                    string("secret_key", auth.secret_key);
                } else if constexpr (std::is_same_v<T, BearerAuth>) {
                    string("type", "bearer");
                    string("token_key", auth.token_key);
                } else {
                    string("type", "api_key");
                    string("header", auth.header);
                    string("value_key", auth.value_key);
                }
            },
            a);
    }

    // One overload per message; field order follows the spec's examples.
    void operator()(const RegisterFunction& m) {
        const RegisterFunctionMessage& f = m.message;
        string("id", f.id);
        opt_string("description", f.description);
        opt_json("request_format", f.request_format);
        opt_json("response_format", f.response_format);
        opt_json("metadata", f.metadata);
        if (f.invocation) invocation(*f.invocation);
    }
    void operator()(const UnregisterFunction& m) { string("id", m.id); }
    void operator()(const RegisterTriggerType& m) {
        string("id", m.id);
        string("description", m.description);
        opt_json("trigger_request_format", m.trigger_request_format);
        opt_json("call_request_format", m.call_request_format);
        opt_string("namespace", m.ns);
    }
    void operator()(const UnregisterTriggerType& m) { string("id", m.id); }
    void operator()(const RegisterTrigger& m) {
        string("id", m.id);
        string("trigger_type", m.trigger_type);
        string("function_id", m.function_id);
        json("config", m.config);
        opt_json("metadata", m.metadata);
        opt_string("namespace", m.ns);
        opt_string("trigger_namespace", m.trigger_namespace);
    }
    void operator()(const UnregisterTrigger& m) {
        string("id", m.id);
        opt_string("trigger_type", m.trigger_type);
    }
    void operator()(const TriggerRegistrationResult& m) {
        string("id", m.id);
        string("trigger_type", m.trigger_type);
        string("function_id", m.function_id);
        if (m.error) error_body("error", *m.error);
    }
    void operator()(const InvokeFunction& m) { invoke(m, nullptr); }
    // `id`, when given, is written instead of m.invocation_id.
    void invoke(const InvokeFunction& m, const std::string_view* id) {
        // Always present, null for fire-and-forget: the Rust SDK's form.
        if (id) {
            string("invocation_id", *id);
        } else if (m.invocation_id) {
            string("invocation_id", *m.invocation_id);
        } else {
            key("invocation_id");
            w_.Null();
        }
        string("function_id", m.function_id);
        json("data", m.data);
        opt_string("traceparent", m.traceparent);
        opt_string("baggage", m.baggage);
        if (m.action) action(*m.action);
        opt_json("metadata", m.metadata);
        opt_string("namespace", m.ns);
    }
    void operator()(const InvocationResult& m) {
        string("invocation_id", m.invocation_id);
        string("function_id", m.function_id);
        // `error` present means failure to every reader, so never send both.
        if (m.error)
            error_body("error", *m.error);
        else
            opt_json("result", m.result);
        opt_string("traceparent", m.traceparent);
        opt_string("baggage", m.baggage);
    }
    void operator()(const RegisterService& m) {
        const RegisterServiceMessage& s = m.message;
        string("id", s.id);
        string("name", s.name);
        opt_string("description", s.description);
        opt_string("parent_service_id", s.parent_service_id);
    }
    void operator()(const Ping&) {}
    void operator()(const Pong&) {}
    void operator()(const WorkerRegistered& m) {
        string("worker_id", m.worker_id);
        opt_string("reattach_token", m.reattach_token);
    }
    void operator()(const EngineError& m) { error_body("error", m.error); }
    void operator()(const RegistrationRejected& m) {
        string("code", m.code);
        opt_string("function_id", m.function_id);
        opt_string("owner_worker_id", m.owner_worker_id);
    }

private:
    JsonWriter& w_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Decoder

struct Decoder::Impl {
    ondemand::parser parser;
    PaddedBuffer buffer;
    // Storage of finished invocations (Decoder::recycle): as many as calls in flight may use
    // at once, up to max_spares each.
    SparePayloads spare_data;
    std::vector<std::string> spare_id;
    std::vector<std::string> spare_traceparent;
};

Decoder::Decoder() : impl_(std::make_unique<Impl>()) {}
Decoder::~Decoder() = default;

bool Decoder::decode(std::string_view frame, Message& out, DecodeFailure& failure) {
    Impl& im = *impl_;
    // On every exit, after `out` and `failure` hold their own copies.
    struct Trim {
        Impl& im;
        ~Trim() { trim_after_parse(im.parser, im.buffer); }
    } trim{im};
    Fields f;
    f.spare_data = &im.spare_data;
    f.spare_id = &im.spare_id;
    f.spare_traceparent = &im.spare_traceparent;
    int kind = -1;
    std::uint32_t wanted = ~std::uint32_t{0};  // until `type` is known, read every field

    auto fail = [&](std::string reason) {
        failure.reason = std::move(reason);
        failure.type = kind >= 0 ? std::string(type_names[kind])
                                 : std::string(f.strings[F_type]);
        if ((f.present & bit(F_invocation_id)) && !(f.null & bit(F_invocation_id)))
            failure.invocation_id.emplace(f.invocation_id, sizeof f.invocation_id);
        else
            failure.invocation_id.reset();
        return false;
    };
    auto prefix = [&] { return kind >= 0 ? fmt::format("{}: ", type_names[kind]) : std::string(); };

    const simdjson::padded_string_view input = im.buffer.load(frame);
    ondemand::document doc;
    if (auto e = im.parser.iterate(input).get(doc))
        return fail(describe_error(e, nullptr, im.buffer.data()));
    ondemand::object object;
    if (auto e = doc.get_object().get(object)) {
        if (e == simdjson::INCORRECT_TYPE) return fail("frame is not a JSON object");
        return fail(describe_error(e, &doc, im.buffer.data()));
    }

    error_code e = simdjson::SUCCESS;
    for (auto field : object) {
        std::string_view key;
        if ((e = field.unescaped_key().get(key))) break;
        const Field id = find_field(key);
        if (id == F_count || !(wanted & bit(id))) continue;  // skipped unread by the iterator
        ondemand::value value;
        if ((e = field.value().get(value))) break;
        if ((e = read_field(value, id, f))) break;
        if (id == F_type && (f.present & bit(F_type)) && !(f.null & bit(F_type))) {
            kind = find_type(f.strings[F_type]);
            if (kind < 0) return fail(fmt::format("unknown message type `{}`", f.strings[F_type]));
            wanted = fields_of[kind];
        }
    }
    // On-demand never looks past the closing brace on its own: `{...} x` needs asking.
    if (!e && doc.current_location().error() != simdjson::OUT_OF_BOUNDS)
        e = simdjson::TRAILING_CONTENT;
    if (e) return fail(prefix() + describe_error(e, &doc, im.buffer.data()));

    if (kind < 0) {
        if (f.bad & bit(F_type)) return fail("field `type`: expected a string");
        if (f.null & bit(F_type)) return fail("field `type`: expected a string, got null");
        return fail("missing field `type`");
    }

    if (kind != static_cast<int>(registration_rejected_index)) {
        const std::uint32_t relevant = fields_of[kind];
        if (const std::uint32_t bad = f.bad & relevant) {
            const Field id = static_cast<Field>(lowest_bit(bad));
            const Problem& p = f.problems[id];
            std::string reason = fmt::format("{}field `{}`: ", prefix(), field_names[id]);
            if (!p.sub.empty()) reason += fmt::format("field `{}`: ", p.sub);
            reason += p.what;
            if (!p.detail.empty()) reason += fmt::format(" `{}`", p.detail);
            return fail(std::move(reason));
        }
        const std::uint32_t required = required_of[kind];
        if (const std::uint32_t missing = required & ~f.present) {
            const Field id = static_cast<Field>(lowest_bit(missing));
            return fail(fmt::format("{}missing field `{}`", prefix(), field_names[id]));
        }
        if (const std::uint32_t nulls = required & f.null & ~null_allowed) {
            const Field id = static_cast<Field>(lowest_bit(nulls));
            return fail(fmt::format("{}field `{}`: expected {}, got null", prefix(),
                                    field_names[id], expected_of(id)));
        }
    }

    build(static_cast<std::size_t>(kind), f, out);
    return true;
}

bool Decoder::recycle(Value payload, std::string invocation_id, std::optional<std::string> traceparent) {
    Impl& im = *impl_;
    // Enough for the calls in flight that one read delivers; the strings are small, the
    // payloads bounded in total too (SparePayloads).
    constexpr std::size_t max_spares = SparePayloads::max_count, id_size = 36;
    bool kept = im.spare_data.keep(std::move(payload));
    if (im.spare_id.size() < max_spares && invocation_id.capacity() >= id_size && invocation_id.capacity() <= 64) {
        im.spare_id.push_back(std::move(invocation_id));
        kept = true;
    }
    // A W3C traceparent has 55 characters (a later version may append more).
    constexpr std::size_t traceparent_size = 55;
    if (traceparent && im.spare_traceparent.size() < max_spares && traceparent->capacity() >= traceparent_size &&
        traceparent->capacity() <= 2 * traceparent_size) {
        im.spare_traceparent.push_back(std::move(*traceparent));
        kept = true;
    }
    return kept;
}

// ---------------------------------------------------------------------------------------------
// Encoder

struct Encoder::Impl {
    rapidjson::StringBuffer buffer;
    JsonWriter writer{buffer};
};

Encoder::Encoder() : impl_(std::make_unique<Impl>()) {}
Encoder::~Encoder() = default;

namespace {

// What answers the caller when a reply cannot be encoded: an error reply whose every string is
// valid UTF-8. A handler's own error keeps its code and message (invalid bytes become U+FFFD);
// a result becomes invocation_failed naming where the bad string was.
template <class Reply>
Reply encodable_reply(const Reply& reply, const InvalidUtf8& failure) {
    Reply out = reply;
    const auto clean = [](std::string& s) { s = replace_invalid_utf8(s); };
    if constexpr (std::is_same_v<Reply, InvocationResult>) {
        clean(out.invocation_id);
        clean(out.function_id);
        if (out.traceparent) clean(*out.traceparent);
        if (out.baggage) clean(*out.baggage);
        out.result.reset();
    } else {
        clean(out.id);
        clean(out.trigger_type);
        clean(out.function_id);
    }
    if (out.error) {
        clean(out.error->code);
        clean(out.error->message);
        if (out.error->stacktrace) clean(*out.error->stacktrace);
    } else {
        out.error = RemoteError{"invocation_failed",
                                fmt::format("the result of {} cannot be sent: {}", out.function_id,
                                            failure.describe()),
                                std::nullopt};
    }
    return out;
}

}  // namespace

std::string_view Encoder::encode(const Message& message) {
    Impl& im = *impl_;
    trim_after_write(im.buffer);  // the previous frame's view is no longer in use
    const auto write = [&](const Message& m) {
        im.buffer.Clear();
        im.writer.Reset(im.buffer);  // also recovers a writer left half-way by a failed encode
        FrameWriter w(im.writer);
        w.begin(m);
        std::visit(w, m);
        w.end();
    };
    try {
        write(message);
    } catch (const InvalidUtf8& e) {
        if (const auto* reply = std::get_if<InvocationResult>(&message))
            write(encodable_reply(*reply, e));
        else if (const auto* result = std::get_if<TriggerRegistrationResult>(&message))
            write(encodable_reply(*result, e));
        else
            throw Error(Errc::Serde, fmt::format("cannot encode {}: {}", type_name(message), e.describe()));
    }
    return {im.buffer.GetString(), im.buffer.GetSize()};
}

std::string_view Encoder::encode(const InvokeFunction& message) { return encode_invoke(message, nullptr); }

std::string_view Encoder::encode(const InvokeFunction& message, std::string_view invocation_id) {
    return encode_invoke(message, &invocation_id);
}

std::string_view Encoder::encode_invoke(const InvokeFunction& message, const std::string_view* invocation_id) {
    Impl& im = *impl_;
    trim_after_write(im.buffer);
    im.buffer.Clear();
    im.writer.Reset(im.buffer);
    FrameWriter w(im.writer);
    try {
        w.begin(index_of<InvokeFunction>());
        w.invoke(message, invocation_id);
        w.end();
    } catch (const InvalidUtf8& e) {
        throw Error(Errc::Serde,
                    fmt::format("cannot encode {}: {}", type_names[index_of<InvokeFunction>()], e.describe()));
    }
    return {im.buffer.GetString(), im.buffer.GetSize()};
}

std::string_view Encoder::encode(const InvocationResult& message) {
    Impl& im = *impl_;
    trim_after_write(im.buffer);
    const auto write = [&](const InvocationResult& m) {
        im.buffer.Clear();
        im.writer.Reset(im.buffer);
        FrameWriter w(im.writer);
        w.begin(index_of<InvocationResult>());
        w(m);
        w.end();
    };
    try {
        write(message);
    } catch (const InvalidUtf8& e) {
        write(encodable_reply(message, e));
    }
    return {im.buffer.GetString(), im.buffer.GetSize()};
}

void check_encodable(const Message& message) {
    thread_local Encoder scratch;
    (void)scratch.encode(message);
}

// ---------------------------------------------------------------------------------------------
// Free functions

std::optional<std::string> canonical_uuid(std::string_view text) {
    char out[36];
    if (!canonicalize_uuid(text, out)) return std::nullopt;
    return std::string(out, sizeof out);
}

InvocationId new_invocation_id() {
    InvocationId id;
    write_uuid(id.data());
    id.resize(InvocationId::capacity);
    return id;
}

std::string new_uuid() {
    std::string out(36, '-');
    write_uuid(out.data());
    return out;
}

void write_uuid(char* out) {
    // Seeded once per thread from the OS; mt19937_64 is not cryptographic, which is fine for
    // ids that only need to be unique (the reference SDKs use v4 the same way).
    thread_local std::mt19937_64 rng = [] {
        std::random_device device;
        std::seed_seq seed{device(), device(), device(), device(),
                           device(), device(), device(), device()};
        return std::mt19937_64(seed);
    }();
    std::uint64_t hi = rng();
    std::uint64_t lo = rng();
    hi = (hi & ~(std::uint64_t{0xF} << 12)) | (std::uint64_t{0x4} << 12);  // version 4
    lo = (lo & ~(std::uint64_t{0x3} << 62)) | (std::uint64_t{0x2} << 62);  // RFC 4122 variant
    char digits[32];
    swar::write_hex64(hi, digits);
    swar::write_hex64(lo, digits + 16);
    // 8-4-4-4-12
    std::memcpy(out, digits, 8);
    out[8] = '-';
    std::memcpy(out + 9, digits + 8, 4);
    out[13] = '-';
    std::memcpy(out + 14, digits + 12, 4);
    out[18] = '-';
    std::memcpy(out + 19, digits + 16, 4);
    out[23] = '-';
    std::memcpy(out + 24, digits + 20, 12);
}

const char* type_name(const Message& message) noexcept {
    return type_names[message.index()].data();
}

Value worker_metadata_payload(const WorkerMetadata& metadata,
                              const std::optional<std::string>& worker_namespace) {
    Value data = Value::object();
    data.set("runtime", metadata.runtime);
    data.set("version", metadata.version);
    data.set("name", metadata.name);
    data.set("os", metadata.os);
    if (metadata.pid) data.set("pid", *metadata.pid);
    if (metadata.telemetry) {
        Value telemetry = Value::object();
        const auto& t = *metadata.telemetry;
        if (t.language) telemetry.set("language", *t.language);
        if (t.project_name) telemetry.set("project_name", *t.project_name);
        if (t.framework) telemetry.set("framework", *t.framework);
        if (t.amplitude_api_key) telemetry.set("amplitude_api_key", *t.amplitude_api_key);
        data.set("telemetry", std::move(telemetry));
    }
    if (metadata.description) data.set("description", *metadata.description);
    if (metadata.isolation) data.set("isolation", *metadata.isolation);
    if (worker_namespace) data.set("namespace", *worker_namespace);
    return data;
}

}  // namespace iii::detail::protocol
