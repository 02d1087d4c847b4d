#include "connection.hpp"

#include "invocation.hpp"
#include "log.hpp"
#include "trigger_status.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <random>
#include <thread>
#include <utility>

namespace iii::detail {
namespace {

using Clock = core::Clock;

// A call's deadline is now + timeout: keep the sum inside the clock's range.
constexpr std::chrono::milliseconds max_timeout = std::chrono::hours(24 * 365 * 50);

protocol::Encoder& thread_encoder() {
    // Handlers and callers encode on their own threads, so the strand only moves bytes.
    thread_local protocol::Encoder encoder;
    return encoder;
}

asio::io_context& io_of(const asio::any_io_executor& executor) {
    using IoExecutor = asio::io_context::executor_type;
    if (auto* e = executor.target<IoExecutor>()) return e->context();
    if (auto* e = executor.target<asio::strand<IoExecutor>>()) return e->get_inner_executor().context();
    throw Error(Errc::Runtime,
                "the client's executor must be an asio::io_context's (or a strand of one): the "
                "WebSocket transport runs on an io_context");
}

// The connection's strand over the io_context's own executor when the client's executor is
// one (see Connection::io_strand_); nullopt for any other executor.
std::optional<asio::strand<asio::io_context::executor_type>> io_strand_of(const asio::any_io_executor& executor) {
    using IoExecutor = asio::io_context::executor_type;
    if (auto* e = executor.target<IoExecutor>()) return asio::make_strand(*e);
    return std::nullopt;
}

core::Config core_config(const std::string& url, const InitOptions& options,
                         const std::optional<std::string>& worker_namespace) {
    core::Config c;
    c.url = url;
    c.reconnection = options.reconnection;
    c.timings = options.timings;
    c.shutdown_grace = options.shutdown_grace;
    c.max_concurrent_handlers = options.max_concurrent_handlers;
    c.metadata = options.metadata ? *options.metadata : WorkerMetadata::detect();
    c.worker_namespace = worker_namespace;
    return c;
}

// Calls a handler with `context` current (InvocationContext::current()) for exactly the
// synchronous call: the call that returns a coroutine handler's awaitable ends here, before
// anything is awaited, so the thread-local never leaks into other coroutines on this thread.
template <class F, class Arg>
auto call_in_scope(const InvocationContext& context, const F& handler, Arg&& arg) {
    InvocationScope scope(context);
    return handler(std::forward<Arg>(arg));
}

LogLevel level_of(int level) {
    switch (level) {
    case 0: return LogLevel::Debug;
    case 1: return LogLevel::Info;
    case 2: return LogLevel::Warn;
    default: return LogLevel::Error;
    }
}

}  // namespace

/// One socket. The glue only listens to the link it currently holds: callbacks of a link it
/// gave up on (connect timeout, idle abort) are dropped.
struct Connection::Link {
    std::shared_ptr<transport::Socket> socket;
    bool opened = false;
};

struct Connection::Waiter {
    std::uint64_t id;
    std::optional<ConnectionState> target;  // nullopt: the end of the run
    std::unique_ptr<WaitSink> sink;
};

Connection::Connection(asio::any_io_executor executor, std::string url, InitOptions options)
    : executor_(std::move(executor)),
      io_(io_of(executor_)),
      io_strand_(io_strand_of(executor_)),
      any_strand_(io_strand_ ? std::nullopt : std::make_optional(asio::make_strand(executor_))),
      strand_executor_(io_strand_ ? asio::any_io_executor(*io_strand_) : asio::any_io_executor(*any_strand_)),
      url_(std::move(url)),
      options_(std::move(options)),
      worker_namespace_(resolve_worker_namespace(options_)),
      core_(core_config(url_, options_, worker_namespace_), std::random_device{}()),
      timer_(strand_executor_) {
    // [telemetry hook] The handshake headers authenticate the telemetry socket too (RBAC); a
    // wss:// telemetry URL uses the worker's TLS settings.
    telemetry_ = telemetry::Telemetry::create(io_, url_, options_.otel.value_or(OtelConfig{}), options_.headers,
                                              options_.tls);
}

Connection::~Connection() {
    stop_handlers();
    release_link();
}

std::shared_ptr<asio::thread_pool> Connection::blocking_pool() {
    std::lock_guard lock(pool_mutex_);
    return pool_;
}

void Connection::stop_handlers() {
    std::shared_ptr<asio::thread_pool> pool;
    {
        std::lock_guard lock(pool_mutex_);
        pool = std::move(pool_);
    }
    if (!pool) return;
    pool->stop();
    // The last reference can be dropped by a blocking handler on the pool itself; joining
    // there would wait for this very thread. The pool's threads exit once stopped.
    if (pool->get_executor().running_in_this_thread()) {
        new std::shared_ptr<asio::thread_pool>(std::move(pool));  // intentionally leaked
        return;
    }
    pool->join();
}

// ---- the pump: core actions to I/O --------------------------------------------------------

void Connection::start() {
    dispatch_strand([self = shared_from_this()] {
        if (self->started_) return;
        self->started_ = true;
        self->core_.start(Clock::now());
        self->pump();
    });
}

void Connection::pump() {
    // An action can run user code that re-enters the strand inline (a listener, a call): its
    // events queue their actions in the core, and this loop runs them in order.
    if (pumping_) return;
    pumping_ = true;
    for (;;) {
        core_.take_actions(actions_);  // destroys the previous batch, reuses its capacity
        if (actions_.empty()) break;
        for (auto& a : actions_) {
            try {
                execute(a);
            } catch (const std::exception& e) {
                log(LogLevel::Error, "connection action failed: {}", e.what());
            }
        }
    }
    pumping_ = false;
}

void Connection::execute(core::Action& action) {
    namespace act = core::action;
    std::visit(
        [&](auto& a) {
            using A = std::decay_t<decltype(a)>;
            if constexpr (std::is_same_v<A, act::Connect>) {
                open_socket();
            } else if constexpr (std::is_same_v<A, act::Send>) {
                if (link_ && link_->opened)
                    if (auto ec = link_->socket->send(a.text, false))
                        log(LogLevel::Info, "send failed: {}", ec.message());
                frames_->give(std::move(a.text));  // the transport copied it
            } else if constexpr (std::is_same_v<A, act::Ping>) {
                if (link_) link_->socket->ping();
            } else if constexpr (std::is_same_v<A, act::Close>) {
                if (link_) link_->socket->close(a.code, a.reason);
            } else if constexpr (std::is_same_v<A, act::Abort>) {
                release_link();
            } else if constexpr (std::is_same_v<A, act::ArmTimer>) {
                arm_timer(a.at);
            } else if constexpr (std::is_same_v<A, act::Complete>) {
                a.sink->complete(std::move(a.outcome));
            } else if constexpr (std::is_same_v<A, act::Dispatch>) {
                dispatch_handler(a);
            } else if constexpr (std::is_same_v<A, act::DispatchTrigger>) {
                dispatch_trigger(a);
            } else if constexpr (std::is_same_v<A, act::StateChanged>) {
                {
                    std::lock_guard lock(worker_id_mutex_);
                    failure_reason_ = a.reason;
                }
                on_state(a.state, a.reason);
            } else if constexpr (std::is_same_v<A, act::WorkerIdChanged>) {
                {
                    std::lock_guard lock(worker_id_mutex_);
                    worker_id_ = a.worker_id;
                }
                if (telemetry_ && !a.worker_id.empty()) telemetry_->set_worker_id(a.worker_id);  // [telemetry hook]
            } else if constexpr (std::is_same_v<A, act::ConnectErrorChanged>) {
                std::lock_guard lock(worker_id_mutex_);
                last_connect_error_ = a.reason;
            } else if constexpr (std::is_same_v<A, act::FunctionRejected>) {
                std::lock_guard lock(worker_id_mutex_);
                rejected_functions_[a.function_id] = a.error;
            } else if constexpr (std::is_same_v<A, act::TriggerRegistrationFailed>) {
                report_trigger_registration(a.result);  // the Trigger handle's status; logged
            } else if constexpr (std::is_same_v<A, act::PauseReading>) {
                if (link_) link_->socket->pause_reading();
            } else if constexpr (std::is_same_v<A, act::ResumeReading>) {
                if (link_) link_->socket->resume_reading();
            } else if constexpr (std::is_same_v<A, act::Log>) {
                log(level_of(a.level), "{}", a.text);
            } else if constexpr (std::is_same_v<A, act::Stopped>) {
                release_link();
                timer_.cancel();
                timer_at_ = core::never;
                for (auto it = waiters_.begin(); it != waiters_.end();) {
                    if (!it->target) {
                        it->sink->complete({});
                        it = waiters_.erase(it);
                    } else {
                        ++it;
                    }
                }
                {
                    std::lock_guard lock(stopped_mutex_);
                    stopped_ = true;
                }
                stopped_cv_.notify_all();
            }
        },
        action);
}

void Connection::open_socket() {
    release_link();
    auto link = std::make_shared<Link>();
    std::weak_ptr<Connection> weak = weak_from_this();
    std::weak_ptr<Link> weak_link = link;
    // Transport callbacks run on the io_context's thread; each re-enters the strand with
    // dispatch (inline when the strand is free) and is dropped unless its link is current.
    auto enter = [weak, weak_link](auto f) {
        auto self = weak.lock();
        auto link = weak_link.lock();
        if (!self || !link) return;
        self->dispatch_strand([self, link, f = std::move(f)]() mutable {
            if (self->link_ != link) return;
            f(*self, *link);
            self->pump();
        });
    };
    transport::Callbacks callbacks;
    callbacks.on_open = [enter] {
        enter([](Connection& c, Link& l) {
            l.opened = true;
            c.core_.on_opened(Clock::now());
        });
    };
    // The frame travels to the strand in a pooled buffer, swapped with the transport's: its
    // message keeps a buffer for the next read, and the frame's goes back to the pool after.
    callbacks.on_message = [enter, frames = frames_](std::string&& payload, bool binary) {
        std::string frame = frames->take();
        frame.swap(payload);
        enter([frame = std::move(frame), binary](Connection& c, Link&) mutable {
            if (!binary) c.core_.on_frame(Clock::now(), frame);  // the worker socket carries text frames only
            c.frames_->give(std::move(frame));
        });
    };
    callbacks.on_pong = [enter] { enter([](Connection& c, Link&) { c.core_.on_pong(Clock::now()); }); };
    callbacks.on_close = [enter](std::error_code ec, std::uint16_t code, std::string reason) {
        enter([ec, code, reason = std::move(reason)](Connection& c, Link&) {
            c.release_link();
            // The transport closed on its own: the engine broke the WebSocket protocol.
            const bool by_us = ec.category() == transport::local_close_category();
            c.core_.on_closed(Clock::now(), by_us ? std::error_code() : ec, code, reason, by_us);
        });
    };
    try {
        // The core bounds the attempt (connect_timeout) and the close handshake itself; the
        // transport gets the same limits so that websocketpp's fixed 5 s ones never apply.
        transport::ConnectOptions connect_options;
        connect_options.tls = options_.tls;
        connect_options.open_timeout = options_.timings.connect_timeout;
        connect_options.close_timeout = core_.config().close_handshake_limit;
        link->socket = transport::connect(io_, url_, options_.headers, std::move(callbacks), connect_options);
    } catch (const std::exception& e) {
        log(LogLevel::Error, "cannot connect to {}: {}", url_, e.what());
        core_.on_closed(Clock::now(), std::make_error_code(std::errc::invalid_argument), 1006, e.what());
        return;
    }
    link_ = std::move(link);
}

void Connection::release_link() {
    if (!link_) return;
    auto link = std::move(link_);
    link->socket->detach();
    link->socket->abort();
    // The socket owns its websocketpp endpoint, and this may run inside one of its handlers:
    // let it go later, on the io thread, outside any transport handler.
    asio::post(io_, [link = std::move(link)] {});
}

void Connection::arm_timer(core::TimePoint at) {
    // One timer for the connection: connect, ping, idle, back-off, close and drain deadlines
    // and the earliest call deadline. A wait that fires before a later deadline only asks the
    // core, which re-arms; so a later deadline needs no new wait.
    if (at == core::never || timer_at_ <= at) return;
    timer_at_ = at;
    const auto seq = ++timer_seq_;
    timer_.expires_at(at);
    timer_.async_wait([weak = weak_from_this(), seq](std::error_code ec) {
        if (ec == asio::error::operation_aborted) return;
        auto self = weak.lock();
        if (!self) return;
        if (seq == self->timer_seq_) self->timer_at_ = core::never;
        self->core_.on_timer(Clock::now());
        self->pump();
        self->arm_timer(self->core_.next_deadline());
    });
}

void Connection::on_state(ConnectionState next, const std::string& reason) {
    state_ = next;
    {
        std::lock_guard lock(listeners_mutex_);
        std::vector<std::function<void(ConnectionState, const std::string&)>> callbacks;
        for (auto& [token, callback] : listeners_) callbacks.push_back(callback);
        for (auto& callback : callbacks) {
            try {
                callback(next, reason);
            } catch (const std::exception& e) {
                log(LogLevel::Warn, "connection state listener threw: {}", e.what());
            }
        }
    }
    // After the listeners: whoever waited for this state finds it seen by them too (a test
    // that records states through a listener and waits with wait_for_state reads them all).
    for (auto it = waiters_.begin(); it != waiters_.end();) {
        if (it->target == next) {
            it->sink->complete({});
            it = waiters_.erase(it);
        } else {
            ++it;
        }
    }
}

std::string Connection::worker_id() const {
    std::lock_guard lock(worker_id_mutex_);
    return worker_id_;
}

std::optional<Error> Connection::last_connect_error() const {
    std::lock_guard lock(worker_id_mutex_);
    if (last_connect_error_.empty()) return std::nullopt;
    return Error(Errc::WebSocket, last_connect_error_);
}

std::string Connection::failure_reason() const {
    std::lock_guard lock(worker_id_mutex_);
    return failure_reason_;
}

std::optional<RemoteError> Connection::function_rejection(const std::string& id) const {
    std::lock_guard lock(worker_id_mutex_);
    auto it = rejected_functions_.find(id);
    if (it == rejected_functions_.end()) return std::nullopt;
    return it->second;
}

void Connection::forget_rejection(const std::string& id) {
    std::lock_guard lock(worker_id_mutex_);
    rejected_functions_.erase(id);
}

// ---- registrations ------------------------------------------------------------------------

FunctionRef Connection::add_function(FunctionEntry entry) {
    const std::string id = entry.message.id;
    if (id.empty()) throw Error(Errc::Runtime, "function id must not be empty");
    {
        std::lock_guard lock(ids_mutex_);
        if (!function_ids_.insert(id).second)
            throw Error(Errc::Runtime, "function '" + id + "' is already registered");
    }
    core::FunctionRegistration registration;
    registration.message = std::move(entry.message);
    if (entry.handler || entry.raw_handler || entry.blocking_handler) {
        auto slot = std::make_shared<FunctionSlot>();
        slot->handler = std::move(entry.handler);
        slot->raw_handler = std::move(entry.raw_handler);
        slot->blocking_handler = std::move(entry.blocking_handler);
        if (slot->blocking_handler)
            std::call_once(pool_once_, [this] {
                unsigned threads = options_.handler_threads;
                if (threads == 0) threads = std::max(2u, std::thread::hardware_concurrency());
                std::lock_guard lock(pool_mutex_);
                pool_ = std::make_shared<asio::thread_pool>(threads);
                pool_threads_ = threads;
            });
        registration.handler = std::move(slot);
    }
    dispatch_strand([self = shared_from_this(), r = std::move(registration)]() mutable {
        // On the strand, in order with the core: a refusal of an earlier registration of this
        // id is not this one's.
        self->forget_rejection(r.message.id);
        self->core_.register_function(std::move(r));
        self->pump();
    });
    return FunctionRef(id, weak_from_this());
}

void Connection::remove_function(const std::string& id) {
    {
        std::lock_guard lock(ids_mutex_);
        if (!function_ids_.erase(id)) return;
    }
    dispatch_strand([self = shared_from_this(), id] {
        self->forget_rejection(id);
        self->core_.unregister_function(id);
        self->pump();
    });
}

void Connection::add_trigger_type(TriggerTypeEntry entry) {
    const std::string id = entry.message.id;
    if (id.empty()) throw Error(Errc::Runtime, "trigger type id must not be empty");
    if (!entry.handler) throw Error(Errc::Runtime, "trigger type '" + id + "' needs a handler");
    {
        std::lock_guard lock(ids_mutex_);
        if (!trigger_type_ids_.insert(id).second)
            throw Error(Errc::Runtime, "trigger type '" + id + "' is already registered");
    }
    core::TriggerTypeRegistration registration{std::move(entry.message), std::move(entry.handler)};
    dispatch_strand([self = shared_from_this(), r = std::move(registration)]() mutable {
        self->core_.register_trigger_type(std::move(r));
        self->pump();
    });
}

void Connection::remove_trigger_type(const std::string& id) {
    {
        std::lock_guard lock(ids_mutex_);
        if (!trigger_type_ids_.erase(id)) return;
    }
    dispatch_strand([self = shared_from_this(), id] {
        self->core_.unregister_trigger_type(id);
        self->pump();
    });
}

void Connection::add_service(RegisterServiceMessage message) {
    if (message.id.empty()) throw Error(Errc::Runtime, "service id must not be empty");
    dispatch_strand([self = shared_from_this(), m = std::move(message)]() mutable {
        self->core_.register_service(std::move(m));
        self->pump();
    });
}

Trigger Connection::add_trigger(protocol::RegisterTrigger trigger) {
    if (trigger.trigger_type.empty()) throw Error(Errc::Runtime, "trigger_type must not be empty");
    if (trigger.function_id.empty()) throw Error(Errc::Runtime, "function_id must not be empty");
    if (trigger.id.empty()) trigger.id = protocol::new_uuid();
    Trigger handle(trigger.id, trigger.trigger_type, weak_from_this());
    dispatch_strand([self = shared_from_this(), t = std::move(trigger)]() mutable {
        self->core_.register_trigger(std::move(t));
        self->pump();
    });
    return handle;
}

void Connection::remove_trigger(const std::string& id, const std::string& trigger_type) {
    dispatch_strand([self = shared_from_this(), id, trigger_type] {
        self->core_.unregister_trigger(id, trigger_type);
        self->pump();
    });
}

// ---- invocations (caller side) ------------------------------------------------------------

namespace {
asio::awaitable<Value> no_result() { co_return Value(); }

// The storage of this thread's last outbound traceparent, lent to the next one.
std::string& spare_traceparent() {
    thread_local std::string storage;
    return storage;
}

// A raw handler's JSON text as a Value.
asio::awaitable<Value> parsed(asio::awaitable<std::string> raw) {
    const std::string text = co_await std::move(raw);
    co_return Value::parse(text);
}
}  // namespace

asio::awaitable<Value> Connection::invoke(std::string function_id, Value payload,
                                          std::optional<TriggerAction> action,
                                          std::optional<std::chrono::milliseconds> timeout,
                                          std::optional<Value> metadata,
                                          std::optional<std::string> function_namespace) {
    if (shut_down_) throw Error(Errc::NotConnected, "iii is shut down");
    const bool is_void = action && std::holds_alternative<Void>(*action);
    protocol::InvokeFunction message;
    message.function_id = function_id;
    message.data = std::move(payload);
    message.action = std::move(action);
    message.metadata = std::move(metadata);  // 0.22+ forward it to the callee
    message.ns = invocation_namespace(message.function_id, function_namespace, worker_namespace_);
    // [telemetry hook] With telemetry on, the call gets a CLIENT span and carries that span's
    // context, so the callee's SERVER span is its child; off, the current context (if any) is
    // injected and nothing is allocated.
    telemetry::ClientSpan span;
    if (telemetry_) {
        span = telemetry_->begin_client_span(function_id);
        telemetry::inject(*span.context, message.traceparent, message.baggage, std::move(spare_traceparent()));
    } else {
        telemetry::inject(message.traceparent, message.baggage);
    }
    // Encoded here, on the caller's thread, into a pooled buffer that goes to the transport.
    std::string text = frames_->take();
    if (is_void) {
        text.assign(thread_encoder().encode(message));
        if (message.traceparent) spare_traceparent() = std::move(*message.traceparent);
        dispatch_strand([self = shared_from_this(), text = std::move(text)]() mutable {
            self->core_.send_void(std::move(text));
            self->pump();
        });
        if (telemetry_) telemetry_->end_client_span(span, nullptr);  // [telemetry hook]
        return no_result();
    }
    const InvocationId id = protocol::new_invocation_id();
    text.assign(thread_encoder().encode(message, id.view()));
    if (message.traceparent) spare_traceparent() = std::move(*message.traceparent);  // encoded: for the next call
    const auto limit = std::min(timeout.value_or(options_.invocation_timeout), max_timeout);
    if (!telemetry_) return async_call(id, std::move(function_id), std::move(text), limit, asio::use_awaitable);
    return async_traced_call(std::move(span), id, std::move(function_id), std::move(text), limit, asio::use_awaitable);
}

// ---- handlers (callee side) ---------------------------------------------------------------

void Connection::dispatch_handler(core::action::Dispatch& d) {
    auto slot = std::static_pointer_cast<const FunctionSlot>(d.handler);
    auto self = shared_from_this();
    if (slot->blocking_handler) {
        auto pool = blocking_pool();
        if (!pool) {  // the client is being destroyed
            core_.handler_finished(Clock::now(), d.generation, std::nullopt);
            return;
        }
        telemetry::ServerSpan span = begin_server_span(d.invoke);
        // Blocking handlers may block or burn CPU: never on the caller's executor.
        asio::co_spawn(pool->get_executor(),
                       run_handler(std::move(slot), small_pool::make_box<protocol::InvokeFunction>(std::move(d.invoke)),
                                   d.generation, std::move(span)),
                       asio::detached);
        return;
    }
    // Posted, not started inline: the handler must not run inside the transport's read
    // handler, nor hold the strand until its first suspension. The invocation is boxed: it
    // moves from here to the handler's coroutine as one pointer.
    auto invoke = small_pool::make_box<protocol::InvokeFunction>(std::move(d.invoke));
    small_pool::post(executor_, [self, slot, invoke = std::move(invoke), generation = d.generation]() mutable {
        telemetry::ServerSpan span = self->begin_server_span(*invoke);
        // [telemetry hook] With a span, the handler's coroutine runs on an executor that makes
        // the span's context current at every resumption: no wrapping coroutine per call.
        auto executor = span.context ? telemetry::traced_executor(self->executor_, span.context) : self->executor_;
        asio::co_spawn(executor, self->run_handler(std::move(slot), std::move(invoke), generation, std::move(span)),
                       asio::detached);
    });
}

telemetry::ServerSpan Connection::begin_server_span(const protocol::InvokeFunction& invoke) const {
    // [telemetry hook] SERVER span "call <id>"; none (no allocation) with telemetry off.
    if (!telemetry_) return {};
    return telemetry_->begin_server_span(invoke.function_id, invoke.traceparent, invoke.baggage);
}

asio::awaitable<void> Connection::run_handler(std::shared_ptr<const FunctionSlot> slot,
                                              small_pool::Box<protocol::InvokeFunction> invoke,
                                              std::uint64_t generation, telemetry::ServerSpan span) {
    protocol::InvocationResult reply;
    // In the frame: a (Value, InvocationContext) handler copies it during the call.
    // The invocation's fields move into the context (no copies): `invoke` keeps the data; the
    // reply takes the function and invocation ids back from the context once the handler is
    // done (finish_handler).
    InvocationContext context;
    context.function_id = std::move(invoke->function_id);
    context.invocation_id = std::move(invoke->invocation_id);
    context.metadata = std::move(invoke->metadata);
    context.traceparent = std::move(invoke->traceparent);
    context.baggage = std::move(invoke->baggage);
    try {
        if (slot->blocking_handler) {
            telemetry::ContextScope scope(span.context);
            reply.result = call_in_scope(std::as_const(context), slot->blocking_handler, std::move(invoke->data));
        } else {
            // The span's context is current already: dispatch_handler spawned this coroutine on
            // a traced executor. (One co_await: g++ 12 warns falsely on a coroutine that
            // co_awaits in two branches.)
            auto work = slot->handler
                            ? call_in_scope(std::as_const(context), slot->handler, std::move(invoke->data))
                            : parsed(call_in_scope(std::as_const(context), slot->raw_handler, invoke->data.dump()));
            reply.result = co_await std::move(work);
        }
    } catch (const Error& e) {
        if (const RemoteError* remote = e.remote())
            reply.error = *remote;  // a failed nested call: keep its code and message
        else
            reply.error = RemoteError{"invocation_failed", e.what(), std::nullopt};
    } catch (const std::exception& e) {
        reply.error = RemoteError{"invocation_failed", e.what(), std::nullopt};
    } catch (...) {
        reply.error = RemoteError{"invocation_failed", "handler threw a non-standard exception", std::nullopt};
    }
    // The connection's own work (the reply, the next dispatch) is not part of the span.
    telemetry::ContextScope outside_the_span(nullptr);
    finish_handler(generation, reply, context, span);
}

void Connection::finish_handler(std::uint64_t generation, protocol::InvocationResult& reply,
                                InvocationContext& invoke, telemetry::ServerSpan& span) {
    if (reply.error) reply.result.reset();
    if (telemetry_) telemetry_->end_server_span(span, reply.error ? &*reply.error : nullptr);  // [telemetry hook]
    std::optional<std::string> text;
    if (invoke.invocation_id) {
        // The handler is done with them.
        reply.invocation_id = std::move(*invoke.invocation_id);
        reply.function_id = std::move(invoke.function_id);
        text.emplace(frames_->take());
        text->assign(thread_encoder().encode(reply));  // encoded here, off the strand
    } else if (reply.error) {
        log(LogLevel::Warn, "void invocation of {} failed: {}", invoke.function_id, reply.error->message);
    }
    // The result and the id are encoded, the traceparent is done with: their storage serves the
    // next invocation's decode.
    Value spent = reply.result ? std::move(*reply.result) : Value();
    dispatch_strand([self = shared_from_this(), generation, text = std::move(text), spent = std::move(spent),
                     id = std::move(reply.invocation_id), traceparent = std::move(invoke.traceparent)]() mutable {
        self->core_.handler_finished(Clock::now(), generation, std::move(text));
        self->core_.recycle(std::move(spent), std::move(id), std::move(traceparent));
        self->pump();
    });
}

void Connection::dispatch_trigger(core::action::DispatchTrigger& d) {
    auto self = shared_from_this();
    auto work = [self, handler = std::move(d.handler), config = std::move(d.config), bind = d.bind,
                 result = std::move(d.result), generation = d.generation]() mutable -> asio::awaitable<void> {
        if (!bind) {
            try {
                co_await handler->unregister_trigger(std::move(config));
            } catch (const std::exception& e) {
                log(LogLevel::Warn, "unregister_trigger handler threw: {}", e.what());
            }
            co_return;
        }
        try {
            co_await handler->register_trigger(std::move(config));
        } catch (const std::exception& e) {
            result.error = RemoteError{"trigger_registration_failed", e.what(), std::nullopt};
        }
        std::string text(thread_encoder().encode(result));
        self->dispatch_strand([self, generation, text = std::move(text)]() mutable {
            self->core_.send_if_current(generation, std::move(text));
            self->pump();
        });
    };
    asio::post(executor_, [ex = executor_, work = std::move(work)]() mutable {
        asio::co_spawn(ex, std::move(work), asio::detached);
    });
}

// ---- waiting: state, end of run, shutdown -------------------------------------------------

template <class Token>
auto Connection::async_wait_for(std::optional<ConnectionState> target, bool shutdown_first,
                                OnCancel on_cancel, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code)>(
        [this, target, shutdown_first, on_cancel](auto handler) {
            auto self = shared_from_this();
            const auto id = next_waiter_++;
            auto slot = asio::get_associated_cancellation_slot(handler);
            if (slot.is_connected())
                slot.assign([self, id, on_cancel](asio::cancellation_type) {
                    self->post_strand([self, id, on_cancel] { self->cancel_waiter(id, on_cancel); });
                });
            auto sink = std::make_unique<TypedWaitSink<decltype(handler)>>(std::move(handler), executor_);
            dispatch_strand([self, id, target, shutdown_first, sink = std::move(sink)]() mutable {
                self->add_waiter(id, target, shutdown_first, std::move(sink));
            });
        },
        token);
}

void Connection::add_waiter(std::uint64_t id, std::optional<ConnectionState> target, bool shutdown_first,
                            std::unique_ptr<WaitSink> sink) {
    if (shutdown_first) {
        shut_down_ = true;
        core_.shutdown(Clock::now(), true);
        pump();
    }
    if (target ? core_.state() == *target : core_.stopped()) {
        sink->complete({});
        return;
    }
    waiters_.push_back(Waiter{id, target, std::move(sink)});
}

void Connection::cancel_waiter(std::uint64_t id, OnCancel on_cancel) {
    auto it = std::find_if(waiters_.begin(), waiters_.end(), [&](const Waiter& w) { return w.id == id; });
    if (it == waiters_.end()) return;
    if (on_cancel == OnCancel::Shutdown) {
        // run() cancelled: close with the handshake; the wait ends when the socket is closed.
        shut_down_ = true;
        core_.shutdown(Clock::now(), false);
        pump();
        return;
    }
    auto sink = std::move(it->sink);
    waiters_.erase(it);
    sink->complete(asio::error::operation_aborted);
}

asio::awaitable<void> Connection::run() {
    start();
    auto self = shared_from_this();
    co_await async_wait_for(std::nullopt, false, OnCancel::Shutdown, asio::use_awaitable);
}

asio::awaitable<bool> Connection::wait_for_state(ConnectionState target, std::chrono::milliseconds timeout) {
    using namespace asio::experimental::awaitable_operators;
    if (state_.load() == target) co_return true;
    auto self = shared_from_this();
    asio::steady_timer timer(co_await asio::this_coro::executor, std::min(timeout, max_timeout));
    auto reached = async_wait_for(target, false, OnCancel::Withdraw, asio::use_awaitable);
    auto expired = timer.async_wait(asio::use_awaitable);
    auto winner = co_await (std::move(reached) || std::move(expired));
    co_return winner.index() == 0 || state_.load() == target;
}

void Connection::shutdown() {
    shut_down_ = true;
    dispatch_strand([self = shared_from_this()] {
        self->core_.shutdown(Clock::now(), false);
        self->pump();
    });
}

asio::awaitable<void> Connection::shutdown_async() {
    shut_down_ = true;
    auto self = shared_from_this();
    co_await async_wait_for(std::nullopt, true, OnCancel::Withdraw, asio::use_awaitable);
}

void Connection::wait_stopped(std::chrono::milliseconds limit) {
    std::unique_lock lock(stopped_mutex_);
    stopped_cv_.wait_for(lock, limit, [this] { return stopped_; });
}

// ---- listeners ----------------------------------------------------------------------------

std::uint64_t Connection::add_state_listener(std::function<void(ConnectionState)> callback) {
    return add_state_listener([callback = std::move(callback)](ConnectionState state, const std::string&) {
        callback(state);
    });
}

std::uint64_t Connection::add_state_listener(std::function<void(ConnectionState, const std::string&)> callback) {
    std::lock_guard lock(listeners_mutex_);
    const auto token = next_listener_++;
    listeners_.emplace(token, std::move(callback));
    return token;
}

void Connection::remove_state_listener(std::uint64_t token) {
    std::lock_guard lock(listeners_mutex_);
    listeners_.erase(token);
}

void Connection::clear_state_listeners() {
    std::lock_guard lock(listeners_mutex_);
    listeners_.clear();
}

}  // namespace iii::detail
