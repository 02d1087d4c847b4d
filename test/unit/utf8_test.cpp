// The UTF-8 rule of the outgoing encoders (README, Reliability): a string or key that is not
// valid UTF-8 is refused with Errc::Serde naming its path; replies become error replies instead,
// so that a caller is always answered. (The typed writer's case is in typed_test.cpp: the typed
// API and lib/json_internal.hpp do not share a translation unit.)

#include "json_internal.hpp"
#include "protocol.hpp"
#include "serde_expect.hpp"

#include <iii/error.hpp>
#include <iii/json.hpp>

#include <catch2/catch.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace p = iii::detail::protocol;
using iii::Value;


using test_support::serde_message;

namespace {
const std::string& bad = test_support::not_utf8;
}  // namespace

TEST_CASE("invalid UTF-8 is found exactly: overlongs, surrogates, truncation, > U+10FFFF", "[unit][utf8]") {
    using iii::detail::invalid_utf8_offset;
    constexpr auto npos = std::string_view::npos;
    CHECK(invalid_utf8_offset("") == npos);
    CHECK(invalid_utf8_offset("plain ascii") == npos);
    CHECK(invalid_utf8_offset("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80") == npos);  // é € 😀
    CHECK(invalid_utf8_offset("\xf4\x8f\xbf\xbf") == npos);                     // U+10FFFF
    CHECK(invalid_utf8_offset("a\xc0\xaf") == 1);                               // overlong '/'
    CHECK(invalid_utf8_offset("ab\xe0\x80\xaf") == 2);                          // overlong, 3 bytes
    CHECK(invalid_utf8_offset("\xed\xa0\x80") == 0);                            // surrogate D800
    CHECK(invalid_utf8_offset("x\xf4\x90\x80\x80") == 1);                       // U+110000
    CHECK(invalid_utf8_offset("xy\xe2\x82") == 2);                              // truncated
    CHECK(invalid_utf8_offset("\x80") == 0);                                    // lone continuation
    CHECK(iii::detail::replace_invalid_utf8("a\xff" "b\xe2\x82") ==
          "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd");
}

TEST_CASE("Value::dump refuses a string that is not UTF-8 and names its path", "[unit][utf8]") {
    Value v = Value::object({{"user", Value::object({{"names", Value::array({"ok", bad})}})}});
    CHECK(serde_message([&] { (void)v.dump(); }) ==
          "$.user.names[1]: string is not valid UTF-8 (invalid byte at offset 2)");
    Value key = Value::object({{"a b", Value::object({{"k\xfe", 1}})}});
    CHECK(serde_message([&] { (void)key.dump(); }) ==
          "$[\"a b\"][\"k\\xFE\"]: key is not valid UTF-8 (invalid byte at offset 1)");
    // The writer recovers: the next dump on this thread is whole.
    CHECK(Value::object({{"x", "\xc3\xa9"}}).dump() == "{\"x\":\"\xc3\xa9\"}");
}

TEST_CASE("the frame encoder refuses an invokefunction with an invalid string in data", "[unit][utf8]") {
    p::Encoder encoder;
    p::InvokeFunction m;
    m.invocation_id = "3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11";
    m.function_id = "greet";
    m.data = Value::object({{"name", bad}});
    CHECK(serde_message([&] { (void)encoder.encode(m); }) ==
          "cannot encode invokefunction: $.data.name: string is not valid UTF-8 (invalid byte at offset 2)");
    m.data = Value();
    m.action = iii::Enqueue(bad);
    CHECK(serde_message([&] { (void)encoder.encode(m); }) ==
          "cannot encode invokefunction: $.action.queue: string is not valid UTF-8 (invalid byte at offset 2)");
    // Still usable afterwards.
    m.action.reset();
    CHECK(encoder.encode(m) == R"({"type":"invokefunction","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11","function_id":"greet","data":null})");
}

TEST_CASE("a registration with an invalid description is refused by check_encodable", "[unit][utf8]") {
    iii::RegisterFunctionMessage message = iii::RegisterFunctionMessage::with_id("f");
    message.description = bad;
    CHECK(serde_message([&] { p::check_encodable(p::RegisterFunction{message}); }) ==
          "cannot encode registerfunction: $.description: string is not valid UTF-8 (invalid byte at offset 2)");
    message.description = "fine";
    iii::HttpInvocationConfig http;
    http.url = "http://127.0.0.1:1/x";
    http.headers = {{"X-Ok", "1"}, {"X-Bad", bad}};
    message.invocation = http;
    CHECK(serde_message([&] { p::check_encodable(p::RegisterFunction{message}); }) ==
          "cannot encode registerfunction: $.invocation.headers[\"X-Bad\"]: string is not valid UTF-8 (invalid byte at offset 2)");
    message.invocation.reset();
    CHECK_NOTHROW(p::check_encodable(p::RegisterFunction{message}));
}

TEST_CASE("a result that cannot be encoded is sent as an invocation_failed reply", "[unit][utf8]") {
    p::Encoder encoder;
    p::InvocationResult r;
    r.invocation_id = "3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11";
    r.function_id = "greet";
    r.result = Value::object({{"greeting", bad}});
    const Value frame = Value::parse(encoder.encode(r));
    CHECK(frame["type"] == Value("invocationresult"));
    CHECK(frame["invocation_id"] == Value(r.invocation_id));
    CHECK_FALSE(frame.contains("result"));
    CHECK(frame["error"]["code"] == Value("invocation_failed"));
    CHECK(frame["error"]["message"] ==
          Value("the result of greet cannot be sent: $.result.greeting: string is not valid UTF-8 "
                "(invalid byte at offset 2)"));

    // A handler's own error keeps its code; its invalid bytes become U+FFFD.
    p::InvocationResult failed;
    failed.invocation_id = r.invocation_id;
    failed.function_id = "greet";
    failed.error = iii::RemoteError{"boom", "bad \xff byte", std::nullopt};
    const Value error = Value::parse(encoder.encode(failed));
    CHECK(error["error"]["code"] == Value("boom"));
    CHECK(error["error"]["message"] == Value("bad \xef\xbf\xbd byte"));

    p::TriggerRegistrationResult tr{"t1", "ticker", "f", iii::RemoteError{"trigger_registration_failed", bad, std::nullopt}};
    CHECK(Value::parse(encoder.encode(tr))["error"]["message"] == Value("ab\xef\xbf\xbd" "cd"));
}

TEST_CASE("the writer's plain-text path writes exactly what RapidJSON writes", "[unit][utf8]") {
    // checked_string() copies printable ASCII without `"` or `\` as is, eight bytes at a time,
    // and hands anything else to the UTF-8 check and RapidJSON's escaper. Every byte value, at
    // every position of strings from 1 to 17 bytes (both sides of each 8-byte step), as a value
    // and as a key: the same bytes out as RapidJSON's own String(), or the same refusal.
    using iii::detail::JsonWriter;
    auto through_ours = [](const std::string& s, bool key) -> std::string {
        rapidjson::StringBuffer buffer;
        JsonWriter w(buffer);
        w.StartObject();
        if (key) {
            w.checked_string(s, true);
            w.Int(1);
        } else {
            w.plain_string("k");
            w.checked_string(s, false);
        }
        w.EndObject();
        return {buffer.GetString(), buffer.GetSize()};
    };
    auto through_rapidjson = [](const std::string& s, bool key) -> std::string {
        rapidjson::StringBuffer buffer;
        rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
        w.StartObject();
        if (key) {
            w.Key(s.data(), static_cast<rapidjson::SizeType>(s.size()));
            w.Int(1);
        } else {
            w.Key("k");
            w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
        }
        w.EndObject();
        return {buffer.GetString(), buffer.GetSize()};
    };
    int plain = 0, escaped = 0, refused = 0;
    for (std::size_t length = 1; length <= 17; ++length) {
        for (std::size_t at = 0; at < length; ++at) {
            for (int byte = 0; byte < 256; ++byte) {
                std::string s(length, 'a');
                s[at] = static_cast<char>(byte);
                for (bool key : {false, true}) {
                    const bool valid = iii::detail::invalid_utf8_offset(s) == std::string_view::npos;
                    if (!valid) {
                        CHECK_THROWS_AS(through_ours(s, key), iii::detail::InvalidUtf8);
                        ++refused;
                        continue;
                    }
                    const std::string ours = through_ours(s, key);
                    REQUIRE(ours == through_rapidjson(s, key));
                    ++(iii::detail::plain_ascii(s) ? plain : escaped);
                }
            }
        }
    }
    // The empty string, also as a default string_view (its data() is null).
    CHECK(through_ours("", false) == through_rapidjson("", false));
    {
        rapidjson::StringBuffer buffer;
        JsonWriter w(buffer);
        w.checked_string(std::string_view(), false);
        CHECK(std::string(buffer.GetString(), buffer.GetSize()) == R"("")");
    }
    // Each path was taken: 0x20-0x7f less `"` and `\` are plain, 0x00-0x1f, `"` and `\` are
    // escaped, and a lone byte >= 0x80 is not UTF-8.
    CHECK(plain == 153 * 2 * 94);
    CHECK(escaped == 153 * 2 * 34);
    CHECK(refused == 153 * 2 * 128);
}
