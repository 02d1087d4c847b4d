// The OTEL_* environment and traceparent parsing (lib/otel_config.*), without sockets.

#include "otel_config.hpp"
#include "telemetry_internal.hpp"

#include <catch2/catch.hpp>

#include <cctype>
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

TEST_CASE("traceparent ids: every byte of every id is checked, upper case is lowered", "[unit][telemetry][config]") {
    const std::string good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    auto upper = good;
    for (std::size_t i = 3; i < 52; ++i) upper[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(upper[i])));
    auto ctx = tel::parse_traceparent(upper);
    REQUIRE(ctx);
    CHECK(ctx->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(ctx->span_id == "00f067aa0ba902b7");
    // Bytes next to the hex digits' ranges, bytes that become digits with the case bit set
    // (0x10, 0x41 - 0x20 ...) or with the top bit cleared (0xb0), at every position of both ids.
    for (const char bad : {'/', ':', '@', 'G', '`', 'g', '\x10', '\x19', '\xb0', '\xc1', '\0', ' '}) {
        for (std::size_t i = 3; i < 52; ++i) {
            if (i == 35) continue;  // the dash between the ids
            auto text = good;
            text[i] = bad;
            INFO("byte " << static_cast<int>(static_cast<unsigned char>(bad)) << " at " << i);
            CHECK_FALSE(tel::parse_traceparent(text));
        }
    }
    CHECK_FALSE(tel::parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
    CHECK_FALSE(tel::parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
    CHECK(tel::parse_traceparent("00-00000000000000000000000000000001-1000000000000000-01"));
}
