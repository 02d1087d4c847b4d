#include "iii/json.hpp"

#include "iii/error.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <limits>
#include <string>

using iii::Value;
using Kind = iii::Value::Kind;

namespace {

// Parse failures are Errc::Serde errors whose text says what went wrong.
void require_parse_error(std::string_view json) {
    INFO("input: " << json);
    try {
        (void)Value::parse(json);
        FAIL("parse succeeded");
    } catch (const iii::Error& e) {
        CHECK(e.errc() == iii::Errc::Serde);
        CHECK(std::string(e.what()).find("invalid JSON") != std::string::npos);
    }
}

}  // namespace

TEST_CASE("a default Value is null", "[unit][json]") {
    Value v;
    CHECK(v.is_null());
    CHECK(v.kind() == Kind::Null);
    CHECK(v.size() == 0);
    CHECK(v.dump() == "null");
    CHECK(Value(nullptr).is_null());
}

TEST_CASE("scalars keep their kind", "[unit][json]") {
    CHECK(Value(true).kind() == Kind::Bool);
    CHECK(Value(42).kind() == Kind::Int);
    CHECK(Value(std::int64_t{-7}).kind() == Kind::Int);
    CHECK(Value(42u).kind() == Kind::Uint);
    CHECK(Value(std::uint64_t{1}).kind() == Kind::Uint);
    CHECK(Value(1.5).kind() == Kind::Double);
    CHECK(Value(1.5f).kind() == Kind::Double);
    CHECK(Value("x").kind() == Kind::String);
    CHECK(Value(std::string("x")).kind() == Kind::String);
    CHECK(Value(std::string_view("x")).kind() == Kind::String);
}

TEST_CASE("a braced list of string-keyed pairs is an object", "[unit][json]") {
    Value v = {{"name", "World"}, {"count", 3}, {"nested", {{"a", 1}}}};
    REQUIRE(v.is_object());
    CHECK(v.size() == 3);
    CHECK(v["name"].as_string() == "World");
    CHECK(v.at("count").as_int() == 3);
    CHECK(v["nested"]["a"].as_int() == 1);
    // insertion order is kept
    CHECK(v.as_object()[0].first == "name");
    CHECK(v.as_object()[2].first == "nested");
}

TEST_CASE("a braced list that is not all pairs is an array", "[unit][json]") {
    Value v = {1, "two", 3.0};
    REQUIRE(v.is_array());
    CHECK(v.size() == 3);
    CHECK(v[1].as_string() == "two");

    Value mixed = {{"a", 1}, 2};
    CHECK(mixed.is_array());
    Value not_string_key = {{1, 2}, {3, 4}};
    CHECK(not_string_key.is_array());
    Value triple = {{"a", 1, 2}};
    CHECK(triple.is_array());
}

TEST_CASE("Value::array never builds an object", "[unit][json]") {
    Value v = Value::array({{"a", 1}, {"b", 2}});
    REQUIRE(v.is_array());
    CHECK(v.size() == 2);
    CHECK(v[0].is_array());
    CHECK(Value::array().is_array());
    CHECK(Value::array().size() == 0);
    CHECK(Value::object().is_object());
    CHECK(Value::object({{"k", 1}})["k"] == Value(1));
}

TEST_CASE("typed accessors throw Serde errors naming both kinds", "[unit][json]") {
    Value v = "text";
    try {
        (void)v.as_int();
        FAIL("no throw");
    } catch (const iii::Error& e) {
        CHECK(e.errc() == iii::Errc::Serde);
        CHECK(std::string(e.what()).find("string") != std::string::npos);
        CHECK(std::string(e.what()).find("integer") != std::string::npos);
    }
    CHECK_THROWS_AS(Value(1).as_string(), iii::Error);
    CHECK_THROWS_AS(Value(1).as_bool(), iii::Error);
    CHECK_THROWS_AS(Value().as_array(), iii::Error);
    CHECK_THROWS_AS(Value().as_object(), iii::Error);
    CHECK_THROWS_AS(Value("1").as_double(), iii::Error);
}

TEST_CASE("integer accessors convert between int64 and uint64 only when the value fits",
          "[unit][json]") {
    CHECK(Value(5u).as_int() == 5);
    CHECK(Value(5).as_uint() == 5u);
    CHECK_THROWS_AS(Value(-1).as_uint(), iii::Error);
    CHECK_THROWS_AS(Value(std::numeric_limits<std::uint64_t>::max()).as_int(), iii::Error);
    CHECK(Value(3).as_double() == 3.0);
    CHECK(Value(3u).as_double() == 3.0);
    CHECK_THROWS_AS(Value(1.5).as_int(), iii::Error);
}

TEST_CASE("member access finds, inserts and refuses as documented", "[unit][json]") {
    Value v;
    v["a"] = 1;  // null becomes an object
    REQUIRE(v.is_object());
    v["a"] = 2;  // no duplicate key
    CHECK(v.size() == 1);
    CHECK(v.find("a") != nullptr);
    CHECK(v.find("b") == nullptr);
    CHECK(v.contains("a"));
    CHECK_FALSE(v.contains("b"));

    const Value& c = v;
    CHECK(c["missing"].is_null());
    CHECK(c["a"].as_int() == 2);
    CHECK_THROWS_AS(c.at("missing"), iii::Error);
    CHECK_THROWS_AS(Value(1).at("x"), iii::Error);
    CHECK(Value(1).find("x") == nullptr);

    Value arr = Value::array({1, 2});
    CHECK(arr.at(1).as_int() == 2);
    CHECK_THROWS_AS(arr.at(2), iii::Error);
    CHECK_THROWS_AS(Value(1)["k"], iii::Error);  // non-const on a non-object
}

TEST_CASE("set replaces or appends and push_back builds arrays from null", "[unit][json]") {
    Value v;
    v.set("a", 1).set("b", 2).set("a", 3);
    REQUIRE(v.is_object());
    CHECK(v.size() == 2);
    CHECK(v["a"].as_int() == 3);
    CHECK(v.as_object()[0].first == "a");

    Value list;
    list.push_back(1);
    list.push_back("x");
    REQUIRE(list.is_array());
    CHECK(list.size() == 2);
    CHECK_THROWS_AS(Value(1).push_back(2), iii::Error);
    CHECK_THROWS_AS(Value(1).set("k", 2), iii::Error);
}

TEST_CASE("kind names are the documented words", "[unit][json]") {
    CHECK(iii::kind_name(Kind::Null) == "null");
    CHECK(iii::kind_name(Kind::Bool) == "bool");
    CHECK(iii::kind_name(Kind::Int) == "integer");
    CHECK(iii::kind_name(Kind::Uint) == "integer");
    CHECK(iii::kind_name(Kind::Double) == "number");
    CHECK(iii::kind_name(Kind::String) == "string");
    CHECK(iii::kind_name(Kind::Array) == "array");
    CHECK(iii::kind_name(Kind::Object) == "object");
}

TEST_CASE("numbers compare by value across integer and double kinds", "[unit][json]") {
    CHECK(Value(1) == Value(1u));
    CHECK(Value(1) == Value(1.0));
    CHECK(Value(1u) == Value(1.0));
    CHECK_FALSE(Value(-1) == Value(std::numeric_limits<std::uint64_t>::max()));
    CHECK_FALSE(Value(1) == Value(1.5));
    // 2^63 as a double is not the int64 max, and not equal to 2^63 + 1 as uint64.
    CHECK_FALSE(Value(std::numeric_limits<std::int64_t>::max()) == Value(9223372036854775808.0));
    CHECK(Value(std::uint64_t{9223372036854775808u}) == Value(9223372036854775808.0));
    CHECK_FALSE(Value(std::uint64_t{9223372036854775809u}) == Value(9223372036854775808.0));
    CHECK_FALSE(Value(1) == Value("1"));
    CHECK_FALSE(Value(0) == Value(false));
    CHECK_FALSE(Value() == Value(0));
}

TEST_CASE("objects compare without regard to member order, arrays with it", "[unit][json]") {
    Value a = {{"x", 1}, {"y", {{"z", true}}}};
    Value b = {{"y", {{"z", true}}}, {"x", 1.0}};
    CHECK(a == b);
    CHECK_FALSE(a == Value({{"x", 1}}));
    CHECK_FALSE(a == Value({{"x", 1}, {"y", {{"z", false}}}}));
    CHECK(Value::array({1, 2}) == Value::array({1, 2}));
    CHECK_FALSE(Value::array({1, 2}) == Value::array({2, 1}));
    CHECK_FALSE(Value::object() == Value::array());
}

TEST_CASE("parse builds every kind of value", "[unit][json]") {
    Value v = Value::parse(
        R"( {"n":null,"t":true,"f":false,"i":-12,"d":2.5,"s":"hi","a":[1,[2],{}],"o":{"k":"v"}} )");
    REQUIRE(v.is_object());
    CHECK(v.size() == 8);
    CHECK(v["n"].is_null());
    CHECK(v["t"].as_bool());
    CHECK_FALSE(v["f"].as_bool());
    CHECK(v["i"].kind() == Kind::Int);
    CHECK(v["i"].as_int() == -12);
    CHECK(v["d"].kind() == Kind::Double);
    CHECK(v["d"].as_double() == 2.5);
    CHECK(v["s"].as_string() == "hi");
    CHECK(v["a"].size() == 3);
    CHECK(v["a"][1][0].as_int() == 2);
    CHECK(v["a"][2].is_object());
    CHECK(v["o"]["k"].as_string() == "v");
    // member order of the input is kept
    CHECK(v.as_object()[0].first == "n");
    CHECK(v.as_object()[7].first == "o");
}

TEST_CASE("parse accepts scalar documents", "[unit][json]") {
    CHECK(Value::parse("null").is_null());
    CHECK(Value::parse("true") == Value(true));
    CHECK(Value::parse(" 7 ") == Value(7));
    CHECK(Value::parse("\"s\"") == Value("s"));
    CHECK(Value::parse("-0.5").as_double() == -0.5);
}

TEST_CASE("integers keep the full 64-bit range", "[unit][json]") {
    Value max_u = Value::parse("18446744073709551615");
    CHECK(max_u.kind() == Kind::Uint);
    CHECK(max_u.as_uint() == std::numeric_limits<std::uint64_t>::max());
    CHECK(max_u.dump() == "18446744073709551615");

    Value min_i = Value::parse("-9223372036854775808");
    CHECK(min_i.kind() == Kind::Int);
    CHECK(min_i.as_int() == std::numeric_limits<std::int64_t>::min());
    CHECK(min_i.dump() == "-9223372036854775808");

    Value max_i = Value::parse("9223372036854775807");
    CHECK(max_i.kind() == Kind::Int);
    Value above = Value::parse("9223372036854775808");
    CHECK(above.kind() == Kind::Uint);

    Value nested = Value::parse(R"({"a":[18446744073709551615,-9223372036854775808,3]})");
    CHECK(nested["a"][0].kind() == Kind::Uint);
    CHECK(nested["a"][1].kind() == Kind::Int);
    CHECK(nested["a"][2].as_int() == 3);
}

TEST_CASE("integers beyond 64 bits read as doubles", "[unit][json]") {
    Value v = Value::parse("[18446744073709551616,-9223372036854775809]");
    CHECK(v[0].kind() == Kind::Double);
    CHECK(v[0].as_double() == 18446744073709551616.0);
    CHECK(v[1].kind() == Kind::Double);
}

TEST_CASE("doubles round-trip as doubles", "[unit][json]") {
    for (double d : {1.0, -0.0, 0.1, 1e16, 1e300, 5e-324, -123.456, 2.5e-7}) {
        INFO(d);
        Value back = Value::parse(Value(d).dump());
        CHECK(back.kind() == Kind::Double);
        CHECK(back.as_double() == d);
        CHECK(std::signbit(back.as_double()) == std::signbit(d));
    }
    CHECK(Value(1.0).dump() == "1.0");
    CHECK(Value::parse("1.0").kind() == Kind::Double);
    CHECK(Value::parse("1e2").kind() == Kind::Double);
}

TEST_CASE("NaN and infinities are written as null", "[unit][json]") {
    CHECK(Value(std::numeric_limits<double>::quiet_NaN()).dump() == "null");
    CHECK(Value(std::numeric_limits<double>::infinity()).dump() == "null");
    Value v = Value::array({-std::numeric_limits<double>::infinity(), 1});
    CHECK(v.dump() == "[null,1]");
}

TEST_CASE("unicode escapes decode to UTF-8 and survive a round trip", "[unit][json]") {
    Value v = Value::parse(R"(["\u00e9", "\ud83d\ude00", "\u0000x", "tab\there", "q\"b\\s\/"])");
    CHECK(v[0].as_string() == "\xC3\xA9");
    CHECK(v[1].as_string() == "\xF0\x9F\x98\x80");
    CHECK(v[2].as_string() == std::string("\0x", 2));
    CHECK(v[3].as_string() == "tab\there");
    CHECK(v[4].as_string() == "q\"b\\s/");
    CHECK(Value::parse(v.dump()) == v);
    // raw UTF-8 passes through unescaped; control characters are escaped
    CHECK(Value("\xC3\xA9").dump() == "\"\xC3\xA9\"");
    CHECK(Value(std::string("a\x01", 2)).dump() == "\"a\\u0001\"");
    // keys are unescaped too
    CHECK(Value::parse(R"({"k\u00e9y":1})").contains("k\xC3\xA9y"));
}

TEST_CASE("dump is compact and keeps member order", "[unit][json]") {
    Value v = {{"b", 1}, {"a", Value::array({true, nullptr, "s"})}, {"c", Value::object()}};
    CHECK(v.dump() == R"({"b":1,"a":[true,null,"s"],"c":{}})");
    CHECK(Value::array().dump() == "[]");
}

TEST_CASE("parse then dump then parse gives an equal value", "[unit][json]") {
    const char* text =
        R"({"id":"x","list":[1,-2,3.5,"four",null,true,{"deep":[[[]]]}],"u":18446744073709551615})";
    Value first = Value::parse(text);
    Value second = Value::parse(first.dump());
    CHECK(first == second);
    CHECK(second.dump() == text);
}

TEST_CASE("malformed JSON is a Serde error", "[unit][json]") {
    for (const char* bad :
         {"", "   ", "{", "[1,2", "{\"a\":}", "{\"a\" 1}", "[1,]", "{\"a\":1,}", "nul", "tru",
          "\"open", "01", "1e400", "-", "{\"a\":1}}", "[1]]", "1 2", "{} x", "{\"a\":tru}",
          "\"\\ud800\"", "{'a':1}", "[\"\\x\"]"}) {
        require_parse_error(bad);
    }
}

TEST_CASE("parse errors say where the problem is", "[unit][json]") {
    try {
        (void)Value::parse("{\"a\":1,}");
        FAIL("no throw");
    } catch (const iii::Error& e) {
        CHECK(std::string(e.what()).find("at byte") != std::string::npos);
    }
}

TEST_CASE("invalid UTF-8 is rejected", "[unit][json]") {
    require_parse_error("\"\xff\"");
    require_parse_error("[\"\xC3\"]");
}

TEST_CASE("absurd nesting is rejected instead of overflowing the stack", "[unit][json]") {
    std::string deep(5000, '[');
    deep += std::string(5000, ']');
    CHECK_THROWS_AS(Value::parse(deep), iii::Error);
    std::string ok(128, '[');
    ok += std::string(128, ']');
    CHECK(Value::parse(ok).is_array());
    std::string one_more(129, '[');
    one_more += std::string(129, ']');
    CHECK_THROWS_AS(Value::parse(one_more), iii::Error);
}

TEST_CASE("parse can be called again after a failure", "[unit][json]") {
    CHECK_THROWS_AS(Value::parse("{"), iii::Error);
    CHECK(Value::parse("{\"a\":[1]}")["a"][0] == Value(1));
    std::string big = "[";
    for (int i = 0; i < 10000; ++i) big += std::to_string(i) + ",";
    big += "0]";
    CHECK(Value::parse(big).size() == 10001);
    CHECK(Value::parse("[]").size() == 0);
}

TEST_CASE("a float with more than 19 integer digits keeps its value (simdjson 3.0.1 reads 0)",
          "[unit][json]") {
    // Found by typed_fuzz (test/fuzz/corpus/typed/big-float.json): a double the SDK wrote came
    // back as 0.0.
    for (const char* text : {"58446744073709550000.0", "123456789012345678901.5e3", "-98765432109876543210.25"}) {
        INFO(text);
        const iii::Value v = iii::Value::parse(text);
        REQUIRE(v.kind() == iii::Value::Kind::Double);
        CHECK(v.as_double() == std::strtod(text, nullptr));
        const iii::Value in_array = iii::Value::parse(std::string("[") + text + "]");
        CHECK(in_array[0].as_double() == std::strtod(text, nullptr));
    }
}

TEST_CASE("a number with more than 19 significant digits keeps its value (simdjson 3.0.1 misreads it)",
          "[unit][json]") {
    // Found by typed_fuzz (test/fuzz/corpus/typed/long-fraction.json): simdjson read
    // -0.2222222224741910323222184348123709551615 as -8.1e-22. Also integers beyond 64 bits,
    // which read as doubles.
    for (const char* text : {"-0.2222222224741910323222184348123709551615", "0.12345678901234567890123",
                             "1.2345678901234567890123e10", "123456789012345678901234",
                             "-98765432109876543210987654321"}) {
        INFO(text);
        const iii::Value v = iii::Value::parse(text);
        REQUIRE(v.kind() == iii::Value::Kind::Double);
        CHECK(v.as_double() == std::strtod(text, nullptr));
        const iii::Value in_object = iii::Value::parse(std::string(R"({"n": )") + text + " }");
        CHECK(in_object["n"].as_double() == std::strtod(text, nullptr));
    }
}

TEST_CASE("-0 is the integer 0, -0.0 the negative zero", "[unit][json]") {
    // typed_fuzz (test/fuzz/corpus/typed/negative-zero*.json): a typed double read "-0" as -0.0
    // straight from the text and as 0.0 through iii::Value; typed_test checks both paths now.
    for (const char* text : {"-0", "[-0]"}) {
        INFO(text);
        const iii::Value parsed = iii::Value::parse(text);
        const iii::Value& v = parsed.is_array() ? parsed[0] : parsed;
        CHECK(v.kind() == iii::Value::Kind::Int);
        CHECK(v.as_int() == 0);
    }
    const iii::Value negative_zero = iii::Value::parse("-0.0");
    REQUIRE(negative_zero.kind() == iii::Value::Kind::Double);
    CHECK(std::signbit(negative_zero.as_double()));
}
