#pragma once
// Described types: declare a struct's fields once, get JSON decode, JSON encode and a draft-07
// JSON Schema from that one declaration. The typed function API (iii/typed.hpp) is built on it.
//
// @code
//   struct Address { std::string city; std::optional<std::string> zip; };
//   III_DESCRIBE(Address, city, zip);
//   enum class Color { Red, Green };
//   III_DESCRIBE_ENUM(Color, (Red, "red"), (Green, "green"));
//   struct Order { std::uint32_t id; std::vector<Address> stops; Color color; };
//   III_DESCRIBE(Order, id, stops, color);
//
//   Order o = iii::from_json<Order>(R"({"id":7,"stops":[{"city":"Oslo"}],"color":"red"})");
//   std::string text = iii::to_json(o);      // {"id":7,"stops":[{"city":"Oslo","zip":null}],...}
//   iii::Value schema = iii::json_schema<Order>();
// @endcode
//
// How it works. Decoding pulls tokens from a JsonReader and encoding pushes them into a
// JsonWriter; both are small abstract classes, so no JSON library type appears in this header.
// from_json() runs a reader over simdjson's on-demand parser (the struct is filled straight from
// the parser, with no DOM in between) and to_json() a writer over RapidJSON's Writer (the text is
// written straight from the struct). from_value()/to_value() run the same code over iii::Value.
//
// ## The customization point: iii::json_traits<T>
//
// Every supported type has a specialization of `iii::json_traits<T>` with:
//
//   static void read(JsonReader& r, T& out);     // required: decode the current value into out
//   static void write(JsonWriter& w, const T& v);// required: encode v as one JSON value
//   static std::string name();                   // optional: schema name ("AnyValue" if absent)
//   static Value schema(SchemaBuilder& b);       // optional: inline schema (`true` if absent)
//   static constexpr bool referenceable = true;  // optional: keep the schema in "definitions"
//                                                //   under name() and refer to it with "$ref"
//   static constexpr bool required = false;      // optional: a struct field of this type may be
//                                                //   absent (it is then T{}) and is not listed
//                                                //   in "required" (std::optional does this)
//
// III_DESCRIBE and III_DESCRIBE_ENUM generate these for structs and enums; specialize
// json_traits yourself for anything else (a type with private members, a class template, a
// type with a custom wire format):
//
// @code
//   struct Point { double x = 0, y = 0; };  // written as [x, y]
//
//   template <> struct iii::json_traits<Point> {
//       static void read(iii::JsonReader& r, Point& p) {
//           r.begin_array();                                   // [x, y]
//           if (!r.next_element()) r.fail("expected [x, y]");
//           iii::json_traits<double>::read(r, p.x);
//           if (!r.next_element()) r.fail("expected [x, y]");
//           iii::json_traits<double>::read(r, p.y);
//           if (r.next_element()) r.fail_container("expected [x, y]");  // at the array
//       }
//       static void write(iii::JsonWriter& w, const Point& p) {
//           w.begin_array(); w.write_double(p.x); w.write_double(p.y); w.end_array();
//       }
//       static std::string name() { return "Point"; }
//       static iii::Value schema(iii::SchemaBuilder&) { return {{"type", "array"}}; }
//   };
//
//   Point p = iii::from_json<Point>("[1.5, 2]");
//   std::string text = iii::to_json(p);  // [1.5,2.0]
// @endcode
//
// ## Supported types and their JSON
//
// | C++                                   | JSON                     | decode rule                  |
// | ------------------------------------- | ------------------------ | ---------------------------- |
// | bool                                  | true / false             |                              |
// | int8..int64, uint8..uint64 (any width)| integer                  | range-checked; no fractions  |
// | float, double                         | number                   | integers accepted            |
// | std::string                           | string                   |                              |
// | std::nullptr_t                        | null                     |                              |
// | std::optional<T>                      | T or null                | absent or null: nullopt      |
// | std::vector<T>                        | array                    |                              |
// | std::array<T, N>                      | array of exactly N       |                              |
// | std::tuple<T...>                      | array of exactly sizeof..|                              |
// | std::map / std::unordered_map         | object                   | keys must be std::string     |
// |   <std::string, T>                    |                          |                              |
// | III_DESCRIBE struct                   | object                   | unknown keys ignored;        |
// |                                       |                          | missing non-optional: error  |
// | III_DESCRIBE_ENUM enum                | string                   | one of the declared names    |
// | iii::Value                            | anything                 | dynamic                      |
//
// Encoding writes every field (a nullopt field as null, like serde), NaN and infinities as
// null, and an enum value without a declared name throws Error(Errc::Serde).
//
// ## Decode errors
//
// Every decode failure throws iii::Error(Errc::Serde) whose message starts with the JSON path
// of the offending value, then what was expected:
//
//   $.items[3].name: expected string
//   $.items[3].name: missing field
//   $.age: 300 is out of range for uint8
//   $.color: expected one of "red", "green"
//   $.point: expected array of length 2
//   $: invalid JSON: <simdjson's reason>
//
// Keys that are not identifiers appear as `["a key"]`.
//
// ## JSON Schema rules (draft-07, shaped like schemars 0.8 for the equivalent Rust type)
//
// json_schema<T>() returns a root schema:
//   {"$schema": "http://json-schema.org/draft-07/schema#", "title": <name of T>,
//    ...T's inline schema..., "definitions": {...}}     ("definitions" only when not empty)
//
// | C++                  | schema                                                 | name       |
// | -------------------- | ------------------------------------------------------ | ---------- |
// | bool                 | {"type":"boolean"}                                     | Boolean    |
// | intN_t               | {"type":"integer","format":"intN"}                     | intN       |
// | uintN_t              | {"type":"integer","format":"uintN","minimum":0.0}      | uintN      |
// | float / double       | {"type":"number","format":"float" / "double"}          | float/double |
// | std::string          | {"type":"string"}                                      | String     |
// | std::nullptr_t       | {"type":"null"}                                        | null       |
// | std::optional<T>     | T's schema with "null" added to its "type"             | Nullable_T |
// |                      | ({"type":["string","null"]}); when T has no "type"     |            |
// |                      | (a $ref): {"anyOf":[T, {"type":"null"}]}               |            |
// | std::vector<T>       | {"type":"array","items":T}                             | Array_of_T |
// | std::array<T, N>     | {"type":"array","items":T,"maxItems":N,"minItems":N}   | Array_size_N_of_T |
// | std::tuple<A, B>     | {"type":"array","items":[A,B],"maxItems":2,"minItems":2} | Tuple_of_A_and_B |
// | map<string, T>       | {"type":"object","additionalProperties":T}             | Map_of_T   |
// | iii::Value           | true (anything)                                        | AnyValue   |
// | described struct     | {"type":"object","required":[...],"properties":{...}}  | struct name |
// | described enum       | {"type":"string","enum":["red","green"]}               | enum name  |
//
// - Described structs and enums are "referenceable": where they are used (a field, an array
//   element...) the schema is {"$ref":"#/definitions/<Name>"} and the definition is stored once
//   in the root's "definitions", sorted by name. The root type itself is inlined, with "title".
// - "required" lists the fields whose type is not std::optional; it and "properties" are
//   omitted when empty. Both keep declaration order (schemars sorts them alphabetically, an
//   artefact of its BTreeMap; JSON Schema gives order no meaning).
// - Member order within a schema object follows schemars' serialization: "$schema", "title",
//   "type", "format", "enum", "anyOf", "minimum", "items", "maxItems", "minItems", "required",
//   "properties", "additionalProperties", "$ref", "definitions".
// - The name of a struct or enum is the name given to the macro without namespace qualifiers.

#include <iii/error.hpp>
#include <iii/export.hpp>
#include <iii/json.hpp>

#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace iii {

// ---- reader and writer ----------------------------------------------------------------------

/// A pull reader over one JSON document, used by json_traits<T>::read. It stands on one
/// "current value" at a time; reading it (read_*, begin_*, skip) consumes it.
///
/// Objects: `begin_object(); std::string_view k; while (next_key(k)) { /* read or skip the
/// value */ }`. Arrays: `begin_array(); while (next_element()) { /* read or skip */ }`. A value
/// that is neither read nor skipped before the next next_key()/next_element() is skipped.
///
/// The reader tracks the JSON path of the current value; fail() throws
/// Error(Errc::Serde, "<path>: <what>"). Every read_*/begin_* throws the same way, with
/// "expected <kind>", when the current value is of another kind, and with "invalid JSON: ..."
/// when the text is malformed.
///
/// Lifetime: string views returned by read_string() and next_key() stay valid until the
/// from_json()/from_value() call that created the reader returns. Threading: a reader belongs
/// to the one call (and thread) that created it; from_json() and friends are thread-safe.
class III_API JsonReader {
public:
    /// Kinds of JSON values as peek() reports them.
    enum class Type { Null, Bool, Number, String, Array, Object };

    virtual ~JsonReader();
    JsonReader(const JsonReader&) = delete;
    JsonReader& operator=(const JsonReader&) = delete;

    /// The kind of the current value, without consuming it.
    Type peek() { return do_peek(); }
    /// Consumes the current value and returns true if it is null; false (nothing consumed)
    /// otherwise.
    bool read_null() { return do_read_null(); }
    /// Consumes the current value, which must be true or false.
    bool read_bool() {
        bool b = false;
        if (!do_read_bool(b)) fail("expected boolean");
        return b;
    }
    /// Consumes the current value if it is an integer that fits int64 and returns true; returns
    /// false (nothing consumed) otherwise (not a number, a fraction, or out of range).
    bool try_int64(std::int64_t& out) { return do_read_int64(out); }
    /// As try_int64, for integers that fit uint64.
    bool try_uint64(std::uint64_t& out) { return do_read_uint64(out); }
    /// Any number (integers too), as double.
    double read_double() {
        double d = 0;
        if (!do_read_double(d)) fail("expected number");
        return d;
    }
    /// Consumes the current value, which must be a string (unescaped; see the lifetime above).
    std::string_view read_string() {
        std::string_view s;
        if (!do_read_string(s)) fail("expected string");
        return s;
    }
    /// The current value as a dynamic iii::Value (any kind).
    void read_value(Value& out) { do_read_value(out); }

    /// Opens the current value, which must be an object; iterate it with next_key().
    void begin_object() {
        check_depth();
        if (!do_begin_object()) fail("expected object");
        path_.push_back(Segment{});
    }
    /// Advances to the next member of the innermost open object: true with its key (and the
    /// member's value as the current value), false at the end of the object (which closes it).
    bool next_key(std::string_view& key) {
        if (!do_next_key(key)) {
            path_.pop_back();
            return false;
        }
        path_.back().key = key;
        return true;
    }
    /// Opens the current value, which must be an array; iterate it with next_element().
    void begin_array() {
        check_depth();
        if (!do_begin_array()) fail("expected array");
        path_.push_back(Segment{{}, static_cast<std::size_t>(-1), true});
    }
    /// Advances to the next element of the innermost open array: true (the element is the
    /// current value), or false at the end of the array (which closes it).
    bool next_element() {
        if (!do_next_element()) {
            path_.pop_back();
            return false;
        }
        ++path_.back().index;
        return true;
    }
    /// Consumes the current value, whatever it is.
    void skip() { do_skip(); }

    /// The JSON path of the current value: "$", "$.items[3].name", "$[\"a key\"]".
    std::string path() const;
    /// Throws Error(Errc::Serde, "<path>: <what>").
    [[noreturn]] void fail(std::string_view what) const;
    /// As fail(), but at the innermost open array or object instead of its current element
    /// (for "expected array of length 2" when a third element shows up).
    [[noreturn]] void fail_container(std::string_view what) const;
    /// Throws Error(Errc::Serde, "<path>.<field>: missing field") for the innermost object that
    /// was just closed (call it after next_key() returned false).
    [[noreturn]] void fail_missing(std::string_view field) const;

    /// Nesting deeper than this fails with "nesting too deep" (guards the stack against
    /// recursive types fed hostile input). Below simdjson's own limit (1024 levels, counting
    /// the document), which the parser must never reach: in a library built without
    /// optimisation, simdjson's development checks turn it into an assertion failure.
    static constexpr std::size_t max_depth = 1000;

protected:
    JsonReader() = default;
    /// Clears the path, for readers reused across documents.
    void reset_path() noexcept { path_.clear(); }
    /// Nesting depth of the current value (0 at the root).
    std::size_t depth() const noexcept { return path_.size(); }

    // The backend: what a reader implements (the SDK has one over simdjson and one over
    // iii::Value); the public member of the same name without `do_` calls it. do_read_*()
    // return false, consuming nothing, when the current value is of another kind, and throw
    // (through fail()) when the document is malformed.

    /// Backend of peek().
    virtual Type do_peek() = 0;
    /// Backend of read_null().
    virtual bool do_read_null() = 0;
    /// Backend of read_bool().
    virtual bool do_read_bool(bool& out) = 0;
    /// Backend of try_int64().
    virtual bool do_read_int64(std::int64_t& out) = 0;
    /// Backend of try_uint64().
    virtual bool do_read_uint64(std::uint64_t& out) = 0;
    /// Backend of read_double().
    virtual bool do_read_double(double& out) = 0;
    /// Backend of read_string().
    virtual bool do_read_string(std::string_view& out) = 0;
    /// Backend of read_value().
    virtual void do_read_value(Value& out) = 0;
    /// Backend of begin_object(): false when the current value is not an object.
    virtual bool do_begin_object() = 0;
    /// Backend of next_key().
    virtual bool do_next_key(std::string_view& key) = 0;
    /// Backend of begin_array(): false when the current value is not an array.
    virtual bool do_begin_array() = 0;
    /// Backend of next_element().
    virtual bool do_next_element() = 0;
    /// Backend of skip().
    virtual void do_skip() = 0;

private:
    struct Segment {
        std::string_view key;
        std::size_t index = 0;
        bool is_index = false;
    };
    void check_depth() const {
        if (path_.size() >= max_depth) fail("nesting too deep");
    }
    std::vector<Segment> path_;
};

/// A push writer producing one JSON value, used by json_traits<T>::write. Calls must form
/// valid JSON: inside an object, key() before every value. A sequence left unfinished (a
/// missing end_object()) makes to_json() throw Error(Errc::Serde); other misuse (a key outside
/// an object) is a programming error that RapidJSON's assertions catch in debug builds. Like a
/// reader, a writer belongs to the one call that created it.
class III_API JsonWriter {
public:
    virtual ~JsonWriter();
    /// null.
    virtual void write_null() = 0;
    /// true or false.
    virtual void write_bool(bool b) = 0;
    /// A signed integer.
    virtual void write_int64(std::int64_t i) = 0;
    /// An unsigned integer.
    virtual void write_uint64(std::uint64_t u) = 0;
    /// A number; NaN and infinities, which JSON cannot express, are written as null.
    virtual void write_double(double d) = 0;
    /// A string (escaped as JSON needs).
    virtual void write_string(std::string_view s) = 0;
    /// Opens an object: then key() and one value per member, then end_object().
    virtual void begin_object() = 0;
    /// The key of the next member of the innermost open object.
    virtual void key(std::string_view k) = 0;
    /// Closes the innermost open object.
    virtual void end_object() = 0;
    /// Opens an array: then its values.
    virtual void begin_array() = 0;
    /// Closes the innermost open array.
    virtual void end_array() = 0;
    /// A dynamic value, written as is.
    virtual void write_value(const Value& v) = 0;
    /// Text that is already one valid JSON value, embedded verbatim (not validated by the
    /// text writer; parsed by the iii::Value writer).
    virtual void write_raw(std::string_view json) = 0;

protected:
    JsonWriter() = default;
};

class SchemaBuilder;

/// The customization point; see the header comment. No primary definition: a type without a
/// specialization is not serializable.
template <class T>
struct json_traits;

/// A type with json_traits read and write.
template <class T>
concept Serializable = requires(JsonReader& r, JsonWriter& w, T& v, const T& cv) {
    json_traits<T>::read(r, v);
    json_traits<T>::write(w, cv);
};

// ---- schema ---------------------------------------------------------------------------------

namespace detail {
template <class T>
concept traits_have_name = requires {
    { json_traits<T>::name() } -> std::convertible_to<std::string>;
};
template <class T>
concept traits_have_schema = requires(SchemaBuilder& b) {
    { json_traits<T>::schema(b) } -> std::convertible_to<Value>;
};
template <class T>
concept traits_referenceable = requires {
    requires static_cast<bool>(json_traits<T>::referenceable);
};
template <class T>
concept traits_optional = requires {
    requires !static_cast<bool>(json_traits<T>::required);
};

/// {"$schema": draft-07, "title": title, ...schema, "definitions": definitions}.
III_API Value root_schema(std::string title, Value schema, std::map<std::string, Value> definitions);
}  // namespace detail

/// The schema name of T (schemars' schema_name): "int32", "String", "Array_of_Item", ...
template <class T>
std::string schema_name() {
    if constexpr (detail::traits_have_name<T>)
        return std::string(json_traits<T>::name());
    else
        return "AnyValue";
}

/// Collects the "definitions" of one root schema while subschemas are generated.
class SchemaBuilder {
public:
    /// The schema of T where it is used: {"$ref":"#/definitions/<name>"} for a referenceable
    /// type (whose definition is generated once and stored), its inline schema otherwise.
    template <class T>
    Value subschema() {
        if constexpr (detail::traits_referenceable<T>) {
            std::string name = schema_name<T>();
            std::string ref = "#/definitions/" + name;
            if (definitions_.find(name) == definitions_.end()) {
                // Placeholder first: a recursive type (a Node with a vector<Node>) finds it and
                // stops instead of recursing forever.
                definitions_.emplace(name, Value(true));
                Value def = inline_schema<T>();
                definitions_[name] = std::move(def);
            }
            return Value::object({{"$ref", Value(std::move(ref))}});
        } else {
            return inline_schema<T>();
        }
    }
    /// T's own schema, never a $ref (the root, or a definition).
    template <class T>
    Value inline_schema() {
        if constexpr (detail::traits_have_schema<T>)
            return json_traits<T>::schema(*this);
        else
            return Value(true);
    }
    /// The definitions collected so far, by name.
    const std::map<std::string, Value>& definitions() const noexcept { return definitions_; }
    /// Moves the collected definitions out (for the root schema's "definitions").
    std::map<std::string, Value> take_definitions() noexcept { return std::move(definitions_); }

private:
    std::map<std::string, Value> definitions_;
};

/// The draft-07 root schema of T, shaped like schemars' output (see the header comment).
template <class T>
Value json_schema() {
    SchemaBuilder b;
    Value schema = b.inline_schema<T>();
    return detail::root_schema(schema_name<T>(), std::move(schema), b.take_definitions());
}

// ---- entry points ---------------------------------------------------------------------------

namespace detail {
using ReadFn = void (*)(JsonReader&, void*);
using WriteFn = void (*)(JsonWriter&, const void*);
/// Parses `json` with simdjson on-demand and calls read on its root; fails if anything but
/// whitespace follows the root value.
III_API void read_json(std::string_view json, ReadFn read, void* out);
/// Writes with RapidJSON's Writer into `out` (replacing its content).
III_API void write_json(std::string& out, WriteFn write, const void* in);
III_API void read_tree(const Value& tree, ReadFn read, void* out);
III_API Value write_tree(WriteFn write, const void* in);

template <class T>
void read_erased(JsonReader& r, void* out) {
    json_traits<T>::read(r, *static_cast<T*>(out));
}
template <class T>
void write_erased(JsonWriter& w, const void* in) {
    json_traits<T>::write(w, *static_cast<const T*>(in));
}
template <class T>
inline constexpr bool serializable_check = Serializable<T>;
}  // namespace detail

#define III_DETAIL_NOT_SERIALIZABLE                                                              \
    "iii: this type has no json_traits. Declare it with III_DESCRIBE / III_DESCRIBE_ENUM in the " \
    "namespace of the type, or specialize iii::json_traits<T> (see iii/describe.hpp)"

/// Decodes JSON text into `out` (simdjson on-demand, straight into the object). Throws
/// Error(Errc::Serde) naming the path of the first mismatch. Thread-safe.
template <class T>
void from_json(std::string_view json, T& out) {
    static_assert(Serializable<T>, III_DETAIL_NOT_SERIALIZABLE);
    detail::read_json(json, &detail::read_erased<T>, &out);
}
/// Decodes JSON text into a value-initialized T (T must be default-constructible).
template <class T>
T from_json(std::string_view json) {
    T out{};
    iii::from_json(json, out);
    return out;
}
/// Encodes `value` as compact JSON text into `out` (RapidJSON's Writer, straight from the
/// object). Throws Error(Errc::Serde) for an enum value without a declared name, and for a
/// string or key that is not valid UTF-8 (naming its path, "$.lines[1].notes[0]: ..."). Thread-safe.
template <class T>
void to_json(const T& value, std::string& out) {
    static_assert(Serializable<T>, III_DETAIL_NOT_SERIALIZABLE);
    detail::write_json(out, &detail::write_erased<T>, &value);
}
template <class T>
std::string to_json(const T& value) {
    std::string out;
    iii::to_json(value, out);
    return out;
}
/// Decodes a dynamic value (same rules and errors as from_json).
template <class T>
T from_value(const Value& value) {
    static_assert(Serializable<T>, III_DETAIL_NOT_SERIALIZABLE);
    T out{};
    detail::read_tree(value, &detail::read_erased<T>, &out);
    return out;
}
/// Encodes into a dynamic value.
template <class T>
Value to_value(const T& value) {
    static_assert(Serializable<T>, III_DETAIL_NOT_SERIALIZABLE);
    return detail::write_tree(&detail::write_erased<T>, &value);
}

// ---- traits for the standard types ----------------------------------------------------------

namespace detail {
template <class T>
concept json_integer = std::is_integral_v<T> && !std::is_same_v<T, bool> &&
                       !std::is_same_v<T, char> && !std::is_same_v<T, wchar_t> &&
                       !std::is_same_v<T, char8_t> && !std::is_same_v<T, char16_t> &&
                       !std::is_same_v<T, char32_t>;

template <class T>
std::string integer_format() {
    return std::string(std::is_signed_v<T> ? "int" : "uint") + std::to_string(sizeof(T) * 8);
}
[[noreturn]] III_API void fail_integer_range(JsonReader& r, std::string_view value, std::string_view type);
[[noreturn]] III_API void fail_not_integer(JsonReader& r, std::string_view type);
}  // namespace detail

/// json_traits of `bool`: see the supported types in @ref described-types.
template <>
struct json_traits<bool> {
    /// Decodes the reader's current value into `v` (throws Error(Errc::Serde) naming the path).
    static void read(JsonReader& r, bool& v) { v = r.read_bool(); }
    /// Encodes `v` as one JSON value.
    static void write(JsonWriter& w, bool v) { w.write_bool(v); }
    /// The schema name (the "title", and the key in "definitions").
    static std::string name() { return "Boolean"; }
    /// The inline draft-07 schema.
    static Value schema(SchemaBuilder&) { return Value::object({{"type", "boolean"}}); }
};

/// json_traits of `T`: see the supported types in @ref described-types.
template <detail::json_integer T>
struct json_traits<T> {
    /// Decodes the reader's current value into `v` (throws Error(Errc::Serde) naming the path).
    static void read(JsonReader& r, T& v) {
        if constexpr (std::is_signed_v<T>) {
            std::int64_t i = 0;
            if (r.try_int64(i)) {
                if (i < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
                    i > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
                    detail::fail_integer_range(r, std::to_string(i), name());
                v = static_cast<T>(i);
                return;
            }
        } else {
            std::uint64_t u = 0;
            if (r.try_uint64(u)) {
                if (u > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
                    detail::fail_integer_range(r, std::to_string(u), name());
                v = static_cast<T>(u);
                return;
            }
        }
        detail::fail_not_integer(r, name());
    }
    /// Encodes `v` as one JSON value.
    static void write(JsonWriter& w, T v) {
        if constexpr (std::is_signed_v<T>)
            w.write_int64(static_cast<std::int64_t>(v));
        else
            w.write_uint64(static_cast<std::uint64_t>(v));
    }
    /// The schema name (the "title", and the key in "definitions").
    static std::string name() { return detail::integer_format<T>(); }
    /// The inline draft-07 schema.
    static Value schema(SchemaBuilder&) {
        Value s = Value::object({{"type", "integer"}, {"format", name()}});
        if constexpr (std::is_unsigned_v<T>) s.set("minimum", 0.0);
        return s;
    }
};

/// json_traits of `T`: see the supported types in @ref described-types.
template <std::floating_point T>
    requires(!std::is_same_v<T, long double>)
struct json_traits<T> {
    /// Decodes the reader's current value into `v` (throws Error(Errc::Serde) naming the path).
    static void read(JsonReader& r, T& v) {
        double d = r.read_double();
        if constexpr (std::is_same_v<T, float>) {
            if (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max()))
                r.fail("number is out of range for float");
        }
        v = static_cast<T>(d);
    }
    /// Encodes `v` as one JSON value.
    static void write(JsonWriter& w, T v) { w.write_double(static_cast<double>(v)); }
    /// The schema name (the "title", and the key in "definitions").
    static std::string name() { return std::is_same_v<T, float> ? "float" : "double"; }
    /// The inline draft-07 schema.
    static Value schema(SchemaBuilder&) {
        return Value::object({{"type", "number"}, {"format", name()}});
    }
};

/// json_traits of `std::string`: see the supported types in @ref described-types.
template <>
struct json_traits<std::string> {
    /// Decodes the reader's current value into `v` (throws Error(Errc::Serde) naming the path).
    static void read(JsonReader& r, std::string& v) { v.assign(r.read_string()); }
    /// Encodes `v` as one JSON value.
    static void write(JsonWriter& w, const std::string& v) { w.write_string(v); }
    /// The schema name (the "title", and the key in "definitions").
    static std::string name() { return "String"; }
    /// The inline draft-07 schema.
    static Value schema(SchemaBuilder&) { return Value::object({{"type", "string"}}); }
};

/// json_traits of `std::nullptr_t`: see the supported types in @ref described-types.
template <>
struct json_traits<std::nullptr_t> {
    /// Decodes the reader's current value into `v` (throws Error(Errc::Serde) naming the path).
    static void read(JsonReader& r, std::nullptr_t&) {
        if (!r.read_null()) r.fail("expected null");
    }
    /// Encodes `v` as one JSON value.
    static void write(JsonWriter& w, std::nullptr_t) { w.write_null(); }
    /// The schema name (the "title", and the key in "definitions").
    static std::string name() { return "null"; }
    /// The inline draft-07 schema.
    static Value schema(SchemaBuilder&) { return Value::object({{"type", "null"}}); }
};

/// json_traits of `Value`: see the supported types in @ref described-types.
template <>
struct json_traits<Value> {
    /// Decodes the reader's current value into `v` (throws Error(Errc::Serde) naming the path).
    static void read(JsonReader& r, Value& v) { r.read_value(v); }
    /// Encodes `v` as one JSON value.
    static void write(JsonWriter& w, const Value& v) { w.write_value(v); }
    /// The schema name (the "title", and the key in "definitions").
    static std::string name() { return "AnyValue"; }
    /// The inline draft-07 schema.
    static Value schema(SchemaBuilder&) { return Value(true); }
};

namespace detail {
/// schemars' Option<T> rule: add "null" to "type"; `true` stays `true`; anything without a
/// "type" (a $ref) becomes {"anyOf":[schema, {"type":"null"}]}.
III_API Value add_null_type(Value schema);
}  // namespace detail

/// json_traits of `std::optional<T>`: see the supported types in @ref described-types.
template <class T>
struct json_traits<std::optional<T>> {
    /// A struct field of this type may be absent (it is then empty) and is not "required".
    static constexpr bool required = false;
    /// Decodes the reader's current value into `v` (throws Error(Errc::Serde) naming the path).
    static void read(JsonReader& r, std::optional<T>& v) {
        if (r.read_null()) {
            v.reset();
            return;
        }
        if (!v) v.emplace();
        json_traits<T>::read(r, *v);
    }
    /// Encodes `v` as one JSON value.
    static void write(JsonWriter& w, const std::optional<T>& v) {
        if (v)
            json_traits<T>::write(w, *v);
        else
            w.write_null();
    }
    /// The schema name (the "title", and the key in "definitions").
    static std::string name() { return "Nullable_" + schema_name<T>(); }
    /// The inline draft-07 schema.
    static Value schema(SchemaBuilder& b) { return detail::add_null_type(b.subschema<T>()); }
};

/// json_traits of `std::vector<T, A>`: see the supported types in @ref described-types.
template <class T, class A>
struct json_traits<std::vector<T, A>> {
    /// Decodes the reader's current value into `v` (throws Error(Errc::Serde) naming the path).
    static void read(JsonReader& r, std::vector<T, A>& v) {
        v.clear();
        r.begin_array();
        while (r.next_element()) {
            if constexpr (std::is_same_v<T, bool>) {
                bool b = false;
                json_traits<bool>::read(r, b);
                v.push_back(b);
            } else {
                json_traits<T>::read(r, v.emplace_back());
            }
        }
    }
    /// Encodes `v` as one JSON value.
    static void write(JsonWriter& w, const std::vector<T, A>& v) {
        w.begin_array();
        for (const auto& e : v) json_traits<T>::write(w, e);
        w.end_array();
    }
    /// The schema name (the "title", and the key in "definitions").
    static std::string name() { return "Array_of_" + schema_name<T>(); }
    /// The inline draft-07 schema.
    static Value schema(SchemaBuilder& b) {
        return Value::object({{"type", "array"}, {"items", b.subschema<T>()}});
    }
};

/// json_traits of `std::array<T, N>`: see the supported types in @ref described-types.
template <class T, std::size_t N>
struct json_traits<std::array<T, N>> {
    /// Decodes the reader's current value into `v` (throws Error(Errc::Serde) naming the path).
    static void read(JsonReader& r, std::array<T, N>& v) {
        r.begin_array();
        for (std::size_t i = 0; i < N; ++i) {
            if (!r.next_element()) r.fail(length_error());  // closed: the path is the array's
            json_traits<T>::read(r, v[i]);
        }
        if (r.next_element()) r.fail_container(length_error());
    }
    /// Encodes `v` as one JSON value.
    static void write(JsonWriter& w, const std::array<T, N>& v) {
        w.begin_array();
        for (const auto& e : v) json_traits<T>::write(w, e);
        w.end_array();
    }
    /// The schema name (the "title", and the key in "definitions").
    static std::string name() {
        return "Array_size_" + std::to_string(N) + "_of_" + schema_name<T>();
    }
    /// The inline draft-07 schema.
    static Value schema(SchemaBuilder& b) {
        return Value::object({{"type", "array"},
                              {"items", b.subschema<T>()},
                              {"maxItems", static_cast<std::uint64_t>(N)},
                              {"minItems", static_cast<std::uint64_t>(N)}});
    }

private:
    static std::string length_error() { return "expected array of length " + std::to_string(N); }
};

/// json_traits of `std::tuple<Ts...>`: see the supported types in @ref described-types.
template <class... Ts>
struct json_traits<std::tuple<Ts...>> {
    /// Decodes the reader's current value into `v` (throws Error(Errc::Serde) naming the path).
    static void read(JsonReader& r, std::tuple<Ts...>& v) {
        r.begin_array();
        std::apply(
            [&](auto&... elems) {
                (read_one<std::remove_reference_t<decltype(elems)>>(r, elems), ...);
            },
            v);
        if (r.next_element()) r.fail_container(length_error());
    }
    /// Encodes `v` as one JSON value.
    static void write(JsonWriter& w, const std::tuple<Ts...>& v) {
        w.begin_array();
        std::apply([&](const auto&... elems) { (json_traits<Ts>::write(w, elems), ...); }, v);
        w.end_array();
    }
    /// The schema name (the "title", and the key in "definitions").
    static std::string name() {
        std::string n = "Tuple_of";
        std::string sep = "_";
        ((n += sep + schema_name<Ts>(), sep = "_and_"), ...);
        return n;
    }
    /// The inline draft-07 schema.
    static Value schema(SchemaBuilder& b) {
        return Value::object({{"type", "array"},
                              {"items", Value::array({b.subschema<Ts>()...})},
                              {"maxItems", static_cast<std::uint64_t>(sizeof...(Ts))},
                              {"minItems", static_cast<std::uint64_t>(sizeof...(Ts))}});
    }

private:
    template <class T>
    static void read_one(JsonReader& r, T& e) {
        if (!r.next_element()) r.fail(length_error());
        json_traits<T>::read(r, e);
    }
    static std::string length_error() {
        return "expected array of length " + std::to_string(sizeof...(Ts));
    }
};

namespace detail {
template <class M>
struct string_map_traits {
    using T = typename M::mapped_type;
    /// Decodes the reader's current value into `v` (throws Error(Errc::Serde) naming the path).
    static void read(JsonReader& r, M& v) {
        v.clear();
        r.begin_object();
        std::string_view key;
        while (r.next_key(key)) {
            T value{};
            json_traits<T>::read(r, value);
            v.insert_or_assign(std::string(key), std::move(value));
        }
    }
    /// Encodes `v` as one JSON value.
    static void write(JsonWriter& w, const M& v) {
        w.begin_object();
        for (const auto& [k, e] : v) {
            w.key(k);
            json_traits<T>::write(w, e);
        }
        w.end_object();
    }
    /// The schema name (the "title", and the key in "definitions").
    static std::string name() { return "Map_of_" + schema_name<T>(); }
    /// The inline draft-07 schema.
    static Value schema(SchemaBuilder& b) {
        return Value::object({{"type", "object"}, {"additionalProperties", b.subschema<T>()}});
    }
};
}  // namespace detail

template <class T, class C, class A>
struct json_traits<std::map<std::string, T, C, A>>
    : detail::string_map_traits<std::map<std::string, T, C, A>> {};
template <class T, class H, class E, class A>
struct json_traits<std::unordered_map<std::string, T, H, E, A>>
    : detail::string_map_traits<std::unordered_map<std::string, T, H, E, A>> {};

// ---- described structs and enums ------------------------------------------------------------

namespace detail {
/// One field of a described struct: its JSON name and member pointer.
template <class C, class M>
struct Field {
    using type = M;
    std::string_view name;
    M C::*member;
};
template <class C, class M>
constexpr Field<C, M> make_field(std::string_view name, M C::*member) noexcept {
    return {name, member};
}
/// One enumerator of a described enum and its JSON string.
template <class E>
struct EnumEntry {
    E value;
    std::string_view name;
};
/// "app::v1::Order" -> "Order" (schemars titles are bare type names).
constexpr std::string_view unqualified_name(std::string_view name) noexcept {
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    const auto colon = name.rfind(':');
    if (colon != std::string_view::npos) name.remove_prefix(colon + 1);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    return name;
}

template <class T>
concept described_struct = std::is_class_v<T> && requires(const T* p) {
    iii_describe_fields(p);
    { iii_describe_name(p) } -> std::convertible_to<std::string_view>;
};
template <class T>
concept described_enum = std::is_enum_v<T> && requires(const T* p) {
    iii_describe_enum(p);
    { iii_describe_name(p) } -> std::convertible_to<std::string_view>;
};

[[noreturn]] III_API void fail_enum(JsonReader& r, const std::string_view* names, std::size_t count);
[[noreturn]] III_API void fail_enum_write(std::string_view type, long long value);
}  // namespace detail

/// json_traits of a struct declared with III_DESCRIBE: a JSON object with one member per
/// declared field, in declaration order.
template <detail::described_struct T>
struct json_traits<T> {
    /// The declared fields (name and member pointer), in declaration order.
    static constexpr auto fields = iii_describe_fields(static_cast<const T*>(nullptr));
    /// How many fields.
    static constexpr std::size_t size = std::tuple_size_v<std::remove_cv_t<decltype(fields)>>;
    /// The schema lives in "definitions" and is referred to with "$ref".
    static constexpr bool referenceable = true;

    /// Decodes the reader's current value into `v` (throws Error(Errc::Serde) naming the path).
    static void read(JsonReader& r, T& v) {
        r.begin_object();
        std::array<bool, size> seen{};
        std::size_t next = 0;
        std::string_view key;
        while (r.next_key(key)) {
            // Senders usually keep declaration order, so try the field after the last one
            // first: one comparison per key instead of a scan.
            std::size_t i = (next < size && names[next] == key) ? next : find(key);
            if (i == size) {
                r.skip();  // unknown keys (such as the engine's _caller_worker_id) are ignored
                continue;
            }
            read_field(r, v, i, std::make_index_sequence<size>{});
            seen[i] = true;
            next = i + 1;
        }
        absent_fields(r, v, seen, std::make_index_sequence<size>{});
    }
    /// Encodes `v` as one JSON value.
    static void write(JsonWriter& w, const T& v) {
        w.begin_object();
        std::apply(
            [&](const auto&... f) {
                ((w.key(f.name),
                  json_traits<typename std::remove_cvref_t<decltype(f)>::type>::write(w, v.*(f.member))),
                 ...);
            },
            fields);
        w.end_object();
    }
    /// The schema name (the "title", and the key in "definitions").
    static std::string name() {
        return std::string(iii_describe_name(static_cast<const T*>(nullptr)));
    }
    /// The inline draft-07 schema.
    static Value schema(SchemaBuilder& b) {
        Value required = Value::array();
        Value properties = Value::object();
        std::apply(
            [&](const auto&... f) {
                (add_property<typename std::remove_cvref_t<decltype(f)>::type>(
                     b, f.name, required, properties),
                 ...);
            },
            fields);
        Value s = Value::object({{"type", "object"}});
        if (required.size() > 0) s.set("required", std::move(required));
        if (properties.size() > 0) s.set("properties", std::move(properties));
        return s;
    }

private:
    static constexpr auto names = std::apply(
        [](const auto&... f) { return std::array<std::string_view, size>{f.name...}; }, fields);

    static std::size_t find(std::string_view key) {
        for (std::size_t i = 0; i < size; ++i)
            if (names[i] == key) return i;
        return size;
    }
    template <std::size_t... I>
    static void read_field(JsonReader& r, T& v, std::size_t i, std::index_sequence<I...>) {
        (void)((i == I ? (read_member<I>(r, v), true) : false) || ...);
    }
    template <std::size_t I>
    static void read_member(JsonReader& r, T& v) {
        constexpr auto f = std::get<I>(fields);
        using M = typename decltype(f)::type;
        json_traits<M>::read(r, v.*(f.member));
    }
    template <std::size_t... I>
    static void absent_fields(JsonReader& r, T& v, const std::array<bool, size>& seen,
                              std::index_sequence<I...>) {
        (absent_member<I>(r, v, seen[I]), ...);
    }
    template <std::size_t I>
    static void absent_member(JsonReader& r, T& v, bool seen) {
        if (seen) return;
        constexpr auto f = std::get<I>(fields);
        using M = typename decltype(f)::type;
        if constexpr (detail::traits_optional<M>) {
            // reset() where there is one: assigning M{} to an optional trips g++ 12's
            // -Wmaybe-uninitialized under -fsanitize.
            if constexpr (requires(M& m) { m.reset(); })
                (v.*(f.member)).reset();
            else
                v.*(f.member) = M{};
        } else
            r.fail_missing(f.name);
    }
    template <class M>
    static void add_property(SchemaBuilder& b, std::string_view name, Value& required,
                             Value& properties) {
        if constexpr (!detail::traits_optional<M>) required.push_back(Value(name));
        properties.set(std::string(name), b.subschema<M>());
    }
};

/// json_traits of an enum declared with III_DESCRIBE_ENUM: a JSON string.
template <detail::described_enum E>
struct json_traits<E> {
    /// The declared enumerators and their JSON names.
    static constexpr auto entries = iii_describe_enum(static_cast<const E*>(nullptr));
    /// The schema lives in "definitions" and is referred to with "$ref".
    static constexpr bool referenceable = true;

    /// Decodes the reader's current value into `v` (throws Error(Errc::Serde) naming the path).
    static void read(JsonReader& r, E& v) {
        std::string_view s = r.read_string();
        for (const auto& e : entries) {
            if (e.name == s) {
                v = e.value;
                return;
            }
        }
        detail::fail_enum(r, names.data(), names.size());
    }
    /// Encodes `v` as one JSON value.
    static void write(JsonWriter& w, E v) {
        for (const auto& e : entries) {
            if (e.value == v) {
                w.write_string(e.name);
                return;
            }
        }
        detail::fail_enum_write(name(), static_cast<long long>(v));
    }
    /// The schema name (the "title", and the key in "definitions").
    static std::string name() {
        return std::string(iii_describe_name(static_cast<const E*>(nullptr)));
    }
    /// The inline draft-07 schema.
    static Value schema(SchemaBuilder&) {
        Value values = Value::array();
        for (const auto& e : entries) values.push_back(Value(e.name));
        return Value::object({{"type", "string"}, {"enum", std::move(values)}});
    }

private:
    static constexpr auto names = [] {
        std::array<std::string_view, entries.size()> n{};
        for (std::size_t i = 0; i < entries.size(); ++i) n[i] = entries[i].name;
        return n;
    }();
};

}  // namespace iii

// ---- the macros -----------------------------------------------------------------------------

// A FOR_EACH over up to 256 arguments (each rescan of III_PP_EXPAND advances one argument).
#define III_PP_PARENS ()
#define III_PP_EXPAND(...) III_PP_EXPAND3(III_PP_EXPAND3(III_PP_EXPAND3(III_PP_EXPAND3(__VA_ARGS__))))
#define III_PP_EXPAND3(...) III_PP_EXPAND2(III_PP_EXPAND2(III_PP_EXPAND2(III_PP_EXPAND2(__VA_ARGS__))))
#define III_PP_EXPAND2(...) III_PP_EXPAND1(III_PP_EXPAND1(III_PP_EXPAND1(III_PP_EXPAND1(__VA_ARGS__))))
#define III_PP_EXPAND1(...) __VA_ARGS__
#define III_PP_FOR_EACH(m, d, ...) __VA_OPT__(III_PP_EXPAND(III_PP_FOR_EACH_I(m, d, __VA_ARGS__)))
#define III_PP_FOR_EACH_I(m, d, x, ...) \
    m(d, x) __VA_OPT__(, III_PP_FOR_EACH_AGAIN III_PP_PARENS(m, d, __VA_ARGS__))
#define III_PP_FOR_EACH_AGAIN() III_PP_FOR_EACH_I

#define III_DETAIL_FIELD(Type, member) ::iii::detail::make_field(#member, &Type::member)
#define III_DETAIL_ENUM_ENTRY(Type, pair) III_DETAIL_ENUM_ENTRY_I(Type, III_DETAIL_UNWRAP pair)
#define III_DETAIL_UNWRAP(...) __VA_ARGS__
#define III_DETAIL_ENUM_ENTRY_I(...) III_DETAIL_ENUM_ENTRY_II(__VA_ARGS__)
#define III_DETAIL_ENUM_ENTRY_II(Type, enumerator, text) \
    ::iii::detail::EnumEntry<Type>{Type::enumerator, text}

/// Declares the JSON fields of a struct: `III_DESCRIBE(Order, id, items, note);`
///
/// Use it at namespace scope, in the namespace that declares the struct (it defines functions
/// found by argument-dependent lookup), after the struct's definition. List public data members;
/// each one's JSON key is its C++ name. Field types must themselves be serializable. The schema
/// title is the struct's name without namespace qualifiers. Class templates and structs with
/// private members need a json_traits specialization instead.
#define III_DESCRIBE(Type, ...)                                                                    \
    [[maybe_unused]] constexpr auto iii_describe_fields(const Type*) noexcept {                    \
        return ::std::make_tuple(III_PP_FOR_EACH(III_DETAIL_FIELD, Type, __VA_ARGS__));            \
    }                                                                                              \
    [[maybe_unused]] constexpr ::std::string_view iii_describe_name(const Type*) noexcept {        \
        return ::iii::detail::unqualified_name(#Type);                                             \
    }                                                                                              \
    static_assert(::std::is_class_v<Type>, "III_DESCRIBE needs a struct or class")

/// Declares an enum serialized as strings:
/// `III_DESCRIBE_ENUM(Color, (Red, "red"), (Green, "green"));`
///
/// Same placement rules as III_DESCRIBE. Decoding any other string fails with
/// `expected one of "red", "green"`; encoding an undeclared value throws Error(Errc::Serde).
#define III_DESCRIBE_ENUM(Type, ...)                                                               \
    [[maybe_unused]] constexpr auto iii_describe_enum(const Type*) noexcept {                      \
        return ::std::array{III_PP_FOR_EACH(III_DETAIL_ENUM_ENTRY, Type, __VA_ARGS__)};            \
    }                                                                                              \
    [[maybe_unused]] constexpr ::std::string_view iii_describe_name(const Type*) noexcept {        \
        return ::iii::detail::unqualified_name(#Type);                                             \
    }                                                                                              \
    static_assert(::std::is_enum_v<Type>, "III_DESCRIBE_ENUM needs an enum")
