#pragma once
// The connection actor: one strand owns the socket, the pending invocations, the outbound
// queue and the connection state. Handlers run on a separate pool, off the strand.

#include "backoff.hpp"
#include "iii/client.hpp"
#include "iii/options.hpp"
#include "iii/trigger.hpp"
#include "protocol.hpp"
#include "telemetry_internal.hpp"  // [telemetry hook]
#include "transport/ws_transport.hpp"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/thread_pool.hpp>

#include <atomic>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <set>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace iii::detail {

using Strand = asio::strand<asio::io_context::executor_type>;

/// A registered function as the registry keeps it.
struct FunctionEntry {
    RegisterFunctionMessage message;
    /// Exactly one of these is set, except for HTTP-invoked functions (none).
    Handler handler;
    RawHandler raw_handler;
    BlockingHandler blocking_handler;
};

/// A trigger type this worker provides.
struct TriggerTypeEntry {
    protocol::RegisterTriggerType message;
    std::shared_ptr<TriggerHandler> handler;
};

/// Everything this worker has registered: the single source of the replay after a reconnect.
/// Guarded by its own mutex because registration calls are synchronous and may come from any
/// thread; the wire side (what was sent on which connection) lives on the strand.
struct Registry {
    std::mutex mutex;
    std::map<std::string, std::shared_ptr<const FunctionEntry>> functions;
    std::map<std::string, std::shared_ptr<const TriggerTypeEntry>> trigger_types;
    std::map<std::string, RegisterServiceMessage> services;
    std::map<std::string, protocol::RegisterTrigger> triggers;
};

/// One queued outbound frame; `invocation_id` set for a call that waits for its result.
struct OutboundFrame {
    std::string text;
    std::string invocation_id;
};

class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(asio::io_context& io, std::string url, InitOptions options);
    ~Connection();

    /// Starts the run loop (connect, serve, reconnect) on the strand.
    void start();

    // Registrations: record in the registry, then announce on the strand.
    FunctionRef add_function(FunctionEntry entry);
    void remove_function(const std::string& id);
    void add_trigger_type(TriggerTypeEntry entry);
    void remove_trigger_type(const std::string& id);
    void add_service(RegisterServiceMessage message);
    Trigger add_trigger(protocol::RegisterTrigger trigger);
    void remove_trigger(const std::string& id, const std::string& trigger_type);

    /// Sends an invocation and waits for its result (see Client::trigger).
    asio::awaitable<Value> invoke(std::string function_id, Value payload,
                                  std::optional<TriggerAction> action,
                                  std::optional<std::uint64_t> timeout_ms);

    ConnectionState state() const noexcept { return state_.load(); }
    asio::awaitable<bool> wait_for_state(ConnectionState target, std::chrono::milliseconds timeout);
    std::uint64_t add_state_listener(std::function<void(ConnectionState)> callback);
    /// Returns once the callback is not running and will not run again.
    void remove_state_listener(std::uint64_t token);
    /// Removes every listener (the client's destructor: listeners often capture the caller's
    /// locals, which may already be gone while the connection winds down).
    void clear_state_listeners();

    void shutdown();
    asio::awaitable<void> shutdown_async();
    /// Blocks until the run loop has ended (for owned io threads; never call on the strand).
    void wait_stopped(std::chrono::milliseconds limit);
    /// Stops the handler pool and joins it; handlers still suspended are abandoned. Called by
    /// the client's destructor before the io_context goes away, because a handler finishing
    /// later would post its result to a destroyed io_context.
    void stop_handlers();

    const std::string& url() const noexcept { return url_; }
    Strand& strand() noexcept { return strand_; }
    asio::io_context& io() noexcept { return io_; }
    const InitOptions& options() const noexcept { return options_; }
    /// Why the latest connect attempt failed; empty after a successful connect (any thread).
    std::optional<Error> last_connect_error() const;
    /// The worker id of the current connection ("" before the engine said it).
    std::string worker_id() const;
    /// Calls waiting for a result (for tests: cancellation and timeouts must leave none).
    std::size_t pending_count() const noexcept { return pending_size_.load(); }
    /// [telemetry hook] The OTLP exporter of this client; null when telemetry is off.
    const std::shared_ptr<telemetry::Telemetry>& telemetry() const noexcept { return telemetry_; }

private:
    struct PendingCall;
    struct Link;

    asio::awaitable<void> run();
    asio::awaitable<bool> connect_once();
    asio::awaitable<void> serve_until_closed();
    void on_opened();
    void replay_registrations();
    void send_worker_metadata();
    void flush_outbound();
    void set_state(ConnectionState next);
    void wake();

    // Called from transport callbacks (io thread), tagged with the link they belong to.
    void on_frame(const std::shared_ptr<Link>& link, std::string&& payload, bool binary);
    void on_closed(const std::shared_ptr<Link>& link, std::error_code ec, std::uint16_t code,
                   std::string reason);

    // Strand-side message handling.
    void handle_result(protocol::InvocationResult&& result);
    void handle_invoke(protocol::InvokeFunction&& invoke, const std::shared_ptr<Link>& link);
    void handle_register_trigger(protocol::RegisterTrigger&& message);
    void handle_unregister_trigger(protocol::UnregisterTrigger&& message);
    void fail_pending(const std::string& invocation_id, Error error);
    void fail_sent_calls(const Error& error);
    void fail_all_calls(const Error& error);

    /// Sends now when connected, else queues (bounded); strand only.
    void send_or_queue(std::string text, std::string invocation_id = {});
    /// Sends on the current link if it is still `generation`; drops otherwise. Strand only.
    void send_if_current(std::string_view text, std::uint64_t generation);
    /// Sends the registration behind `key` ("function:<id>", ...) unless this connection
    /// already carried it. Strand only.
    void announce(const std::string& key);
    /// Encodes the current registry entry for `key`; empty when it no longer exists.
    std::string encode_registration(const std::string& key);
    void send_unregistration(const std::string& key, std::string text);
    void reply_error(const std::shared_ptr<Link>& link, const protocol::InvokeFunction& invoke,
                     const char* code, const char* message);
    asio::awaitable<Value> call(std::string invocation_id, std::string function_id,
                                std::string text, std::chrono::milliseconds timeout);
    asio::awaitable<void> run_handler(std::shared_ptr<const FunctionEntry> entry,
                                      protocol::InvokeFunction invoke, std::shared_ptr<Link> link);
    void handler_finished();

    asio::io_context& io_;
    Strand strand_;
    std::string url_;
    InitOptions options_;
    WorkerMetadata metadata_;
    std::unique_ptr<asio::thread_pool> handler_pool_;

    Registry registry_;

    // ---- strand-only state ----
    std::shared_ptr<Link> link_;           // the current socket, or null
    std::uint64_t generation_ = 0;         // bumps on every successful connect
    bool connected_ = false;
    std::deque<OutboundFrame> outbound_;   // frames waiting for a connection
    std::unordered_map<std::string, std::shared_ptr<PendingCall>> pending_;
    asio::steady_timer wake_timer_;        // the run loop sleeps on it; wake() cancels it
    std::list<asio::steady_timer*> state_waiters_;
    Backoff backoff_;
    protocol::Encoder encoder_;
    std::map<std::string, TriggerConfig> provided_triggers_;  // triggers bound to our types
    std::set<std::string> announced_;      // registration keys sent on the current connection
    asio::steady_timer* drain_timer_ = nullptr;   // shutdown_async waits on it for handlers
    asio::steady_timer* stopped_timer_ = nullptr; // shutdown_async waits on it for the run loop
    bool stopping_ = false;
    bool graceful_ = false;
    bool run_finished_ = false;
    std::string worker_id_;

    std::atomic<ConnectionState> state_{ConnectionState::Disconnected};
    std::atomic<int> running_handlers_{0};
    std::atomic<std::size_t> pending_size_{0};  // mirrors pending_.size() for other threads
    std::atomic<bool> accepting_invocations_{true};
    std::atomic<bool> shut_down_{false};  // shutdown requested: new calls fail at once

    // Recursive and held while listeners run, so that removal waits for a running callback and a
    // callback may still add or remove listeners itself.
    mutable std::recursive_mutex listeners_mutex_;
    std::map<std::uint64_t, std::function<void(ConnectionState)>> listeners_;
    std::uint64_t next_listener_ = 1;

    mutable std::mutex stopped_mutex_;
    std::condition_variable stopped_cv_;
    bool stopped_ = false;
    mutable std::mutex worker_id_mutex_;
    std::optional<Error> last_connect_error_;  // under worker_id_mutex_
    std::shared_ptr<telemetry::Telemetry> telemetry_;  // [telemetry hook]
};

}  // namespace iii::detail
