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
    /// No more retries: ReconnectionConfig::max_retries consecutive attempts failed, or the
    /// engine rejected this worker (0.23 `registrationrejected`); see Client::failure_reason().
    Failed,
};
/// "disconnected", "connecting", ...
III_API const char* to_string(ConnectionState state) noexcept;

/// Fire-and-forget: the engine routes the call and nobody waits for a result.
struct Void {};
/// Routes the invocation through the named queue; the result is the receipt
/// `{"messageReceiptId": "<uuid>"}`.
struct Enqueue {
    Enqueue() = default;
    /// Routes through the queue named `queue_name`.
    explicit Enqueue(std::string queue_name) : queue(std::move(queue_name)) {}
    /// The queue's name.
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
    /// A call of `function_id` with `payload`; see the members.
    TriggerRequest(std::string function_id, Value payload,
                   std::optional<TriggerAction> action = std::nullopt,
                   std::optional<std::uint64_t> timeout_ms = std::nullopt,
                   std::optional<Value> metadata = std::nullopt)
        : function_id(std::move(function_id)), payload(std::move(payload)),
          action(std::move(action)), metadata(std::move(metadata)), timeout_ms(timeout_ms) {}

    /// The function to invoke.
    std::string function_id;
    /// Its input (the `data` of `invokefunction`).
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
struct III_API InvocationContext {
    /// The function being invoked.
    std::string function_id{};
    /// Absent for a fire-and-forget call.
    std::optional<std::string> invocation_id{};
    /// The invocation's metadata: a trigger binding's (`RegisterTriggerInput::metadata`, e.g.
    /// bindings made through `engine::register_trigger`), or the caller's
    /// TriggerRequest::metadata. Only 0.22+ engines forward it; unset on 0.10.
    std::optional<Value> metadata{};
    /// The caller's W3C `traceparent`, when the invocation carried one.
    std::optional<std::string> traceparent{};
    /// The caller's W3C `baggage`, when the invocation carried one.
    std::optional<std::string> baggage{};

    /// The context of the invocation whose handler is running on this thread (see above);
    /// null outside one.
    static const InvocationContext* current() noexcept;
};

/// HTTP method of an HTTP-invoked function; serialized upper case ("POST").
enum class HttpMethod { Get, Post, Put, Patch, Delete };
III_API const char* to_string(HttpMethod method) noexcept;

/// HMAC signature with a secret read from the engine host's environment variable `secret_key`.
struct HmacAuth {
    /// Name of the environment variable holding the secret.
    std::string secret_key{};
};
/// `Authorization: Bearer` with the token in the engine host's environment variable `token_key`.
struct BearerAuth {
    /// Name of the environment variable holding the token.
    std::string token_key{};
};
/// A custom header whose value is in the engine host's environment variable `value_key`.
struct ApiKeyAuth {
    /// The header to send.
    std::string header{};
    /// Name of the environment variable holding its value.
    std::string value_key{};
};
/// Authentication of an HTTP-invoked function (the reference's HttpAuthConfig). The strings
/// are names of environment variables on the engine host, never secrets.
using HttpAuthConfig = std::variant<HmacAuth, BearerAuth, ApiKeyAuth>;

/// Registers a function that the engine invokes over HTTP instead of through this worker.
struct HttpInvocationConfig {
    /// The URL the engine calls.
    std::string url{};
    /// The HTTP method (default POST).
    HttpMethod method = HttpMethod::Post;
    /// Timeout of the engine's request; the engine's default when unset.
    std::optional<std::uint64_t> timeout_ms{};
    /// Extra request headers.
    std::map<std::string, std::string> headers{};
    /// Authentication, if any.
    std::optional<HttpAuthConfig> auth{};
};

/// The `registerfunction` message (the reference's RegisterFunctionMessage).
struct RegisterFunctionMessage {
    /// The function id, e.g. "orders::create".
    std::string id{};
    /// Shown in listings.
    std::optional<std::string> description{};
    /// JSON Schema of the input (the typed API fills it in).
    std::optional<Value> request_format{};
    /// JSON Schema of the result.
    std::optional<Value> response_format{};
    /// Free-form metadata, listed with the function.
    std::optional<Value> metadata{};
    /// Set for an HTTP-invoked function (see register_http_function).
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
    /// The service id.
    std::string id{};
    /// Its display name.
    std::string name{};
    /// Shown in listings.
    std::optional<std::string> description{};
    /// The enclosing service, for nested services.
    std::optional<std::string> parent_service_id{};
};

/// Input of Client::register_trigger (the reference's RegisterTriggerInput).
struct RegisterTriggerInput {
    /// The trigger type, e.g. "cron" or a type registered with register_trigger_type.
    std::string trigger_type{};
    /// The function the trigger invokes.
    std::string function_id{};
    /// The type-specific configuration (an object).
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
    /// The function id.
    std::string function_id{};
    /// As registered.
    std::optional<std::string> description{};
    /// 0.10 only; 0.22+ have them in function_info() (FunctionDetails).
    std::optional<Value> request_format{};
    /// As registered.
    std::optional<Value> response_format{};
    /// As registered.
    std::optional<Value> metadata{};
    /// 0.22+: the worker that provides it.
    std::optional<std::string> worker_name{};
    /// 0.23: its namespace.
    std::optional<std::string> function_namespace{};
};

/// One function as described by `engine::functions::info` (Client::function_info).
struct FunctionDetails {
    /// The function id.
    std::string function_id{};
    /// The worker that provides it (0.22+).
    std::optional<std::string> worker_name{};
    /// As registered.
    std::optional<std::string> description{};
    /// `request_schema` on 0.22+, `request_format` on 0.10.
    std::optional<Value> request_format{};
    /// `response_schema` on 0.22+, `response_format` on 0.10.
    std::optional<Value> response_format{};
    /// As registered.
    std::optional<Value> metadata{};
    /// Ids of the triggers bound to it (0.22+; empty on 0.10).
    std::vector<std::string> registered_triggers{};
    /// 0.23: its namespace.
    std::optional<std::string> function_namespace{};
};

/// One worker as listed by `engine::workers::list`. Every field may be absent: 0.22+ engines
/// send no `functions` or `pid`, and add `description`, `isolation` (0.23: `namespace`).
struct WorkerInfo {
    /// The engine's id of the worker connection.
    std::string id{};
    /// From the worker's metadata (WorkerMetadata), when it sent any.
    std::optional<std::string> name{};
    /// Likewise, e.g. "cpp", "node".
    std::optional<std::string> runtime{};
    /// Likewise: the SDK version.
    std::optional<std::string> version{};
    /// Likewise.
    std::optional<std::string> os{};
    /// The peer address the engine sees.
    std::optional<std::string> ip_address{};
    /// The engine's status of the worker, e.g. "connected".
    std::string status{};
    /// When it connected (ms since the epoch).
    std::uint64_t connected_at_ms = 0;
    /// Functions it registered.
    std::size_t function_count = 0;
    /// Absent on newer engines; empty then.
    std::vector<std::string> functions{};
    /// Invocations it is running now.
    std::size_t active_invocations = 0;
    /// Its process id, from its metadata.
    std::optional<std::uint32_t> pid{};
    /// 0.22+: its description, from its metadata.
    std::optional<std::string> description{};
    /// 0.22+: e.g. "in-process" for the engine's own workers.
    std::optional<std::string> isolation{};
    /// 0.23: its namespace.
    std::optional<std::string> worker_namespace{};
};

/// One registered trigger (`engine::registered-triggers::list`, or `engine::triggers::list`
/// on 0.10).
struct TriggerInfo {
    /// The trigger id.
    std::string id{};
    /// Its type.
    std::string trigger_type{};
    /// The function it invokes.
    std::string function_id{};
    /// Its configuration.
    Value config{};
    /// Its metadata.
    std::optional<Value> metadata{};
    /// 0.22+: the worker that registered it.
    std::optional<std::string> worker_name{};
};

/// One trigger type (`engine::triggers::list`, or `engine::trigger-types::list` on 0.10).
struct TriggerTypeInfo {
    /// The trigger type id.
    std::string id{};
    /// As registered.
    std::string description{};
    /// 0.10 only.
    std::optional<Value> trigger_request_format{};
    /// JSON Schema of the payload its triggers send.
    std::optional<Value> call_request_format{};
    /// 0.22+: the worker that provides it.
    std::optional<std::string> worker_name{};
};

/// Optional telemetry block of WorkerMetadata.
struct WorkerTelemetryMeta {
    /// The user's locale ($LANG / $LC_ALL).
    std::optional<std::string> language{};
    /// The application's name, if given.
    std::optional<std::string> project_name{};
    /// "iii-cpp" by default.
    std::optional<std::string> framework{};
    /// Accepted for parity with the reference; unused by the SDK.
    std::optional<std::string> amplitude_api_key{};
};

/// What the worker tells the engine about itself through `engine::workers::register` after
/// every (re)connect. WorkerMetadata::detect() fills in the defaults.
struct III_API WorkerMetadata {
    /// The runtime, "cpp".
    std::string runtime = "cpp";
    /// The SDK version.
    std::string version{};
    /// A display name, "<hostname>:<pid>" by default.
    std::string name{};
    /// "<os> <arch> (<family>)".
    std::string os{};
    /// The process id.
    std::optional<std::uint32_t> pid{};
    /// Optional telemetry block.
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
    /// Delay before the first retry.
    std::uint64_t initial_delay_ms = 1000;
    /// Upper bound of any delay.
    std::uint64_t max_delay_ms = 30000;
    /// Growth of the delay per consecutive failure.
    double backoff_multiplier = 2.0;
    /// Random spread, as a fraction of the delay (0.3: plus or minus 30 %).
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
