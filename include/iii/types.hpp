#pragma once
// The data types of the public API, named as in the Rust SDK 0.10 reference.

#include <iii/export.hpp>
#include <iii/json.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace iii {

/// Connection state of a client (the reference's IIIConnectionState).
enum class ConnectionState {
    Disconnected,  ///< not connected: before the first attempt, and after shutdown
    Connecting,    ///< first connection attempt in progress
    Connected,     ///< connected; registrations replayed
    Reconnecting,  ///< connection lost (or an attempt failed); retrying with back-off
    Failed,        ///< ReconnectionConfig::max_retries consecutive attempts failed; no more retries
};
/// "disconnected", "connecting", ...
III_API const char* to_string(ConnectionState state) noexcept;

/// Fire-and-forget: the engine routes the call and nobody waits for a result.
struct Void {};
/// Routes the invocation through the named queue; the result is the receipt
/// `{"messageReceiptId": "<uuid>"}`.
struct Enqueue {
    Enqueue() = default;
    explicit Enqueue(std::string queue_name) : queue(std::move(queue_name)) {}
    std::string queue;
};
/// Routing action of a TriggerRequest (the reference's TriggerAction).
using TriggerAction = std::variant<Void, Enqueue>;

/// Request for Client::trigger (the reference's TriggerRequest).
///
/// Not an aggregate on purpose: GCC 12 destroys a braced *aggregate* temporary twice when it
/// appears in a `co_await` expression (a double free). With constructors, the natural
/// `co_await iii.trigger({"greet", payload})` is safe, and the unsafe designated-initializer
/// form does not compile.
struct TriggerRequest {
    TriggerRequest() = default;
    TriggerRequest(std::string function_id, Value payload,
                   std::optional<TriggerAction> action = std::nullopt,
                   std::optional<std::uint64_t> timeout_ms = std::nullopt)
        : function_id(std::move(function_id)), payload(std::move(payload)),
          action(std::move(action)), timeout_ms(timeout_ms) {}

    std::string function_id;
    Value payload;
    /// No action: synchronous call, waits for the function's result.
    std::optional<TriggerAction> action;
    /// Local timeout; the client's InitOptions::invocation_timeout when unset. Never sent.
    std::optional<std::uint64_t> timeout_ms;
};

/// HTTP method of an HTTP-invoked function; serialized upper case ("POST").
enum class HttpMethod { Get, Post, Put, Patch, Delete };
III_API const char* to_string(HttpMethod method) noexcept;

/// HMAC signature with a secret read from the engine host's environment variable `secret_key`.
struct HmacAuth {
    std::string secret_key{};
};
/// `Authorization: Bearer` with the token in the engine host's environment variable `token_key`.
struct BearerAuth {
    std::string token_key{};
};
/// A custom header whose value is in the engine host's environment variable `value_key`.
struct ApiKeyAuth {
    std::string header{};
    std::string value_key{};
};
/// Authentication of an HTTP-invoked function (the reference's HttpAuthConfig). The strings
/// are names of environment variables on the engine host, never secrets.
using HttpAuthConfig = std::variant<HmacAuth, BearerAuth, ApiKeyAuth>;

/// Registers a function that the engine invokes over HTTP instead of through this worker.
struct HttpInvocationConfig {
    std::string url{};
    HttpMethod method = HttpMethod::Post;
    std::optional<std::uint64_t> timeout_ms{};
    std::map<std::string, std::string> headers{};
    std::optional<HttpAuthConfig> auth{};
};

/// The `registerfunction` message (the reference's RegisterFunctionMessage).
struct RegisterFunctionMessage {
    std::string id{};
    std::optional<std::string> description{};
    std::optional<Value> request_format{};
    std::optional<Value> response_format{};
    std::optional<Value> metadata{};
    std::optional<HttpInvocationConfig> invocation{};

    /// A message with just the id (the reference's `with_id`).
    static RegisterFunctionMessage with_id(std::string id) {
        RegisterFunctionMessage m;
        m.id = std::move(id);
        return m;
    }
};

/// The `registerservice` message (the reference's RegisterServiceMessage).
struct RegisterServiceMessage {
    std::string id{};
    std::string name{};
    std::optional<std::string> description{};
    std::optional<std::string> parent_service_id{};
};

/// Input of Client::register_trigger (the reference's RegisterTriggerInput).
struct RegisterTriggerInput {
    std::string trigger_type{};
    std::string function_id{};
    Value config = Value::object();
    std::optional<Value> metadata{};
};

/// One function as listed by `engine::functions::list`.
struct FunctionInfo {
    std::string function_id{};
    std::optional<std::string> description{};
    std::optional<Value> request_format{};
    std::optional<Value> response_format{};
    std::optional<Value> metadata{};
};

/// One worker as listed by `engine::workers::list`.
struct WorkerInfo {
    std::string id{};
    std::optional<std::string> name{};
    std::optional<std::string> runtime{};
    std::optional<std::string> version{};
    std::optional<std::string> os{};
    std::optional<std::string> ip_address{};
    std::string status{};
    std::uint64_t connected_at_ms = 0;
    std::size_t function_count = 0;
    /// Absent on newer engines; empty then.
    std::vector<std::string> functions{};
    std::size_t active_invocations = 0;
    std::optional<std::uint32_t> pid{};
};

/// One trigger as listed by `engine::triggers::list`.
struct TriggerInfo {
    std::string id{};
    std::string trigger_type{};
    std::string function_id{};
    Value config{};
    std::optional<Value> metadata{};
};

/// One trigger type as listed by `engine::trigger-types::list`.
struct TriggerTypeInfo {
    std::string id{};
    std::string description{};
    std::optional<Value> trigger_request_format{};
    std::optional<Value> call_request_format{};
};

/// Optional telemetry block of WorkerMetadata.
struct WorkerTelemetryMeta {
    std::optional<std::string> language{};
    std::optional<std::string> project_name{};
    std::optional<std::string> framework{};
    std::optional<std::string> amplitude_api_key{};
};

/// What the worker tells the engine about itself through `engine::workers::register` after
/// every (re)connect. WorkerMetadata::detect() fills in the defaults.
struct III_API WorkerMetadata {
    std::string runtime = "cpp";
    std::string version{};
    std::string name{};
    std::string os{};
    std::optional<std::uint32_t> pid{};
    std::optional<WorkerTelemetryMeta> telemetry{};

    /// runtime "cpp", the SDK version, "<hostname>:<pid>", "<os> <arch> (<family>)", the pid,
    /// and telemetry {language from $LANG/$LC_ALL, framework "iii-cpp"}.
    static WorkerMetadata detect();
};

/// Back-off for reconnecting (the reference's ReconnectionConfig). Applied to the worker
/// connection and to the telemetry connection.
///
/// Delay after the n-th consecutive failure (n >= 1):
/// `min(initial_delay_ms * backoff_multiplier^(n-1), max_delay_ms)`, plus or minus
/// `jitter_factor` of itself, never above max_delay_ms. A connection that had succeeded and
/// drops waits initial_delay_ms (jittered) before its first retry.
struct ReconnectionConfig {
    std::uint64_t initial_delay_ms = 1000;
    std::uint64_t max_delay_ms = 30000;
    double backoff_multiplier = 2.0;
    double jitter_factor = 0.3;
    /// Consecutive failed attempts after which the state becomes Failed; unset retries forever.
    std::optional<std::uint64_t> max_retries{};
    /// Outbound frames (invocations, results) kept while disconnected; beyond this the oldest
    /// are dropped and the calls they belonged to fail with NotConnected.
    std::size_t max_pending_messages = 1000;

    /// initial_delay_ms, at least 1.
    std::uint64_t effective_initial_delay_ms() const noexcept {
        return initial_delay_ms < 1 ? 1 : initial_delay_ms;
    }
};

}  // namespace iii
