// Typed functions end to end: one worker registers plain C++ functions, another calls them with
// typed triggers, through the test engine over loopback.

#include "run.hpp"

#include <iii/typed.hpp>

#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using test_support::fast_options;
using test_support::run_sync;
using test_support::wait_function;

namespace e2e {

struct GreetInput {
    std::string name;
};
III_DESCRIBE(GreetInput, name);

struct Greeting {
    std::string message;
    std::uint32_t length = 0;
};
III_DESCRIBE(Greeting, message, length);

struct LineItem {
    std::string name;
    std::uint32_t qty = 0;
};
III_DESCRIBE(LineItem, name, qty);

struct Cart {
    std::vector<LineItem> items;
    std::optional<std::string> coupon;
};
III_DESCRIBE(Cart, items, coupon);

Greeting greet(const GreetInput& in) {
    std::string message = "Hello, " + in.name + "!";
    return {message, static_cast<std::uint32_t>(message.size())};
}

int add(int a, int b) { return a + b; }

asio::awaitable<std::string> fetch(std::string url) {
    // Suspends for real, so the typed wrapper's frame must keep the decoded input alive.
    asio::steady_timer timer(co_await asio::this_coro::executor, 5ms);
    co_await timer.async_wait(asio::use_awaitable);
    co_return "fetched " + url;
}

std::string ping() { return "pong"; }

std::uint32_t count_items(const Cart& cart) {
    std::uint32_t n = 0;
    for (const auto& item : cart.items) n += item.qty;
    return n;
}

int must_be_positive(int n) {
    if (n <= 0) throw std::invalid_argument("n must be positive, got " + std::to_string(n));
    return n;
}

}  // namespace e2e

namespace {

struct TwoWorkers {
    // First, so it is destroyed last: a call's completion is dispatched to this context from the
    // clients' threads, which only stop when the clients are destroyed (ASan caught the other
    // order as a use-after-free).
    asio::io_context ioc;
    iii::testing::Engine engine;
    std::shared_ptr<iii::Client> callee = iii::register_worker(engine.url(), fast_options());
    std::shared_ptr<iii::Client> caller = iii::register_worker(engine.url(), fast_options());

    /// The registerfunction frame the engine received for `id`.
    iii::Value registration(const std::string& id) const {
        for (const auto& frame : engine.received("registerfunction"))
            if (frame["id"] == iii::Value(id)) return frame;
        FAIL("no registerfunction frame for " << id);
        return {};
    }
};

/// The error a typed call failed with.
template <class T>
iii::Error call_error(asio::io_context& ioc, asio::awaitable<T> op) {
    try {
        run_sync(ioc, std::move(op));
    } catch (const iii::Error& e) {
        return e;
    }
    FAIL("the call did not fail");
    return iii::Error(iii::Errc::Runtime, "unreachable");
}

}  // namespace

TEST_CASE("greet with a struct argument returns a struct, and registers both schemas",
          "[integration][typed]") {
    TwoWorkers w;
    iii::register_function(*w.callee,
                           iii::RegisterFunction("greet", e2e::greet).description("Greet someone by name"));
    REQUIRE(wait_function(w.engine, "greet"));

    const auto out = run_sync(w.ioc, iii::trigger<e2e::Greeting>(*w.caller, "greet",
                                                                 e2e::GreetInput{"World"}));
    CHECK(out.message == "Hello, World!");
    CHECK(out.length == 13);

    const iii::Value frame = w.registration("greet");
    CHECK(frame["description"] == iii::Value("Greet someone by name"));
    CHECK(frame["request_format"] == iii::json_schema<e2e::GreetInput>());
    CHECK(frame["response_format"] == iii::json_schema<e2e::Greeting>());
    CHECK(frame["request_format"]["required"] == iii::Value::array({"name"}));
}

TEST_CASE("add takes positional arguments", "[integration][typed]") {
    TwoWorkers w;
    iii::register_function(*w.callee, iii::RegisterFunction("add", e2e::add));
    REQUIRE(wait_function(w.engine, "add"));

    CHECK(run_sync(w.ioc, iii::trigger<int>(*w.caller, "add", std::tuple{3, 4})) == 7);
    // The dynamic form reaches the same function.
    CHECK(run_sync(w.ioc, iii::trigger(*w.caller, "add", iii::Value::array({-10, 4}))) ==
          iii::Value(-6));
    CHECK(w.registration("add")["request_format"]["title"] ==
          iii::Value("Tuple_of_int32_and_int32"));
}

TEST_CASE("an async function is awaited", "[integration][typed]") {
    TwoWorkers w;
    iii::register_function(*w.callee, iii::RegisterFunction("fetch", e2e::fetch)
                                          .description("Fetch data from URL")
                                          .metadata({{"kind", "io"}}));
    REQUIRE(wait_function(w.engine, "fetch"));

    CHECK(run_sync(w.ioc, iii::trigger<std::string>(*w.caller, "fetch",
                                                    std::string("https://example.test"))) ==
          "fetched https://example.test");
    CHECK(w.registration("fetch")["metadata"] == iii::Value{{"kind", "io"}});
}

TEST_CASE("a function without parameters ignores its input", "[integration][typed]") {
    TwoWorkers w;
    iii::register_function(*w.callee, iii::RegisterFunction("ping", e2e::ping));
    REQUIRE(wait_function(w.engine, "ping"));

    CHECK(run_sync(w.ioc, iii::trigger<std::string>(*w.caller, "ping", iii::Value::object())) ==
          "pong");
    CHECK(run_sync(w.ioc, iii::trigger<std::string>(*w.caller, "ping",
                                                    iii::Value::array({1, 2}))) == "pong");
    const iii::Value frame = w.registration("ping");
    CHECK_FALSE(frame.contains("request_format"));
    CHECK(frame["response_format"] == iii::json_schema<std::string>());
}

TEST_CASE("iii_fn and iii_async_fn fill in the formats of the low-level registration",
          "[integration][typed]") {
    TwoWorkers w;
    iii::register_function(*w.callee, iii::RegisterFunctionMessage::with_id("count"),
                           iii::iii_fn(e2e::count_items));
    iii::register_function(*w.callee, iii::RegisterFunctionMessage::with_id("fetch2"),
                           iii::iii_async_fn(e2e::fetch));
    REQUIRE(wait_function(w.engine, "count"));
    REQUIRE(wait_function(w.engine, "fetch2"));

    const e2e::Cart cart{{{"pen", 2}, {"cup", 3}}, std::nullopt};
    CHECK(run_sync(w.ioc, iii::trigger<std::uint32_t>(*w.caller, "count", cart)) == 5);
    CHECK(run_sync(w.ioc, iii::trigger<std::string>(*w.caller, "fetch2", std::string("x"))) ==
          "fetched x");

    const iii::Value frame = w.registration("count");
    CHECK(frame["request_format"] == iii::json_schema<e2e::Cart>());
    CHECK(frame["request_format"]["definitions"].contains("LineItem"));
    CHECK(frame["response_format"]["format"] == iii::Value("uint32"));
}

TEST_CASE("a payload that does not decode reaches the caller as a Remote error naming the path",
          "[integration][typed]") {
    TwoWorkers w;
    iii::register_function(*w.callee, iii::RegisterFunction("greet", e2e::greet));
    iii::register_function(*w.callee, iii::RegisterFunction("add", e2e::add));
    iii::register_function(*w.callee, iii::RegisterFunction("count", e2e::count_items));
    REQUIRE(wait_function(w.engine, "greet"));
    REQUIRE(wait_function(w.engine, "add"));
    REQUIRE(wait_function(w.engine, "count"));

    auto remote_message = [&](const iii::Error& e) -> std::string {
        REQUIRE(e.errc() == iii::Errc::Remote);
        REQUIRE(e.remote());
        CHECK(e.remote()->code == "invocation_failed");
        return e.remote()->message;
    };

    CHECK_THAT(remote_message(call_error(w.ioc, iii::trigger<e2e::Greeting>(
                                                    *w.caller, "greet", iii::Value{{"name", 5}}))),
               Catch::Contains("$.name: expected string"));
    CHECK_THAT(remote_message(call_error(
                   w.ioc, iii::trigger<e2e::Greeting>(*w.caller, "greet", iii::Value::object()))),
               Catch::Contains("$.name: missing field"));
    CHECK_THAT(remote_message(call_error(w.ioc, iii::trigger<int>(*w.caller, "add",
                                                                  iii::Value::array({3})))),
               Catch::Contains("$: expected array of length 2"));
    const iii::Value bad_cart = {
        {"items", iii::Value::array({{{"name", "a"}, {"qty", 1}},
                                     {{"name", "b"}, {"qty", 1}},
                                     {{"name", "c"}, {"qty", 1}},
                                     {{"name", true}, {"qty", 1}}})}};
    CHECK_THAT(remote_message(call_error(
                   w.ioc, iii::trigger<std::uint32_t>(*w.caller, "count", bad_cart))),
               Catch::Contains("$.items[3].name: expected string"));
    CHECK_THAT(remote_message(call_error(
                   w.ioc, iii::trigger<std::uint32_t>(
                              *w.caller, "count",
                              iii::Value{{"items", iii::Value::array({{{"name", "a"}, {"qty", -1}}})}}))),
               Catch::Contains("$.items[0].qty: -1 is out of range for uint32"));
}

TEST_CASE("an exception thrown by the function reaches the caller with its message",
          "[integration][typed]") {
    TwoWorkers w;
    iii::register_function(*w.callee, iii::RegisterFunction("positive", e2e::must_be_positive));
    REQUIRE(wait_function(w.engine, "positive"));

    CHECK(run_sync(w.ioc, iii::trigger<int>(*w.caller, "positive", 3)) == 3);
    const iii::Error e = call_error(w.ioc, iii::trigger<int>(*w.caller, "positive", -2));
    REQUIRE(e.errc() == iii::Errc::Remote);
    CHECK(e.remote()->code == "invocation_failed");
    CHECK_THAT(e.remote()->message, Catch::Contains("n must be positive, got -2"));
}

TEST_CASE("a result that does not decode into R fails locally with Serde and the path",
          "[integration][typed]") {
    TwoWorkers w;
    iii::register_function(*w.callee, iii::RegisterFunction("greet", e2e::greet));
    REQUIRE(wait_function(w.engine, "greet"));

    const iii::Error e =
        call_error(w.ioc, iii::trigger<e2e::GreetInput>(*w.caller, "greet", e2e::GreetInput{"x"}));
    CHECK(e.errc() == iii::Errc::Serde);
    CHECK_THAT(std::string(e.what()), Catch::Contains("$.name: missing field"));
}

TEST_CASE("a typed fire-and-forget call returns at once and still runs the function",
          "[integration][typed]") {
    TwoWorkers w;
    auto seen = std::make_shared<std::promise<std::string>>();
    auto note = [seen](const e2e::GreetInput& in) { seen->set_value(in.name); };
    iii::register_function(*w.callee, iii::RegisterFunction("note", note));
    REQUIRE(wait_function(w.engine, "note"));

    auto done = seen->get_future();
    run_sync(w.ioc, iii::trigger<void>(*w.caller, "note", e2e::GreetInput{"void call"},
                                       iii::Void{}));
    REQUIRE(done.wait_for(5s) == std::future_status::ready);
    CHECK(done.get() == "void call");
}
