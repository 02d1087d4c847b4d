// Trigger types, triggers, services and discovery across two workers and the test engine.

#include "connection.hpp"
#include "run.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

using namespace std::chrono_literals;
using test_support::fast_options;
using test_support::run_sync;
using test_support::wait_function;
using test_support::wait_state;

namespace {

/// Records what the engine asked of a trigger provider. Its changes are not engine events
/// (the provider applies them after the engine sent the frame), so tests wait on its own
/// condition variable rather than on Engine::wait_for.
class RecordingHandler final : public iii::TriggerHandler {
public:
    asio::awaitable<void> register_trigger(iii::TriggerConfig config) override {
        std::lock_guard lock(mutex_);
        if (config.config.is_object() && config.config.contains("reject"))
            throw std::runtime_error("bad config: reject");
        registered_.push_back(std::move(config));
        changed_.notify_all();
        co_return;
    }
    asio::awaitable<void> unregister_trigger(iii::TriggerConfig config) override {
        std::lock_guard lock(mutex_);
        unregistered_.push_back(std::move(config));
        changed_.notify_all();
        co_return;
    }
    std::vector<iii::TriggerConfig> registered() {
        std::lock_guard lock(mutex_);
        return registered_;
    }
    std::vector<iii::TriggerConfig> unregistered() {
        std::lock_guard lock(mutex_);
        return unregistered_;
    }
    /// Blocks until exactly `count` bindings have arrived; false after 5 s.
    bool wait_registered(std::size_t count) { return wait_size(registered_, count); }
    /// Blocks until exactly `count` unbindings have arrived; false after 5 s.
    bool wait_unregistered(std::size_t count) { return wait_size(unregistered_, count); }

private:
    bool wait_size(const std::vector<iii::TriggerConfig>& list, std::size_t count) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, std::chrono::seconds(5), [&] { return list.size() == count; });
    }

    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<iii::TriggerConfig> registered_;
    std::vector<iii::TriggerConfig> unregistered_;
};

/// A provider of the `ticker` type, returned once the engine knows the type (before that, the
/// engine drops triggers of it).
std::shared_ptr<iii::Client> ticker_provider(iii::testing::Engine& engine,
                                             const std::shared_ptr<RecordingHandler>& handler) {
    auto provider = iii::register_worker(engine.url(), fast_options());
    provider->register_trigger_type("ticker", "ticks", handler);
    REQUIRE(engine.wait_for([&] { return !engine.received("registertriggertype").empty(); }));
    return provider;
}

/// Whether `worker_id` has answered every invocation the engine sent it.
bool all_answered(const iii::testing::Engine& engine, const std::string& worker_id) {
    std::set<std::string> answered;
    for (const auto& frame : engine.received("invocationresult", worker_id))
        answered.insert(frame["invocation_id"].as_string());
    for (const auto& frame : engine.sent("invokefunction", worker_id))
        if (!answered.count(frame["invocation_id"].as_string())) return false;
    return true;
}

/// Binds `on_tick` to the `ticker` type.
iii::Trigger bind_ticker(iii::Client& consumer) {
    iii::RegisterTriggerInput input;
    input.trigger_type = "ticker";
    input.function_id = "on_tick";
    return consumer.register_trigger(input);
}

}  // namespace

TEST_CASE("a custom trigger type's whole lifecycle across two workers", "[integration][triggers]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    asio::io_context ioc;
    auto handler = std::make_shared<RecordingHandler>();
    auto provider = iii::register_worker(engine.url(), fast_options());
    provider->register_trigger_type("ticker", "Fires on a schedule", handler);

    auto consumer = iii::register_worker(engine.url(), fast_options());
    std::atomic<int> ticks{0};
    consumer->register_function(iii::RegisterFunctionMessage::with_id("on_tick"), [&](iii::Value in) {
        if (in["tick"] == iii::Value(1)) ++ticks;
        return iii::Value();
    });
    REQUIRE(wait_function(engine, "on_tick"));
    // The type must be known to the engine before the trigger, or the engine drops the trigger.
    REQUIRE(engine.wait_for([&] { return !engine.received("registertriggertype").empty(); }));

    iii::RegisterTriggerInput input;
    input.trigger_type = "ticker";
    input.function_id = "on_tick";
    input.config = {{"interval_ms", 10}};
    auto trigger = consumer->register_trigger(input);
    REQUIRE(handler->wait_registered(1));
    auto bound = handler->registered()[0];
    CHECK(bound.id == trigger.id);
    CHECK(bound.function_id == "on_tick");
    CHECK(bound.config["interval_ms"] == iii::Value(10));
    // The provider acknowledged the binding with a triggerregistrationresult (no error).
    REQUIRE(engine.wait_for([&] { return !engine.received("triggerregistrationresult").empty(); }));
    CHECK_FALSE(engine.received("triggerregistrationresult")[0].contains("error"));

    // The provider fires the bound function.
    CHECK(run_sync(ioc, provider->trigger({bound.function_id, {{"tick", 1}}})).is_null());
    CHECK(ticks == 1);

    // Discovery reflects the registration.
    auto triggers = run_sync(ioc, consumer->list_triggers());
    REQUIRE(triggers.size() == 1);
    CHECK(triggers[0].id == trigger.id);
    CHECK(triggers[0].trigger_type == "ticker");
    auto types = run_sync(ioc, consumer->list_trigger_types());
    bool found = false;
    for (auto& t : types) found = found || (t.id == "ticker" && t.description == "Fires on a schedule");
    CHECK(found);

    // Unbinding reaches the provider's unregister_trigger with the remembered config.
    trigger.unregister();
    REQUIRE(handler->wait_unregistered(1));
    CHECK(handler->unregistered()[0].id == trigger.id);
    CHECK(handler->unregistered()[0].function_id == "on_tick");
    CHECK(handler->unregistered()[0].config["interval_ms"] == iii::Value(10));
    CHECK(run_sync(ioc, consumer->list_triggers()).empty());
}

TEST_CASE("a failing register_trigger handler is reported as trigger_registration_failed",
          "[integration][triggers]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto handler = std::make_shared<RecordingHandler>();
    auto provider = iii::register_worker(engine.url(), fast_options());
    provider->register_trigger_type("picky", "Rejects some configs", handler);
    REQUIRE(engine.wait_for([&] { return !engine.received("registertriggertype").empty(); }));
    auto consumer = iii::register_worker(engine.url(), fast_options());
    iii::RegisterTriggerInput input;
    input.trigger_type = "picky";
    input.function_id = "f";
    input.config = {{"reject", true}};
    consumer->register_trigger(input);
    REQUIRE(engine.wait_for([&] { return !engine.received("triggerregistrationresult").empty(); }));
    auto result = engine.received("triggerregistrationresult")[0];
    CHECK(result["error"]["code"] == iii::Value("trigger_registration_failed"));
    CHECK(result["error"]["message"] == iii::Value("bad config: reject"));
}

TEST_CASE("a reconnecting provider gets the stored triggers again", "[integration][triggers]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto handler = std::make_shared<RecordingHandler>();
    auto provider = ticker_provider(engine, handler);
    auto consumer = iii::register_worker(engine.url(), fast_options());
    auto trigger = bind_ticker(*consumer);
    REQUIRE(handler->wait_registered(1));

    const auto first = test_support::worker_id_of(*provider);
    engine.drop(first);
    REQUIRE(handler->wait_registered(2));
    CHECK(handler->registered()[1].id == trigger.id);
    CHECK(test_support::worker_id_of(*provider) != first);
    // The trigger type was replayed exactly once on the new connection.
    CHECK(engine.received("registertriggertype", test_support::worker_id_of(*provider)).size() == 1);
}

TEST_CASE("a consumer's disconnect unbinds its triggers at the provider", "[integration][triggers]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto handler = std::make_shared<RecordingHandler>();
    auto provider = ticker_provider(engine, handler);
    auto consumer = iii::register_worker(engine.url(), fast_options());
    bind_ticker(*consumer);
    REQUIRE(handler->wait_registered(1));
    consumer.reset();  // gone
    REQUIRE(handler->wait_unregistered(1));
    asio::io_context ioc;
    CHECK(run_sync(ioc, provider->list_triggers()).empty());
}

TEST_CASE("on_functions_available fires with the new list and stops after the guard is gone",
          "[integration][triggers]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::EngineOptions options = test_support::engine_options(generation);
    options.functions_available_interval = 50ms;
    iii::testing::Engine engine(options);
    auto watcher = iii::register_worker(engine.url(), fast_options());
    std::mutex mutex;
    std::vector<std::vector<std::string>> seen;
    auto guard = watcher->on_functions_available([&](const std::vector<iii::FunctionInfo>& functions) {
        std::vector<std::string> ids;
        for (auto& f : functions) ids.push_back(f.function_id);
        // A callback descheduled under load: the first notification (without fresh::fn) is
        // still running on one pool thread while the second one runs on the other.
        if (std::find(ids.begin(), ids.end(), "fresh::fn") == ids.end())
            std::this_thread::sleep_for(300ms);
        std::lock_guard lock(mutex);
        seen.push_back(std::move(ids));
    });
    auto has = [&](const std::string& id) {
        std::lock_guard lock(mutex);
        for (auto& ids : seen)
            if (std::find(ids.begin(), ids.end(), id) != ids.end()) return true;
        return false;
    };
    const std::string watcher_id = test_support::worker_id_of(*watcher);
    // fresh::fn comes after the first notification, so that they are two notifications.
    REQUIRE(engine.wait_for([&] { return !engine.sent("invokefunction", watcher_id).empty(); }));
    auto other = iii::register_worker(engine.url(), fast_options());
    other->register_function(iii::RegisterFunctionMessage::with_id("fresh::fn"), [](iii::Value v) { return v; });
    REQUIRE(engine.wait_for([&] { return has("fresh::fn"); }, 5s));

    guard.reset();
    // The hidden function and its trigger are gone from the engine.
    REQUIRE(engine.wait_for([&] {
        for (auto& id : engine.function_ids())
            if (id.rfind("iii.on_functions_available.", 0) == 0) return false;
        return true;
    }));
    // reset() stops new callbacks, but one already running finishes: wait until the watcher
    // has answered every notification (it answers after its callbacks return). Counting
    // `seen` before that was the flaky timing assumption.
    REQUIRE(engine.wait_for([&] { return all_answered(engine, watcher_id); }));
    std::size_t before;
    {
        std::lock_guard lock(mutex);
        before = seen.size();
    }
    other->register_function(iii::RegisterFunctionMessage::with_id("later::fn"), [](iii::Value v) { return v; });
    REQUIRE(wait_function(engine, "later::fn"));
    // Two watcher periods pass with the changed set; no callback runs any more.
    CHECK_FALSE(engine.wait_for([&] { return has("later::fn"); }, 300ms));
    std::lock_guard lock(mutex);
    CHECK(seen.size() == before);
}

TEST_CASE("services are announced and replayed", "[integration][triggers]") {
    III_FOR_EACH_GENERATION(generation);
    iii::testing::Engine engine(test_support::engine_options(generation));
    auto worker = iii::register_worker(engine.url(), fast_options());
    worker->register_service({.id = "orders", .name = "Orders", .description = "Order management"});
    REQUIRE(engine.wait_for([&] { return !engine.received("registerservice").empty(); }));
    auto frame = engine.received("registerservice")[0];
    CHECK(frame["id"] == iii::Value("orders"));
    CHECK(frame["name"] == iii::Value("Orders"));
    engine.drop(test_support::worker_id_of(*worker));
    // Once per connection: the first and the one after the reconnect.
    CHECK(engine.wait_for([&] { return engine.received("registerservice").size() == 2; }));
    for (const auto& id : engine.worker_ids()) CHECK(engine.received("registerservice", id).size() <= 1);
}
