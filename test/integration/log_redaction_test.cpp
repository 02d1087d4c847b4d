// Every scenario below runs at debug level with stderr captured; no URL token, handshake header
// value or channel key may appear in what the SDK (or the test engine) logged.

#include "run.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

using namespace std::chrono_literals;
using test_support::fast_options;
using test_support::run_sync;
using test_support::wait_function;
using test_support::wait_state;

namespace {

// Before anything logs: the level is read once, at the first log line.
const bool debug_level = [] {
    setenv("III_LOG", "debug", 1);
    return true;
}();

constexpr const char* url_token = "URLTOKEN7f3a";
constexpr const char* header_value = "HEADERVALUE9c1d";

/// Sends fd 2 to a file while alive; text() reads what was written.
class CaptureStderr {
public:
    CaptureStderr() {
        std::fflush(stderr);
        saved_ = dup(2);
        std::FILE* f = std::tmpfile();
        REQUIRE(f);
        file_ = f;
        dup2(fileno(file_), 2);
    }
    ~CaptureStderr() { restore(); }
    std::string text() {
        restore();
        std::rewind(file_);
        std::string out;
        char buffer[4096];
        std::size_t n;
        while ((n = std::fread(buffer, 1, sizeof buffer, file_)) > 0) out.append(buffer, n);
        return out;
    }

private:
    void restore() {
        if (saved_ < 0) return;
        std::fflush(stderr);
        dup2(saved_, 2);
        close(saved_);
        saved_ = -1;
    }
    int saved_ = -1;
    std::FILE* file_ = nullptr;
};

}  // namespace

TEST_CASE("no token, header value or channel key reaches the log at debug level", "[integration][redact]") {
    REQUIRE(debug_level);
    CaptureStderr capture;
    std::string channel_key;
    {
        iii::testing::Engine engine;
        asio::io_context ioc;
        auto options = fast_options();
        options.headers = {{"Authorization", std::string("Bearer ") + header_value}, {"X-Api-Key", header_value}};
        const std::string url = engine.url() + "/?token=" + url_token + "&tenant=" + url_token;
        auto worker = iii::register_worker(url, options);
        worker->register_function(iii::RegisterFunctionMessage::with_id("echo"), [](iii::Value v) { return v; });
        REQUIRE(wait_function(engine, "echo"));
        iii::TriggerRequest call("echo", iii::Value("hi"));
        CHECK(run_sync(ioc, worker->trigger(std::move(call))) == iii::Value("hi"));

        // A reconnect logs the URL again ("reconnecting to", "connected to").
        engine.drop(test_support::worker_id_of(*worker));
        REQUIRE(wait_state(*worker, iii::ConnectionState::Reconnecting));
        REQUIRE(wait_state(*worker, iii::ConnectionState::Connected));

        {  // A channel: its URL carries the access key. (Channel ends go before their client.)
            auto channel = run_sync(ioc, iii::create_channel(*worker));
            channel_key = channel.writer_ref.access_key;
            std::string text = "payload";
            auto write_and_close = [&]() -> asio::awaitable<void> {
                co_await channel.writer.write(std::string_view(text));
                co_await channel.writer.close();
            };
            run_sync(ioc, write_and_close());
            iii::ChannelReader reader(*worker, channel.reader_ref);
            CHECK(run_sync(ioc, reader.read_all()).size() == text.size());

            // A frame from the engine that the SDK cannot use, carrying the channel ref.
            iii::Value frame = iii::Value::object({{"type", "invocationresult"}, {"ref", channel.reader_ref.to_value()}});
            engine.send_to(test_support::worker_id_of(*worker), frame.dump());
            iii::TriggerRequest after("echo", iii::Value(1));
            CHECK(run_sync(ioc, worker->trigger(std::move(after))) == iii::Value(1));
        }
        worker.reset();
    }
    // A worker that never reaches an engine logs its URL on every failed attempt.
    {
        auto options = fast_options();
        options.reconnection.max_retries = 2;
        auto lost = iii::register_worker(std::string("ws://127.0.0.1:1/?token=") + url_token, options);
        CHECK(wait_state(*lost, iii::ConnectionState::Failed, 10s));
    }
    const std::string log = capture.text();
    INFO(log);
    REQUIRE(!channel_key.empty());
    // The scenarios did log (at debug level), and the URLs in it are there, redacted.
    CHECK(log.find("[iii info] connected to ws://127.0.0.1:") != std::string::npos);
    CHECK(log.find("token=***") != std::string::npos);
    CHECK(log.find(url_token) == std::string::npos);
    CHECK(log.find(header_value) == std::string::npos);
    CHECK(log.find(channel_key) == std::string::npos);
}
