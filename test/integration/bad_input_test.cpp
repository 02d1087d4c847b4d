// Strings that are not valid UTF-8, end to end through the test engine: the call fails at once
// with Errc::Serde (never by its timeout), a registration is refused when it is made, and a
// handler result that cannot be sent reaches the caller as an invocation_failed error.

#include "run.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

using namespace std::chrono_literals;
using test_support::fast_options;
using test_support::run_sync;
using test_support::wait_function;

namespace {

const std::string bad = "x\xff";

struct TwoWorkers {
    asio::io_context ioc;
    iii::testing::Engine engine;
    std::shared_ptr<iii::Client> callee = iii::register_worker(engine.url(), fast_options());
    std::shared_ptr<iii::Client> caller = iii::register_worker(engine.url(), fast_options());
};

/// Runs `op`, which must throw iii::Error; returns it with how long it took.
template <class T>
std::pair<iii::Error, std::chrono::milliseconds> failure_of(asio::io_context& ioc, asio::awaitable<T> op) {
    const auto start = std::chrono::steady_clock::now();
    try {
        run_sync(ioc, std::move(op));
    } catch (const iii::Error& e) {
        return {e, std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)};
    }
    FAIL("the call succeeded");
    return {iii::Error(iii::Errc::Runtime, ""), 0ms};
}

}  // namespace

TEST_CASE("a trigger whose payload is not UTF-8 fails at once with Errc::Serde naming the path",
          "[integration][utf8]") {
    TwoWorkers w;
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("echo"), [](iii::Value v) { return v; });
    REQUIRE(wait_function(w.engine, "echo"));
    iii::Value payload = iii::Value::object({{"name", bad}});
    iii::TriggerRequest request("echo", payload);
    auto [error, took] = failure_of(w.ioc, w.caller->trigger(std::move(request)));
    CHECK(error.errc() == iii::Errc::Serde);
    CHECK(std::string(error.what()).find("$.data.name: string is not valid UTF-8") != std::string::npos);
    CHECK(took < 1000ms);  // the invocation timeout is 5 s: this is not it
    // Void calls too, and nothing of either reached the engine.
    iii::TriggerRequest fire("echo", payload, iii::Void{});
    CHECK(failure_of(w.ioc, w.caller->trigger(std::move(fire))).first.errc() == iii::Errc::Serde);
    CHECK(w.engine.received("invokefunction", test_support::worker_id_of(*w.caller)).size() <= 1);
    // The connection is fine afterwards.
    iii::TriggerRequest ok("echo", iii::Value("\xc3\xa9"));
    CHECK(run_sync(w.ioc, w.caller->trigger(std::move(ok))) == iii::Value("\xc3\xa9"));
}

TEST_CASE("register_function refuses a description that is not UTF-8", "[integration][utf8]") {
    TwoWorkers w;
    auto message = iii::RegisterFunctionMessage::with_id("described");
    message.description = bad;
    try {
        w.callee->register_function(message, [](iii::Value v) { return v; });
        FAIL("registered");
    } catch (const iii::Error& e) {
        CHECK(e.errc() == iii::Errc::Serde);
        CHECK(std::string(e.what()).find("$.description") != std::string::npos);
    }
    // Not half-registered: the same id registers fine once the description is fixed.
    message.description = "fine";
    w.callee->register_function(message, [](iii::Value v) { return v; });
    REQUIRE(wait_function(w.engine, "described"));
}

TEST_CASE("a handler result that is not UTF-8 is answered with invocation_failed at once",
          "[integration][utf8]") {
    TwoWorkers w;
    w.callee->register_function(iii::RegisterFunctionMessage::with_id("mangle"),
                                [](iii::Value) -> asio::awaitable<iii::Value> {
                                    co_return iii::Value::object({{"out", bad}});
                                });
    REQUIRE(wait_function(w.engine, "mangle"));
    iii::TriggerRequest request("mangle", iii::Value());
    auto [error, took] = failure_of(w.ioc, w.caller->trigger(std::move(request)));
    REQUIRE(error.errc() == iii::Errc::Remote);
    CHECK(error.remote()->code == "invocation_failed");
    CHECK(error.remote()->message.find("$.result.out: string is not valid UTF-8") != std::string::npos);
    CHECK(took < 1000ms);
}
