#include "iii/log.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <utility>

namespace iii {

namespace {

LogLevel level_from_env() noexcept {
    const char* env = std::getenv("III_LOG");
    if (!env) return LogLevel::Warn;
    if (std::strcmp(env, "error") == 0) return LogLevel::Error;
    if (std::strcmp(env, "info") == 0) return LogLevel::Info;
    if (std::strcmp(env, "debug") == 0) return LogLevel::Debug;
    return LogLevel::Warn;
}

struct SinkState {
    std::atomic<int> threshold{static_cast<int>(level_from_env())};
    std::mutex mutex;
    // Copied out under the mutex and called outside it: a slow sink does not serialize the
    // threads that log, and set_log_sink() never waits for a running call.
    std::shared_ptr<const LogSink> sink;
};

SinkState& state() {
    static SinkState s;  // function-local: safe to log from other static initializers
    return s;
}

}  // namespace

void set_log_sink(LogSink sink) {
    auto next = sink ? std::make_shared<const LogSink>(std::move(sink)) : nullptr;
    auto& s = state();
    std::lock_guard lock(s.mutex);
    s.sink = std::move(next);
}

void set_log_level(LogLevel level) noexcept {
    state().threshold.store(static_cast<int>(level), std::memory_order_relaxed);
}

LogLevel log_level() noexcept {
    return static_cast<LogLevel>(state().threshold.load(std::memory_order_relaxed));
}

const char* to_string(LogLevel level) noexcept {
    switch (level) {
        case LogLevel::Error: return "error";
        case LogLevel::Warn: return "warn";
        case LogLevel::Info: return "info";
        case LogLevel::Debug: return "debug";
    }
    return "unknown";
}

void log_message(LogLevel level, std::string_view message) noexcept {
    if (level > log_level()) return;
    auto& s = state();
    std::shared_ptr<const LogSink> sink;
    try {
        std::lock_guard lock(s.mutex);
        sink = s.sink;
    } catch (...) {
        return;
    }
    if (sink) {
        try {
            (*sink)(level, message);
        } catch (...) {
        }
        return;
    }
    // The default sink: one write per line, so lines of different threads do not interleave.
    std::fprintf(stderr, "[iii %s] %.*s\n", to_string(level), static_cast<int>(message.size()),
                 message.data());
}

namespace detail {

// For iii::Logger's local fallback (telemetry.cpp): the application's own records, which go to
// the application's sink when it set one, at their level and regardless of the threshold
// (they were never filtered by III_LOG). Returns false when no sink is set.
bool log_to_user_sink(LogLevel level, std::string_view message) noexcept {
    auto& s = state();
    std::shared_ptr<const LogSink> sink;
    try {
        std::lock_guard lock(s.mutex);
        sink = s.sink;
    } catch (...) {
        return false;
    }
    if (!sink) return false;
    try {
        (*sink)(level, message);
    } catch (...) {
    }
    return true;
}

}  // namespace detail

}  // namespace iii
