#pragma once
// Test helpers: run an awaitable to completion on the test thread (Catch2 v2 assertions are not
// thread-safe, so results are checked here, never inside handlers).

#include <iii/iii.hpp>

#include "connection.hpp"
#include <iii/testing/engine.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

/// Runs the enclosing test case once per engine generation (a Catch2 GENERATE), with the
/// generation in every failure message. The suites that must behave alike on every engine
/// the SDK supports use it: `III_FOR_EACH_GENERATION(g); Engine engine(engine_options(g));`
#define III_FOR_EACH_GENERATION(var)                                                          \
    const auto var = GENERATE(::iii::testing::Generation::V0_10,                              \
                              ::iii::testing::Generation::V0_22,                              \
                              ::iii::testing::Generation::V0_23);                             \
    INFO("engine generation " << ::iii::testing::to_string(var))

namespace test_support {

using namespace std::chrono_literals;

/// Lets the SDK's strand finish with `ioc`: an operation completed on `ioc` keeps a
/// work-tracking copy of its executor on the strand for a moment after the result is
/// delivered, so `ioc` must not be destroyed before it runs out of work.
inline void drain(asio::io_context& ioc) {
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (!ioc.stopped() && std::chrono::steady_clock::now() < deadline) ioc.run_one_for(10ms);
}

/// Runs `ioc` until `op` completes (or `limit` passes: throws) and returns its result, with
/// `ioc`'s outstanding work not waited for: for a client hosted on `ioc` itself
/// (`register_worker(ioc, ...)`), whose connection keeps work on `ioc` until it is shut down and
/// whose operations complete on `ioc` with no other thread holding its work.
template <class T>
T run_hosted(asio::io_context& ioc, asio::awaitable<T> op, std::chrono::milliseconds limit = 10s) {
    std::optional<T> value;
    std::exception_ptr error;
    bool done = false;
    asio::co_spawn(ioc, std::move(op), [&](std::exception_ptr e, T v) {
        done = true;
        error = e;
        if (!e) value.emplace(std::move(v));
    });
    ioc.restart();
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline) ioc.run_one_for(10ms);
    if (!done) throw std::runtime_error("run_hosted: deadline exceeded");
    if (error) std::rethrow_exception(error);
    return std::move(*value);
}

inline void run_hosted(asio::io_context& ioc, asio::awaitable<void> op,
                       std::chrono::milliseconds limit = 10s) {
    // Through a value, so that one loop serves both.
    auto as_value = [](asio::awaitable<void> inner) -> asio::awaitable<bool> {
        co_await std::move(inner);
        co_return true;
    };
    run_hosted(ioc, as_value(std::move(op)), limit);
}

/// Runs drain() when it goes, also when the run throws.
struct DrainOnExit {
    asio::io_context& ioc;
    ~DrainOnExit() { drain(ioc); }
};

/// run_hosted(), then drain(): for an `ioc` that only waits on clients with their own threads,
/// so that it can be destroyed as soon as this returns.
template <class T>
T run_sync(asio::io_context& ioc, asio::awaitable<T> op, std::chrono::milliseconds limit = 10s) {
    DrainOnExit drain_on_exit{ioc};
    return run_hosted(ioc, std::move(op), limit);
}

inline void run_sync(asio::io_context& ioc, asio::awaitable<void> op, std::chrono::milliseconds limit = 10s) {
    DrainOnExit drain_on_exit{ioc};
    run_hosted(ioc, std::move(op), limit);
}

/// Engine options for one generation (see III_FOR_EACH_GENERATION).
inline iii::testing::EngineOptions engine_options(iii::testing::Generation generation,
                                                  iii::testing::EngineOptions base = {}) {
    base.generation = generation;
    return base;
}

/// Fast health-check timings so reliability tests finish in milliseconds. Every client gets
/// its own worker name: the default `<hostname>:<pid>` is shared by all clients of one
/// process, and a 0.23 engine admits one live worker per name (WORKER_NAMESPACE_CONFLICT).
inline iii::InitOptions fast_options() {
    static std::atomic<unsigned> clients{0};
    iii::InitOptions options;
    options.metadata = iii::WorkerMetadata::detect();
    options.metadata->name += "#" + std::to_string(++clients);
    options.reconnection.initial_delay_ms = 20;
    options.reconnection.max_delay_ms = 200;
    options.timings.connect_timeout = 2000ms;
    options.invocation_timeout = 5000ms;
    options.shutdown_grace = 2000ms;
    options.handler_threads = 2;
    options.otel = iii::OtelConfig{.enabled = false};
    return options;
}

/// Waits until the engine lists `function_id`.
inline bool wait_function(const iii::testing::Engine& engine, const std::string& function_id,
                          std::chrono::milliseconds limit = 5s) {
    return engine.wait_for(
        [&] {
            auto ids = engine.function_ids();
            return std::find(ids.begin(), ids.end(), function_id) != ids.end();
        },
        limit);
}

/// The engine-side id of `client`'s current connection, once the client has read its
/// `workerregistered` frame (the client does not wait for it before registering, so a test
/// that needs the id must wait for it).
inline std::string worker_id_of(const iii::Client& client, std::chrono::milliseconds limit = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::string id = client.connection()->worker_id();
    while (id.empty() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);  // polls client-side state; bounded by the deadline
        id = client.connection()->worker_id();
    }
    if (id.empty()) throw std::runtime_error("worker_id_of: no workerregistered within the limit");
    return id;
}

/// worker_id_of() for a client hosted on `ioc` (`register_worker(ioc, ...)`): its
/// `workerregistered` frame is read only while `ioc` runs, so this runs `ioc` while it waits.
inline std::string worker_id_of(asio::io_context& ioc, const iii::Client& client,
                                std::chrono::milliseconds limit = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    ioc.restart();
    std::string id = client.connection()->worker_id();
    while (id.empty() && std::chrono::steady_clock::now() < deadline) {
        ioc.run_one_for(10ms);
        id = client.connection()->worker_id();
    }
    if (id.empty()) throw std::runtime_error("worker_id_of: no workerregistered within the limit");
    return id;
}

/// Waits until `client` reports `state`.
inline bool wait_state(const iii::Client& client, iii::ConnectionState state,
                       std::chrono::milliseconds limit = 5s) {
    asio::io_context ioc;
    auto& c = const_cast<iii::Client&>(client);
    return run_sync(ioc, c.wait_for_state(state, limit), limit + 1s);
}

}  // namespace test_support
