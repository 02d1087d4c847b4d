#pragma once
// iii::Client: a worker's connection to one iii engine (the reference's `III`).

#include <iii/describe.hpp>
#include <iii/error.hpp>
#include <iii/export.hpp>
#include <iii/json.hpp>
#include <iii/options.hpp>
#include <iii/trigger.hpp>
#include <iii/types.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace iii {

namespace detail {
class Connection;
}
struct Channel;          // iii/channel.hpp
class RegisterFunction;  // iii/typed.hpp
struct TypedHandler;     // iii/typed.hpp

/// A handler of the low-level register_function: takes the payload, returns the result.
using Handler = std::function<asio::awaitable<Value>(Value payload)>;
/// A handler that runs to completion on a pool thread (may block or burn CPU).
using BlockingHandler = std::function<Value(Value payload)>;
/// A handler on JSON text: the payload's JSON in, the result's JSON out. The typed API
/// (RegisterFunction) is built on it; most code wants Handler instead.
using RawHandler = std::function<asio::awaitable<std::string>(std::string payload_json)>;

/// Handle of a registered function (the reference's FunctionRef). Copyable; dropping it does
/// not unregister.
class III_API FunctionRef {
public:
    FunctionRef() = default;
    /// Made by register_function().
    FunctionRef(std::string id, std::weak_ptr<detail::Connection> connection)
        : id(std::move(id)), connection_(std::move(connection)) {}
    /// The function id.
    std::string id;
    /// Removes the function locally (no replay after reconnects) and sends
    /// `unregisterfunction`. Idempotent; a no-op after the client is gone.
    void unregister() const;

private:
    std::weak_ptr<detail::Connection> connection_;
};

/// Handle of a registered trigger (the reference's Trigger). Dropping it does not unregister.
class III_API Trigger {
public:
    Trigger() = default;
    /// Made by register_trigger().
    Trigger(std::string id, std::string trigger_type, std::weak_ptr<detail::Connection> connection)
        : id(std::move(id)), trigger_type(std::move(trigger_type)),
          connection_(std::move(connection)) {}
    /// The trigger id (a UUID).
    std::string id;
    /// Its trigger type.
    std::string trigger_type;
    /// Removes the trigger locally and sends `unregistertrigger`. Idempotent.
    void unregister() const;

private:
    std::weak_ptr<detail::Connection> connection_;
};

/// Handle of a trigger type this worker provides (the reference's TriggerTypeRef).
class III_API TriggerTypeRef {
public:
    TriggerTypeRef() = default;
    /// Made by register_trigger_type().
    TriggerTypeRef(std::string id, std::weak_ptr<detail::Connection> connection)
        : id(std::move(id)), connection_(std::move(connection)) {}
    /// The trigger type id.
    std::string id;
    /// As Client::unregister_trigger_type(id).
    void unregister() const;

private:
    std::weak_ptr<detail::Connection> connection_;
};

struct FunctionsAvailableState;

/// Subscription of Client::on_functions_available. Destroying it (or reset()) unsubscribes;
/// the last subscription's end removes the hidden callback function and its trigger.
class III_API FunctionsAvailableGuard {
public:
    FunctionsAvailableGuard() = default;
    /// Made by Client::on_functions_available().
    FunctionsAvailableGuard(std::weak_ptr<FunctionsAvailableState> state, std::uint64_t token)
        : state_(std::move(state)), token_(token) {}
    /// Takes over the subscription of `other`.
    FunctionsAvailableGuard(FunctionsAvailableGuard&& other) noexcept
        : state_(std::move(other.state_)), token_(std::exchange(other.token_, 0)) {}
    /// Ends this subscription, then takes over that of `other`.
    FunctionsAvailableGuard& operator=(FunctionsAvailableGuard&& other) noexcept {
        if (this != &other) {
            reset();
            state_ = std::move(other.state_);
            token_ = std::exchange(other.token_, 0);
        }
        return *this;
    }
    FunctionsAvailableGuard(const FunctionsAvailableGuard&) = delete;
    FunctionsAvailableGuard& operator=(const FunctionsAvailableGuard&) = delete;
    ~FunctionsAvailableGuard() { reset(); }
    /// Unsubscribes now. Idempotent.
    void reset();

private:
    std::weak_ptr<FunctionsAvailableState> state_;
    std::uint64_t token_ = 0;
};

/// A worker's connection to one iii engine (the reference's `III`).
///
/// Created by register_worker(), which starts connecting in the background and returns at
/// once. Registrations made before the connection is up are sent when it is, and replayed after
/// every reconnect from one registry (each exactly once). Calls made while disconnected are
/// queued (up to ReconnectionConfig::max_pending_messages) and sent on connect.
///
/// Threading: one strand owns the socket, the pending invocations and the registry's wire
/// side; handlers run off that strand, on a handler pool, so a slow handler blocks neither
/// other invocations nor the keepalive. Every member function may be called from any thread;
/// awaitables complete on the awaiting coroutine's executor.
///
/// Lifetime: destroying the last reference shuts the client down (as shutdown()) and, when it
/// owns its io thread, joins it. Call shutdown_async() first for a graceful close.
class III_API Client : public std::enable_shared_from_this<Client> {
public:
    struct PrivateTag {};
    /// Use register_worker().
    Client(PrivateTag, std::shared_ptr<detail::Connection> connection, std::function<void()> on_destroy);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // ---- functions -------------------------------------------------------------------------

    /// Registers a local function whose handler is a coroutine (`asio::awaitable<Value>(Value)`)
    /// or a plain callable (`Value(Value)`, run on a handler pool thread). A handler that throws
    /// is answered with `invocation_failed` and the exception's message; a thrown iii::Error of
    /// kind Remote (a failed nested trigger) passes its code, message and stacktrace through.
    /// Throws Error(Errc::Runtime) for an empty id or an id already registered on this client.
    template <class F>
    FunctionRef register_function(RegisterFunctionMessage message, F&& handler) {
        if constexpr (std::is_convertible_v<F, HttpInvocationConfig>) {
            return register_http_function(std::move(message), HttpInvocationConfig(handler));
        } else if constexpr (std::is_invocable_r_v<asio::awaitable<Value>, F, Value>) {
            return register_handler(std::move(message), Handler(std::forward<F>(handler)));
        } else {
            static_assert(std::is_invocable_v<F, Value>,
                          "a handler takes an iii::Value and returns a Value or awaitable<Value>");
            return register_blocking(std::move(message), BlockingHandler(std::forward<F>(handler)));
        }
    }
    /// Registers a coroutine handler (see the template above).
    FunctionRef register_handler(RegisterFunctionMessage message, Handler handler);
    /// Registers a blocking handler (see the template above).
    FunctionRef register_blocking(RegisterFunctionMessage message, BlockingHandler handler);
    /// Registers a function on JSON text (used by the typed API). `handler` may throw
    /// iii::Error(Errc::Serde) for a payload that does not decode; it becomes an error reply.
    FunctionRef register_raw(RegisterFunctionMessage message, RawHandler handler);
    /// Registers a typed function (the reference's `III::register`); see iii/typed.hpp.
    FunctionRef register_function(RegisterFunction reg);
    /// Registers a function wrapped by iii_fn / iii_async_fn, filling in the formats the
    /// message does not set; see iii/typed.hpp.
    FunctionRef register_function(RegisterFunctionMessage message, TypedHandler handler);
    /// Registers an HTTP-invoked function: the engine calls `config.url`; this worker only
    /// announces it (and answers `function_not_invokable` should the engine route it here).
    FunctionRef register_http_function(RegisterFunctionMessage message, HttpInvocationConfig config);

    // ---- invocations -----------------------------------------------------------------------

    /// Invokes a function through the engine.
    /// - no action: waits for the result (JSON null when the function returned none);
    /// - Void: returns null as soon as the frame is queued;
    /// - Enqueue: returns the receipt `{"messageReceiptId": ...}`.
    /// Throws Error: Timeout after `timeout_ms` (default InitOptions::invocation_timeout);
    /// Remote with the engine's or function's code and message; NotConnected when the
    /// connection drops while waiting or the client is shut down; Serde when the reply frame
    /// is malformed.
    /// Cancellation: cancelling the awaiting coroutine (its cancellation slot, e.g. racing it
    /// with a timer through `||`) withdraws the call at once and throws
    /// asio::error::operation_aborted (as std::system_error); the engine may still run it.
    asio::awaitable<Value> trigger(TriggerRequest request);
    /// trigger() on JSON text: the payload is embedded as is, the result returned as text
    /// ("null" when absent). Used by the typed API.
    asio::awaitable<std::string> trigger_raw(std::string function_id, std::string payload_json,
                                             std::optional<TriggerAction> action = std::nullopt,
                                             std::optional<std::uint64_t> timeout_ms = std::nullopt);
    /// Typed call: encodes `input` (any serializable type; a std::tuple for positional
    /// arguments) straight into JSON text and decodes the result straight into R (void: ignored).
    /// Same as iii::trigger<R>(client, ...) in iii/typed.hpp; throws as trigger(), plus
    /// Error(Errc::Serde) naming the path when the result does not decode into R. The input is
    /// encoded by this call, before the awaitable runs, so it may be a temporary.
    template <class R = Value, class In>
    asio::awaitable<R> trigger(std::string function_id, const In& input,
                               std::optional<TriggerAction> action = std::nullopt,
                               std::optional<std::uint64_t> timeout_ms = std::nullopt) {
        return typed_trigger<R>(std::move(function_id), iii::to_json(input), std::move(action),
                                timeout_ms);
    }

    // ---- channels --------------------------------------------------------------------------

    /// Creates a streaming channel through `engine::channels::create` (the reference's
    /// create_channel); see iii/channel.hpp. `buffer_size` is in frames (engine default 64,
    /// clamped to 1..1024). Throws as trigger(), plus Error(Errc::Serde) for a malformed reply.
    asio::awaitable<Channel> create_channel(std::optional<std::size_t> buffer_size = std::nullopt);

    // ---- trigger types, triggers, services ------------------------------------------------

    /// Provides a custom trigger type: the engine forwards every trigger bound to `id` to
    /// `handler` (register_trigger / unregister_trigger, run on the handler pool; a throw from
    /// register_trigger is reported to the engine as `trigger_registration_failed`). Replayed
    /// after every reconnect. Throws Error(Errc::Runtime) for an empty or duplicate id.
    TriggerTypeRef register_trigger_type(std::string id, std::string description,
                                         std::shared_ptr<TriggerHandler> handler,
                                         std::optional<Value> trigger_request_format = std::nullopt,
                                         std::optional<Value> call_request_format = std::nullopt);
    /// Stops providing the type locally (no replay) and sends `unregistertriggertype`, which a
    /// 0.10 engine ignores: the type stays there until this worker disconnects.
    void unregister_trigger_type(const std::string& id);
    /// Binds `input.function_id` to a trigger of `input.trigger_type` with a fresh UUID id.
    /// Replayed after every reconnect until Trigger::unregister(). Throws Error(Errc::Runtime)
    /// for an empty trigger_type or function_id.
    Trigger register_trigger(RegisterTriggerInput input);
    /// Declares a service (`registerservice`); replayed after reconnects.
    void register_service(RegisterServiceMessage message);

    // ---- discovery -------------------------------------------------------------------------

    /// Functions registered on the engine (`engine::functions::list`, internal ones hidden).
    /// Throws Error(Errc::Serde) for a response that does not parse.
    asio::awaitable<std::vector<FunctionInfo>> list_functions();
    /// Connected workers (`engine::workers::list`). Throws as list_functions().
    asio::awaitable<std::vector<WorkerInfo>> list_workers();
    /// Registered triggers (`engine::triggers::list`); internal ones (bound to `engine::`
    /// functions) only with `include_internal`. Throws as list_functions().
    asio::awaitable<std::vector<TriggerInfo>> list_triggers(bool include_internal = false);
    /// Trigger types (`engine::trigger-types::list`). Throws as list_functions().
    asio::awaitable<std::vector<TriggerTypeInfo>> list_trigger_types(bool include_internal = false);
    /// Calls `callback` with the full function list whenever the engine's set of function ids
    /// changes (`engine::functions-available`). Runs on the handler pool. The first
    /// subscription registers a hidden function `iii.on_functions_available.<uuid>` and a trigger
    /// bound to it; the last guard's end removes both.
    [[nodiscard]] FunctionsAvailableGuard on_functions_available(
        std::function<void(const std::vector<FunctionInfo>&)> callback);

    // ---- connection ------------------------------------------------------------------------

    /// The current state.
    ConnectionState get_connection_state() const;
    /// Waits until the state equals `state`; false if `timeout` passes first.
    asio::awaitable<bool> wait_for_state(ConnectionState state, std::chrono::milliseconds timeout);
    /// Calls `callback` on every state change (on the connection's strand: keep it short).
    /// Returns a token for remove_state_listener(). Listeners are never called once the
    /// client's destructor has started.
    std::uint64_t on_connection_state_change(std::function<void(ConnectionState)> callback);
    /// Removes a listener; returns once it is not running and will not run again.
    void remove_state_listener(std::uint64_t token);

    /// The engine address given to register_worker (channels derive their URLs from it).
    const std::string& address() const;
    /// The executor of the connection's strand.
    asio::any_io_executor get_executor() const;

    /// Signals shutdown and returns at once: no new invocations are served, the socket closes,
    /// pending calls fail with NotConnected. Idempotent.
    void shutdown();
    /// Graceful shutdown: stops taking invocations, lets running handlers finish within
    /// InitOptions::shutdown_grace and sends their results, performs the WebSocket close
    /// handshake, fails whatever is still pending with NotConnected, and returns. Idempotent.
    asio::awaitable<void> shutdown_async();

    /// The internal connection (for SDK extensions such as channels and telemetry).
    const std::shared_ptr<detail::Connection>& connection() const noexcept { return connection_; }

private:
    template <class R>
    asio::awaitable<R> typed_trigger(std::string function_id, std::string payload,
                                     std::optional<TriggerAction> action,
                                     std::optional<std::uint64_t> timeout_ms) {
        std::string result = co_await trigger_raw(std::move(function_id), std::move(payload),
                                                  std::move(action), timeout_ms);
        if constexpr (std::is_void_v<R>)
            co_return;
        else
            co_return iii::from_json<R>(result);
    }

    std::shared_ptr<detail::Connection> connection_;
    std::shared_ptr<FunctionsAvailableState> functions_available_;
    std::function<void()> on_destroy_;
};

/// The reference's name for the client type.
using III = Client;

/// Creates a client that connects to `url` (e.g. "ws://localhost:49134") in the background,
/// on an io thread the client owns (the reference's behaviour). Returns at once.
/// Throws Error(Errc::Runtime) for a URL that is not ws://host[:port][/path].
III_API std::shared_ptr<Client> register_worker(std::string url, InitOptions options = {});

/// As above, but the connection runs on `io` (e.g. a coroutine service's own io_context), which
/// the caller must run. Handlers still run on the client's handler pool.
III_API std::shared_ptr<Client> register_worker(asio::io_context& io, std::string url,
                                        InitOptions options = {});

}  // namespace iii
