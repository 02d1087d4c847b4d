// The SDK against every engine generation of the test engine (0.10, 0.22, 0.23): discovery,
// telemetry routing and the 0.22/0.23 additions (invocation metadata to handlers, namespaces
// and worker metadata on the wire, trigger registration reports, rejections, reattach).

#include "connection.hpp"
#include "run.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <cctype>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

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

// ---- the 0.22/0.23 additions through the connection ---------------------------------------

TEST_CASE("a handler reads the invocation metadata of the caller and of trigger bindings",
          "[integration][generations][metadata]") {
    iii::testing::Engine engine(engine_options(Generation::V0_22));
    // Declared before the callee: its handlers (the binding fires again on every worker
    // change) may run until the callee is destroyed, which must happen first.
    std::mutex mutex;
    std::vector<iii::Value> seen;
    std::vector<iii::Value> fired;
    bool current_matches = false;
    auto callee = iii::register_worker(engine.url(), fast_options());
    callee->register_function(iii::RegisterFunctionMessage::with_id("meta::fn"),
                              [&](iii::Value, const iii::InvocationContext& context) -> iii::Value {
                                  std::lock_guard lock(mutex);
                                  seen.push_back(context.metadata.value_or(iii::Value()));
                                  // A blocking handler runs inside the scope for its whole call.
                                  const auto* current = iii::InvocationContext::current();
                                  current_matches = current && current->metadata == context.metadata &&
                                                    current->function_id == "meta::fn" &&
                                                    current->invocation_id == context.invocation_id &&
                                                    context.invocation_id.has_value();
                                  return iii::Value();
                              });
    // A coroutine with the context parameter; InvocationContext::current() is never left set
    // for the coroutine's body (it would leak into every coroutine sharing the thread).
    callee->register_function(
        iii::RegisterFunctionMessage::with_id("meta::co"),
        [](iii::Value, const iii::InvocationContext& context) -> asio::awaitable<iii::Value> {
            const bool leaked_before = iii::InvocationContext::current() != nullptr;
            asio::steady_timer timer(co_await asio::this_coro::executor, 1ms);
            co_await timer.async_wait(asio::use_awaitable);
            const bool leaked_after = iii::InvocationContext::current() != nullptr;
            co_return iii::Value::object({{"metadata", context.metadata.value_or(iii::Value())},
                                          {"function_id", context.function_id},
                                          {"leaked", leaked_before || leaked_after}});
        });
    // A trigger binding's metadata reaches the bound function at every fire (0.22+).
    callee->register_function(iii::RegisterFunctionMessage::with_id("meta::bound"),
                              [&](iii::Value, const iii::InvocationContext& context) -> iii::Value {
                                  std::lock_guard lock(mutex);
                                  fired.push_back(context.metadata.value_or(iii::Value()));
                                  return iii::Value();
                              });
    iii::RegisterTriggerInput binding;
    binding.trigger_type = "engine::workers-available";
    binding.function_id = "meta::bound";
    binding.metadata = iii::Value::object({{"bound_by", "cpp"}});
    callee->register_trigger(binding);
    REQUIRE(wait_function(engine, "meta::fn"));
    REQUIRE(wait_function(engine, "meta::co"));
    REQUIRE(wait_function(engine, "meta::bound"));
    REQUIRE(engine.wait_for([&] { return !engine.received("registertrigger").empty(); }));

    auto caller = iii::register_worker(engine.url(), fast_options());  // fires the binding
    asio::io_context ioc;
    iii::TriggerRequest request("meta::fn", iii::Value::object());
    request.metadata = iii::Value::object({{"tenant", "acme"}});
    run_sync(ioc, caller->trigger(std::move(request)));
    iii::TriggerRequest co_request("meta::co", iii::Value::object());
    co_request.metadata = iii::Value::object({{"tenant", "co"}});
    const auto co_out = run_sync(ioc, caller->trigger(std::move(co_request)));
    CHECK(co_out["metadata"] == iii::Value::object({{"tenant", "co"}}));
    CHECK(co_out["function_id"] == iii::Value("meta::co"));
    CHECK(co_out["leaked"] == iii::Value(false));
    REQUIRE(engine.wait_for([&] {
        std::lock_guard lock(mutex);
        return !fired.empty();
    }));
    std::lock_guard lock(mutex);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == iii::Value::object({{"tenant", "acme"}}));
    CHECK(current_matches);
    CHECK(fired[0] == iii::Value::object({{"bound_by", "cpp"}}));
}

TEST_CASE("a refused trigger registration is readable and awaitable on the Trigger",
          "[integration][generations][triggers]") {
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
          "[integration][generations][namespaces]") {
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
    // On the wire: the metadata, the calls (engine::* without a namespace, an explicit one
    // wins) and the trigger type.
    worker->register_trigger_type("orders::tick", "order ticks", std::make_shared<NullProvider>());
    iii::TriggerRequest explicit_ns("billing::charge", iii::Value::object(), iii::Void{});
    explicit_ns.function_namespace = "billing";
    run_sync(ioc, worker->trigger(std::move(explicit_ns)));
    REQUIRE(engine.wait_for([&] { return !engine.received("registertriggertype").empty(); }));
    CHECK(engine.received("registertriggertype")[0]["namespace"] == iii::Value("orders"));
    std::map<std::string, iii::Value> namespaces;  // function id -> the frame's namespace (null: absent)
    iii::Value worker_metadata;
    REQUIRE(engine.wait_for([&] {
        namespaces.clear();
        for (const auto& frame : engine.received("invokefunction")) {
            const iii::Value* ns = frame.find("namespace");
            namespaces[frame["function_id"].as_string()] = ns ? *ns : iii::Value();
            if (frame["function_id"] == iii::Value("engine::workers::register")) worker_metadata = frame["data"];
        }
        return namespaces.count("billing::charge") > 0;
    }));
    CHECK(worker_metadata["namespace"] == iii::Value("orders"));
    CHECK(worker_metadata["description"] == iii::Value("order service"));
    CHECK(namespaces["orders::create"] == iii::Value("orders"));
    CHECK(namespaces["billing::charge"] == iii::Value("billing"));
    CHECK(namespaces["engine::workers::register"].is_null());
    CHECK(namespaces["engine::functions::list"].is_null());
    CHECK(namespaces["engine::workers::list"].is_null());
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
          "[integration][generations][reattach]") {
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

namespace {

/// Polls `condition` (client-side state, no event to wait on) until it holds or `limit` passes.
template <class F>
bool eventually(F condition, std::chrono::milliseconds limit = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(1ms);  // bounded by the deadline
    }
    return true;
}

/// A TCP listener on 127.0.0.1 that records the HTTP requests it gets (the WebSocket upgrade)
/// and answers each with 404.
class UpgradeRecorder {
public:
    UpgradeRecorder() {
        asio::co_spawn(io_, serve(), asio::detached);
        thread_ = std::thread([this] { io_.run(); });
    }
    ~UpgradeRecorder() {
        io_.stop();
        thread_.join();
    }
    std::uint16_t port() const { return port_; }
    /// The first request, lower-cased, once one arrived within `limit` (empty otherwise).
    std::string wait_request(std::chrono::milliseconds limit) {
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, limit, [&] { return !request_.empty(); });
        return request_;
    }

private:
    asio::awaitable<void> serve() {
        try {
            for (;;) {
                auto socket = co_await acceptor_.async_accept(asio::use_awaitable);
                std::string buffer;
                const auto n = co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer), "\r\n\r\n",
                                                               asio::use_awaitable);
                std::string request = buffer.substr(0, n);
                for (auto& c : request) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                {
                    std::lock_guard lock(mutex_);
                    if (request_.empty()) request_ = std::move(request);
                }
                cv_.notify_all();
                const std::string reply = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                co_await asio::async_write(socket, asio::buffer(reply), asio::use_awaitable);
            }
        } catch (const std::exception&) {
            // io_ stopped, or a client that went away mid-request: nothing left to record.
        }
    }

    asio::io_context io_;
    asio::ip::tcp::acceptor acceptor_{io_, {asio::ip::make_address("127.0.0.1"), 0}};
    std::uint16_t port_ = acceptor_.local_endpoint().port();
    std::mutex mutex_;
    std::condition_variable cv_;
    std::string request_;
    std::thread thread_;
};

}  // namespace

TEST_CASE("a second live worker under the same name is rejected for good: Failed with its reason, calls fail",
          "[integration][generations][rejections]") {
    iii::testing::Engine engine(engine_options(Generation::V0_23));
    const auto owner_options = fast_options();
    auto owner = iii::register_worker(engine.url(), owner_options);
    // Holds the rejected worker's call in flight until the test lets it go.
    std::mutex mutex;
    std::condition_variable cv;
    bool release = false;
    owner->register_function(iii::RegisterFunctionMessage::with_id("lease::slow"), [&](iii::Value) -> iii::Value {
        std::unique_lock lock(mutex);
        cv.wait_for(lock, 10s, [&] { return release; });
        return iii::Value("late");
    });
    REQUIRE(wait_function(engine, "lease::slow"));

    auto options = fast_options();
    options.metadata->name = owner_options.metadata->name;  // the owner's lease
    auto intruder = iii::register_worker(engine.url(), options);
    std::string listener_reason;
    intruder->on_connection_state_change([&](iii::ConnectionState state, const std::string& reason) {
        std::lock_guard lock(mutex);
        if (state == iii::ConnectionState::Failed) listener_reason = reason;
    });
    asio::io_context ioc;
    // Queued while connecting, sent before the worker metadata that the engine refuses.
    iii::TriggerRequest request("lease::slow", iii::Value::object());
    std::exception_ptr failure;
    try {
        run_sync(ioc, intruder->trigger(std::move(request)));
    } catch (...) {
        failure = std::current_exception();
    }
    {
        std::lock_guard lock(mutex);
        release = true;
    }
    cv.notify_all();
    REQUIRE(failure);
    try {
        std::rethrow_exception(failure);
    } catch (const iii::Error& e) {
        CHECK(e.errc() == iii::Errc::RegistrationRejected);
        REQUIRE(e.remote());
        CHECK(e.remote()->code == iii::codes::worker_namespace_conflict);
    }
    REQUIRE(wait_state(*intruder, iii::ConnectionState::Failed));
    const std::string reason = intruder->failure_reason();
    CHECK(reason.rfind(std::string(iii::codes::worker_namespace_conflict) + ": ", 0) == 0);
    {
        std::lock_guard lock(mutex);
        CHECK(listener_reason == reason);
    }
    // No reconnect, and later calls are refused at once with the same error.
    iii::TriggerRequest later("lease::slow", iii::Value::object());
    try {
        run_sync(ioc, intruder->trigger(std::move(later)));
        FAIL("a call after the rejection succeeded");
    } catch (const iii::Error& e) {
        CHECK(e.errc() == iii::Errc::RegistrationRejected);
    }
    CHECK(intruder->get_connection_state() == iii::ConnectionState::Failed);
    CHECK(engine.wait_for([&] { return engine.worker_ids().size() == 1; }));  // closed, not back
    CHECK(owner->get_connection_state() == iii::ConnectionState::Connected);
}

TEST_CASE("a function another live worker provides is refused alone: visible on its FunctionRef, worker serves on",
          "[integration][generations][rejections]") {
    iii::testing::Engine engine(engine_options(Generation::V0_23));
    auto owner = iii::register_worker(engine.url(), fast_options());
    owner->register_function(iii::RegisterFunctionMessage::with_id("dup::fn"), [](iii::Value) { return iii::Value("owner"); });
    REQUIRE(wait_function(engine, "dup::fn"));
    auto late = iii::register_worker(engine.url(), fast_options());
    auto refused = late->register_function(iii::RegisterFunctionMessage::with_id("dup::fn"),
                                           [](iii::Value) { return iii::Value("late"); });
    auto kept = late->register_function(iii::RegisterFunctionMessage::with_id("late::own"),
                                        [](iii::Value) { return iii::Value("own"); });
    REQUIRE(wait_function(engine, "late::own"));
    REQUIRE(eventually([&] { return refused.rejection().has_value(); }));
    CHECK(refused.rejection()->code == iii::codes::function_namespace_conflict);
    CHECK_FALSE(kept.rejection());
    CHECK(late->get_connection_state() == iii::ConnectionState::Connected);
    CHECK(late->failure_reason().empty());
    asio::io_context ioc;
    CHECK(run_sync(ioc, late->trigger(iii::TriggerRequest("dup::fn", iii::Value::object()))) == iii::Value("owner"));
    CHECK(run_sync(ioc, late->trigger(iii::TriggerRequest("late::own", iii::Value::object()))) == iii::Value("own"));
    // Unregistered, the refusal is gone with the registration.
    refused.unregister();
    CHECK(eventually([&] { return !refused.rejection(); }));
}

TEST_CASE("the handshake headers go on the telemetry socket too", "[integration][generations][telemetry]") {
    iii::testing::Engine engine(engine_options(Generation::V0_22));
    UpgradeRecorder otel;
    auto options = fast_options();
    options.headers = {{"X-Iii-Test-Auth", "secret-token"}};
    iii::OtelConfig config;
    config.enabled = true;
    config.metrics_enabled = false;
    config.engine_ws_url = "ws://127.0.0.1:" + std::to_string(otel.port()) + "/otel";
    options.otel = config;
    auto worker = iii::register_worker(engine.url(), options);
    iii::Logger().info("opens the telemetry socket");  // the exporter connects when it has data
    const std::string request = otel.wait_request(5s);
    REQUIRE_FALSE(request.empty());
    CHECK(request.rfind("get /otel ", 0) == 0);
    CHECK(request.find("\r\nx-iii-test-auth: secret-token\r\n") != std::string::npos);
}

namespace {
struct Order {
    std::string item;
};
III_DESCRIBE(Order, item);

std::string describe_order(const Order& order, const iii::InvocationContext& context) {
    return order.item + " for " + context.metadata.value_or(iii::Value())["tenant"].as_string() + " via " +
           context.function_id;
}

asio::awaitable<std::string> tenant_of(iii::InvocationContext context) {
    asio::steady_timer timer(co_await asio::this_coro::executor, 1ms);
    co_await timer.async_wait(asio::use_awaitable);  // the copy outlives the suspension
    co_return context.metadata.value_or(iii::Value())["tenant"].as_string();
}
}  // namespace

TEST_CASE("typed functions read the invocation context through a last InvocationContext parameter",
          "[integration][generations][metadata][typed]") {
    iii::testing::Engine engine(engine_options(Generation::V0_22));
    auto callee = iii::register_worker(engine.url(), fast_options());
    iii::register_function(*callee, iii::RegisterFunction("typed::order", describe_order));
    iii::register_function(*callee, iii::RegisterFunction("typed::tenant", tenant_of));
    REQUIRE(wait_function(engine, "typed::order"));
    REQUIRE(wait_function(engine, "typed::tenant"));
    // The context parameter is not part of the schema: one decoded parameter, an object.
    bool order_schema_ok = false;
    for (const auto& frame : engine.received("registerfunction"))
        if (frame["id"] == iii::Value("typed::order"))
            order_schema_ok = frame["request_format"]["type"] == iii::Value("object");
    CHECK(order_schema_ok);

    auto caller = iii::register_worker(engine.url(), fast_options());
    asio::io_context ioc;
    iii::TriggerRequest request("typed::order", iii::Value::object({{"item", "tea"}}));
    request.metadata = iii::Value::object({{"tenant", "acme"}});
    CHECK(run_sync(ioc, caller->trigger(std::move(request))) == iii::Value("tea for acme via typed::order"));
    iii::TriggerRequest co_request("typed::tenant", iii::Value::object());
    co_request.metadata = iii::Value::object({{"tenant", "co"}});
    CHECK(run_sync(ioc, caller->trigger(std::move(co_request))) == iii::Value("co"));
}
