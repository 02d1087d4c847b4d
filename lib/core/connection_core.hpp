#pragma once
// The connection's logic without I/O (sans-io), in the manner of Boost.Redis's run_fsm and
// Boost.MySQL's sans-io connection: events go in (socket opened, frame received, socket closed,
// a deadline reached at T, user requests), actions come out (send a frame, arm the one timer,
// complete a call, dispatch an invocation, close, state changed). No Asio, no socket, no clock:
// every event carries `now`, so unit tests drive it with scripted events and a fake clock
// (test/unit/core_test.cpp). lib/connection.cpp runs it on one strand and executes the actions.
//
// Not thread-safe: one caller at a time (the strand).

#include "backoff.hpp"
#include "invocation_id.hpp"
#include "small_pool.hpp"
#include "iii/error.hpp"
#include "iii/json.hpp"
#include "iii/options.hpp"
#include "iii/trigger.hpp"
#include "iii/types.hpp"
#include "protocol.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <variant>
#include <vector>

namespace iii::detail::core {

using Clock = std::chrono::steady_clock;  // the type only: the core never reads a clock
using TimePoint = Clock::time_point;
constexpr TimePoint never = TimePoint::max();

/// How a call ended: a value, or an exception (iii::Error, or std::system_error with
/// asio::error::operation_aborted for a cancellation).
struct CallOutcome {
    Value value;
    std::exception_ptr error;
};

/// Where a call's completion goes: the glue wraps the caller's completion handler in one, so
/// the handler lives in the pending table. complete() is called once, from the action.
class PendingSink {
public:
    virtual ~PendingSink() = default;
    virtual void complete(CallOutcome outcome) = 0;
};

/// What the glue runs for an invocation; opaque to the core (the glue derives from it).
struct HandlerSlot {
    virtual ~HandlerSlot() = default;
};

/// A registered function. `handler` null: HTTP-invoked (announced, never run here).
struct FunctionRegistration {
    RegisterFunctionMessage message;
    std::shared_ptr<const HandlerSlot> handler;
};

/// A trigger type this worker provides.
struct TriggerTypeRegistration {
    protocol::RegisterTriggerType message;
    std::shared_ptr<TriggerHandler> handler;
};

struct Config {
    std::string url;  // for messages only
    ReconnectionConfig reconnection{};
    ConnectionTimings timings{};
    std::chrono::milliseconds shutdown_grace{5000};
    /// How long a close handshake may take before the socket is dropped instead.
    std::chrono::milliseconds close_handshake_limit{2000};
    /// Handlers running at once; at the limit the glue stops reading from the socket.
    std::size_t max_concurrent_handlers = 1024;
    WorkerMetadata metadata{};
    /// 0.23: the worker's namespace (resolved: InitOptions, else $III_NAMESPACE), sent in the
    /// worker metadata.
    std::optional<std::string> worker_namespace{};
};

// ---- actions --------------------------------------------------------------------------------

namespace action {
/// Open a new socket (replacing none: the previous one is gone).
struct Connect {};
/// Write one text frame on the current socket.
struct Send {
    std::string text;
};
/// Send a WebSocket ping on the current socket.
struct Ping {};
/// Start the close handshake on the current socket.
struct Close {
    std::uint16_t code;
    std::string reason;
};
/// Drop the current socket without a handshake. No on_closed follows: the core already
/// treats the socket as gone.
struct Abort {};
/// (Re)arm the glue's single timer; `at == never` disarms it.
struct ArmTimer {
    TimePoint at;
};
/// Complete a call through its sink.
struct Complete {
    std::unique_ptr<PendingSink> sink;
    CallOutcome outcome;
};
/// Run a handler for `invoke`; report back with handler_finished(generation, reply).
struct Dispatch {
    std::shared_ptr<const HandlerSlot> handler;
    protocol::InvokeFunction invoke;
    std::uint64_t generation;
};
/// Run a trigger type's register_trigger (`bind` true) or unregister_trigger. For a bind,
/// answer with send_if_current(generation, encoded `result`, with its error set on failure).
struct DispatchTrigger {
    std::shared_ptr<TriggerHandler> handler;
    TriggerConfig config;
    bool bind;
    protocol::TriggerRegistrationResult result;
    std::uint64_t generation;
};
struct StateChanged {
    ConnectionState state;
    /// Why, for Failed (ConnectionCore::failure_reason()); empty otherwise.
    std::string reason{};
};
/// The engine named this connection (empty: the connection that had an id is gone).
struct WorkerIdChanged {
    std::string worker_id;
};
/// Why the latest connect attempt failed (for Client::last_connect_error()); empty: the
/// connection opened.
struct ConnectErrorChanged {
    std::string reason;
};
/// The engine refused one function (FUNCTION_NAMESPACE_CONFLICT): it is not registered, and
/// not replayed until it is registered again.
struct FunctionRejected {
    std::string function_id;
    RemoteError error;
};
/// An engine-to-worker `triggerregistrationresult` with an error (0.22+): the registration of
/// one of this worker's triggers failed. The glue surfaces it on the Trigger handle.
struct TriggerRegistrationFailed {
    protocol::TriggerRegistrationResult result;
};
/// Stop or resume reading from the socket (handler concurrency limit).
struct PauseReading {};
struct ResumeReading {};
/// A line for the log.
struct Log {
    int level;  // 0 debug, 1 info, 2 warn, 3 error
    std::string text;
};
/// The run is over (shutdown, max_retries, or a fatal rejection): nothing more happens.
struct Stopped {};
}  // namespace action

using Action = std::variant<action::Connect, action::Send, action::Ping, action::Close,
                            action::Abort, action::ArmTimer, action::Complete, action::Dispatch,
                            action::DispatchTrigger, action::StateChanged,
                            action::WorkerIdChanged, action::ConnectErrorChanged,
                            action::FunctionRejected, action::TriggerRegistrationFailed,
                            action::PauseReading, action::ResumeReading, action::Log,
                            action::Stopped>;

/// A call to another function, as the glue hands it over (frame already encoded).
struct Call {
    InvocationId invocation_id;
    std::string function_id;
    std::string text;
    TimePoint deadline = never;
    std::chrono::milliseconds timeout{0};  // for the timeout message
    std::unique_ptr<PendingSink> sink;
};

class ConnectionCore {
public:
    /// `jitter_seed` feeds the back-off's jitter (tests pass a fixed one).
    ConnectionCore(Config config, std::uint64_t jitter_seed);
    ~ConnectionCore();
    ConnectionCore(const ConnectionCore&) = delete;
    ConnectionCore& operator=(const ConnectionCore&) = delete;

    // ---- transport events ----
    /// Begins the first connect. Idempotent.
    void start(TimePoint now);
    void on_opened(TimePoint now);
    /// One text frame from the engine.
    void on_frame(TimePoint now, std::string_view text);
    /// A WebSocket pong (or any sign of life that is not a frame).
    void on_pong(TimePoint now);
    /// The socket is gone (after a close handshake, a failed connect or an I/O error). `ec`
    /// empty: a close handshake, `code` and `reason` the engine's. `by_us`: the SDK's WebSocket
    /// layer closed on its own with `code` and `reason` because the engine broke the protocol
    /// (e.g. 1007 after invalid UTF-8).
    void on_closed(TimePoint now, std::error_code ec, std::uint16_t code, std::string_view reason,
                   bool by_us = false);
    /// The timer armed by the last ArmTimer fired (or any time: early calls do nothing).
    void on_timer(TimePoint now);

    // ---- user requests ----
    void register_function(FunctionRegistration registration);
    void unregister_function(const std::string& id);
    void register_trigger_type(TriggerTypeRegistration registration);
    void unregister_trigger_type(const std::string& id);
    /// Replaces a service of the same id (re-announced).
    void register_service(RegisterServiceMessage message);
    void register_trigger(protocol::RegisterTrigger trigger);
    void unregister_trigger(const std::string& id, const std::string& trigger_type);
    /// A call waiting for its result: sent now, or queued while disconnected.
    void invoke(TimePoint now, Call call);
    /// A fire-and-forget frame (void trigger): sent now or queued; dropped once stopped.
    void send_void(std::string text);
    /// Withdraws the call: it completes with operation_aborted; a queued frame is not sent; a
    /// later result is ignored. Unknown ids (already completed) are ignored.
    void cancel(const InvocationId& invocation_id);
    /// Stops: `graceful` first refuses new invocations and lets running handlers finish
    /// (within shutdown_grace), then closes with 1000 and fails what is still pending.
    void shutdown(TimePoint now, bool graceful);
    /// A dispatched handler is done; `reply` (encoded invocationresult) is sent if the
    /// connection it came from is still the current one.
    void handler_finished(TimePoint now, std::uint64_t generation, std::optional<std::string> reply);
    /// Storage of a finished invocation (its result, its id, its traceparent) for the next
    /// one's decode (see protocol::Decoder::recycle); what is not kept is freed.
    void recycle(Value payload, std::string invocation_id, std::optional<std::string> traceparent = std::nullopt) {
        decoder_.recycle(std::move(payload), std::move(invocation_id), std::move(traceparent));
    }
    /// Sends `text` if connection `generation` is still the current one.
    void send_if_current(std::uint64_t generation, std::string text);

    /// The actions produced so far, in order; the glue runs them after each event.
    std::vector<Action> take_actions();
    /// The same into `out` (cleared first), which hands its capacity over to the next actions:
    /// a glue that keeps `out` between events allocates no vector per event.
    void take_actions(std::vector<Action>& out);
    bool has_actions() const noexcept { return !actions_.empty(); }

    // ---- observers (tests, glue snapshots) ----
    ConnectionState state() const noexcept { return state_; }
    std::size_t pending_count() const noexcept { return pending_.size(); }
    std::size_t queued_count() const noexcept { return outbound_.size(); }
    std::size_t running_handlers() const noexcept { return running_handlers_; }
    const std::string& worker_id() const noexcept { return worker_id_; }
    std::uint64_t generation() const noexcept { return generation_; }
    bool stopped() const noexcept { return phase_ == Phase::Stopped; }
    bool accepting_calls() const noexcept {
        return !shutting_down_ && !fatal_ && phase_ != Phase::Stopped;
    }
    /// Why the state is Failed (empty otherwise).
    const std::string& failure_reason() const noexcept { return failure_reason_; }
    const Config& config() const noexcept { return config_; }
    /// Functions the engine refused (FUNCTION_NAMESPACE_CONFLICT); not replayed.
    const std::set<std::string>& rejected_functions() const noexcept { return rejected_; }
    /// The earliest deadline (what the last ArmTimer said).
    TimePoint next_deadline() const noexcept { return armed_; }

private:
    enum class Phase { Idle, Connecting, Open, Closing, Waiting, Stopped };
    // The pending table and its deadline index take their nodes from small_pool: one node
    // each per call, recycled.
    using Deadlines = std::multimap<TimePoint, InvocationId, std::less<TimePoint>,
                                    small_pool::Allocator<std::pair<const TimePoint, InvocationId>>>;
    struct Pending {
        std::string function_id;
        std::unique_ptr<PendingSink> sink;
        TimePoint deadline;
        std::chrono::milliseconds timeout;
        Deadlines::iterator deadline_entry;
        bool sent = false;
    };
    using PendingTable = std::unordered_map<InvocationId, Pending, InvocationIdHash, std::equal_to<InvocationId>,
                                            small_pool::Allocator<std::pair<const InvocationId, Pending>>>;
    struct Outbound {
        std::string text;
        InvocationId invocation_id;  // empty: not a call
    };

    void emit(Action a) { actions_.push_back(std::move(a)); }
    void log(int level, std::string text);
    void set_state(ConnectionState next);
    void connect(TimePoint now);
    void socket_gone(TimePoint now, const std::string& why, bool worth_a_warning = false);
    void send_or_queue(std::string text, const InvocationId& invocation_id);
    void replay();
    void send_metadata();
    std::string encode_function(const FunctionRegistration& f);
    void complete(const InvocationId& invocation_id, CallOutcome outcome);
    void fail(const InvocationId& invocation_id, const Error& error);
    void fail_sent(const Error& error);
    void fail_all(const Error& error);
    void expire_calls(TimePoint now);
    void finish_shutdown(TimePoint now);
    /// Sends Close and waits (bounded) for the engine's answer; remembers what it sent.
    void start_close(TimePoint now, std::uint16_t code, std::string reason);
    void stop();
    void fatal(TimePoint now, RemoteError error);
    void handle_invoke(protocol::InvokeFunction&& invoke);
    void handle_register_trigger(protocol::RegisterTrigger&& message);
    void handle_unregister_trigger(protocol::UnregisterTrigger&& message);
    void handle_result(protocol::InvocationResult&& result);
    void handle_rejection(TimePoint now, protocol::RegistrationRejected&& rejected);
    void reply_error(const protocol::InvokeFunction& invoke, const char* code, std::string message);
    void rearm();
    bool connected() const noexcept { return phase_ == Phase::Open; }

    Config config_;
    Backoff backoff_;
    protocol::Encoder encoder_;
    protocol::Decoder decoder_;
    protocol::Message frame_;  // the last frame decoded (its strings are reused)
    std::vector<Action> actions_;

    Phase phase_ = Phase::Idle;
    ConnectionState state_ = ConnectionState::Disconnected;
    std::uint64_t generation_ = 0;  // bumps on every successful open
    bool opened_once_ = false;
    bool shutting_down_ = false;    // shutdown requested (graceful drain or not)
    bool draining_ = false;         // graceful: waiting for handlers
    bool reading_paused_ = false;
    bool close_requested_ = false;  // shutdown's close has begun
    std::uint16_t closing_code_ = 0;  // the Close the core sent, for the log
    std::string closing_reason_;
    std::optional<RemoteError> fatal_;  // a worker-level rejection: no more reconnects
    std::string failure_reason_;
    std::string connect_error_;  // why the latest attempt failed; empty once one opened

    // deadlines (never = none)
    TimePoint connect_deadline_ = never;
    TimePoint retry_at_ = never;
    TimePoint last_rx_{};
    TimePoint next_ping_ = never;
    TimePoint close_deadline_ = never;
    TimePoint drain_deadline_ = never;
    TimePoint armed_ = never;

    // registry (the single source of every replay)
    std::map<std::string, TriggerTypeRegistration> trigger_types_;
    std::map<std::string, RegisterServiceMessage> services_;
    std::map<std::string, FunctionRegistration> functions_;
    std::map<std::string, protocol::RegisterTrigger> triggers_;
    std::set<std::string> rejected_;
    std::map<std::string, TriggerConfig> provided_triggers_;  // bound to our types

    // calls
    PendingTable pending_;
    Deadlines deadlines_;  // earliest first, one per pending call
    std::deque<Outbound> outbound_;
    std::size_t running_handlers_ = 0;

    // engine identity (reattach)
    std::string worker_id_;
    std::string previous_worker_id_;
    std::optional<std::string> reattach_token_;
};

/// Rejection codes that end the connection for good (spec: WORKER_* and unknown codes).
bool is_fatal_rejection(std::string_view code) noexcept;

}  // namespace iii::detail::core
