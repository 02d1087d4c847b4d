// Cancellation from another io_context, under load: the client runs on its own io thread, the
// callers' coroutines on the test thread's io_context, and every call loses a race against a
// short timer while the callee sleeps for a second.

#include "connection.hpp"
#include "run.hpp"

#include <catch2/catch.hpp>

#include <iii/channel.hpp>

#include <asio/co_spawn.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using test_support::fast_options;
using test_support::wait_function;

namespace {

constexpr int total_calls = 20000;
constexpr int in_flight = 200;
constexpr auto lateness_limit = 50ms;

struct Stats {
    int started = 0;
    int done = 0;
    int trigger_won = 0;
    int failed = 0;
    std::chrono::steady_clock::duration worst{};
};

asio::awaitable<iii::Value> contender(std::shared_ptr<iii::Client> caller, asio::steady_timer& never) {
    if (!caller) {
        co_await never.async_wait(asio::use_awaitable);
        co_return iii::Value();
    }
    iii::TriggerRequest request("stress::sleep", iii::Value::object());
    co_return co_await caller->trigger(std::move(request));
}

// With `caller` null, the same race against a plain Asio operation that never completes in
// time: the lateness this machine adds by itself (a loaded CI box adds tens of ms).
asio::awaitable<void> one_call(std::shared_ptr<iii::Client> caller, Stats& stats, int i) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex, std::chrono::milliseconds(5 + i % 11));
    asio::steady_timer never(ex, 1s);
    auto call = contender(caller, never);
    auto expiry = timer.async_wait(asio::use_awaitable);
    try {
        auto winner = co_await (std::move(call) || std::move(expiry));
        if (winner.index() == 0) ++stats.trigger_won;
    } catch (const std::exception&) {
        ++stats.failed;
    }
    stats.worst = std::max(stats.worst, std::chrono::steady_clock::now() - timer.expiry());
}

asio::awaitable<void> caller_loop(std::shared_ptr<iii::Client> caller, Stats& stats) {
    // Keeps `in_flight` calls running until `total_calls` have been started.
    while (stats.started < total_calls) {
        const int i = stats.started++;
        auto op = one_call(caller, stats, i);
        co_await std::move(op);
        ++stats.done;
    }
}

}  // namespace

TEST_CASE("20000 trigger() || timer races from another io_context each end with their timer, none waits for the callee",
          "[integration][cancellation]") {
    asio::io_context callers;  // not the client's: the client has its own io thread
    iii::testing::Engine engine;
    auto callee_options = fast_options();
    callee_options.max_concurrent_handlers = total_calls;  // every sleeper runs at once
    auto callee = iii::register_worker(engine.url(), callee_options);
    callee->register_function(iii::RegisterFunctionMessage::with_id("stress::sleep"),
                              [](iii::Value) -> asio::awaitable<iii::Value> {
                                  asio::steady_timer t(co_await asio::this_coro::executor, 1s);
                                  co_await t.async_wait(asio::use_awaitable);
                                  co_return iii::Value("late");
                              });
    REQUIRE(wait_function(engine, "stress::sleep"));
    auto caller = iii::register_worker(engine.url(), fast_options());
    REQUIRE(test_support::run_sync(callers, caller->wait_for_state(iii::ConnectionState::Connected, 5s)));

    auto race = [&](std::shared_ptr<iii::Client> client) {
        Stats stats;
        int loops_done = 0;
        for (int k = 0; k < in_flight; ++k)
            asio::co_spawn(callers, caller_loop(client, stats), [&](std::exception_ptr) { ++loops_done; });
        const auto deadline = std::chrono::steady_clock::now() + 240s;
        callers.restart();
        while (loops_done < in_flight && std::chrono::steady_clock::now() < deadline) callers.run_one_for(10ms);
        REQUIRE(loops_done == in_flight);
        return stats;
    };
    const Stats baseline = race(nullptr);
    const Stats stats = race(caller);
    CHECK(stats.done == total_calls);
    CHECK(stats.trigger_won == 0);  // the callee sleeps 1 s: every timer wins
    CHECK(stats.failed == 0);
    using us = std::chrono::microseconds;
    INFO("worst lateness " << std::chrono::duration_cast<us>(stats.worst).count() << " us; plain Asio "
                           << std::chrono::duration_cast<us>(baseline.worst).count() << " us");
    // A lost cancellation waits for the callee's whole second: that is what this bound catches.
    // How late a won timer completes is a matter of scheduling, not of correctness (on a quiet
    // machine both figures are a few ms; on a loaded one, or under ThreadSanitizer, the SDK's
    // four busy threads suffer more than the plain-Asio run's one), so it is reported, not
    // asserted: a timed assertion would fail with the machine's load.
    CHECK(stats.worst < 500ms);
    if (stats.worst > lateness_limit + 2 * baseline.worst)
        WARN("cancellations completed late: worst " << std::chrono::duration_cast<us>(stats.worst).count()
                                                    << " us against plain Asio's "
                                                    << std::chrono::duration_cast<us>(baseline.worst).count() << " us");
    // The strand publishes the count after it ran the cancellations.
    const auto settle = std::chrono::steady_clock::now() + 5s;
    while (caller->connection()->pending_count() != 0 && std::chrono::steady_clock::now() < settle)
        callers.run_one_for(1ms);
    CHECK(caller->connection()->pending_count() == 0);
    test_support::drain(callers);
}

namespace {

asio::awaitable<int> race_read(iii::ChannelReader reader, std::chrono::milliseconds limit) {
    asio::steady_timer timer(co_await asio::this_coro::executor, limit);
    auto next = reader.next_binary();
    auto expiry = timer.async_wait(asio::use_awaitable);
    auto winner = co_await (std::move(next) || std::move(expiry));
    co_return static_cast<int>(winner.index());
}

asio::awaitable<std::string> write_then_read(iii::Channel channel) {
    co_await channel.writer.write(std::string_view("after the cancellation"));
    auto chunk = co_await channel.reader.next_binary();
    co_return chunk ? std::string(chunk->begin(), chunk->end()) : std::string("<end>");
}

}  // namespace

TEST_CASE("a channel read cancelled from another io_context ends at once and loses no frame",
          "[integration][cancellation]") {
    asio::io_context callers;
    iii::testing::Engine engine;
    auto client = iii::register_worker(engine.url(), fast_options());
    auto channel = test_support::run_sync(callers, client->create_channel());
    for (int i = 0; i < 50; ++i) {
        const auto start = std::chrono::steady_clock::now();
        CHECK(test_support::run_sync(callers, race_read(channel.reader, 5ms)) == 1);  // the timer wins
        CHECK(std::chrono::steady_clock::now() - start < 1s);
    }
    CHECK(test_support::run_sync(callers, write_then_read(channel)) == "after the cancellation");
    test_support::run_sync(callers, channel.writer.close());
    test_support::run_sync(callers, channel.reader.close());
}
