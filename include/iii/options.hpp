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
    /// Unset: `<engine url>/otel`, the telemetry-only route of 0.22+ engines (the path is
    /// appended, the scheme kept), falling back to the engine URL itself when the engine answers
    /// HTTP 404 there (a 0.10 engine, which takes telemetry on `/`, where the socket also counts
    /// as an anonymous worker). Set: used as given, without fallback. The handshake headers
    /// (InitOptions::headers) go on this socket too.
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

/// Lowest TLS protocol version a `wss://` socket accepts.
enum class TlsVersion { Tls12, Tls13 };

/// TLS settings of every `wss://` socket of a client: the worker connection, its channels and
/// its telemetry. Ignored for `ws://`. The defaults verify the engine's certificate against the
/// system trust store (OpenSSL's default paths, which honour `$SSL_CERT_FILE` and
/// `$SSL_CERT_DIR`) and check that it names the URL's host: a DNS name against the certificate's
/// DNS names, an IP literal (`wss://127.0.0.1`, `wss://[::1]`) against its IP addresses. SNI
/// is sent for DNS names (never for IP literals, RFC 6066).
///
/// A file that cannot be read or parsed makes register_worker() throw Errc::Runtime naming it.
/// A failed handshake (an untrusted certificate, a host name mismatch, a refused client
/// certificate) is an ordinary connect failure: it is logged with OpenSSL's reason, retried with
/// the reconnection back-off, reported by Client::last_connect_error(), and named in the
/// Errc::Timeout of a call that waited for the connection.
struct TlsOptions {
    /// Extra trusted CA certificates: a PEM file (one or more certificates).
    std::string ca_file{};
    /// Extra trusted CA certificates: a directory in OpenSSL's hashed format (`openssl rehash`).
    std::string ca_dir{};
    /// Extra trusted CA certificates, PEM text held in memory.
    std::string ca_pem{};
    /// Also trust the system store (default). False: trust only the CAs given above.
    bool system_trust_store = true;
    /// Client certificate (PEM, leaf first, then intermediates) for engines that require mutual
    /// TLS; empty: none is offered. Needs key_file.
    std::string cert_file{};
    /// Private key (PEM, unencrypted) of cert_file.
    std::string key_file{};
    /// Lowest accepted protocol version; TLS 1.2 by default.
    TlsVersion min_version = TlsVersion::Tls12;
    /// Accept any certificate for any host name. For development only: the connection is then
    /// encrypted but not authenticated, and every connect logs a warning saying so.
    bool skip_verification = false;
};

/// Options of register_worker (the reference's InitOptions).
struct InitOptions {
    /// Worker metadata sent after every (re)connect; unset: WorkerMetadata::detect().
    std::optional<WorkerMetadata> metadata{};
    /// Extra headers on the WebSocket upgrade request (e.g. for an auth function). Sent on the
    /// worker socket, the telemetry socket and every channel socket alike (on an RBAC port all
    /// three are authenticated).
    std::map<std::string, std::string> headers{};
    /// 0.23: the worker's namespace, sent in the worker metadata; unset: $III_NAMESPACE, else
    /// none (the engine's `default`). Its functions and trigger types are filed there, and its
    /// calls go there unless TriggerRequest::function_namespace says otherwise (`engine::*`
    /// calls stay in `default`). Older engines ignore it. A blank value (empty or only
    /// whitespace, from either source) is refused: register_worker throws Error(Errc::Runtime).
    std::optional<std::string> worker_namespace{};
    /// Back-off of the worker connection.
    ReconnectionConfig reconnection{};
    /// Default timeout of Client::trigger (TriggerRequest::timeout_ms overrides it).
    std::chrono::milliseconds invocation_timeout{30000};
    /// Keepalive and connect timeouts.
    ConnectionTimings timings;
    /// How long shutdown_async() lets running handlers finish before it closes the socket.
    std::chrono::milliseconds shutdown_grace{5000};
    /// Threads of the pool that runs blocking handlers (`Value(Value)`), created at the first
    /// blocking registration; a client with coroutine handlers only has no pool. 0: the
    /// number of hardware threads, at least 2.
    unsigned handler_threads = 0;
    /// Handlers (of every kind) running at once. At the limit the client stops reading from
    /// the socket until one finishes, so a flood of invocations queues in TCP and in the
    /// engine instead of in this process's memory.
    std::size_t max_concurrent_handlers = 1024;
    /// Kept for source compatibility; no effect. Coroutine handlers always run on the
    /// client's executor (what this option used to select) and blocking ones on the pool.
    bool handlers_on_io_thread = false;
    /// OpenTelemetry; unset: OtelConfig{} (environment and defaults).
    std::optional<OtelConfig> otel{};
    /// TLS of `wss://` sockets (worker, channels, telemetry); see TlsOptions.
    TlsOptions tls{};
};

}  // namespace iii
