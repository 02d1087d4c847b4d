#pragma once
// Bridges between iii::Value and the two JSON libraries: simdjson on-demand in, RapidJSON's
// Writer out. Shared by json.cpp, protocol.cpp and anything else that reads or writes frames, so
// that payloads are built straight from the parser and written straight into the frame buffer
// (no intermediate DOM, no intermediate string).

#include "iii/json.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <simdjson.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace iii::detail {

/// True when every byte of `s` is printable ASCII other than `"` and `\`: text JSON takes as
/// is, and valid UTF-8 by itself. Eight bytes at a time (the usual keys, ids and names are
/// short, where a vectorised validator and RapidJSON's escaper cost more to set up than this).
inline bool plain_ascii(std::string_view s) noexcept {
    constexpr std::uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t x;
        std::memcpy(&x, p + i, 8);
        const std::uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');
        // Any byte below 0x20, any byte equal to zero after the XORs, any byte with its top
        // bit set (exact for "is there one", which is all that is asked).
        const std::uint64_t control = (x - ones * 0x20) & ~x;
        const std::uint64_t is_quote = (quote - ones) & ~quote, is_backslash = (backslash - ones) & ~backslash;
        if ((x | control | is_quote | is_backslash) & highs) return false;
    }
    for (; i < n; ++i) {
        const unsigned char c = p[i];
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') return false;
    }
    return true;
}

/// The writer every encoder uses: compact UTF-8, RapidJSON's Writer plus a string path that
/// copies plain text straight into the buffer. RapidJSON does not validate; write_string()
/// and write_key() below do (see InvalidUtf8).
class JsonWriter : public rapidjson::Writer<rapidjson::StringBuffer> {
public:
    using rapidjson::Writer<rapidjson::StringBuffer>::Writer;

    /// Writes `s`, a string value or key, that the caller knows is plain_ascii() (constant
    /// keys, hex ids, digits): no scan, no escaping.
    void plain_string(std::string_view s) {
        Prefix(rapidjson::kStringType);
        char* out = os_->Push(s.size() + 2);
        out[0] = '"';
        if (!s.empty()) std::memcpy(out + 1, s.data(), s.size());  // (a null data() when empty)
        out[s.size() + 1] = '"';
        EndValue(true);
    }
    /// Writes `json`, one complete JSON value of type `type` that the caller wrote itself, as
    /// the next value: copied in one piece (RapidJSON's RawValue copies byte by byte).
    void raw_value(std::string_view json, rapidjson::Type type) {
        Prefix(type);
        if (!json.empty()) std::memcpy(os_->Push(json.size()), json.data(), json.size());
        EndValue(true);
    }
    /// raw_value() written in place: `write(char* out)` writes the value, at most `max_size`
    /// bytes, at `out` and returns how many it wrote (no intermediate copy).
    template <class Write>
    void raw_value_in_place(std::size_t max_size, rapidjson::Type type, Write&& write) {
        Prefix(type);
        char* const out = os_->Push(max_size);
        const std::size_t written = write(out);
        os_->Pop(max_size - written);
        EndValue(true);
    }
    /// Writes `s` as a string value or key: copied when plain_ascii(), else checked (throws
    /// InvalidUtf8 and writes nothing unless it is UTF-8) and escaped by RapidJSON. The same
    /// bytes either way.
    void checked_string(std::string_view s, bool key);
};

/// The UTF-8 rule: a string (or key) that is not valid UTF-8 is never written. JSON text must be
/// UTF-8 (RFC 8259 §8.1), every reader of our frames rejects it, and WebSocket text frames must be
/// UTF-8 too, so a lossy fix-up would only hide the bug. write_string()/write_key() throw this;
/// each enclosing writer prepends its step to `path` while it propagates, and the public
/// boundary (Value::dump, protocol::Encoder::encode, the typed writer) turns it into
/// iii::Error(Errc::Serde, describe()). Never escapes lib/.
struct InvalidUtf8 {
    std::string path;         ///< steps below the root, e.g. `.data.names[2]`
    std::size_t offset = 0;   ///< byte offset of the first invalid sequence in the string
    bool key = false;         ///< the invalid string is an object key (the last step)

    void prepend_key(std::string_view key);
    void prepend_index(std::size_t index);
    /// "$.data.name: string is not valid UTF-8 (invalid byte at offset 3)"; valid UTF-8 itself.
    std::string describe(std::string_view root = "$") const;
};

/// The byte offset of the first invalid UTF-8 sequence in `s`, or npos when `s` is valid.
std::size_t invalid_utf8_offset(std::string_view s) noexcept;

/// `s` with each byte of an invalid UTF-8 sequence replaced by U+FFFD. For text that must
/// still go out in an error reply (a handler's exception message), never for payloads.
std::string replace_invalid_utf8(std::string_view s);

/// Throws InvalidUtf8 (empty path) unless `s` is valid UTF-8.
inline void check_utf8(std::string_view s, bool key) {
    // simdjson's validator is vectorised: a few bytes' cost on the happy path.
    if (simdjson::validate_utf8(s)) [[likely]]
        return;
    throw InvalidUtf8{std::string(), invalid_utf8_offset(s), key};
}

/// The double that `token` (a number's text, already validated as a JSON number by simdjson;
/// trailing whitespace allowed) spells, correctly rounded; `fallback` when it cannot be
/// converted (out of range). simdjson 3.0.1, Debian 12's, converts numbers with more than 19
/// significant digits wrongly (get_double() reads -0.2222222224741910323222184348123709551615
/// as -8.1e-22, get_number() as 0): every double the SDK reads goes through this.
inline double exact_double(std::string_view token, double fallback) noexcept {
    double exact = 0;
    const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), exact);
    return ec == std::errc() && end != token.data() ? exact : fallback;
}

/// Deepest nesting read_value() accepts: serde_json's recursion limit, so nothing the engine
/// relays is refused. The reader recurses, and hostile input must not exhaust the stack of a
/// small (coroutine or sanitizer-inflated) thread.
inline constexpr int max_json_depth = 128;

/// Builds `out` from `v`, consuming it, whatever `out` held before: an `out` that already holds
/// an object, array or string keeps that storage (member by member, recursively), so parsing
/// into a recycled value of the same shape allocates nothing. Returns SUCCESS, or the simdjson
/// error that stopped it (then `out` holds whatever was built so far). Integers that fit int64
/// become Int, larger ones that fit uint64 become Uint, anything else Double.
/// Throws only std::bad_alloc.
simdjson::error_code read_value(simdjson::ondemand::value v, Value& out, int depth = 0);

/// Heap bytes a recycled value may hold on to (strings' and containers' capacity): above that,
/// it is not worth keeping.
inline constexpr std::size_t recycled_value_bytes = 16 * 1024;
/// The bytes of heap storage `v` holds (approximately: capacities) when at most `budget`;
/// nullopt otherwise. Stops walking as soon as the budget is spent.
std::optional<std::size_t> storage_bytes(const Value& v, std::size_t budget) noexcept;

/// Builds `out` from a whole document, scalars included, and fails with TRAILING_CONTENT when
/// anything follows the value.
simdjson::error_code read_document(simdjson::ondemand::document& doc, Value& out);

/// A human-readable reason for a failed parse: the simdjson message plus, when known, the byte
/// offset into `base` ("... at byte 12").
std::string describe_error(simdjson::error_code error, simdjson::ondemand::document* doc,
                           const char* base);

inline void JsonWriter::checked_string(std::string_view s, bool key) {
    if (plain_ascii(s)) [[likely]] {
        plain_string(s);
        return;
    }
    check_utf8(s, key);
    String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

/// Writes `s` as a JSON string. Throws InvalidUtf8 (and writes nothing) unless it is UTF-8.
inline void write_string(JsonWriter& w, std::string_view s) { w.checked_string(s, false); }
/// Writes `s` as an object key. Throws InvalidUtf8 (and writes nothing) unless it is UTF-8.
inline void write_key(JsonWriter& w, std::string_view s) { w.checked_string(s, true); }

/// Writes `v`. Doubles keep a fraction or exponent so they read back as doubles ("1.0");
/// NaN and infinities, which JSON cannot express, are written as null (as serde_json does).
/// Throws InvalidUtf8 with the path below `v` for a string or key that is not UTF-8; `w` is then
/// half-written and must be Reset().
void write_value(JsonWriter& w, const Value& v);

/// A reusable input buffer with the zeroed tail padding simdjson needs after the last byte.
/// Grows to the largest frame seen and never shrinks, so steady-state parsing allocates nothing.
class PaddedBuffer {
public:
    /// Copies `text` in and returns a view simdjson may read past the end of.
    simdjson::padded_string_view load(std::string_view text) {
        const std::size_t need = text.size() + simdjson::SIMDJSON_PADDING;
        if (need > capacity_) {
            // Round up so that a stream of slowly growing frames does not realloc each time.
            std::size_t cap = capacity_ < 4096 ? 4096 : capacity_;
            while (cap < need) cap *= 2;
            data_ = std::make_unique_for_overwrite<char[]>(cap);
            capacity_ = cap;
        }
        if (!text.empty()) std::memcpy(data_.get(), text.data(), text.size());
        std::memset(data_.get() + text.size(), 0, simdjson::SIMDJSON_PADDING);
        return simdjson::padded_string_view(data_.get(), text.size(), capacity_);
    }
    const char* data() const noexcept { return data_.get(); }

    /// Frees the buffer when it grew past `limit` (one huge document must not pin its copy).
    void release_if_above(std::size_t limit) noexcept {
        if (capacity_ <= limit) return;
        data_.reset();
        capacity_ = 0;
    }

private:
    std::unique_ptr<char[]> data_;
    std::size_t capacity_ = 0;
};

/// Above this a reused parse or encode buffer is freed once its document is handled: one 64 MiB
/// frame otherwise keeps several times its size (padded copy, simdjson's structural index and
/// string buffer) resident for as long as the thread or connection lives. Below it, steady
/// traffic stays allocation-free.
inline constexpr std::size_t retained_buffer_limit = std::size_t{1} << 20;

/// Frees `buffer` and replaces `parser` when the last document made them grow past
/// retained_buffer_limit. Call after the document (and every view into it) is done with.
inline void trim_after_parse(PaddedBuffer& buffer) noexcept {
    buffer.release_if_above(retained_buffer_limit + simdjson::SIMDJSON_PADDING);
}
inline void trim_after_parse(simdjson::ondemand::parser& parser, PaddedBuffer& buffer) noexcept {
    trim_after_parse(buffer);
    if (parser.capacity() > retained_buffer_limit) parser = simdjson::ondemand::parser();
}

/// Frees the capacity of a reused RapidJSON output buffer that grew past the limit.
inline void trim_after_write(rapidjson::StringBuffer& buffer) {
    if (buffer.GetSize() <= retained_buffer_limit) return;
    buffer.Clear();
    buffer.ShrinkToFit();
}

}  // namespace iii::detail
