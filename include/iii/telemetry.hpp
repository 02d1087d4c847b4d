#pragma once
// Logger, spans and the trace context (spec section 7). Telemetry is exported to the engine
// as OTLP/JSON over its own WebSocket (see OtelConfig); no OpenTelemetry SDK is involved.
//
// The current context. Every thread has a "current span context". Inside a handler it is the
// invocation's SERVER span, also after a co_await: the handler coroutine runs on an executor
// that re-installs the context every time the coroutine resumes. Client::trigger() made from
// that context carries it as `traceparent`/`baggage`, and Logger records carry its ids.
//
// User spans:
//  - synchronous code: `iii::Span span("work");` makes itself current on this thread until it
//    is destroyed (RAII). Do not keep a Span alive across a co_await.
//  - coroutines: `co_await iii::with_span("work", some_awaitable())` runs the awaitable with the
//    new span current across all of its co_awaits, and ends the span (error status on throw).

#include <iii/export.hpp>
#include <iii/json.hpp>

#include <asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace iii {

namespace detail::telemetry {
struct TraceContext;
class Telemetry;
}  // namespace detail::telemetry

/// A W3C trace context.
struct III_API SpanContext {
    /// 32 lower-case hex digits; empty when there is no active span.
    std::string trace_id{};
    /// 16 lower-case hex digits.
    std::string span_id{};
    /// W3C trace flags; bit 0 is "sampled" (the SDK samples everything).
    std::uint8_t trace_flags = 1;
    /// W3C baggage header value (may be empty).
    std::string baggage{};

    /// True when both ids have their full length (a real span).
    bool valid() const noexcept { return trace_id.size() == 32 && span_id.size() == 16; }
    /// "00-<trace_id>-<span_id>-<flags>", empty when !valid().
    std::string traceparent() const;
    /// Parses a W3C traceparent; nullopt when malformed or all-zero.
    static std::optional<SpanContext> from_traceparent(std::string_view header);
};

/// The current span context on this thread (invalid when there is none).
III_API SpanContext current_span_context();

/// A span around synchronous user code (kind INTERNAL), child of the current context (a new
/// trace when there is none). While alive it is the current context on the constructing thread.
/// Not copyable or movable; destroy it on the thread that created it.
class III_API Span {
public:
    /// Starts the span and makes it current on this thread.
    explicit Span(std::string name);
    ~Span();
    Span(const Span&) = delete;
    Span& operator=(const Span&) = delete;

    /// The span's own context.
    SpanContext context() const;
    /// Adds or replaces an attribute (exported as an OTLP attribute).
    void set_attribute(std::string key, Value value);
    /// Marks the span failed (status code 2) and records an `exception` event.
    void record_error(std::string_view type, std::string_view message);
    /// Ends the span now (the destructor then only restores the previous context). Idempotent.
    void end();

private:
    struct State;
    std::unique_ptr<State> state_;
};

/// Runs `work` inside a new INTERNAL span named `name` that stays current across the work's
/// co_awaits. A throw marks the span failed and is rethrown.
III_API asio::awaitable<Value> with_span(std::string name, asio::awaitable<Value> work);
III_API asio::awaitable<void> with_span(std::string name, asio::awaitable<void> work);

/// The reference's Logger. Records go to the engine as OTLP log records (body, severity,
/// attribute `log.data`, trace and span id of the current context) through the telemetry of
/// the client serving the current invocation, else the most recently started client with
/// telemetry enabled. With telemetry off or logs disabled, lines go to stderr, data included
/// (or to the sink of iii::set_log_sink() when the application set one).
/// Never blocks: when the telemetry queue is full the record is dropped and counted.
class III_API Logger {
public:
    Logger() = default;
    /// A record of severity DEBUG; `data` becomes the attribute `log.data`.
    void debug(std::string_view message, std::optional<Value> data = std::nullopt) const;
    /// A record of severity INFO.
    void info(std::string_view message, std::optional<Value> data = std::nullopt) const;
    /// A record of severity WARN.
    void warn(std::string_view message, std::optional<Value> data = std::nullopt) const;
    /// A record of severity ERROR.
    void error(std::string_view message, std::optional<Value> data = std::nullopt) const;
};

/// Telemetry records (logs, spans) dropped by all clients of this process because a queue was
/// full (channel_capacity, or max_pending_messages while the engine is away).
III_API std::uint64_t telemetry_dropped_count() noexcept;

}  // namespace iii
