// Faults over real loopback sockets: engine restarts, drops, silence, garbage and shutdown.

#include "connection.hpp"
#include "run.hpp"

#include <catch2/catch.hpp>

#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <mutex>

using namespace std::chrono_literals;
using test_support::fast_options;
using test_support::run_sync;
using test_support::wait_function;
using test_support::wait_state;

namespace {

asio::awaitable<iii::Value> hang(iii::Value) {
    asio::steady_timer t(co_await asio::this_coro::executor, 3s);
    co_await t.async_wait(asio::use_awaitable);
    co_return iii::Value();
}

/// Invocation ids of the `function_id` calls the engine forwarded to `worker`.
std::vector<std::string> forwarded(const iii::testing::Engine& engine, const std::string& worker,
                                   const std::string& function_id) {
    std::vector<std::string> ids;
    for (const auto& frame : engine.sent("invokefunction", worker))
        if (frame["function_id"] == iii::Value(function_id)) ids.push_back(frame["invocation_id"].as_string());
    return ids;
}

std::size_t count_registrations(const iii::testing::Engine& engine, const std::string& worker,
                                const std::string& type, const std::string& id) {
    std::size_t n = 0;
    for (const auto& frame : engine.received(type, worker))
        if (frame["id"] == iii::Value(id)) ++n;
    return n;
}

}  // namespace

TEST_CASE("after an engine restart the worker reconnects and replays each registration once",
          "[integration][reliability]") {
    auto engine = std::make_unique<iii::testing::Engine>();
    const auto port = engine->port();
    auto worker = iii::register_worker(engine->url(), fast_options());
    worker->register_function(iii::RegisterFunctionMessage::with_id("a"), [](iii::Value v) { return v; });
    worker->register_function(iii::RegisterFunctionMessage::with_id("b"), [](iii::Value v) { return v; });
    REQUIRE(wait_function(*engine, "a"));
    REQUIRE(wait_function(*engine, "b"));
    REQUIRE(wait_state(*worker, iii::ConnectionState::Connected));
    const auto first_id = test_support::worker_id_of(*worker);
    // Registrations made around the first connect go out exactly once.
    CHECK(engine->wait_for([&] { return count_registrations(*engine, first_id, "registerfunction", "b") == 1; }));
    CHECK(count_registrations(*engine, first_id, "registerfunction", "a") == 1);

    engine.reset();  // the engine goes away
    REQUIRE(wait_state(*worker, iii::ConnectionState::Reconnecting));
    iii::testing::EngineOptions options;
    options.port = port;
    engine = std::make_unique<iii::testing::Engine>(options);
    REQUIRE(wait_function(*engine, "a"));
    REQUIRE(wait_function(*engine, "b"));
    REQUIRE(wait_state(*worker, iii::ConnectionState::Connected));
    const auto second_id = test_support::worker_id_of(*worker);
    REQUIRE(engine->wait_for([&] {
        for (auto& f : engine->received("invokefunction", second_id))
            if (f["function_id"] == iii::Value("engine::workers::register")) return true;
        return false;
    }));
    CHECK(count_registrations(*engine, second_id, "registerfunction", "a") == 1);
    CHECK(count_registrations(*engine, second_id, "registerfunction", "b") == 1);
    std::size_t metadata = 0;
    for (auto& f : engine->received("invokefunction", second_id))
        if (f["function_id"] == iii::Value("engine::workers::register")) ++metadata;
    CHECK(metadata == 1);

    // And the restored registration serves calls again.
    auto caller = iii::register_worker(engine->url(), fast_options());
    asio::io_context ioc;
    CHECK(run_sync(ioc, caller->trigger({"a", 5})) == iii::Value(5));
}

TEST_CASE("calls pending on a dropped connection fail at once with NotConnected", "[integration][reliability]") {
    iii::testing::Engine engine;
    auto callee = iii::register_worker(engine.url(), fast_options());
    callee->register_function(iii::RegisterFunctionMessage::with_id("hang"), hang);
    REQUIRE(wait_function(engine, "hang"));
    auto options = fast_options();
    options.invocation_timeout = 30s;
    auto caller = iii::register_worker(engine.url(), options);
    REQUIRE(wait_state(*caller, iii::ConnectionState::Connected));
    const auto caller_id = test_support::worker_id_of(*caller);
    asio::io_context ioc;
    bool done = false;
    std::exception_ptr error;
    asio::co_spawn(ioc, caller->trigger({"hang", {}}),
                   [&](std::exception_ptr e, iii::Value) { done = true; error = e; });
    // Once the call is at the callee, the caller's connection drops.
    const auto callee_engine_id = test_support::worker_id_of(*callee);
    const auto forward_deadline = std::chrono::steady_clock::now() + 5s;
    while (forwarded(engine, callee_engine_id, "hang").empty() && std::chrono::steady_clock::now() < forward_deadline)
        ioc.run_one_for(10ms);  // runs the call; the engine records the forward
    REQUIRE_FALSE(forwarded(engine, callee_engine_id, "hang").empty());
    const auto start = std::chrono::steady_clock::now();
    engine.drop(caller_id);
    while (!done && std::chrono::steady_clock::now() - start < 5s) ioc.run_one_for(10ms);
    test_support::drain(ioc);  // the SDK's strand lets go of ioc before it goes
    REQUIRE(done);
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    REQUIRE(error);
    try {
        std::rethrow_exception(error);
    } catch (const iii::Error& e) {
        CHECK(e.errc() == iii::Errc::NotConnected);
    }
    // The caller reconnects on its own: the engine sees a third worker connection.
    const auto callee_id = test_support::worker_id_of(*callee);
    CHECK(engine.wait_for([&] {
        for (const auto& id : engine.worker_ids())
            if (id != caller_id && id != callee_id) return true;
        return false;
    }));
    CHECK(run_sync(ioc, caller->trigger({"engine::functions::list", iii::Value::object()})).contains("functions"));
}

TEST_CASE("a callee that disconnects mid-call gives the caller invocation_stopped", "[integration][reliability]") {
    iii::testing::Engine engine;
    auto callee = iii::register_worker(engine.url(), fast_options());
    callee->register_function(iii::RegisterFunctionMessage::with_id("hang"), hang);
    REQUIRE(wait_function(engine, "hang"));
    auto caller = iii::register_worker(engine.url(), fast_options());
    asio::io_context ioc;
    bool done = false;
    std::exception_ptr error;
    asio::co_spawn(ioc, caller->trigger({"hang", {}}),
                   [&](std::exception_ptr e, iii::Value) { done = true; error = e; });
    const auto callee_engine_id = test_support::worker_id_of(*callee);
    const auto forward_deadline = std::chrono::steady_clock::now() + 5s;
    while (forwarded(engine, callee_engine_id, "hang").empty() && std::chrono::steady_clock::now() < forward_deadline)
        ioc.run_one_for(10ms);  // runs the call; the engine records the forward
    REQUIRE_FALSE(forwarded(engine, callee_engine_id, "hang").empty());
    engine.drop(test_support::worker_id_of(*callee));
    const auto start = std::chrono::steady_clock::now();
    while (!done && std::chrono::steady_clock::now() - start < 5s) ioc.run_one_for(10ms);
    test_support::drain(ioc);  // the SDK's strand lets go of ioc before it goes
    REQUIRE(done);
    REQUIRE(error);
    try {
        std::rethrow_exception(error);
    } catch (const iii::Error& e) {
        REQUIRE(e.errc() == iii::Errc::Remote);
        CHECK(e.remote()->code == "invocation_stopped");
    }
}

TEST_CASE("a silent half-open engine is detected by the keepalive and the worker reconnects",
          "[integration][reliability]") {
    iii::testing::Engine engine;
    auto options = fast_options();
    options.timings.ping_interval = 50ms;
    options.timings.idle_timeout = 300ms;
    auto worker = iii::register_worker(engine.url(), options);
    std::mutex mutex;
    std::vector<iii::ConnectionState> states;
    worker->on_connection_state_change([&](iii::ConnectionState s) {
        std::lock_guard lock(mutex);
        states.push_back(s);
    });
    REQUIRE(wait_state(*worker, iii::ConnectionState::Connected));
    const auto first_id = test_support::worker_id_of(*worker);
    // Healthy: pongs keep it alive well past the idle timeout.
    CHECK_FALSE(wait_state(*worker, iii::ConnectionState::Reconnecting, 700ms));
    engine.stall(first_id);
    const auto start = std::chrono::steady_clock::now();
    REQUIRE(wait_state(*worker, iii::ConnectionState::Reconnecting, 3s));
    CHECK(std::chrono::steady_clock::now() - start < 1500ms);
    REQUIRE(wait_state(*worker, iii::ConnectionState::Connected, 3s));
    CHECK(engine.wait_for([&] {
        for (const auto& id : engine.worker_ids())
            if (id != first_id) return true;
        return false;
    }));
    std::lock_guard lock(mutex);
    CHECK(std::find(states.begin(), states.end(), iii::ConnectionState::Reconnecting) != states.end());
    CHECK(states.back() == iii::ConnectionState::Connected);
}

TEST_CASE("a malformed frame is skipped, fails only its own call and leaves the connection up",
          "[integration][reliability]") {
    iii::testing::Engine engine;
    auto callee = iii::register_worker(engine.url(), fast_options());
    callee->register_function(iii::RegisterFunctionMessage::with_id("hang"), hang);
    callee->register_function(iii::RegisterFunctionMessage::with_id("echo"), [](iii::Value v) { return v; });
    REQUIRE(wait_function(engine, "hang"));
    REQUIRE(wait_function(engine, "echo"));
    auto caller = iii::register_worker(engine.url(), fast_options());
    REQUIRE(wait_state(*caller, iii::ConnectionState::Connected));
    const auto caller_id = test_support::worker_id_of(*caller);
    asio::io_context ioc;
    bool done = false;
    std::exception_ptr error;
    asio::co_spawn(ioc, caller->trigger({"hang", {}}),
                   [&](std::exception_ptr e, iii::Value) { done = true; error = e; });
    const auto callee_engine_id = test_support::worker_id_of(*callee);
    const auto forward_deadline = std::chrono::steady_clock::now() + 5s;
    while (forwarded(engine, callee_engine_id, "hang").empty() && std::chrono::steady_clock::now() < forward_deadline)
        ioc.run_one_for(10ms);  // runs the call; the engine records the forward
    REQUIRE_FALSE(forwarded(engine, callee_engine_id, "hang").empty());
    const auto id = forwarded(engine, test_support::worker_id_of(*callee), "hang").back();
    engine.send_to(caller_id, "{not json");
    engine.send_to(caller_id, R"({"type":"no-such-message"})");
    engine.send_to(caller_id, R"({"type":"invocationresult","invocation_id":")" + id + R"(","function_id":5})");
    const auto start = std::chrono::steady_clock::now();
    while (!done && std::chrono::steady_clock::now() - start < 5s) ioc.run_one_for(10ms);
    test_support::drain(ioc);  // the SDK's strand lets go of ioc before it goes
    REQUIRE(done);
    REQUIRE(error);
    try {
        std::rethrow_exception(error);
    } catch (const iii::Error& e) {
        CHECK(e.errc() == iii::Errc::Serde);
    }
    CHECK(test_support::worker_id_of(*caller) == caller_id);
    CHECK(run_sync(ioc, caller->trigger({"echo", 3})) == iii::Value(3));
    CHECK(caller->get_connection_state() == iii::ConnectionState::Connected);
}

TEST_CASE("shutdown_async finishes running handlers, sends their results and closes cleanly",
          "[integration][reliability]") {
    iii::testing::Engine engine;
    auto callee = iii::register_worker(engine.url(), fast_options());
    std::atomic<bool> started{false};
    callee->register_function(iii::RegisterFunctionMessage::with_id("work"),
                              [&](iii::Value) -> asio::awaitable<iii::Value> {
                                  started = true;
                                  asio::steady_timer t(co_await asio::this_coro::executor, 200ms);
                                  co_await t.async_wait(asio::use_awaitable);
                                  co_return iii::Value("finished");
                              });
    REQUIRE(wait_function(engine, "work"));
    const auto callee_id = test_support::worker_id_of(*callee);
    auto caller = iii::register_worker(engine.url(), fast_options());
    asio::io_context ioc;
    std::optional<iii::Value> result;
    asio::co_spawn(ioc, caller->trigger({"work", {}}),
                   [&](std::exception_ptr e, iii::Value v) { if (!e) result = v; });
    while (!started) ioc.run_one_for(5ms);
    asio::io_context shutdown_ioc;
    run_sync(shutdown_ioc, callee->shutdown_async());
    CHECK(callee->get_connection_state() == iii::ConnectionState::Disconnected);
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    while (!result && std::chrono::steady_clock::now() < deadline) ioc.run_one_for(10ms);
    test_support::drain(ioc);  // the SDK's strand lets go of ioc before it goes
    REQUIRE(result);
    CHECK(*result == iii::Value("finished"));
    CHECK(engine.wait_for([&] { return engine.close_code(callee_id) == std::optional<std::uint16_t>(1000); }));
    // Calls after shutdown fail at once.
    const auto start = std::chrono::steady_clock::now();
    try {
        run_sync(shutdown_ioc, callee->trigger({"work", {}}));
        FAIL("expected NotConnected");
    } catch (const iii::Error& e) {
        CHECK(e.errc() == iii::Errc::NotConnected);
    }
    CHECK(std::chrono::steady_clock::now() - start < 100ms);
    // Idempotent.
    run_sync(shutdown_ioc, callee->shutdown_async());
    callee->shutdown();
}

TEST_CASE("calls made before the first connect are queued and sent on connect", "[integration][reliability]") {
    iii::testing::Engine engine;
    auto callee = iii::register_worker(engine.url(), fast_options());
    callee->register_function(iii::RegisterFunctionMessage::with_id("echo"), [](iii::Value v) { return v; });
    REQUIRE(wait_function(engine, "echo"));
    auto caller = iii::register_worker(engine.url(), fast_options());
    asio::io_context ioc;
    // Issued immediately, before the handshake can have completed.
    CHECK(run_sync(ioc, caller->trigger({"echo", "queued"})) == iii::Value("queued"));
}

TEST_CASE("max_retries consecutive failures end in Failed and fail queued calls", "[integration][reliability]") {
    std::uint16_t port;
    {
        iii::testing::Engine probe;  // find a port, then free it: nothing listens there
        port = probe.port();
    }
    auto options = fast_options();
    options.reconnection.max_retries = 3;
    options.reconnection.initial_delay_ms = 10;
    auto worker = iii::register_worker("ws://127.0.0.1:" + std::to_string(port), options);
    REQUIRE(wait_state(*worker, iii::ConnectionState::Failed, 5s));
    asio::io_context ioc;
    try {
        run_sync(ioc, worker->trigger({"x", {}}), 2s);
        FAIL("expected NotConnected");
    } catch (const iii::Error& e) {
        CHECK(e.errc() == iii::Errc::NotConnected);
    }
}
