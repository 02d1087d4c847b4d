// Two workers talking through the test engine over loopback: invocations in every form.

#include "connection.hpp"
#include "run.hpp"

#include <catch2/catch.hpp>

#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/executor_work_guard.hpp>

#include <atomic>
#include <thread>

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using test_support::fast_options;
using test_support::run_sync;
using test_support::wait_function;

namespace {

iii::Value echo_payload(iii::Value payload) {
    // The engine injects _caller_worker_id; strip it so results compare cleanly.
    if (payload.is_object()) {
        auto& members = payload.as_object();
        std::erase_if(members, [](const auto& m) { return m.first == "_caller_worker_id"; });
    }
    return payload;
}

iii::Errc errc_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const iii::Error& e) {
        return e.errc();
    }
    FAIL("no iii::Error thrown");
    return iii::Errc::Runtime;
}

struct TwoWorkers {
    asio::io_context ioc;  // first: destroyed last, after every completion dispatched to it
    iii::testing::Engine engine;
    std::shared_ptr<iii::Client> callee = iii::register_worker(engine.url(), fast_options());
    std::shared_ptr<iii::Client> caller = iii::register_worker(engine.url(), fast_options());

    iii::Value call(iii::TriggerRequest request) { return run_sync(ioc, caller->trigger(std::move(request))); }
};

}  // namespace

TEST_CASE("a synchronous trigger returns the remote function's result", "[integration][invoke]") {
    TwoWorkers w;
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("greet"),
                                [](iii::Value in) -> asio::awaitable<iii::Value> {
                                    co_return iii::Value("Hello, " + in["name"].as_string() + "!");
                                });
    REQUIRE(wait_function(w.engine, "greet"));
    auto result = w.call({"greet", {{"name", "World"}}});
    CHECK(result == iii::Value("Hello, World!"));

    // The engine forwarded the caller's invocation id unchanged, lower-case and hyphenated.
    std::string id;
    for (const auto& frame : w.engine.received("invokefunction", test_support::worker_id_of(*w.caller)))
        if (frame["function_id"] == iii::Value("greet")) id = frame["invocation_id"].as_string();
    CHECK(id.size() == 36);
    CHECK(id == iii::detail::protocol::canonical_uuid(id).value());
}

TEST_CASE("a blocking handler runs on the pool and payloads round-trip unchanged", "[integration][invoke]") {
    TwoWorkers w;
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("echo"), echo_payload);
    REQUIRE(wait_function(w.engine, "echo"));
    iii::Value payload = {{"n", 18446744073709551615ull}, {"neg", -9223372036854775807ll},
                          {"d", 1.5}, {"s", "\u00e9\"\\"}, {"a", iii::Value::array({1, nullptr, true})}};
    CHECK(w.call({"echo", payload}) == payload);
    CHECK(w.call({"echo", iii::Value(42)}) == iii::Value(42));
}

TEST_CASE("payloads of changing shapes reach a handler whole, one after another", "[integration][invoke]") {
    // Each call's data is parsed into the storage of the previous call's result (recycled):
    // none of the previous shape may show through. (Keys sorted: the engine sorts them.)
    TwoWorkers w;
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("echo"),
                                [](iii::Value in) -> asio::awaitable<iii::Value> { co_return echo_payload(std::move(in)); });
    REQUIRE(wait_function(w.engine, "echo"));
    const std::vector<std::string> shapes = {
        R"({"a":1,"b":"a string longer than the small-string buffer","c":[1,2,3]})",
        R"({"b":[{"c":"d"}]})",
        R"([1,"x",{"k":null}])",
        R"({"a":[],"b":{},"z":{"y":{"x":"deep"}}})",
        R"("just text")",
        R"({"a":1,"b":"a string longer than the small-string buffer","c":[1,2,3]})",
        R"(7)",
        R"({})",
    };
    for (int round = 0; round < 2; ++round)
        for (const auto& shape : shapes) {
            INFO(shape);
            const iii::Value payload = iii::Value::parse(shape);
            CHECK(w.call({"echo", payload}).dump() == payload.dump());
        }
}

TEST_CASE("a void trigger returns null at once and the function still runs", "[integration][invoke]") {
    TwoWorkers w;
    std::atomic<int> runs{0};
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("notify"), [&](iii::Value) {
        ++runs;
        return iii::Value("ignored");
    });
    REQUIRE(wait_function(w.engine, "notify"));
    auto result = w.call({"notify", iii::Value::object(), iii::Void{}});
    CHECK(result.is_null());
    CHECK(w.engine.wait_for([&] { return runs.load() == 1; }));
    // No result ever reaches the caller for a void call.
    auto caller_frames = w.engine.frames(test_support::worker_id_of(*w.caller));
    for (const auto& f : caller_frames)
        if (!f.inbound) CHECK(f.text.find("invocationresult") == std::string::npos);
}

TEST_CASE("enqueue returns the receipt and delivers the payload later", "[integration][invoke]") {
    TwoWorkers w;
    std::atomic<int> runs{0};
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("jobs::run"), [&](iii::Value in) {
        if (in["job"] == iii::Value(7)) ++runs;
        return iii::Value();
    });
    REQUIRE(wait_function(w.engine, "jobs::run"));
    auto receipt = w.call({"jobs::run", {{"job", 7}}, iii::Enqueue{"default"}});
    REQUIRE(receipt["messageReceiptId"].is_string());
    CHECK(iii::detail::protocol::canonical_uuid(receipt["messageReceiptId"].as_string()));
    CHECK(w.engine.wait_for([&] { return runs.load() == 1; }));
}

TEST_CASE("enqueue to an unknown queue fails with the engine's enqueue_error", "[integration][invoke]") {
    TwoWorkers w;
    try {
        w.call({"jobs::run", iii::Value::object(), iii::Enqueue{"nope"}});
        FAIL("expected an error");
    } catch (const iii::Error& e) {
        REQUIRE(e.errc() == iii::Errc::Remote);
        CHECK(e.remote()->code == "enqueue_error");
        CHECK(e.remote()->message == "Queue 'nope' not found");
    }
}

TEST_CASE("calling an unknown function fails with function_not_found", "[integration][invoke]") {
    TwoWorkers w;
    try {
        w.call({"missing::fn", iii::Value::object()});
        FAIL("expected an error");
    } catch (const iii::Error& e) {
        REQUIRE(e.errc() == iii::Errc::Remote);
        CHECK(e.remote()->code == "function_not_found");
        CHECK(e.remote()->message == "Function missing::fn not found");
    }
}

TEST_CASE("a handler that throws becomes an invocation_failed reply", "[integration][invoke]") {
    TwoWorkers w;
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("boom"),
                                [](iii::Value) -> iii::Value { throw std::runtime_error("kaboom"); });
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("nested"),
                                [c = w.callee.get()](iii::Value) -> asio::awaitable<iii::Value> {
                                    // A failed nested call passes its code through.
                                    co_return co_await c->trigger({"nowhere", {}});
                                });
    REQUIRE(wait_function(w.engine, "boom"));
    REQUIRE(wait_function(w.engine, "nested"));
    try {
        w.call({"boom", {}});
        FAIL("expected an error");
    } catch (const iii::Error& e) {
        REQUIRE(e.errc() == iii::Errc::Remote);
        CHECK(e.remote()->code == "invocation_failed");
        CHECK(e.remote()->message == "kaboom");
    }
    try {
        w.call({"nested", {}});
        FAIL("expected an error");
    } catch (const iii::Error& e) {
        REQUIRE(e.errc() == iii::Errc::Remote);
        CHECK(e.remote()->code == "function_not_found");
    }
}

TEST_CASE("a call times out locally and forgets its pending entry", "[integration][invoke]") {
    TwoWorkers w;
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("slow"),
                                [](iii::Value) -> asio::awaitable<iii::Value> {
                                    asio::steady_timer t(co_await asio::this_coro::executor, 400ms);
                                    co_await t.async_wait(asio::use_awaitable);
                                    co_return iii::Value("late");
                                });
    REQUIRE(wait_function(w.engine, "slow"));
    const auto start = std::chrono::steady_clock::now();
    CHECK(errc_of([&] { w.call({"slow", {}, std::nullopt, 100}); }) == iii::Errc::Timeout);
    CHECK(std::chrono::steady_clock::now() - start < 350ms);
    CHECK(w.caller->connection()->pending_count() == 0);
    // The late result arrives and is ignored; the connection keeps working.
    CHECK(w.engine.wait_for([&] { return !w.engine.received("invocationresult", test_support::worker_id_of(*w.callee)).empty(); }));
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("fast"), [](iii::Value) { return iii::Value(1); });
    REQUIRE(wait_function(w.engine, "fast"));
    CHECK(w.call({"fast", {}}) == iii::Value(1));
}

TEST_CASE("cancelling the awaiting coroutine withdraws the call at once", "[integration][invoke]") {
    TwoWorkers w;
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("never"),
                                [](iii::Value) -> asio::awaitable<iii::Value> {
                                    asio::steady_timer t(co_await asio::this_coro::executor, 2s);
                                    co_await t.async_wait(asio::use_awaitable);
                                    co_return iii::Value();
                                });
    REQUIRE(wait_function(w.engine, "never"));
    auto caller = w.caller;
    auto raced = [caller]() -> asio::awaitable<int> {
        asio::steady_timer timer(co_await asio::this_coro::executor, 100ms);
        auto winner = co_await (caller->trigger({"never", {}}) ||
                                timer.async_wait(asio::use_awaitable));
        co_return static_cast<int>(winner.index());
    };
    const auto start = std::chrono::steady_clock::now();
    CHECK(run_sync(w.ioc, raced()) == 1);
    CHECK(std::chrono::steady_clock::now() - start < 1s);
    CHECK(caller->connection()->pending_count() == 0);
}

TEST_CASE("a thousand concurrent invocations all complete with their own results", "[integration][invoke]") {
    TwoWorkers w;
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("echo"),
                                [](iii::Value in) -> asio::awaitable<iii::Value> { co_return in["i"]; });
    REQUIRE(wait_function(w.engine, "echo"));
    constexpr int n = 1000;
    std::vector<std::optional<std::int64_t>> results(n);
    int done = 0;
    int failures = 0;
    for (int i = 0; i < n; ++i) {
        // A generous timeout: under ThreadSanitizer on a loaded 2-core machine the thousand
        // round trips take far longer than fast_options()' 5 s.
        asio::co_spawn(w.ioc, w.caller->trigger({"echo", {{"i", i}}, std::nullopt, 60000}),
                       [&, i](std::exception_ptr e, iii::Value v) {
                           ++done;
                           if (e) ++failures;
                           else results[i] = v.as_int();
                       });
    }
    const auto deadline = std::chrono::steady_clock::now() + 90s;  // a bound, not a wait: ends as soon as all are done
    while (done < n && std::chrono::steady_clock::now() < deadline) w.ioc.run_one_for(10ms);
    test_support::drain(w.ioc);  // the SDK's strand lets go of w.ioc before it goes
    REQUIRE(done == n);
    CHECK(failures == 0);
    for (int i = 0; i < n; ++i) CHECK(results[i] == i);
}

TEST_CASE("a slow handler blocks neither other invocations nor the connection", "[integration][invoke]") {
    TwoWorkers w;
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("cpu"), [](iii::Value) {
        std::this_thread::sleep_for(600ms);  // stands for CPU-heavy work inside the handler
        return iii::Value("slow");
    });
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("quick"), [](iii::Value) { return iii::Value("quick"); });
    REQUIRE(wait_function(w.engine, "quick"));
    std::vector<std::string> order;
    int done = 0;
    for (const char* id : {"cpu", "quick"}) {
        asio::co_spawn(w.ioc, w.caller->trigger({id, {}}),
                       [&](std::exception_ptr e, iii::Value v) {
                           ++done;
                           order.push_back(e ? "error" : v.as_string());
                       });
    }
    while (done < 2) w.ioc.run_one_for(10ms);
    test_support::drain(w.ioc);  // the SDK's strand lets go of w.ioc before it goes
    REQUIRE(order.size() == 2);
    CHECK(order[0] == "quick");
    CHECK(order[1] == "slow");
}

TEST_CASE("registration errors are reported, not crashes", "[integration][register]") {
    TwoWorkers w;
    auto handler = [](iii::Value v) { return v; };
    CHECK(errc_of([&] { w.callee->register_function(iii::RegisterFunctionMessage::with_id(""), handler); }) ==
          iii::Errc::Runtime);
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("dup"), handler);
    CHECK(errc_of([&] { w.callee->register_function(iii::RegisterFunctionMessage::with_id("dup"), handler); }) ==
          iii::Errc::Runtime);
}

TEST_CASE("unregister removes the function from the engine and from the replay", "[integration][register]") {
    TwoWorkers w;
    auto ref = w.callee->register_function(iii::RegisterFunctionMessage::with_id("temp"), [](iii::Value v) { return v; });
    REQUIRE(wait_function(w.engine, "temp"));
    ref.unregister();
    CHECK(w.engine.wait_for([&] {
        auto ids = w.engine.function_ids();
        return std::find(ids.begin(), ids.end(), "temp") == ids.end();
    }));
    try {
        w.call({"temp", {}});
        FAIL("expected function_not_found");
    } catch (const iii::Error& e) {
        CHECK(e.remote()->code == "function_not_found");
    }
}

TEST_CASE("an HTTP-invoked function is announced with its invocation config", "[integration][register]") {
    TwoWorkers w;
    iii::HttpInvocationConfig config{.url = "https://example.com/invoke", .method = iii::HttpMethod::Put,
                                     .timeout_ms = 1500, .headers = {{"x-a", "b"}},
                                     .auth = iii::BearerAuth{"LAMBDA_TOKEN"}};
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("external::lambda"), config);
    REQUIRE(wait_function(w.engine, "external::lambda"));
    auto frames = w.engine.received("registerfunction", test_support::worker_id_of(*w.callee));
    REQUIRE(frames.size() == 1);
    const auto& invocation = frames[0]["invocation"];
    CHECK(invocation["url"] == iii::Value("https://example.com/invoke"));
    CHECK(invocation["method"] == iii::Value("PUT"));
    CHECK(invocation["timeout_ms"] == iii::Value(1500));
    CHECK(invocation["headers"] == iii::Value({{"x-a", "b"}}));
    CHECK(invocation["auth"] == iii::Value({{"type", "bearer"}, {"token_key", "LAMBDA_TOKEN"}}));
}

TEST_CASE("worker metadata is registered after connecting", "[integration][metadata]") {
    TwoWorkers w;
    auto id = test_support::worker_id_of(*w.callee);
    REQUIRE(w.engine.wait_for([&] {
        for (auto& f : w.engine.received("invokefunction", test_support::worker_id_of(*w.callee)))
            if (f["function_id"] == iii::Value("engine::workers::register")) return true;
        return false;
    }));
    auto workers = run_sync(w.ioc, w.caller->list_workers());
    bool found = false;
    for (const auto& worker : workers) {
        if (worker.id != test_support::worker_id_of(*w.callee)) continue;
        found = true;
        CHECK(worker.runtime == std::optional<std::string>("cpp"));
        CHECK(worker.pid.has_value());
        CHECK(worker.status == "connected");
    }
    CHECK(found);
    auto functions = run_sync(w.ioc, w.caller->list_functions());
    for (const auto& f : functions) CHECK(f.function_id.rfind("engine::", 0) != 0);
}

TEST_CASE("a client on the caller's io_context works without an own thread", "[integration][executor]") {
    iii::testing::Engine engine;
    asio::io_context ioc;  // the service's own io_context, run by the service's own thread
    auto guard = asio::make_work_guard(ioc);
    std::thread service([&] { ioc.run(); });
    auto worker = iii::register_worker(ioc, engine.url(), fast_options());
    worker->register_function(iii::RegisterFunctionMessage::with_id("add1"),
                              [](iii::Value v) -> asio::awaitable<iii::Value> { co_return v.as_int() + 1; });
    REQUIRE(wait_function(engine, "add1"));
    auto result = asio::co_spawn(ioc, worker->trigger({"add1", 41}), asio::use_future);
    REQUIRE(result.wait_for(5s) == std::future_status::ready);
    CHECK(result.get() == iii::Value(42));
    auto closed = asio::co_spawn(ioc, worker->shutdown_async(), asio::use_future);
    REQUIRE(closed.wait_for(5s) == std::future_status::ready);
    closed.get();
    CHECK(worker->get_connection_state() == iii::ConnectionState::Disconnected);
    worker.reset();
    guard.reset();
    service.join();
}

TEST_CASE("handlers_on_io_thread runs coroutine handlers on the io thread and blocking ones on the pool",
          "[integration][invoke]") {
    asio::io_context caller_ioc;
    iii::testing::Engine engine;
    asio::io_context callee_io;
    auto guard = asio::make_work_guard(callee_io);
    std::thread io_thread([&] { callee_io.run(); });
    {
        auto options = fast_options();
        options.handlers_on_io_thread = true;
        auto callee = iii::register_worker(callee_io, engine.url(), options);
        std::atomic<std::thread::id> coroutine_thread{}, blocking_thread{};
        callee->register_function(iii::RegisterFunctionMessage::with_id("where::coroutine"),
                                  [&](iii::Value) -> asio::awaitable<iii::Value> {
                                      coroutine_thread = std::this_thread::get_id();
                                      co_return iii::Value("ok");
                                  });
        callee->register_function(iii::RegisterFunctionMessage::with_id("where::blocking"), [&](iii::Value) {
            blocking_thread = std::this_thread::get_id();
            return iii::Value("ok");
        });
        REQUIRE(wait_function(engine, "where::blocking"));
        auto caller = iii::register_worker(engine.url(), fast_options());
        CHECK(run_sync(caller_ioc, caller->trigger({"where::coroutine", iii::Value::object()})) == iii::Value("ok"));
        CHECK(run_sync(caller_ioc, caller->trigger({"where::blocking", iii::Value::object()})) == iii::Value("ok"));
        CHECK(coroutine_thread.load() == io_thread.get_id());
        CHECK(blocking_thread.load() != io_thread.get_id());
        CHECK(blocking_thread.load() != std::thread::id{});
        asio::io_context shutdown_ioc;
        run_sync(shutdown_ioc, callee->shutdown_async());
    }
    guard.reset();
    io_thread.join();
}

TEST_CASE("TriggerRequest::timeout as a duration times the call out and wins over timeout_ms",
          "[integration][invoke]") {
    TwoWorkers w;
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("slow2"),
                                [](iii::Value) -> asio::awaitable<iii::Value> {
                                    asio::steady_timer t(co_await asio::this_coro::executor, 2s);
                                    co_await t.async_wait(asio::use_awaitable);
                                    co_return iii::Value("late");
                                });
    REQUIRE(wait_function(w.engine, "slow2"));
    iii::TriggerRequest request("slow2", iii::Value::object(), std::nullopt, /*timeout_ms=*/60000);
    request.timeout = 100ms;
    const auto start = std::chrono::steady_clock::now();
    CHECK(errc_of([&] { w.call(std::move(request)); }) == iii::Errc::Timeout);
    CHECK(std::chrono::steady_clock::now() - start < 1500ms);
    CHECK(w.caller->connection()->pending_count() == 0);
}

namespace {

asio::awaitable<void> serve(std::shared_ptr<iii::Client> client, bool& returned) {
    co_await client->run();
    returned = true;
}

}  // namespace

TEST_CASE("run() is the connection's lifetime: cancelling it closes with the handshake and returns",
          "[integration][executor]") {
    iii::testing::Engine engine;
    asio::io_context ioc;
    auto worker = iii::register_worker(ioc, engine.url(), fast_options());
    REQUIRE(test_support::run_hosted(ioc, worker->wait_for_state(iii::ConnectionState::Connected, 5s)));
    const std::string id = test_support::worker_id_of(ioc, *worker);
    asio::cancellation_signal stop;
    bool returned = false;
    bool done = false;
    asio::co_spawn(ioc, serve(worker, returned),
                   asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr) { done = true; }));
    ioc.restart();
    ioc.run_for(50ms);
    CHECK_FALSE(done);  // serving
    CHECK(worker->get_connection_state() == iii::ConnectionState::Connected);
    stop.emit(asio::cancellation_type::terminal);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done && std::chrono::steady_clock::now() < deadline) ioc.run_one_for(10ms);
    REQUIRE(done);
    CHECK(returned);  // returned normally, not with operation_aborted
    CHECK(worker->get_connection_state() == iii::ConnectionState::Disconnected);
    CHECK(engine.wait_for([&] { return engine.close_code(id) == std::optional<std::uint16_t>(1000); }));
    worker.reset();
    test_support::drain(ioc);
}
