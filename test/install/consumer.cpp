// Built against an installed SDK (test/install/run.sh): once through pkg-config, once through
// the CMake package. A worker registers `install.add` and `install.hold` with the embedded
// iii::testing::Engine; a caller on this program's own io_context calls the first and cancels a
// call to the second. Exits 0 when the sum comes back, the cancelled call reports exactly
// asio::error::operation_aborted (so libiii-sdk.so and this program share Asio's error
// categories although the library hides its copy of Asio), and the versions agree.

#include <iii/iii.hpp>
#include <iii/testing/engine.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <system_error>

using namespace std::chrono_literals;

namespace {

bool has_function(const iii::testing::Engine& engine, const char* id) {
    auto ids = engine.function_ids();
    return std::find(ids.begin(), ids.end(), id) != ids.end();
}

asio::awaitable<void> pause(std::chrono::milliseconds d) {
    asio::steady_timer timer(co_await asio::this_coro::executor, d);
    co_await timer.async_wait(asio::use_awaitable);
}

asio::awaitable<int> run(iii::testing::Engine& engine, std::shared_ptr<iii::Client> caller) {
    if (!co_await caller->wait_for_state(iii::ConnectionState::Connected, 10s)) {
        std::fprintf(stderr, "install consumer: the caller did not connect\n");
        co_return 1;
    }
    // Named before the co_await (GCC 12 destroys braced temporaries in it twice).
    iii::TriggerRequest add{"install.add", iii::Value::object({{"a", 40}, {"b", 2}})};
    iii::Value sum = co_await caller->trigger(std::move(add));
    std::printf("install.add -> %s\n", sum.dump().c_str());
    if (!sum.is_object() || sum["sum"].as_int() != 42) co_return 2;

    // A call the worker holds; cancelled once the engine has routed it.
    asio::cancellation_signal cancel;
    std::optional<std::error_code> cancelled;
    iii::TriggerRequest hold{"install.hold", iii::Value::object()};
    asio::co_spawn(co_await asio::this_coro::executor, caller->trigger(std::move(hold)),
                   asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, iii::Value) {
                       try {
                           if (e) std::rethrow_exception(e);
                           cancelled = std::error_code();
                       } catch (const std::system_error& error) {
                           cancelled = error.code();
                       } catch (...) {
                           cancelled = std::make_error_code(std::errc::invalid_argument);
                       }
                   }));
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (engine.sent("invokefunction").empty() ||
           engine.sent("invokefunction").back()["function_id"].as_string() != "install.hold") {
        if (std::chrono::steady_clock::now() > deadline) co_return 3;
        co_await pause(5ms);
    }
    cancel.emit(asio::cancellation_type::terminal);
    while (!cancelled) {
        if (std::chrono::steady_clock::now() > deadline) co_return 4;
        co_await pause(5ms);
    }
    std::printf("cancelled call -> %s (%s)\n", cancelled->message().c_str(),
                cancelled->category().name());
    if (*cancelled != asio::error::operation_aborted) co_return 5;

    co_await caller->shutdown_async();
    co_return 0;
}

}  // namespace

int main() {
    if (std::strcmp(iii::library_version(), iii::version_string) != 0) {
        std::fprintf(stderr, "install consumer: headers %s, library %s\n", iii::version_string,
                     iii::library_version());
        return 1;
    }
    iii::testing::Engine engine;

    iii::InitOptions worker_options;
    worker_options.shutdown_grace = 100ms;  // install.hold never finishes on its own
    auto worker = iii::register_worker(engine.url(), worker_options);
    worker->register_function(
        iii::RegisterFunctionMessage{.id = "install.add", .description = "Adds a and b"},
        [](iii::Value input) -> asio::awaitable<iii::Value> {
            iii::Value result = iii::Value::object({{"sum", input["a"].as_int() + input["b"].as_int()}});
            co_return result;
        });
    worker->register_function(
        iii::RegisterFunctionMessage{.id = "install.hold", .description = "Never answers"},
        [](iii::Value) -> asio::awaitable<iii::Value> {
            co_await pause(60s);
            co_return iii::Value();
        });
    if (!engine.wait_for([&] { return has_function(engine, "install.add") && has_function(engine, "install.hold"); },
                         10s)) {
        std::fprintf(stderr, "install consumer: the worker's functions never arrived\n");
        return 1;
    }

    asio::io_context io;
    auto caller = iii::register_worker(io, engine.url());
    int status = 1;
    asio::co_spawn(io, run(engine, caller), [&](std::exception_ptr e, int result) {
        if (!e) {
            status = result;
            return;
        }
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            std::fprintf(stderr, "install consumer failed: %s\n", ex.what());
        }
    });
    io.run();
    worker->shutdown();
    std::printf("install consumer (%s, SDK %s): %s\n", III_CONSUMER_KIND, iii::library_version(),
                status == 0 ? "OK" : "FAILED");
    return status;
}
