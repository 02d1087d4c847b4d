#pragma once
// The connection actor: thin Asio glue around the sans-io core (lib/core/). One strand on the
// caller's executor runs the core, the socket callbacks and ONE timer; nothing else touches the
// core, so no mutex guards connection state. Calls are asynchronous operations whose completion
// handler lives in the core's pending table; their cancellation handler only posts cancel(id)
// onto the strand. Coroutine handlers run on the caller's executor (posted off the strand);
// blocking handlers on a pool created at the first blocking registration.

#include "backoff.hpp"
#include "core/connection_core.hpp"
#include "iii/client.hpp"
#include "iii/options.hpp"
#include "iii/trigger.hpp"
#include "invocation_id.hpp"
#include "protocol.hpp"
#include "pooled_post.hpp"
#include "small_pool.hpp"
#include "string_pool.hpp"
#include "telemetry_internal.hpp"  // [telemetry hook]
#include "transport/ws_transport.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associator.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/thread_pool.hpp>

#include <atomic>
#include <condition_variable>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace iii::detail {

/// A strand on an io_context (channel ends use one each).
using Strand = asio::strand<asio::io_context::executor_type>;

/// A registered function as client.cpp hands it over.
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

/// The glue's side of a core::HandlerSlot: what runs for an invocation.
struct FunctionSlot final : core::HandlerSlot {
    Handler handler;
    RawHandler raw_handler;
    BlockingHandler blocking_handler;
};

/// Completes an asynchronous operation of signature void(Args...) on its handler's executor.
/// The slot is cleared there, on the executor that may also emit cancellation into it
/// (Asio's cancellation slots are not thread-safe).
template <class Handler, class Fallback>
class Completion {
public:
    Completion(Handler handler, const Fallback& fallback)
        : handler_(std::move(handler)),
          work_(asio::prefer(asio::get_associated_executor(handler_, fallback),
                             asio::execution::outstanding_work.tracked)) {}
    template <class... Args>
    void complete(Args&&... args) {
        auto executor = work_;
        small_pool::post(executor, [h = std::move(handler_), work = std::move(work_),
                                    ... args = std::forward<Args>(args)]() mutable {
            asio::get_associated_cancellation_slot(h).clear();
            std::move(h)(std::move(args)...);
        });
    }
    Handler& handler() noexcept { return handler_; }

private:
    Handler handler_;
    std::decay_t<decltype(asio::prefer(std::declval<asio::associated_executor_t<Handler, Fallback>>(),
                                       asio::execution::outstanding_work.tracked))>
        work_;
};

/// A call's completion handler that first ends the call's CLIENT span (invoke() with telemetry
/// on): the span needs no coroutine of its own around the call. Asio sees the inner handler's
/// executor, allocator and cancellation slot (the associator below).
template <class Handler>
struct EndsClientSpan {
    Handler handler;
    telemetry::ClientSpan span;
    // Weak: the handler may outlive its client (queued on the caller's executor when the client
    // is destroyed), and the exporter must not then be destroyed by it, after its io_context.
    std::weak_ptr<telemetry::Telemetry> telemetry;

    void operator()(std::exception_ptr error, Value value) {
        if (auto exporter = telemetry.lock()) exporter->end_client_span(span, error);
        std::move(handler)(std::move(error), std::move(value));
    }
};

class Connection : public std::enable_shared_from_this<Connection> {
public:
    /// `executor` must belong to an asio::io_context (websocketpp runs on one); throws
    /// Error(Errc::Runtime) otherwise.
    Connection(asio::any_io_executor executor, std::string url, InitOptions options);
    Connection(asio::io_context& io, std::string url, InitOptions options)
        : Connection(io.get_executor(), std::move(url), std::move(options)) {}
    ~Connection();

    /// Starts connecting (on the strand). Idempotent.
    void start();
    /// The connection's lifetime: starts, then completes when the run is over (shutdown,
    /// Failed). Cancelling it shuts the connection down (close handshake) and completes once
    /// the socket is closed.
    asio::awaitable<void> run();

    // Registrations: checked here (synchronously, for the caller's exceptions), recorded and
    // announced on the strand.
    FunctionRef add_function(FunctionEntry entry);
    void remove_function(const std::string& id);
    void add_trigger_type(TriggerTypeEntry entry);
    void remove_trigger_type(const std::string& id);
    void add_service(RegisterServiceMessage message);
    Trigger add_trigger(protocol::RegisterTrigger trigger);
    void remove_trigger(const std::string& id, const std::string& trigger_type);

    /// Sends an invocation and waits for its result (see Client::trigger). `metadata` goes
    /// out as `invokefunction.metadata`; the `namespace` is invocation_namespace() of
    /// `function_namespace` and the worker's namespace. Not a coroutine itself: it encodes
    /// the frame and throws (NotConnected after shutdown, Serde) when called, and returns the
    /// call's operation, so a call costs one coroutine frame less; callers co_await it at once.
    asio::awaitable<Value> invoke(std::string function_id, Value payload,
                                  std::optional<TriggerAction> action,
                                  std::optional<std::chrono::milliseconds> timeout,
                                  std::optional<Value> metadata = std::nullopt,
                                  std::optional<std::string> function_namespace = std::nullopt);

    /// The state, read from any thread (an atomic snapshot of the strand's state).
    ConnectionState state() const noexcept { return state_.load(); }
    asio::awaitable<bool> wait_for_state(ConnectionState target, std::chrono::milliseconds timeout);
    std::uint64_t add_state_listener(std::function<void(ConnectionState)> callback);
    /// The same with the reason of a Failed state (empty for the other states).
    std::uint64_t add_state_listener(std::function<void(ConnectionState, const std::string&)> callback);
    /// Why the state is Failed (max_retries, or the engine's rejection "<code>: <message>");
    /// empty otherwise. A copy, readable from any thread.
    std::string failure_reason() const;
    /// The engine's refusal of function `id` (FUNCTION_NAMESPACE_CONFLICT), if it refused the
    /// current registration of that id. Any thread.
    std::optional<RemoteError> function_rejection(const std::string& id) const;
    /// Returns once the callback is not running and will not run again.
    void remove_state_listener(std::uint64_t token);
    /// Removes every listener (the client's destructor: listeners often capture the caller's
    /// locals, which may already be gone while the connection winds down).
    void clear_state_listeners();

    /// Closes now (pending calls fail with NotConnected). Any thread; returns at once.
    void shutdown();
    /// Drains running handlers (shutdown_grace), closes with the handshake, completes when
    /// the run is over.
    asio::awaitable<void> shutdown_async();
    /// Blocks until the run is over (for owned io threads; never call on the strand).
    void wait_stopped(std::chrono::milliseconds limit);
    /// Stops the blocking-handler pool and joins it; handlers still running are abandoned.
    void stop_handlers();

    const std::string& url() const noexcept { return url_; }
    asio::io_context& io() noexcept { return io_; }
    /// The caller's executor (handlers run there).
    const asio::any_io_executor& executor() const noexcept { return executor_; }
    /// The connection's strand, as an executor.
    asio::any_io_executor strand() const { return strand_executor_; }
    const InitOptions& options() const noexcept { return options_; }
    /// The worker's namespace, resolved once at construction (InitOptions, else
    /// $III_NAMESPACE); unset: the engine's `default`.
    const std::optional<std::string>& worker_namespace() const noexcept { return worker_namespace_; }
    /// The worker id of the current connection ("" before the engine said it); an atomic
    /// snapshot, readable from any thread.
    std::string worker_id() const;
    /// Why the latest connect attempt failed; empty once a connect succeeded (any thread).
    std::optional<Error> last_connect_error() const;
    /// Calls whose caller still waits (an atomic count, exact from any thread: a call leaves
    /// it before its completion is posted to the caller, so cancellation and timeouts leave
    /// none behind).
    std::size_t pending_count() const noexcept { return live_calls_->load(); }
    /// Threads of the blocking-handler pool (0 until the first blocking registration).
    std::size_t handler_pool_threads() const noexcept { return pool_threads_.load(); }
    /// [telemetry hook] The OTLP exporter of this client; null when telemetry is off.
    const std::shared_ptr<telemetry::Telemetry>& telemetry() const noexcept { return telemetry_; }

    /// Starts a call: the frame `text` (invocation `invocation_id`) goes out now or on connect;
    /// completes with void(std::exception_ptr, Value) on the handler's executor.
    template <class Token>
    auto async_call(InvocationId invocation_id, std::string function_id, std::string text,
                    std::chrono::milliseconds timeout, Token&& token) {
        return asio::async_initiate<Token, void(std::exception_ptr, Value)>(
            [this](auto handler, InvocationId id, std::string function, std::string frame,
                   std::chrono::milliseconds limit) {
                this->initiate_call(std::move(handler), std::move(id), std::move(function),
                              std::move(frame), limit);
            },
            token, std::move(invocation_id), std::move(function_id), std::move(text), timeout);
    }
    /// async_call() with the call's CLIENT span, ended when the call completes (before the
    /// handler runs: error status when it failed).
    template <class Token>
    auto async_traced_call(telemetry::ClientSpan span, InvocationId invocation_id, std::string function_id,
                           std::string text, std::chrono::milliseconds timeout, Token&& token) {
        return asio::async_initiate<Token, void(std::exception_ptr, Value)>(
            [this](auto handler, telemetry::ClientSpan client_span, InvocationId id, std::string function,
                   std::string frame, std::chrono::milliseconds limit) {
                using Inner = decltype(handler);
                this->initiate_call(EndsClientSpan<Inner>{std::move(handler), std::move(client_span), telemetry_},
                                    std::move(id), std::move(function), std::move(frame), limit);
            },
            token, std::move(span), std::move(invocation_id), std::move(function_id), std::move(text), timeout);
    }

private:
    struct Link;
    struct Waiter;
    class WaitSink {
    public:
        virtual ~WaitSink() = default;
        virtual void complete(std::error_code ec) = 0;
    };
    template <class Handler>
    class TypedWaitSink;
    template <class Handler>
    class CallSink;

    template <class Handler>
    void initiate_call(Handler handler, InvocationId invocation_id, std::string function_id,
                       std::string text, std::chrono::milliseconds timeout);
    /// A waiter for a state (`target`) or for the end of the run (nullopt). `on_cancel`:
    /// what a cancellation of the waiting coroutine does.
    enum class OnCancel { Withdraw, Shutdown };
    template <class Token>
    auto async_wait_for(std::optional<ConnectionState> target, bool shutdown_first, OnCancel on_cancel,
                        Token&& token);
    void add_waiter(std::uint64_t id, std::optional<ConnectionState> target, bool shutdown_first,
                    std::unique_ptr<WaitSink> sink);
    void cancel_waiter(std::uint64_t id, OnCancel on_cancel);

    /// Runs the core's actions until there are none (strand only; re-entry is absorbed).
    void pump();
    void execute(core::Action& action);
    void open_socket();
    void release_link();
    void arm_timer(core::TimePoint at);
    void on_state(ConnectionState state, const std::string& reason);
    void forget_rejection(const std::string& id);
    void dispatch_handler(core::action::Dispatch& dispatch);
    void dispatch_trigger(core::action::DispatchTrigger& dispatch);
    asio::awaitable<void> run_handler(std::shared_ptr<const FunctionSlot> slot, small_pool::Box<protocol::InvokeFunction> invoke,
                                      std::uint64_t generation, telemetry::ServerSpan span);
    telemetry::ServerSpan begin_server_span(const protocol::InvokeFunction& invoke) const;
    void finish_handler(std::uint64_t generation, protocol::InvocationResult& reply,
                        InvocationContext& invoke, telemetry::ServerSpan& span);
    std::shared_ptr<asio::thread_pool> blocking_pool();

    asio::any_io_executor executor_;
    asio::io_context& io_;
    // The one strand. Over the io_context's executor type itself when the client's executor is
    // a plain io_context executor: Asio 1.22's any_io_executor allocates the result of every
    // property query, and a strand over one queries `blocking` on each dispatch from outside.
    // Over the client's executor otherwise (a strand of it, nested, as documented).
    std::optional<asio::strand<asio::io_context::executor_type>> io_strand_;
    std::optional<asio::strand<asio::any_io_executor>> any_strand_;
    asio::any_io_executor strand_executor_;  // the same strand, type-erased
    template <class F>
    void dispatch_strand(F&& f) {
        if (io_strand_) asio::dispatch(*io_strand_, std::forward<F>(f));
        else asio::dispatch(*any_strand_, std::forward<F>(f));
    }
    template <class F>
    void post_strand(F&& f) {
        if (io_strand_) asio::post(*io_strand_, std::forward<F>(f));
        else asio::post(*any_strand_, std::forward<F>(f));
    }
    std::string url_;
    InitOptions options_;
    std::optional<std::string> worker_namespace_;  // const after construction

    // ---- strand-only ----
    core::ConnectionCore core_;
    std::shared_ptr<Link> link_;  // the current socket, or null
    asio::steady_timer timer_;
    core::TimePoint timer_at_ = core::never;  // expiry of the outstanding wait
    std::uint64_t timer_seq_ = 0;
    bool pumping_ = false;
    std::vector<core::Action> actions_;  // pump()'s batch, its capacity kept between events
    bool started_ = false;
    std::list<Waiter> waiters_;

    // ---- snapshots and cross-thread bits (atomics; documented where read) ----
    std::atomic<ConnectionState> state_{ConnectionState::Disconnected};
    std::shared_ptr<std::atomic<std::size_t>> live_calls_ = std::make_shared<std::atomic<std::size_t>>(0);
    // Frame buffers: encoded calls and replies are written into these and given back once
    // sent; received frames swap theirs with the transport's. Shared with the transport
    // callbacks, which may outlive a Connection by a few handlers.
    std::shared_ptr<StringPool> frames_ = std::make_shared<StringPool>();
    std::atomic<bool> shut_down_{false};  // shutdown requested: new calls fail at once
    // The worker id as published by the strand for other threads: a copy behind its own small
    // lock (not connection state: the strand never reads it back). Not std::atomic<shared_ptr>,
    // whose libstdc++ 12 lock bit ThreadSanitizer cannot see.
    mutable std::mutex worker_id_mutex_;
    std::string last_connect_error_;  // under worker_id_mutex_, as published by the strand
    std::string worker_id_;
    // Also published by the strand, under the same lock: Failed's reason and the functions the
    // engine refused (for FunctionRef::rejection()).
    std::string failure_reason_;
    std::map<std::string, RemoteError> rejected_functions_;
    std::atomic<std::uint64_t> next_waiter_{1};

    // Function ids, for the synchronous duplicate check of register_function (the registry
    // itself lives in the core, on the strand).
    std::mutex ids_mutex_;
    std::set<std::string> function_ids_;
    std::set<std::string> trigger_type_ids_;

    // The blocking-handler pool, created on the first blocking registration.
    std::once_flag pool_once_;
    mutable std::mutex pool_mutex_;  // the pool's lifetime only
    std::shared_ptr<asio::thread_pool> pool_;
    std::atomic<std::size_t> pool_threads_{0};

    // Recursive and held while listeners run, so that removal waits for a running callback and a
    // callback may still add or remove listeners itself.
    mutable std::recursive_mutex listeners_mutex_;
    std::map<std::uint64_t, std::function<void(ConnectionState, const std::string&)>> listeners_;
    std::uint64_t next_listener_ = 1;

    // wait_stopped() for owned io threads.
    mutable std::mutex stopped_mutex_;
    std::condition_variable stopped_cv_;
    bool stopped_ = false;
    std::shared_ptr<telemetry::Telemetry> telemetry_;  // [telemetry hook]
};

// ---- templates --------------------------------------------------------------------------------

/// A call's completion, claimed exactly once: by the strand (result, error, timeout) or by
/// the caller's cancellation handler, whichever comes first. So a cancellation completes on
/// the caller's executor without waiting for the connection's thread.
template <class Handler>
struct CallCompletion {
    CallCompletion(Handler handler, const asio::any_io_executor& fallback,
                   std::shared_ptr<std::atomic<std::size_t>> live)
        : completion(std::move(handler), fallback), live(std::move(live)) {
        live_count()->fetch_add(1);
    }
    /// True for the one caller that completes the call; it leaves the live count before the
    /// completion is posted, so the awaiting coroutine never sees itself counted.
    bool claim() noexcept {
        if (claimed.exchange(true, std::memory_order_acq_rel)) return false;
        live->fetch_sub(1);
        return true;
    }
    std::atomic<std::size_t>* live_count() const noexcept { return live.get(); }
    std::atomic<bool> claimed{false};
    Completion<Handler, asio::any_io_executor> completion;
    std::shared_ptr<std::atomic<std::size_t>> live;
};

template <class Handler>
class Connection::CallSink final : public core::PendingSink {
public:
    explicit CallSink(std::shared_ptr<CallCompletion<Handler>> shared) : shared_(std::move(shared)) {}
    // One per call: recycled (the core deletes it through PendingSink's virtual destructor,
    // which calls these).
    static void* operator new(std::size_t size) { return small_pool::allocate(size); }
    static void operator delete(void* p, std::size_t size) noexcept { small_pool::deallocate(p, size); }
    void complete(core::CallOutcome outcome) override {
        if (shared_->claim()) shared_->completion.complete(std::move(outcome.error), std::move(outcome.value));
    }

private:
    std::shared_ptr<CallCompletion<Handler>> shared_;
};

template <class Handler>
class Connection::TypedWaitSink final : public Connection::WaitSink {
public:
    TypedWaitSink(Handler handler, const asio::any_io_executor& fallback) : completion_(std::move(handler), fallback) {}
    void complete(std::error_code ec) override { completion_.complete(ec); }

private:
    Completion<Handler, asio::any_io_executor> completion_;
};

template <class Handler>
void Connection::initiate_call(Handler handler, InvocationId invocation_id, std::string function_id,
                               std::string text, std::chrono::milliseconds timeout) {
    auto self = shared_from_this();
    // The completion and its control block in one recycled block.
    auto shared = std::allocate_shared<CallCompletion<Handler>>(small_pool::Allocator<CallCompletion<Handler>>(),
                                                                std::move(handler), executor_, live_calls_);
    // Runs on the caller's thread: the slot is the caller's, and so is this assignment. The
    // cancellation handler runs there too: it completes the call at once (posted to the
    // caller's executor) and only posts the clean-up onto the strand, so it touches no
    // connection state and does not wait for the connection's thread.
    auto slot = asio::get_associated_cancellation_slot(shared->completion.handler());
    if (slot.is_connected())
        slot.assign([self, shared, id = invocation_id, function = function_id](asio::cancellation_type type) {
            if ((type & (asio::cancellation_type::terminal | asio::cancellation_type::partial |
                         asio::cancellation_type::total)) == asio::cancellation_type::none)
                return;
            if (shared->claim())
                shared->completion.complete(
                    std::make_exception_ptr(std::system_error(asio::error::operation_aborted,
                                                              "invocation of " + function + " cancelled")),
                    Value());
            self->post_strand([self, id] {
                self->core_.cancel(id);
                self->pump();
            });
        });
    core::Call call;
    call.invocation_id = std::move(invocation_id);
    call.function_id = std::move(function_id);
    call.text = std::move(text);
    call.timeout = timeout;
    call.deadline = core::Clock::now() + timeout;
    call.sink = std::make_unique<CallSink<Handler>>(std::move(shared));
    dispatch_strand([self, call = std::move(call)]() mutable {
        self->core_.invoke(core::Clock::now(), std::move(call));
        self->pump();
    });
}

}  // namespace iii::detail

namespace asio {
// EndsClientSpan is transparent to Asio: the inner handler's associated executor, allocator,
// cancellation slot and immediate executor are its own (as for Asio's own binders).
template <template <typename, typename> class Associator, class Handler, class DefaultCandidate>
struct associator<Associator, iii::detail::EndsClientSpan<Handler>, DefaultCandidate> {
    using type = typename Associator<Handler, DefaultCandidate>::type;
    static type get(const iii::detail::EndsClientSpan<Handler>& h,
                    const DefaultCandidate& c = DefaultCandidate()) noexcept {
        return Associator<Handler, DefaultCandidate>::get(h.handler, c);
    }
};
}  // namespace asio
