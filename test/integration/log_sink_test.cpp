// iii/log.hpp: the SDK's diagnostics go to the application's sink, and then nothing reaches
// stderr; without a sink they go to stderr. Real connections through the test engine.

#include "run.hpp"

#include <iii/iii.hpp>
#include <iii/log.hpp>
#include <iii/testing/engine.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using test_support::fast_options;

namespace {

/// A user logger: collects lines, lets the test wait for one.
struct Collector {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<std::pair<iii::LogLevel, std::string>> lines;

    void add(iii::LogLevel level, std::string_view text) {
        std::lock_guard lock(mutex);
        lines.emplace_back(level, std::string(text));
        changed.notify_all();
    }
    bool wait_for_line(const std::string& needle, std::chrono::milliseconds timeout = 5s) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, timeout, [&] {
            for (const auto& [level, text] : lines)
                if (text.find(needle) != std::string::npos) return true;
            return false;
        });
    }
    std::vector<std::pair<iii::LogLevel, std::string>> snapshot() {
        std::lock_guard lock(mutex);
        return lines;
    }
};

/// Redirects file descriptor 2 into a temporary file for the scope; text() reads it back.
class CapturedStderr {
public:
    CapturedStderr() : file_(std::tmpfile()), saved_(dup(STDERR_FILENO)) {
        REQUIRE(file_);
        std::fflush(stderr);
        REQUIRE(dup2(fileno(file_), STDERR_FILENO) >= 0);
    }
    ~CapturedStderr() {
        restore();
        std::fclose(file_);
    }
    void restore() {
        if (saved_ < 0) return;
        std::fflush(stderr);
        dup2(saved_, STDERR_FILENO);
        close(saved_);
        saved_ = -1;
    }
    std::string text() {
        restore();
        std::string out;
        std::rewind(file_);
        char buffer[4096];
        while (std::size_t n = std::fread(buffer, 1, sizeof buffer, file_)) out.append(buffer, n);
        return out;
    }

private:
    std::FILE* file_;
    int saved_;
};

/// Restores the process-wide defaults whatever the test does.
struct SinkReset {
    iii::LogLevel level = iii::log_level();
    ~SinkReset() {
        iii::set_log_sink({});
        iii::set_log_level(level);
    }
};

}  // namespace

TEST_CASE("SDK diagnostics reach the application's sink and nothing reaches stderr", "[integration][log]") {
    SinkReset reset;
    Collector collector;
    std::string stderr_text;
    {
        CapturedStderr captured;
        iii::set_log_level(iii::LogLevel::Info);
        iii::set_log_sink([&](iii::LogLevel level, std::string_view text) { collector.add(level, text); });

        iii::testing::Engine engine;
        auto client = iii::register_worker(engine.url(), fast_options());
        // Info: the connection lifecycle.
        REQUIRE(collector.wait_for_line("connected to " + engine.url()));
        REQUIRE(engine.wait_for([&] { return engine.worker_ids().size() == 1; }));
        // Warn: a frame the client cannot decode is logged and skipped.
        engine.send_to(engine.worker_ids().front(), "{\"type\":\"invokefunction\",\"function_id\":7}");
        REQUIRE(collector.wait_for_line("malformed frame from the engine skipped"));
        client->shutdown();
        client.reset();
        stderr_text = captured.text();
    }
    CHECK(stderr_text.empty());
    auto lines = collector.snapshot();
    bool warned = false;
    for (const auto& [level, text] : lines) {
        CHECK(text.find('\n') == std::string::npos);
        if (text.find("malformed frame") != std::string::npos) warned = level == iii::LogLevel::Warn;
    }
    CHECK(warned);
}

TEST_CASE("without a sink, diagnostics go to stderr at the threshold", "[integration][log]") {
    SinkReset reset;
    CapturedStderr captured;
    iii::set_log_level(iii::LogLevel::Warn);
    iii::log_message(iii::LogLevel::Warn, "first");
    iii::log_message(iii::LogLevel::Info, "not shown: above the threshold");
    iii::set_log_level(iii::LogLevel::Debug);
    iii::log_message(iii::LogLevel::Debug, "second");
    CHECK(captured.text() == "[iii warn] first\n[iii debug] second\n");
}

TEST_CASE("lines above the threshold are not given to the sink", "[integration][log]") {
    SinkReset reset;
    Collector collector;
    iii::set_log_sink([&](iii::LogLevel level, std::string_view text) { collector.add(level, text); });
    iii::set_log_level(iii::LogLevel::Error);
    iii::log_message(iii::LogLevel::Warn, "dropped");
    iii::log_message(iii::LogLevel::Error, "kept");
    auto lines = collector.snapshot();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].first == iii::LogLevel::Error);
    CHECK(lines[0].second == "kept");
    CHECK(std::string(iii::to_string(iii::LogLevel::Debug)) == "debug");
}

TEST_CASE("a sink that throws loses the line but not the SDK", "[integration][log]") {
    SinkReset reset;
    iii::set_log_sink([](iii::LogLevel, std::string_view) { throw std::runtime_error("logger down"); });
    CHECK_NOTHROW(iii::log_message(iii::LogLevel::Error, "lost"));
}

TEST_CASE("iii::Logger's local lines go to the application's sink when it set one", "[integration][log]") {
    SinkReset reset;
    Collector collector;
    std::string stderr_text;
    {
        CapturedStderr captured;
        iii::set_log_level(iii::LogLevel::Error);  // the threshold does not filter Logger records
        iii::set_log_sink([&](iii::LogLevel level, std::string_view text) { collector.add(level, text); });
        // No client, so no telemetry: Logger falls back to its local output.
        iii::Logger().info("order accepted", iii::Value::object({{"id", 7}}));
        stderr_text = captured.text();
    }
    CHECK(stderr_text.empty());
    auto lines = collector.snapshot();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].first == iii::LogLevel::Info);
    CHECK(lines[0].second == "order accepted {\"id\":7}");
}

TEST_CASE("the application's sink gets the redacted line: no URL token reaches it", "[integration][log][redact]") {
    SinkReset reset;
    Collector collector;
    const std::string token = "sink-secret-4711";
    iii::set_log_level(iii::LogLevel::Info);
    iii::set_log_sink([&](iii::LogLevel level, std::string_view text) { collector.add(level, text); });
    {
        iii::testing::Engine engine;
        auto client = iii::register_worker(engine.url() + "/?token=" + token, fast_options());
        REQUIRE(collector.wait_for_line("connected to " + engine.url()));
        client->shutdown();
        client.reset();
    }
    bool saw_redacted = false;
    for (const auto& [level, text] : collector.snapshot()) {
        INFO(text);
        CHECK(text.find(token) == std::string::npos);
        if (text.find("token=***") != std::string::npos) saw_redacted = true;
    }
    CHECK(saw_redacted);
}
