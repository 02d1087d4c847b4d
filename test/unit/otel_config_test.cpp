// The OTEL_* environment and traceparent parsing (lib/otel_config.*), without sockets.

#include "otel_config.hpp"
#include "telemetry_internal.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <map>
#include <string>

namespace tel = iii::detail::telemetry;

TEST_CASE("environment numbers are plain decimal digits that fit 64 bits", "[unit][telemetry][config]") {
    CHECK(tel::parse_env_uint("0") == 0u);
    CHECK(tel::parse_env_uint("250") == 250u);
    CHECK(tel::parse_env_uint("18446744073709551615") == UINT64_MAX);
    for (const char* bad : {"", "-1", " 5", "5 ", "+5", "5ms", "0x10", "18446744073709551616",
                            "99999999999999999999999"}) {
        INFO("value: '" << bad << "'");
        CHECK_FALSE(tel::parse_env_uint(bad));
    }
}

TEST_CASE("a negative OTEL_LOGS_BATCH_SIZE is ignored, not wrapped to 2^64-1", "[unit][telemetry][config]") {
    ::setenv("OTEL_LOGS_BATCH_SIZE", "-1", 1);
    ::setenv("OTEL_LOGS_FLUSH_INTERVAL_MS", " 40", 1);
    auto s = tel::Telemetry::resolve("ws://x:1", iii::OtelConfig{});
    ::unsetenv("OTEL_LOGS_BATCH_SIZE");
    ::unsetenv("OTEL_LOGS_FLUSH_INTERVAL_MS");
    CHECK(s.logs_batch_size == 1);                                 // the default
    CHECK(s.logs_flush_interval == std::chrono::milliseconds(100));  // the default
}

TEST_CASE("read_env_config reads through the lookup it is given", "[unit][telemetry][config]") {
    std::map<std::string, std::string> env = {{"OTEL_ENABLED", "1"},
                                              {"OTEL_SERVICE_NAME", "svc"},
                                              {"OTEL_LOGS_FLUSH_INTERVAL_MS", "250"},
                                              {"OTEL_LOGS_BATCH_SIZE", "x"}};
    auto lookup = [&](const char* name) -> const char* {
        auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
    };
    auto c = tel::read_env_config(lookup);
    CHECK(c.enabled == true);
    CHECK(c.service_name == "svc");
    CHECK(c.logs_flush_interval_ms == 250u);
    CHECK_FALSE(c.logs_batch_size);
    env = {{"OTEL_ENABLED", "yes"}};
    c = tel::read_env_config(lookup);
    CHECK(c.enabled == false);  // anything but "true" or "1" turns it off, as before
    CHECK_FALSE(c.service_name);
}

TEST_CASE("traceparent: future versions may append after a dash", "[unit][telemetry][config]") {
    const std::string base = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
    auto ctx = tel::parse_traceparent(base + "-extra");
    REQUIRE(ctx);
    CHECK(ctx->trace_flags == 3);
    CHECK_FALSE(tel::parse_traceparent(base + "x"));
    CHECK_FALSE(tel::parse_traceparent(base.substr(0, 54)));
}
