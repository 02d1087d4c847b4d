// Described types and typed functions without sockets: decode, encode, schema goldens, precise
// error paths, and the typed handlers run on a local io_context.

#include <iii/describe.hpp>
#include <iii/typed.hpp>

#include "serde_expect.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include <array>
#include <functional>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

using test_support::serde_message;

namespace shop {

enum class Color { Red, Green, Blue };
III_DESCRIBE_ENUM(Color, (Red, "red"), (Green, "green"), (Blue, "blue"));

struct Item {
    std::string name;
    std::uint32_t qty = 0;
    double price = 0;
    std::optional<Color> color;
    std::vector<std::string> tags;
    bool operator==(const Item&) const = default;
};
III_DESCRIBE(Item, name, qty, price, color, tags);

struct Address {
    std::string city;
    std::optional<std::string> zip;
    bool operator==(const Address&) const = default;
};
III_DESCRIBE(Address, city, zip);

struct Order {
    std::uint64_t id = 0;
    std::vector<Item> items;
    std::optional<Address> ship_to;
    std::map<std::string, std::int32_t> counters;
    std::unordered_map<std::string, std::vector<int>> groups;
    std::array<double, 2> location{};
    std::optional<std::vector<std::optional<int>>> sparse;
    iii::Value extra;
    bool operator==(const Order&) const = default;
};
III_DESCRIBE(shop::Order, id, items, ship_to, counters, groups, location, sparse, extra);

struct Widths {
    std::int8_t i8 = 0;
    std::int16_t i16 = 0;
    std::int32_t i32 = 0;
    std::int64_t i64 = 0;
    std::uint8_t u8 = 0;
    std::uint16_t u16 = 0;
    std::uint32_t u32 = 0;
    std::uint64_t u64 = 0;
    float f32 = 0;
    double f64 = 0;
    bool flag = false;
    bool operator==(const Widths&) const = default;
};
III_DESCRIBE(Widths, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64, flag);

struct Node {
    std::string label;
    std::vector<Node> children;
    bool operator==(const Node&) const = default;
};
III_DESCRIBE(Node, label, children);

struct Empty {
    bool operator==(const Empty&) const = default;
};
III_DESCRIBE(Empty);

}  // namespace shop

// A user type plugged in through the customization point: [x, y] on the wire.
struct Point {
    double x = 0, y = 0;
    bool operator==(const Point&) const = default;
};
template <>
struct iii::json_traits<Point> {
    static void read(JsonReader& r, Point& p) {
        r.begin_array();
        if (!r.next_element()) r.fail("expected [x, y]");
        p.x = r.read_double();
        if (!r.next_element()) r.fail("expected [x, y]");
        p.y = r.read_double();
        if (r.next_element()) r.fail_container("expected [x, y]");
    }
    static void write(JsonWriter& w, const Point& p) {
        w.begin_array();
        w.write_double(p.x);
        w.write_double(p.y);
        w.end_array();
    }
    static std::string name() { return "Point"; }
    static Value schema(SchemaBuilder&) {
        return Value::object({{"type", "array"}, {"items", Value::object({{"type", "number"}})}});
    }
};

struct Shape {
    std::string kind;
    std::vector<Point> points;
    bool operator==(const Shape&) const = default;
};
III_DESCRIBE(Shape, kind, points);

// A type whose wire form is JSON text holding another document: its read calls from_json while
// the outer document is being read.
struct Envelope {
    shop::Address inner;
};
template <>
struct iii::json_traits<Envelope> {
    static void read(JsonReader& r, Envelope& e) {
        e.inner = from_json<shop::Address>(std::string(r.read_string()));
    }
    static void write(JsonWriter& w, const Envelope& e) { w.write_string(to_json(e.inner)); }
};
struct Wrapper {
    Envelope envelope;
    std::string after;
};
III_DESCRIBE(Wrapper, envelope, after);

namespace {

template <class T>
std::string error_of(std::string_view json) {
    return serde_message([&] { (void)iii::from_json<T>(json); });
}

// Runs a raw handler to completion on a local io_context (no sockets).
std::string run(const iii::RawHandler& handler, std::string payload) {
    asio::io_context ioc;
    std::optional<std::string> result;
    std::exception_ptr error;
    asio::co_spawn(ioc, handler(std::move(payload)), [&](std::exception_ptr e, std::string r) {
        error = e;
        if (!e) result = std::move(r);
    });
    ioc.run();
    if (error) std::rethrow_exception(error);
    REQUIRE(result);
    return *result;
}

const char* const order_json = R"({
  "id": 18446744073709551615,
  "items": [
    {"name": "pen", "qty": 2, "price": 1.5, "color": "blue", "tags": ["office", "blue"]},
    {"name": "cup", "qty": 1, "price": 4, "color": null, "tags": []}
  ],
  "ship_to": {"city": "Oslo"},
  "counters": {"a": -1, "b c": 2},
  "groups": {"x": [1, 2], "y": []},
  "location": [59.9, 10.7],
  "sparse": [1, null, 3],
  "extra": {"any": ["thing", 1, null]},
  "_caller_worker_id": "worker-1"
})";

shop::Order sample_order() {
    shop::Order o;
    o.id = 42;
    o.items = {{"pen", 2, 1.5, shop::Color::Blue, {"office"}},
               {"cup", 1, 4.25, std::nullopt, {}},
               {"ink", 0, 0.0, shop::Color::Red, {"a", "b", "c"}}};
    o.ship_to = shop::Address{"Oslo", "0150"};
    o.counters = {{"a", -1}, {"b", std::numeric_limits<std::int32_t>::max()}};
    o.groups = {{"x", {1, 2}}, {"empty", {}}};
    o.location = {59.9, -10.75};
    o.sparse = std::vector<std::optional<int>>{1, std::nullopt, 3};
    o.extra = {{"nested", iii::Value::array({1, "two", nullptr, true})}};
    return o;
}

}  // namespace

// ---- decode ---------------------------------------------------------------------------------

TEST_CASE("a nested payload decodes straight into the struct", "[unit][typed]") {
    const auto o = iii::from_json<shop::Order>(order_json);
    CHECK(o.id == std::numeric_limits<std::uint64_t>::max());
    REQUIRE(o.items.size() == 2);
    CHECK(o.items[0] == shop::Item{"pen", 2, 1.5, shop::Color::Blue, {"office", "blue"}});
    CHECK(o.items[1] == shop::Item{"cup", 1, 4.0, std::nullopt, {}});
    REQUIRE(o.ship_to);
    CHECK(o.ship_to->city == "Oslo");
    CHECK_FALSE(o.ship_to->zip);
    CHECK(o.counters == std::map<std::string, std::int32_t>{{"a", -1}, {"b c", 2}});
    CHECK(o.groups.at("x") == std::vector<int>{1, 2});
    CHECK(o.groups.at("y").empty());
    CHECK(o.location == std::array<double, 2>{59.9, 10.7});
    CHECK(o.sparse == std::vector<std::optional<int>>{1, std::nullopt, 3});
    CHECK(o.extra == iii::Value{{"any", iii::Value::array({"thing", 1, nullptr})}});
}

TEST_CASE("unknown fields are skipped, whatever their shape", "[unit][typed]") {
    const auto a = iii::from_json<shop::Address>(
        R"({"_caller_worker_id":"w","deep":{"a":[1,{"b":[]}],"c":"}"},"city":"Rome","x":[[]],"zip":"00100","y":null})");
    CHECK(a == shop::Address{"Rome", "00100"});
}

TEST_CASE("fields may arrive in any order, and a repeated key keeps the last value", "[unit][typed]") {
    const auto i = iii::from_json<shop::Item>(
        R"({"tags":["t"],"price":2,"name":"a","qty":3,"name":"b"})");
    CHECK(i == shop::Item{"b", 3, 2.0, std::nullopt, {"t"}});
}

TEST_CASE("optional fields may be absent or null", "[unit][typed]") {
    CHECK(iii::from_json<shop::Address>(R"({"city":"A"})") == shop::Address{"A", std::nullopt});
    CHECK(iii::from_json<shop::Address>(R"({"city":"A","zip":null})") ==
          shop::Address{"A", std::nullopt});
    CHECK(iii::from_json<std::optional<int>>("null") == std::nullopt);
    CHECK(iii::from_json<std::optional<int>>(" 5 ") == 5);
}

TEST_CASE("every integer width takes its full range", "[unit][typed]") {
    const auto w = iii::from_json<shop::Widths>(
        R"({"i8":-128,"i16":-32768,"i32":-2147483648,"i64":-9223372036854775808,
            "u8":255,"u16":65535,"u32":4294967295,"u64":18446744073709551615,
            "f32":1.5,"f64":-2e300,"flag":true})");
    CHECK(w.i8 == -128);
    CHECK(w.i16 == -32768);
    CHECK(w.i32 == std::numeric_limits<std::int32_t>::min());
    CHECK(w.i64 == std::numeric_limits<std::int64_t>::min());
    CHECK(w.u8 == 255);
    CHECK(w.u16 == 65535);
    CHECK(w.u32 == std::numeric_limits<std::uint32_t>::max());
    CHECK(w.u64 == std::numeric_limits<std::uint64_t>::max());
    CHECK(w.f32 == 1.5f);
    CHECK(w.f64 == -2e300);
    CHECK(w.flag);
    CHECK(iii::from_json<std::int64_t>("9223372036854775807") ==
          std::numeric_limits<std::int64_t>::max());
    CHECK(iii::from_json<double>("3") == 3.0);
}

TEST_CASE("integers out of range name the value and the type", "[unit][typed]") {
    CHECK(error_of<std::uint8_t>("256") == "$: 256 is out of range for uint8");
    CHECK(error_of<std::int8_t>("-129") == "$: -129 is out of range for int8");
    CHECK(error_of<std::uint32_t>("-1") == "$: -1 is out of range for uint32");
    CHECK(error_of<std::int64_t>("9223372036854775808") ==
          "$: 9223372036854775808 is out of range for int64");
    CHECK(error_of<std::uint64_t>("18446744073709551616") ==
          "$: 1.8446744073709552e+19 is out of range for uint64");
    CHECK(error_of<shop::Widths>(R"({"i8":0,"i16":40000})") == "$.i16: 40000 is out of range for int16");
}

TEST_CASE("fractions and other kinds are not integers", "[unit][typed]") {
    CHECK(error_of<int>("1.5") == "$: expected integer");
    CHECK(error_of<int>("1.0") == "$: expected integer");
    CHECK(error_of<int>("\"1\"") == "$: expected integer");
    CHECK(error_of<std::uint16_t>("true") == "$: expected integer");
    CHECK(error_of<float>("1e300") == "$: number is out of range for float");
}

TEST_CASE("a mismatch names the path and what was expected", "[unit][typed]") {
    const std::string items = R"({"id":1,"items":[)"
                              R"({"name":"a","qty":1,"price":1,"tags":[]},)"
                              R"({"name":"b","qty":1,"price":1,"tags":[]},)"
                              R"({"name":"c","qty":1,"price":1,"tags":[]},)"
                              R"({"name":7,"qty":1,"price":1,"tags":[]}]})";
    CHECK(error_of<shop::Order>(items) == "$.items[3].name: expected string");
    CHECK(error_of<shop::Order>(R"({"id":"x"})") == "$.id: expected integer");
    CHECK(error_of<shop::Order>(R"({"id":1,"items":{}})") == "$.items: expected array");
    CHECK(error_of<shop::Order>(R"({"id":1,"items":[1]})") == "$.items[0]: expected object");
    CHECK(error_of<shop::Order>(
              R"({"id":1,"items":[{"name":"a","qty":1,"price":"p"}]})") ==
          "$.items[0].price: expected number");
    CHECK(error_of<shop::Order>(
              R"({"id":1,"items":[{"name":"a","qty":1,"price":1,"tags":[true]}]})") ==
          "$.items[0].tags[0]: expected string");
    CHECK(error_of<shop::Order>(R"({"id":1,"items":[],"counters":{"b c":"x"}})") ==
          R"($.counters["b c"]: expected integer)");
    CHECK(error_of<shop::Widths>(R"({"i8":0,"i16":0,"i32":0,"i64":0,"u8":0,"u16":0,"u32":0,)"
                                 R"("u64":0,"f32":0,"f64":0,"flag":1})") ==
          "$.flag: expected boolean");
    CHECK(error_of<shop::Address>("[]") == "$: expected object");
    CHECK(error_of<std::nullptr_t>("0") == "$: expected null");
}

TEST_CASE("a missing field is reported at its own path", "[unit][typed]") {
    CHECK(error_of<shop::Address>("{}") == "$.city: missing field");
    CHECK(error_of<shop::Order>(R"({"id":1,"items":[{"name":"a","qty":1,"price":1,"tags":[]},)"
                                R"({"qty":1,"price":1,"tags":[]}]})") ==
          "$.items[1].name: missing field");
    CHECK(error_of<shop::Order>(R"({"id":1,"items":[],"ship_to":{"zip":"1"}})") ==
          "$.ship_to.city: missing field");
}

TEST_CASE("enums accept only their declared strings", "[unit][typed]") {
    CHECK(iii::from_json<shop::Color>("\"green\"") == shop::Color::Green);
    CHECK(error_of<shop::Color>("\"purple\"") == R"($: expected one of "red", "green", "blue")");
    CHECK(error_of<shop::Color>("1") == "$: expected string");
    CHECK(iii::to_json(shop::Color::Blue) == "\"blue\"");
    const std::string what = serde_message([] { (void)iii::to_json(static_cast<shop::Color>(9)); });
    CHECK(what == "cannot encode Color value 9: it has no declared name");
}

TEST_CASE("fixed-size arrays and tuples need exactly their length", "[unit][typed]") {
    using Pair = std::array<int, 2>;
    CHECK(iii::from_json<Pair>("[1,2]") == Pair{1, 2});
    CHECK(error_of<Pair>("[1]") == "$: expected array of length 2");
    CHECK(error_of<Pair>("[1,2,3]") == "$: expected array of length 2");
    CHECK(error_of<shop::Order>(R"({"id":1,"items":[],"location":[1,2,3]})") ==
          "$.location: expected array of length 2");
    using Args = std::tuple<int, std::string, bool>;
    CHECK(iii::from_json<Args>(R"([1,"a",false])") == Args{1, "a", false});
    CHECK(error_of<Args>(R"([1,"a"])") == "$: expected array of length 3");
    CHECK(error_of<Args>(R"([1,2,true])") == "$[1]: expected string");
    CHECK(iii::to_json(Args{3, "x", true}) == R"([3,"x",true])");
}

TEST_CASE("malformed JSON is reported with its position", "[unit][typed]") {
    // Found while stepping past "city": the path says where the reader stood.
    CHECK_THAT(error_of<shop::Address>(R"({"city":"a",})"),
               Catch::StartsWith("$.city: invalid JSON:") && Catch::Contains("at byte 12"));
    CHECK_THAT(error_of<shop::Address>(R"({"city":"a"}})"), Catch::Contains("invalid JSON"));
    CHECK_THAT(error_of<int>("1 2"), Catch::Contains("invalid JSON"));
    CHECK_THAT(error_of<shop::Address>(""), Catch::StartsWith("$: invalid JSON"));
}

TEST_CASE("a user json_traits specialization plugs into structs and schemas", "[unit][typed]") {
    const auto s = iii::from_json<Shape>(R"({"kind":"line","points":[[0,0],[1.5,2]]})");
    CHECK(s == Shape{"line", {{0, 0}, {1.5, 2}}});
    CHECK(iii::to_json(s) == R"({"kind":"line","points":[[0.0,0.0],[1.5,2.0]]})");
    CHECK(error_of<Shape>(R"({"kind":"x","points":[[1,2,3]]})") ==
          "$.points[0]: expected [x, y]");
    CHECK(iii::json_schema<Shape>().dump() ==
          R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"Shape","type":"object",)"
          R"("required":["kind","points"],"properties":{"kind":{"type":"string"},)"
          R"("points":{"type":"array","items":{"type":"array","items":{"type":"number"}}}}})");
}

TEST_CASE("a read may decode another document while the outer one is open", "[unit][typed]") {
    const auto w = iii::from_json<Wrapper>(
        R"({"envelope":"{\"city\":\"Lima\",\"zip\":\"15001\"}","after":"still here"})");
    CHECK(w.envelope.inner == shop::Address{"Lima", "15001"});
    CHECK(w.after == "still here");
    CHECK(iii::to_json(w) ==
          R"({"envelope":"{\"city\":\"Lima\",\"zip\":\"15001\"}","after":"still here"})");
}

TEST_CASE("recursive types decode to the input's depth and fail past the limit", "[unit][typed]") {
    const auto n = iii::from_json<shop::Node>(
        R"({"label":"a","children":[{"label":"b","children":[{"label":"c","children":[]}]}]})");
    REQUIRE(n.children.size() == 1);
    CHECK(n.children[0].children[0].label == "c");

    std::string deep;
    for (int i = 0; i < 600; ++i) deep += R"({"label":"x","children":[)";
    for (int i = 0; i < 600; ++i) deep += "]}";
    // Our own limit, below simdjson's: in a -O0 build simdjson asserted at its 1024th level
    // (clang-19 -O0 CI configuration).
    CHECK_THAT(error_of<shop::Node>(deep), Catch::Contains("nesting too deep"));
}

// ---- encode ---------------------------------------------------------------------------------

TEST_CASE("encoding writes every field in declaration order", "[unit][typed]") {
    shop::Item i{"pen", 2, 1.5, std::nullopt, {"a"}};
    CHECK(iii::to_json(i) == R"({"name":"pen","qty":2,"price":1.5,"color":null,"tags":["a"]})");
    CHECK(iii::to_json(shop::Empty{}) == "{}");
    CHECK(iii::from_json<shop::Empty>(R"({"ignored":1})") == shop::Empty{});
    shop::Widths w{-1, -2, -3, std::numeric_limits<std::int64_t>::min(), 1, 2, 3,
                   std::numeric_limits<std::uint64_t>::max(), 0.5f, 1.0, true};
    CHECK(iii::to_json(w) ==
          R"({"i8":-1,"i16":-2,"i32":-3,"i64":-9223372036854775808,"u8":1,"u16":2,"u32":3,)"
          R"("u64":18446744073709551615,"f32":0.5,"f64":1.0,"flag":true})");
}

TEST_CASE("NaN and infinities encode as null", "[unit][typed]") {
    CHECK(iii::to_json(std::vector<double>{std::nan(""), INFINITY, 1.25}) == "[null,null,1.25]");
    CHECK(iii::to_value(std::vector<double>{std::nan("")}) == iii::Value::array({nullptr}));
}

TEST_CASE("strings are escaped on the way out and unescaped on the way in", "[unit][typed]") {
    const std::string tricky = "quote \" backslash \\ newline \n tab \t unicode é \x01";
    const auto back = iii::from_json<std::string>(iii::to_json(tricky));
    CHECK(back == tricky);
    CHECK(iii::from_json<std::string>(R"("\u00e9\ud83d\ude00")") == "é\xF0\x9F\x98\x80");
}

TEST_CASE("encode then decode is the identity over nested, optional and container fields",
          "[unit][typed]") {
    const shop::Order o = sample_order();
    const std::string text = iii::to_json(o);
    CHECK(iii::from_json<shop::Order>(text) == o);
    // Through the dynamic form too, both directions.
    const iii::Value v = iii::to_value(o);
    CHECK(iii::from_value<shop::Order>(v) == o);
    CHECK(iii::Value::parse(text) == v);
    // (unordered_map members may come back in another order: compare as values)
    CHECK(iii::Value::parse(iii::to_json(iii::from_value<shop::Order>(iii::Value::parse(text)))) ==
          v);

    shop::Order sparse;  // all optionals empty, all containers empty
    CHECK(iii::from_json<shop::Order>(iii::to_json(sparse)) == sparse);

    shop::Node tree{"root", {{"a", {}}, {"b", {{"b1", {}}, {"b2", {}}}}}};
    CHECK(iii::from_json<shop::Node>(iii::to_json(tree)) == tree);
}

TEST_CASE("from_value reports the same paths as from_json", "[unit][typed]") {
    const iii::Value v = {{"id", 1}, {"items", iii::Value::array({{{"name", 5}}})}};
    CHECK(serde_message([&] { (void)iii::from_value<shop::Order>(v); }) ==
          "$.items[0].name: expected string");
    CHECK(serde_message([] { (void)iii::from_value<std::uint8_t>(iii::Value(300)); }) ==
          "$: 300 is out of range for uint8");
    CHECK(serde_message([] { (void)iii::from_value<int>(iii::Value(1.5)); }) ==
          "$: expected integer");
}

// ---- schemas --------------------------------------------------------------------------------

namespace {
struct GreetInput {
    std::string name;
};
III_DESCRIBE(GreetInput, name);
struct Greeting {
    std::string message;
    std::optional<std::uint16_t> lucky_number;
};
III_DESCRIBE(Greeting, message, lucky_number);
}  // namespace

TEST_CASE("a struct's schema matches schemars' draft-07 output", "[unit][typed][schema]") {
    // The protocol document's registerfunction example, byte for byte.
    CHECK(iii::json_schema<GreetInput>().dump() ==
          R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"GreetInput",)"
          R"("type":"object","required":["name"],"properties":{"name":{"type":"string"}}})");
    CHECK(iii::json_schema<std::string>().dump() ==
          R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"String","type":"string"})");
    CHECK(iii::json_schema<Greeting>().dump() ==
          R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"Greeting",)"
          R"("type":"object","required":["message"],"properties":{"message":{"type":"string"},)"
          R"("lucky_number":{"type":["integer","null"],"format":"uint16","minimum":0.0}}})");
}

TEST_CASE("integer schemas carry their format, unsigned ones a minimum", "[unit][typed][schema]") {
    const iii::Value s = iii::json_schema<shop::Widths>();
    const iii::Value& p = s["properties"];
    CHECK(p["i8"].dump() == R"({"type":"integer","format":"int8"})");
    CHECK(p["i16"].dump() == R"({"type":"integer","format":"int16"})");
    CHECK(p["i32"].dump() == R"({"type":"integer","format":"int32"})");
    CHECK(p["i64"].dump() == R"({"type":"integer","format":"int64"})");
    CHECK(p["u8"].dump() == R"({"type":"integer","format":"uint8","minimum":0.0})");
    CHECK(p["u16"].dump() == R"({"type":"integer","format":"uint16","minimum":0.0})");
    CHECK(p["u32"].dump() == R"({"type":"integer","format":"uint32","minimum":0.0})");
    CHECK(p["u64"].dump() == R"({"type":"integer","format":"uint64","minimum":0.0})");
    CHECK(p["f32"].dump() == R"({"type":"number","format":"float"})");
    CHECK(p["f64"].dump() == R"({"type":"number","format":"double"})");
    CHECK(p["flag"].dump() == R"({"type":"boolean"})");
    CHECK(s["required"].size() == 11);
    CHECK(iii::json_schema<std::int32_t>().dump() ==
          R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"int32",)"
          R"("type":"integer","format":"int32"})");
}

TEST_CASE("nested structs and enums go to definitions and are referenced", "[unit][typed][schema]") {
    CHECK(iii::json_schema<shop::Order>().dump() ==
          R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"Order","type":"object",)"
          R"("required":["id","items","counters","groups","location","extra"],)"
          R"("properties":{)"
          R"("id":{"type":"integer","format":"uint64","minimum":0.0},)"
          R"("items":{"type":"array","items":{"$ref":"#/definitions/Item"}},)"
          R"("ship_to":{"anyOf":[{"$ref":"#/definitions/Address"},{"type":"null"}]},)"
          R"("counters":{"type":"object","additionalProperties":{"type":"integer","format":"int32"}},)"
          R"("groups":{"type":"object","additionalProperties":{"type":"array","items":{"type":"integer","format":"int32"}}},)"
          R"("location":{"type":"array","items":{"type":"number","format":"double"},"maxItems":2,"minItems":2},)"
          R"("sparse":{"type":["array","null"],"items":{"type":["integer","null"],"format":"int32"}},)"
          R"("extra":true},)"
          R"("definitions":{)"
          R"("Address":{"type":"object","required":["city"],"properties":{"city":{"type":"string"},"zip":{"type":["string","null"]}}},)"
          R"("Color":{"type":"string","enum":["red","green","blue"]},)"
          R"("Item":{"type":"object","required":["name","qty","price","tags"],"properties":{)"
          R"("name":{"type":"string"},"qty":{"type":"integer","format":"uint32","minimum":0.0},)"
          R"("price":{"type":"number","format":"double"},)"
          R"("color":{"anyOf":[{"$ref":"#/definitions/Color"},{"type":"null"}]},)"
          R"("tags":{"type":"array","items":{"type":"string"}}}}}})");
}

TEST_CASE("schema names follow schemars for composite roots", "[unit][typed][schema]") {
    auto title = [](iii::Value s) { return s["title"].as_string(); };
    CHECK(title(iii::json_schema<std::vector<shop::Item>>()) == "Array_of_Item");
    CHECK(title(iii::json_schema<std::optional<std::string>>()) == "Nullable_String");
    CHECK(title(iii::json_schema<std::map<std::string, bool>>()) == "Map_of_Boolean");
    CHECK(title(iii::json_schema<std::array<std::uint8_t, 4>>()) == "Array_size_4_of_uint8");
    CHECK(title(iii::json_schema<std::tuple<int, double>>()) == "Tuple_of_int32_and_double");
    CHECK(iii::json_schema<iii::Value>().dump() ==
          R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"AnyValue"})");
    CHECK(iii::json_schema<shop::Color>().dump() ==
          R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"Color",)"
          R"("type":"string","enum":["red","green","blue"]})");
    CHECK(iii::json_schema<std::vector<shop::Item>>()["definitions"].contains("Item"));
    CHECK(iii::json_schema<shop::Empty>().dump() ==
          R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"Empty","type":"object"})");
}

TEST_CASE("a recursive type refers to its own definition", "[unit][typed][schema]") {
    CHECK(iii::json_schema<shop::Node>().dump() ==
          R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"Node","type":"object",)"
          R"("required":["label","children"],"properties":{"label":{"type":"string"},)"
          R"("children":{"type":"array","items":{"$ref":"#/definitions/Node"}}},)"
          R"("definitions":{"Node":{"type":"object","required":["label","children"],)"
          R"("properties":{"label":{"type":"string"},)"
          R"("children":{"type":"array","items":{"$ref":"#/definitions/Node"}}}}}})");
}

// ---- typed functions without sockets --------------------------------------------------------

namespace {
std::string greet(const GreetInput& in) { return "Hello, " + in.name + "!"; }
int add(int a, int b) { return a + b; }
asio::awaitable<std::string> fetch(std::string url) { co_return "fetched " + url; }
std::string ping() { return "pong"; }
int calls = 0;
void touch() { ++calls; }
Greeting greet_struct(GreetInput in) { return {"Hi " + in.name, 7}; }
}  // namespace

TEST_CASE("iii_fn with one parameter decodes the whole payload", "[unit][typed][fn]") {
    const iii::TypedHandler h = iii::iii_fn(greet);
    CHECK(run(h.handler, R"({"name":"World","_caller_worker_id":"w1"})") == R"("Hello, World!")");
    REQUIRE(h.request_format);
    CHECK(*h.request_format == iii::json_schema<GreetInput>());
    REQUIRE(h.response_format);
    CHECK(h.response_format->dump() ==
          R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"String","type":"string"})");
    CHECK(run(iii::iii_fn(greet_struct).handler, R"({"name":"Ann"})") ==
          R"({"message":"Hi Ann","lucky_number":7})");
}

TEST_CASE("iii_fn with several parameters takes a positional array", "[unit][typed][fn]") {
    const iii::TypedHandler h = iii::iii_fn(add);
    CHECK(run(h.handler, "[3,4]") == "7");
    CHECK(h.request_format->dump() ==
          R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"Tuple_of_int32_and_int32",)"
          R"("type":"array","items":[{"type":"integer","format":"int32"},)"
          R"({"type":"integer","format":"int32"}],"maxItems":2,"minItems":2})");
    CHECK(serde_message([&] { run(h.handler, "[3]"); }) == "$: expected array of length 2");
    CHECK(serde_message([&] { run(h.handler, R"([3,"4"])"); }) == "$[1]: expected integer");
    CHECK(serde_message([&] { run(h.handler, R"({"a":3,"b":4})"); }) == "$: expected array");
}

TEST_CASE("functions without parameters ignore the input; void results are null",
          "[unit][typed][fn]") {
    const iii::TypedHandler h = iii::iii_fn(ping);
    CHECK(run(h.handler, R"({"anything":[1,2]})") == R"("pong")");
    CHECK(run(h.handler, "not even JSON") == R"("pong")");
    CHECK_FALSE(h.request_format);

    calls = 0;
    const iii::TypedHandler v = iii::iii_fn(touch);
    CHECK(run(v.handler, "null") == "null");
    CHECK(calls == 1);
    CHECK(v.response_format->dump() ==
          R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"null","type":"null"})");
}

TEST_CASE("iii_async_fn awaits the coroutine", "[unit][typed][fn]") {
    const iii::TypedHandler h = iii::iii_async_fn(fetch);
    CHECK(run(h.handler, R"("https://x.test")") == R"("fetched https://x.test")");
    CHECK(h.request_format->dump() ==
          R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"String","type":"string"})");

    // A coroutine lambda that suspends, with several parameters taken by const reference: the
    // decoded values must outlive the suspension.
    auto slow_join = [](const std::string& a, const std::vector<int>& b) -> asio::awaitable<std::string> {
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        co_return a + ":" + std::to_string(b.size());
    };
    CHECK(run(iii::iii_async_fn(slow_join).handler, R"(["xs",[1,2,3]])") == R"("xs:3")");

    auto nothing = []() -> asio::awaitable<void> { co_return; };
    CHECK(run(iii::iii_async_fn(nothing).handler, "") == "null");
}

TEST_CASE("a payload that does not decode is an error naming the path", "[unit][typed][fn]") {
    const iii::TypedHandler h = iii::iii_fn(greet);
    CHECK(serde_message([&] { run(h.handler, R"({"name":5})"); }) == "$.name: expected string");
    CHECK(serde_message([&] { run(h.handler, R"({})"); }) == "$.name: missing field");
    CHECK(serde_message([&] { run(h.handler, "[]"); }) == "$: expected object");
}

TEST_CASE("exceptions thrown by the function propagate out of the handler", "[unit][typed][fn]") {
    auto boom = [](int n) -> int {
        if (n < 0) throw std::invalid_argument("negative input");
        return n;
    };
    const iii::TypedHandler h = iii::iii_fn(boom);
    CHECK(run(h.handler, "5") == "5");
    CHECK_THROWS_WITH(run(h.handler, "-1"), "negative input");
    auto bad_result = [] { return static_cast<shop::Color>(42); };
    CHECK_THROWS_AS(run(iii::iii_fn(bad_result).handler, "null"), iii::Error);
}

TEST_CASE("lambdas, mutable functors, and by-value, const& and && parameters all bind",
          "[unit][typed][fn]") {
    auto by_value = [](shop::Address a, std::string s) { return a.city + s; };
    auto by_ref = [](const shop::Address& a, std::string&& s) { return a.city + s; };
    CHECK(run(iii::iii_fn(by_value).handler, R"([{"city":"A"},"!"])") == R"("A!")");
    CHECK(run(iii::iii_fn(by_ref).handler, R"([{"city":"B"},"?"])") == R"("B?")");
    int count = 0;
    auto counter = [count](iii::Value v) mutable {
        ++count;
        return iii::Value{{"count", count}, {"echo", v}};
    };
    const iii::TypedHandler h = iii::iii_fn(counter);
    CHECK(run(h.handler, R"({"a":1})") == R"({"count":1,"echo":{"a":1}})");
    CHECK(run(h.handler, "[]") == R"({"count":2,"echo":[]})");
    CHECK(h.request_format->dump() ==
          R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"AnyValue"})");
    int (*fp)(int, int) = &add;
    CHECK(run(iii::iii_fn(fp).handler, "[1,1]") == "2");
}

TEST_CASE("the handler keeps the function alive while an invocation runs", "[unit][typed][fn]") {
    asio::io_context ioc;
    std::optional<std::string> result;
    {
        auto h = iii::iii_async_fn([tag = std::string("alive")](int n) -> asio::awaitable<std::string> {
            co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
            co_return tag + std::to_string(n);
        });
        asio::co_spawn(ioc, h.handler("1"), [&](std::exception_ptr e, std::string r) {
            if (!e) result = std::move(r);
        });
    }  // the handler (and its std::function) is gone before the invocation resumes
    ioc.run();
    CHECK(result == "\"alive1\"");
}

TEST_CASE("RegisterFunction carries id, description, metadata and both formats",
          "[unit][typed][fn]") {
    const auto reg = iii::RegisterFunction("greet", greet)
                         .description("Greet someone by name")
                         .metadata({{"team", "core"}});
    const iii::RegisterFunctionMessage& m = reg.message();
    CHECK(m.id == "greet");
    CHECK(m.description == "Greet someone by name");
    CHECK(m.metadata == iii::Value{{"team", "core"}});
    CHECK(m.request_format == iii::json_schema<GreetInput>());
    CHECK(m.response_format == iii::json_schema<std::string>());
    CHECK(run(reg.handler(), R"({"name":"Bo"})") == R"("Hello, Bo!")");

    // One constructor for plain functions and coroutines.
    const auto async_reg = iii::RegisterFunction("fetch", fetch);
    CHECK(run(async_reg.handler(), R"("u")") == R"("fetched u")");
    const auto zero = iii::RegisterFunction("ping", ping);
    CHECK_FALSE(zero.message().request_format);

    // Formats already on a message win over the generated ones (the reference's into_parts).
    auto message = iii::RegisterFunctionMessage::with_id("x");
    message.request_format = iii::Value{{"type", "object"}};
    iii::iii_fn(greet).fill_formats(message);
    CHECK(message.request_format == iii::Value{{"type", "object"}});
    CHECK(message.response_format == iii::json_schema<std::string>());
}

// ---- UTF-8 (the rule is in README, Reliability; the rest of its tests: utf8_test.cpp) ----

namespace utf8_test {
struct Line {
    std::string sku;
    std::vector<std::string> notes;
};
III_DESCRIBE(Line, sku, notes);
struct Order {
    std::string id;
    std::vector<Line> lines;
    std::map<std::string, int> counts;
};
III_DESCRIBE(Order, id, lines, counts);
}  // namespace utf8_test

namespace {
const std::string& bad = test_support::not_utf8;
}  // namespace

TEST_CASE("the typed writer refuses an invalid string and names its path", "[unit][utf8]") {
    utf8_test::Order order{"o1", {{"a", {}}, {"b", {"fine", bad}}}, {}};
    CHECK(serde_message([&] { (void)iii::to_json(order); }) ==
          "$.lines[1].notes[1]: string is not valid UTF-8 (invalid byte at offset 2)");
    utf8_test::Order keyed{"o2", {}, {{"\xc3\xa9", 1}, {"x\xff", 2}}};
    CHECK(serde_message([&] { (void)iii::to_json(keyed); }) ==
          "$.counts[\"x\\xFF\"]: key is not valid UTF-8 (invalid byte at offset 1)");
    // Valid multi-byte text is untouched, and the per-thread writer recovered.
    utf8_test::Order fine{"\xc3\xa9", {}, {}};
    CHECK(iii::to_json(fine) == "{\"id\":\"\xc3\xa9\",\"lines\":[],\"counts\":{}}");
}

TEST_CASE("an unknown member is validated, not skipped blind", "[unit][typed]") {
    // Found by test/fuzz/typed_fuzz.cpp: invalid JSON inside an ignored member decoded.
    CHECK_THROWS_AS(iii::from_json<utf8_test::Line>(R"({"sku":"a","extra":["x".null],"notes":[]})"), iii::Error);
    CHECK_THROWS_AS(iii::from_json<utf8_test::Line>(R"({"extra":{"k":tru},"sku":"a","notes":[]})"), iii::Error);
    // Valid unknown members are still ignored.
    auto line = iii::from_json<utf8_test::Line>(R"({"_caller_worker_id":"w1","sku":"a","x":{"y":[1,{}]},"notes":[]})");
    CHECK(line.sku == "a");
}

namespace zero_test {
struct Reading {
    double d = 1;
    std::vector<std::int64_t> i;
};
III_DESCRIBE(Reading, d, i);
}  // namespace zero_test

TEST_CASE("a double with more than 19 significant digits reads the same from the text and through iii::Value",
          "[unit][typed]") {
    // Found by typed_fuzz (test/fuzz/corpus/typed/long-fraction.json): the text path read
    // -0.2222222224741910323222184348123709551615 as -8.1e-22 (simdjson 3.0.1).
    for (const char* number : {"-0.2222222224741910323222184348123709551615", "0.12345678901234567890123",
                               "123456789012345678901234"}) {
        INFO(number);
        const std::string text = std::string(R"({"d":)") + number + R"(,"i":[]})";
        const auto direct = iii::from_json<zero_test::Reading>(text);
        const auto via_value = iii::from_value<zero_test::Reading>(iii::Value::parse(text));
        CHECK(direct.d == std::strtod(number, nullptr));
        CHECK(via_value.d == std::strtod(number, nullptr));
    }
}

TEST_CASE("-0 reads the same from the text and through iii::Value: +0.0 for a double, 0 for an integer",
          "[unit][typed]") {
    // Found by typed_fuzz (test/fuzz/corpus/typed/negative-zero*.json).
    const std::string text = R"({"d":-0,"i":[1,-0]})";
    const auto direct = iii::from_json<zero_test::Reading>(text);
    const auto via_value = iii::from_value<zero_test::Reading>(iii::Value::parse(text));
    for (const auto* r : {&direct, &via_value}) {
        CHECK(r->d == 0.0);
        CHECK_FALSE(std::signbit(r->d));
        CHECK(r->i == std::vector<std::int64_t>{1, 0});
    }
    CHECK(iii::to_json(direct) == iii::to_json(via_value));
    // -0.0 is the negative zero on both paths.
    const std::string negative = R"({"d":-0.0,"i":[]})";
    CHECK(std::signbit(iii::from_json<zero_test::Reading>(negative).d));
    CHECK(std::signbit(iii::from_value<zero_test::Reading>(iii::Value::parse(negative)).d));
}
