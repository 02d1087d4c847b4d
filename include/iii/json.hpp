#pragma once
// iii::Value, the SDK's dynamic JSON payload type (the reference's serde_json::Value).
//
// Why a small DOM of our own: payloads cross the API in both directions and users build them
// inline, so the type must be cheap to construct, easy to read and free of any JSON library in
// the public headers. Incoming frames are parsed by simdjson's on-demand API straight into a
// Value (no intermediate DOM); outgoing frames are written by RapidJSON's Writer straight from
// it. Integers keep their full 64-bit range (signed and unsigned), like serde_json.

#include <iii/export.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace iii {

/// A JSON value: null, bool, integer (int64 or uint64), double, string, array or object.
///
/// Build inline:
/// @code
///   iii::Value v = {{"name", "World"}, {"tags", iii::Value::array({1, 2, 3})}};
///   iii::Value empty = iii::Value::object();
/// @endcode
/// A braced list whose elements are all two-element lists starting with a string becomes an
/// object, like nlohmann::json; anything else becomes an array. Use Value::array() to force an
/// array of pairs.
///
/// Read: `v["name"].as_string()`, `v.at("count").as_int()`, `v.find("x")` (nullptr if absent),
/// `v.is_object()`, iteration over `as_array()` / `as_object()`.
///
/// Objects keep insertion order and allow lookup by key (linear: payload objects are small).
/// Thread safety: a Value is a plain value type; distinct objects are independent.
class III_API Value {
public:
    /// The elements of an array.
    using Array = std::vector<Value>;
    /// One member of an object: key and value.
    using Member = std::pair<std::string, Value>;
    /// The members of an object, in insertion order.
    using Object = std::vector<Member>;
    /// The kinds of JSON values, in the order of the internal variant.
    enum class Kind { Null, Bool, Int, Uint, Double, String, Array, Object };

    /// null.
    Value() noexcept = default;
    /// null.
    Value(std::nullptr_t) noexcept {}
    /// true or false.
    Value(bool b) noexcept : v_(b) {}
    /// Any signed integer type is stored as int64, any unsigned one as uint64.
    template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool> &&
                                            std::is_signed_v<T>,
                                        int> = 0>
    Value(T i) noexcept : v_(static_cast<std::int64_t>(i)) {}
    template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool> &&
                                            std::is_unsigned_v<T>,
                                        int> = 0>
    /// An unsigned integer, stored as uint64.
    Value(T u) noexcept : v_(static_cast<std::uint64_t>(u)) {}
    /// A number (NaN and infinities are written as null).
    Value(double d) noexcept : v_(d) {}
    /// A number, stored as double.
    Value(float d) noexcept : v_(static_cast<double>(d)) {}
    /// A string (UTF-8).
    Value(std::string s) noexcept : v_(std::move(s)) {}
    /// A string, copied.
    Value(std::string_view s) : v_(std::string(s)) {}
    /// A string, copied (not a bool: string literals stay strings).
    Value(const char* s) : v_(std::string(s)) {}
    /// An array.
    Value(Array a) noexcept : v_(std::move(a)) {}
    /// An object (duplicate keys are kept as given; lookups find the first).
    Value(Object o) noexcept : v_(std::move(o)) {}
    /// Object or array from a braced list; see the class comment.
    Value(std::initializer_list<Value> list);

    /// An array of the given elements (never an object).
    static Value array(std::initializer_list<Value> items = {});
    /// An object of the given {key, value} pairs.
    static Value object(std::initializer_list<Member> members = {});

    /// Parses JSON text. Throws iii::Error (Errc::Serde) with the position and reason on
    /// invalid input.
    static Value parse(std::string_view json);
    /// Compact JSON text. Throws iii::Error (Errc::Serde) naming the path
    /// ("$.user.names[1]: string is not valid UTF-8 ...") for a string or key that is not
    /// valid UTF-8: JSON text must be UTF-8, and nothing is replaced silently.
    std::string dump() const;

    /// The kind of the value.
    Kind kind() const noexcept { return static_cast<Kind>(v_.index()); }
    /// True for null.
    bool is_null() const noexcept { return kind() == Kind::Null; }
    /// True for true and false.
    bool is_bool() const noexcept { return kind() == Kind::Bool; }
    /// True for Int and Uint.
    bool is_integer() const noexcept { return kind() == Kind::Int || kind() == Kind::Uint; }
    /// True for Int, Uint and Double.
    bool is_number() const noexcept { return is_integer() || kind() == Kind::Double; }
    /// True for a string.
    bool is_string() const noexcept { return kind() == Kind::String; }
    /// True for an array.
    bool is_array() const noexcept { return kind() == Kind::Array; }
    /// True for an object.
    bool is_object() const noexcept { return kind() == Kind::Object; }

    /// Typed access. Each throws iii::Error (Errc::Serde) naming the expected and actual kind
    /// when the value is of another kind (as_int: also when a uint64 does not fit).
    bool as_bool() const;
    /// An Int, or a Uint that fits int64.
    std::int64_t as_int() const;
    /// A Uint, or a non-negative Int.
    std::uint64_t as_uint() const;
    /// Any number, converted to double.
    double as_double() const;
    /// The string.
    const std::string& as_string() const;
    /// The string, modifiable.
    std::string& as_string();
    /// The elements.
    const Array& as_array() const;
    /// The elements, modifiable.
    Array& as_array();
    /// The members, in insertion order.
    const Object& as_object() const;
    /// The members, modifiable.
    Object& as_object();

    /// Member lookup; nullptr when this is not an object or has no such key.
    const Value* find(std::string_view key) const noexcept;
    /// As the const find(), modifiable.
    Value* find(std::string_view key) noexcept;
    /// True when this is an object with member `key`.
    bool contains(std::string_view key) const noexcept { return find(key) != nullptr; }
    /// Member access that throws iii::Error (Errc::Serde) when absent or not an object.
    const Value& at(std::string_view key) const;
    /// Element access that throws iii::Error (Errc::Serde) when out of range or not an array.
    const Value& at(std::size_t index) const;
    /// Member access that inserts null when absent; turns a null value into an object first.
    Value& operator[](std::string_view key);
    /// Read-only member access; a shared null when absent.
    const Value& operator[](std::string_view key) const noexcept;
    /// As operator[](std::string_view).
    Value& operator[](const char* key) { return (*this)[std::string_view(key)]; }
    /// As the const operator[](std::string_view).
    const Value& operator[](const char* key) const noexcept { return (*this)[std::string_view(key)]; }
    /// Array element access (unchecked, like std::vector).
    Value& operator[](std::size_t index) { return as_array()[index]; }
    /// Read-only array element access (unchecked).
    const Value& operator[](std::size_t index) const { return as_array()[index]; }
    /// The same for any other integer type, so that `v[0]` is an index and not a null key
    /// (a literal 0 would otherwise also convert to `const char*`).
    template <class I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>, int> = 0>
    Value& operator[](I index) {
        return as_array()[static_cast<std::size_t>(index)];
    }
    /// Read-only, likewise.
    template <class I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>, int> = 0>
    const Value& operator[](I index) const {
        return as_array()[static_cast<std::size_t>(index)];
    }
    /// Sets (or replaces) a member; turns a null value into an object first. Returns *this,
    /// so calls chain: `v.set("a", 1).set("b", 2)`.
    Value& set(std::string key, Value value);
    /// Appends to an array; turns a null value into an array first.
    void push_back(Value value);
    /// Elements of an array or members of an object; 0 otherwise.
    std::size_t size() const noexcept;

    /// Structural equality. Numbers compare by value across Int/Uint/Double; object member
    /// order does not matter.
    friend bool operator==(const Value& a, const Value& b) noexcept;

private:
    std::variant<std::nullptr_t, bool, std::int64_t, std::uint64_t, double, std::string, Array,
                 Object>
        v_;
};

/// Exported declaration of Value's friend operator== (a friend declaration cannot carry it).
III_API bool operator==(const Value& a, const Value& b) noexcept;

/// The name of a kind ("null", "bool", "integer", "number", "string", "array", "object").
III_API std::string_view kind_name(Value::Kind kind) noexcept;

}  // namespace iii
