// Telemetry pieces without sockets: W3C parsing, AnyValue conversion, context propagation.

#include "telemetry_internal.hpp"

#include <iii/telemetry.hpp>

#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_future.hpp>

using namespace std::chrono_literals;
namespace tel = iii::detail::telemetry;

TEST_CASE("traceparent parsing follows W3C", "[unit][telemetry]") {
    auto ctx = iii::SpanContext::from_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01");
    REQUIRE(ctx);
    CHECK(ctx->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(ctx->span_id == "00f067aa0ba902b7");
    CHECK(ctx->trace_flags == 1);
    CHECK(ctx->traceparent() == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    CHECK_FALSE(iii::SpanContext::from_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
    CHECK_FALSE(iii::SpanContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
    CHECK_FALSE(iii::SpanContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"));
    CHECK_FALSE(iii::SpanContext::from_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    CHECK_FALSE(iii::SpanContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01"));
    CHECK_FALSE(iii::SpanContext::from_traceparent(""));
}

TEST_CASE("JSON converts to OTLP AnyValue", "[unit][telemetry]") {
    using iii::Value;
    CHECK(tel::to_any_value(Value(nullptr)) == Value{{"stringValue", ""}});
    CHECK(tel::to_any_value(Value(7)) == Value{{"intValue", 7}});
    CHECK(tel::to_any_value(Value(7)).dump() == R"({"intValue":7})");  // a number, not a string
    CHECK(tel::to_any_value(Value(2.5)) == Value{{"doubleValue", 2.5}});
    CHECK(tel::to_any_value(Value(true)) == Value{{"boolValue", true}});
    CHECK(tel::to_any_value(Value("s")) == Value{{"stringValue", "s"}});
    CHECK(tel::to_any_value(Value::array({1, "a"})).dump() ==
          R"({"arrayValue":{"values":[{"intValue":1},{"stringValue":"a"}]}})");
    CHECK(tel::to_any_value(Value{{"k", Value::object({{"n", false}})}}).dump() ==
          R"({"kvlistValue":{"values":[{"key":"k","value":{"kvlistValue":{"values":[{"key":"n","value":{"boolValue":false}}]}}}]}})");
}

TEST_CASE("the context survives co_await on a thread pool and is injected", "[unit][telemetry]") {
    asio::thread_pool pool(4);
    auto ctx = std::make_shared<tel::TraceContext>();
    ctx->trace_id = std::string(32, 'a');
    ctx->span_id = std::string(16, 'b');
    ctx->baggage = "k=v";
    auto body = []() -> asio::awaitable<std::vector<std::string>> {
        std::vector<std::string> seen;
        for (int i = 0; i < 20; ++i) {
            asio::steady_timer timer(co_await asio::this_coro::executor, 1ms);
            co_await timer.async_wait(asio::use_awaitable);
            std::optional<std::string> tp, bg;
            tel::inject(tp, bg);
            seen.push_back(tp.value_or("") + "|" + bg.value_or(""));
        }
        co_return seen;
    };
    auto outer = [&]() -> asio::awaitable<std::vector<std::string>> {
        auto traced = tel::with_context<std::vector<std::string>>(ctx, body());
        auto seen = co_await std::move(traced);
        // Restored after the traced part: the outer coroutine has no context.
        std::optional<std::string> tp, bg;
        tel::inject(tp, bg);
        if (tp) seen.push_back("leaked");
        co_return seen;
    };
    auto seen = asio::co_spawn(pool, outer(), asio::use_future).get();
    REQUIRE(seen.size() == 20);
    for (const auto& s : seen)
        CHECK(s == "00-" + std::string(32, 'a') + "-" + std::string(16, 'b') + "-01|k=v");
    pool.join();
}

TEST_CASE("a Span nests and restores the current context", "[unit][telemetry]") {
    CHECK_FALSE(iii::current_span_context().valid());
    {
        iii::Span outer("outer");
        const auto o = iii::current_span_context();
        CHECK(o.valid());
        {
            iii::Span inner("inner");
            CHECK(iii::current_span_context().trace_id == o.trace_id);
            CHECK(iii::current_span_context().span_id != o.span_id);
        }
        CHECK(iii::current_span_context().span_id == o.span_id);
    }
    CHECK_FALSE(iii::current_span_context().valid());
}

TEST_CASE("environment fallbacks of OtelConfig", "[unit][telemetry]") {
    ::setenv("OTEL_LOGS_BATCH_SIZE", "7", 1);
    ::setenv("OTEL_LOGS_FLUSH_INTERVAL_MS", "250", 1);
    ::setenv("OTEL_SERVICE_NAME", "svc", 1);
    auto s = tel::Telemetry::resolve("ws://x:1", iii::OtelConfig{});
    CHECK(s.logs_batch_size == 7);
    CHECK(s.logs_flush_interval == 250ms);
    CHECK(s.service_name == "svc");
    // Issue 13: the default moved from the engine URL to its /otel route (with the engine URL
    // as the fallback for a 0.10 engine's 404).
    CHECK(s.url == "ws://x:1/otel");
    CHECK(s.fallback_url == "ws://x:1");
    CHECK(s.channel_capacity == 10000);
    iii::OtelConfig explicit_config;
    explicit_config.logs_batch_size = 2;
    explicit_config.engine_ws_url = "ws://y:2/otel";
    s = tel::Telemetry::resolve("ws://x:1", explicit_config);
    CHECK(s.logs_batch_size == 2);
    CHECK(s.url == "ws://y:2/otel");
    ::unsetenv("OTEL_LOGS_BATCH_SIZE");
    ::unsetenv("OTEL_LOGS_FLUSH_INTERVAL_MS");
    ::unsetenv("OTEL_SERVICE_NAME");

    ::unsetenv("OTEL_ENABLED");
    CHECK(tel::Telemetry::enabled(iii::OtelConfig{}));
    ::setenv("OTEL_ENABLED", "false", 1);
    CHECK_FALSE(tel::Telemetry::enabled(iii::OtelConfig{}));
    ::setenv("OTEL_ENABLED", "1", 1);
    CHECK(tel::Telemetry::enabled(iii::OtelConfig{}));
    iii::OtelConfig off;
    off.enabled = false;
    CHECK_FALSE(tel::Telemetry::enabled(off));
    ::unsetenv("OTEL_ENABLED");
}

namespace {
std::string replace_once(std::string text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
}
}  // namespace

TEST_CASE("a span record is written as the OTLP span object, member for member", "[unit][telemetry]") {
    using iii::Value;
    tel::SpanRecord span;
    span.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    span.span_id = "00f067aa0ba902b7";
    span.parent_span_id = "a3ce929d0e0e4736";
    span.name_prefix = "call ";
    span.name = "greet";
    span.kind = 2;
    span.start_ns = 1700000000000000001u;
    span.end_ns = 18446744073709551615u;  // the largest: written in full, as a string
    span.status_code = 2;
    span.status_message = "bad \"input\" \xc3\xa9";
    span.invoked_name = true;
    span.attributes = Value::array({Value{{"key", "n"}, {"value", tel::to_any_value(Value(3))}}});
    span.exceptions.push_back({"invocation_failed", "bad \"input\" \xc3\xa9", 1700000000000000002u});
    // The members and their order of the DOM the exporter used to build per span.
    const std::string expected = Value::parse(R"({
        "traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7",
        "parentSpanId":"a3ce929d0e0e4736","name":"call greet","kind":2,
        "startTimeUnixNano":"1700000000000000001","endTimeUnixNano":"18446744073709551615",
        "status":{"code":2,"message":"bad \"input\" é"},
        "attributes":[{"key":"faas.invoked_name","value":{"stringValue":"greet"}},
                      {"key":"n","value":{"intValue":3}}],
        "events":[{"name":"exception","timeUnixNano":"1700000000000000002","attributes":[
            {"key":"exception.type","value":{"stringValue":"invocation_failed"}},
            {"key":"exception.message","value":{"stringValue":"bad \"input\" é"}},
            {"key":"exception.stacktrace","value":{"stringValue":""}}]}],
        "links":[]})").dump();
    CHECK(tel::encode_span(span) == expected);

    // A bare INTERNAL span: empty ids and lists, no attribute at all.
    tel::SpanRecord bare;
    bare.name = "work";
    CHECK(tel::encode_span(bare) ==
          R"({"traceId":"","spanId":"","parentSpanId":"","name":"work","kind":1,"startTimeUnixNano":"0",)"
          R"("endTimeUnixNano":"0","status":{"code":0,"message":""},"attributes":[],"events":[],"links":[]})");

    // With ids.
    tel::SpanRecord shared = bare;
    shared.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    shared.span_id = "00f067aa0ba902b7";
    CHECK(tel::encode_span(shared) ==
          R"({"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","parentSpanId":"",)"
          R"("name":"work","kind":1,"startTimeUnixNano":"0","endTimeUnixNano":"0","status":{"code":0,"message":""},)"
          R"("attributes":[],"events":[],"links":[]})");

    // The SDK's SERVER span of a failed call (its text appended piece by piece): the same
    // bytes as the generic writer gives the same span with one more, empty, attribute list.
    tel::SpanRecord server = shared;
    server.kind = 2;
    server.name_prefix = "call ";
    server.name = "greet";
    server.invoked_name = true;
    server.start_ns = 1700000000000000001u;
    server.end_ns = 18446744073709551615u;
    server.status_code = 2;
    server.status_message = "it broke";
    server.parent_span_id = "a3ce929d0e0e4736";
    const std::string server_text =
        R"({"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","parentSpanId":"a3ce929d0e0e4736",)"
        R"("name":"call greet","kind":2,"startTimeUnixNano":"1700000000000000001","endTimeUnixNano":"18446744073709551615",)"
        R"("status":{"code":2,"message":"it broke"},"attributes":[{"key":"faas.invoked_name","value":{"stringValue":"greet"}}],)"
        R"("events":[],"links":[]})";
    CHECK(tel::encode_span(server) == server_text);
    tel::SpanRecord generic = server;
    generic.status_message = "it broke \xc3\xa9";  // not plain ASCII: the generic writer
    CHECK(tel::encode_span(generic) == replace_once(server_text, "it broke", "it broke \xc3\xa9"));

    // Not UTF-8: a clear error, nothing half-written.
    bare.name = "bad \xff";
    CHECK_THROWS_AS(tel::encode_span(bare), iii::Error);
}
