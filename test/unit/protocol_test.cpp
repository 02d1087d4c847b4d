#include "protocol.hpp"
#include "scoped_env.hpp"

#include "iii/types.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace p = iii::detail::protocol;
using iii::Value;

namespace {

constexpr const char* uuid_a = "3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11";

p::Message decode_ok(std::string_view frame) {
    p::Decoder decoder;
    p::Message message;
    p::DecodeFailure failure;
    INFO("frame: " << frame);
    const bool ok = decoder.decode(frame, message, failure);
    INFO("reason: " << failure.reason);
    REQUIRE(ok);
    return message;
}

p::DecodeFailure decode_fail(std::string_view frame) {
    p::Decoder decoder;
    p::Message message;
    p::DecodeFailure failure;
    INFO("frame: " << frame);
    REQUIRE_FALSE(decoder.decode(frame, message, failure));
    CHECK_FALSE(failure.reason.empty());
    return failure;
}

template <class T>
T decode_as(std::string_view frame) {
    p::Message m = decode_ok(frame);
    INFO("decoded as " << p::type_name(m));
    REQUIRE(std::holds_alternative<T>(m));
    return std::get<T>(std::move(m));
}

std::string encode(const p::Message& m) {
    p::Encoder encoder;
    return std::string(encoder.encode(m));
}

// The encoded frame equals `golden` as JSON (key order aside) and starts with its `type`.
void check_golden(const p::Message& m, std::string_view golden) {
    const std::string frame = encode(m);
    INFO("encoded: " << frame);
    INFO("golden:  " << golden);
    CHECK(Value::parse(frame) == Value::parse(golden));
    CHECK(frame.rfind(std::string("{\"type\":\"") + p::type_name(m) + "\"", 0) == 0);
}

bool contains(const std::string& text, std::string_view part) {
    return text.find(part) != std::string::npos;
}

// One message of every type with every field set, and one with only the required ones.
std::vector<p::Message> full_messages() {
    iii::RegisterFunctionMessage rf = iii::RegisterFunctionMessage::with_id("greet");
    rf.description = "Greet someone";
    rf.request_format = Value{{"type", "object"}};
    rf.response_format = Value{{"type", "string"}};
    rf.metadata = Value{{"team", "core"}, {"tags", Value::array({1, 2})}};
    rf.invocation = iii::HttpInvocationConfig{
        .url = "https://example.com/invoke",
        .method = iii::HttpMethod::Patch,
        .timeout_ms = 1500,
        .headers = {{"x-a", "1"}, {"x-b", "2"}},
        .auth = iii::ApiKeyAuth{.header = "x-api-key", .value_key = "API_KEY_ENV"},
    };
    return {
        p::RegisterFunction{rf},
        p::UnregisterFunction{"greet"},
        p::RegisterTriggerType{"webhook", "Inbound webhooks", Value{{"type", "object"}},
                               Value{{"type", "array"}}},
        p::UnregisterTriggerType{"webhook"},
        p::RegisterTrigger{"5d0c6f1e-2c7b-4d55-9a53-1b1c2b8e4a77", "cron", "reports::nightly",
                           Value{{"expression", "0 0 2 * * *"}}, Value{{"owner", "ops"}}},
        p::UnregisterTrigger{"t1", "cron"},
        p::TriggerRegistrationResult{"t1", "webhook", "hooks::github",
                                     iii::RemoteError{"trigger_registration_failed", "bad url",
                                                      "frame 0"}},
        p::InvokeFunction{uuid_a, "greet", Value{{"name", "World"}}, "00-trace-span-01",
                          "k=v", iii::TriggerAction{iii::Enqueue{"payments"}},
                          Value{{"source", "cron"}}},
        p::InvocationResult{uuid_a, "greet", Value("Hello"), std::nullopt, "00-tp-01", "a=b"},
        p::InvocationResult{uuid_a, "greet", std::nullopt,
                            iii::RemoteError{"invocation_failed", "boom", "  0: main"},
                            std::nullopt, std::nullopt},
        p::RegisterService{iii::RegisterServiceMessage{"orders", "Orders", "Order management",
                                                       "shop"}},
        p::Ping{},
        p::Pong{},
        p::WorkerRegistered{"6f0d3a52-1c1e-4a3e-9d4f-0b8f7f1f2a10", "token-1"},
        p::EngineError{iii::RemoteError{"AUTH_ERROR", "denied", "trace"}},
        p::RegistrationRejected{"FUNCTION_NAMESPACE_CONFLICT", "greet", "w-2"},
    };
}

std::vector<p::Message> minimal_messages() {
    return {
        p::RegisterFunction{iii::RegisterFunctionMessage::with_id("f")},
        p::RegisterTriggerType{"tt", "", std::nullopt, std::nullopt},
        p::RegisterTrigger{"t", "http", "f", Value(), std::nullopt},
        p::UnregisterTrigger{"t", std::nullopt},
        p::TriggerRegistrationResult{"t", "http", "f", std::nullopt},
        p::InvokeFunction{std::nullopt, "f", Value(), std::nullopt, std::nullopt, std::nullopt,
                          std::nullopt},
        p::InvokeFunction{std::nullopt, "f", Value(), std::nullopt, std::nullopt,
                          iii::TriggerAction{iii::Void{}}, std::nullopt},
        p::InvocationResult{uuid_a, "f", std::nullopt, std::nullopt, std::nullopt, std::nullopt},
        p::InvocationResult{uuid_a, "f", Value(), std::nullopt, std::nullopt, std::nullopt},
        p::RegisterService{iii::RegisterServiceMessage{"s", "", std::nullopt, std::nullopt}},
        p::WorkerRegistered{"w", std::nullopt},
        p::EngineError{iii::RemoteError{"c", "m", std::nullopt}},
        p::RegistrationRejected{"WORKER_NAMESPACE_CONFLICT", std::nullopt, std::nullopt},
    };
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Round trips

TEST_CASE("every message type survives encode then decode", "[unit][protocol]") {
    p::Encoder encoder;
    p::Decoder decoder;
    std::set<std::size_t> types_seen;
    auto all = full_messages();
    auto minimal = minimal_messages();
    all.insert(all.end(), minimal.begin(), minimal.end());
    for (const p::Message& original : all) {
        types_seen.insert(original.index());
        const std::string frame(encoder.encode(original));
        INFO("frame: " << frame);
        p::Message decoded;
        p::DecodeFailure failure;
        REQUIRE(decoder.decode(frame, decoded, failure));
        CHECK(decoded.index() == original.index());
        // The encoder is deterministic, so equal frames mean equal messages.
        CHECK(std::string(encoder.encode(decoded)) == frame);
    }
    CHECK(types_seen.size() == std::variant_size_v<p::Message>);
}

TEST_CASE("a fully populated invokefunction decodes field by field", "[unit][protocol]") {
    const auto m = decode_as<p::InvokeFunction>(encode(full_messages()[7]));
    CHECK(m.invocation_id == uuid_a);
    CHECK(m.function_id == "greet");
    CHECK(m.data == Value{{"name", "World"}});
    CHECK(m.traceparent == "00-trace-span-01");
    CHECK(m.baggage == "k=v");
    REQUIRE(m.action);
    REQUIRE(std::holds_alternative<iii::Enqueue>(*m.action));
    CHECK(std::get<iii::Enqueue>(*m.action).queue == "payments");
    CHECK(m.metadata == Value{{"source", "cron"}});
}

TEST_CASE("an invokefunction decoded into recycled storage is the frame's own, whatever it held",
          "[unit][protocol]") {
    const std::vector<std::string> payloads = {
        R"({"a":1,"b":"two","c":[1,2,3]})",
        R"({"a":{"x":"a string longer than the small-string buffer"},"b":[[1],[2]]})",
        R"([1,"x",{"k":null},[true,false]])",
        R"("text")",
        R"(42)",
        R"({})",
        R"([])",
        R"({"b":[{"c":"d"}],"a":true})",
        R"(null)",
        R"({"a":1,"a":2})",
    };
    const std::string id = "3f2b6e1a-8c1d-4e5f-9a7b-0c1d2e3f4a5b";
    p::Decoder decoder;
    for (const auto& previous : payloads)
        for (const auto& next : payloads) {
            INFO(previous << " then " << next);
            std::string spare_id(40, 'x');
            const bool kept = decoder.recycle(Value::parse(previous), std::move(spare_id));
            CHECK(kept);
            const std::string frame = R"({"type":"invokefunction","invocation_id":")" + id +
                                      R"(","function_id":"f","data":)" + next + "}";
            p::Message m;
            p::DecodeFailure failure;
            REQUIRE(decoder.decode(frame, m, failure));
            const auto& invoke = std::get<p::InvokeFunction>(m);
            // dump(): member order and duplicates too, which operator== does not compare.
            CHECK(invoke.data.dump() == Value::parse(next).dump());
            CHECK(invoke.invocation_id == id);
        }
    SECTION("a frame without data leaves the spare for the next one") {
        std::string spare_id(40, 'x');
        const bool kept = decoder.recycle(Value{{"stale", 1}}, std::move(spare_id));
        CHECK(kept);
        p::Message m;
        p::DecodeFailure failure;
        REQUIRE(decoder.decode(R"({"type":"invocationresult","invocation_id":")" + id +
                                   R"(","function_id":"f","result":{"r":2}})",
                               m, failure));
        CHECK(std::get<p::InvocationResult>(m).result->dump() == R"({"r":2})");
        REQUIRE(decoder.decode(R"({"type":"invokefunction","function_id":"f","data":[1]})", m, failure));
        CHECK(std::get<p::InvokeFunction>(m).data.dump() == "[1]");
        CHECK_FALSE(std::get<p::InvokeFunction>(m).invocation_id);
    }
    SECTION("storage for the calls in flight is kept, up to 64") {
        p::Decoder fresh;
        for (int i = 0; i < 64; ++i) {
            std::string spare(40, 'x');
            const bool kept = fresh.recycle(Value{{"i", i}}, std::move(spare));
            CHECK(kept);
        }
        std::string one_more(40, 'x');
        const bool kept = fresh.recycle(Value{{"i", 64}}, std::move(one_more));
        CHECK_FALSE(kept);
    }
    SECTION("kept payloads hold at most 256 KiB in all, and lending one makes room again") {
        p::Decoder fresh;
        const std::string big(12 * 1024, 'x');  // each under the 16 KiB of one payload
        int kept = 0;
        for (int i = 0; i < 64; ++i) {
            std::string no_id;
            if (fresh.recycle(Value(big), std::move(no_id))) ++kept;
        }
        CHECK(kept == 256 / 12);  // 21 x 12 KiB (and the capacities' slack) fit, the 22nd does not
        p::Message m;
        p::DecodeFailure failure;
        REQUIRE(fresh.decode(R"({"type":"invokefunction","function_id":"f","data":1})", m, failure));
        std::string no_id;
        CHECK(fresh.recycle(Value(big), std::move(no_id)));  // the decode took one
        std::string again;
        CHECK_FALSE(fresh.recycle(Value(big), std::move(again)));
    }
    SECTION("storage too big to keep is freed") {
        p::Decoder fresh;
        std::string no_id;
        const bool kept = fresh.recycle(Value(std::string(100 * 1024, 'x')), std::move(no_id));
        CHECK_FALSE(kept);
    }
}

TEST_CASE("a fully populated registerfunction decodes field by field", "[unit][protocol]") {
    const auto m = decode_as<p::RegisterFunction>(encode(full_messages()[0])).message;
    CHECK(m.id == "greet");
    CHECK(m.description == "Greet someone");
    CHECK(m.request_format == Value{{"type", "object"}});
    CHECK(m.response_format == Value{{"type", "string"}});
    CHECK(m.metadata == Value{{"team", "core"}, {"tags", Value::array({1, 2})}});
    REQUIRE(m.invocation);
    CHECK(m.invocation->url == "https://example.com/invoke");
    CHECK(m.invocation->method == iii::HttpMethod::Patch);
    CHECK(m.invocation->timeout_ms == 1500u);
    CHECK(m.invocation->headers == std::map<std::string, std::string>{{"x-a", "1"}, {"x-b", "2"}});
    REQUIRE(m.invocation->auth);
    const auto* auth = std::get_if<iii::ApiKeyAuth>(&*m.invocation->auth);
    REQUIRE(auth);
    CHECK(auth->header == "x-api-key");
    CHECK(auth->value_key == "API_KEY_ENV");
}

TEST_CASE("an error invocationresult decodes its error body", "[unit][protocol]") {
    const auto m = decode_as<p::InvocationResult>(encode(full_messages()[9]));
    CHECK_FALSE(m.result);
    REQUIRE(m.error);
    CHECK(m.error->code == "invocation_failed");
    CHECK(m.error->message == "boom");
    CHECK(m.error->stacktrace == "  0: main");
}

TEST_CASE("payload integers keep their 64-bit range through a frame", "[unit][protocol]") {
    p::InvokeFunction in{uuid_a, "f",
                         Value::array({std::numeric_limits<std::uint64_t>::max(),
                                       std::numeric_limits<std::int64_t>::min(), 1.0}),
                         std::nullopt, std::nullopt, std::nullopt, std::nullopt};
    const auto out = decode_as<p::InvokeFunction>(encode(in));
    CHECK(out.data[0].kind() == Value::Kind::Uint);
    CHECK(out.data[0].as_uint() == std::numeric_limits<std::uint64_t>::max());
    CHECK(out.data[1].as_int() == std::numeric_limits<std::int64_t>::min());
    CHECK(out.data[2].kind() == Value::Kind::Double);
}

// ---------------------------------------------------------------------------------------------
// Golden frames from the spec (sections 1.5, 1.6, 2.3, 2.4, 3.3)

TEST_CASE("registerfunction encodes as in the spec", "[unit][protocol]") {
    iii::RegisterFunctionMessage m = iii::RegisterFunctionMessage::with_id("greet");
    m.description = "Greet someone";
    m.request_format = Value::parse(
        R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"GreetInput","type":"object",
            "required":["name"],"properties":{"name":{"type":"string"}}})");
    m.response_format = Value::parse(
        R"({"$schema":"http://json-schema.org/draft-07/schema#","title":"String","type":"string"})");
    const char* golden =
        R"({"type":"registerfunction","id":"greet","description":"Greet someone",
 "request_format":{"$schema":"http://json-schema.org/draft-07/schema#","title":"GreetInput","type":"object",
                   "required":["name"],"properties":{"name":{"type":"string"}}},
 "response_format":{"$schema":"http://json-schema.org/draft-07/schema#","title":"String","type":"string"}})";
    check_golden(p::RegisterFunction{m}, golden);
    const auto back = decode_as<p::RegisterFunction>(golden).message;
    CHECK(back.request_format == m.request_format);
}

TEST_CASE("an HTTP-invoked registerfunction encodes as the Rust SDK writes it",
          "[unit][protocol]") {
    iii::RegisterFunctionMessage m = iii::RegisterFunctionMessage::with_id("external::my_lambda");
    m.invocation = iii::HttpInvocationConfig{.url = "https://example.com/invoke",
                                             .timeout_ms = 30000,
                                             .auth = iii::BearerAuth{"LAMBDA_TOKEN"}};
    const char* golden = R"({"type":"registerfunction","id":"external::my_lambda",
 "invocation":{"url":"https://example.com/invoke","method":"POST","timeout_ms":30000,"headers":{},
               "auth":{"type":"bearer","token_key":"LAMBDA_TOKEN"}}})";
    check_golden(p::RegisterFunction{m}, golden);
    const auto back = decode_as<p::RegisterFunction>(golden).message;
    REQUIRE(back.invocation);
    CHECK(back.invocation->method == iii::HttpMethod::Post);
    REQUIRE(back.invocation->auth);
    CHECK(std::get<iii::BearerAuth>(*back.invocation->auth).token_key == "LAMBDA_TOKEN");
}

TEST_CASE("an HTTP invocation without headers still writes an empty headers object",
          "[unit][protocol]") {
    iii::RegisterFunctionMessage m = iii::RegisterFunctionMessage::with_id("x");
    m.invocation = iii::HttpInvocationConfig{.url = "http://h", .method = iii::HttpMethod::Get};
    check_golden(p::RegisterFunction{m},
                 R"({"type":"registerfunction","id":"x",
                     "invocation":{"url":"http://h","method":"GET","headers":{}}})");
}

TEST_CASE("every auth kind encodes as its tagged object", "[unit][protocol]") {
    auto frame_with = [](iii::HttpAuthConfig auth) {
        iii::RegisterFunctionMessage m = iii::RegisterFunctionMessage::with_id("x");
        m.invocation = iii::HttpInvocationConfig{.url = "u", .auth = std::move(auth)};
        return Value::parse(encode(p::RegisterFunction{m}))["invocation"]["auth"];
    };
    CHECK(frame_with(iii::HmacAuth{"S"}) == Value{{"type", "hmac"}, {"secret_key", "S"}});
    CHECK(frame_with(iii::BearerAuth{"T"}) == Value{{"type", "bearer"}, {"token_key", "T"}});
    CHECK(frame_with(iii::ApiKeyAuth{"h", "V"}) ==
          Value{{"type", "api_key"}, {"header", "h"}, {"value_key", "V"}});
    const auto hmac = decode_as<p::RegisterFunction>(
        R"({"type":"registerfunction","id":"x","invocation":{"url":"u","auth":{"secret_key":"S","type":"hmac"}}})");
    CHECK(std::get<iii::HmacAuth>(*hmac.message.invocation->auth).secret_key == "S");
}

TEST_CASE("simple registration messages encode as in the spec", "[unit][protocol]") {
    check_golden(p::UnregisterFunction{"greet"}, R"({"type":"unregisterfunction","id":"greet"})");
    check_golden(p::RegisterTriggerType{"webhook", "Inbound webhooks", std::nullopt, std::nullopt},
                 R"({"type":"registertriggertype","id":"webhook","description":"Inbound webhooks"})");
    check_golden(p::UnregisterTriggerType{"webhook"},
                 R"({"type":"unregistertriggertype","id":"webhook"})");
    check_golden(
        p::RegisterTrigger{"5d0c6f1e-2c7b-4d55-9a53-1b1c2b8e4a77", "cron", "reports::nightly",
                           Value{{"expression", "0 0 2 * * *"}}, std::nullopt},
        R"({"type":"registertrigger","id":"5d0c6f1e-2c7b-4d55-9a53-1b1c2b8e4a77","trigger_type":"cron",
            "function_id":"reports::nightly","config":{"expression":"0 0 2 * * *"}})");
    check_golden(p::UnregisterTrigger{"5d0c6f1e-2c7b-4d55-9a53-1b1c2b8e4a77", "cron"},
                 R"({"type":"unregistertrigger","id":"5d0c6f1e-2c7b-4d55-9a53-1b1c2b8e4a77","trigger_type":"cron"})");
    check_golden(
        p::TriggerRegistrationResult{
            "5d0c…", "webhook", "hooks::github",
            iii::RemoteError{"trigger_registration_failed", "handler error: bad url",
                             std::nullopt}},
        R"({"type":"triggerregistrationresult","id":"5d0c…","trigger_type":"webhook","function_id":"hooks::github",
            "error":{"code":"trigger_registration_failed","message":"handler error: bad url"}})");
    check_golden(p::RegisterService{iii::RegisterServiceMessage{"orders", "Orders",
                                                                "Order management", std::nullopt}},
                 R"({"type":"registerservice","id":"orders","name":"Orders","description":"Order management"})");
    check_golden(p::Ping{}, R"({"type":"ping"})");
    check_golden(p::Pong{}, R"({"type":"pong"})");
    check_golden(p::WorkerRegistered{"6f0d3a52-1c1e-4a3e-9d4f-0b8f7f1f2a10", std::nullopt},
                 R"({"type":"workerregistered","worker_id":"6f0d3a52-1c1e-4a3e-9d4f-0b8f7f1f2a10"})");
}

TEST_CASE("a sync invokefunction encodes as in the spec", "[unit][protocol]") {
    const char* golden =
        R"({"type":"invokefunction","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11","function_id":"greet",
 "data":{"name":"World"},"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})";
    p::InvokeFunction m{uuid_a, "greet", Value{{"name", "World"}},
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", std::nullopt,
                        std::nullopt, std::nullopt};
    check_golden(m, golden);
    const auto back = decode_as<p::InvokeFunction>(golden);
    CHECK(back.invocation_id == uuid_a);
    CHECK_FALSE(back.baggage);
    CHECK_FALSE(back.action);
    CHECK_FALSE(back.metadata);
}

TEST_CASE("the worker metadata call writes invocation_id as null and a void action",
          "[unit][protocol]") {
    const char* golden = R"json({
      "type": "invokefunction",
      "invocation_id": null,
      "function_id": "engine::workers::register",
      "data": {
        "runtime": "rust",
        "version": "0.11.0-next.1",
        "name": "myhost:41234",
        "os": "linux x86_64 (unix)",
        "pid": 41234,
        "telemetry": { "language": "en_US", "framework": "iii-rust" }
      },
      "action": { "type": "void" }
    })json";
    p::InvokeFunction m{std::nullopt, "engine::workers::register",
                        Value{{"runtime", "rust"},
                              {"version", "0.11.0-next.1"},
                              {"name", "myhost:41234"},
                              {"os", "linux x86_64 (unix)"},
                              {"pid", 41234},
                              {"telemetry", {{"language", "en_US"}, {"framework", "iii-rust"}}}},
                        std::nullopt, std::nullopt, iii::TriggerAction{iii::Void{}}, std::nullopt};
    check_golden(m, golden);
    const std::string frame = encode(m);
    CHECK(contains(frame, R"("invocation_id":null)"));
    CHECK(contains(frame, R"("action":{"type":"void"})"));
    const auto back = decode_as<p::InvokeFunction>(golden);
    CHECK_FALSE(back.invocation_id);
    REQUIRE(back.action);
    CHECK(std::holds_alternative<iii::Void>(*back.action));
    CHECK(back.data["pid"] == Value(41234));
}

TEST_CASE("an enqueue action encodes its queue", "[unit][protocol]") {
    p::InvokeFunction m{uuid_a,
                        "f",
                        Value(),
                        std::nullopt,
                        std::nullopt,
                        iii::TriggerAction{iii::Enqueue{"payments"}},
                        std::nullopt};
    check_golden(m, R"({"type":"invokefunction","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11",
                        "function_id":"f","data":null,"action":{"type":"enqueue","queue":"payments"}})");
}

TEST_CASE("invocationresult frames encode and decode as in the spec", "[unit][protocol]") {
    const char* success =
        R"({"type":"invocationresult","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11","function_id":"greet",
 "result":"Hello, World!","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"})";
    check_golden(p::InvocationResult{uuid_a, "greet", Value("Hello, World!"), std::nullopt,
                                     "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01",
                                     std::nullopt},
                 success);
    const auto ok = decode_as<p::InvocationResult>(success);
    CHECK(ok.result == Value("Hello, World!"));
    CHECK_FALSE(ok.error);

    const char* failure =
        R"({"type":"invocationresult","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11","function_id":"greet",
 "error":{"code":"invocation_failed","message":"handler error: missing field `name`","stacktrace":"   0: …"}})";
    check_golden(p::InvocationResult{uuid_a, "greet", std::nullopt,
                                     iii::RemoteError{"invocation_failed",
                                                      "handler error: missing field `name`",
                                                      "   0: …"},
                                     std::nullopt, std::nullopt},
                 failure);
    const auto err = decode_as<p::InvocationResult>(failure);
    REQUIRE(err.error);
    CHECK(err.error->message == "handler error: missing field `name`");
    CHECK(err.error->stacktrace == "   0: …");

    const auto receipt = decode_as<p::InvocationResult>(
        R"({"type":"invocationresult","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11","function_id":"f","result":{"messageReceiptId":"a8c6"}})");
    CHECK(receipt.result == Value{{"messageReceiptId", "a8c6"}});
}

TEST_CASE("an invocationresult with both result and error is written with the error only",
          "[unit][protocol]") {
    p::InvocationResult m{uuid_a,
                          "f",
                          Value(1),
                          iii::RemoteError{"c", "m", std::nullopt},
                          std::nullopt,
                          std::nullopt};
    check_golden(m, R"({"type":"invocationresult","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11",
                        "function_id":"f","error":{"code":"c","message":"m"}})");
}

TEST_CASE("a success with a null result writes result null", "[unit][protocol]") {
    check_golden(
        p::InvocationResult{uuid_a, "f", Value(), std::nullopt, std::nullopt, std::nullopt},
                 R"({"type":"invocationresult","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11",
                     "function_id":"f","result":null})");
    check_golden(
        p::InvocationResult{uuid_a, "f", std::nullopt, std::nullopt, std::nullopt, std::nullopt},
                 R"({"type":"invocationresult","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11",
                     "function_id":"f"})");
}

TEST_CASE("the engine's admission error decodes as EngineError", "[unit][protocol]") {
    const char* golden = R"({"type":"error","error":{"code":"AUTH_ERROR","message":"…"}})";
    const auto m = decode_as<p::EngineError>(golden);
    CHECK(m.error.code == "AUTH_ERROR");
    CHECK(m.error.message == "…");
    check_golden(m, golden);
}

TEST_CASE("HEAD frames decode: reattach token, registrationrejected, invoke metadata",
          "[unit][protocol]") {
    const auto reg = decode_as<p::WorkerRegistered>(
        R"({"type":"workerregistered","worker_id":"6f0d3a52-1c1e-4a3e-9d4f-0b8f7f1f2a10","reattach_token":"tok"})");
    CHECK(reg.reattach_token == "tok");

    const auto rejected = decode_as<p::RegistrationRejected>(
        R"({"type":"registrationrejected","code":"FUNCTION_NAMESPACE_CONFLICT","namespace":"default",
            "function_id":"greet","owner_worker_id":"w-1"})");
    CHECK(rejected.code == "FUNCTION_NAMESPACE_CONFLICT");
    CHECK(rejected.function_id == "greet");
    CHECK(rejected.owner_worker_id == "w-1");

    const auto invoke = decode_as<p::InvokeFunction>(
        R"({"type":"invokefunction","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11","function_id":"f",
            "data":{},"metadata":{"k":1},"namespace":"default"})");
    CHECK(invoke.metadata == Value{{"k", 1}});
}

TEST_CASE("registrationrejected tolerates missing and wrong-typed fields", "[unit][protocol]") {
    const auto bare = decode_as<p::RegistrationRejected>(R"({"type":"registrationrejected"})");
    CHECK(bare.code.empty());
    CHECK_FALSE(bare.function_id);
    const auto odd = decode_as<p::RegistrationRejected>(
        R"({"type":"registrationrejected","code":7,"function_id":null,"owner_worker_id":"w"})");
    CHECK(odd.code.empty());
    CHECK_FALSE(odd.function_id);
    CHECK(odd.owner_worker_id == "w");
}

// ---------------------------------------------------------------------------------------------
// Decoding rules

TEST_CASE("optional fields may be absent or null alike", "[unit][protocol]") {
    const auto absent = decode_as<p::InvokeFunction>(
        R"({"type":"invokefunction","function_id":"f","data":1})");
    const auto null = decode_as<p::InvokeFunction>(
        R"({"type":"invokefunction","invocation_id":null,"function_id":"f","data":1,
            "traceparent":null,"baggage":null,"action":null,"metadata":null})");
    for (const auto* m : {&absent, &null}) {
        CHECK_FALSE(m->invocation_id);
        CHECK_FALSE(m->traceparent);
        CHECK_FALSE(m->baggage);
        CHECK_FALSE(m->action);
        CHECK_FALSE(m->metadata);
    }

    const auto rf = decode_as<p::RegisterFunction>(
        R"({"type":"registerfunction","id":"f","description":null,"request_format":null,
            "response_format":null,"metadata":null,"invocation":null})");
    CHECK_FALSE(rf.message.description);
    CHECK_FALSE(rf.message.request_format);
    CHECK_FALSE(rf.message.invocation);

    const auto trr = decode_as<p::TriggerRegistrationResult>(
        R"({"type":"triggerregistrationresult","id":"t","trigger_type":"x","function_id":"f","error":null})");
    CHECK_FALSE(trr.error);

    const auto ut = decode_as<p::UnregisterTrigger>(R"({"type":"unregistertrigger","id":"t"})");
    CHECK_FALSE(ut.trigger_type);

    const auto svc = decode_as<p::RegisterService>(R"({"type":"registerservice","id":"s"})");
    CHECK(svc.message.name.empty());

    const auto http = decode_as<p::RegisterFunction>(
        R"({"type":"registerfunction","id":"f","invocation":{"url":"u","method":null,"timeout_ms":null,"headers":null,"auth":null}})");
    REQUIRE(http.message.invocation);
    CHECK(http.message.invocation->method == iii::HttpMethod::Post);
    CHECK_FALSE(http.message.invocation->timeout_ms);
    CHECK(http.message.invocation->headers.empty());
    CHECK_FALSE(http.message.invocation->auth);
}

TEST_CASE("an invocationresult without result is a null success; result null stays present",
          "[unit][protocol]") {
    const auto absent = decode_as<p::InvocationResult>(
        R"({"type":"invocationresult","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11","function_id":"f"})");
    CHECK_FALSE(absent.result);
    CHECK_FALSE(absent.error);
    const auto null = decode_as<p::InvocationResult>(
        R"({"type":"invocationresult","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11","function_id":"f","result":null,"error":null})");
    REQUIRE(null.result);
    CHECK(null.result->is_null());
    CHECK_FALSE(null.error);
}

TEST_CASE("data and config are required but may be null", "[unit][protocol]") {
    CHECK(decode_as<p::InvokeFunction>(R"({"type":"invokefunction","function_id":"f","data":null})")
              .data.is_null());
    CHECK(decode_as<p::RegisterTrigger>(
              R"({"type":"registertrigger","id":"t","trigger_type":"x","function_id":"f","config":null})")
              .config.is_null());
    CHECK(contains(decode_fail(R"({"type":"invokefunction","function_id":"f"})").reason,
                   "missing field `data`"));
    CHECK(contains(
        decode_fail(R"({"type":"registertrigger","id":"t","trigger_type":"x","function_id":"f"})")
            .reason,
        "missing field `config`"));
}

TEST_CASE("unknown fields are ignored wherever they are", "[unit][protocol]") {
    const auto m = decode_as<p::InvokeFunction>(
        R"({"extra":{"deep":[1,{"x":[true,null]}],"s":"\u00e9"},"type":"invokefunction","n":1e5,
            "function_id":"f","data":{"a":1},"more":[[]],"action":{"type":"void","note":"x"},"z":null})");
    CHECK(m.function_id == "f");
    CHECK(m.data == Value{{"a", 1}});
    CHECK(std::holds_alternative<iii::Void>(*m.action));

    const auto e = decode_as<p::InvocationResult>(
        R"({"type":"invocationresult","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11","function_id":"f",
            "error":{"code":"c","extra":{"a":[1]},"message":"m"}})");
    CHECK(e.error->code == "c");
}

TEST_CASE("fields of other message types are ignored, even when wrong-typed",
          "[unit][protocol]") {
    // `invocation` belongs to registerfunction, `error` and `result` to other types.
    const auto ping = decode_as<p::Ping>(R"({"type":"ping","invocation":5,"error":"x","id":[]})");
    (void)ping;
    // Also when they come before `type`.
    const auto invoke = decode_as<p::InvokeFunction>(
        R"({"invocation":5,"id":{},"description":7,"function_id":"f","data":2,"type":"invokefunction"})");
    CHECK(invoke.data == Value(2));
}

TEST_CASE("type may come anywhere in the object", "[unit][protocol]") {
    const auto m = decode_as<p::InvocationResult>(
        R"({"function_id":"f","result":{"v":[1,2]},"invocation_id":"3F2B8C1E8A4D4C6E9B0E2F1C5D7A9E11","type":"invocationresult"})");
    CHECK(m.invocation_id == uuid_a);
    CHECK(m.result == Value{{"v", Value::array({1, 2})}});
}

TEST_CASE("escaped keys and values are unescaped", "[unit][protocol]") {
    const auto m = decode_as<p::UnregisterFunction>(
        R"({"t\u0079pe":"unregisterfunction","\u0069d":"a\"b\\c\u00e9"})");
    CHECK(m.id == "a\"b\\c\xC3\xA9");
    const std::string frame = encode(m);
    CHECK(decode_as<p::UnregisterFunction>(frame).id == m.id);
}

TEST_CASE("an unknown type is rejected and named", "[unit][protocol]") {
    const auto f = decode_fail(R"({"type":"teleport","id":"x"})");
    CHECK(f.reason == "unknown message type `teleport`");
    CHECK(f.type == "teleport");
    const auto late = decode_fail(R"({"id":"x","type":"reattach"})");
    CHECK(late.reason == "unknown message type `reattach`");
}

TEST_CASE("a missing or non-string type is rejected", "[unit][protocol]") {
    CHECK(decode_fail(R"({"id":"x"})").reason == "missing field `type`");
    CHECK(decode_fail("{}").reason == "missing field `type`");
    CHECK(contains(decode_fail(R"({"type":5})").reason, "field `type`"));
    CHECK(contains(decode_fail(R"({"type":null})").reason, "field `type`"));
}

TEST_CASE("frames that are not JSON objects are rejected", "[unit][protocol]") {
    for (const char* frame : {"[]", "[{\"type\":\"ping\"}]", "5", "\"ping\"", "null", "true"}) {
        INFO(frame);
        CHECK(decode_fail(frame).reason == "frame is not a JSON object");
    }
}

TEST_CASE("malformed and truncated JSON is rejected", "[unit][protocol]") {
    const std::string good = encode(full_messages()[7]);
    for (std::size_t cut : {std::size_t{0}, std::size_t{1}, good.size() / 3, good.size() / 2,
                            good.size() - 2, good.size() - 1}) {
        const std::string truncated = good.substr(0, cut);
        INFO("truncated at " << cut);
        (void)decode_fail(truncated);
    }
    for (const char* frame :
         {"", "   ", "{", "{\"type\":\"ping\"", "{\"type\":\"ping\",}", "{\"type\" \"ping\"}",
          "{\"type\":\"ping\"}}", "{\"type\":\"ping\"} x", "{type:\"ping\"}",
          "{\"type\":\"invokefunction\",\"function_id\":\"f\",\"data\":[1,}",
          "{\"type\":\"invokefunction\",\"function_id\":\"f\",\"data\":tru}",
          "{\"type\":\"invokefunction\",\"function_id\":\"f\",\"data\":1e999}",
          "{\"type\":\"ping\",\"x\":\"\xff\"}"}) {
        INFO(frame);
        (void)decode_fail(frame);
    }
}

TEST_CASE("a malformed token inside a payload is reported as invalid JSON", "[unit][protocol]") {
    const auto f = decode_fail(R"({"type":"invokefunction","function_id":"f","data":{"a":tru}})");
    CHECK(contains(f.reason, "invokefunction: invalid JSON"));
    CHECK(f.type == "invokefunction");
}

TEST_CASE("wrong-typed fields are rejected with the field named", "[unit][protocol]") {
    auto f = decode_fail(R"({"type":"invokefunction","function_id":5,"data":1})");
    CHECK(f.reason == "invokefunction: field `function_id`: expected a string");
    CHECK(f.type == "invokefunction");

    CHECK(contains(decode_fail(R"({"type":"registerfunction","id":["x"]})").reason,
                   "field `id`: expected a string"));
    CHECK(contains(decode_fail(R"({"type":"registerfunction","id":null})").reason,
                   "field `id`: expected a string, got null"));
    CHECK(contains(decode_fail(R"({"type":"registerfunction","id":"f","description":1})").reason,
                   "field `description`"));
    CHECK(contains(decode_fail(R"({"type":"invokefunction","function_id":"f","data":1,"action":"void"})")
                       .reason,
                   "field `action`"));
    CHECK(contains(decode_fail(R"({"type":"invokefunction","function_id":"f","data":1,"action":{"type":"later"}})")
                       .reason,
                   "unknown action type `later`"));
    CHECK(contains(decode_fail(R"({"type":"invokefunction","function_id":"f","data":1,"action":{"type":"enqueue"}})")
                       .reason,
                   "field `queue`"));
    CHECK(contains(decode_fail(R"({"type":"error","error":{"code":"c"}})").reason,
                   "field `error`: field `message`: missing field"));
    CHECK(contains(decode_fail(R"({"type":"error","error":{"code":1,"message":"m"}})").reason,
                   "field `error`: field `code`: expected a string"));
    CHECK(contains(decode_fail(R"({"type":"error","error":"denied"})").reason,
                   "field `error`: expected an error object"));
    CHECK(contains(decode_fail(R"({"type":"error"})").reason, "missing field `error`"));
    CHECK(contains(decode_fail(R"({"type":"workerregistered"})").reason,
                   "missing field `worker_id`"));
    CHECK(contains(decode_fail(R"({"type":"registertriggertype","id":"x"})").reason,
                   "missing field `description`"));
    CHECK(contains(decode_fail(R"({"type":"registerfunction","id":"f","invocation":{"url":"u","timeout_ms":-1}})")
                       .reason,
                   "field `timeout_ms`"));
    CHECK(contains(decode_fail(R"({"type":"registerfunction","id":"f","invocation":{"url":"u","headers":{"a":1}}})")
                       .reason,
                   "field `headers`"));
    CHECK(contains(decode_fail(R"({"type":"registerfunction","id":"f","invocation":{"method":"GET"}})")
                       .reason,
                   "field `url`: missing field"));
    CHECK(contains(decode_fail(R"({"type":"registerfunction","id":"f","invocation":{"url":"u","auth":{"type":"oauth"}}})")
                       .reason,
                   "unknown auth type `oauth`"));
    CHECK(contains(decode_fail(R"({"type":"registerfunction","id":"f","invocation":{"url":"u","auth":{"type":"hmac"}}})")
                       .reason,
                   "auth.secret_key"));
}

TEST_CASE("HTTP methods must be exact upper case or the whole registration fails",
          "[unit][protocol]") {
    for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
        const std::string frame = std::string(R"({"type":"registerfunction","id":"f","invocation":{"url":"u","method":")") +
                                  method + "\"}}";
        const auto m = decode_as<p::RegisterFunction>(frame);
        CHECK(iii::to_string(m.message.invocation->method) == std::string(method));
    }
    const auto f = decode_fail(
        R"({"type":"registerfunction","id":"f","invocation":{"url":"u","method":"post"}})");
    CHECK(contains(f.reason, "unknown HTTP method `post`"));
    (void)decode_fail(R"({"type":"registerfunction","id":"f","invocation":{"url":"u","method":"HEAD"}})");
}

TEST_CASE("invocation ids must be UUIDs and are canonicalised", "[unit][protocol]") {
    const auto upper = decode_as<p::InvokeFunction>(
        R"({"type":"invokefunction","invocation_id":"{3F2B8C1E-8A4D-4C6E-9B0E-2F1C5D7A9E11}","function_id":"f","data":1})");
    CHECK(upper.invocation_id == uuid_a);

    for (const char* bad : {"\"not-a-uuid\"", "\"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e1\"",
                            "\"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e1g\"", "\"\"", "17", "{}"}) {
        INFO(bad);
        const auto f = decode_fail(std::string(R"({"type":"invokefunction","invocation_id":)") +
                                   bad + R"(,"function_id":"f","data":1})");
        CHECK(contains(f.reason, "field `invocation_id`"));
        CHECK_FALSE(f.invocation_id);
    }
    CHECK(contains(decode_fail(R"({"type":"invocationresult","invocation_id":"nope","function_id":"f"})")
                       .reason,
                   "not a UUID: `nope`"));
    CHECK(contains(decode_fail(R"({"type":"invocationresult","function_id":"f"})").reason,
                   "missing field `invocation_id`"));
    CHECK(contains(decode_fail(R"({"type":"invocationresult","invocation_id":null,"function_id":"f"})")
                       .reason,
                   "expected a UUID string, got null"));
}

TEST_CASE("a broken invocationresult still reports its invocation id", "[unit][protocol]") {
    SECTION("missing function_id") {
        const auto f = decode_fail(
            R"({"type":"invocationresult","invocation_id":"3F2B8C1E-8A4D-4C6E-9B0E-2F1C5D7A9E11","result":1})");
        CHECK(f.type == "invocationresult");
        CHECK(f.invocation_id == uuid_a);
        CHECK(f.reason == "invocationresult: missing field `function_id`");
    }
    SECTION("wrong-typed field after the id") {
        const auto f = decode_fail(
            R"({"type":"invocationresult","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11","function_id":"f","error":{"code":5,"message":"m"}})");
        CHECK(f.invocation_id == uuid_a);
    }
    SECTION("wrong-typed field before the id") {
        const auto f = decode_fail(
            R"({"type":"invocationresult","function_id":7,"invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11"})");
        CHECK(f.invocation_id == uuid_a);
        CHECK(contains(f.reason, "field `function_id`"));
    }
    SECTION("malformed JSON after the id") {
        const auto f = decode_fail(
            R"({"type":"invocationresult","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11","function_id":"f","result":[1,}})");
        CHECK(f.type == "invocationresult");
        CHECK(f.invocation_id == uuid_a);
    }
    SECTION("type after the id") {
        const auto f = decode_fail(
            R"({"invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11","result":1,"type":"invocationresult"})");
        CHECK(f.type == "invocationresult");
        CHECK(f.invocation_id == uuid_a);
    }
}

TEST_CASE("a decoder is reusable after failures and across frame sizes", "[unit][protocol]") {
    p::Decoder decoder;
    p::Message m;
    p::DecodeFailure f;
    CHECK_FALSE(decoder.decode("{", m, f));
    CHECK(decoder.decode(R"({"type":"ping"})", m, f));
    CHECK(std::holds_alternative<p::Ping>(m));
    std::string big(200000, 'x');
    const std::string frame =
        R"({"type":"invokefunction","function_id":"f","data":")" + big + "\"}";
    REQUIRE(decoder.decode(frame, m, f));
    CHECK(std::get<p::InvokeFunction>(m).data.as_string() == big);
    CHECK_FALSE(decoder.decode(R"({"type":"invokefunction","function_id":"f","data":1,"invocation_id":"x"})", m, f));
    CHECK_FALSE(f.invocation_id);
    CHECK(decoder.decode(R"({"type":"pong"})", m, f));
    CHECK(std::holds_alternative<p::Pong>(m));
}

TEST_CASE("an encoder reuses its buffer and each view holds one frame", "[unit][protocol]") {
    p::Encoder encoder;
    std::string first(encoder.encode(p::Ping{}));
    std::string second(encoder.encode(p::UnregisterFunction{"abc"}));
    std::string third(encoder.encode(p::Pong{}));
    CHECK(first == R"({"type":"ping"})");
    CHECK(second == R"({"type":"unregisterfunction","id":"abc"})");
    CHECK(third == R"({"type":"pong"})");
}

TEST_CASE("encoded frames put type first and follow the spec's field order", "[unit][protocol]") {
    CHECK(encode(full_messages()[7]) ==
          R"({"type":"invokefunction","invocation_id":"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11",)"
          R"("function_id":"greet","data":{"name":"World"},"traceparent":"00-trace-span-01",)"
          R"("baggage":"k=v","action":{"type":"enqueue","queue":"payments"},"metadata":{"source":"cron"}})");
    CHECK(encode(full_messages()[0]) ==
          R"({"type":"registerfunction","id":"greet","description":"Greet someone",)"
          R"("request_format":{"type":"object"},"response_format":{"type":"string"},)"
          R"("metadata":{"team":"core","tags":[1,2]},"invocation":{"url":"https://example.com/invoke",)"
          R"("method":"PATCH","timeout_ms":1500,"headers":{"x-a":"1","x-b":"2"},)"
          R"("auth":{"type":"api_key","header":"x-api-key","value_key":"API_KEY_ENV"}}})");
    for (const p::Message& m : full_messages()) {
        const std::string frame = encode(m);
        INFO(frame);
        CHECK(frame.rfind(std::string("{\"type\":\"") + p::type_name(m) + "\"", 0) == 0);
    }
}

TEST_CASE("type_name names every message as on the wire", "[unit][protocol]") {
    CHECK(std::string(p::type_name(p::RegisterFunction{})) == "registerfunction");
    CHECK(std::string(p::type_name(p::InvokeFunction{})) == "invokefunction");
    CHECK(std::string(p::type_name(p::InvocationResult{})) == "invocationresult");
    CHECK(std::string(p::type_name(p::TriggerRegistrationResult{})) == "triggerregistrationresult");
    CHECK(std::string(p::type_name(p::EngineError{})) == "error");
    CHECK(std::string(p::type_name(p::RegistrationRejected{})) == "registrationrejected");
    CHECK(std::string(p::type_name(p::WorkerRegistered{})) == "workerregistered");
}

// ---------------------------------------------------------------------------------------------
// UUIDs

TEST_CASE("canonical_uuid accepts every UUID spelling and returns lower-case hyphenated",
          "[unit][protocol]") {
    for (const char* form : {"3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11",
                             "3F2B8C1E-8A4D-4C6E-9B0E-2F1C5D7A9E11",
                             "3f2b8c1e8a4d4c6e9b0e2f1c5d7a9e11",
                             "3F2B8C1E8A4D4C6E9B0E2F1C5D7A9E11",
                             "{3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11}",
                             "{3f2b8c1e8a4d4c6e9b0e2f1c5d7a9e11}",
                             "urn:uuid:3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11",
                             "URN:UUID:3F2B8C1E-8A4D-4C6E-9B0E-2F1C5D7A9E11"}) {
        INFO(form);
        CHECK(p::canonical_uuid(form) == uuid_a);
    }
    CHECK(p::canonical_uuid("00000000-0000-0000-0000-000000000000") ==
          "00000000-0000-0000-0000-000000000000");
}

TEST_CASE("canonical_uuid checks every byte of a canonical-looking id (its word-wise fast path)",
          "[unit][protocol]") {
    const std::string good = uuid_a;
    // Upper-case letters anywhere: still accepted (the slow path), lowered.
    for (std::size_t i = 0; i < good.size(); ++i) {
        if (good[i] < 'a') continue;
        auto text = good;
        text[i] = static_cast<char>(text[i] - 'a' + 'A');
        INFO(text);
        CHECK(p::canonical_uuid(text) == uuid_a);
    }
    // Bytes next to the digits' and letters' ranges, bytes that become digits or letters with
    // the case bit set or the top bit cleared, at every position (hyphens included).
    for (const char bad : {'/', ':', '@', 'G', '`', 'g', '\x10', '\x19', '\xb0', '\xe1', '\0', ' ', '-'}) {
        for (std::size_t i = 0; i < good.size(); ++i) {
            if (good[i] == bad) continue;
            auto text = good;
            text[i] = bad;
            INFO("byte " << static_cast<int>(static_cast<unsigned char>(bad)) << " at " << i);
            CHECK_FALSE(p::canonical_uuid(text));
        }
    }
}

TEST_CASE("canonical_uuid rejects anything else", "[unit][protocol]") {
    for (const char* bad : {"", "x", "3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e1",
                            "3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e111",
                            "3f2b8c1e8a4d-4c6e-9b0e-2f1c5d7a9e11x",
                            "3f2b8c1e_8a4d_4c6e_9b0e_2f1c5d7a9e11",
                            "3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e1g",
                            "{3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11",
                            "3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11}",
                            "urn:uuid:", "urn:3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11",
                            "3f2b8c1-e8a4d-4c6e-9b0e-2f1c5d7a9e11",
                            " 3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11"}) {
        INFO(bad);
        CHECK_FALSE(p::canonical_uuid(bad));
    }
}

TEST_CASE("new_uuid returns distinct canonical version 4 UUIDs", "[unit][protocol]") {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        const std::string id = p::new_uuid();
        REQUIRE(id.size() == 36);
        CHECK(p::canonical_uuid(id) == id);
        CHECK(id[14] == '4');
        CHECK(std::string("89ab").find(id[19]) != std::string::npos);
        seen.insert(id);
    }
    CHECK(seen.size() == 1000);
}

// ---------------------------------------------------------------------------------------------
// types.cpp

TEST_CASE("connection states and HTTP methods have their wire names", "[unit][types]") {
    CHECK(std::string(iii::to_string(iii::ConnectionState::Disconnected)) == "disconnected");
    CHECK(std::string(iii::to_string(iii::ConnectionState::Connecting)) == "connecting");
    CHECK(std::string(iii::to_string(iii::ConnectionState::Connected)) == "connected");
    CHECK(std::string(iii::to_string(iii::ConnectionState::Reconnecting)) == "reconnecting");
    CHECK(std::string(iii::to_string(iii::ConnectionState::Failed)) == "failed");
    CHECK(std::string(iii::to_string(iii::HttpMethod::Get)) == "GET");
    CHECK(std::string(iii::to_string(iii::HttpMethod::Post)) == "POST");
    CHECK(std::string(iii::to_string(iii::HttpMethod::Put)) == "PUT");
    CHECK(std::string(iii::to_string(iii::HttpMethod::Patch)) == "PATCH");
    CHECK(std::string(iii::to_string(iii::HttpMethod::Delete)) == "DELETE");
}

using test_support::ScopedEnv;

TEST_CASE("detected worker metadata describes this process", "[unit][types]") {
    ScopedEnv lang("LANG", "de_DE.UTF-8");
    const iii::WorkerMetadata m = iii::WorkerMetadata::detect();
    CHECK(m.runtime == "cpp");
    CHECK_FALSE(m.version.empty());
    REQUIRE(m.pid);
    CHECK(*m.pid == static_cast<std::uint32_t>(::getpid()));
    CHECK(m.name.size() > std::to_string(*m.pid).size() + 1);
    CHECK(m.name.substr(m.name.size() - std::to_string(*m.pid).size() - 1) ==
          ":" + std::to_string(*m.pid));
    CHECK(contains(m.os, " (unix)"));
    for (char c : m.os.substr(0, m.os.find(' '))) CHECK_FALSE((c >= 'A' && c <= 'Z'));
    REQUIRE(m.telemetry);
    CHECK(m.telemetry->framework == "iii-cpp");
    CHECK(m.telemetry->language == "de_DE");
}

TEST_CASE("the telemetry language comes from LANG, then LC_ALL, and skips C and POSIX",
          "[unit][types]") {
    {
        ScopedEnv lang("LANG", nullptr);
        ScopedEnv all("LC_ALL", "fr_FR.UTF-8");
        CHECK(iii::WorkerMetadata::detect().telemetry->language == "fr_FR");
    }
    {
        ScopedEnv lang("LANG", "en_US");
        ScopedEnv all("LC_ALL", "fr_FR.UTF-8");
        CHECK(iii::WorkerMetadata::detect().telemetry->language == "en_US");
    }
    for (const char* none : {"C", "C.UTF-8", "POSIX"}) {
        INFO(none);
        ScopedEnv lang("LANG", none);
        ScopedEnv all("LC_ALL", nullptr);
        CHECK_FALSE(iii::WorkerMetadata::detect().telemetry->language);
    }
    {
        ScopedEnv lang("LANG", nullptr);
        ScopedEnv all("LC_ALL", nullptr);
        CHECK_FALSE(iii::WorkerMetadata::detect().telemetry->language);
    }
}
