// Runs every C++ snippet of README.md and of the public headers (extracted at build time by
// extract.py) as a coroutine against the test engine. This executable is always built with
// AddressSanitizer: the g++ 12 double destruction of temporaries inside co_await is a heap
// error that only shows under it.

#include "snippet_env.hpp"

#include "run.hpp"

#include <catch2/catch.hpp>

#include <set>

using namespace std::chrono_literals;

namespace {
std::string current_url;
}

std::string snippets::engine_url() { return current_url; }

TEST_CASE("every documented snippet compiles and runs inside a coroutine", "[integration][snippets]") {
    const auto snippets = snippets::all();
    std::set<std::string> files;
    for (const auto& s : snippets) files.insert(std::string(s.where).substr(0, std::string(s.where).find(':')));
    // The extraction found something in the README and in the headers that document by example.
    for (const char* file : {"README.md", "typed.hpp", "describe.hpp", "json.hpp", "channel.hpp"}) {
        INFO("file: " << file);
        CHECK(files.count(file) == 1);
    }
    for (const auto& snippet : snippets) {
        DYNAMIC_SECTION(snippet.where) {
            iii::testing::Engine engine;
            current_url = engine.url();
            // Functions the snippet calls without registering them: an echo stands in.
            auto provider = iii::register_worker(engine.url(), test_support::fast_options());
            for (const auto& id : snippet.calls)
                provider->register_function(iii::RegisterFunctionMessage::with_id(id), [](iii::Value v) { return v; });
            for (const auto& id : snippet.calls) REQUIRE(test_support::wait_function(engine, id));
            snippets::Env env{iii::register_worker(engine.url(), test_support::fast_options())};
            asio::io_context ioc;
            test_support::run_sync(ioc, snippet.body(env), 30s);
            // A snippet may leave a handler running (a fire-and-forget call): let it finish
            // before the client goes. (Destroying a client with a coroutine handler still in
            // flight is a use-after-free in the connection's teardown today, found here.)
            test_support::run_sync(ioc, env.client->shutdown_async(), 30s);
        }
    }
}
