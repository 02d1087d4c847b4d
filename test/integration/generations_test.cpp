// The SDK against every engine generation of the test engine (0.10, 0.22, 0.23): discovery,
// telemetry routing and the 0.22/0.23 additions. Cases tagged [.needs-core] exercise the
// parts that the connection core delivers (invocation metadata to handlers, namespaces and
// worker metadata on the wire, trigger registration reports, reattach); they are hidden until
// that wiring lands: run them with `generations_test "[needs-core]"`.

#include "connection.hpp"
#include "run.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>

using namespace std::chrono_literals;
using test_support::engine_options;
using test_support::fast_options;
using test_support::run_sync;
using test_support::wait_function;
using test_support::wait_state;
using iii::testing::Generation;

namespace {

class NullProvider final : public iii::TriggerHandler {
public:
    asio::awaitable<void> register_trigger(iii::TriggerConfig) override { co_return; }
    asio::awaitable<void> unregister_trigger(iii::TriggerConfig) override { co_return; }
};

bool contains_id(const std::vector<iii::FunctionInfo>& list, const std::string& id) {
    for (const auto& f : list)
        if (f.function_id == id) return true;
    return false;
}

}  // namespace

TEST_CASE("discovery lists functions, workers, triggers and trigger types on every generation",
          "[integration][generations][discovery]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(engine_options(generation));
    asio::io_context ioc;
    auto provider = iii::register_worker(engine.url(), fast_options());
    provider->register_trigger_type("gen::type", "a generation test type", std::make_shared<NullProvider>());
    auto message = iii::RegisterFunctionMessage::with_id("gen::fn");
    message.description = "described";
    message.request_format = iii::Value::object({{"type", "object"}});
    provider->register_function(message, [](iii::Value v) { return v; });
    REQUIRE(wait_function(engine, "gen::fn"));
    REQUIRE(engine.wait_for([&] { return !engine.received("registertriggertype").empty(); }));
    auto consumer = iii::register_worker(engine.url(), fast_options());
    iii::RegisterTriggerInput input;
    input.trigger_type = "gen::type";
    input.function_id = "gen::fn";
    input.config = {{"every", 5}};
    auto trigger = consumer->register_trigger(input);
    REQUIRE(engine.wait_for([&] { return !engine.received("registertrigger").empty(); }));

    const auto functions = run_sync(ioc, consumer->list_functions());
    REQUIRE(contains_id(functions, "gen::fn"));
    for (const auto& f : functions) {
        if (f.function_id != "gen::fn") continue;
        CHECK(f.description == std::optional<std::string>("described"));
        // 0.22+ list no schemas; function_info has them on every generation.
        CHECK(f.request_format.has_value() == (generation == Generation::V0_10));
        CHECK(f.worker_name.has_value() == (generation != Generation::V0_10));
    }
    const auto info = run_sync(ioc, consumer->function_info("gen::fn"));
    REQUIRE(info);
    CHECK(info->request_format == std::optional<iii::Value>(iii::Value::object({{"type", "object"}})));
    CHECK(info->description == std::optional<std::string>("described"));
    if (generation != Generation::V0_10)
        CHECK(info->registered_triggers == std::vector<std::string>{trigger.id});
    CHECK_FALSE(run_sync(ioc, consumer->function_info("gen::none")));

    const auto workers = run_sync(ioc, consumer->list_workers());
    std::size_t sdk_workers = 0;
    for (const auto& w : workers) {
        if (w.runtime != std::optional<std::string>("cpp")) continue;
        ++sdk_workers;
        CHECK(w.status == "connected");
        CHECK(w.pid.has_value() == (generation == Generation::V0_10));  // gone from 0.22 on
    }
    CHECK(sdk_workers == 2);

    const auto triggers = run_sync(ioc, consumer->list_triggers());
    REQUIRE(triggers.size() == 1);
    CHECK(triggers[0].id == trigger.id);
    CHECK(triggers[0].trigger_type == "gen::type");
    CHECK(triggers[0].function_id == "gen::fn");
    CHECK(triggers[0].config["every"] == iii::Value(5));

    const auto types = run_sync(ioc, consumer->list_trigger_types());
    bool found = false, builtin = false;
    for (const auto& t : types) {
        found = found || (t.id == "gen::type" && t.description == "a generation test type");
        builtin = builtin || t.id == "cron";
    }
    CHECK(found);
    CHECK(builtin);
    // Asked twice: the second answer comes from what the first call learnt, and is the same.
    CHECK(run_sync(ioc, consumer->list_trigger_types()).size() == types.size());
    CHECK(run_sync(ioc, consumer->list_triggers()).size() == 1);
}

TEST_CASE("discovery learns the engine again after reconnecting to another generation",
          "[integration][generations][discovery]") {
    const auto [from, to] = GENERATE(std::pair{Generation::V0_10, Generation::V0_22},
                                     std::pair{Generation::V0_22, Generation::V0_10});
    INFO("from " << iii::testing::to_string(from) << " to " << iii::testing::to_string(to));
    asio::io_context ioc;
    auto first = std::make_unique<iii::testing::Engine>(engine_options(from));
    const auto port = first->port();
    auto client = iii::register_worker(first->url(), fast_options());
    client->register_function(iii::RegisterFunctionMessage::with_id("re::fn"), [](iii::Value v) { return v; });
    iii::RegisterTriggerInput input;
    input.trigger_type = "cron";
    input.function_id = "re::fn";
    input.config = {{"expression", "* * * * *"}};
    auto trigger = client->register_trigger(input);
    REQUIRE(wait_function(*first, "re::fn"));
    REQUIRE(first->wait_for([&] { return !first->received("registertrigger").empty(); }));
    CHECK(run_sync(ioc, client->list_triggers()).size() == 1);
    CHECK_FALSE(run_sync(ioc, client->list_trigger_types()).empty());

    first->shutdown();
    REQUIRE(wait_state(*client, iii::ConnectionState::Reconnecting));
    first.reset();
    iii::testing::EngineOptions options = engine_options(to);
    options.port = port;
    iii::testing::Engine second(options);
    REQUIRE(wait_state(*client, iii::ConnectionState::Connected));
    REQUIRE(wait_function(second, "re::fn"));
    REQUIRE(second.wait_for([&] { return !second.received("registertrigger").empty(); }));
    // With a stale memo a 0.10 name on 0.22 lists trigger types as if they were instances, and
    // a 0.22 name on 0.10 fails: both directions must give the same answers as before.
    const auto triggers = run_sync(ioc, client->list_triggers());
    REQUIRE(triggers.size() == 1);
    CHECK(triggers[0].id == trigger.id);
    CHECK(triggers[0].trigger_type == "cron");
    bool cron = false;
    for (const auto& t : run_sync(ioc, client->list_trigger_types())) cron = cron || t.id == "cron";
    CHECK(cron);
}

TEST_CASE("telemetry goes to /otel, and falls back to the worker endpoint on a 404",
          "[integration][generations][telemetry]") {
    const bool otel_route = GENERATE(true, false);
    INFO("engine serves /otel: " << otel_route);
    iii::testing::EngineOptions engine_config = engine_options(Generation::V0_22);
    engine_config.otel_route = otel_route;
    iii::testing::Engine engine(engine_config);
    auto options = fast_options();
    iii::OtelConfig otel;
    otel.enabled = true;
    otel.metrics_enabled = false;
    otel.logs_flush_interval_ms = 5;
    options.otel = otel;  // engine_ws_url unset: the default
    auto worker = iii::register_worker(engine.url(), options);
    worker->register_function(iii::RegisterFunctionMessage::with_id("tel::fn"), [](iii::Value) -> iii::Value {
        iii::Logger().info("tel log");
        return 1;
    });
    REQUIRE(wait_function(engine, "tel::fn"));
    auto caller = iii::register_worker(engine.url(), fast_options());
    asio::io_context ioc;
    run_sync(ioc, caller->trigger(iii::TriggerRequest("tel::fn", iii::Value::object())));
    REQUIRE(engine.wait_for([&] {
        for (auto& r : engine.log_records())
            if (r["body"]["stringValue"] == iii::Value("tel log")) return true;
        return false;
    }));
    // On /otel the exporter is no worker; on the fallback `/` it is the anonymous third one.
    CHECK(engine.worker_ids().size() == (otel_route ? 2u : 3u));
}

// ---- parts delivered by the connection core (hidden until wired) ---------------------------

TEST_CASE("a handler reads the invocation metadata of the caller and of trigger bindings",
          "[integration][generations][metadata][.needs-core]") {
    iii::testing::Engine engine(engine_options(Generation::V0_22));
    auto callee = iii::register_worker(engine.url(), fast_options());
    std::mutex mutex;
    std::vector<iii::Value> seen;
    callee->register_function(iii::RegisterFunctionMessage::with_id("meta::fn"),
                              [&](iii::Value, const iii::InvocationContext& context) -> iii::Value {
                                  std::lock_guard lock(mutex);
                                  seen.push_back(context.metadata.value_or(iii::Value()));
                                  return iii::Value();
                              });
    REQUIRE(wait_function(engine, "meta::fn"));
    auto caller = iii::register_worker(engine.url(), fast_options());
    asio::io_context ioc;
    iii::TriggerRequest request("meta::fn", iii::Value::object());
    request.metadata = iii::Value::object({{"tenant", "acme"}});
    run_sync(ioc, caller->trigger(std::move(request)));
    std::lock_guard lock(mutex);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == iii::Value::object({{"tenant", "acme"}}));
}

TEST_CASE("a refused trigger registration is readable and awaitable on the Trigger",
          "[integration][generations][triggers][.needs-core]") {
    iii::testing::Engine engine(engine_options(Generation::V0_22));
    auto client = iii::register_worker(engine.url(), fast_options());
    iii::RegisterTriggerInput input;
    input.trigger_type = "cron";
    input.function_id = "x::fn";
    input.config = {{"no_expression", true}};
    auto trigger = client->register_trigger(input);
    asio::io_context ioc;
    const auto error = run_sync(ioc, trigger.wait_registration_error(5s));
    REQUIRE(error);
    CHECK(error->code == iii::codes::trigger_registration_failed);
    CHECK(trigger.registration_error().has_value());
}

TEST_CASE("the worker namespace reaches the worker metadata, calls and trigger bindings",
          "[integration][generations][namespaces][.needs-core]") {
    iii::testing::Engine engine(engine_options(Generation::V0_23));
    auto options = fast_options();
    options.worker_namespace = "orders";
    options.metadata->description = "order service";
    auto worker = iii::register_worker(engine.url(), options);
    worker->register_function(iii::RegisterFunctionMessage::with_id("orders::create"),
                              [](iii::Value v) { return v; });
    REQUIRE(wait_function(engine, "orders/orders::create"));
    asio::io_context ioc;
    // Its own calls go to its namespace, engine::* ones stay in default.
    CHECK(run_sync(ioc, worker->trigger(iii::TriggerRequest("orders::create", {{"n", 1}})))["n"] == iii::Value(1));
    CHECK_FALSE(run_sync(ioc, worker->list_functions()).empty());
    bool described = false;
    for (const auto& w : run_sync(ioc, worker->list_workers()))
        described = described || (w.description == std::optional<std::string>("order service") &&
                                  w.worker_namespace == std::optional<std::string>("orders"));
    CHECK(described);
}

TEST_CASE("a trigger binding carries its function and trigger namespaces on the wire",
          "[integration][generations][namespaces]") {
    iii::testing::Engine engine(engine_options(Generation::V0_23));
    auto client = iii::register_worker(engine.url(), fast_options());
    iii::RegisterTriggerInput input;
    input.trigger_type = "cron";
    input.function_id = "orders::tick";
    input.config = {{"expression", "* * * * *"}};
    input.function_namespace = "orders";
    input.trigger_namespace = "infra";
    client->register_trigger(input);
    iii::RegisterTriggerInput plain;
    plain.trigger_type = "cron";
    plain.function_id = "plain::tick";
    plain.config = {{"expression", "* * * * *"}};
    client->register_trigger(plain);
    REQUIRE(engine.wait_for([&] { return engine.received("registertrigger").size() == 2; }));
    for (const auto& frame : engine.received("registertrigger")) {
        if (frame["function_id"] == iii::Value("orders::tick")) {
            CHECK(frame["namespace"] == iii::Value("orders"));
            CHECK(frame["trigger_namespace"] == iii::Value("infra"));
        } else {
            CHECK_FALSE(frame.contains("namespace"));  // absent: default
            CHECK_FALSE(frame.contains("trigger_namespace"));
        }
    }
}

TEST_CASE("a blank worker namespace is refused when the client is created",
          "[integration][generations][namespaces]") {
    auto options = fast_options();
    options.worker_namespace = "  ";
    CHECK_THROWS_AS(iii::register_worker("ws://127.0.0.1:1", options), iii::Error);
}

TEST_CASE("after a socket cut the client reattaches first and registers everything once",
          "[integration][generations][reattach][.needs-core]") {
    const auto generation = GENERATE(Generation::V0_22, Generation::V0_23);
    iii::testing::Engine engine(engine_options(generation));
    auto options = fast_options();
    options.timings.ping_interval = 50ms;
    options.timings.idle_timeout = 300ms;  // detects the stalled engine quickly
    auto client = iii::register_worker(engine.url(), options);
    client->register_function(iii::RegisterFunctionMessage::with_id("cut::fn"), [](iii::Value v) { return v; });
    REQUIRE(wait_function(engine, "cut::fn"));
    const auto first = test_support::worker_id_of(*client);
    const auto token = engine.sent("workerregistered", first)[0]["reattach_token"];
    engine.stall(first);  // half-open: the engine keeps the old connection
    REQUIRE(wait_state(*client, iii::ConnectionState::Reconnecting, 5s));
    REQUIRE(wait_state(*client, iii::ConnectionState::Connected, 5s));
    const auto second = test_support::worker_id_of(*client);
    REQUIRE(engine.wait_for([&] { return !engine.received("invokefunction", second).empty(); }));
    const auto frames = engine.frames(second);
    std::vector<iii::Value> inbound;
    for (const auto& f : frames)
        if (f.inbound) inbound.push_back(iii::Value::parse(f.text));
    REQUIRE_FALSE(inbound.empty());
    CHECK(inbound[0]["type"] == iii::Value("reattach"));
    CHECK(inbound[0]["previous_worker_id"] == iii::Value(first));
    CHECK(inbound[0]["reattach_token"] == token);
    CHECK(engine.received("registerfunction", second).size() == 1);
    CHECK(engine.close_code(first) == std::optional<std::uint16_t>(1006));  // evicted
    CHECK(engine.received("registrationrejected", second).empty());
}
