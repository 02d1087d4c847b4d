#include <iii/testing/engine.hpp>

#include "testing/engine_impl.hpp"

#include <asio/signal_set.hpp>

#include <csignal>
#include <stdexcept>

namespace iii::testing {

namespace {
// Sent frame texts kept for reuse: enough for a burst of calls in flight.
constexpr std::size_t max_spare_texts = 64;
constexpr std::size_t max_spare_text_capacity = 16 * 1024;  // at most 1 MiB kept in all
}  // namespace

// ---- lifecycle -----------------------------------------------------------------------------

Engine::Impl::Impl(EngineOptions opts, bool own_thread) : options(std::move(opts)) {
    if (options.log_file) {
        log_file.open(*options.log_file, std::ios::out | std::ios::app);
        if (!log_file)
            throw std::system_error(errno, std::generic_category(),
                                    "cannot open log file '" + *options.log_file + "'");
    }
    if (since_0_22())
        register_builtins_0_22();
    else
        register_builtins();
    for (const auto& [id, description] : builtin_trigger_types) {
        TriggerType type;
        type.id = std::string(id);
        type.description = std::string(description);
        trigger_types[type.id] = std::move(type);
    }
    functions_snapshot = function_id_list();
    observed_functions = functions_snapshot;

    server = std::make_unique<transport::Server>(
        io, transport::Server::Handlers{
                [this](const std::string& resource) { return admit(resource); },
                [this](const std::shared_ptr<transport::Socket>& socket,
                       const std::string& resource) { return accept(socket, resource); }},
        server_tls());
    port = server->listen(options.port);
    work.emplace(io.get_executor());
    schedule_functions_available();
    if (own_thread) thread = std::thread([this] { run(); });
}

std::string Engine::Impl::url() const {
    return fmt::format("{}://127.0.0.1:{}", options.tls ? "wss" : "ws", port);
}

transport::ServerTls Engine::Impl::server_tls() const {
    transport::ServerTls tls;
    if (options.tls) {
        tls.cert_file = options.tls->cert_file;
        tls.key_file = options.tls->key_file;
        tls.client_ca_file = options.tls->client_ca_file;
        tls.tls12_only = options.tls->tls12_only;
        if (tls.cert_file.empty() || tls.key_file.empty())
            throw std::invalid_argument("EngineTls needs cert_file and key_file");
    }
    return tls;
}

Engine::Impl::~Impl() {
    if (thread.joinable()) {
        run_on_io([this] { stop_everything(); });
        // Handlers still queued (completions of the aborted sockets) are destroyed, not
        // run: nothing of ours may run once the destructor has started.
        asio::post(io, [this] { io.stop(); });
        thread.join();
    }
    workers.clear();
    server.reset();
}

void Engine::Impl::run() {
    for (;;) {
        try {
            io.run();
            return;
        } catch (const std::exception& e) {
            note(LogLevel::Error, "internal error: {}", e.what());
        }
    }
}

void EngineProcess::serve(EngineOptions options,
                          const std::function<void(const std::string& url)>& on_listening) {
    Engine::Impl impl(std::move(options), false);
    asio::signal_set signals(impl.io, SIGINT, SIGTERM);
    signals.async_wait([&impl](const std::error_code& ec, int) {
        if (ec) return;
        // As ~Impl() with its own thread: connections dropped, and what they left queued is
        // destroyed with the io_context, not run.
        impl.stop_everything();
        impl.io.stop();
    });
    on_listening(impl.url());
    impl.run();
}

// ---- observation ---------------------------------------------------------------------------

void Engine::Impl::publish() {
    if (log_unflushed) {
        log_file.flush();  // a reader of the log sees the event once it is published
        log_unflushed = false;
    }
    if (batch.empty() && telemetry_batch.empty() && !workers_dirty && !functions_dirty) {
        events.fetch_add(1);  // (seq_cst, before reading `waiting`: see there)
        if (waiting.load() == 0) return;
        // A waiter between its check of `events` and blocking holds the lock: taking it
        // first means the notification cannot fall into that gap.
        { std::lock_guard lock(mutex); }
        changed.notify_all();
        return;
    }
    {
        std::lock_guard lock(mutex);
        if (options.record_frames) {
            recorded.insert(recorded.end(), std::make_move_iterator(batch.begin()),
                            std::make_move_iterator(batch.end()));
            observed_telemetry.insert(observed_telemetry.end(),
                                      std::make_move_iterator(telemetry_batch.begin()),
                                      std::make_move_iterator(telemetry_batch.end()));
        }
        if (workers_dirty) observed_workers = worker_order;
        if (functions_dirty) observed_functions = function_id_list();
        events.fetch_add(1);
    }
    batch.clear();
    telemetry_batch.clear();
    workers_dirty = functions_dirty = false;
    changed.notify_all();
}

void Engine::Impl::record(const std::string& worker_id, bool inbound, bool binary,
                          std::string_view text) {
    if (log_file.is_open()) write_log_line(worker_id, inbound, binary, text);
    if (options.record_frames)
        batch.push_back(RecordedFrame{worker_id, inbound, binary, std::string(text)});
}

bool Engine::Impl::ingest_telemetry(bool otel, const std::string& connection_id,
                                    std::string_view frame) {
    const char* who = otel ? "otel connection" : "worker";
    if (!is_telemetry(frame)) return false;
    if (!options.record_frames) return true;
    try {
        Value body = Value::parse(frame.substr(4));
        const std::string prefix(frame.substr(0, 4));
        if (prefix == "MTRC")
            if (auto defect = metrics_defect(body); !defect.empty()) {
                note(LogLevel::Warn, "{} {}: metrics frame dropped: {}", who, connection_id,
                     defect);
                return true;
            }
        telemetry_batch.emplace_back(prefix, std::move(body));
    } catch (const std::exception& e) {
        note(LogLevel::Warn, "{} {}: telemetry frame dropped: {}", who, connection_id, e.what());
    }
    return true;
}

void Engine::Impl::write_log_line(const std::string& worker_id, bool inbound, bool binary,
                                  std::string_view text) {
    std::string frame;
    if (!binary) {
        // Valid JSON is embedded as an object (re-encoded compact, so one line per frame);
        // anything else is logged as a string.
        try {
            frame = Value::parse(text).dump();
        } catch (const std::exception&) {
        }
    }
    if (frame.empty()) frame = json_string(text);
    log_file << fmt::format(R"({{"t":{},"worker":{},"dir":"{}","binary":{},"frame":{}}})", now_ms(),
                            json_string(worker_id), inbound ? "in" : "out",
                            binary ? "true" : "false", frame)
             << '\n';
    log_unflushed = true;
}

std::vector<std::string> Engine::Impl::function_id_list() const {
    std::vector<std::string> ids;
    ids.reserve(functions.size());
    for (const auto& entry : functions) ids.push_back(entry.first);
    return ids;  // sorted: std::map
}

// ---- connections ---------------------------------------------------------------------------

transport::Admission Engine::Impl::admit(const std::string& resource) {
    const std::string_view path = std::string_view(resource).substr(0, resource.find('?'));
    if (path == "/") return {};
    if (path == "/otel") {
        if (options.otel_route) return {};
        return {false, 404, "Not Found"};  // the 0.10 engine has no telemetry-only route
    }
    // channels (issue 5): 404 for an unknown id or a wrong key, before any WebSocket exists
    if (detail::testing::ChannelHub::is_channel_resource(resource))
        return channel_hub.admission(resource);
    return {false, 404, "Not Found"};
}

transport::Callbacks Engine::Impl::accept(const std::shared_ptr<transport::Socket>& socket,
                                          const std::string& resource) {
    // A handshake that finished while shutdown() ran: the engine is gone, so is this socket.
    if (shut_down) {
        socket->abort();
        return {};
    }
    // channels (issue 5): the hub bridges writer and reader ends
    if (detail::testing::ChannelHub::is_channel_resource(resource))
        return channel_hub.accept(socket, resource);
    if (std::string_view(resource).substr(0, resource.find('?')) == "/otel")
        return accept_otel(socket);
    return accept_worker(socket);
}

transport::Callbacks Engine::Impl::accept_otel(const std::shared_ptr<transport::Socket>& socket) {
    const std::string id = proto::new_uuid();
    otel_sockets[id] = socket;
    note(LogLevel::Debug, "otel connection {} opened", id);
    transport::Callbacks callbacks;
    callbacks.on_message = [this, id](std::string&& payload, bool binary) {
        Event event(*this);
        if (log_file.is_open()) write_log_line(id, true, binary, payload);
        if (!binary)
            note(LogLevel::Debug, "otel connection {}: text frame ignored", id);
        else if (!ingest_telemetry(true, id, payload))
            note(LogLevel::Warn, "otel connection {}: unrecognized binary frame dropped", id);
    };
    callbacks.on_close = [this, id](std::error_code, std::uint16_t, std::string) {
        otel_sockets.erase(id);
    };
    return callbacks;
}

transport::Callbacks Engine::Impl::accept_worker(const std::shared_ptr<transport::Socket>& socket) {
    Event event(*this);
    auto worker = std::make_shared<Worker>();
    worker->id = proto::new_uuid();
    worker->socket = socket;
    worker->connected_at_ms = now_ms();
    worker->ip_address = socket->remote_ip();
    workers[worker->id] = worker;
    worker_order.push_back(worker->id);
    workers_dirty = true;

    // Spec 1.5: workerregistered is always the first frame on a connection. 0.22+ add the
    // token a reconnecting successor presents in `reattach`.
    std::optional<std::string> token;
    if (since_0_22()) token = worker->reattach_token = proto::new_uuid();
    send(*worker, proto::WorkerRegistered{worker->id, token});
    if (since_0_23()) {
        // Registrations wait for the namespace, which engine::workers::register brings; a
        // worker that never calls it gets them applied in `default` after the grace.
        worker->namespace_known = false;
        worker->grace_timer = std::make_unique<asio::steady_timer>(io, options.namespace_grace);
        std::weak_ptr<Worker> weak_grace = worker;
        worker->grace_timer->async_wait([this, weak_grace](std::error_code ec) {
            auto w = weak_grace.lock();
            if (ec || !w || w->gone || w->namespace_known || shut_down) return;
            Event event(*this);
            note(LogLevel::Info, "worker {}: no engine::workers::register within the grace; "
                 "registrations applied in `default`", w->id);
            w->namespace_known = true;
            drain_held_registrations(*w);
        });
    }
    fire(trigger_type_workers_available,
         Value::object({{"event", "worker_connected"}, {"worker_id", worker->id}}));

    std::weak_ptr<Worker> weak = worker;
    transport::Callbacks callbacks;
    callbacks.on_message = [this, weak](std::string&& payload, bool binary) {
        if (auto w = weak.lock(); w && !w->gone) on_frame(w, std::move(payload), binary);
    };
    callbacks.on_close = [this, weak](std::error_code ec, std::uint16_t code, std::string) {
        auto w = weak.lock();
        if (!w || w->gone) return;
        {
            // Published before the disconnect's event, so a test waiting for it sees both.
            std::lock_guard lock(mutex);
            close_codes[w->id] = ec ? std::uint16_t(1006) : code;
        }
        disconnect(*w);
    };
    return callbacks;
}

Engine::Impl::Worker* Engine::Impl::find_worker(const std::string& id) {
    if (id.empty()) return nullptr;
    auto it = workers.find(id);
    return it == workers.end() ? nullptr : it->second.get();
}

Engine::Impl::Worker* Engine::Impl::find_worker(const std::string& id, WorkerRef& ref) {
    // Alive (no disconnect since it was found, and it was not leaving then) and the same id:
    // ids are fresh UUIDs, so it is the worker find_worker(id) returns.
    if (ref.worker && ref.disconnects == disconnects && ref.worker->id == id) return ref.worker;
    Worker* worker = find_worker(id);
    ref = remember(worker);
    return worker;
}

void Engine::Impl::send(Worker& worker, const proto::Message& message) {
    send_text(worker, encoder.encode(message));
}

void Engine::Impl::send_text(Worker& worker, std::string_view text) {
    send_text(worker, std::string(text));
}

void Engine::Impl::send_text(Worker& worker, std::string&& text) {
    record(worker.id, false, false, text);
    outbox.push_back(Outgoing{worker.shared_from_this(), std::move(text)});
    if (event_depth == 0) flush_outbox();
}

std::string Engine::Impl::take_text() {
    if (spare_texts.empty()) return {};
    std::string text = std::move(spare_texts.back());
    spare_texts.pop_back();
    text.clear();
    return text;
}

void Engine::Impl::flush_outbox() {
    if (outbox.empty()) return;
    auto frames = std::move(outbox);
    // The outbox gets the buffer of the previous flush back: no allocation per event.
    outbox = std::move(spare_outbox);
    outbox.clear();
    for (auto& frame : frames) {
        // A socket that is already closing refuses the frame; its on_close is on its way
        // and cleans up (halting whatever was just routed to it).
        if (auto ec = frame.worker->socket->send(frame.text, false))
            note(LogLevel::Info, "worker {}: send failed: {}", frame.worker->id, ec.message());
        // The transport copied it: the buffer serves a later frame (a few, none of a huge one).
        if (spare_texts.size() < max_spare_texts && frame.text.capacity() <= max_spare_text_capacity)
            spare_texts.push_back(std::move(frame.text));
    }
    frames.clear();
    spare_outbox = std::move(frames);
}

// ---- inbound frames ------------------------------------------------------------------------

void Engine::Impl::on_frame(const std::shared_ptr<Worker>& worker, std::string&& payload,
                            bool binary) {
    Event event(*this);
    if (worker->stalled) {
        worker->held.emplace_back(std::move(payload), binary);
        return;
    }
    process_frame(*worker, payload, binary);
}

void Engine::Impl::process_frame(Worker& worker, const std::string& payload, bool binary) {
    record(worker.id, true, binary, payload);
    // Telemetry exports (spec 7.1) are accepted on any `/` connection too.
    if (binary && ingest_telemetry(false, worker.id, payload)) return;
    if (is_blank(payload)) return;
    // Calls and results between workers, the bulk of the traffic (a frame of another type
    // costs a few tokens of scanning here).
    if (options.forward_as_text && !binary && forward_fast(worker, payload)) {
        ++forwarded_as_text;
        return;
    }

    // 0.22+: `reattach` is applied inline, before any frame after it. Recognised from the raw
    // JSON so that the engine does not depend on the SDK's decoder knowing the frame (the 0.10
    // engine has no such variant: the decoder fails and the frame is dropped, as there).
    if (since_0_22() && payload.find("previous_worker_id") != std::string::npos) {
        try {
            Value frame = Value::parse(payload);
            if (const Value* type = frame.find("type");
                type && type->is_string() && type->as_string() == "reattach") {
                reattach(worker, frame);
                return;
            }
        } catch (const std::exception&) {
        }
    }

    proto::Message message;
    proto::DecodeFailure failure;
    if (!worker.decoder.decode(payload, message, failure)) {
        note(LogLevel::Warn, "worker {}: dropped undecodable frame: {}", worker.id, failure.reason);
        return;
    }
    apply_frame(worker, message);
}

namespace {
bool is_namespaced_registration(const proto::Message& m) {
    return std::holds_alternative<proto::RegisterFunction>(m) ||
           std::holds_alternative<proto::UnregisterFunction>(m) ||
           std::holds_alternative<proto::RegisterTriggerType>(m) ||
           std::holds_alternative<proto::RegisterTrigger>(m) ||
           std::holds_alternative<proto::UnregisterTrigger>(m) ||
           std::holds_alternative<proto::RegisterService>(m);
}
}  // namespace

void Engine::Impl::apply_frame(Worker& worker, proto::Message& message) {
    if (!worker.namespace_known && is_namespaced_registration(message)) {
        worker.held_registrations.push_back(std::move(message));
        return;
    }
    std::visit(
        Overloaded{
            [&](proto::RegisterFunction& m) { register_function(worker, std::move(m.message)); },
            [&](proto::UnregisterFunction& m) { unregister_function(worker, m.id); },
            [&](proto::RegisterTriggerType& m) { register_trigger_type(worker, std::move(m)); },
            [&](proto::RegisterTrigger& m) { register_trigger(worker, std::move(m)); },
            [&](proto::UnregisterTrigger& m) { unregister_trigger(m.id); },
            [&](proto::TriggerRegistrationResult& m) {
                if (since_0_22()) {
                    trigger_registration_result(worker, std::move(m));
                    return;
                }
                // Only logged by the 0.10 engine; never forwarded to the trigger's owner.
                if (m.error)
                    note(LogLevel::Info, "trigger {} ({}) failed to register: {}: {}", m.id,
                         m.trigger_type, m.error->code, m.error->message);
            },
            [&](proto::InvokeFunction& m) { invoke_from_worker(worker, std::move(m)); },
            [&](proto::InvocationResult& m) { invocation_result(worker, std::move(m)); },
            [&](proto::RegisterService& m) { services[m.message.id] = std::move(m.message); },
            [&](proto::Ping&) { send(worker, proto::Pong{}); },
            [&](proto::Pong&) {},
            [&](proto::WorkerRegistered&) {},
            [&](auto& m) {
                // Messages the engine has no variant for (unregistertriggertype, and the
                // E->W-only error / registrationrejected): undecodable, dropped.
                note(LogLevel::Warn, "worker {}: dropped undecodable frame: unknown variant `{}`",
                     worker.id, proto::type_name(proto::Message(std::move(m))));
            },
        },
        message);
}

void Engine::Impl::reattach(Worker& worker, const Value& frame) {
    const Value* previous = frame.find("previous_worker_id");
    const Value* token = frame.find("reattach_token");
    if (!previous || !previous->is_string()) {
        note(LogLevel::Warn, "worker {}: reattach without previous_worker_id ignored", worker.id);
        return;
    }
    const std::string previous_id = previous->as_string();
    Worker* old = find_worker(previous_id);
    if (!old || old == &worker) {
        note(LogLevel::Info, "worker {}: reattach: {} is not connected", worker.id, previous_id);
        return;
    }
    if (!token || !token->is_string() || token->as_string() != old->reattach_token) {
        note(LogLevel::Warn, "worker {}: reattach to {} ignored: wrong or missing token", worker.id,
             previous_id);
        return;
    }
    note(LogLevel::Info, "worker {} reattaches {}: evicting the old connection", worker.id,
         previous_id);
    {
        // The old socket is dropped without a close handshake, as the real engine's eviction
        // ends its connection task.
        std::lock_guard lock(mutex);
        close_codes[old->id] = 1006;
    }
    old->socket->detach();
    old->socket->abort();
    disconnect(*old);  // its cleanup completes before the next frame of the successor
}

void Engine::Impl::drain_held_registrations(Worker& worker) {
    auto held = std::move(worker.held_registrations);
    worker.held_registrations.clear();
    for (auto& message : held) {
        if (worker.gone) return;
        apply_frame(worker, message);
    }
}

void Engine::Impl::send_rejection(Worker& worker, const std::string& code, const std::string& ns,
                                  const std::optional<std::string>& worker_name,
                                  const std::optional<std::string>& function_id,
                                  const std::string& owner) {
    Value frame = Value::object({{"type", "registrationrejected"}, {"code", code}, {"namespace", ns}});
    if (worker_name) frame.set("worker_name", *worker_name);
    if (function_id) frame.set("function_id", *function_id);
    frame.set("owner_worker_id", owner);
    send_text(worker, frame.dump());
}

// ---- fault injection -----------------------------------------------------------------------

void Engine::Impl::stall(Worker& worker) {
    if (worker.stalled) return;
    worker.stalled = true;
    worker.socket->pause_reading();
}

void Engine::Impl::resume(Worker& worker) {
    if (!worker.stalled) return;
    worker.stalled = false;
    Event event(*this);
    auto keep = workers.at(worker.id);
    while (!worker.held.empty() && !worker.stalled && !worker.gone) {
        auto [payload, binary] = std::move(worker.held.front());
        worker.held.pop_front();
        process_frame(worker, payload, binary);
    }
    if (!worker.gone) worker.socket->resume_reading();
}

void Engine::Impl::stop_everything() {
    if (shut_down) return;
    shut_down = true;
    functions_available_timer.cancel();
    server->stop_listening();
    for (const auto& [id, worker] : workers) worker->socket->abort();
    auto otel = otel_sockets;  // (a copy: a close may be reported inline)
    for (const auto& [id, socket] : otel) socket->abort();
    channel_hub.abort_all();  // channels (issue 5)
}

// ---- public API ----------------------------------------------------------------------------

Engine::Engine(EngineOptions options) : impl_(std::make_shared<Impl>(std::move(options))) {}

Engine::~Engine() = default;

std::uint16_t Engine::port() const { return impl_->port; }

Generation Engine::generation() const { return impl_->options.generation; }

const char* to_string(Generation generation) noexcept {
    switch (generation) {
        case Generation::V0_10: return "0.10";
        case Generation::V0_22: return "0.22";
        case Generation::V0_23: return "0.23";
    }
    return "unknown";
}

std::optional<Generation> parse_generation(std::string_view text) noexcept {
    // The release names ("0.22.1", "0.23.0-rc.4") are accepted too: they are what users see.
    auto is = [&](std::string_view short_name, std::string_view release) {
        return text == short_name || text == release ||
               (text.size() > release.size() && text.starts_with(release) &&
                text[release.size()] == '-');
    };
    if (is("0.10", "0.10.0")) return Generation::V0_10;
    if (is("0.22", "0.22.1")) return Generation::V0_22;
    if (is("0.23", "0.23.0")) return Generation::V0_23;
    return std::nullopt;
}

std::string Engine::url() const {
    return impl_->url();
}

std::vector<std::string> Engine::worker_ids() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->observed_workers;
}

std::vector<RecordedFrame> Engine::frames(const std::string& worker_id) const {
    std::lock_guard lock(impl_->mutex);
    if (worker_id.empty()) return impl_->recorded;
    std::vector<RecordedFrame> out;
    for (const auto& f : impl_->recorded)
        if (f.worker_id == worker_id) out.push_back(f);
    return out;
}

namespace {
std::vector<Value> of_type(const std::vector<RecordedFrame>& frames, bool inbound,
                           const std::string& type, const std::string& worker_id) {
    std::vector<Value> out;
    for (const auto& f : frames) {
        if (f.inbound != inbound || (!worker_id.empty() && f.worker_id != worker_id)) continue;
        if (f.text.find(type) == std::string::npos) continue;  // cheap pre-filter
        try {
            Value v = Value::parse(f.text);
            const Value* t = v.find("type");
            if (t && t->is_string() && t->as_string() == type) out.push_back(std::move(v));
        } catch (const std::exception&) {
        }
    }
    return out;
}
}  // namespace

std::vector<Value> Engine::received(const std::string& type, const std::string& worker_id) const {
    return of_type(frames(), true, type, worker_id);
}

std::vector<Value> Engine::sent(const std::string& type, const std::string& worker_id) const {
    return of_type(frames(), false, type, worker_id);
}

std::vector<Value> Engine::telemetry(std::string_view prefix) const {
    std::lock_guard lock(impl_->mutex);
    std::vector<Value> out;
    for (const auto& [p, body] : impl_->observed_telemetry)
        if (p == prefix) out.push_back(body);
    return out;
}

std::vector<Value> Engine::spans() const {
    return flatten(telemetry("OTLP"), "resourceSpans", "scopeSpans", "spans");
}

std::vector<Value> Engine::log_records() const {
    return flatten(telemetry("LOGS"), "resourceLogs", "scopeLogs", "logRecords");
}

std::vector<Value> Engine::metrics() const {
    return flatten(telemetry("MTRC"), "resourceMetrics", "scopeMetrics", "metrics");
}

std::optional<std::uint16_t> Engine::close_code(const std::string& worker_id) const {
    std::lock_guard lock(impl_->mutex);
    auto it = impl_->close_codes.find(worker_id);
    if (it == impl_->close_codes.end()) return std::nullopt;
    return it->second;
}

std::uint64_t Engine::frames_forwarded_as_text() const {
    return impl_->forwarded_as_text.load();
}

std::vector<std::string> Engine::function_ids() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->observed_functions;
}

bool Engine::wait_for(const std::function<bool()>& predicate,
                      std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const std::uint64_t seen = impl_->events.load();
        // Evaluated without the lock: the predicate calls the observation methods. An event
        // published meanwhile bumps `events`, so the wait below returns at once.
        if (predicate()) return true;
        std::unique_lock lock(impl_->mutex);
        ++impl_->waiting;  // before reading `events` (see Impl::events)
        const bool changed =
            impl_->changed.wait_until(lock, deadline, [&] { return impl_->events.load() != seen; });
        --impl_->waiting;
        if (!changed) {
            lock.unlock();  // the predicate takes the lock itself
            return predicate();
        }
    }
}

void Engine::send_to(const std::string& worker_id, const std::string& text) {
    impl_->run_on_io([&] {
        Impl::Event event(*impl_);
        if (auto* w = impl_->find_worker(worker_id)) impl_->send_text(*w, text);
    });
}

void Engine::close(const std::string& worker_id, std::uint16_t code) {
    impl_->run_on_io([&] {
        if (auto* w = impl_->find_worker(worker_id)) w->socket->close(code, {});
    });
}

void Engine::drop(const std::string& worker_id) {
    impl_->run_on_io([&] {
        if (auto* w = impl_->find_worker(worker_id)) w->socket->abort();
    });
}

void Engine::stall(const std::string& worker_id) {
    impl_->run_on_io([&] {
        if (auto* w = impl_->find_worker(worker_id)) impl_->stall(*w);
    });
}

void Engine::resume(const std::string& worker_id) {
    impl_->run_on_io([&] {
        if (auto* w = impl_->find_worker(worker_id)) impl_->resume(*w);
    });
}

void Engine::shutdown() {
    impl_->run_on_io([&] { impl_->stop_everything(); });
}

}  // namespace iii::testing
