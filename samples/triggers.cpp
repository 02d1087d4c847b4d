// The reference's trigger examples: a custom trigger type ("ticker") whose handler starts a
// timer coroutine per bound trigger and stops it on unregister, a consumer binding a function
// to it, and an HTTP-invoked function registration. Uses $III_URL when set, else starts the
// embedded test engine.

#include <iii/iii.hpp>

#include "sample_engine.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>

using namespace std::chrono_literals;

namespace {

/// Fires every bound function every `interval_ms` with {"tick": n} until unregistered.
class Ticker final : public iii::TriggerHandler {
public:
    // Holds the client weakly: the client owns this handler through its registry.
    Ticker(asio::io_context& io, std::weak_ptr<iii::Client> client) : io_(io), client_(std::move(client)) {}

    asio::awaitable<void> register_trigger(iii::TriggerConfig config) override {
        const auto* interval = config.config.find("interval_ms");
        const auto period = std::chrono::milliseconds(interval ? interval->as_int() : 100);
        auto stop = std::make_shared<std::atomic<bool>>(false);
        {
            std::lock_guard lock(mutex_);
            running_[config.id] = stop;
        }
        std::printf("ticker: bound trigger %s -> %s every %lld ms\n", config.id.c_str(),
                    config.function_id.c_str(), static_cast<long long>(period.count()));
        asio::co_spawn(io_, tick(client_, config.function_id, period, stop), asio::detached);
        co_return;
    }

    asio::awaitable<void> unregister_trigger(iii::TriggerConfig config) override {
        std::lock_guard lock(mutex_);
        if (auto it = running_.find(config.id); it != running_.end()) {
            *it->second = true;
            running_.erase(it);
        }
        std::printf("ticker: unbound trigger %s\n", config.id.c_str());
        co_return;
    }

private:
    static asio::awaitable<void> tick(std::weak_ptr<iii::Client> weak, std::string function_id,
                                      std::chrono::milliseconds period,
                                      std::shared_ptr<std::atomic<bool>> stop) {
        asio::steady_timer timer(co_await asio::this_coro::executor);
        for (int n = 1; !*stop; ++n) {
            timer.expires_after(period);
            co_await timer.async_wait(asio::use_awaitable);
            auto client = weak.lock();
            if (*stop || !client) break;
            iii::TriggerRequest request(function_id, {{"tick", n}}, iii::Void{});
            co_await client->trigger(std::move(request));
        }
    }

    asio::io_context& io_;
    std::weak_ptr<iii::Client> client_;
    std::mutex mutex_;
    std::map<std::string, std::shared_ptr<std::atomic<bool>>> running_;
};

}  // namespace

int main() {
    const SampleEngine engine;  // $III_URL, else an embedded test engine
    const std::string& url = engine.url();
    asio::io_context io;
    auto guard = asio::make_work_guard(io);

    // Provider: implements the trigger type.
    auto provider = iii::register_worker(url);
    provider->register_trigger_type("ticker", "Fires on an interval", std::make_shared<Ticker>(io, provider));

    // An HTTP-invoked function: the engine calls the URL; this worker only announces it.
    provider->register_function(
        iii::RegisterFunctionMessage{.id = "external::lambda", .description = "Runs elsewhere"},
        iii::HttpInvocationConfig{.url = "https://example.com/invoke",
                                  .method = iii::HttpMethod::Post,
                                  .timeout_ms = 5000,
                                  .auth = iii::BearerAuth{"LAMBDA_TOKEN"}});

    // Consumer: a function bound to the ticker.
    auto consumer = iii::register_worker(url);
    std::atomic<int> ticks{0};
    consumer->register_function(iii::RegisterFunctionMessage::with_id("on_tick"), [&](iii::Value in) {
        std::printf("on_tick: %s\n", in.dump().c_str());
        ++ticks;
        return iii::Value();
    });

    int status = 1;
    auto run = [&]() -> asio::awaitable<void> {
        asio::steady_timer pause(io);
        // The engine drops a trigger whose type it does not know yet, and registrations are not
        // acknowledged: wait until the type is listed before binding.
        for (int i = 0; i < 100; ++i) {
            auto types = co_await consumer->list_trigger_types();
            bool known = false;
            for (const auto& t : types) known = known || t.id == "ticker";
            if (known) break;
            pause.expires_after(50ms);
            co_await pause.async_wait(asio::use_awaitable);
        }
        iii::RegisterTriggerInput input;
        input.trigger_type = "ticker";
        input.function_id = "on_tick";
        input.config = {{"interval_ms", 100}};
        auto trigger = consumer->register_trigger(input);
        while (ticks < 3) {
            pause.expires_after(20ms);
            co_await pause.async_wait(asio::use_awaitable);
        }
        trigger.unregister();
        auto functions = co_await consumer->list_functions();
        for (const auto& f : functions)
            std::printf("function: %s\n", f.function_id.c_str());
        co_await consumer->shutdown_async();
        co_await provider->shutdown_async();
        status = 0;
        guard.reset();
    };
    asio::co_spawn(io, run, [&](std::exception_ptr e) {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                std::fprintf(stderr, "triggers sample failed: %s\n", ex.what());
            }
            guard.reset();
        }
    });
    io.run();
    return status;
}
