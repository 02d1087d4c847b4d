// The hot path of the test engine: invokefunction and invocationresult between workers, routed
// by reading their routing fields in one pass over the text and forwarded as spliced text, with
// no parser, no Value DOM and no re-encoding. The frame is valid UTF-8 already: the transport
// validates every text message once and closes with 1007 otherwise (RFC 6455 8.1).
//
// The forwarded text must be byte for byte what the full path (decode, `sorted`, Encoder)
// produces, so a frame is taken here only when its payloads are already in that form: compact,
// object keys strictly ascending at every level, strings and numbers as RapidJSON writes them.
// Anything else (other frames, malformed or unusual ones, unknown functions, built-ins, void
// calls, errors, frames for the engine itself) is left to the full path, untouched: nothing
// here changes state until the frame is known to be taken.

#include "testing/engine_impl.hpp"

#include "json_internal.hpp"
#include "swar.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <array>
#include <bit>
#include <charconv>
#include <cstring>

namespace iii::testing {

namespace {

using iii::detail::PaddedBuffer;
constexpr std::size_t npos = std::string_view::npos;
// Deeper payloads take the full path (which accepts up to iii::detail::max_json_depth).
constexpr int max_fast_depth = 64;
constexpr std::string_view caller_key = "_caller_worker_id";
using namespace std::string_view_literals;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

#if !defined(__SSE2__)
// A high bit set in (at least) the byte of the first '"', '\\' or control character of the 8
// bytes of `w` (little-endian), and in no byte before it: borrows only travel upwards.
std::uint64_t special_bytes(std::uint64_t w) {
    constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    const std::uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
    return (((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) |
            ((w - ones * 0x20) & ~w)) &
           highs;
}
#endif

/// Length of the JSON string token at `p` (its opening quote), or npos when RapidJSON would not
/// write it so: only the escapes it writes itself (\" \\ \n \t \r \b \f) are accepted. Sets
/// `escaped` when there is any. Never reads past the buffer: simdjson's padding is zeros
/// (control characters, which stop the scan) and the 16-byte loads stay inside it.
std::size_t string_token(const char* p, bool& escaped) {
    const char* q = p + 1;
    for (;;) {
#if defined(__SSE2__)
        // 16 bytes a step (SSE2 is in every x86-64 baseline): most tokens are ids and trace
        // headers of 36 to 55 bytes, and this scan is the largest part of routing a frame.
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
        const __m128i control = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
        const __m128i hits = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                       _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                                          control);
        const unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(hits));
        if (!mask) {
            q += 16;
            continue;
        }
        q += std::countr_zero(mask);
#else
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
#endif
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
        ++q;  // (the portable fallback on big-endian: byte by byte)
    }
}

bool is_hex(char c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

/// Moves `p` (at most at the frame's end) past whitespace. The frame is followed by zeros (the
/// buffer's padding), which stop the loop: no bound check per byte.
void skip_space(const char*& p) {
    while (is_space(*p)) ++p;
}

/// A JSON string token of any form at `p` (its opening quote; every escape JSON allows), moved
/// past; false when it is not one.
bool any_string(const char*& p, const char* end) {
    const char* q = p + 1;
    for (;;) {
        if (q >= end) return false;
        const char c = *q;
        if (c == '"') {
            p = q + 1;
            return true;
        }
        if (static_cast<unsigned char>(c) < 0x20) return false;
        if (c != '\\') {
            ++q;
            continue;
        }
        if (end - q < 2) return false;
        switch (q[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                q += 2;
                break;
            case 'u':
                if (end - q < 6 || !is_hex(q[2]) || !is_hex(q[3]) || !is_hex(q[4]) || !is_hex(q[5]))
                    return false;
                q += 6;
                break;
            default: return false;
        }
    }
}

/// A JSON number of any form (RFC 8259 6) at `p`, moved past; false when it is not one.
bool any_number(const char*& p, const char* end) {
    const char* q = p;
    auto digits = [&] {
        const char* from = q;
        while (q < end && *q >= '0' && *q <= '9') ++q;
        return q != from;
    };
    if (q < end && *q == '-') ++q;
    if (q < end && *q == '0')
        ++q;
    else if (!digits())
        return false;
    if (q < end && *q == '.') {
        ++q;
        if (!digits()) return false;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        ++q;
        if (q < end && (*q == '+' || *q == '-')) ++q;
        if (!digits()) return false;
    }
    p = q;
    return true;
}

bool literal(const char*& p, const char* end, std::string_view word) {
    if (static_cast<std::size_t>(end - p) < word.size() || std::memcmp(p, word.data(), word.size()) != 0)
        return false;
    p += word.size();
    return true;
}

/// One JSON value of any form at `p` (whitespace inside allowed), validated and moved past: a
/// field the decoder skips unread. Stricter than that skip (which does not look inside
/// strings and numbers), so a frame accepted here is one the full path accepts too.
bool any_value(const char*& p, const char* end, int depth) {
    if (p >= end) return false;
    const char open = *p;
    if (open == '{' || open == '[') {
        if (depth >= max_fast_depth) return false;
        const char close = open == '{' ? '}' : ']';
        ++p;
        skip_space(p);
        if (p < end && *p == close) {
            ++p;
            return true;
        }
        for (;;) {
            if (open == '{') {
                if (p >= end || *p != '"' || !any_string(p, end)) return false;
                skip_space(p);
                if (p >= end || *p != ':') return false;
                ++p;
                skip_space(p);
            }
            if (!any_value(p, end, depth + 1)) return false;
            skip_space(p);
            if (p >= end) return false;
            if (*p == close) {
                ++p;
                return true;
            }
            if (*p != ',') return false;
            ++p;
            skip_space(p);
        }
    }
    switch (open) {
        case '"': return any_string(p, end);
        case 't': return literal(p, end, "true");
        case 'f': return literal(p, end, "false");
        case 'n': return literal(p, end, "null");
        default: return any_number(p, end);
    }
}

/// True when `s` goes out between quotes unchanged (no character RapidJSON escapes).
bool needs_no_escape(std::string_view s) {
    for (char c : s)
        if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) return false;
    return true;
}

/// Already in the form proto::canonical_uuid() returns (lower-case, hyphenated).
bool is_canonical_uuid(std::string_view s) { return s.size() == 36 && iii::detail::swar::canonical_uuid(s.data()); }

void append_quoted(std::string& out, std::string_view s) {
    out.push_back('"');
    out.append(s);
    out.push_back('"');
}

/// The frame fields the text path reads.
enum class Field { Type, InvocationId, FunctionId, Traceparent, Baggage, Data, Metadata, Namespace, Action, Result, Error, Other };

Field field_of(std::string_view key) {
    static constexpr std::pair<std::string_view, Field> names[] = {
        {"type", Field::Type},           {"invocation_id", Field::InvocationId}, {"function_id", Field::FunctionId},
        {"traceparent", Field::Traceparent}, {"baggage", Field::Baggage},    {"data", Field::Data},
        {"metadata", Field::Metadata},   {"namespace", Field::Namespace},     {"action", Field::Action},
        {"result", Field::Result},       {"error", Field::Error},
    };
    for (const auto& [name, field] : names)
        if (key == name) return field;
    return Field::Other;
}

/// The field's place in the frame the text path writes (0: never written), to tell a frame
/// that is already in that order.
int written_rank(Field field) {
    switch (field) {
        case Field::InvocationId: return 1;
        case Field::FunctionId: return 2;
        case Field::Data:
        case Field::Result: return 3;
        case Field::Traceparent: return 4;
        case Field::Baggage: return 5;
        case Field::Metadata: return 6;
        default: return 0;
    }
}

struct CompactKey {
    alignas(16) std::array<char, 16> bytes{};  // `"key":`, then zeros
    std::size_t size = 0;
    Field field = Field::Other;
};

constexpr CompactKey compact(std::string_view text, Field field) {
    CompactKey key;
    for (std::size_t i = 0; i < text.size(); ++i) key.bytes[i] = text[i];
    key.size = text.size();
    key.field = field;
    return key;
}

/// The compact key at `p` (its opening quote) among those of the fields read here, chosen by
/// its first letter and checked whole; nullptr when it is not one. Reads 16 bytes from `p`,
/// inside the frame's padding; the caller checks the match ends inside the frame.
const CompactKey* compact_key(const char* p) {
    static constexpr CompactKey invocation_id = compact(R"("invocation_id":)", Field::InvocationId),
        function_id = compact(R"("function_id":)", Field::FunctionId),
        traceparent = compact(R"("traceparent":)", Field::Traceparent), type = compact(R"("type":)", Field::Type),
        baggage = compact(R"("baggage":)", Field::Baggage), data = compact(R"("data":)", Field::Data),
        metadata = compact(R"("metadata":)", Field::Metadata), result = compact(R"("result":)", Field::Result);
    const CompactKey* candidate = nullptr;
    switch (p[1]) {
        case 'i': candidate = &invocation_id; break;
        case 'f': candidate = &function_id; break;
        case 't': candidate = p[2] == 'y' ? &type : &traceparent; break;
        case 'b': candidate = &baggage; break;
        case 'd': candidate = &data; break;
        case 'm': candidate = &metadata; break;
        case 'r': candidate = &result; break;
        default: return nullptr;
    }
#if defined(__SSE2__)
    // One 16-byte comparison instead of a memcmp call (four keys per frame).
    const __m128i text = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i key = _mm_load_si128(reinterpret_cast<const __m128i*>(candidate->bytes.data()));
    const unsigned equal = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(text, key)));
    const unsigned needed = (1u << candidate->size) - 1;
    return (equal & needed) == needed ? candidate : nullptr;
#else
    return std::memcmp(p, candidate->bytes.data(), candidate->size) == 0 ? candidate : nullptr;
#endif
}

}  // namespace

/// The buffers of the hot path (one io thread uses them).
struct Engine::Impl::FastPath {
    PaddedBuffer buffer;  // the frame, followed by zeros that stop string_token's 8-byte loads
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

    /// The canonical payload value at `p`, moved past, or nullopt (see canonical()).
    std::optional<std::string_view> payload(const char*& p, const char* end, Splice* splice) {
        const char* from = p;
        if (!canonical(p, end, 0, from, splice)) return std::nullopt;
        return std::string_view(from, static_cast<std::size_t>(p - from));
    }
};

void Engine::Impl::FastPathDeleter::operator()(FastPath* p) const { delete p; }

bool Engine::Impl::forward_fast(Worker& worker, std::string_view frame) {
    if (!fast) fast.reset(new FastPath);
    FastPath& f = *fast;
    struct Trim {
        FastPath& f;
        ~Trim() { iii::detail::trim_after_parse(f.buffer); }
    } trim{f};
    f.buffer.load(frame);
    const char* p = f.buffer.data();
    const char* const end = p + frame.size();

    enum Kind { Unknown, Invoke, Result } kind = Unknown;
    std::optional<std::string_view> invocation_id, function_id, traceparent, baggage, ns;
    std::optional<std::string_view> data, metadata, result;
    FastPath::Splice splice;
    bool data_object = false;
    std::size_t data_at = 0;  // offset of the payload in the frame
    // The fields came in the order this path writes them and none it never writes: with the
    // length check below, the frame is then copied instead of written field by field.
    bool in_order = true;
    int last_rank = 0;
    // A field twice: the full path takes the last one; simpler to leave such frames to it.
    std::uint32_t seen = 0;
    auto once = [&](int bit) {
        if (seen & (1u << bit)) return false;
        seen |= 1u << bit;
        return true;
    };
    // A string without escapes (identifiers: ids, trace headers), as the text between its quotes.
    auto plain = [&](std::optional<std::string_view>& out) {
        if (p >= end || *p != '"') return false;
        bool escaped = false;
        const std::size_t n = string_token(p, escaped);
        if (n == npos || escaped) return false;
        out = std::string_view(p + 1, n - 2);
        p += n;
        return true;
    };
    auto null = [&] { return literal(p, end, "null"); };
    // An optional identifier: such a string, or null for absent.
    auto optional_plain = [&](std::optional<std::string_view>& out) { return null() || plain(out); };

    skip_space(p);
    if (p >= end || *p != '{') return false;
    ++p;
    for (bool first = true;; first = false) {
        skip_space(p);
        if (!first) {
            if (p < end && *p == '}') {
                ++p;
                break;
            }
            if (p >= end || *p != ',') return false;
            ++p;
            skip_space(p);
        }
        // The field, from its key. Compact keys of the fields read here are recognised by one
        // comparison of `"key":` (what every SDK writes); any other key is read as a token.
        Field field = Field::Other;
        if (const auto* known = compact_key(p); known && static_cast<std::size_t>(end - p) >= known->size) {
            field = known->field;
            p += known->size;
        } else {
            std::optional<std::string_view> key;
            if (!plain(key)) return false;  // an escaped key (or none): the full path
            skip_space(p);
            if (p >= end || *p != ':') return false;
            ++p;
            field = field_of(*key);
        }
        skip_space(p);
        if (kind == Unknown) {
            // `type` first, as every SDK writes it; otherwise the full path sorts it out.
            std::optional<std::string_view> type;
            if (field != Field::Type || !plain(type)) return false;
            if (*type == "invokefunction")
                kind = Invoke;
            else if (*type == "invocationresult")
                kind = Result;
            else
                return false;
            continue;
        }
        // Only the fields the decoder reads for this type; the others (the other type's fields
        // too) it skips unread, so do we.
        const bool invoke_only = field == Field::Data || field == Field::Metadata ||
                                 field == Field::Namespace || field == Field::Action;
        const bool result_only = field == Field::Result || field == Field::Error;
        if ((invoke_only && kind != Invoke) || (result_only && kind != Result)) field = Field::Other;
        bool ok = true;
        if (field != Field::Other && field != Field::Type && !once(static_cast<int>(field))) return false;
        switch (field) {
            case Field::Type: ok = false; break;  // twice
            case Field::InvocationId: ok = plain(invocation_id); break;
            case Field::FunctionId: ok = plain(function_id); break;
            case Field::Traceparent: ok = optional_plain(traceparent); break;
            case Field::Baggage: ok = optional_plain(baggage); break;
            case Field::Data:
                data_object = p < end && *p == '{';
                data_at = static_cast<std::size_t>(p - f.buffer.data());
                ok = bool(data = f.payload(p, end, data_object ? &splice : nullptr));
                break;
            case Field::Metadata: ok = null() || (metadata = f.payload(p, end, nullptr)); break;
            case Field::Namespace: ok = optional_plain(ns); break;
            case Field::Action: ok = null(); break;  // void and enqueue calls: the full path
            case Field::Result: ok = null() || (result = f.payload(p, end, nullptr)); break;
            case Field::Error: ok = null(); break;
            case Field::Other: ok = any_value(p, end, 0); break;
        }
        if (!ok) return false;
        const int rank = written_rank(field);
        in_order = in_order && rank > last_rank;
        last_rank = rank;
    }
    skip_space(p);
    if (p != end) return false;  // trailing content: the full path drops the frame
    // A call without an id is a void call (fresh id): the full path.
    if (!invocation_id || !function_id) return false;
    char id[36];
    const bool canonical_id = is_canonical_uuid(*invocation_id);
    if (canonical_id) {
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
        Function& function = it->second;
        if (function.builtin || function.invocation) return false;
        Worker* callee = find_worker(function.owner, function.owner_ref);
        if (!callee) return false;

        // Taken: the same state changes as invoke_from_worker + dispatch.
        Pending* slot = nullptr;
        if (auto known = pending.find(id_view); known != pending.end()) {
            slot = &known->second;  // a reused id replaces its call, as on the full path
        } else if (!spare_pending.empty()) {
            auto node = std::move(spare_pending.back());
            spare_pending.pop_back();
            node.key().assign(id_view);
            slot = &pending.insert(std::move(node)).position->second;
        } else {
            slot = &pending.try_emplace(std::string(id_view)).first->second;
        }
        Pending& entry = *slot;
        const auto assign = [](std::optional<std::string>& to, std::optional<std::string_view> from) {
            if (!from)
                to.reset();
            else if (to)
                to->assign(*from);
            else
                to.emplace(*from);
        };
        entry.function_id.assign(*function_id);
        entry.caller.assign(worker.id);
        entry.callee.assign(callee->id);
        assign(entry.traceparent, traceparent);
        assign(entry.baggage, baggage);
        entry.on_result = nullptr;
        entry.caller_ref = remember(&worker);

        std::string out = take_text();
        out.reserve(frame.size() + caller_key.size() + worker.id.size() + 64);
        // `text` with `"_caller_worker_id":"<id>"` at its sorted place in the payload, which
        // starts at `data_offset` of it (worker ids need no escaping).
        const auto append_with_caller = [&](std::string_view text, std::size_t data_offset) {
            const std::size_t at = data_offset + (splice.at == npos ? data->size() - 1 : splice.at);
            out += text.substr(0, at);
            if (splice.at == npos && !splice.empty) out += ',';
            out += '"';
            out += caller_key;
            out.append(R"(":")"sv);
            out += worker.id;
            out += '"';
            if (splice.at != npos) out += ',';
            out += text.substr(at);
        };
        // The frame as this path writes it, but for the caller's id: copied in two pieces
        // around the splice instead of written field by field. Same order, same id text and
        // the same length mean the same bytes: every piece written is a view of the frame,
        // and whitespace or a field written as null (dropped on the way out) adds length.
        const bool metadata_out = metadata && since_0_22();
        const std::size_t written_size =
            R"({"type":"invokefunction","invocation_id":"","function_id":,"data":})"sv.size() +
            sizeof id + function_id->size() + 2 + data->size() +
            (traceparent ? R"(,"traceparent":)"sv.size() + traceparent->size() + 2 : 0) +
            (baggage ? R"(,"baggage":)"sv.size() + baggage->size() + 2 : 0) +
            (metadata_out ? R"(,"metadata":)"sv.size() + metadata->size() : 0);
        if (in_order && canonical_id && written_size == frame.size()) {
            if (data_object)
                append_with_caller(frame, data_at);
            else
                out.assign(frame);  // not an object: forwarded unchanged
            send_text(*callee, std::move(out));
            return true;
        }
        out.append(R"({"type":"invokefunction","invocation_id":")"sv);
        out += id_view;
        out.append(R"(","function_id":)"sv);
        append_quoted(out, *function_id);
        out.append(R"(,"data":)"sv);
        if (data_object) {
            append_with_caller(*data, 0);
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
        if (metadata_out) {  // 0.10 drops it
            out.append(R"(,"metadata":)"sv);
            out += *metadata;
        }
        out += '}';
        send_text(*callee, std::move(out));
        return true;
    }

    // kind == Result
    auto it = pending.find(id_view);
    if (it == pending.end()) return false;
    Pending& entry = it->second;
    if (entry.caller.empty()) return false;  // the engine's own call: its consumer runs
    Worker* caller = find_worker(entry.caller, entry.caller_ref);
    if (!caller) return false;
    // What the caller sent is echoed back; text that needs escaping takes the full path.
    if (!needs_no_escape(entry.function_id) || (entry.traceparent && !needs_no_escape(*entry.traceparent)) ||
        (entry.baggage && !needs_no_escape(*entry.baggage)))
        return false;

    // Taken: the same state changes as invocation_result.
    std::string out = take_text();
    // What this path writes is the frame itself when the fields came in its order, with the
    // caller's function id and trace headers, and nothing dropped (see the call above).
    const auto same = [](const std::optional<std::string>& a, std::optional<std::string_view> b) {
        return a ? b && *a == *b : !b;
    };
    const std::size_t written_size =
        R"({"type":"invocationresult","invocation_id":"","function_id":})"sv.size() + sizeof id +
        entry.function_id.size() + 2 + (result ? R"(,"result":)"sv.size() + result->size() : 0) +
        (entry.traceparent ? R"(,"traceparent":)"sv.size() + entry.traceparent->size() + 2 : 0) +
        (entry.baggage ? R"(,"baggage":)"sv.size() + entry.baggage->size() + 2 : 0);
    if (in_order && canonical_id && written_size == frame.size() && *function_id == entry.function_id &&
        same(entry.traceparent, traceparent) && same(entry.baggage, baggage)) {
        out.assign(frame);
    } else {
        out.reserve(frame.size() + 64);
        out.append(R"({"type":"invocationresult","invocation_id":")"sv);
        out += id_view;
        out.append(R"(","function_id":)"sv);
        append_quoted(out, entry.function_id);
        if (result) {  // a null result is no result (spec 9.10)
            out.append(R"(,"result":)"sv);
            out += *result;
        }
        if (entry.traceparent) {
            out.append(R"(,"traceparent":)"sv);
            append_quoted(out, *entry.traceparent);
        }
        if (entry.baggage) {
            out.append(R"(,"baggage":)"sv);
            append_quoted(out, *entry.baggage);
        }
        out += '}';
    }
    if (spare_pending.size() < 64)
        spare_pending.push_back(pending.extract(it));
    else
        pending.erase(it);
    send_text(*caller, std::move(out));
    return true;
}

}  // namespace iii::testing
