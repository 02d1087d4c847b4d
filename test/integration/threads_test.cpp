// Who runs where: a client on the caller's io_context with coroutine handlers only starts no
// thread of its own (no handler pool, no telemetry thread, no resolver thread for 127.0.0.1),
// and its coroutine handlers run on the thread that runs that io_context.

#include "connection.hpp"
#include "run.hpp"

#include <catch2/catch.hpp>

#include <asio/executor_work_guard.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using test_support::fast_options;
using test_support::run_hosted;

namespace {

std::size_t thread_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) ++n;
    return n;
}

/// "tid:name ..." of every thread, for the failure message.
std::string thread_names() {
    std::string out;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream comm(entry.path() / "comm");
        std::string name;
        std::getline(comm, name);
        out += entry.path().filename().string() + ":" + name + " ";
    }
    return out;
}

}  // namespace

TEST_CASE("register_worker(io) with coroutine handlers adds no thread, telemetry on or off",
          "[integration][executor]") {
    const bool telemetry = GENERATE(false, true);
    INFO("telemetry " << (telemetry ? "on" : "off"));
    iii::testing::Engine engine;  // its own thread exists before the count
    asio::io_context ioc;
    const auto before = thread_count();
    INFO("threads before: " << thread_names());

    auto options = fast_options();
    options.otel = iii::OtelConfig{.enabled = telemetry};
    auto worker = iii::register_worker(ioc, engine.url(), options);
    std::atomic<std::thread::id> handler_thread{};
    worker->register_function(iii::RegisterFunctionMessage::with_id("threads::add1"),
                              [&](iii::Value v) -> asio::awaitable<iii::Value> {
                                  handler_thread = std::this_thread::get_id();
                                  co_return v.as_int() + 1;
                              });
    // A round trip through the engine back into this worker's own handler.
    iii::TriggerRequest request("threads::add1", iii::Value(41));
    CHECK(run_hosted(ioc, worker->trigger(std::move(request))) == iii::Value(42));
    CHECK(handler_thread.load() == std::this_thread::get_id());  // the thread running ioc
    CHECK(worker->connection()->handler_pool_threads() == 0);
    if (telemetry) {
        REQUIRE(worker->connection()->telemetry());
        // The exporter (on this io_context, driven by this thread) delivers the spans.
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        ioc.restart();
        while (engine.spans().empty() && std::chrono::steady_clock::now() < deadline) ioc.run_one_for(10ms);
        CHECK_FALSE(engine.spans().empty());
    }
    INFO("threads after the round trip: " << thread_names());
    CHECK(thread_count() == before);

    run_hosted(ioc, worker->shutdown_async());
    CHECK(thread_count() == before);
    worker.reset();
    test_support::drain(ioc);
}

TEST_CASE("the blocking-handler pool appears with the first blocking registration, sized by handler_threads",
          "[integration][executor]") {
    iii::testing::Engine engine;
    asio::io_context ioc;
    const auto before = thread_count();
    auto options = fast_options();
    options.handler_threads = 3;
    auto worker = iii::register_worker(ioc, engine.url(), options);
    CHECK(thread_count() == before);
    std::atomic<std::thread::id> handler_thread{};
    worker->register_function(iii::RegisterFunctionMessage::with_id("threads::blocking"), [&](iii::Value v) {
        handler_thread = std::this_thread::get_id();
        return v;
    });
    CHECK(worker->connection()->handler_pool_threads() == 3);
    CHECK(thread_count() == before + 3);
    iii::TriggerRequest request("threads::blocking", iii::Value(7));
    CHECK(run_hosted(ioc, worker->trigger(std::move(request))) == iii::Value(7));
    CHECK(handler_thread.load() != std::this_thread::get_id());
    CHECK(handler_thread.load() != std::thread::id{});
    run_hosted(ioc, worker->shutdown_async());
    worker.reset();
    test_support::drain(ioc);
}

namespace {
iii::Value expensive(iii::Value v) { return iii::Value(v.as_int() * 2); }
}  // namespace

TEST_CASE("README 'Who runs where': coroutine handlers on io, blocking ones on the pool", "[integration][executor]") {
    iii::testing::Engine engine;
    const std::string url = engine.url();
    // ---- README snippet (with the engine's URL) ----
    asio::io_context io;                                       // yours, run by your thread(s)
    auto client = iii::register_worker(io, url);
    client->register_function(iii::RegisterFunctionMessage::with_id("add1"),
        [](iii::Value v) -> asio::awaitable<iii::Value> { co_return v.as_int() + 1; });  // on `io`
    client->register_function(iii::RegisterFunctionMessage::with_id("hash"),
        [](iii::Value v) { return expensive(v); });           // on the blocking pool
    // ---- end of snippet ----
    iii::TriggerRequest add("add1", iii::Value(1));
    CHECK(run_hosted(io, client->trigger(std::move(add))) == iii::Value(2));
    iii::TriggerRequest hash("hash", iii::Value(21));
    CHECK(run_hosted(io, client->trigger(std::move(hash))) == iii::Value(42));
    run_hosted(io, client->shutdown_async());
    client.reset();
    test_support::drain(io);
}
