#pragma once
// Telemetry internals: the thread-local trace context, the executor that carries it across
// co_await, and the exporter (its own io thread and WebSocket to the engine, spec 7.1).

#include <cstddef>  // first: see transport/ws_transport.hpp

#include "iii/error.hpp"
#include "iii/json.hpp"
#include "iii/options.hpp"
#include "iii/telemetry.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/execution.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace iii::detail::telemetry {

/// A trace id (N = 32) or span id (N = 16): N lower-case hex digits held inline, or none. As a
/// std::string either would allocate (beyond the 15-character small-string buffer), and every
/// span has two or three.
template <std::size_t N>
class HexId {
public:
    HexId() = default;
    /// `hex` when it has N characters (the caller has checked the digits), otherwise none.
    HexId& operator=(std::string_view hex) noexcept {
        set_ = hex.size() == N;
        if (set_) std::memcpy(digits_, hex.data(), N);
        return *this;
    }
    /// Where to write the N digits of a new id, which is then set.
    char* fill() noexcept {
        set_ = true;
        return digits_;
    }
    /// N, or 0 when there is none.
    std::size_t size() const noexcept { return set_ ? N : 0; }
    bool empty() const noexcept { return !set_; }
    /// The digits; empty when there is none.
    std::string_view view() const noexcept { return set_ ? std::string_view(digits_, N) : std::string_view(); }
    bool operator==(std::string_view other) const noexcept { return view() == other; }

private:
    char digits_[N]{};
    bool set_ = false;
};
using TraceId = HexId<32>;
using SpanId = HexId<16>;

/// One span's identity, the baggage, and the exporter its records go to.
struct TraceContext {
    TraceId trace_id;
    SpanId span_id;
    std::uint8_t flags = 1;
    std::string baggage;
    std::weak_ptr<Telemetry> sink;
};
using ContextPtr = std::shared_ptr<const TraceContext>;

/// This thread's current context (may be null).
ContextPtr& current_context() noexcept;

/// Installs `context` as current for its lifetime, then restores the previous one.
class ContextScope {
public:
    explicit ContextScope(ContextPtr context) : saved_(std::exchange(current_context(), std::move(context))) {}
    ~ContextScope() { current_context() = std::move(saved_); }
    ContextScope(const ContextScope&) = delete;
    ContextScope& operator=(const ContextScope&) = delete;

private:
    ContextPtr saved_;
};

/// An executor adapter that installs a context around every function it runs, so that a
/// coroutine spawned on it sees the context after each resumption, on whatever pool thread.
template <class Inner>
class ContextExecutor {
public:
    ContextExecutor(Inner inner, ContextPtr context) : inner_(std::move(inner)), context_(std::move(context)) {}

    template <class Property>
    auto query(const Property& p) const -> decltype(asio::query(std::declval<const Inner&>(), p)) {
        return asio::query(inner_, p);
    }
    template <class Property>
    auto require(const Property& p) const
        -> ContextExecutor<std::decay_t<decltype(asio::require(std::declval<const Inner&>(), p))>> {
        return {asio::require(inner_, p), context_};
    }
    template <class Property>
    auto prefer(const Property& p) const
        -> ContextExecutor<std::decay_t<decltype(asio::prefer(std::declval<const Inner&>(), p))>> {
        return {asio::prefer(inner_, p), context_};
    }
    template <class F>
    void execute(F&& f) const {
        asio::execution::execute(inner_, [context = context_, f = std::forward<F>(f)]() mutable {
            ContextScope scope(std::move(context));  // (runs once: the copy is not needed after)
            std::move(f)();
        });
    }
    friend bool operator==(const ContextExecutor& a, const ContextExecutor& b) noexcept {
        return a.inner_ == b.inner_ && a.context_ == b.context_;
    }
    friend bool operator!=(const ContextExecutor& a, const ContextExecutor& b) noexcept { return !(a == b); }

private:
    template <class>
    friend class ContextExecutor;
    Inner inner_;
    ContextPtr context_;
};

/// Sets the current context to `context` when destroyed (end of a coroutine scope, also on throw).
struct RestoreOnExit {
    ContextPtr context;
    ~RestoreOnExit() { current_context() = std::move(context); }
};

/// `executor` with `context` installed around every function it runs. Over the io_context's
/// own executor type when `executor` is a plain io_context executor: that adapter fits in
/// any_io_executor's small buffer, so copying it (Asio does, on every resumption) allocates
/// nothing.
inline asio::any_io_executor traced_executor(const asio::any_io_executor& executor, ContextPtr context) {
    if (const auto* io = executor.target<asio::io_context::executor_type>())
        return asio::any_io_executor(ContextExecutor<asio::io_context::executor_type>(*io, std::move(context)));
    return asio::any_io_executor(ContextExecutor<asio::any_io_executor>(executor, std::move(context)));
}

/// Runs `work` with `context` current across all of its co_awaits (plain co_await when null).
template <class T>
asio::awaitable<T> with_context(ContextPtr context, asio::awaitable<T> work) {
    if (!context) co_return co_await std::move(work);
    ContextPtr saved = current_context();
    auto outer = co_await asio::this_coro::executor;
    asio::any_io_executor traced = traced_executor(outer, std::move(context));
    // The completion may resume us inline inside the traced executor's scope: reinstall ours.
    RestoreOnExit restore{saved};
    co_return co_await asio::co_spawn(traced, std::move(work), asio::use_awaitable);
}
inline asio::awaitable<void> with_context(ContextPtr context, asio::awaitable<void> work) {
    if (!context) {
        co_await std::move(work);
        co_return;
    }
    ContextPtr saved = current_context();
    auto outer = co_await asio::this_coro::executor;
    asio::any_io_executor traced = traced_executor(outer, std::move(context));
    RestoreOnExit restore{saved};
    co_await asio::co_spawn(traced, std::move(work), asio::use_awaitable);
}

/// "00-<trace_id>-<span_id>-<flags>" (W3C traceparent); the ids must have 32 and 16 digits.
std::string traceparent_text(std::string_view trace_id, std::string_view span_id, std::uint8_t flags);
/// Writes 2 * `bytes` random lower-case hex digits, not all zero, at `out`.
void random_hex(char* out, std::size_t bytes);
/// A traceparent's ids and flags; false (and the outputs unspecified) when it is malformed or
/// an id is all zero. parse_traceparent() without allocating.
bool parse_traceparent_ids(std::string_view header, TraceId& trace_id, SpanId& span_id,
                           std::uint8_t& flags) noexcept;
std::uint64_t now_unix_nano() noexcept;
/// OTLP AnyValue of a JSON value (spec 7.4).
Value to_any_value(const Value& value);

/// A finished span, recorded compactly: no JSON DOM per span. The exporter writes a batch of
/// them straight into one OTLP/JSON frame ("span" objects of spec 7.2), on its own strand.
struct SpanRecord {
    /// An `exception` event: attributes exception.type, exception.message and an empty
    /// exception.stacktrace.
    struct Exception {
        std::string type;
        std::string message;
        std::uint64_t time_ns = 0;
    };
    /// The span's ids (copied: the record does not keep its context alive, so that a context
    /// is freed, and its memory reused, as soon as its span ends). Empty when none.
    TraceId trace_id;
    SpanId span_id;
    SpanId parent_span_id;
    /// Written before `name` in the span's name: a literal ("call ", "trigger "), so that the
    /// SDK's spans need not build their names.
    std::string_view name_prefix;
    std::string name;
    int kind = 1;  ///< OTLP SpanKind: 1 INTERNAL, 2 SERVER, 3 CLIENT
    std::uint64_t start_ns = 0;
    std::uint64_t end_ns = 0;
    int status_code = 0;  ///< 0 UNSET, 2 ERROR
    std::string status_message;
    /// Whether the span has the `faas.invoked_name` string attribute, written first: `name`,
    /// without the prefix (the SDK's SERVER and CLIENT spans).
    bool invoked_name = false;
    /// Further OTLP attributes (an array of key/value objects), or null: Span::set_attribute.
    Value attributes;
    std::vector<Exception> exceptions;
};

/// One span record as the OTLP/JSON span object the exporter writes into its frames (what
/// tests compare). Throws Error(Errc::Serde) when a string in it is not UTF-8.
std::string encode_span(const SpanRecord& span);

/// The SERVER span of one served invocation (see Telemetry::begin_server_span).
struct ServerSpan {
    ContextPtr context;  // null when telemetry is off
    SpanId parent_span_id;
    std::string function_id;
    std::uint64_t start_ns = 0;
    std::chrono::steady_clock::time_point started{};
};

/// The CLIENT span of one outbound call (see Telemetry::begin_client_span). Default-constructed
/// (no allocation) when telemetry is off.
struct ClientSpan {
    ContextPtr context;  // null when telemetry is off
    SpanId parent_span_id;
    std::string function_id;
    std::uint64_t start_ns = 0;
};

/// The exporter of one client. Thread-safe; never blocks a producer.
class Telemetry : public std::enable_shared_from_this<Telemetry> {
public:
    /// Null when telemetry is disabled (OtelConfig::enabled, else $OTEL_ENABLED).
    /// The exporter runs on `io` (the client's io_context), on a strand of its own.
    /// `headers` (InitOptions::headers) go on the telemetry socket's handshake too, `tls` (the
    /// worker's InitOptions::tls) applies to a `wss://` telemetry URL.
    static std::shared_ptr<Telemetry> create(asio::io_context& io, const std::string& worker_url,
                                             const OtelConfig& config,
                                             const std::map<std::string, std::string>& headers = {},
                                             const TlsOptions& tls = {});
    /// Whether telemetry is on for `config` (spec 7.1 "Enabling").
    static bool enabled(const OtelConfig& config);

    struct Settings {
        std::string url;
        /// Where to go when `url` (the derived `<engine>/otel`) answers HTTP 404, as a 0.10
        /// engine does: the engine URL itself. Empty when the URL was configured explicitly.
        std::string fallback_url;
        /// InitOptions::headers: sent on the telemetry socket too (RBAC gates `/otel`).
        std::map<std::string, std::string> headers;
        std::string service_name, service_version, service_namespace, service_instance_id;
        bool metrics_enabled = true;
        std::chrono::milliseconds metrics_interval{60000};
        ReconnectionConfig reconnection{};
        std::chrono::milliseconds shutdown_timeout{10000};
        std::size_t channel_capacity = 10000;
        bool logs_enabled = true;
        std::chrono::milliseconds logs_flush_interval{100};
        std::size_t logs_batch_size = 1;
        TlsOptions tls{};  // the worker's, for a wss:// url
    };
    static Settings resolve(const std::string& worker_url, const OtelConfig& config,
                            const std::map<std::string, std::string>& headers = {});
    /// `<url>/otel`: the path appended (no doubled slash), the scheme and query kept.
    static std::string otel_url(const std::string& worker_url);

    Telemetry(Settings settings, asio::io_context& io);
    ~Telemetry();
    Telemetry(const Telemetry&) = delete;
    Telemetry& operator=(const Telemetry&) = delete;
    /// Arms the metrics timer and registers as the process default for Logger.
    void start();

    const Settings& settings() const noexcept { return settings_; }

    // ---- hooks of the connection ------------------------------------------------------------
    ServerSpan begin_server_span(const std::string& function_id,
                                 const std::optional<std::string>& traceparent,
                                 const std::optional<std::string>& baggage);
    /// Ends the span (error status and an `exception` event when `error` is set) and counts the
    /// invocation in the metrics.
    /// `span` gives up its strings to the record.
    void end_server_span(ServerSpan& span, const RemoteError* error);
    void set_worker_id(std::string id);
    /// Starts the CLIENT span `trigger <function_id>` of an outbound call, child of the current
    /// context (a new trace when there is none). Its context is what the call carries as
    /// traceparent (see inject(const TraceContext&, ...)), so the callee's SERVER span is its
    /// child. Not made current: the caller's own context is unchanged.
    ClientSpan begin_client_span(const std::string& function_id);
    /// Ends it: error status and an `exception` event when `error` is set (iii::Error: its
    /// remote code or Errc; a cancellation counts as an error too).
    void end_client_span(ClientSpan& span, const std::exception_ptr& error);

    // ---- producers ----------------------------------------------------------------------------
    /// Queues an OTLP logRecord; false (and counted) when the queue is full.
    bool submit_log(Value record);
    /// Queues an OTLP span; false (and counted) when the queue is full.
    bool submit_span(Value span);
    /// The same for a compact record (what the SDK's own spans use).
    bool submit_span(SpanRecord&& span);
    std::uint64_t dropped() const noexcept;
    /// True while the telemetry socket is down after a failed connect or a drop.
    bool engine_away() const noexcept;

    // ---- shutdown -----------------------------------------------------------------------------
    /// Exports everything queued (and a last metrics frame) and waits until it is written, at
    /// most settings().shutdown_timeout; then closes the telemetry socket. Completes on the
    /// awaiting coroutine's executor. Idempotent.
    asio::awaitable<void> flush_and_close();
    /// Blocking variant (never call it on a thread that runs the client's io_context). True
    /// when all was written.
    bool flush_and_close_sync(std::chrono::milliseconds timeout);

    /// The process default: the last started, still alive Telemetry (for Logger outside handlers).
    static std::shared_ptr<Telemetry> process_default();

private:
    struct Impl;
    Settings settings_;
    std::shared_ptr<Impl> impl_;
};

/// Connection::invoke hook: the current context as W3C traceparent/baggage (left unset
/// without a valid current context).
void inject(std::optional<std::string>& traceparent, std::optional<std::string>& baggage);
/// The same for an explicit context (the CLIENT span of the call). The traceparent is written
/// into `storage` (no allocation when it has the capacity, e.g. a traceparent given back).
void inject(const TraceContext& context, std::optional<std::string>& traceparent,
            std::optional<std::string>& baggage, std::string&& storage = std::string());

}  // namespace iii::detail::telemetry
