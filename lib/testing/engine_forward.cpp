// The hot path of the test engine: invokefunction and invocationresult between workers, routed
// by peeking at their routing fields with simdjson on-demand and forwarded as spliced text, with
// no Value DOM and no re-encoding.
//
// The forwarded text must be byte for byte what the full path (decode, `sorted`, Encoder)
// produces, so a frame is taken here only when its payloads are already in that form: compact,
// object keys strictly ascending at every level, strings and numbers as RapidJSON writes them.
// Anything else (other frames, malformed or unusual ones, unknown functions, built-ins, void
// calls, errors, frames for the engine itself) is left to the full path, untouched: nothing
// here changes state until the frame is known to be taken.

#include "testing/engine_impl.hpp"

#include "json_internal.hpp"

#include <array>
#include <bit>
#include <charconv>
#include <cstring>

namespace iii::testing {

namespace {

namespace ondemand = simdjson::ondemand;
using iii::detail::PaddedBuffer;
constexpr std::size_t npos = std::string_view::npos;
// Deeper payloads take the full path (which accepts up to iii::detail::max_json_depth).
constexpr int max_fast_depth = 64;
constexpr std::string_view caller_key = "_caller_worker_id";
using namespace std::string_view_literals;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim_right(std::string_view s) {
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

// A high bit set in (at least) the byte of the first '"', '\\' or control character of the 8
// bytes of `w` (little-endian), and in no byte before it: borrows only travel upwards.
std::uint64_t special_bytes(std::uint64_t w) {
    constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    const std::uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
    return (((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) |
            ((w - ones * 0x20) & ~w)) &
           highs;
}

/// Length of the JSON string token at `p` (its opening quote), or npos when RapidJSON would not
/// write it so: only the escapes it writes itself (\" \\ \n \t \r \b \f) are accepted. Sets
/// `escaped` when there is any. Never reads past the buffer: simdjson's padding is zeros
/// (control characters, which stop the scan) and the 8-byte loads stay inside it.
std::size_t string_token(const char* p, bool& escaped) {
    const char* q = p + 1;
    for (;;) {
        if constexpr (std::endian::native == std::endian::little) {
            std::uint64_t w;
            std::memcpy(&w, q, sizeof w);
            const std::uint64_t special = special_bytes(w);
            if (!special) {
                q += sizeof w;
                continue;
            }
            q += std::countr_zero(special) / 8;
        }
        const char c = *q;
        if (c == '"') return static_cast<std::size_t>(q - p + 1);
        if (c == '\\') {
            switch (q[1]) {
                case '"': case '\\': case 'n': case 't': case 'r': case 'b': case 'f':
                    escaped = true;
                    q += 2;
                    continue;
                default: return npos;  // \u, \/: RapidJSON writes those characters otherwise
            }
        }
        if (static_cast<unsigned char>(c) < 0x20) return npos;
        ++q;  // (big-endian: byte by byte)
    }
}

/// A string value with no escapes at all (identifiers: function ids, trace headers, ...), as the
/// text between its quotes; nullopt otherwise.
std::optional<std::string_view> plain_string(ondemand::value& v) {
    const std::string_view token = v.raw_json_token();
    if (token.empty() || token.front() != '"') return std::nullopt;
    bool escaped = false;
    const std::size_t n = string_token(token.data(), escaped);
    if (n == npos || escaped) return std::nullopt;
    return token.substr(1, n - 2);
}

bool is_null_token(ondemand::value& v) { return trim_right(v.raw_json_token()) == "null"; }

/// True when `s` goes out between quotes unchanged (no character RapidJSON escapes).
bool needs_no_escape(std::string_view s) {
    for (char c : s)
        if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) return false;
    return true;
}

/// Already in the form proto::canonical_uuid() returns (lower-case, hyphenated).
bool is_canonical_uuid(std::string_view s) {
    static constexpr auto hex = [] {
        std::array<bool, 256> t{};
        for (char c : std::string_view("0123456789abcdef")) t[static_cast<unsigned char>(c)] = true;
        return t;
    }();
    if (s.size() != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
        return false;
    bool ok = true;
    for (std::size_t i = 0; i < s.size(); ++i)
        ok &= hex[static_cast<unsigned char>(s[i])] || i == 8 || i == 13 || i == 18 || i == 23;
    return ok;
}

void append_quoted(std::string& out, std::string_view s) {
    out.push_back('"');
    out.append(s);
    out.push_back('"');
}

}  // namespace

/// The parser and buffers of the hot path (one io thread uses them).
struct Engine::Impl::FastPath {
    ondemand::parser parser;
    PaddedBuffer buffer;
    rapidjson::StringBuffer number_text;  // a float as write_value() writes it

    /// Where `_caller_worker_id` goes in a payload object.
    struct Splice {
        std::size_t at = npos;  // offset of the first key that sorts after it; npos: at the end
        bool empty = true;      // the object has no member
    };

    /// Reads one value at `p` in the form read_value + sort_keys + write_value would give it
    /// (compact, keys strictly ascending, strings and numbers as RapidJSON writes them) and
    /// moves `p` past it; false when it is not in that form. `end`: where the value must end.
    /// With `splice`, the value is the payload object: where the caller's id goes is recorded
    /// (offsets from `base`), and a payload that already has one is refused (the full path
    /// replaces it).
    bool canonical(const char*& p, const char* end, int depth, const char* base, Splice* splice) {
        if (p >= end) return false;
        switch (*p) {
            case '{': {
                if (depth >= max_fast_depth) return false;
                ++p;
                if (p < end && *p == '}') {
                    ++p;
                    return true;
                }
                std::string_view previous;
                for (bool first = true;; first = false) {
                    if (p >= end || *p != '"') return false;
                    bool escaped = false;
                    const std::size_t n = string_token(p, escaped);
                    if (n == npos || escaped) return false;
                    const std::string_view key(p + 1, n - 2);
                    // Strictly ascending: sorted, and no duplicate (which the DOM would keep).
                    if (!first && !(previous < key)) return false;
                    if (splice) {
                        if (key == caller_key) return false;
                        if (splice->at == npos && caller_key < key)
                            splice->at = static_cast<std::size_t>(p - base);
                        splice->empty = false;
                    }
                    previous = key;
                    p += n;
                    if (p >= end || *p != ':') return false;
                    ++p;
                    if (!canonical(p, end, depth + 1, base, nullptr)) return false;
                    if (p >= end) return false;
                    if (*p == '}') {
                        ++p;
                        return true;
                    }
                    if (*p != ',') return false;
                    ++p;
                }
            }
            case '[': {
                if (depth >= max_fast_depth) return false;
                ++p;
                if (p < end && *p == ']') {
                    ++p;
                    return true;
                }
                for (;;) {
                    if (!canonical(p, end, depth + 1, base, nullptr)) return false;
                    if (p >= end) return false;
                    if (*p == ']') {
                        ++p;
                        return true;
                    }
                    if (*p != ',') return false;
                    ++p;
                }
            }
            case '"': {
                bool escaped = false;
                const std::size_t n = string_token(p, escaped);
                if (n == npos) return false;
                p += n;
                return p <= end;
            }
            case 't': return literal(p, end, "true");
            case 'f': return literal(p, end, "false");
            case 'n': return literal(p, end, "null");
            default: return number(p, end);
        }
    }

    static bool literal(const char*& p, const char* end, std::string_view word) {
        if (static_cast<std::size_t>(end - p) < word.size() ||
            std::memcmp(p, word.data(), word.size()) != 0)
            return false;
        p += word.size();
        return true;
    }

    /// An integer that reads back as Int (at most 18 digits, no leading zero, not -0), or a
    /// float whose text is what write_value() writes for it.
    bool number(const char*& p, const char* end) {
        const char* q = p;
        if (q < end && *q == '-') ++q;
        const char* digits = q;
        while (q < end && *q >= '0' && *q <= '9') ++q;
        const std::size_t n = static_cast<std::size_t>(q - digits);
        if (n == 0) return false;
        const bool more = q < end && (*q == '.' || *q == 'e' || *q == 'E');
        if (!more) {
            if (n > 18 || (digits[0] == '0' && (n > 1 || digits != p))) return false;
            p = q;
            return true;
        }
        while (q < end && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' ||
                           *q == '-' || *q == '+'))
            ++q;
        const std::string_view token(p, static_cast<std::size_t>(q - p));
        double d = 0;
        const auto [stop, ec] = std::from_chars(token.data(), token.data() + token.size(), d);
        if (ec != std::errc() || stop != token.data() + token.size()) return false;
        number_text.Clear();
        iii::detail::JsonWriter writer(number_text);
        iii::detail::write_value(writer, Value(d));
        if (std::string_view(number_text.GetString(), number_text.GetSize()) != token) return false;
        p = q;
        return true;
    }

    /// The canonical text of a payload value (`v`, consumed), or nullopt.
    std::optional<std::string_view> payload(ondemand::value& v, Splice* splice) {
        std::string_view text;
        if (simdjson::to_json_string(v).get(text) != simdjson::SUCCESS) return std::nullopt;
        text = trim_right(text);
        const char* p = text.data();
        const char* end = p + text.size();
        if (!canonical(p, end, 0, text.data(), splice) || p != end) return std::nullopt;
        return text;
    }
};

void Engine::Impl::FastPathDeleter::operator()(FastPath* p) const { delete p; }

bool Engine::Impl::forward_fast(Worker& worker, std::string_view frame) {
    if (!fast) fast.reset(new FastPath);
    FastPath& f = *fast;
    struct Trim {
        FastPath& f;
        ~Trim() { iii::detail::trim_after_parse(f.parser, f.buffer); }
    } trim{f};

    ondemand::document doc;
    if (f.parser.iterate(f.buffer.load(frame)).get(doc) != simdjson::SUCCESS) return false;
    ondemand::object object;
    if (doc.get_object().get(object) != simdjson::SUCCESS) return false;

    enum Kind { Unknown, Invoke, Result } kind = Unknown;
    std::optional<std::string_view> invocation_id, function_id, traceparent, baggage, ns;
    std::optional<std::string_view> data, metadata, result;
    FastPath::Splice splice;
    bool data_object = false;
    // A field twice: the full path takes the last one; simpler to leave such frames to it.
    std::uint32_t seen = 0;
    auto once = [&](int bit) {
        if (seen & (1u << bit)) return false;
        seen |= 1u << bit;
        return true;
    };
    // Reads an optional identifier (string without escapes, or null for absent).
    auto optional_plain = [&](ondemand::value& v, std::optional<std::string_view>& out) {
        if (is_null_token(v)) return true;
        out = plain_string(v);
        return out.has_value();
    };

    for (auto member : object) {
        ondemand::field field;
        if (std::move(member).get(field) != simdjson::SUCCESS) return false;
        const char* quote = field.key().raw() - 1;
        bool escaped = false;
        const std::size_t key_length = string_token(quote, escaped);
        if (key_length == npos || escaped) return false;
        const std::string_view key(quote + 1, key_length - 2);
        ondemand::value& v = field.value();
        if (kind == Unknown) {
            // `type` first, as every SDK writes it; otherwise the full path sorts it out.
            if (key != "type") return false;
            const auto type = plain_string(v);
            if (type == "invokefunction")
                kind = Invoke;
            else if (type == "invocationresult")
                kind = Result;
            else
                return false;
            continue;
        }
        // Only the fields the decoder reads for this type; the others it skips unread, so do we.
        if (key == "invocation_id") {
            if (!once(0) || !(invocation_id = plain_string(v))) return false;
        } else if (key == "function_id") {
            if (!once(1) || !(function_id = plain_string(v))) return false;
        } else if (key == "traceparent") {
            if (!once(2) || !optional_plain(v, traceparent)) return false;
        } else if (key == "baggage") {
            if (!once(3) || !optional_plain(v, baggage)) return false;
        } else if (kind == Invoke && key == "data") {
            if (!once(4)) return false;
            data_object = v.raw_json_token().starts_with('{');
            if (!(data = f.payload(v, data_object ? &splice : nullptr))) return false;
        } else if (kind == Invoke && key == "metadata") {
            if (!once(5)) return false;
            if (!is_null_token(v) && !(metadata = f.payload(v, nullptr))) return false;
        } else if (kind == Invoke && key == "namespace") {
            if (!once(6) || !optional_plain(v, ns)) return false;
        } else if (kind == Invoke && key == "action") {
            // Void and enqueue calls are rare: the full path.
            if (!once(7) || !is_null_token(v)) return false;
        } else if (kind == Result && key == "result") {
            if (!once(8)) return false;
            if (!is_null_token(v) && !(result = f.payload(v, nullptr))) return false;
        } else if (kind == Result && key == "error") {
            if (!once(9) || !is_null_token(v)) return false;
        }
    }
    // On-demand never looks past the closing brace on its own (see Decoder::decode).
    if (doc.current_location().error() != simdjson::OUT_OF_BOUNDS) return false;
    // A call without an id is a void call (fresh id): the full path.
    if (!invocation_id || !function_id) return false;
    char id[36];
    if (is_canonical_uuid(*invocation_id)) {
        std::memcpy(id, invocation_id->data(), sizeof id);  // what SDKs send: no allocation
    } else {
        const auto canonical = proto::canonical_uuid(*invocation_id);
        if (!canonical) return false;
        std::memcpy(id, canonical->data(), sizeof id);
    }
    const std::string_view id_view(id, sizeof id);

    if (kind == Invoke) {
        if (!data) return false;
        std::string id_in_ns(*function_id);  // qualify(ns, id) without temporaries
        if (since_0_23() && ns && *ns != "default") id_in_ns = qualify(std::string(*ns), id_in_ns);
        auto it = functions.find(id_in_ns);
        if (it == functions.end()) return false;
        const Function& function = it->second;
        if (function.builtin || function.invocation) return false;
        Worker* callee = find_worker(function.owner);
        if (!callee) return false;

        // Taken: the same state changes as invoke_from_worker + dispatch.
        std::string invocation(id_view);
        worker.invocations.insert(invocation);
        callee->invocations.insert(invocation);
        Pending& p = pending[invocation];
        p = Pending{std::string(*function_id), worker.id, callee->id,
                    traceparent ? std::optional<std::string>(*traceparent) : std::nullopt,
                    baggage ? std::optional<std::string>(*baggage) : std::nullopt,
                    {}};

        std::string out;
        out.reserve(frame.size() + caller_key.size() + worker.id.size() + 64);
        out.append(R"({"type":"invokefunction","invocation_id":")"sv);
        out += id_view;
        out.append(R"(","function_id":)"sv);
        append_quoted(out, *function_id);
        out.append(R"(,"data":)"sv);
        if (data_object) {
            const std::string_view text = *data;
            // `"_caller_worker_id":"<id>"` at its sorted place (worker ids need no escaping).
            const std::size_t at = splice.at == npos ? text.size() - 1 : splice.at;
            out += text.substr(0, at);
            if (splice.at == npos && !splice.empty) out += ',';
            out += '"';
            out += caller_key;
            out.append(R"(":")"sv);
            out += worker.id;
            out += '"';
            if (splice.at != npos) out += ',';
            out += text.substr(at);
        } else {
            out += *data;  // not an object: forwarded unchanged
        }
        if (traceparent) {
            out.append(R"(,"traceparent":)"sv);
            append_quoted(out, *traceparent);
        }
        if (baggage) {
            out.append(R"(,"baggage":)"sv);
            append_quoted(out, *baggage);
        }
        if (metadata && since_0_22()) {  // 0.10 drops it
            out.append(R"(,"metadata":)"sv);
            out += *metadata;
        }
        out += '}';
        send_text(*callee, std::move(out));
        return true;
    }

    // kind == Result
    auto it = pending.find(std::string(id_view));
    if (it == pending.end()) return false;
    const Pending& p = it->second;
    if (p.caller.empty()) return false;  // the engine's own call: its consumer runs
    Worker* caller = find_worker(p.caller);
    if (!caller) return false;
    // What the caller sent is echoed back; text that needs escaping takes the full path.
    if (!needs_no_escape(p.function_id) || (p.traceparent && !needs_no_escape(*p.traceparent)) ||
        (p.baggage && !needs_no_escape(*p.baggage)))
        return false;

    // Taken: the same state changes as invocation_result.
    std::string out;
    out.reserve(frame.size() + 64);
    out.append(R"({"type":"invocationresult","invocation_id":")"sv);
    out += id_view;
    out.append(R"(","function_id":)"sv);
    append_quoted(out, p.function_id);
    if (result) {  // a null result is no result (spec 9.10)
        out.append(R"(,"result":)"sv);
        out += *result;
    }
    if (p.traceparent) {
        out.append(R"(,"traceparent":)"sv);
        append_quoted(out, *p.traceparent);
    }
    if (p.baggage) {
        out.append(R"(,"baggage":)"sv);
        append_quoted(out, *p.baggage);
    }
    out += '}';
    worker.invocations.erase(it->first);
    caller->invocations.erase(it->first);
    pending.erase(it);
    send_text(*caller, std::move(out));
    return true;
}

}  // namespace iii::testing
