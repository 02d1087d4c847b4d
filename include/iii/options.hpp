#pragma once
// Options of register_worker (the reference's InitOptions and OtelConfig).

#include <iii/types.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace iii {

/// OpenTelemetry export to the engine (the reference's OtelConfig). Every unset field falls
/// back to its environment variable, then to the reference's default.
struct OtelConfig {
    /// Unset: on unless $OTEL_ENABLED is set to something other than "true" or "1".
    std::optional<bool> enabled{};
    /// Unset: $OTEL_SERVICE_NAME, else "iii-cpp-sdk".
    std::optional<std::string> service_name{};
    /// Unset: $OTEL_SERVICE_VERSION, else the SDK version.
    std::optional<std::string> service_version{};
    /// Unset: $OTEL_SERVICE_NAMESPACE, else none.
    std::optional<std::string> service_namespace{};
    /// Unset: a random UUID per client.
    std::optional<std::string> service_instance_id{};
    /// Unset: the worker's own engine URL (spec 7.1: a 0.10 engine takes telemetry on `/`, where
    /// the socket also counts as an anonymous worker). `<engine>/otel` uses the newer engine's
    /// telemetry-only route instead; the exporter never waits for a `workerregistered`, so both
    /// work.
    std::optional<std::string> engine_ws_url{};
    /// Default true.
    std::optional<bool> metrics_enabled{};
    /// Default 60000.
    std::optional<std::uint64_t> metrics_export_interval_ms{};
    /// Back-off of the telemetry connection; unset: the defaults.
    std::optional<ReconnectionConfig> reconnection_config{};
    /// Default 10000: how long shutdown_async() waits for telemetry to flush.
    std::optional<std::uint64_t> shutdown_timeout_ms{};
    /// Default 10000: telemetry frames queued in memory; beyond it records are dropped and
    /// counted, never blocking the caller.
    std::optional<std::size_t> channel_capacity{};
    /// Default true.
    std::optional<bool> logs_enabled{};
    /// Default 100, $OTEL_LOGS_FLUSH_INTERVAL_MS.
    std::optional<std::uint64_t> logs_flush_interval_ms{};
    /// Default 1, $OTEL_LOGS_BATCH_SIZE.
    std::optional<std::size_t> logs_batch_size{};
    /// Accepted for parity with the reference; the C++ SDK has no HTTP client to instrument.
    std::optional<bool> fetch_instrumentation_enabled{};
};

/// Timings of the worker connection's health checks (the reference's ConnTimings). Zero
/// disables the corresponding check.
struct ConnectionTimings {
    /// A connect attempt (TCP plus WebSocket handshake) that takes longer fails.
    std::chrono::milliseconds connect_timeout{10000};
    /// A WebSocket ping goes out this often; the engine's pong proves it is alive.
    std::chrono::milliseconds ping_interval{20000};
    /// With nothing received for this long, the connection is declared dead and replaced.
    /// The engine never pings, so this is what detects a silent, half-open engine.
    std::chrono::milliseconds idle_timeout{60000};
};

/// Options of register_worker (the reference's InitOptions).
struct InitOptions {
    /// Worker metadata sent after every (re)connect; unset: WorkerMetadata::detect().
    std::optional<WorkerMetadata> metadata{};
    /// Extra headers on the WebSocket upgrade request (e.g. for an auth function).
    std::map<std::string, std::string> headers{};
    /// Back-off of the worker connection.
    ReconnectionConfig reconnection{};
    /// Default timeout of Client::trigger (TriggerRequest::timeout_ms overrides it).
    std::chrono::milliseconds invocation_timeout{30000};
    /// Keepalive and connect timeouts.
    ConnectionTimings timings;
    /// How long shutdown_async() lets running handlers finish before it closes the socket.
    std::chrono::milliseconds shutdown_grace{5000};
    /// Threads of the pool that runs handlers, off the connection's strand. 0: the number of
    /// hardware threads, at least 2.
    unsigned handler_threads = 0;
    /// Run coroutine and raw handlers on the connection's io thread instead of the handler
    /// pool. Saves two thread hops per invocation (lower latency, less CPU), but a handler that
    /// blocks then stalls the connection, keepalive included; blocking handlers
    /// (register_blocking) always use the pool. Off by default.
    bool handlers_on_io_thread = false;
    /// OpenTelemetry; unset: OtelConfig{} (environment and defaults).
    std::optional<OtelConfig> otel{};
};

}  // namespace iii
