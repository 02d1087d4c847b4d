// Routes the SDK's own diagnostics (connected, connection closed, reconnecting, frames it
// skipped, ...) into the application's logger instead of stderr. Uses the engine at $III_URL
// when set, else starts the embedded test engine. Exits 0 once the logger has received the
// client's "connected to" line.

#include <iii/iii.hpp>

#include "sample_engine.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <mutex>
#include <string>
#include <string_view>

using namespace std::chrono_literals;

// Stands in for the application's logger (spdlog, glog, syslog, ...): thread-safe, one line
// per record, its own format.
class AppLogger {
public:
    void write(std::string_view severity, std::string_view component, std::string_view text) {
        std::lock_guard lock(mutex_);
        if (text.find("connected to") != std::string_view::npos) saw_connect_ = true;
        std::printf("app-log %-5.*s [%.*s] %.*s\n", static_cast<int>(severity.size()), severity.data(),
                    static_cast<int>(component.size()), component.data(), static_cast<int>(text.size()),
                    text.data());
        std::fflush(stdout);
    }
    bool saw_connect() {
        std::lock_guard lock(mutex_);
        return saw_connect_;
    }

private:
    std::mutex mutex_;
    bool saw_connect_ = false;
};

int main() {
    AppLogger logger;

    // Every SDK diagnostic now goes to `logger`, none to stderr. Info shows the connection's
    // lifecycle; the default threshold (Warn, or $III_LOG) shows only problems.
    iii::set_log_level(iii::LogLevel::Info);
    iii::set_log_sink([&logger](iii::LogLevel level, std::string_view text) {
        logger.write(iii::to_string(level), "iii", text);
    });

    const SampleEngine engine;  // $III_URL, else an embedded test engine
    auto client = iii::register_worker(engine.url());
    asio::io_context io;
    bool connected = false;
    asio::co_spawn(io, client->wait_for_state(iii::ConnectionState::Connected, 10s),
                   [&](std::exception_ptr e, bool ok) { connected = !e && ok; });
    io.run();
    client->shutdown();
    client.reset();  // joins the client's io thread: its last lines are logged by now

    iii::set_log_sink({});  // back to stderr; `logger` is about to go away
    const bool ok = connected && logger.saw_connect();
    std::printf("log_sink: %s\n", ok ? "the SDK's lines reached the application's logger" : "FAILED");
    return ok ? 0 : 1;
}
