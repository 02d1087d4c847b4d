#include "backoff.hpp"

#include <catch2/catch.hpp>

using iii::detail::Backoff;
using namespace std::chrono_literals;

TEST_CASE("back-off grows by the multiplier from the initial delay up to the cap", "[unit][backoff]") {
    iii::ReconnectionConfig config;  // 1000 ms, x2, cap 30000
    Backoff backoff(config, 1);
    CHECK(backoff.base_delay(1) == 1000.0);
    CHECK(backoff.base_delay(2) == 2000.0);
    CHECK(backoff.base_delay(5) == 16000.0);
    CHECK(backoff.base_delay(6) == 30000.0);
    CHECK(backoff.base_delay(1000) == 30000.0);
}

TEST_CASE("jitter stays within the factor and never exceeds the cap", "[unit][backoff]") {
    iii::ReconnectionConfig config;
    config.jitter_factor = 0.3;
    Backoff backoff(config, 42);
    for (int i = 1; i <= 40; ++i) {
        const auto base = backoff.base_delay(static_cast<std::uint64_t>(i));
        const auto delay = backoff.next_after_failure();
        CHECK(delay.count() >= static_cast<std::int64_t>(base * 0.7) - 1);
        CHECK(delay.count() <= static_cast<std::int64_t>(std::min(base * 1.3, 30000.0)));
    }
}

TEST_CASE("without jitter the delays are exact", "[unit][backoff]") {
    iii::ReconnectionConfig config;
    config.jitter_factor = 0;
    config.initial_delay_ms = 100;
    config.max_delay_ms = 500;
    Backoff backoff(config, 7);
    CHECK(backoff.next_after_failure() == 100ms);
    CHECK(backoff.next_after_failure() == 200ms);
    CHECK(backoff.next_after_failure() == 400ms);
    CHECK(backoff.next_after_failure() == 500ms);
    CHECK(backoff.after_drop() == 100ms);
    backoff.reset();
    CHECK(backoff.next_after_failure() == 100ms);
}

TEST_CASE("max_retries consecutive failures exhaust the back-off; a success resets it", "[unit][backoff]") {
    iii::ReconnectionConfig config;
    config.max_retries = 2;
    Backoff backoff(config, 3);
    CHECK_FALSE(backoff.exhausted());
    backoff.next_after_failure();
    CHECK_FALSE(backoff.exhausted());
    backoff.next_after_failure();
    CHECK(backoff.exhausted());
    backoff.reset();
    CHECK_FALSE(backoff.exhausted());
}

TEST_CASE("a zero initial delay is clamped to one millisecond", "[unit][backoff]") {
    iii::ReconnectionConfig config;
    config.initial_delay_ms = 0;
    config.jitter_factor = 0;
    CHECK(config.effective_initial_delay_ms() == 1);
    Backoff backoff(config, 9);
    CHECK(backoff.next_after_failure() == 1ms);
}
