#include "core/connection_core.hpp"

#include <algorithm>
#include <cerrno>

namespace iii::detail::core {
namespace {

constexpr int debug = 0, info = 1, warn = 2, error = 3;

std::string ms(std::chrono::nanoseconds d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

Error not_connected(std::string what) { return Error(Errc::NotConnected, what); }

std::exception_ptr cancelled(const std::string& function_id) {
    // asio::error::operation_aborted is ECANCELED in the system category on POSIX; the core
    // names it without including Asio.
    return std::make_exception_ptr(std::system_error(std::error_code(ECANCELED, std::system_category()),
                                                     "invocation of " + function_id + " cancelled"));
}

}  // namespace

bool is_fatal_rejection(std::string_view code) noexcept {
    // FUNCTION_NAMESPACE_CONFLICT refuses one function; everything else (WORKER_NAMESPACE_CONFLICT,
    // codes newer than this SDK) ends the connection, as the Rust SDK at HEAD does.
    return code != "FUNCTION_NAMESPACE_CONFLICT";
}

ConnectionCore::ConnectionCore(Config config, std::uint64_t jitter_seed)
    : config_(std::move(config)), backoff_(config_.reconnection, jitter_seed) {}

ConnectionCore::~ConnectionCore() = default;

std::vector<Action> ConnectionCore::take_actions() {
    rearm();
    std::vector<Action> out;
    out.swap(actions_);
    return out;
}

void ConnectionCore::take_actions(std::vector<Action>& out) {
    rearm();
    out.clear();
    out.swap(actions_);
}

void ConnectionCore::log(int level, std::string text) { emit(action::Log{level, std::move(text)}); }

void ConnectionCore::set_state(ConnectionState next) {
    if (state_ == next) return;
    state_ = next;
    emit(action::StateChanged{next, next == ConnectionState::Failed ? failure_reason_ : std::string()});
}

void ConnectionCore::rearm() {
    TimePoint at = never;
    switch (phase_) {
    case Phase::Connecting: at = connect_deadline_; break;
    case Phase::Waiting: at = retry_at_; break;
    case Phase::Open:
        at = next_ping_;
        if (config_.timings.idle_timeout.count() > 0)
            at = std::min(at, last_rx_ + config_.timings.idle_timeout);
        break;
    case Phase::Closing: at = close_deadline_; break;
    case Phase::Idle:
    case Phase::Stopped: break;
    }
    if (draining_) at = std::min(at, drain_deadline_);
    if (!deadlines_.empty()) at = std::min(at, deadlines_.begin()->first);
    if (at == armed_) return;
    armed_ = at;
    emit(action::ArmTimer{at});
}

// ---- connecting -------------------------------------------------------------------------------

void ConnectionCore::start(TimePoint now) {
    if (phase_ != Phase::Idle || shutting_down_) return;
    connect(now);
}

void ConnectionCore::connect(TimePoint now) {
    phase_ = Phase::Connecting;
    const auto limit = config_.timings.connect_timeout;
    // A stalled connect must not wedge the loop: without the deadline it waits forever.
    connect_deadline_ = limit.count() > 0 ? now + limit : never;
    set_state(state_ == ConnectionState::Disconnected && !opened_once_ && backoff_.failures() == 0
                  ? ConnectionState::Connecting
                  : ConnectionState::Reconnecting);
    emit(action::Connect{});
}

void ConnectionCore::on_opened(TimePoint now) {
    if (phase_ != Phase::Connecting) return;
    phase_ = Phase::Open;
    ++generation_;
    connect_deadline_ = never;
    backoff_.reset();
    last_rx_ = now;
    if (!connect_error_.empty()) {
        connect_error_.clear();
        emit(action::ConnectErrorChanged{});
    }
    next_ping_ = config_.timings.ping_interval.count() > 0 ? now + config_.timings.ping_interval : never;
    log(info, "connected to " + config_.url);
    // Before the replay, so that the engine retires the old connection (and its name lease)
    // before this one claims the same functions. Never on the first connect.
    if (opened_once_ && !previous_worker_id_.empty()) {
        Value frame = Value::object({{"type", "reattach"}, {"previous_worker_id", previous_worker_id_}});
        if (reattach_token_) frame.set("reattach_token", *reattach_token_);
        emit(action::Send{frame.dump()});
    }
    opened_once_ = true;
    replay();
    std::deque<Outbound> frames;
    frames.swap(outbound_);
    for (auto& frame : frames) send_or_queue(std::move(frame.text), std::move(frame.invocation_id));
    send_metadata();
    set_state(ConnectionState::Connected);
}

void ConnectionCore::replay() {
    // Spec order: trigger types, services, functions, triggers (then the worker metadata).
    // Each exactly once: the registry holds one entry per id.
    for (auto& [id, t] : trigger_types_) emit(action::Send{std::string(encoder_.encode(t.message))});
    for (auto& [id, s] : services_)
        emit(action::Send{std::string(encoder_.encode(protocol::RegisterService{s}))});
    for (auto& [id, f] : functions_)
        if (!rejected_.count(id)) emit(action::Send{encode_function(f)});
    for (auto& [id, t] : triggers_) emit(action::Send{std::string(encoder_.encode(t))});
}

std::string ConnectionCore::encode_function(const FunctionRegistration& f) {
    return std::string(encoder_.encode(protocol::RegisterFunction{f.message}));
}

void ConnectionCore::send_metadata() {
    protocol::InvokeFunction message;
    message.function_id = "engine::workers::register";
    message.data = protocol::worker_metadata_payload(config_.metadata, config_.worker_namespace);
    message.action = Void{};
    emit(action::Send{std::string(encoder_.encode(message))});
}

// ---- socket gone ------------------------------------------------------------------------------

void ConnectionCore::on_closed(TimePoint now, std::error_code ec, std::uint16_t code,
                               std::string_view reason, bool by_us) {
    if (phase_ != Phase::Connecting && phase_ != Phase::Open && phase_ != Phase::Closing) return;
    const auto code_and_reason = [](std::uint16_t c, std::string_view r) {
        return std::to_string(c) + (r.empty() ? "" : " " + std::string(r));
    };
    if (by_us) {
        socket_gone(now,
                    "closed by the SDK (" + code_and_reason(code, reason) +
                        "): the engine broke the WebSocket protocol",
                    true);
        return;
    }
    if (!ec && phase_ == Phase::Closing) {
        // The engine's close frame answers the one the core sent (or crossed it).
        socket_gone(now,
                    "closed by the SDK (" + code_and_reason(closing_code_, closing_reason_) +
                        "; the engine answered " + code_and_reason(code, reason) + ")",
                    false);
        return;
    }
    // A TLS failure's reason (OpenSSL's) is more telling than the error code's message.
    std::string why = ec ? (reason.empty() ? ec.message() : std::string(reason))
                         : "closed by the engine (" + code_and_reason(code, reason) + ")";
    // A failure with the transport's own reason (a TLS handshake: OpenSSL's) is a setup
    // problem the user must see; a refused TCP connect while the engine restarts is not.
    socket_gone(now, why, ec && !reason.empty());
}

void ConnectionCore::socket_gone(TimePoint now, const std::string& why, bool worth_a_warning) {
    const bool was_open = phase_ == Phase::Open || phase_ == Phase::Closing;
    log(worth_a_warning ? warn : info,
        (was_open ? "connection closed: " : "cannot connect to " + config_.url + ": ") + why);
    if (!was_open) {
        connect_error_ = why;
        emit(action::ConnectErrorChanged{why});
    }
    connect_deadline_ = close_deadline_ = next_ping_ = never;
    reading_paused_ = false;  // the next socket starts reading
    if (was_open) {
        if (!worker_id_.empty()) {
            // The id belongs to that connection; it is what the next one reattaches to.
            previous_worker_id_ = std::exchange(worker_id_, {});
            emit(action::WorkerIdChanged{{}});
        }
        // The engine dropped this connection's invocations with it: fail them at once
        // instead of letting them run into their timeouts.
        fail_sent(not_connected("the connection to the engine was lost"));
    }
    if (fatal_) {
        stop();
        return;
    }
    if (shutting_down_) {
        fail_all(not_connected("iii is shut down"));
        set_state(ConnectionState::Disconnected);
        stop();
        return;
    }
    const auto delay = was_open ? backoff_.after_drop() : backoff_.next_after_failure();
    if (!was_open && backoff_.exhausted()) {
        failure_reason_ = "gave up reconnecting: max_retries reached";
        set_state(ConnectionState::Failed);
        log(error, failure_reason_);
        fail_all(not_connected(failure_reason_));
        stop();
        return;
    }
    set_state(ConnectionState::Reconnecting);
    log(info, "reconnecting to " + config_.url + " in " + ms(delay) + " ms");
    phase_ = Phase::Waiting;
    retry_at_ = now + delay;
}

void ConnectionCore::stop() {
    phase_ = Phase::Stopped;
    connect_deadline_ = retry_at_ = next_ping_ = close_deadline_ = drain_deadline_ = never;
    draining_ = false;
    fail_all(state_ == ConnectionState::Failed ? not_connected(failure_reason_)
                                               : not_connected("iii is shut down"));
    emit(action::Stopped{});
}

// ---- timer ------------------------------------------------------------------------------------

void ConnectionCore::on_timer(TimePoint now) {
    expire_calls(now);
    switch (phase_) {
    case Phase::Connecting:
        if (now >= connect_deadline_) {
            log(info, "connect to " + config_.url + " timed out");
            emit(action::Abort{});
            socket_gone(now, "connect timed out");
        }
        break;
    case Phase::Open: {
        const auto idle = config_.timings.idle_timeout;
        if (idle.count() > 0 && now - last_rx_ >= idle) {
            // The engine never pings, so silence past the idle timeout means a half-open
            // connection: without this a dead engine would wedge every pending call.
            log(warn, "no frame from the engine for " + ms(now - last_rx_) + " ms; reconnecting");
            emit(action::Abort{});
            socket_gone(now, "idle timeout");
        } else if (now >= next_ping_) {
            emit(action::Ping{});
            next_ping_ = now + config_.timings.ping_interval;
        }
        break;
    }
    case Phase::Closing:
        if (now >= close_deadline_) {
            log(info, "close handshake timed out; dropping the socket");
            emit(action::Abort{});
            socket_gone(now, "close handshake timed out");
        }
        break;
    case Phase::Waiting:
        if (now >= retry_at_) {
            retry_at_ = never;
            connect(now);
        }
        break;
    case Phase::Idle:
    case Phase::Stopped: break;
    }
    if (draining_ && now >= drain_deadline_) finish_shutdown(now);
}

void ConnectionCore::expire_calls(TimePoint now) {
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
        const InvocationId id = deadlines_.begin()->second;
        auto it = pending_.find(id);
        if (it == pending_.end()) {  // cannot happen: entries leave with their call
            deadlines_.erase(deadlines_.begin());
            continue;
        }
        // A call that timed out while the worker could not connect says why.
        const std::string why = phase_ != Phase::Open && !connect_error_.empty()
                                    ? " (not connected: " + connect_error_ + ")"
                                    : std::string();
        fail(id, Error(Errc::Timeout, "invocation of " + it->second.function_id + " timed out after " +
                                          std::to_string(it->second.timeout.count()) + " ms" + why));
    }
}

// ---- frames -----------------------------------------------------------------------------------

void ConnectionCore::on_pong(TimePoint now) {
    if (phase_ == Phase::Open || phase_ == Phase::Closing) last_rx_ = now;
}

void ConnectionCore::on_frame(TimePoint now, std::string_view text) {
    if (phase_ != Phase::Open && phase_ != Phase::Closing) return;  // a socket we gave up on
    last_rx_ = now;
    // Kept between frames: the decoder overwrites a result in place (see Decoder::decode).
    protocol::Message& message = frame_;
    protocol::DecodeFailure failure;
    if (!decoder_.decode(text, message, failure)) {
        log(warn, "malformed frame from the engine skipped: " + failure.reason);
        if (!failure.invocation_id) return;
        if (failure.type == "invokefunction") {
            // The engine waits for an answer to this id: say what was wrong instead of letting
            // the caller run into its timeout.
            protocol::InvokeFunction invoke;
            invoke.invocation_id = failure.invocation_id;
            reply_error(invoke, "invocation_failed", "malformed invokefunction frame: " + failure.reason);
        } else {
            fail(*failure.invocation_id, Error(Errc::Serde, "malformed result frame: " + failure.reason));
        }
        return;
    }
    std::visit(
        [&](auto&& m) {
            using M = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<M, protocol::InvocationResult>) {
                handle_result(std::move(m));
            } else if constexpr (std::is_same_v<M, protocol::InvokeFunction>) {
                handle_invoke(std::move(m));
            } else if constexpr (std::is_same_v<M, protocol::Ping>) {
                emit(action::Send{R"({"type":"pong"})"});
            } else if constexpr (std::is_same_v<M, protocol::Pong>) {
                // last_rx_ already moved forward
            } else if constexpr (std::is_same_v<M, protocol::WorkerRegistered>) {
                worker_id_ = m.worker_id;
                if (m.reattach_token) reattach_token_ = m.reattach_token;
                emit(action::WorkerIdChanged{worker_id_});
            } else if constexpr (std::is_same_v<M, protocol::RegisterTrigger>) {
                handle_register_trigger(std::move(m));
            } else if constexpr (std::is_same_v<M, protocol::UnregisterTrigger>) {
                handle_unregister_trigger(std::move(m));
            } else if constexpr (std::is_same_v<M, protocol::TriggerRegistrationResult>) {
                // 0.22+: the engine reports a failed registration of our trigger. No error is
                // no news (parked binds are acknowledged as success), so only errors go on.
                if (m.error) emit(action::TriggerRegistrationFailed{std::move(m)});
            } else if constexpr (std::is_same_v<M, protocol::EngineError>) {
                log(error, "engine refused the connection: " + m.error.code + ": " + m.error.message);
            } else if constexpr (std::is_same_v<M, protocol::RegistrationRejected>) {
                handle_rejection(now, std::move(m));
            } else {
                log(debug, std::string("ignoring ") + protocol::type_name(message) + " from the engine");
            }
        },
        std::move(message));
}

void ConnectionCore::handle_result(protocol::InvocationResult&& result) {
    const InvocationId id(result.invocation_id);
    if (!pending_.count(id)) {
        // Cancelled, timed out, or a duplicate: the call is over and its slot gone.
        log(debug, "result for unknown invocation " + result.invocation_id + " ignored");
        return;
    }
    CallOutcome outcome;
    if (result.error)
        outcome.error = std::make_exception_ptr(Error(std::move(*result.error)));
    else if (result.result)
        outcome.value = std::move(*result.result);
    complete(id, std::move(outcome));
}

void ConnectionCore::reply_error(const protocol::InvokeFunction& invoke, const char* code,
                                 std::string message) {
    if (!invoke.invocation_id || phase_ != Phase::Open) return;
    protocol::InvocationResult reply;
    reply.invocation_id = *invoke.invocation_id;
    reply.function_id = invoke.function_id;
    reply.error = RemoteError{code, std::move(message), std::nullopt};
    emit(action::Send{std::string(encoder_.encode(reply))});
}

void ConnectionCore::handle_invoke(protocol::InvokeFunction&& invoke) {
    auto it = functions_.find(invoke.function_id);
    if (it == functions_.end()) {
        reply_error(invoke, "function_not_found", "Function not found");
        return;
    }
    if (shutting_down_) {
        reply_error(invoke, "invocation_failed", "worker is shutting down");
        return;
    }
    if (!it->second.handler) {
        reply_error(invoke, "function_not_invokable",
                    "Function is HTTP-invoked and cannot be invoked locally");
        return;
    }
    ++running_handlers_;
    emit(action::Dispatch{it->second.handler, std::move(invoke), generation_});
    if (!reading_paused_ && running_handlers_ >= std::max<std::size_t>(config_.max_concurrent_handlers, 1)) {
        // Backpressure instead of unbounded memory: the engine's writes queue in TCP.
        reading_paused_ = true;
        emit(action::PauseReading{});
    }
}

void ConnectionCore::handle_register_trigger(protocol::RegisterTrigger&& message) {
    protocol::TriggerRegistrationResult result{message.id, message.trigger_type, message.function_id,
                                               std::nullopt};
    auto it = trigger_types_.find(message.trigger_type);
    if (it == trigger_types_.end()) {
        result.error = RemoteError{"trigger_type_not_found", "Trigger type not found", std::nullopt};
        emit(action::Send{std::string(encoder_.encode(result))});
        return;
    }
    TriggerConfig config{message.id, message.function_id, std::move(message.config), std::move(message.metadata)};
    provided_triggers_[config.id] = config;
    emit(action::DispatchTrigger{it->second.handler, std::move(config), true, std::move(result), generation_});
}

void ConnectionCore::handle_unregister_trigger(protocol::UnregisterTrigger&& message) {
    TriggerConfig config{message.id, {}, Value(), std::nullopt};
    if (auto it = provided_triggers_.find(message.id); it != provided_triggers_.end()) {
        config = std::move(it->second);
        provided_triggers_.erase(it);
    }
    if (!message.trigger_type) return;
    auto it = trigger_types_.find(*message.trigger_type);
    if (it == trigger_types_.end()) return;
    emit(action::DispatchTrigger{it->second.handler, std::move(config), false, {}, generation_});
}

void ConnectionCore::handle_rejection(TimePoint now, protocol::RegistrationRejected&& rejected) {
    const std::string owner = rejected.owner_worker_id ? " (owned by worker " + *rejected.owner_worker_id + ")" : "";
    if (!is_fatal_rejection(rejected.code) && rejected.function_id) {
        const std::string& id = *rejected.function_id;
        // Only a function we still hold: a refusal of one unregistered since is old news.
        if (!functions_.count(id)) return;
        rejected_.insert(id);
        std::string message = "another live worker in the namespace provides function " + id + owner;
        log(warn, "the engine refused function " + id + ": " + rejected.code + owner +
                      "; it is not registered (nor replayed)");
        emit(action::FunctionRejected{id, RemoteError{rejected.code, std::move(message), std::nullopt}});
        return;
    }
    std::string message = rejected.code == "WORKER_NAMESPACE_CONFLICT"
                              ? "another live worker runs under this worker's name in the namespace" + owner
                              : "the engine rejected this worker" + owner;
    fatal(now, RemoteError{rejected.code, std::move(message), std::nullopt});
}

void ConnectionCore::fatal(TimePoint now, RemoteError error) {
    if (fatal_) return;
    failure_reason_ = error.code + ": " + error.message;
    log(core::error, "giving up: " + failure_reason_);
    fatal_ = error;
    set_state(ConnectionState::Failed);
    fail_all(Error(Errc::RegistrationRejected, error));
    if (phase_ == Phase::Open) {
        // The engine closes after a worker-level rejection; close from here too, bounded.
        start_close(now, 1000, "rejected");
    } else if (phase_ != Phase::Closing) {
        stop();
    }
}

// ---- registrations ----------------------------------------------------------------------------

void ConnectionCore::register_function(FunctionRegistration registration) {
    const std::string id = registration.message.id;
    rejected_.erase(id);
    auto& slot = functions_[id] = std::move(registration);
    if (connected()) emit(action::Send{encode_function(slot)});
}

void ConnectionCore::unregister_function(const std::string& id) {
    if (!functions_.erase(id)) return;
    rejected_.erase(id);
    if (connected()) emit(action::Send{std::string(encoder_.encode(protocol::UnregisterFunction{id}))});
}

void ConnectionCore::register_trigger_type(TriggerTypeRegistration registration) {
    const std::string id = registration.message.id;
    auto& slot = trigger_types_[id] = std::move(registration);
    if (connected()) emit(action::Send{std::string(encoder_.encode(slot.message))});
}

void ConnectionCore::unregister_trigger_type(const std::string& id) {
    if (!trigger_types_.erase(id)) return;
    if (connected()) emit(action::Send{std::string(encoder_.encode(protocol::UnregisterTriggerType{id}))});
}

void ConnectionCore::register_service(RegisterServiceMessage message) {
    const std::string id = message.id;
    auto& slot = services_[id] = std::move(message);
    if (connected()) emit(action::Send{std::string(encoder_.encode(protocol::RegisterService{slot}))});
}

void ConnectionCore::register_trigger(protocol::RegisterTrigger trigger) {
    const std::string id = trigger.id;
    auto& slot = triggers_[id] = std::move(trigger);
    if (connected()) emit(action::Send{std::string(encoder_.encode(slot))});
}

void ConnectionCore::unregister_trigger(const std::string& id, const std::string& trigger_type) {
    if (!triggers_.erase(id)) return;
    if (connected())
        emit(action::Send{std::string(encoder_.encode(protocol::UnregisterTrigger{id, trigger_type}))});
}

// ---- calls ------------------------------------------------------------------------------------

void ConnectionCore::invoke(TimePoint /*now*/, Call call) {
    std::exception_ptr refused;
    if (fatal_)
        refused = std::make_exception_ptr(Error(Errc::RegistrationRejected, *fatal_));
    else if (phase_ == Phase::Stopped && state_ == ConnectionState::Failed)
        refused = std::make_exception_ptr(not_connected("the connection gave up reconnecting"));
    else if (phase_ == Phase::Stopped || shutting_down_)
        refused = std::make_exception_ptr(not_connected("iii is shut down"));
    if (refused) {
        emit(action::Complete{std::move(call.sink), CallOutcome{Value(), refused}});
        return;
    }
    if (pending_.count(call.invocation_id)) {  // ids are fresh UUIDs: a caller bug
        emit(action::Complete{std::move(call.sink),
                              CallOutcome{Value(), std::make_exception_ptr(Error(
                                                       Errc::Runtime, "duplicate invocation id " +
                                                                          call.invocation_id.str()))}});
        return;
    }
    auto& p = pending_[call.invocation_id];
    p.function_id = std::move(call.function_id);
    p.sink = std::move(call.sink);
    p.deadline = call.deadline;
    p.timeout = call.timeout;
    p.deadline_entry = deadlines_.emplace(call.deadline, call.invocation_id);
    send_or_queue(std::move(call.text), call.invocation_id);
}

void ConnectionCore::send_void(std::string text) {
    if (phase_ == Phase::Stopped || shutting_down_ || fatal_) {
        log(debug, "void call dropped: iii is shut down");
        return;
    }
    send_or_queue(std::move(text), {});
}

void ConnectionCore::send_or_queue(std::string text, const InvocationId& invocation_id) {
    Pending* pending = nullptr;
    if (!invocation_id.empty()) {
        auto it = pending_.find(invocation_id);
        if (it == pending_.end()) return;  // over already
        pending = &it->second;
    }
    if (connected()) {
        emit(action::Send{std::move(text)});
        if (pending) pending->sent = true;
        return;
    }
    outbound_.push_back({std::move(text), invocation_id});
    const std::size_t limit = std::max<std::size_t>(config_.reconnection.max_pending_messages, 1);
    while (outbound_.size() > limit) {
        Outbound dropped = std::move(outbound_.front());
        outbound_.pop_front();
        if (!dropped.invocation_id.empty())
            fail(dropped.invocation_id,
                 not_connected("dropped: more than max_pending_messages frames queued while disconnected"));
    }
}

void ConnectionCore::cancel(const InvocationId& invocation_id) {
    auto it = pending_.find(invocation_id);
    if (it == pending_.end()) return;
    auto outcome = CallOutcome{Value(), cancelled(it->second.function_id)};
    complete(invocation_id, std::move(outcome));
}

void ConnectionCore::complete(const InvocationId& invocation_id, CallOutcome outcome) {
    auto it = pending_.find(invocation_id);
    if (it == pending_.end()) return;
    if (!it->second.sent) {
        // Still queued: a call that is over is not sent (the callee would work for nobody).
        auto q = std::find_if(outbound_.begin(), outbound_.end(),
                              [&](const Outbound& o) { return o.invocation_id == invocation_id; });
        if (q != outbound_.end()) outbound_.erase(q);
    }
    deadlines_.erase(it->second.deadline_entry);
    auto sink = std::move(it->second.sink);
    pending_.erase(it);
    emit(action::Complete{std::move(sink), std::move(outcome)});
}

void ConnectionCore::fail(const InvocationId& invocation_id, const Error& error) {
    complete(invocation_id, CallOutcome{Value(), std::make_exception_ptr(error)});
}

void ConnectionCore::fail_sent(const Error& error) {
    std::vector<InvocationId> ids;
    for (auto& [id, p] : pending_)
        if (p.sent) ids.push_back(id);
    std::sort(ids.begin(), ids.end());  // a stable order for tests and logs
    for (auto& id : ids) fail(id, error);
}

void ConnectionCore::fail_all(const Error& error) {
    std::vector<InvocationId> ids;
    for (auto& [id, p] : pending_) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    for (auto& id : ids) fail(id, error);
    outbound_.clear();
}

// ---- handlers ---------------------------------------------------------------------------------

void ConnectionCore::handler_finished(TimePoint now, std::uint64_t generation,
                                      std::optional<std::string> reply) {
    if (running_handlers_ > 0) --running_handlers_;
    // After a reconnect the engine dropped this invocation with the old connection: the
    // result has nowhere to go.
    if (reply && generation == generation_ && phase_ == Phase::Open) emit(action::Send{std::move(*reply)});
    if (reading_paused_ && phase_ == Phase::Open &&
        running_handlers_ < std::max<std::size_t>(config_.max_concurrent_handlers, 1)) {
        reading_paused_ = false;
        emit(action::ResumeReading{});
    }
    if (draining_ && running_handlers_ == 0) finish_shutdown(now);
}

void ConnectionCore::send_if_current(std::uint64_t generation, std::string text) {
    if (generation == generation_ && phase_ == Phase::Open) emit(action::Send{std::move(text)});
}

// ---- shutdown ---------------------------------------------------------------------------------

void ConnectionCore::shutdown(TimePoint now, bool graceful) {
    if (phase_ == Phase::Stopped || close_requested_) return;
    shutting_down_ = true;
    if (graceful && running_handlers_ > 0) {
        if (!draining_) {
            draining_ = true;
            drain_deadline_ = now + config_.shutdown_grace;
        }
        return;
    }
    finish_shutdown(now);
}

void ConnectionCore::start_close(TimePoint now, std::uint16_t code, std::string reason) {
    closing_code_ = code;
    closing_reason_ = reason;
    emit(action::Close{code, std::move(reason)});
    phase_ = Phase::Closing;
    close_deadline_ = now + config_.close_handshake_limit;
}

void ConnectionCore::finish_shutdown(TimePoint now) {
    if (close_requested_) return;
    close_requested_ = true;
    draining_ = false;
    drain_deadline_ = never;
    fail_all(not_connected("iii is shut down"));
    switch (phase_) {
    case Phase::Open:
        start_close(now, 1000, "shutdown");
        break;
    case Phase::Connecting:
        emit(action::Abort{});
        [[fallthrough]];
    case Phase::Idle:
    case Phase::Waiting:
        if (state_ != ConnectionState::Failed) set_state(ConnectionState::Disconnected);
        stop();
        break;
    case Phase::Closing:  // a fatal rejection is closing already
    case Phase::Stopped: break;
    }
}

}  // namespace iii::detail::core
