#include "iii/json.hpp"

#include "iii/error.hpp"
#include "json_internal.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <limits>

namespace iii {
namespace {

namespace ondemand = simdjson::ondemand;
using simdjson::error_code;

[[noreturn]] void throw_kind(std::string_view expected, Value::Kind actual) {
    throw Error(Errc::Serde, fmt::format("expected {}, got {}", expected, kind_name(actual)));
}

// True when both numbers denote the same mathematical value. Comparing through double would
// call 2^63 and 2^63 + 1 equal, so integers are compared exactly.
bool int_eq_double(std::int64_t i, double d) noexcept {
    // [-2^63, 2^63) is exactly representable as doubles at the bounds.
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return false;
    if (std::trunc(d) != d) return false;
    return static_cast<std::int64_t>(d) == i;
}
bool uint_eq_double(std::uint64_t u, double d) noexcept {
    if (!(d >= 0.0 && d < 18446744073709551616.0)) return false;
    if (std::trunc(d) != d) return false;
    return static_cast<std::uint64_t>(d) == u;
}

bool numbers_equal(const Value& a, const Value& b) noexcept {
    using K = Value::Kind;
    const K ka = a.kind(), kb = b.kind();
    if (ka == K::Double && kb == K::Double) return a.as_double() == b.as_double();
    if (ka == K::Double) return numbers_equal(b, a);
    // Here `a` is an integer.
    if (ka == K::Int) {
        const std::int64_t i = a.as_int();
        if (kb == K::Int) return i == b.as_int();
        if (kb == K::Uint) return i >= 0 && static_cast<std::uint64_t>(i) == b.as_uint();
        return int_eq_double(i, b.as_double());
    }
    const std::uint64_t u = a.as_uint();
    if (kb == K::Uint) return u == b.as_uint();
    if (kb == K::Int) return numbers_equal(b, a);
    return uint_eq_double(u, b.as_double());
}

// Reads a number the way serde_json does: int64 first, then uint64, then double.
template <class Source>
error_code read_number(Source& src, Value& out) {
    // The number's text, read before get_number() consumes it (see the floating case).
    std::string_view token;
    if constexpr (requires { src.raw_json_token().get(token); }) {
        if (src.raw_json_token().get(token)) token = {};
    } else {
        token = src.raw_json_token();
    }
    ondemand::number n;
    if (src.get_number().get(n) == simdjson::SUCCESS) {
        switch (n.get_number_type()) {
            case ondemand::number_type::signed_integer: out = Value(n.get_int64()); break;
            case ondemand::number_type::unsigned_integer: out = Value(n.get_uint64()); break;
            case ondemand::number_type::floating_point_number: {
                // simdjson 3.0.1's get_number() reads a float with more than 19 digits
                // wrongly (58446744073709550000.0 -> 0.0): see exact_double().
                out = Value(detail::exact_double(token, n.get_double()));
                break;
            }
        }
        return simdjson::SUCCESS;
    }
    // simdjson 3.0.1 reports integers beyond 64 bits as NUMBER_ERROR; they still read as
    // doubles (serde_json's arbitrary_precision-less behaviour).
    double d;
    if (auto e = src.get_double().get(d)) return e;
    out = Value(detail::exact_double(token, d));
    return simdjson::SUCCESS;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction

Value::Value(std::initializer_list<Value> list) {
    bool is_object = true;
    for (const Value& item : list) {
        const Array* pair = std::get_if<Array>(&item.v_);
        if (!pair || pair->size() != 2 || !(*pair)[0].is_string()) {
            is_object = false;
            break;
        }
    }
    if (is_object) {
        Object members;
        members.reserve(list.size());
        for (const Value& item : list) {
            const Array& pair = std::get<Array>(item.v_);
            members.emplace_back(std::get<std::string>(pair[0].v_), pair[1]);
        }
        v_ = std::move(members);
    } else {
        v_ = Array(list);
    }
}

Value Value::array(std::initializer_list<Value> items) { return Value(Array(items)); }

Value Value::object(std::initializer_list<Member> members) { return Value(Object(members)); }

// ---------------------------------------------------------------------------------------------
// Typed access

bool Value::as_bool() const {
    if (const bool* b = std::get_if<bool>(&v_)) return *b;
    throw_kind("bool", kind());
}

std::int64_t Value::as_int() const {
    if (const std::int64_t* i = std::get_if<std::int64_t>(&v_)) return *i;
    if (const std::uint64_t* u = std::get_if<std::uint64_t>(&v_)) {
        if (*u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            return static_cast<std::int64_t>(*u);
        throw Error(Errc::Serde, fmt::format("integer {} does not fit int64", *u));
    }
    throw_kind("integer", kind());
}

std::uint64_t Value::as_uint() const {
    if (const std::uint64_t* u = std::get_if<std::uint64_t>(&v_)) return *u;
    if (const std::int64_t* i = std::get_if<std::int64_t>(&v_)) {
        if (*i >= 0) return static_cast<std::uint64_t>(*i);
        throw Error(Errc::Serde, fmt::format("integer {} is negative, expected uint64", *i));
    }
    throw_kind("unsigned integer", kind());
}

double Value::as_double() const {
    switch (kind()) {
        case Kind::Double: return std::get<double>(v_);
        case Kind::Int: return static_cast<double>(std::get<std::int64_t>(v_));
        case Kind::Uint: return static_cast<double>(std::get<std::uint64_t>(v_));
        default: throw_kind("number", kind());
    }
}

const std::string& Value::as_string() const {
    if (const std::string* s = std::get_if<std::string>(&v_)) return *s;
    throw_kind("string", kind());
}
std::string& Value::as_string() {
    if (std::string* s = std::get_if<std::string>(&v_)) return *s;
    throw_kind("string", kind());
}
const Value::Array& Value::as_array() const {
    if (const Array* a = std::get_if<Array>(&v_)) return *a;
    throw_kind("array", kind());
}
Value::Array& Value::as_array() {
    if (Array* a = std::get_if<Array>(&v_)) return *a;
    throw_kind("array", kind());
}
const Value::Object& Value::as_object() const {
    if (const Object* o = std::get_if<Object>(&v_)) return *o;
    throw_kind("object", kind());
}
Value::Object& Value::as_object() {
    if (Object* o = std::get_if<Object>(&v_)) return *o;
    throw_kind("object", kind());
}

// ---------------------------------------------------------------------------------------------
// Members and elements

const Value* Value::find(std::string_view key) const noexcept {
    const Object* o = std::get_if<Object>(&v_);
    if (!o) return nullptr;
    for (const Member& m : *o)
        if (m.first == key) return &m.second;
    return nullptr;
}

Value* Value::find(std::string_view key) noexcept {
    return const_cast<Value*>(std::as_const(*this).find(key));
}

const Value& Value::at(std::string_view key) const {
    if (!is_object()) throw_kind("object", kind());
    if (const Value* v = find(key)) return *v;
    throw Error(Errc::Serde, fmt::format("missing field `{}`", key));
}

const Value& Value::at(std::size_t index) const {
    const Array& a = as_array();
    if (index >= a.size())
        throw Error(Errc::Serde,
                    fmt::format("index {} out of range for an array of {}", index, a.size()));
    return a[index];
}

Value& Value::operator[](std::string_view key) {
    if (is_null()) v_ = Object{};
    Object& o = as_object();
    for (Member& m : o)
        if (m.first == key) return m.second;
    return o.emplace_back(std::string(key), Value()).second;
}

const Value& Value::operator[](std::string_view key) const noexcept {
    static const Value null_value;
    const Value* v = find(key);
    return v ? *v : null_value;
}

Value& Value::set(std::string key, Value value) {
    if (is_null()) v_ = Object{};
    Object& o = as_object();
    for (Member& m : o) {
        if (m.first == key) {
            m.second = std::move(value);
            return *this;
        }
    }
    o.emplace_back(std::move(key), std::move(value));
    return *this;
}

void Value::push_back(Value value) {
    if (is_null()) v_ = Array{};
    as_array().push_back(std::move(value));
}

std::size_t Value::size() const noexcept {
    if (const Array* a = std::get_if<Array>(&v_)) return a->size();
    if (const Object* o = std::get_if<Object>(&v_)) return o->size();
    return 0;
}

bool operator==(const Value& a, const Value& b) noexcept {
    if (a.is_number() && b.is_number()) return numbers_equal(a, b);
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
        case Value::Kind::Null: return true;
        case Value::Kind::Bool: return std::get<bool>(a.v_) == std::get<bool>(b.v_);
        case Value::Kind::String: return std::get<std::string>(a.v_) == std::get<std::string>(b.v_);
        case Value::Kind::Array:
            return std::get<Value::Array>(a.v_) == std::get<Value::Array>(b.v_);
        case Value::Kind::Object: {
            const auto& oa = std::get<Value::Object>(a.v_);
            const auto& ob = std::get<Value::Object>(b.v_);
            if (oa.size() != ob.size()) return false;
            for (const auto& [key, value] : oa) {
                const Value* other = b.find(key);
                if (!other || !(value == *other)) return false;
            }
            return true;
        }
        default: return false;  // numbers were handled above
    }
}

std::string_view kind_name(Value::Kind kind) noexcept {
    switch (kind) {
        case Value::Kind::Null: return "null";
        case Value::Kind::Bool: return "bool";
        case Value::Kind::Int:
        case Value::Kind::Uint: return "integer";
        case Value::Kind::Double: return "number";
        case Value::Kind::String: return "string";
        case Value::Kind::Array: return "array";
        case Value::Kind::Object: return "object";
    }
    return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Parse and dump

Value Value::parse(std::string_view json) {
    // One parser and buffer per thread: the parser's internal buffers are sized to the largest
    // document seen, so reusing it makes steady-state parsing allocation-free apart from the
    // Value itself.
    thread_local ondemand::parser parser;
    thread_local detail::PaddedBuffer buffer;

    struct Trim {  // on every exit: the Value and any error text own their bytes by then
        ~Trim() { detail::trim_after_parse(parser, buffer); }
    } trim;
    const simdjson::padded_string_view input = buffer.load(json);
    ondemand::document doc;
    if (auto e = parser.iterate(input).get(doc))
        throw Error(Errc::Serde, detail::describe_error(e, nullptr, buffer.data()));
    Value out;
    if (auto e = detail::read_document(doc, out))
        throw Error(Errc::Serde, detail::describe_error(e, &doc, buffer.data()));
    return out;
}

std::string Value::dump() const {
    // Reused per thread: the writer's level stack and the output buffer keep their capacity.
    thread_local rapidjson::StringBuffer buffer;
    thread_local detail::JsonWriter writer(buffer);
    buffer.Clear();
    writer.Reset(buffer);
    try {
        detail::write_value(writer, *this);
    } catch (const detail::InvalidUtf8& e) {
        throw Error(Errc::Serde, e.describe());
    }
    std::string out(buffer.GetString(), buffer.GetSize());
    // One huge payload should not pin its buffer to the thread forever.
    if (buffer.GetSize() > (std::size_t{1} << 20)) {
        buffer.Clear();
        buffer.ShrinkToFit();
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// simdjson / RapidJSON bridges

namespace detail {

error_code read_value(ondemand::value v, Value& out, int depth) {
    ondemand::json_type type;
    if (auto e = v.type().get(type)) return e;
    switch (type) {
        case ondemand::json_type::object: {
            if (depth >= max_json_depth) return simdjson::DEPTH_ERROR;
            ondemand::object object;
            if (auto e = v.get_object().get(object)) return e;
            if (!out.is_object()) out = Value::Object{};
            Value::Object& members = out.as_object();
            // Payload objects are small: one allocation for up to four members instead of
            // growing 1, 2, 4. Empty objects allocate nothing.
            constexpr std::size_t initial_capacity = 4;
            std::size_t count = 0;
            // Members past `count` are what a recycled value had beyond this object's.
            const auto finish = [&](error_code e) {
                members.erase(members.begin() + static_cast<std::ptrdiff_t>(count), members.end());
                return e;
            };
            for (auto field : object) {
                std::string_view key;
                if (auto e = field.unescaped_key().get(key)) return finish(e);
                ondemand::value child;
                if (auto e = field.value().get(child)) return finish(e);
                if (count < members.size()) {
                    members[count].first.assign(key);  // its capacity serves again
                } else {
                    if (members.capacity() == 0) members.reserve(initial_capacity);
                    members.emplace_back(std::string(key), Value());
                }
                Value& slot = members[count++].second;
                if (auto e = read_value(child, slot, depth + 1)) return finish(e);
            }
            return finish(simdjson::SUCCESS);
        }
        case ondemand::json_type::array: {
            if (depth >= max_json_depth) return simdjson::DEPTH_ERROR;
            ondemand::array array;
            if (auto e = v.get_array().get(array)) return e;
            if (!out.is_array()) out = Value::Array{};
            Value::Array& items = out.as_array();
            std::size_t count = 0;
            const auto finish = [&](error_code e) {
                items.erase(items.begin() + static_cast<std::ptrdiff_t>(count), items.end());
                return e;
            };
            for (auto element : array) {
                ondemand::value child;
                if (auto e = element.get(child)) return finish(e);
                if (count == items.size()) {
                    if (items.capacity() == 0) items.reserve(4);
                    items.emplace_back();
                }
                if (auto e = read_value(child, items[count++], depth + 1)) return finish(e);
            }
            return finish(simdjson::SUCCESS);
        }
        case ondemand::json_type::number: return read_number(v, out);
        case ondemand::json_type::string: {
            std::string_view s;
            if (auto e = v.get_string().get(s)) return e;
            if (out.is_string())
                out.as_string().assign(s);
            else
                out = Value(std::string(s));
            return simdjson::SUCCESS;
        }
        case ondemand::json_type::boolean: {
            bool b;
            if (auto e = v.get_bool().get(b)) return e;
            out = Value(b);
            return simdjson::SUCCESS;
        }
        case ondemand::json_type::null: {
            bool is_null = false;
            if (auto e = v.is_null().get(is_null)) return e;
            if (!is_null) return simdjson::N_ATOM_ERROR;
            out = Value();
            return simdjson::SUCCESS;
        }
    }
    return simdjson::TAPE_ERROR;
}

std::optional<std::size_t> storage_bytes(const Value& v, std::size_t budget) noexcept {
    // An explicit stack would allocate; the recursion is bounded by max_json_depth (every
    // recycled value was parsed or built within it) and by the budget itself.
    struct Walk {
        std::size_t left;
        bool spend(std::size_t bytes) noexcept {
            if (bytes > left) return false;
            left -= bytes;
            return true;
        }
        bool operator()(const Value& x) noexcept {
            switch (x.kind()) {
                case Value::Kind::String: return spend(x.as_string().capacity());
                case Value::Kind::Array: {
                    const auto& items = x.as_array();
                    if (!spend(items.capacity() * sizeof(Value))) return false;
                    for (const Value& item : items)
                        if (!(*this)(item)) return false;
                    return true;
                }
                case Value::Kind::Object: {
                    const auto& members = x.as_object();
                    if (!spend(members.capacity() * sizeof(Value::Member))) return false;
                    for (const auto& [key, value] : members)
                        if (!spend(key.capacity()) || !(*this)(value)) return false;
                    return true;
                }
                default: return true;
            }
        }
    };
    Walk walk{budget};
    if (!walk(v)) return std::nullopt;
    return budget - walk.left;
}

error_code read_document(ondemand::document& doc, Value& out) {
    ondemand::json_type type;
    if (auto e = doc.type().get(type)) return e;
    switch (type) {
        case ondemand::json_type::object:
        case ondemand::json_type::array: {
            ondemand::value v;
            if (auto e = doc.get_value().get(v)) return e;
            if (auto e = read_value(v, out)) return e;
            break;
        }
        // simdjson checks root scalars for trailing content itself.
        case ondemand::json_type::number: return read_number(doc, out);
        case ondemand::json_type::string: {
            std::string_view s;
            if (auto e = doc.get_string().get(s)) return e;
            out = Value(std::string(s));
            break;
        }
        case ondemand::json_type::boolean: {
            bool b;
            if (auto e = doc.get_bool().get(b)) return e;
            out = Value(b);
            break;
        }
        case ondemand::json_type::null: {
            bool is_null = false;
            if (auto e = doc.is_null().get(is_null)) return e;
            if (!is_null) return simdjson::N_ATOM_ERROR;
            out = Value();
            break;
        }
    }
    // On-demand stops reading at the end of the value; anything after it (`{} x`, `[1]]`) is
    // only seen by asking where the iterator is.
    if (doc.current_location().error() != simdjson::OUT_OF_BOUNDS)
        return simdjson::TRAILING_CONTENT;
    return simdjson::SUCCESS;
}

std::string describe_error(error_code error, ondemand::document* doc, const char* base) {
    std::string_view message = simdjson::error_message(error);
    // simdjson's messages end with a period; drop it so " at byte N" reads naturally.
    if (!message.empty() && message.back() == '.') message.remove_suffix(1);
    if (doc) {
        const char* where = nullptr;
        if (doc->current_location().get(where) == simdjson::SUCCESS && where >= base)
            return fmt::format("invalid JSON: {} at byte {}", message, where - base);
    }
    return fmt::format("invalid JSON: {}", message);
}

namespace {

// Length of the valid UTF-8 sequence at the start of `s` (RFC 3629 table: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0 when it starts with an invalid one.
std::size_t utf8_sequence(std::string_view s) noexcept {
    const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const auto in = [](unsigned char c, unsigned char lo, unsigned char hi) { return c >= lo && c <= hi; };
    const unsigned char c = b(0);
    if (c < 0x80) return 1;
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
    if (in(c, 0xC2, 0xDF)) {
        len = 2;
    } else if (in(c, 0xE0, 0xEF)) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (in(c, 0xF0, 0xF4)) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (s.size() < len || !in(b(1), lo, hi)) return 0;
    for (std::size_t i = 2; i < len; ++i)
        if (!in(b(i), 0x80, 0xBF)) return 0;
    return len;
}

bool is_identifier(std::string_view key) noexcept {
    if (key.empty()) return false;
    for (std::size_t i = 0; i < key.size(); ++i) {
        const char c = key[i];
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

// A key as a path step, itself valid UTF-8 whatever the key holds: `.name`, or `["a b"]` with
// quotes and backslashes escaped and invalid bytes written as \xNN.
std::string key_step(std::string_view key) {
    if (is_identifier(key)) return "." + std::string(key);
    std::string out = "[\"";
    while (!key.empty()) {
        const std::size_t len = utf8_sequence(key);
        const auto c = static_cast<unsigned char>(key.front());
        if (len == 0 || c < 0x20) {
            out += len == 0 ? fmt::format("\\x{:02X}", c) : fmt::format("\\u{:04X}", c);
            key.remove_prefix(1);
            continue;
        }
        if (c == '"' || c == '\\') out += '\\';
        out.append(key.data(), len);
        key.remove_prefix(len);
    }
    out += "\"]";
    return out;
}

}  // namespace

std::size_t invalid_utf8_offset(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t len = utf8_sequence(s.substr(i));
        if (len == 0) return i;
        i += len;
    }
    return std::string_view::npos;
}

std::string replace_invalid_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    while (!s.empty()) {
        const std::size_t len = utf8_sequence(s);
        if (len == 0) {
            out += "\xEF\xBF\xBD";  // U+FFFD
            s.remove_prefix(1);
        } else {
            out.append(s.data(), len);
            s.remove_prefix(len);
        }
    }
    return out;
}

void InvalidUtf8::prepend_key(std::string_view k) { path.insert(0, key_step(k)); }

void InvalidUtf8::prepend_index(std::size_t index) { path.insert(0, fmt::format("[{}]", index)); }

std::string InvalidUtf8::describe(std::string_view root) const {
    return fmt::format("{}{}: {} is not valid UTF-8 (invalid byte at offset {})", root, path,
                       key ? "key" : "string", offset);
}

void write_value(JsonWriter& w, const Value& v) {
    switch (v.kind()) {
        case Value::Kind::Null: w.Null(); break;
        case Value::Kind::Bool: w.Bool(v.as_bool()); break;
        case Value::Kind::Int: w.Int64(v.as_int()); break;
        case Value::Kind::Uint: w.Uint64(v.as_uint()); break;
        case Value::Kind::Double: {
            // RapidJSON writes integral doubles as "1.0", so they read back as doubles; it
            // refuses NaN and infinities, which JSON has no spelling for.
            const double d = v.as_double();
            if (std::isfinite(d))
                w.Double(d);
            else
                w.Null();
            break;
        }
        case Value::Kind::String: write_string(w, v.as_string()); break;
        case Value::Kind::Array: {
            w.StartArray();
            std::size_t index = 0;
            try {
                for (const Value& item : v.as_array()) {
                    write_value(w, item);
                    ++index;
                }
            } catch (InvalidUtf8& e) {
                e.prepend_index(index);
                throw;
            }
            w.EndArray();
            break;
        }
        case Value::Kind::Object:
            w.StartObject();
            for (const auto& [key, value] : v.as_object()) {
                try {
                    write_key(w, key);
                    write_value(w, value);
                } catch (InvalidUtf8& e) {
                    e.prepend_key(key);
                    throw;
                }
            }
            w.EndObject();
            break;
    }
}

}  // namespace detail
}  // namespace iii
