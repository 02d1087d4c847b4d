// The reference's greet example: one worker registers `greet`, another calls it through the
// engine. Uses the engine at $III_URL when set, else starts the embedded test engine.

#include <iii/iii.hpp>

#include "sample_engine.hpp"

#include <asio/co_spawn.hpp>
#include <asio/this_coro.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <cstdio>
#include <memory>

using namespace std::chrono_literals;

// Calls `greet` from the caller worker, then shuts both workers down gracefully.
asio::awaitable<int> call_greet(std::shared_ptr<iii::Client> caller, std::shared_ptr<iii::Client> worker) {
    co_await caller->wait_for_state(iii::ConnectionState::Connected, 10s);
    int status = 1;
    // The engine does not acknowledge registrations: retry briefly while `greet` is still on
    // its way there.
    for (int attempt = 0; status != 0; ++attempt) {
        try {
            // (Built before the co_await: GCC 12 cannot keep braced temporaries of string
            // literals alive across a suspension point.)
            iii::TriggerRequest request{"greet", {{"name", "World"}}};
            auto result = co_await caller->trigger(std::move(request));
            std::printf("greet -> %s\n", result.dump().c_str());
            status = 0;
        } catch (const iii::Error& e) {
            if (e.errc() != iii::Errc::Remote || e.remote()->code != "function_not_found" || attempt == 50)
                throw;
        }
        if (status != 0) {
            asio::steady_timer pause(co_await asio::this_coro::executor, 100ms);
            co_await pause.async_wait(asio::use_awaitable);
        }
    }
    co_await caller->shutdown_async();
    co_await worker->shutdown_async();
    co_return status;
}

int main() {
    const SampleEngine engine;  // $III_URL, else an embedded test engine
    const std::string& url = engine.url();

    // Worker: registers a function. Handlers are coroutines (or plain functions).
    auto worker = iii::register_worker(url);
    worker->register_function(
        iii::RegisterFunctionMessage{.id = "greet", .description = "Greet someone by name"},
        [](iii::Value input) -> asio::awaitable<iii::Value> {
            co_return iii::Value("Hello, " + input["name"].as_string() + "!");
        });

    // Caller: another worker that invokes it through the engine.
    auto caller = iii::register_worker(url);
    asio::io_context io;
    int status = 1;
    asio::co_spawn(io, call_greet(caller, worker), [&](std::exception_ptr e, int result) {
        if (!e) {
            status = result;
            return;
        }
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            std::fprintf(stderr, "quickstart failed: %s\n", ex.what());
        }
    });
    io.run();
    return status;
}
