#pragma once
// iii::Client: a worker's connection to one iii engine (the reference's `III`).

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
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace iii {

namespace detail {
class Connection;
/// What the engine behind the current connection offers for discovery (lib/client.cpp).
struct DiscoveryMemo;
III_API std::shared_ptr<DiscoveryMemo> make_discovery_memo();  // used by Client's member initializer
}
struct Channel;          // iii/channel.hpp
class RegisterFunction;  // iii/typed.hpp
struct TypedHandler;     // iii/typed.hpp

/// A handler of the low-level register_function: takes the payload, returns the result.
using Handler = std::function<asio::awaitable<Value>(Value payload)>;
/// A handler that also reads the invocation's context (metadata, ids, trace context):
/// Client::register_function takes a coroutine or a plain callable with this second parameter
/// (`(Value payload, const InvocationContext& context)`), e.g. for the metadata a 0.22+ engine
/// forwards from the trigger binding or the caller. The context is copied when the handler is
/// called and lives for its whole run.
using ContextHandler =
    std::function<asio::awaitable<Value>(Value payload, const InvocationContext& context)>;
/// The blocking form of ContextHandler.
using BlockingContextHandler =
    std::function<Value(Value payload, const InvocationContext& context)>;
/// A handler that runs to completion on a pool thread (may block or burn CPU).
using BlockingHandler = std::function<Value(Value payload)>;
/// A handler on JSON text: the payload's JSON in, the result's JSON out. The typed API
/// (RegisterFunction) is built on it; most code wants Handler instead.
using RawHandler = std::function<asio::awaitable<std::string>(std::string payload_json)>;

namespace detail {
// The context is copied when the handler is called, while the invocation's scope is current
// (InvocationContext::current()), and kept in the coroutine frame for the whole call.
template <class F>
asio::awaitable<Value> run_with_context(std::shared_ptr<F> handler, Value payload,
                                        InvocationContext context) {
    co_return co_await (*handler)(std::move(payload), context);
}
inline InvocationContext current_invocation_copy() {
    const InvocationContext* current = InvocationContext::current();
    return current ? *current : InvocationContext();
}
}  // namespace detail

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
    /// The engine's refusal of this function, if it refused it: a 0.23 engine answers
    /// `registrationrejected` with codes::function_namespace_conflict when another live worker
    /// in the namespace already provides the id. The function is then not registered, is not
    /// replayed after reconnects (registering the id again retries), and the worker keeps
    /// serving its other functions; the refusal is also logged as a warning. nullopt: no
    /// refusal (which is no proof of registration: older engines never refuse). Thread-safe.
    std::optional<RemoteError> rejection() const;

private:
    std::weak_ptr<detail::Connection> connection_;
};

namespace detail {
struct TriggerStatus;  // lib/trigger_status.hpp
}

/// Handle of a registered trigger (the reference's Trigger). Dropping it does not unregister.
/// Copies share one registration status.
class III_API Trigger {
public:
    Trigger() = default;
    /// Made by register_trigger().
    Trigger(std::string id, std::string trigger_type, std::weak_ptr<detail::Connection> connection);
    /// The trigger id (a UUID).
    std::string id;
    /// Its trigger type.
    std::string trigger_type;
    /// Removes the trigger locally and sends `unregistertrigger`. Idempotent.
    void unregister() const;

    /// The failure the engine reported for this registration, if any: 0.22+ engines send the
    /// registrant a `triggerregistrationresult` with an error when a built-in trigger type
    /// refuses the config (`trigger_registration_failed`) or when the type's provider refuses
    /// the bind later (the engine then parks it until the type registers again). A later
    /// report replaces an earlier one. The failure is also logged as a warning.
    ///
    /// nullopt never means "active": the engine acknowledges nothing on success, a bind to a
    /// type that is not registered yet is parked silently, and a 0.10 engine reports nothing.
    /// Thread-safe.
    std::optional<RemoteError> registration_error() const;
    /// Waits until the engine reports a failed registration (returns it at once if one was
    /// already reported) or `timeout` passes (returns nullopt, which is no proof of success;
    /// see registration_error()). Completes on the awaiting coroutine's executor.
    /// Cancellation: cancelling the awaiting coroutine throws asio::error::operation_aborted
    /// (as std::system_error). Never throws otherwise.
    asio::awaitable<std::optional<RemoteError>> wait_registration_error(
        std::chrono::milliseconds timeout) const;

private:
    std::weak_ptr<detail::Connection> connection_;
    std::shared_ptr<detail::TriggerStatus> status_;
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
/// Threading (README "Who runs where"): one strand on the client's executor runs the
/// connection (socket, one timer, and the sans-io state machine that owns the state, the
/// registry, the outbound queue and the pending calls); no lock guards it. Coroutine handlers
/// run on the client's executor (posted off the strand); blocking handlers on a pool created
/// at the first blocking registration. Every member function may be called from any thread;
/// every awaitable completes on the awaiting coroutine's executor. The const observers
/// (get_connection_state(), the worker id, pending counts) read snapshots the strand
/// publishes (atomics; the worker id a copy behind a small lock of its own).
///
/// Cancellation, everywhere in this class: an awaitable honours its coroutine's cancellation
/// slot (e.g. the loser of `a || b`) from any executor or thread without a data race, and then
/// throws std::system_error with asio::error::operation_aborted (never an iii::Error). What is
/// withdrawn is said per member; the engine may still run what was already sent.
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

    /// The one spelling for untyped functions. Registers a local function whose handler is a
    /// coroutine (`asio::awaitable<Value>(Value)`, run on the client's executor), a plain
    /// callable (`Value(Value)`, run on the blocking-handler pool, created now if this is the
    /// first) or an HttpInvocationConfig (announced only). Either handler kind may take the
    /// invocation's context as a second parameter (`(Value, const InvocationContext&)`), e.g.
    /// for the metadata a 0.22+ engine forwards from the trigger binding or the caller. A handler that throws
    /// is answered with `invocation_failed` and the exception's message; a thrown iii::Error of
    /// kind Remote (a failed nested trigger) passes its code, message and stacktrace through.
    /// Throws Error(Errc::Runtime) for an empty id or an id already registered on this client.
    template <class F>
    FunctionRef register_function(RegisterFunctionMessage message, F&& handler) {
        if constexpr (std::is_convertible_v<F, HttpInvocationConfig>) {
            return register_http_function(std::move(message), HttpInvocationConfig(handler));
        } else if constexpr (std::is_invocable_r_v<asio::awaitable<Value>, F, Value>) {
            return register_handler(std::move(message), Handler(std::forward<F>(handler)));
        } else if constexpr (std::is_invocable_r_v<asio::awaitable<Value>, F, Value,
                                                   const InvocationContext&>) {
            // A ContextHandler: the context is copied at the call (see ContextHandler).
            auto shared = std::make_shared<std::decay_t<F>>(std::forward<F>(handler));
            return register_handler(std::move(message), [shared](Value payload) {
                return detail::run_with_context(shared, std::move(payload),
                                                detail::current_invocation_copy());
            });
        } else if constexpr (std::is_invocable_v<F, Value, const InvocationContext&>) {
            auto shared = std::make_shared<std::decay_t<F>>(std::forward<F>(handler));
            return register_blocking(std::move(message), [shared](Value payload) -> Value {
                const InvocationContext context = detail::current_invocation_copy();
                return (*shared)(std::move(payload), context);
            });
        } else {
            static_assert(std::is_invocable_v<F, Value>,
                          "a handler takes an iii::Value and returns a Value or awaitable<Value>");
            return register_blocking(std::move(message), BlockingHandler(std::forward<F>(handler)));
        }
    }
    /// What register_function(message, coroutine) does; for an already type-erased Handler.
    FunctionRef register_handler(RegisterFunctionMessage message, Handler handler);
    /// What register_function(message, callable) does; for an already type-erased handler.
    FunctionRef register_blocking(RegisterFunctionMessage message, BlockingHandler handler);
    /// Registers a function on JSON text, run like a coroutine handler (the typed API's
    /// building block; typed functions go through register_function(RegisterFunction)). `handler` may throw
    /// iii::Error(Errc::Serde) for a payload that does not decode; it becomes an error reply.
    FunctionRef register_raw(RegisterFunctionMessage message, RawHandler handler);
    /// Registers a typed function (the reference's `III::register`); see iii/typed.hpp.
    FunctionRef register_function(RegisterFunction reg);
    /// Registers a function wrapped by iii_fn / iii_async_fn, filling in the formats the
    /// message does not set; see iii/typed.hpp.
    FunctionRef register_function(RegisterFunctionMessage message, TypedHandler handler);
    /// What register_function(message, HttpInvocationConfig) does: the engine calls
    /// `config.url`; this worker only announces it (and answers `function_not_invokable`
    /// should the engine route it here).
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
    /// Cancellation: cancelling the awaiting coroutine (e.g. racing it with a timer through
    /// `||`, from any executor) completes the call at once with operation_aborted and withdraws
    /// it: a frame still queued (disconnected) is never sent, a result arriving later is
    /// dropped, and pending_count() no longer counts it. A frame already sent is not recalled:
    /// the engine may still run the function. A Void call is complete once queued.
    /// Completes on the awaiting coroutine's executor. The one spelling of the dynamic call.
    asio::awaitable<Value> trigger(TriggerRequest request);
    /// trigger() on JSON text: the payload is embedded as is, the result returned as text
    /// ("null" when absent). The typed API's building block; throws and cancels as trigger().
    asio::awaitable<std::string> trigger_raw(std::string function_id, std::string payload_json,
                                             std::optional<TriggerAction> action = std::nullopt,
                                             std::optional<std::uint64_t> timeout_ms = std::nullopt);
    /// Typed call, the typed spelling of trigger(): encodes `input` (any serializable type;
    /// a std::tuple for positional arguments) straight into JSON text and decodes the result
    /// straight into R (void: ignored; Value: dynamic). Throws as trigger(), plus
    /// Error(Errc::Serde) naming the path when the result does not decode into R. The input is
    /// encoded by this call, before the awaitable runs, so it may be a temporary. Defined in
    /// iii/typed.hpp (included by iii/iii.hpp), so that this header does not pull in the
    /// serialization machinery; iii::trigger<R>(client, ...) there is the same call.
    template <class R = Value, class In>
    asio::awaitable<R> trigger(std::string function_id, const In& input,
                               std::optional<TriggerAction> action = std::nullopt,
                               std::optional<std::uint64_t> timeout_ms = std::nullopt);

    // ---- channels --------------------------------------------------------------------------

    /// Creates a streaming channel through `engine::channels::create` (the reference's
    /// create_channel); see iii/channel.hpp. `buffer_size` is in frames (engine default 64,
    /// clamped to 1..1024). Throws as trigger(), plus Error(Errc::Serde) for a malformed reply.
    asio::awaitable<Channel> create_channel(std::optional<std::size_t> buffer_size = std::nullopt);

    // ---- trigger types, triggers, services ------------------------------------------------

    /// Provides a custom trigger type: the engine forwards every trigger bound to `id` to
    /// `handler` (register_trigger / unregister_trigger, run on the client's executor; a throw from
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

    // Discovery works against every engine generation. The built-ins were renamed in 0.13
    // (`engine::triggers::list` lists trigger *types* since, instances come from
    // `engine::registered-triggers::list`, `engine::trigger-types::list` is gone), so the
    // client asks the new names first and falls back to the 0.10 names when the engine answers
    // `function_not_found`. What it learnt is remembered for the connection it learnt it on and
    // learnt again after a reconnect (another engine may answer). Every field the engines
    // stopped sending (schemas, a worker's `functions` and `pid`) is optional in the results:
    // 0.22+ list no schemas in list_functions(); function_info() has them on every engine.
    // The list calls throw as trigger() for the call itself.


    /// Functions registered on the engine (`engine::functions::list`, internal ones hidden).
    /// 0.22+ engines list no schemas (request_format/response_format are then unset): use
    /// function_info() for them. Throws as trigger() (cancellation included), and
    /// Error(Errc::Serde) for a response that does not parse.
    asio::awaitable<std::vector<FunctionInfo>> list_functions();
    /// One function with its schemas and bound triggers (`engine::functions::info`, 0.22+).
    /// On an engine without that built-in (0.10), the entry of `engine::functions::list` is
    /// used instead (it carries the schemas there; registered_triggers stays empty).
    /// Returns nullopt when the engine has no function `function_id` (`NOT_FOUND`). Throws as
    /// list_functions().
    asio::awaitable<std::optional<FunctionDetails>> function_info(std::string function_id);
    /// Workers (`engine::workers::list`; 0.22+ include in-process engine workers with runtime
    /// "engine"). Throws as list_functions().
    asio::awaitable<std::vector<WorkerInfo>> list_workers();
    /// Registered triggers: `engine::registered-triggers::list`, or `engine::triggers::list` on
    /// 0.10 engines. Internal ones (bound to `engine::` functions) only with
    /// `include_internal`. Throws as list_functions().
    asio::awaitable<std::vector<TriggerInfo>> list_triggers(bool include_internal = false);
    /// Trigger types: `engine::triggers::list` (0.13+), or `engine::trigger-types::list` on
    /// 0.10 engines. Throws as list_functions().
    asio::awaitable<std::vector<TriggerTypeInfo>> list_trigger_types(bool include_internal = false);
    /// Calls `callback` with the full function list whenever the engine's set of function ids
    /// changes (`engine::functions-available`). Runs on the client's executor. The first
    /// subscription registers a hidden function `iii.on_functions_available.<uuid>` and a trigger
    /// bound to it; the last guard's end removes both.
    [[nodiscard]] FunctionsAvailableGuard on_functions_available(
        std::function<void(const std::vector<FunctionInfo>&)> callback);

    // ---- connection ------------------------------------------------------------------------

    /// The current state (an atomic snapshot; any thread).
    ConnectionState get_connection_state() const;
    /// Waits until the state equals `state`; false if `timeout` passes first. Cancellation
    /// withdraws the wait (nothing else happens). Completes on the awaiting coroutine's executor.
    asio::awaitable<bool> wait_for_state(ConnectionState state, std::chrono::milliseconds timeout);
    /// Calls `callback` on every state change (on the connection's strand: keep it short).
    /// Returns a token for remove_state_listener(). Listeners are never called once the
    /// client's destructor has started.
    std::uint64_t on_connection_state_change(std::function<void(ConnectionState)> callback);
    /// The same, with the reason when the state becomes Failed (failure_reason()); empty for
    /// the other states.
    std::uint64_t on_connection_state_change(
        std::function<void(ConnectionState, const std::string& reason)> callback);
    /// Why the state is Failed, empty otherwise: "gave up reconnecting: max_retries reached",
    /// or the engine's rejection of this worker as "<code>: <message>" (e.g.
    /// codes::worker_namespace_conflict; calls then fail with Errc::RegistrationRejected,
    /// whose Error::remote() has the code). A copy; any thread.
    std::string failure_reason() const;
    /// Removes a listener; returns once it is not running and will not run again.
    void remove_state_listener(std::uint64_t token);
    /// Why the latest connect attempt failed (Errc::WebSocket; for `wss://` the message carries
    /// OpenSSL's reason, e.g. "TLS handshake failed: certificate verify failed: self-signed
    /// certificate in certificate chain"); empty once a connect succeeded. A state listener
    /// that sees ConnectionState::Reconnecting can read it. Safe from any thread.
    std::optional<Error> last_connect_error() const;

    /// The engine address given to register_worker (channels derive their URLs from it).
    const std::string& address() const;
    /// The connection's strand (an executor on the client's executor). Code posted there runs
    /// serialized with the connection; it must not block.
    asio::any_io_executor get_executor() const;

    /// Signals shutdown and returns at once: no new invocations are served, the socket closes,
    /// pending calls fail with NotConnected. Idempotent.
    void shutdown();
    /// Graceful shutdown: stops taking invocations, lets running handlers finish within
    /// InitOptions::shutdown_grace and sends their results, performs the WebSocket close
    /// handshake, fails whatever is still pending with NotConnected, flushes telemetry, and
    /// returns. Idempotent. Cancellation withdraws the wait only: the shutdown, once started,
    /// goes on.
    asio::awaitable<void> shutdown_async();

    /// The connection's lifetime as an awaitable: connects (register_worker already started
    /// it; this is idempotent), serves and reconnects, and completes when the connection has
    /// ended: after shutdown()/shutdown_async(), or in Failed (max_retries, or a worker-level
    /// `registrationrejected`). Cancelling the awaiting coroutine shuts the client down: the
    /// socket closes with the WebSocket handshake (code 1000), pending calls fail with
    /// NotConnected, and run() then completes normally. Completes on the awaiting coroutine's
    /// executor. Several coroutines may await it.
    asio::awaitable<void> run();

    /// The internal connection (for SDK extensions such as channels and telemetry).
    const std::shared_ptr<detail::Connection>& connection() const noexcept { return connection_; }

private:
    std::shared_ptr<detail::Connection> connection_;
    std::shared_ptr<FunctionsAvailableState> functions_available_;
    std::shared_ptr<detail::DiscoveryMemo> discovery_ = detail::make_discovery_memo();
    std::function<void()> on_destroy_;
};

/// The reference's name for the client type.
using III = Client;

/// Creates a client that connects to `url` (e.g. "ws://localhost:49134") in the background,
/// on an io thread the client owns (the reference's behaviour). Returns at once.
/// Throws Error(Errc::Runtime) for a URL that is not ws://host[:port][/path].
III_API std::shared_ptr<Client> register_worker(std::string url, InitOptions options = {});

/// As above, but the connection runs on `executor` (e.g. a coroutine service's own
/// io_context), which the caller must run; the client starts no thread of its own for it.
/// Coroutine handlers run on `executor`; blocking handlers on a pool created at the first
/// blocking registration (InitOptions::handler_threads). `executor` must belong to an
/// asio::io_context (Error(Errc::Runtime) otherwise). An io_context that one thread runs is
/// best made with Asio's concurrency hint 1 (`asio::io_context io{1};`): work posted from that
/// thread is then queued without a lock (the client's own io thread is made so).
III_API std::shared_ptr<Client> register_worker(asio::any_io_executor executor, std::string url,
                                                InitOptions options = {});
/// register_worker(io.get_executor(), url, options).
III_API std::shared_ptr<Client> register_worker(asio::io_context& io, std::string url,
                                                InitOptions options = {});

}  // namespace iii
