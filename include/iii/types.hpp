#pragma once
// The data types of the public API, named as in the Rust SDK 0.10 reference.

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
    /// No more retries: ReconnectionConfig::max_retries consecutive attempts failed, or the
    /// engine rejected this worker (0.23 `registrationrejected`); see Client::failure_reason().
    Failed,
};
/// "disconnected", "connecting", ...
const char* to_string(ConnectionState state) noexcept;

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
                   std::optional<std::uint64_t> timeout_ms = std::nullopt,
                   std::optional<Value> metadata = std::nullopt)
        : function_id(std::move(function_id)), payload(std::move(payload)),
          action(std::move(action)), metadata(std::move(metadata)), timeout_ms(timeout_ms) {}

    std::string function_id;
    Value payload;
    /// No action: synchronous call, waits for the function's result.
    std::optional<TriggerAction> action;
    /// Sent as `invokefunction.metadata`; 0.22+ engines hand it to the callee's handler
    /// (InvocationContext::metadata), 0.10 engines drop it.
    std::optional<Value> metadata;
    /// 0.23: the callee's namespace. Unset: the client's InitOptions::worker_namespace, except
    /// for `engine::*` functions, which stay in `default`.
    std::optional<std::string> function_namespace;
    /// Local timeout; the client's InitOptions::invocation_timeout when unset. Never sent.
    std::optional<std::uint64_t> timeout_ms;
    /// The same as a duration (`request.timeout = 500ms;`); wins over timeout_ms when set.
    std::optional<std::chrono::milliseconds> timeout{};
};

/// What a handler may know about the invocation it serves, besides the payload.
///
/// Handlers receive it as a second parameter (`Client::register_function` accepts
/// `(Value payload, const InvocationContext& context)`, coroutine or blocking). Besides,
/// InvocationContext::current() points to it during the synchronous call of the handler: the
/// whole run of a blocking handler, but for a coroutine handler only the call that creates its
/// awaitable, not its body (an asio::awaitable starts when it is awaited, after that call has
/// returned). So a coroutine reads it through the second parameter.
struct InvocationContext {
    std::string function_id{};
    /// Absent for a fire-and-forget call.
    std::optional<std::string> invocation_id{};
    /// The invocation's metadata: a trigger binding's (`RegisterTriggerInput::metadata`, e.g.
    /// bindings made through `engine::register_trigger`), or the caller's
    /// TriggerRequest::metadata. Only 0.22+ engines forward it; unset on 0.10.
    std::optional<Value> metadata{};
    std::optional<std::string> traceparent{};
    std::optional<std::string> baggage{};

    /// The context of the invocation whose handler is running on this thread (see above);
    /// null outside one.
    static const InvocationContext* current() noexcept;
};

/// HTTP method of an HTTP-invoked function; serialized upper case ("POST").
enum class HttpMethod { Get, Post, Put, Patch, Delete };
const char* to_string(HttpMethod method) noexcept;

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
    /// Passed to the provider; 0.22+ engines also hand it to the function at every fire
    /// (InvocationContext::metadata).
    std::optional<Value> metadata{};
    /// 0.23 `namespace`: the bound function's namespace; unset: `default`.
    std::optional<std::string> function_namespace{};
    /// 0.23 `trigger_namespace`: where the trigger type's provider is; unset: this worker's
    /// namespace, then `default`.
    std::optional<std::string> trigger_namespace{};
};

/// One function as listed by `engine::functions::list`. Every field but the id may be absent
/// (0.22+ engines send no schemas).
struct FunctionInfo {
    std::string function_id{};
    std::optional<std::string> description{};
    /// 0.10 only; 0.22+ have them in function_info() (FunctionDetails).
    std::optional<Value> request_format{};
    std::optional<Value> response_format{};
    std::optional<Value> metadata{};
    /// 0.22+: the worker that provides it.
    std::optional<std::string> worker_name{};
    /// 0.23: its namespace.
    std::optional<std::string> function_namespace{};
};

/// One function as described by `engine::functions::info` (Client::function_info).
struct FunctionDetails {
    std::string function_id{};
    std::optional<std::string> worker_name{};
    std::optional<std::string> description{};
    /// `request_schema` on 0.22+, `request_format` on 0.10.
    std::optional<Value> request_format{};
    /// `response_schema` on 0.22+, `response_format` on 0.10.
    std::optional<Value> response_format{};
    std::optional<Value> metadata{};
    /// Ids of the triggers bound to it (0.22+; empty on 0.10).
    std::vector<std::string> registered_triggers{};
    std::optional<std::string> function_namespace{};
};

/// One worker as listed by `engine::workers::list`. Every field may be absent: 0.22+ engines
/// send no `functions` or `pid`, and add `description`, `isolation` (0.23: `namespace`).
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
    std::optional<std::string> description{};
    /// 0.22+: e.g. "in-process" for the engine's own workers.
    std::optional<std::string> isolation{};
    std::optional<std::string> worker_namespace{};
};

/// One registered trigger (`engine::registered-triggers::list`, or `engine::triggers::list`
/// on 0.10).
struct TriggerInfo {
    std::string id{};
    std::string trigger_type{};
    std::string function_id{};
    Value config{};
    std::optional<Value> metadata{};
    /// 0.22+: the worker that registered it.
    std::optional<std::string> worker_name{};
};

/// One trigger type (`engine::triggers::list`, or `engine::trigger-types::list` on 0.10).
struct TriggerTypeInfo {
    std::string id{};
    std::string description{};
    /// 0.10 only.
    std::optional<Value> trigger_request_format{};
    std::optional<Value> call_request_format{};
    /// 0.22+: the worker that provides it.
    std::optional<std::string> worker_name{};
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
struct WorkerMetadata {
    std::string runtime = "cpp";
    std::string version{};
    std::string name{};
    std::string os{};
    std::optional<std::uint32_t> pid{};
    std::optional<WorkerTelemetryMeta> telemetry{};
    /// 0.22+: shown by `engine::workers::list`; sent only when set.
    std::optional<std::string> description{};
    /// 0.22+: how the worker is isolated (the managed-worker contract's $III_ISOLATION, e.g.
    /// "container"); sent as null when unset, as the Node SDK does.
    std::optional<std::string> isolation{};

    /// runtime "cpp", the SDK version, the name ($III_WORKER_NAME when set and not blank, the
    /// name an orchestrator assigns; else "<hostname>:<pid>"), "<os> <arch> (<family>)", the
    /// pid, isolation from $III_ISOLATION, and telemetry {language from $LANG/$LC_ALL,
    /// framework "iii-cpp"}.
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
