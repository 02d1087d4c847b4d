#include "connection.hpp"

#include "log.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/dispatch.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <thread>

namespace iii::detail {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto as_tuple = asio::experimental::as_tuple(asio::use_awaitable);
// How long a close handshake may take before the socket is dropped instead.
constexpr std::chrono::milliseconds close_handshake_limit{2000};

std::int64_t now_ticks() { return Clock::now().time_since_epoch().count(); }

protocol::Encoder& thread_encoder() {
    // Handlers and callers encode on their own threads, so the strand only moves bytes.
    thread_local protocol::Encoder encoder;
    return encoder;
}

std::string function_key(const std::string& id) { return "function:" + id; }
std::string trigger_type_key(const std::string& id) { return "trigger_type:" + id; }
std::string service_key(const std::string& id) { return "service:" + id; }
std::string trigger_key(const std::string& id) { return "trigger:" + id; }

}  // namespace

struct Connection::PendingCall {
    explicit PendingCall(Strand& strand) : timer(strand) {}
    asio::steady_timer timer;  // expires at the deadline; cancelled when the call completes
    std::optional<Value> result;
    std::exception_ptr error;
    std::uint64_t sent_generation = 0;  // 0 while still queued
};

struct Connection::Link {
    std::shared_ptr<transport::Socket> socket;
    std::uint64_t generation = 0;
    protocol::Decoder decoder;  // used by the transport's message callback only
    std::atomic<std::int64_t> last_rx{0};
    bool opened = false;  // strand
    bool closed = false;  // strand
};

Connection::Connection(asio::io_context& io, std::string url, InitOptions options)
    : io_(io),
      strand_(asio::make_strand(io)),
      url_(std::move(url)),
      options_(std::move(options)),
      metadata_(options_.metadata ? *options_.metadata : WorkerMetadata::detect()),
      wake_timer_(strand_),
      backoff_(options_.reconnection) {
    unsigned threads = options_.handler_threads;
    if (threads == 0) threads = std::max(2u, std::thread::hardware_concurrency());
    handler_pool_ = std::make_unique<asio::thread_pool>(threads);
    telemetry_ = telemetry::Telemetry::create(url_, options_.otel.value_or(OtelConfig{}),
                                             options_.tls);  // [telemetry hook]
}

Connection::~Connection() { stop_handlers(); }

void Connection::stop_handlers() {
    auto pool = std::move(handler_pool_);
    if (!pool) return;
    pool->stop();
    // The last reference can be dropped by a handler coroutine on the pool itself; joining
    // there would wait for this very thread. The pool's threads exit once stopped.
    bool on_pool = false;
    try {
        on_pool = pool->get_executor().running_in_this_thread();
    } catch (...) {
    }
    if (on_pool) {
        (void)pool.release();  // intentionally leaked: its threads end on their own
        return;
    }
    pool->join();
}

void Connection::start() {
    asio::co_spawn(strand_, [self = shared_from_this()]() { return self->run(); },
                   [self = shared_from_this()](std::exception_ptr error) {
                       if (error) {
                           try {
                               std::rethrow_exception(error);
                           } catch (const std::exception& e) {
                               log(LogLevel::Error, "connection loop ended: {}", e.what());
                           }
                       }
                       self->run_finished_ = true;
                       if (self->state_.load() != ConnectionState::Failed)
                           self->set_state(ConnectionState::Disconnected);
                       self->fail_all_calls(Error(Errc::NotConnected, "iii is shut down"));
                       if (self->stopped_timer_) self->stopped_timer_->cancel();
                       {
                           std::lock_guard lock(self->stopped_mutex_);
                           self->stopped_ = true;
                       }
                       self->stopped_cv_.notify_all();
                   });
}

std::optional<Error> Connection::last_connect_error() const {
    std::lock_guard lock(worker_id_mutex_);
    return last_connect_error_;
}

std::string Connection::worker_id() const {
    std::lock_guard lock(worker_id_mutex_);
    return worker_id_;
}

// ---- run loop -----------------------------------------------------------------------------

asio::awaitable<void> Connection::run() {
    bool first_attempt = true;
    while (!stopping_) {
        set_state(first_attempt ? ConnectionState::Connecting : ConnectionState::Reconnecting);
        first_attempt = false;
        const bool opened = co_await connect_once();
        if (opened) {
            on_opened();
            co_await serve_until_closed();
        }
        if (stopping_) break;
        const auto delay = opened ? backoff_.after_drop() : backoff_.next_after_failure();
        if (!opened && backoff_.exhausted()) {
            set_state(ConnectionState::Failed);
            fail_all_calls(Error(Errc::NotConnected, "gave up reconnecting: max_retries reached"));
            co_return;
        }
        set_state(ConnectionState::Reconnecting);
        log(LogLevel::Info, "reconnecting to {} in {} ms", url_, delay.count());
        const auto until = Clock::now() + delay;
        while (!stopping_ && Clock::now() < until) {
            wake_timer_.expires_at(until);
            co_await wake_timer_.async_wait(as_tuple);
        }
    }
}

asio::awaitable<bool> Connection::connect_once() {
    auto link = std::make_shared<Link>();
    link->generation = generation_ + 1;
    std::weak_ptr<Connection> weak = shared_from_this();
    // The socket owns these callbacks and the link owns the socket: the callbacks hold the link
    // weakly, or every connection would keep itself alive.
    std::weak_ptr<Link> weak_link = link;
    transport::Callbacks callbacks;
    callbacks.on_open = [weak, weak_link] {
        auto self = weak.lock();
        auto link = weak_link.lock();
        if (self && link)
            asio::dispatch(self->strand_, [self, link] {
                link->opened = true;
                self->wake();
            });
    };
    callbacks.on_message = [weak, weak_link](std::string&& payload, bool binary) {
        auto self = weak.lock();
        auto link = weak_link.lock();
        if (self && link) self->on_frame(link, std::move(payload), binary);
    };
    callbacks.on_pong = [weak_link] {
        if (auto link = weak_link.lock()) link->last_rx = now_ticks();
    };
    callbacks.on_close = [weak, weak_link](std::error_code ec, std::uint16_t code, std::string reason) {
        auto self = weak.lock();
        auto link = weak_link.lock();
        if (self && link)
            asio::dispatch(self->strand_, [self, link, ec, code, reason = std::move(reason)]() mutable {
                self->on_closed(link, ec, code, std::move(reason));
            });
    };
    {
        // The id belongs to one connection; the new one's workerregistered sets it again.
        std::lock_guard lock(worker_id_mutex_);
        worker_id_.clear();
    }
    try {
        transport::ConnectOptions connect_options;  // [transport options]
        connect_options.tls = options_.tls;
        connect_options.open_timeout = options_.timings.connect_timeout;
        connect_options.close_timeout = close_handshake_limit;
        link->socket = transport::connect(io_, url_, options_.headers, std::move(callbacks),
                                          connect_options);
    } catch (const std::exception& e) {
        log(LogLevel::Error, "cannot connect to {}: {}", url_, e.what());
        co_return false;
    }
    link_ = link;
    const auto limit = options_.timings.connect_timeout;
    const auto deadline = limit.count() > 0 ? Clock::now() + limit : Clock::time_point::max();
    while (!link->opened && !link->closed && !stopping_ && Clock::now() < deadline) {
        wake_timer_.expires_at(deadline);
        co_await wake_timer_.async_wait(as_tuple);
    }
    if (link->opened && !link->closed && !stopping_) co_return true;
    if (!link->closed) log(LogLevel::Info, "connect to {} timed out", url_);
    link->socket->detach();
    link->socket->abort();
    link_.reset();
    co_return false;
}

void Connection::on_opened() {
    connected_ = true;
    {
        std::lock_guard lock(worker_id_mutex_);
        last_connect_error_.reset();
    }
    generation_ = link_->generation;
    link_->last_rx = now_ticks();
    backoff_.reset();
    announced_.clear();
    log(LogLevel::Info, "connected to {}", url_);
    replay_registrations();
    flush_outbound();
    send_worker_metadata();
    set_state(ConnectionState::Connected);
}

asio::awaitable<void> Connection::serve_until_closed() {
    auto link = link_;
    const auto ping_interval = options_.timings.ping_interval;
    const auto idle_timeout = options_.timings.idle_timeout;
    auto next_ping = Clock::now() + ping_interval;
    std::optional<Clock::time_point> close_deadline;
    while (!link->closed) {
        if (stopping_ && !close_deadline) {
            // shutdown: the close handshake has started; give it a bounded time.
            close_deadline = Clock::now() + close_handshake_limit;
        }
        auto wake_at = Clock::time_point::max();
        const auto last_rx = Clock::time_point(Clock::duration(link->last_rx.load()));
        if (close_deadline) {
            wake_at = *close_deadline;
        } else {
            if (ping_interval.count() > 0) wake_at = std::min(wake_at, next_ping);
            if (idle_timeout.count() > 0) wake_at = std::min(wake_at, last_rx + idle_timeout);
        }
        wake_timer_.expires_at(wake_at);
        co_await wake_timer_.async_wait(as_tuple);
        if (link->closed) break;
        const auto now = Clock::now();
        if (close_deadline) {
            if (now >= *close_deadline) {
                log(LogLevel::Info, "close handshake timed out; dropping the socket");
                break;
            }
            continue;
        }
        const auto rx = Clock::time_point(Clock::duration(link->last_rx.load()));
        if (idle_timeout.count() > 0 && now - rx >= idle_timeout) {
            // The engine never pings, so silence past the idle timeout means a half-open
            // connection: without this a dead engine would wedge every pending call.
            log(LogLevel::Warn, "no frame from the engine for {} ms; reconnecting",
                std::chrono::duration_cast<std::chrono::milliseconds>(now - rx).count());
            break;
        }
        if (ping_interval.count() > 0 && now >= next_ping) {
            link->socket->ping();
            next_ping = now + ping_interval;
        }
    }
    link->closed = true;
    link->socket->detach();
    link->socket->abort();
    if (link_ == link) link_.reset();
    connected_ = false;
    fail_sent_calls(Error(Errc::NotConnected, "the connection to the engine was lost"));
}

void Connection::on_closed(const std::shared_ptr<Link>& link, std::error_code ec,
                           std::uint16_t code, std::string reason) {
    if (link->closed) return;
    link->closed = true;
    if (ec && !link->opened) {
        // A failed connect: remembered for last_connect_error() and for the calls that time
        // out waiting for the connection. TLS failures carry their reason in `reason`.
        const std::string why = reason.empty() ? ec.message() : reason;
        log(reason.empty() ? LogLevel::Info : LogLevel::Warn, "cannot connect to {}: {}",
            url_.substr(0, url_.find('?')), why);
        std::lock_guard lock(worker_id_mutex_);
        last_connect_error_.emplace(Errc::WebSocket, why, ec);
    } else if (ec)
        log(LogLevel::Info, "connection closed: {}", reason.empty() ? ec.message() : reason);
    else
        log(LogLevel::Info, "connection closed by the engine ({} {})", code, reason);
    if (link == link_) {
        connected_ = false;
        // Fail at once: the engine dropped this connection's invocations with it.
        fail_sent_calls(Error(Errc::NotConnected, "the connection to the engine was lost"));
    }
    wake();
}

void Connection::wake() { wake_timer_.cancel(); }

void Connection::set_state(ConnectionState next) {
    if (state_.exchange(next) == next) return;
    for (auto* waiter : state_waiters_) waiter->cancel();
    std::lock_guard lock(listeners_mutex_);
    std::vector<std::function<void(ConnectionState)>> callbacks;
    for (auto& [token, callback] : listeners_) callbacks.push_back(callback);
    for (auto& callback : callbacks) {
        try {
            callback(next);
        } catch (const std::exception& e) {
            log(LogLevel::Warn, "connection state listener threw: {}", e.what());
        }
    }
}

// ---- registrations ------------------------------------------------------------------------

std::string Connection::encode_registration(const std::string& key) {
    const auto colon = key.find(':');
    const std::string kind = key.substr(0, colon);
    const std::string id = key.substr(colon + 1);
    std::lock_guard lock(registry_.mutex);
    if (kind == "function") {
        auto it = registry_.functions.find(id);
        if (it == registry_.functions.end()) return {};
        return std::string(encoder_.encode(protocol::RegisterFunction{it->second->message}));
    }
    if (kind == "trigger_type") {
        auto it = registry_.trigger_types.find(id);
        if (it == registry_.trigger_types.end()) return {};
        return std::string(encoder_.encode(it->second->message));
    }
    if (kind == "service") {
        auto it = registry_.services.find(id);
        if (it == registry_.services.end()) return {};
        return std::string(encoder_.encode(protocol::RegisterService{it->second}));
    }
    auto it = registry_.triggers.find(id);
    if (it == registry_.triggers.end()) return {};
    return std::string(encoder_.encode(it->second));
}

void Connection::announce(const std::string& key) {
    // Not connected: the replay on connect carries it. Already sent on this connection (by the
    // replay): sending again would duplicate it.
    if (!connected_ || announced_.count(key)) return;
    std::string text = encode_registration(key);
    if (text.empty()) return;  // unregistered again before we got here
    announced_.insert(key);
    send_if_current(text, generation_);
}

void Connection::send_unregistration(const std::string& key, std::string text) {
    announced_.erase(key);
    // A registration of the same id made after the unregister is already in the registry:
    // the engine must keep it, so the stale unregister is not sent.
    if (!encode_registration(key).empty()) return;
    if (connected_) send_if_current(text, generation_);
}

void Connection::replay_registrations() {
    // Spec order: trigger types, services, functions, triggers; each key exactly once.
    std::vector<std::string> keys;
    {
        std::lock_guard lock(registry_.mutex);
        for (auto& [id, entry] : registry_.trigger_types) keys.push_back(trigger_type_key(id));
        for (auto& [id, entry] : registry_.services) keys.push_back(service_key(id));
        for (auto& [id, entry] : registry_.functions) keys.push_back(function_key(id));
        for (auto& [id, entry] : registry_.triggers) keys.push_back(trigger_key(id));
    }
    for (const auto& key : keys) announce(key);
}

void Connection::send_worker_metadata() {
    Value data = Value::object();
    data.set("runtime", metadata_.runtime);
    data.set("version", metadata_.version);
    data.set("name", metadata_.name);
    data.set("os", metadata_.os);
    if (metadata_.pid) data.set("pid", *metadata_.pid);
    if (metadata_.telemetry) {
        Value telemetry = Value::object();
        const auto& t = *metadata_.telemetry;
        if (t.language) telemetry.set("language", *t.language);
        if (t.project_name) telemetry.set("project_name", *t.project_name);
        if (t.framework) telemetry.set("framework", *t.framework);
        if (t.amplitude_api_key) telemetry.set("amplitude_api_key", *t.amplitude_api_key);
        data.set("telemetry", std::move(telemetry));
    }
    protocol::InvokeFunction message;
    message.function_id = "engine::workers::register";
    message.data = std::move(data);
    message.action = Void{};
    send_if_current(encoder_.encode(message), generation_);
}

FunctionRef Connection::add_function(FunctionEntry entry) {
    const std::string id = entry.message.id;
    if (id.empty()) throw Error(Errc::Runtime, "function id must not be empty");
    {
        std::lock_guard lock(registry_.mutex);
        if (registry_.functions.count(id))
            throw Error(Errc::Runtime, "function '" + id + "' is already registered");
        registry_.functions.emplace(id, std::make_shared<const FunctionEntry>(std::move(entry)));
    }
    asio::post(strand_, [self = shared_from_this(), key = function_key(id)] { self->announce(key); });
    return FunctionRef(id, weak_from_this());
}

void Connection::remove_function(const std::string& id) {
    {
        std::lock_guard lock(registry_.mutex);
        if (!registry_.functions.erase(id)) return;
    }
    protocol::UnregisterFunction message{id};
    std::string text(thread_encoder().encode(message));
    asio::post(strand_, [self = shared_from_this(), key = function_key(id), text = std::move(text)] {
        self->send_unregistration(key, text);
    });
}

void Connection::add_trigger_type(TriggerTypeEntry entry) {
    const std::string id = entry.message.id;
    if (id.empty()) throw Error(Errc::Runtime, "trigger type id must not be empty");
    if (!entry.handler) throw Error(Errc::Runtime, "trigger type '" + id + "' needs a handler");
    {
        std::lock_guard lock(registry_.mutex);
        if (registry_.trigger_types.count(id))
            throw Error(Errc::Runtime, "trigger type '" + id + "' is already registered");
        registry_.trigger_types.emplace(id, std::make_shared<const TriggerTypeEntry>(std::move(entry)));
    }
    asio::post(strand_, [self = shared_from_this(), key = trigger_type_key(id)] { self->announce(key); });
}

void Connection::remove_trigger_type(const std::string& id) {
    {
        std::lock_guard lock(registry_.mutex);
        if (!registry_.trigger_types.erase(id)) return;
    }
    std::string text(thread_encoder().encode(protocol::UnregisterTriggerType{id}));
    asio::post(strand_, [self = shared_from_this(), key = trigger_type_key(id), text = std::move(text)] {
        self->send_unregistration(key, text);
    });
}

void Connection::add_service(RegisterServiceMessage message) {
    const std::string id = message.id;
    if (id.empty()) throw Error(Errc::Runtime, "service id must not be empty");
    {
        std::lock_guard lock(registry_.mutex);
        registry_.services[id] = std::move(message);
    }
    asio::post(strand_, [self = shared_from_this(), key = service_key(id)] {
        // Re-registering a service replaces it: let the new version go out.
        self->announced_.erase(key);
        self->announce(key);
    });
}

Trigger Connection::add_trigger(protocol::RegisterTrigger trigger) {
    if (trigger.trigger_type.empty()) throw Error(Errc::Runtime, "trigger_type must not be empty");
    if (trigger.function_id.empty()) throw Error(Errc::Runtime, "function_id must not be empty");
    if (trigger.id.empty()) trigger.id = protocol::new_uuid();
    const std::string id = trigger.id;
    const std::string type = trigger.trigger_type;
    {
        std::lock_guard lock(registry_.mutex);
        registry_.triggers[id] = std::move(trigger);
    }
    asio::post(strand_, [self = shared_from_this(), key = trigger_key(id)] { self->announce(key); });
    return Trigger(id, type, weak_from_this());
}

void Connection::remove_trigger(const std::string& id, const std::string& trigger_type) {
    {
        std::lock_guard lock(registry_.mutex);
        if (!registry_.triggers.erase(id)) return;
    }
    std::string text(thread_encoder().encode(protocol::UnregisterTrigger{id, trigger_type}));
    asio::post(strand_, [self = shared_from_this(), key = trigger_key(id), text = std::move(text)] {
        self->send_unregistration(key, text);
    });
}

// ---- outbound -----------------------------------------------------------------------------

void Connection::send_if_current(std::string_view text, std::uint64_t generation) {
    if (!connected_ || !link_ || generation != generation_) {
        log(LogLevel::Debug, "dropping a frame for a connection that is gone");
        return;
    }
    if (auto ec = link_->socket->send(text, false))
        log(LogLevel::Info, "send failed: {}", ec.message());
}

void Connection::send_or_queue(std::string text, std::string invocation_id) {
    if (connected_ && link_) {
        if (!link_->socket->send(text, false)) {
            if (!invocation_id.empty())
                if (auto it = pending_.find(invocation_id); it != pending_.end())
                    it->second->sent_generation = generation_;
            return;
        }
    }
    outbound_.push_back({std::move(text), std::move(invocation_id)});
    const std::size_t limit = std::max<std::size_t>(options_.reconnection.max_pending_messages, 1);
    while (outbound_.size() > limit) {
        OutboundFrame dropped = std::move(outbound_.front());
        outbound_.pop_front();
        if (!dropped.invocation_id.empty())
            fail_pending(dropped.invocation_id,
                         Error(Errc::NotConnected,
                               "dropped: more than max_pending_messages frames queued while disconnected"));
    }
}

void Connection::flush_outbound() {
    std::deque<OutboundFrame> frames;
    frames.swap(outbound_);
    for (auto& frame : frames) {
        // A call that already timed out or was cancelled is not sent: its result would be
        // ignored, and the callee would do the work for nobody.
        if (!frame.invocation_id.empty() && !pending_.count(frame.invocation_id)) continue;
        send_or_queue(std::move(frame.text), std::move(frame.invocation_id));
    }
}

// ---- invocations (caller side) ------------------------------------------------------------

asio::awaitable<Value> Connection::invoke(std::string function_id, Value payload,
                                          std::optional<TriggerAction> action,
                                          std::optional<std::uint64_t> timeout_ms) {
    if (shut_down_) throw Error(Errc::NotConnected, "iii is shut down");
    const bool is_void = action && std::holds_alternative<Void>(*action);
    protocol::InvokeFunction message;
    message.function_id = function_id;
    message.data = std::move(payload);
    message.action = std::move(action);
    // [telemetry hook] With telemetry on, the call gets a CLIENT span and carries that span's
    // context, so the callee's SERVER span is its child; off, the current context (if any) is
    // injected and nothing is allocated.
    telemetry::ClientSpan span;
    if (telemetry_) {
        span = telemetry_->begin_client_span(function_id);
        telemetry::inject(*span.context, message.traceparent, message.baggage);
    } else {
        telemetry::inject(message.traceparent, message.baggage);
    }
    if (is_void) {
        std::string text(thread_encoder().encode(message));
        asio::post(strand_, [self = shared_from_this(), text = std::move(text)]() mutable {
            if (!self->stopping_ && !self->run_finished_) self->send_or_queue(std::move(text));
        });
        if (telemetry_) telemetry_->end_client_span(span, nullptr);  // [telemetry hook]
        co_return Value();
    }
    message.invocation_id = protocol::new_uuid();
    std::string text(thread_encoder().encode(message));
    const auto timeout = timeout_ms ? std::chrono::milliseconds(*timeout_ms) : options_.invocation_timeout;
    if (!telemetry_)
        co_return co_await asio::co_spawn(
            strand_, call(*message.invocation_id, std::move(function_id), std::move(text), timeout),
            asio::use_awaitable);
    // [telemetry hook] The span ends with the call: error status when it throws (remote error,
    // timeout, disconnect, cancellation).
    std::exception_ptr failure;
    std::optional<Value> result;
    try {
        result.emplace(co_await asio::co_spawn(
            strand_, call(*message.invocation_id, std::move(function_id), std::move(text), timeout),
            asio::use_awaitable));
    } catch (...) {
        failure = std::current_exception();
    }
    telemetry_->end_client_span(span, failure);
    if (failure) std::rethrow_exception(failure);
    co_return std::move(*result);
}

asio::awaitable<Value> Connection::call(std::string invocation_id, std::string function_id,
                                        std::string text, std::chrono::milliseconds timeout) {
    // Runs on the strand. Keep the actor alive until the call is done.
    auto self = shared_from_this();
    if (stopping_) throw Error(Errc::NotConnected, "iii is shut down");
    if (run_finished_) throw Error(Errc::NotConnected, "the connection gave up reconnecting");
    auto pending = std::make_shared<PendingCall>(strand_);
    pending->timer.expires_after(timeout);
    pending_.emplace(invocation_id, pending);
    pending_size_ = pending_.size();
    struct Erase {
        Connection* connection;
        const std::string& id;
        PendingCall* call;
        ~Erase() {
            // Removes the entry however the wait ends (result, timeout, cancellation, throw).
            auto it = connection->pending_.find(id);
            if (it != connection->pending_.end() && it->second.get() == call) connection->pending_.erase(it);
            connection->pending_size_ = connection->pending_.size();
        }
    } erase{this, invocation_id, pending.get()};
    send_or_queue(std::move(text), invocation_id);
    if (pending->error) std::rethrow_exception(pending->error);  // dropped from the queue
    auto [ec] = co_await pending->timer.async_wait(as_tuple);
    if (pending->error) std::rethrow_exception(pending->error);
    if (pending->result) co_return std::move(*pending->result);
    if (ec == asio::error::operation_aborted)
        throw std::system_error(asio::error::operation_aborted, "invocation of " + function_id + " cancelled");
    std::string why;
    if (!connected_)
        if (auto error = last_connect_error()) why = std::string(" (not connected: ") + error->what() + ")";
    throw Error(Errc::Timeout, "invocation of " + function_id + " timed out after " +
                                   std::to_string(timeout.count()) + " ms" + why);
}

void Connection::handle_result(protocol::InvocationResult&& result) {
    auto it = pending_.find(result.invocation_id);
    if (it == pending_.end()) {
        log(LogLevel::Debug, "result for unknown invocation {} ignored", result.invocation_id);
        return;
    }
    auto pending = it->second;
    pending_.erase(it);
    pending_size_ = pending_.size();
    if (result.error)
        pending->error = std::make_exception_ptr(Error(std::move(*result.error)));
    else
        pending->result = result.result ? std::move(*result.result) : Value();
    pending->timer.cancel();
}

void Connection::fail_pending(const std::string& invocation_id, Error error) {
    auto it = pending_.find(invocation_id);
    if (it == pending_.end()) return;
    auto pending = it->second;
    pending_.erase(it);
    pending_size_ = pending_.size();
    pending->error = std::make_exception_ptr(std::move(error));
    pending->timer.cancel();
}

void Connection::fail_sent_calls(const Error& error) {
    std::vector<std::string> ids;
    for (auto& [id, call] : pending_)
        if (call->sent_generation != 0) ids.push_back(id);
    for (auto& id : ids) fail_pending(id, error);
}

void Connection::fail_all_calls(const Error& error) {
    std::vector<std::string> ids;
    for (auto& [id, call] : pending_) ids.push_back(id);
    for (auto& id : ids) fail_pending(id, error);
    outbound_.clear();
}

// ---- incoming frames ----------------------------------------------------------------------

void Connection::on_frame(const std::shared_ptr<Link>& link, std::string&& payload, bool /*binary*/) {
    link->last_rx = now_ticks();
    protocol::Message message;
    protocol::DecodeFailure failure;
    // Decoded here, on the transport's thread, so the strand only sees finished messages.
    if (!link->decoder.decode(payload, message, failure)) {
        log(LogLevel::Warn, "malformed frame from the engine skipped: {}", failure.reason);
        if (failure.invocation_id) {
            asio::dispatch(strand_, [self = shared_from_this(), id = *failure.invocation_id,
                                     reason = failure.reason] {
                self->fail_pending(id, Error(Errc::Serde, "malformed result frame: " + reason));
            });
        }
        return;
    }
    std::visit(
        [&](auto&& m) {
            using M = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<M, protocol::InvocationResult>) {
                asio::dispatch(strand_, [self = shared_from_this(), m = std::move(m)]() mutable {
                    self->handle_result(std::move(m));
                });
            } else if constexpr (std::is_same_v<M, protocol::InvokeFunction>) {
                handle_invoke(std::move(m), link);
            } else if constexpr (std::is_same_v<M, protocol::Ping>) {
                link->socket->send(R"({"type":"pong"})", false);
            } else if constexpr (std::is_same_v<M, protocol::WorkerRegistered>) {
                std::lock_guard lock(worker_id_mutex_);
                worker_id_ = m.worker_id;
                if (telemetry_) telemetry_->set_worker_id(m.worker_id);  // [telemetry hook]
            } else if constexpr (std::is_same_v<M, protocol::RegisterTrigger>) {
                asio::dispatch(strand_, [self = shared_from_this(), m = std::move(m)]() mutable {
                    self->handle_register_trigger(std::move(m));
                });
            } else if constexpr (std::is_same_v<M, protocol::UnregisterTrigger>) {
                asio::dispatch(strand_, [self = shared_from_this(), m = std::move(m)]() mutable {
                    self->handle_unregister_trigger(std::move(m));
                });
            } else if constexpr (std::is_same_v<M, protocol::EngineError>) {
                log(LogLevel::Error, "engine refused the connection: {}: {}", m.error.code, m.error.message);
            } else if constexpr (std::is_same_v<M, protocol::RegistrationRejected>) {
                log(LogLevel::Error, "engine rejected a registration: {} {}", m.code,
                    m.function_id.value_or(""));
            } else if constexpr (std::is_same_v<M, protocol::Pong>) {
                // last_rx already moved forward
            } else {
                log(LogLevel::Debug, "ignoring {} from the engine", protocol::type_name(message));
            }
        },
        std::move(message));
}

void Connection::reply_error(const std::shared_ptr<Link>& link, const protocol::InvokeFunction& invoke,
                             const char* code, const char* message) {
    if (!invoke.invocation_id) return;
    protocol::InvocationResult reply;
    reply.invocation_id = *invoke.invocation_id;
    reply.function_id = invoke.function_id;
    reply.error = RemoteError{code, message, std::nullopt};
    link->socket->send(thread_encoder().encode(reply), false);
}

void Connection::handle_invoke(protocol::InvokeFunction&& invoke, const std::shared_ptr<Link>& link) {
    // Runs on the transport's thread: handlers start without a hop through the strand.
    std::shared_ptr<const FunctionEntry> entry;
    {
        std::lock_guard lock(registry_.mutex);
        auto it = registry_.functions.find(invoke.function_id);
        if (it != registry_.functions.end()) entry = it->second;
    }
    if (!entry) {
        reply_error(link, invoke, "function_not_found", "Function not found");
        return;
    }
    if (!accepting_invocations_) {
        reply_error(link, invoke, "invocation_failed", "worker is shutting down");
        return;
    }
    if (!entry->handler && !entry->raw_handler && !entry->blocking_handler) {
        reply_error(link, invoke, "function_not_invokable",
                    "Function is HTTP-invoked and cannot be invoked locally");
        return;
    }
    if (!handler_pool_) return;  // the client is being destroyed
    ++running_handlers_;
    const bool inline_handler = options_.handlers_on_io_thread && !entry->blocking_handler;
    auto work = run_handler(std::move(entry), std::move(invoke), link);
    if (inline_handler)
        asio::co_spawn(io_, std::move(work), asio::detached);  // starts after this frame, not inside it
    else
        asio::co_spawn(*handler_pool_, std::move(work), asio::detached);
}

asio::awaitable<void> Connection::run_handler(std::shared_ptr<const FunctionEntry> entry,
                                              protocol::InvokeFunction invoke, std::shared_ptr<Link> link) {
    auto self = shared_from_this();
    protocol::InvocationResult reply;
    reply.function_id = invoke.function_id;
    // [telemetry hook] SERVER span "call <id>", current across the handler's co_awaits.
    telemetry::ServerSpan span;
    if (telemetry_) span = telemetry_->begin_server_span(invoke.function_id, invoke.traceparent, invoke.baggage);
    try {
        if (entry->handler) {
            auto work = telemetry::with_context(span.context, entry->handler(std::move(invoke.data)));
            reply.result = co_await std::move(work);
        } else if (entry->blocking_handler) {
            telemetry::ContextScope scope(span.context);
            reply.result = entry->blocking_handler(std::move(invoke.data));
        } else {
            auto work = telemetry::with_context(span.context, entry->raw_handler(invoke.data.dump()));
            std::string out = co_await std::move(work);
            reply.result = Value::parse(out);
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
    if (reply.error) reply.result.reset();
    if (telemetry_) telemetry_->end_server_span(span, reply.error ? &*reply.error : nullptr);  // [telemetry hook]
    if (invoke.invocation_id) {
        reply.invocation_id = *invoke.invocation_id;
        // Straight onto the socket the invocation came from (sockets are thread-safe), without
        // a hop through the strand. After a reconnect that socket is closed and the send fails:
        // the engine dropped this invocation with the old connection.
        if (auto ec = link->socket->send(thread_encoder().encode(reply), false))
            log(LogLevel::Debug, "result of {} not sent: {}", invoke.function_id, ec.message());
    } else if (reply.error) {
        log(LogLevel::Warn, "void invocation of {} failed: {}", invoke.function_id, reply.error->message);
    }
    handler_finished();
}

void Connection::handler_finished() {
    if (--running_handlers_ == 0)
        asio::post(strand_, [self = shared_from_this()] {
            if (self->drain_timer_) self->drain_timer_->cancel();
        });
}

// ---- trigger types (provider side) --------------------------------------------------------

void Connection::handle_register_trigger(protocol::RegisterTrigger&& message) {
    std::shared_ptr<const TriggerTypeEntry> type;
    {
        std::lock_guard lock(registry_.mutex);
        auto it = registry_.trigger_types.find(message.trigger_type);
        if (it != registry_.trigger_types.end()) type = it->second;
    }
    protocol::TriggerRegistrationResult result{message.id, message.trigger_type, message.function_id, std::nullopt};
    const auto generation = generation_;
    if (!type) {
        result.error = RemoteError{"trigger_type_not_found", "Trigger type not found", std::nullopt};
        send_if_current(encoder_.encode(result), generation);
        return;
    }
    TriggerConfig config{message.id, message.function_id, message.config, message.metadata};
    provided_triggers_[message.id] = config;
    if (!handler_pool_) return;
    asio::co_spawn(
        *handler_pool_,
        [self = shared_from_this(), type, config, result, generation]() mutable -> asio::awaitable<void> {
            try {
                co_await type->handler->register_trigger(std::move(config));
            } catch (const std::exception& e) {
                result.error = RemoteError{"trigger_registration_failed", e.what(), std::nullopt};
            }
            std::string text(thread_encoder().encode(result));
            asio::post(self->strand_, [self, text = std::move(text), generation] {
                self->send_if_current(text, generation);
            });
        },
        asio::detached);
}

void Connection::handle_unregister_trigger(protocol::UnregisterTrigger&& message) {
    std::shared_ptr<const TriggerTypeEntry> type;
    TriggerConfig config{message.id, {}, Value(), std::nullopt};
    if (auto it = provided_triggers_.find(message.id); it != provided_triggers_.end()) {
        config = std::move(it->second);
        provided_triggers_.erase(it);
    }
    {
        std::lock_guard lock(registry_.mutex);
        if (message.trigger_type) {
            auto it = registry_.trigger_types.find(*message.trigger_type);
            if (it != registry_.trigger_types.end()) type = it->second;
        }
    }
    if (!type || !handler_pool_) return;
    asio::co_spawn(
        *handler_pool_,
        [type, config]() mutable -> asio::awaitable<void> {
            try {
                co_await type->handler->unregister_trigger(std::move(config));
            } catch (const std::exception& e) {
                log(LogLevel::Warn, "unregister_trigger handler threw: {}", e.what());
            }
        },
        asio::detached);
}

// ---- state --------------------------------------------------------------------------------

asio::awaitable<bool> Connection::wait_for_state(ConnectionState target, std::chrono::milliseconds timeout) {
    auto self = shared_from_this();
    // A named lambda: GCC 12 destroys a lambda temporary inside a co_await expression twice.
    auto wait = [self, target, timeout]() -> asio::awaitable<bool> {
            const auto deadline = Clock::now() + timeout;
            asio::steady_timer timer(self->strand_);
            self->state_waiters_.push_back(&timer);
            auto it = std::prev(self->state_waiters_.end());
            struct Remove {
                std::list<asio::steady_timer*>& list;
                std::list<asio::steady_timer*>::iterator it;
                ~Remove() { list.erase(it); }
            } remove{self->state_waiters_, it};
            while (self->state_.load() != target && Clock::now() < deadline) {
                timer.expires_at(deadline);
                co_await timer.async_wait(as_tuple);
            }
            co_return self->state_.load() == target;
    };
    co_return co_await asio::co_spawn(strand_, std::move(wait), asio::use_awaitable);
}

std::uint64_t Connection::add_state_listener(std::function<void(ConnectionState)> callback) {
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

// ---- shutdown -----------------------------------------------------------------------------

void Connection::shutdown() {
    shut_down_ = true;
    accepting_invocations_ = false;
    asio::dispatch(strand_, [self = shared_from_this()] {
        if (self->stopping_) return;
        self->stopping_ = true;
        self->fail_all_calls(Error(Errc::NotConnected, "iii is shut down"));
        if (self->link_ && self->link_->opened && !self->link_->closed)
            self->link_->socket->close(1000, "shutdown");
        self->wake();
    });
}

asio::awaitable<void> Connection::shutdown_async() {
    auto self = shared_from_this();
    // A named lambda: GCC 12 destroys a lambda temporary inside a co_await expression twice.
    auto drain_and_close = [self]() -> asio::awaitable<void> {
            self->shut_down_ = true;
            self->accepting_invocations_ = false;
            // Let running handlers finish (and their results go out) within the grace period.
            const auto deadline = Clock::now() + self->options_.shutdown_grace;
            asio::steady_timer drain(self->strand_);
            self->drain_timer_ = &drain;
            while (self->running_handlers_.load() > 0 && Clock::now() < deadline) {
                drain.expires_at(deadline);
                co_await drain.async_wait(as_tuple);
            }
            self->drain_timer_ = nullptr;
            self->shutdown();
            // Wait for the run loop to finish the close handshake.
            asio::steady_timer stopped(self->strand_);
            self->stopped_timer_ = &stopped;
            const auto limit = Clock::now() + close_handshake_limit + std::chrono::milliseconds(500);
            while (!self->run_finished_ && Clock::now() < limit) {
                stopped.expires_at(limit);
                co_await stopped.async_wait(as_tuple);
            }
            self->stopped_timer_ = nullptr;
    };
    co_await asio::co_spawn(strand_, std::move(drain_and_close), asio::use_awaitable);
}

void Connection::wait_stopped(std::chrono::milliseconds limit) {
    std::unique_lock lock(stopped_mutex_);
    stopped_cv_.wait_for(lock, limit, [this] { return stopped_; });
}

}  // namespace iii::detail
