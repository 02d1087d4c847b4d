// Logger and OTLP export (spec section 7) against the test engine, which decodes the binary
// OTLP/MTRC/LOGS frames (Engine::telemetry(), spans(), log_records(), metrics()).

#include "connection.hpp"
#include "run.hpp"

#include <iii/telemetry.hpp>

#include <catch2/catch.hpp>

#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>

using namespace std::chrono_literals;
using test_support::fast_options;
using test_support::run_sync;
using test_support::wait_function;

namespace {

std::optional<iii::Value> find_log(const iii::testing::Engine& engine, const std::string& body) {
    for (auto& r : engine.log_records())
        if (r["body"]["stringValue"] == iii::Value(body)) return r;
    return std::nullopt;
}

std::optional<iii::Value> find_span(const iii::testing::Engine& engine, const std::string& span_id) {
    for (auto& s : engine.spans())
        if (s["spanId"] == iii::Value(span_id)) return s;
    return std::nullopt;
}

/// The invokefunction frames workers sent for `function_id` (engine::workers::register too
/// travels as an invokefunction).
std::vector<iii::Value> invocations_of(const iii::testing::Engine& engine, const std::string& function_id) {
    std::vector<iii::Value> out;
    for (auto& m : engine.received("invokefunction"))
        if (m["function_id"] == iii::Value(function_id)) out.push_back(m);
    return out;
}

const iii::Value* attribute(const iii::Value& attributes, std::string_view key) {
    for (const auto& kv : attributes.as_array())
        if (kv["key"].as_string() == key) return &kv["value"];
    return nullptr;
}

iii::InitOptions otel_options() {
    auto options = fast_options();
    iii::OtelConfig otel;
    otel.enabled = true;
    otel.metrics_enabled = false;
    otel.logs_flush_interval_ms = 5;
    otel.shutdown_timeout_ms = 3000;
    options.otel = otel;
    return options;
}

iii::Value context_value() {
    auto ctx = iii::current_span_context();
    return {{"trace_id", ctx.trace_id}, {"span_id", ctx.span_id}};
}

}  // namespace

TEST_CASE("log records arrive with their data and the invocation's trace ids", "[integration][telemetry]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto worker = iii::register_worker(engine.url(), otel_options());
    auto caller = iii::register_worker(engine.url(), fast_options());
    worker->register_function(
        iii::RegisterFunctionMessage::with_id("log.me"), [](iii::Value) -> asio::awaitable<iii::Value> {
            iii::Logger logger;
            iii::Value data = {{"order_id", "ord_123"},
                               {"n", 42},
                               {"f", 1.5},
                               {"ok", true},
                               {"tags", iii::Value::array({1, "x"})},
                               {"none", nullptr}};
            logger.info("before await", data);
            auto before = context_value();
            // After a suspension the coroutine may resume on another pool thread: the span
            // must still be current there.
            asio::steady_timer timer(co_await asio::this_coro::executor, 5ms);
            co_await timer.async_wait(asio::use_awaitable);
            logger.warn("after await");
            co_return iii::Value{{"before", before}, {"after", context_value()}};
        });
    REQUIRE(wait_function(engine, "log.me"));
    asio::io_context ioc;
    auto result = run_sync(ioc, caller->trigger(iii::TriggerRequest("log.me", iii::Value::object())));
    const auto trace_id = result["before"]["trace_id"].as_string();
    const auto span_id = result["before"]["span_id"].as_string();
    REQUIRE(trace_id.size() == 32);
    REQUIRE(span_id.size() == 16);
    CHECK(result["after"] == result["before"]);

    REQUIRE(engine.wait_for([&] { return find_log(engine, "before await") && find_log(engine, "after await"); }));
    auto before = *find_log(engine, "before await");
    CHECK(before["severityNumber"] == iii::Value(9));
    CHECK(before["traceId"] == iii::Value(trace_id));
    CHECK(before["spanId"] == iii::Value(span_id));
    const iii::Value* data = attribute(before["attributes"], "log.data");
    REQUIRE(data);
    const auto& fields = (*data)["kvlistValue"]["values"];
    CHECK(*attribute(fields, "order_id") == iii::Value{{"stringValue", "ord_123"}});
    CHECK((*attribute(fields, "n"))["intValue"].is_integer());  // a JSON number, not a string
    CHECK((*attribute(fields, "n"))["intValue"] == iii::Value(42));
    CHECK(*attribute(fields, "f") == iii::Value{{"doubleValue", 1.5}});
    CHECK(*attribute(fields, "ok") == iii::Value{{"boolValue", true}});
    CHECK(*attribute(fields, "none") == iii::Value{{"stringValue", ""}});
    const auto& tags = (*attribute(fields, "tags"))["arrayValue"]["values"];
    REQUIRE(tags.size() == 2);
    CHECK(tags[0] == iii::Value{{"intValue", 1}});
    CHECK(tags[1] == iii::Value{{"stringValue", "x"}});

    auto after = *find_log(engine, "after await");
    CHECK(after["severityNumber"] == iii::Value(13));
    CHECK(after["spanId"] == iii::Value(span_id));

    // The invocation's SERVER span.
    REQUIRE(engine.wait_for([&] { return find_span(engine, span_id).has_value(); }));
    auto span = *find_span(engine, span_id);
    CHECK(span["name"] == iii::Value("call log.me"));
    CHECK(span["kind"] == iii::Value(2));
    CHECK(span["traceId"] == iii::Value(trace_id));

    // Resource attributes.
    auto body = engine.telemetry("LOGS").at(0);
    const auto& resource = body["resourceLogs"][0]["resource"]["attributes"];
    REQUIRE(attribute(resource, "service.name"));
    CHECK(*attribute(resource, "telemetry.sdk.language") == iii::Value{{"stringValue", "cpp"}});
    CHECK(attribute(resource, "service.instance.id"));
}

TEST_CASE("a failing handler's span has error status and an exception event", "[integration][telemetry]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto worker = iii::register_worker(engine.url(), otel_options());
    auto caller = iii::register_worker(engine.url(), fast_options());
    worker->register_function(iii::RegisterFunctionMessage::with_id("boom"), [](iii::Value) -> iii::Value {
        throw std::runtime_error("kaput");
    });
    REQUIRE(wait_function(engine, "boom"));
    asio::io_context ioc;
    CHECK_THROWS(run_sync(ioc, caller->trigger(iii::TriggerRequest("boom", iii::Value::object()))));
    auto failed = [&]() -> std::optional<iii::Value> {
        for (auto& s : engine.spans())
            if (s["name"] == iii::Value("call boom")) return s;
        return std::nullopt;
    };
    REQUIRE(engine.wait_for([&] { return failed().has_value(); }));
    auto span = *failed();
    CHECK(span["status"]["code"] == iii::Value(2));
    REQUIRE(span["events"].size() == 1);
    CHECK(span["events"][0]["name"] == iii::Value("exception"));
    CHECK(*attribute(span["events"][0]["attributes"], "exception.message") == iii::Value{{"stringValue", "kaput"}});
}

TEST_CASE("a call from worker A to worker B stays in one trace", "[integration][telemetry]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto a = iii::register_worker(engine.url(), otel_options());
    auto b = iii::register_worker(engine.url(), otel_options());
    auto caller = iii::register_worker(engine.url(), fast_options());
    b->register_function(iii::RegisterFunctionMessage::with_id("b.leaf"),
                         [](iii::Value) -> iii::Value { return context_value(); });
    std::weak_ptr<iii::Client> weak_a = a;
    a->register_function(
        iii::RegisterFunctionMessage::with_id("a.entry"),
        [weak_a](iii::Value) -> asio::awaitable<iii::Value> {
            auto self = weak_a.lock();
            if (!self) throw std::runtime_error("gone");
            auto mine = context_value();
            // Suspend first: the nested call is made after a resumption.
            asio::steady_timer timer(co_await asio::this_coro::executor, 2ms);
            co_await timer.async_wait(asio::use_awaitable);
            iii::TriggerRequest request("b.leaf", iii::Value::object());
            auto leaf = co_await self->trigger(std::move(request));
            co_return iii::Value{{"a", mine}, {"b", leaf}};
        });
    REQUIRE(wait_function(engine, "a.entry"));
    REQUIRE(wait_function(engine, "b.leaf"));
    asio::io_context ioc;
    auto result = run_sync(ioc, caller->trigger(iii::TriggerRequest("a.entry", iii::Value::object())));
    const auto trace_a = result["a"]["trace_id"].as_string();
    REQUIRE(trace_a.size() == 32);
    CHECK(result["b"]["trace_id"].as_string() == trace_a);
    CHECK(result["b"]["span_id"] != result["a"]["span_id"]);

    const auto a_span_id = result["a"]["span_id"].as_string();
    const auto b_span_id = result["b"]["span_id"].as_string();

    // A's outbound call has a CLIENT span, child of A's SERVER span...
    auto client_span = [&]() -> std::optional<iii::Value> {
        for (auto& s : engine.spans())
            if (s["name"] == iii::Value("trigger b.leaf")) return s;
        return std::nullopt;
    };
    REQUIRE(engine.wait_for([&] { return client_span() && find_span(engine, b_span_id); }));
    auto span_client = *client_span();
    CHECK(span_client["kind"] == iii::Value(3));
    CHECK(span_client["traceId"] == iii::Value(trace_a));
    CHECK(span_client["parentSpanId"] == iii::Value(a_span_id));
    CHECK(span_client["status"]["code"] == iii::Value(0));
    CHECK(span_client["events"].size() == 0);
    const auto client_id = span_client["spanId"].as_string();
    REQUIRE(client_id.size() == 16);
    CHECK(client_id != a_span_id);

    // ...whose context is the traceparent of the invokefunction A sent...
    auto sent = invocations_of(engine, "b.leaf");
    REQUIRE(sent.size() == 1);
    CHECK(sent[0]["traceparent"] == iii::Value("00-" + trace_a + "-" + client_id + "-01"));

    // ...so B's SERVER span is the CLIENT span's child, in the same trace.
    auto span_b = *find_span(engine, b_span_id);
    CHECK(span_b["traceId"] == iii::Value(trace_a));
    CHECK(span_b["name"] == iii::Value("call b.leaf"));
    CHECK(span_b["kind"] == iii::Value(2));
    CHECK(span_b["parentSpanId"] == iii::Value(client_id));

    // A's SERVER span is a root: the caller (telemetry off, no context) sent no traceparent.
    REQUIRE(engine.wait_for([&] { return find_span(engine, a_span_id).has_value(); }));
    CHECK(find_span(engine, a_span_id)->at("parentSpanId") == iii::Value(""));
}

TEST_CASE("a failed outbound call's CLIENT span has error status and an exception event",
          "[integration][telemetry]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto worker = iii::register_worker(engine.url(), otel_options());
    asio::io_context ioc;
    // Top level: no current context, so the CLIENT span starts a trace of its own.
    CHECK_THROWS_AS(run_sync(ioc, worker->trigger(iii::TriggerRequest("no.such.fn", iii::Value::object()))),
                    iii::Error);
    auto failed = [&]() -> std::optional<iii::Value> {
        for (auto& s : engine.spans())
            if (s["name"] == iii::Value("trigger no.such.fn")) return s;
        return std::nullopt;
    };
    REQUIRE(engine.wait_for([&] { return failed().has_value(); }));
    auto span = *failed();
    CHECK(span["kind"] == iii::Value(3));
    CHECK(span["parentSpanId"] == iii::Value(""));
    CHECK(span["status"]["code"] == iii::Value(2));
    REQUIRE(span["events"].size() == 1);
    CHECK(span["events"][0]["name"] == iii::Value("exception"));
    CHECK(*attribute(span["events"][0]["attributes"], "exception.type") ==
          iii::Value{{"stringValue", "function_not_found"}});
    auto sent = invocations_of(engine, "no.such.fn");
    REQUIRE(sent.size() == 1);
    CHECK(sent[0]["traceparent"] ==
          iii::Value("00-" + span["traceId"].as_string() + "-" + span["spanId"].as_string() + "-01"));
}

TEST_CASE("with telemetry off an outbound call carries no traceparent", "[integration][telemetry]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto worker = iii::register_worker(engine.url(), otel_options());
    auto caller = iii::register_worker(engine.url(), fast_options());
    REQUIRE(!caller->connection()->telemetry());
    worker->register_function(iii::RegisterFunctionMessage::with_id("echo"), [](iii::Value v) { return v; });
    REQUIRE(wait_function(engine, "echo"));
    asio::io_context ioc;
    run_sync(ioc, caller->trigger(iii::TriggerRequest("echo", iii::Value::object())));
    // The callee's SERVER span has arrived, so every span of this test has.
    REQUIRE(engine.wait_for([&] { return !engine.spans().empty(); }));
    auto sent = invocations_of(engine, "echo");
    REQUIRE(sent.size() == 1);
    CHECK(!sent[0].find("traceparent"));
    for (auto& s : engine.spans()) CHECK(s["kind"] != iii::Value(3));
}

TEST_CASE("telemetry sent to the /otel endpoint arrives and adds no worker", "[integration][telemetry]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto options = otel_options();
    options.otel->engine_ws_url = engine.url() + "/otel";
    auto worker = iii::register_worker(engine.url(), options);
    auto caller = iii::register_worker(engine.url(), fast_options());
    worker->register_function(iii::RegisterFunctionMessage::with_id("otel.fn"),
                              [](iii::Value) -> iii::Value {
                                  iii::Logger().info("via otel");
                                  return 1;
                              });
    REQUIRE(wait_function(engine, "otel.fn"));
    asio::io_context ioc;
    run_sync(ioc, caller->trigger(iii::TriggerRequest("otel.fn", iii::Value::object())));
    auto server_span = [&] {
        for (auto& s : engine.spans())
            if (s["name"] == iii::Value("call otel.fn")) return true;
        return false;
    };
    REQUIRE(engine.wait_for([&] { return server_span() && find_log(engine, "via otel"); }));
    // The telemetry socket never got a workerregistered (nothing waited for one) and never
    // was a worker: only the two clients were.
    CHECK(engine.sent("workerregistered").size() == 2);
    CHECK(engine.worker_ids().size() == 2);
}

TEST_CASE("a telemetry socket on the worker endpoint / still works", "[integration][telemetry]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto options = otel_options();
    options.otel->engine_ws_url = engine.url() + "/";
    auto worker = iii::register_worker(engine.url(), options);
    auto caller = iii::register_worker(engine.url(), fast_options());
    worker->register_function(iii::RegisterFunctionMessage::with_id("root.fn"), [](iii::Value) -> iii::Value {
        iii::Logger().info("via root");
        return 1;
    });
    REQUIRE(wait_function(engine, "root.fn"));
    asio::io_context ioc;
    run_sync(ioc, caller->trigger(iii::TriggerRequest("root.fn", iii::Value::object())));
    REQUIRE(engine.wait_for([&] { return find_log(engine, "via root").has_value(); }));
    // On `/` the telemetry socket is the anonymous extra worker of spec 7.1: it got a
    // workerregistered, which the exporter ignores.
    CHECK(engine.sent("workerregistered").size() == 3);
    CHECK(engine.worker_ids().size() == 3);
}

TEST_CASE("with_span keeps a user span current across co_await", "[integration][telemetry]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto worker = iii::register_worker(engine.url(), otel_options());
    auto caller = iii::register_worker(engine.url(), fast_options());
    worker->register_function(
        iii::RegisterFunctionMessage::with_id("spanned"), [](iii::Value) -> asio::awaitable<iii::Value> {
            auto outer = context_value();
            auto inner_work = []() -> asio::awaitable<iii::Value> {
                asio::steady_timer timer(co_await asio::this_coro::executor, 2ms);
                co_await timer.async_wait(asio::use_awaitable);
                co_return context_value();
            };
            auto traced = iii::with_span("inner", inner_work());
            auto inner = co_await std::move(traced);
            iii::Value sync;
            {
                iii::Span span("sync");
                sync = context_value();
            }
            co_return iii::Value{{"outer", outer}, {"inner", inner}, {"sync", sync}, {"restored", context_value()}};
        });
    REQUIRE(wait_function(engine, "spanned"));
    asio::io_context ioc;
    auto r = run_sync(ioc, caller->trigger(iii::TriggerRequest("spanned", iii::Value::object())));
    CHECK(r["inner"]["trace_id"] == r["outer"]["trace_id"]);
    CHECK(r["inner"]["span_id"] != r["outer"]["span_id"]);
    CHECK(r["sync"]["trace_id"] == r["outer"]["trace_id"]);
    CHECK(r["restored"] == r["outer"]);
    const auto inner_id = r["inner"]["span_id"].as_string();
    REQUIRE(engine.wait_for([&] { return find_span(engine, inner_id).has_value(); }));
    auto inner = *find_span(engine, inner_id);
    CHECK(inner["name"] == iii::Value("inner"));
    CHECK(inner["parentSpanId"] == r["outer"]["span_id"]);
    CHECK(inner["kind"] == iii::Value(1));
}

TEST_CASE("metrics frames carry invocation counts and worker gauges", "[integration][telemetry]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto options = otel_options();
    options.otel->metrics_enabled = true;
    options.otel->metrics_export_interval_ms = 30;
    auto worker = iii::register_worker(engine.url(), options);
    auto caller = iii::register_worker(engine.url(), fast_options());
    worker->register_function(iii::RegisterFunctionMessage::with_id("m.fn"),
                              [](iii::Value) -> iii::Value { return 1; });
    REQUIRE(wait_function(engine, "m.fn"));
    asio::io_context ioc;
    for (int i = 0; i < 3; ++i) run_sync(ioc, caller->trigger(iii::TriggerRequest("m.fn", iii::Value::object())));

    auto count_of = [&]() -> std::optional<iii::Value> {
        std::optional<iii::Value> last;
        for (auto& m : engine.metrics())
            if (m["name"] == iii::Value("iii.invocations.count"))
                for (auto& p : m["sum"]["dataPoints"].as_array())
                    if (*attribute(p["attributes"], "function.id") == iii::Value{{"stringValue", "m.fn"}}) last = p;
        return last;
    };
    REQUIRE(engine.wait_for([&] {
        auto p = count_of();
        return p && (*p)["asInt"] == iii::Value(3);
    }));
    CHECK((*count_of())["asInt"].is_integer());

    const std::string worker_id = worker->connection()->worker_id();
    REQUIRE(!worker_id.empty());
    std::map<std::string, iii::Value> gauges;
    for (auto& m : engine.metrics())
        if (m.find("gauge")) gauges[m["name"].as_string()] = m["gauge"]["dataPoints"][0];
    for (const char* name : {"iii.worker.memory.rss", "iii.worker.cpu.percent", "iii.worker.cpu.user_micros",
                             "iii.worker.cpu.system_micros", "iii.worker.uptime_seconds"}) {
        INFO(name);
        REQUIRE(gauges.count(name));
    }
    CHECK(gauges["iii.worker.memory.rss"]["asInt"].is_integer());
    CHECK(gauges["iii.worker.memory.rss"]["asInt"].as_int() > 0);
    CHECK(*attribute(gauges["iii.worker.memory.rss"]["attributes"], "worker.id") ==
          iii::Value{{"stringValue", worker_id}});
    bool histogram = false;
    for (auto& m : engine.metrics())
        if (m["name"] == iii::Value("iii.invocation.duration"))
            for (auto& p : m["histogram"]["dataPoints"].as_array())
                if (p["count"] == iii::Value(3)) histogram = true;
    CHECK(histogram);
}

TEST_CASE("shutdown_async flushes batched log records", "[integration][telemetry]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto options = otel_options();
    options.otel->logs_batch_size = 1000;
    options.otel->logs_flush_interval_ms = 600000;  // nothing leaves before the flush
    auto worker = iii::register_worker(engine.url(), options);
    // (Not test_support::wait_state: its io_context can die before the completion's work
    // guard, a race of that helper.)
    worker->register_function(iii::RegisterFunctionMessage::with_id("noop"), [](iii::Value v) { return v; });
    REQUIRE(wait_function(engine, "noop"));
    iii::Logger logger;
    for (int i = 0; i < 5; ++i) logger.info("queued " + std::to_string(i), iii::Value{{"i", i}});
    CHECK(engine.log_records().empty());
    asio::io_context ioc;
    run_sync(ioc, worker->shutdown_async());
    REQUIRE(engine.wait_for([&] { return engine.log_records().size() == 5; }));
    CHECK(engine.telemetry("LOGS").size() == 1);  // one batch
    CHECK(engine.log_records()[4]["body"]["stringValue"] == iii::Value("queued 4"));
    CHECK(!engine.log_records()[0].find("traceId"));  // no active span outside handlers
}

TEST_CASE("an overflowing telemetry queue drops and counts without blocking", "[integration][telemetry]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto options = otel_options();
    options.otel->engine_ws_url = "ws://127.0.0.1:1";  // nobody listens: the engine is away
    options.otel->channel_capacity = 4;
    iii::ReconnectionConfig reconnect;
    reconnect.initial_delay_ms = 60000;
    reconnect.max_delay_ms = 60000;
    reconnect.max_pending_messages = 4;
    options.otel->reconnection_config = reconnect;
    options.otel->shutdown_timeout_ms = 50;
    auto worker = iii::register_worker(engine.url(), options);
    const auto& telemetry_sink = worker->connection()->telemetry();
    REQUIRE(telemetry_sink);
    const auto global_before = iii::telemetry_dropped_count();
    constexpr int n = 300;
    iii::Logger logger;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) logger.debug("overflow", iii::Value{{"i", i}});
    const auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(elapsed < 2s);
    // Kept: at most 4 in the channel, 4 frames pending for the reconnect (batch size 1), and
    // the few records the exporter thread holds while it moves them between the two.
    CHECK(telemetry_sink->dropped() >= n - 16);
    CHECK(iii::telemetry_dropped_count() - global_before >= n - 16);
    asio::io_context ioc;
    const auto shutdown_start = std::chrono::steady_clock::now();
    run_sync(ioc, worker->shutdown_async());
    CHECK(std::chrono::steady_clock::now() - shutdown_start < 5s);
}

TEST_CASE("with telemetry off the Logger writes to stderr and sends nothing", "[integration][telemetry]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto worker = iii::register_worker(engine.url(), fast_options());
    worker->register_function(iii::RegisterFunctionMessage::with_id("noop"), [](iii::Value v) { return v; });
    REQUIRE(wait_function(engine, "noop"));
    REQUIRE(!worker->connection()->telemetry());
    iii::Logger().info("to stderr", iii::Value{{"k", "v"}});
    CHECK(engine.telemetry("LOGS").empty());
}
