// Downstream smoke test: one worker registers `consumer.add`, another calls it through an
// embedded iii::testing::Engine. Exits 0 when the result comes back right.

#include <iii/iii.hpp>
#include <iii/testing/engine.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>

using namespace std::chrono_literals;

asio::awaitable<int> call_add(std::shared_ptr<iii::Client> caller, std::shared_ptr<iii::Client> worker) {
    if (!co_await caller->wait_for_state(iii::ConnectionState::Connected, 10s)) {
        std::fprintf(stderr, "consumer: the caller did not connect\n");
        co_return 1;
    }
    int status = 1;
    // The engine does not acknowledge registrations: retry while `consumer.add` is on its way.
    for (int attempt = 0; status == 1; ++attempt) {
        try {
            // Named before the co_await (GCC 12 destroys braced temporaries in it twice).
            iii::TriggerRequest request{"consumer.add", iii::Value::object({{"a", 40}, {"b", 2}})};
            auto result = co_await caller->trigger(std::move(request));
            std::printf("consumer.add -> %s\n", result.dump().c_str());
            status = result.is_object() && result["sum"].as_int() == 42 ? 0 : 2;
        } catch (const iii::Error& e) {
            if (e.errc() != iii::Errc::Remote || e.remote()->code != "function_not_found" || attempt == 50)
                throw;
        }
        if (status == 1) {
            asio::steady_timer pause(co_await asio::this_coro::executor, 100ms);
            co_await pause.async_wait(asio::use_awaitable);
        }
    }
    co_await caller->shutdown_async();
    co_await worker->shutdown_async();
    co_return status;
}

int main() {
    iii::testing::Engine engine;

    auto worker = iii::register_worker(engine.url());
    worker->register_function(
        iii::RegisterFunctionMessage{.id = "consumer.add", .description = "Adds a and b"},
        [](iii::Value input) -> asio::awaitable<iii::Value> {
            auto sum = input["a"].as_int() + input["b"].as_int();
            iii::Value result = iii::Value::object({{"sum", sum}});
            co_return result;
        });
    auto caller = iii::register_worker(engine.url());

    asio::io_context io;
    int status = 1;
    asio::co_spawn(io, call_add(caller, worker), [&](std::exception_ptr e, int result) {
        if (!e) {
            status = result;
            return;
        }
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            std::fprintf(stderr, "consumer failed: %s\n", ex.what());
        }
    });
    io.run();
    std::printf("consumer: %s\n", status == 0 ? "OK" : "FAILED");
    return status;
}
