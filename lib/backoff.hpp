#pragma once
// Reconnect back-off from ReconnectionConfig: pure arithmetic, unit-tested without sockets.

#include "iii/types.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>

namespace iii::detail {

class Backoff {
public:
    explicit Backoff(ReconnectionConfig config, std::uint64_t seed = std::random_device{}())
        : config_(config), rng_(seed) {}

    /// Records a failed attempt and returns the delay before the next one:
    /// min(initial * multiplier^(failures-1), max), jittered by +/- jitter_factor, capped at max.
    std::chrono::milliseconds next_after_failure() {
        ++failures_;
        return jittered(base_delay(failures_));
    }
    /// Delay before reconnecting a connection that had succeeded: initial, jittered.
    std::chrono::milliseconds after_drop() { return jittered(base_delay(1)); }
    /// A connect succeeded.
    void reset() noexcept { failures_ = 0; }
    std::uint64_t failures() const noexcept { return failures_; }
    /// max_retries consecutive failures happened: give up (state Failed).
    bool exhausted() const noexcept {
        return config_.max_retries && failures_ >= *config_.max_retries;
    }

    /// The unjittered delay after `failures` consecutive failures (>= 1).
    double base_delay(std::uint64_t failures) const noexcept {
        const double initial = static_cast<double>(config_.effective_initial_delay_ms());
        const double cap = static_cast<double>(std::max(config_.max_delay_ms, config_.effective_initial_delay_ms()));
        const double exponent = static_cast<double>(std::min<std::uint64_t>(failures - 1, 63));
        return std::min(initial * std::pow(std::max(config_.backoff_multiplier, 1.0), exponent), cap);
    }

private:
    std::chrono::milliseconds jittered(double base) {
        const double cap = static_cast<double>(std::max(config_.max_delay_ms, config_.effective_initial_delay_ms()));
        std::uniform_real_distribution<double> unit(-1.0, 1.0);
        const double jitter = base * std::clamp(config_.jitter_factor, 0.0, 1.0) * unit(rng_);
        const double delay = std::clamp(base + jitter, 1.0, cap);
        return std::chrono::milliseconds(static_cast<std::int64_t>(delay));
    }

    ReconnectionConfig config_;
    std::mt19937_64 rng_;
    std::uint64_t failures_ = 0;
};

}  // namespace iii::detail
