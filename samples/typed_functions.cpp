// The reference's typed-function examples: greet with a struct, add with positional arguments,
// an async fetch and a function without parameters, registered from plain C++ functions, called
// with typed triggers, with the JSON Schemas the SDK generated for them.
//
// Uses the engine at $III_URL when set, else starts the embedded test engine.

#include <iii/iii.hpp>
#include <iii/typed.hpp>

#include "sample_engine.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;

// ---- the functions ---------------------------------------------------------------------------

// Sync with a struct argument. JSON in: {"name": "World"}.
struct GreetInput {
    std::string name;
};
III_DESCRIBE(GreetInput, name);

std::string greet(const GreetInput& input) { return "Hello, " + input.name + "!"; }

// Sync with positional arguments. JSON in: [3, 4].
int add(int a, int b) { return a + b; }

// Async. JSON in: "https://example.com".
asio::awaitable<std::string> fetch_data(std::string url) {
    asio::steady_timer latency(co_await asio::this_coro::executor, 10ms);
    co_await latency.async_wait(asio::use_awaitable);
    co_return "fetched " + url;
}

// No parameters: the input is ignored. Returns a struct with an enum, an optional and a list.
enum class Health { Ok, Degraded };
III_DESCRIBE_ENUM(Health, (Ok, "ok"), (Degraded, "degraded"));

struct Status {
    Health health = Health::Ok;
    std::uint64_t uptime_ms = 0;
    std::optional<std::string> note;
    std::vector<std::string> functions;
};
III_DESCRIBE(Status, health, uptime_ms, note, functions);

const auto started = std::chrono::steady_clock::now();

Status status() {
    const auto up = std::chrono::steady_clock::now() - started;
    return {Health::Ok,
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(up).count()),
            std::nullopt,
            {"greet", "add", "fetch", "status"}};
}

// ---- helpers ---------------------------------------------------------------------------------

// Indented JSON, for reading the schemas.
void pretty(const iii::Value& v, std::string& out, int indent = 0) {
    const std::string pad(static_cast<std::size_t>(indent + 2), ' ');
    const std::string close(static_cast<std::size_t>(indent), ' ');
    if (v.is_object() && v.size() > 0) {
        out += "{\n";
        std::size_t i = 0;
        for (const auto& [key, member] : v.as_object()) {
            out += pad + iii::Value(key).dump() + ": ";
            pretty(member, out, indent + 2);
            out += ++i < v.size() ? ",\n" : "\n";
        }
        out += close + "}";
    } else if (v.is_array() && v.size() > 0) {
        out += "[\n";
        std::size_t i = 0;
        for (const auto& item : v.as_array()) {
            out += pad;
            pretty(item, out, indent + 2);
            out += ++i < v.size() ? ",\n" : "\n";
        }
        out += close + "]";
    } else {
        out += v.dump();
    }
}

void print_schemas(const iii::RegisterFunctionMessage& m) {
    std::string text;
    std::printf("\n== %s%s%s\n", m.id.c_str(), m.description ? ": " : "",
                m.description ? m.description->c_str() : "");
    if (m.request_format) {
        pretty(*m.request_format, text);
        std::printf("request_format:\n%s\n", text.c_str());
    } else {
        std::printf("request_format: (none: the function takes no parameters)\n");
    }
    text.clear();
    pretty(*m.response_format, text);
    std::printf("response_format:\n%s\n", text.c_str());
}

// The engine does not acknowledge registrations: retry while a function is still on its way
// there (only matters right after start-up, when caller and worker race).
// (Parameters by value: the coroutine frame keeps its own copies across suspensions.)
template <class R, class In>
asio::awaitable<R> call(iii::Client& caller, std::string id, In input) {
    for (int attempt = 0;; ++attempt) {
        try {
            co_return co_await iii::trigger<R>(caller, id, input);
        } catch (const iii::Error& e) {
            if (e.errc() != iii::Errc::Remote || e.remote()->code != "function_not_found" ||
                attempt == 50)
                throw;
        }
        asio::steady_timer pause(co_await asio::this_coro::executor, 100ms);
        co_await pause.async_wait(asio::use_awaitable);
    }
}

asio::awaitable<void> run_calls(std::shared_ptr<iii::Client> caller,
                                std::shared_ptr<iii::Client> worker) {
    co_await caller->wait_for_state(iii::ConnectionState::Connected, 10s);

    // (Arguments are named variables, not braced temporaries: GCC 12 destroys a braced
    // temporary passed by value to a coroutine twice, and rejects braced iii::Value lists with
    // string literals inside a co_await expression. iii::trigger itself is not a coroutine and
    // encodes its input at once, so it takes temporaries safely.)
    const GreetInput world{"World"};
    const std::string hello = co_await call<std::string>(*caller, "greet", world);
    std::printf("greet({\"name\":\"World\"}) -> \"%s\"\n", hello.c_str());

    const std::tuple<int, int> three_four{3, 4};
    const int sum = co_await call<int>(*caller, "add", three_four);
    std::printf("add(3, 4) -> %d\n", sum);

    const std::string url = "https://example.com";
    const std::string fetched = co_await call<std::string>(*caller, "fetch", url);
    std::printf("fetch(\"https://example.com\") -> \"%s\"\n", fetched.c_str());

    const iii::Value nothing = iii::Value::object();
    const Status s = co_await call<Status>(*caller, "status", nothing);
    std::printf("status() -> %s\n", iii::to_json(s).c_str());

    // The low-level form with iii_fn, called dynamically.
    const std::tuple<int, int> twenty_one{20, 1};
    const iii::Value twice = co_await call<iii::Value>(*caller, "add_low_level", twenty_one);
    std::printf("add_low_level(20, 1) -> %s\n", twice.dump().c_str());

    // A payload of the wrong shape: the callee's decoder names the path.
    const iii::Value wrong = {{"name", 42}};
    try {
        co_await iii::trigger<std::string>(*caller, "greet", wrong);
    } catch (const iii::Error& e) {
        std::printf("greet({\"name\":42}) -> %s error: %s\n",
                    e.remote() ? e.remote()->code.c_str() : "local",
                    e.remote() ? e.remote()->message.c_str() : e.what());
    }

    co_await caller->shutdown_async();
    co_await worker->shutdown_async();
}

int main() {
    const SampleEngine engine;  // $III_URL, else an embedded test engine
    const std::string& url = engine.url();

    // Worker: registers plain C++ functions; schemas are generated from their types.
    auto worker = iii::register_worker(url);
    std::vector<iii::RegisterFunction> functions = {
        iii::RegisterFunction("greet", greet).description("Greet someone by name"),
        iii::RegisterFunction("add", add),
        iii::RegisterFunction("fetch", fetch_data).description("Fetch data from URL"),
        iii::RegisterFunction("status", status)
            .description("Worker status")
            .metadata({{"visibility", "internal"}}),
    };
    for (const auto& f : functions) iii::register_function(*worker, f);
    // The reference's low-level form: (message, iii_fn(f)) fills in the formats.
    iii::register_function(*worker, iii::RegisterFunctionMessage::with_id("add_low_level"),
                           iii::iii_fn(add));

    // Caller: another worker, calling through the engine with typed triggers.
    auto caller = iii::register_worker(url);
    asio::io_context io;
    int status_code = 0;
    asio::co_spawn(io, run_calls(caller, worker), [&](std::exception_ptr e) {
        if (!e) return;
        status_code = 1;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            std::fprintf(stderr, "typed_functions failed: %s\n", ex.what());
        }
    });
    io.run();

    for (const auto& f : functions) print_schemas(f.message());
    return status_code;
}
