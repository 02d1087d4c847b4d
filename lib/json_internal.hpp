#pragma once
// Bridges between iii::Value and the two JSON libraries: simdjson on-demand in, RapidJSON's
// Writer out. Shared by json.cpp, protocol.cpp and anything else that reads or writes frames, so
// that payloads are built straight from the parser and written straight into the frame buffer
// (no intermediate DOM, no intermediate string).

#include "iii/json.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <simdjson.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace iii::detail {

/// The writer every encoder uses: compact UTF-8, no validation (our strings are UTF-8 already).
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

/// Deepest nesting read_value() accepts: serde_json's recursion limit, so nothing the engine
/// relays is refused. The reader recurses, and hostile input must not exhaust the stack of a
/// small (coroutine or sanitizer-inflated) thread.
inline constexpr int max_json_depth = 128;

/// Builds `out` from `v`, consuming it. `out` should be null on entry. Returns SUCCESS, or the
/// simdjson error that stopped it (then `out` holds whatever was built so far). Integers that
/// fit int64 become Int, larger ones that fit uint64 become Uint, anything else Double.
/// Throws only std::bad_alloc.
simdjson::error_code read_value(simdjson::ondemand::value v, Value& out, int depth = 0);

/// Builds `out` from a whole document, scalars included, and fails with TRAILING_CONTENT when
/// anything follows the value.
simdjson::error_code read_document(simdjson::ondemand::document& doc, Value& out);

/// A human-readable reason for a failed parse: the simdjson message plus, when known, the byte
/// offset into `base` ("... at byte 12").
std::string describe_error(simdjson::error_code error, simdjson::ondemand::document* doc,
                           const char* base);

/// Writes `s` as a JSON string.
inline void write_string(JsonWriter& w, std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}
/// Writes `s` as an object key.
inline void write_key(JsonWriter& w, std::string_view s) {
    w.Key(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

/// Writes `v`. Doubles keep a fraction or exponent so they read back as doubles ("1.0");
/// NaN and infinities, which JSON cannot express, are written as null (as serde_json does).
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
inline void trim_after_parse(simdjson::ondemand::parser& parser, PaddedBuffer& buffer) noexcept {
    buffer.release_if_above(retained_buffer_limit + simdjson::SIMDJSON_PADDING);
    if (parser.capacity() > retained_buffer_limit) parser = simdjson::ondemand::parser();
}

/// Frees the capacity of a reused RapidJSON output buffer that grew past the limit.
inline void trim_after_write(rapidjson::StringBuffer& buffer) {
    if (buffer.GetSize() <= retained_buffer_limit) return;
    buffer.Clear();
    buffer.ShrinkToFit();
}

}  // namespace iii::detail
