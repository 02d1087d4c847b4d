#include <iii/testing/engine.hpp>

#include "log.hpp"
#include "protocol.hpp"
#include "transport/ws_transport.hpp"
#include "testing/channel_hub.hpp"  // channels (issue 5)

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <utility>

namespace iii::testing {
namespace {

namespace proto = iii::detail::protocol;
namespace transport = iii::detail::transport;
using iii::detail::LogLevel;

// One stderr line per event worth knowing about (level from $III_LOG, see log.hpp).
template <class... Args>
void note(LogLevel level, fmt::format_string<Args...> format, Args&&... args) noexcept {
    if (level > iii::detail::log_threshold()) return;
    try {
        iii::detail::log_line(level,
                              "test engine: " + fmt::format(format, std::forward<Args>(args)...));
    } catch (...) {
    }
}

template <class... F>
struct Overloaded : F... {
    using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

std::uint64_t now_ms() {
    using namespace std::chrono;
    return static_cast<std::uint64_t>(
        duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

// The real engine holds payloads as serde_json::Value without preserve_order, so every object
// it re-encodes comes out with sorted keys. Tests of the SDK must not depend on key order, and
// this is what makes them notice when they do.
void sort_keys(Value& value) {
    if (value.is_object()) {
        auto& members = value.as_object();
        std::stable_sort(members.begin(), members.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        for (auto& member : members) sort_keys(member.second);
    } else if (value.is_array()) {
        for (auto& element : value.as_array()) sort_keys(element);
    }
}
Value sorted(Value value) {
    sort_keys(value);
    return value;
}
std::optional<Value> sorted(std::optional<Value> value) {
    if (value) sort_keys(*value);
    return value;
}

Value or_null(const std::optional<std::string>& s) { return s ? Value(*s) : Value(); }
Value or_null(const std::optional<Value>& v) { return v ? *v : Value(); }

bool is_blank(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

bool is_telemetry(std::string_view frame) {
    return frame.starts_with("OTLP") || frame.starts_with("MTRC") || frame.starts_with("LOGS");
}

// The 0.10 engine declares a number data point's `asInt` as i64: a string there (as the Rust
// SDK writes it) fails the whole metrics frame (spec 7.2). Returns the reason, empty when fine.
std::string metrics_defect(const Value& body) {
    const Value* rms = body.find("resourceMetrics");
    if (!rms || !rms->is_array()) return {};
    for (const auto& rm : rms->as_array()) {
        const Value* sms = rm.find("scopeMetrics");
        if (!sms || !sms->is_array()) continue;
        for (const auto& sm : sms->as_array()) {
            const Value* ms = sm.find("metrics");
            if (!ms || !ms->is_array()) continue;
            for (const auto& m : ms->as_array()) {
                for (const char* kind : {"gauge", "sum"}) {
                    const Value* data = m.find(kind);
                    const Value* points = data ? data->find("dataPoints") : nullptr;
                    if (!points || !points->is_array()) continue;
                    for (const auto& p : points->as_array())
                        if (const Value* v = p.find("asInt"); v && !v->is_integer() && !v->is_null())
                            return fmt::format("asInt of {} is not an integer", m["name"].dump());
                }
            }
        }
    }
    return {};
}

// Flattens `bodies[].<outer>[].<middle>[].<inner>[]` (OTLP's resource/scope nesting).
std::vector<Value> flatten(const std::vector<Value>& bodies, std::string_view outer,
                           std::string_view middle, std::string_view inner) {
    std::vector<Value> out;
    auto each = [](const Value& v, std::string_view key, auto&& f) {
        const Value* list = v.find(key);
        if (list && list->is_array())
            for (const auto& item : list->as_array()) f(item);
    };
    for (const auto& body : bodies)
        each(body, outer, [&](const Value& a) {
            each(a, middle, [&](const Value& b) {
                each(b, inner, [&](const Value& c) { out.push_back(c); });
            });
        });
    return out;
}

// Length of the valid UTF-8 sequence at the start of `s`, 0 when it is not one.
std::size_t utf8_sequence(std::string_view s) {
    const auto b0 = static_cast<unsigned char>(s[0]);
    std::size_t n = b0 < 0x80           ? 1
                    : (b0 >> 5) == 0x6  ? 2
                    : (b0 >> 4) == 0xE  ? 3
                    : (b0 >> 3) == 0x1E ? 4
                                        : 0;
    if (n == 0 || n > s.size()) return 0;
    for (std::size_t i = 1; i < n; ++i)
        if ((static_cast<unsigned char>(s[i]) >> 6) != 0x2) return 0;
    return n;
}

// A JSON string literal of arbitrary bytes: binary frames go into the log file as strings.
// Bytes that are not UTF-8 become \u00XX so that every line stays valid JSON.
std::string json_string(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() + 2);
    out += '"';
    while (!bytes.empty()) {
        const auto c = static_cast<unsigned char>(bytes[0]);
        std::size_t n = 1;
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            out += fmt::format("\\u{:04x}", c);
        } else if (c < 0x80) {
            out += static_cast<char>(c);
        } else if ((n = utf8_sequence(bytes)) != 0) {
            out.append(bytes.substr(0, n));
        } else {
            n = 1;
            out += fmt::format("\\u{:04x}", c);
        }
        bytes.remove_prefix(n);
    }
    out += '"';
    return out;
}

/// What a function call produced: a value (absent or null: no value) or an error.
struct Outcome {
    std::optional<Value> result;
    std::optional<RemoteError> error;

    static Outcome value(Value v) { return {std::move(v), std::nullopt}; }
    static Outcome nothing() { return {}; }
    static Outcome failure(std::string code, std::string message) {
        return {std::nullopt, RemoteError{std::move(code), std::move(message), std::nullopt}};
    }
};

// A built-in's input did not have the shape it expects; the real engine answers
// `deserialization_error` "Failed to deserialize input for <id>: <reason>".
struct BadInput {
    std::string reason;
};

// Built-in inputs are structs with optional fields on the real engine; null counts as absent.
const Value* field(const Value& input, std::string_view key) {
    const Value* v = input.find(key);
    return v && !v->is_null() ? v : nullptr;
}
void expect_object(const Value& input) {
    if (!input.is_object() && !input.is_null())
        throw BadInput{fmt::format("invalid type: {}, expected a map", kind_name(input.kind()))};
}
bool opt_bool(const Value& input, std::string_view key, bool fallback) {
    const Value* v = field(input, key);
    if (!v) return fallback;
    if (!v->is_bool())
        throw BadInput{
            fmt::format("invalid type: {}, expected a boolean at `{}`", kind_name(v->kind()), key)};
    return v->as_bool();
}
std::optional<std::string> opt_string(const Value& input, std::string_view key) {
    const Value* v = field(input, key);
    if (!v) return std::nullopt;
    if (!v->is_string())
        throw BadInput{
            fmt::format("invalid type: {}, expected a string at `{}`", kind_name(v->kind()), key)};
    return v->as_string();
}
std::optional<std::uint64_t> opt_uint(const Value& input, std::string_view key, std::uint64_t max) {
    const Value* v = field(input, key);
    if (!v) return std::nullopt;
    if (!v->is_integer() || (v->kind() == Value::Kind::Int && v->as_int() < 0) ||
        v->as_uint() > max)
        throw BadInput{
            fmt::format("invalid value at `{}`, expected an unsigned integer up to {}", key, max)};
    return v->as_uint();
}

constexpr std::string_view trigger_type_functions_available = "engine::functions-available";
constexpr std::string_view trigger_type_workers_available = "engine::workers-available";

// Trigger types the real engine (with the SDK fixture's modules) provides in-process. The two
// `engine::` ones are live here; the others are accepted and stored so that SDK code binding
// them behaves as against a real engine, but nothing ever fires them.
constexpr std::pair<std::string_view, std::string_view> builtin_trigger_types[] = {
    {trigger_type_functions_available, "Fires when the set of registered functions changes"},
    {trigger_type_workers_available, "Fires when workers connect, disconnect or update metadata"},
    {"http", "HTTP API trigger"},
    {"cron", "Cron schedule trigger"},
    {"durable:subscriber", "Durable queue subscriber"},
    {"subscribe", "Topic subscription"},
    {"state", "State change trigger"},
    {"stream", "Stream change trigger"},
    {"stream:join", "Stream join trigger"},
    {"stream:leave", "Stream leave trigger"},
    {"log", "Log record trigger"},
};

}  // namespace

struct Engine::Impl {
    // ---- engine state: touched only on the io thread -----------------------------------------

    struct Worker {
        std::string id;
        std::shared_ptr<transport::Socket> socket;
        proto::Decoder decoder;
        std::uint64_t connected_at_ms = 0;
        std::string ip_address;
        std::set<std::string> functions;           // registered through this connection
        std::set<std::string> external_functions;  // HTTP-invoked ones
        std::set<std::string> invocations;         // as caller and as callee
        std::set<std::string> triggers;
        std::set<std::string> trigger_types;
        // From engine::workers::register; all null until it is called.
        std::optional<std::string> name, runtime, version, os;
        std::optional<std::uint32_t> pid;
        Value telemetry;
        bool stalled = false;
        // Frames delivered while stalled (the transport stops reading, so normally none).
        std::deque<std::pair<std::string, bool>> held;
        bool gone = false;
    };

    struct Function {
        std::string owner;  // worker id; empty for a built-in
        std::optional<std::string> description;
        std::optional<Value> request_format, response_format, metadata;
        std::optional<HttpInvocationConfig> invocation;  // HTTP-invoked
        std::function<Outcome(const Value&)> builtin;
    };

    struct TriggerType {
        std::string owner;  // worker id; empty for the engine's own types
        std::string description;
        std::optional<Value> trigger_request_format, call_request_format;
    };

    struct Trigger {
        std::string trigger_type;
        std::string function_id;
        Value config;
        std::optional<Value> metadata;
        std::string owner;  // the worker that registered it
    };

    /// One invocation on its way to a function.
    struct Call {
        std::string invocation_id;
        std::string function_id;
        Value data;
        std::optional<std::string> traceparent, baggage;
        /// The worker waiting for the result; empty when the engine consumes it (void calls,
        /// engine-origin calls).
        std::string caller;
        std::function<void(const Outcome&)> on_result;  // engine consumer, may be empty
    };

    /// A call forwarded to a worker, waiting for its invocationresult.
    struct Pending {
        std::string function_id;
        std::string caller;  // as in Call
        std::string callee;
        std::optional<std::string> traceparent, baggage;  // the caller's, echoed in the reply
        std::function<void(const Outcome&)> on_result;
    };

    EngineOptions options;
    asio::io_context io;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::unique_ptr<transport::Server> server;
    asio::steady_timer functions_available_timer{io};
    std::uint16_t port = 0;
    std::ofstream log_file;
    bool log_unflushed = false;  // lines written during the current event
    proto::Encoder encoder;

    std::unordered_map<std::string, std::shared_ptr<Worker>> workers;
    // Telemetry-only connections (`/otel`), by connection id; not workers.
    std::unordered_map<std::string, std::shared_ptr<transport::Socket>> otel_sockets;
    std::vector<std::string> worker_order;
    std::map<std::string, Function> functions;
    std::map<std::string, TriggerType> trigger_types;
    std::map<std::string, Trigger> triggers;
    std::map<std::string, RegisterServiceMessage> services;
    std::unordered_map<std::string, Pending> pending;
    // ---- channels (issue 5): data channels are bridged by ChannelHub (spec 6, 9.8) ----
    detail::testing::ChannelHub channel_hub{io};
    std::vector<std::string> functions_snapshot;  // the functions-available watcher's last view
    bool shut_down = false;

    // Observations made during the current event, published together at its end so that a
    // waiter never sees a frame before the state change it caused.
    std::vector<RecordedFrame> batch;
    std::vector<std::pair<std::string, Value>> telemetry_batch;  // prefix, parsed body
    struct Outgoing {
        std::shared_ptr<transport::Socket> socket;
        std::string worker_id;
        std::string text;
    };
    std::vector<Outgoing> outbox;  // frames of the current event, written when it ends
    bool workers_dirty = false;
    bool functions_dirty = false;
    int event_depth = 0;

    // ---- observed state: shared with the test thread under `mutex` ---------------------------

    mutable std::mutex mutex;
    mutable std::condition_variable changed;
    std::uint64_t events = 0;
    std::vector<RecordedFrame> recorded;
    std::vector<std::pair<std::string, Value>> observed_telemetry;
    std::vector<std::string> observed_workers;
    std::vector<std::string> observed_functions;
    std::map<std::string, std::uint16_t> close_codes;  // per worker, once its socket closed

    std::thread thread;

    explicit Impl(EngineOptions opts) : options(std::move(opts)) {
        if (options.log_file) {
            log_file.open(*options.log_file, std::ios::out | std::ios::app);
            if (!log_file)
                throw std::system_error(errno, std::generic_category(),
                                        "cannot open log file '" + *options.log_file + "'");
        }
        register_builtins();
        for (const auto& [id, description] : builtin_trigger_types)
            trigger_types[std::string(id)] = TriggerType{{}, std::string(description), {}, {}};
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
        thread = std::thread([this] { run(); });
    }

    transport::ServerTls server_tls() const {
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

    ~Impl() {
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

    void run() {
        for (;;) {
            try {
                io.run();
                return;
            } catch (const std::exception& e) {
                note(LogLevel::Error, "internal error: {}", e.what());
            }
        }
    }

    /// Runs `f` on the io thread and waits for it; runs it inline when already there.
    template <class F>
    auto run_on_io(F&& f) -> decltype(f()) {
        if (io.get_executor().running_in_this_thread()) return f();
        std::packaged_task<decltype(f())()> task(std::forward<F>(f));
        auto result = task.get_future();
        asio::post(io, [&task] { task(); });
        return result.get();
    }

    // ---- observation ---------------------------------------------------------------------------

    /// Scope of one engine event (a frame, a connect, a timer...): publishes what it did.
    struct Event {
        Impl& impl;
        explicit Event(Impl& i) : impl(i) { ++impl.event_depth; }
        ~Event() {
            if (--impl.event_depth == 0) {
                impl.publish();
                impl.flush_outbox();
            }
        }
    };

    void publish() {
        if (log_unflushed) {
            log_file.flush();  // a reader of the log sees the event once it is published
            log_unflushed = false;
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
            ++events;
        }
        batch.clear();
        telemetry_batch.clear();
        workers_dirty = functions_dirty = false;
        changed.notify_all();
    }

    void record(const std::string& worker_id, bool inbound, bool binary, std::string_view text) {
        if (log_file.is_open()) write_log_line(worker_id, inbound, binary, text);
        if (options.record_frames)
            batch.push_back(RecordedFrame{worker_id, inbound, binary, std::string(text)});
    }

    /// A telemetry export (spec 7.1): parsed and kept for Engine::telemetry(), published with
    /// the event. Nothing is ever replied. Returns false for a frame with no known prefix.
    bool ingest_telemetry(bool otel, const std::string& connection_id, std::string_view frame) {
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

    void write_log_line(const std::string& worker_id, bool inbound, bool binary,
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
        log_file << fmt::format(R"({{"t":{},"worker":{},"dir":"{}","binary":{},"frame":{}}})",
                                now_ms(), json_string(worker_id), inbound ? "in" : "out",
                                binary ? "true" : "false", frame)
                 << '\n';
        log_unflushed = true;
    }

    std::vector<std::string> function_id_list() const {
        std::vector<std::string> ids;
        ids.reserve(functions.size());
        for (const auto& entry : functions) ids.push_back(entry.first);
        return ids;  // sorted: std::map
    }

    // ---- connections ---------------------------------------------------------------------------

    transport::Admission admit(const std::string& resource) {
        const std::string_view path = std::string_view(resource).substr(0, resource.find('?'));
        if (path == "/" || path == "/otel") return {};
        // channels (issue 5): 404 for an unknown id or a wrong key, before any WebSocket exists
        if (detail::testing::ChannelHub::is_channel_resource(resource))
            return channel_hub.admission(resource);
        return {false, 404, "Not Found"};
    }

    transport::Callbacks accept(const std::shared_ptr<transport::Socket>& socket,
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

    // The HEAD engine's telemetry-only route (spec 10): no workerregistered, no registry entry,
    // binary telemetry frames only (text frames are ignored, as there).
    transport::Callbacks accept_otel(const std::shared_ptr<transport::Socket>& socket) {
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

    transport::Callbacks accept_worker(const std::shared_ptr<transport::Socket>& socket) {
        Event event(*this);
        auto worker = std::make_shared<Worker>();
        worker->id = proto::new_uuid();
        worker->socket = socket;
        worker->connected_at_ms = now_ms();
        worker->ip_address = socket->remote_ip();
        workers[worker->id] = worker;
        worker_order.push_back(worker->id);
        workers_dirty = true;

        // Spec 1.5: workerregistered is always the first frame on a connection.
        send(*worker, proto::WorkerRegistered{worker->id, std::nullopt});
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

    Worker* find_worker(const std::string& id) {
        if (id.empty()) return nullptr;
        auto it = workers.find(id);
        return it == workers.end() ? nullptr : it->second.get();
    }

    void send(Worker& worker, const proto::Message& message) {
        send_text(worker, encoder.encode(message));
    }

    // Queued, and written when the event ends, after its state change is published: a test
    // that has seen a frame arrive can rely on the engine's observable state (worker_ids(),
    // function_ids(), frames()) including everything the event did.
    void send_text(Worker& worker, std::string_view text) {
        record(worker.id, false, false, text);
        outbox.push_back(Outgoing{worker.socket, worker.id, std::string(text)});
        if (event_depth == 0) flush_outbox();
    }

    void flush_outbox() {
        auto frames = std::move(outbox);
        outbox.clear();
        for (auto& frame : frames) {
            // A socket that is already closing refuses the frame; its on_close is on its way
            // and cleans up (halting whatever was just routed to it).
            if (auto ec = frame.socket->send(frame.text, false))
                note(LogLevel::Info, "worker {}: send failed: {}", frame.worker_id, ec.message());
        }
    }

    // ---- inbound frames --------------------------------------------------------------------

    void on_frame(const std::shared_ptr<Worker>& worker, std::string&& payload, bool binary) {
        Event event(*this);
        if (worker->stalled) {
            worker->held.emplace_back(std::move(payload), binary);
            return;
        }
        process_frame(*worker, payload, binary);
    }

    void process_frame(Worker& worker, const std::string& payload, bool binary) {
        record(worker.id, true, binary, payload);
        // Telemetry exports (spec 7.1) are accepted on any `/` connection too.
        if (binary && ingest_telemetry(false, worker.id, payload)) return;
        if (is_blank(payload)) return;

        proto::Message message;
        proto::DecodeFailure failure;
        if (!worker.decoder.decode(payload, message, failure)) {
            note(LogLevel::Warn, "worker {}: dropped undecodable frame: {}", worker.id,
                 failure.reason);
            return;
        }
        std::visit(
            Overloaded{
                [&](proto::RegisterFunction& m) {
                    register_function(worker, std::move(m.message));
                },
                [&](proto::UnregisterFunction& m) { unregister_function(worker, m.id); },
                [&](proto::RegisterTriggerType& m) { register_trigger_type(worker, std::move(m)); },
                [&](proto::RegisterTrigger& m) { register_trigger(worker, std::move(m)); },
                [&](proto::UnregisterTrigger& m) { unregister_trigger(m.id); },
                [&](proto::TriggerRegistrationResult& m) {
                    // Only logged by the real engine; never forwarded to the trigger's owner.
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
                    // Messages the 0.10 engine has no variant for (unregistertriggertype, and
                    // the E->W-only error / registrationrejected): undecodable, dropped.
                    note(LogLevel::Warn,
                         "worker {}: dropped undecodable frame: unknown variant `{}`", worker.id,
                         proto::type_name(proto::Message(std::move(m))));
                },
            },
            message);
    }

    // ---- registrations (spec 9.4) ----------------------------------------------------------

    void register_function(Worker& worker, RegisterFunctionMessage message) {
        auto& slot = functions[message.id];
        if (!slot.owner.empty() && slot.owner != worker.id)
            note(LogLevel::Info, "function {} re-registered by {} (was {})", message.id, worker.id,
                 slot.owner);
        const bool external = message.invocation.has_value();
        (external ? worker.external_functions : worker.functions).insert(message.id);
        slot = Function{worker.id,
                        std::move(message.description),
                        std::move(message.request_format),
                        std::move(message.response_format),
                        std::move(message.metadata),
                        std::move(message.invocation),
                        {}};
        functions_dirty = true;
    }

    void unregister_function(Worker& worker, const std::string& id) {
        // Whoever registered it: one worker can remove another's function (spec 2.3).
        if (functions.erase(id)) functions_dirty = true;
        worker.functions.erase(id);
        worker.external_functions.erase(id);
    }

    void register_trigger_type(Worker& worker, proto::RegisterTriggerType message) {
        auto it = trigger_types.find(message.id);
        if (it != trigger_types.end() && !it->second.owner.empty() &&
            it->second.owner != worker.id) {
            if (Worker* previous = find_worker(it->second.owner))
                previous->trigger_types.erase(message.id);
        }
        trigger_types[message.id] = TriggerType{worker.id, std::move(message.description),
                                                std::move(message.trigger_request_format),
                                                std::move(message.call_request_format)};
        worker.trigger_types.insert(message.id);
        // Replay every stored trigger of this type to the new owner (spec 4.2 step 1), including
        // orphans left behind by a previous owner's disconnect.
        for (const auto& [id, trigger] : triggers) {
            if (trigger.trigger_type == message.id)
                send(worker, register_trigger_message(id, trigger));
        }
    }

    proto::RegisterTrigger register_trigger_message(const std::string& id, const Trigger& t) {
        return proto::RegisterTrigger{id, t.trigger_type, t.function_id, sorted(t.config),
                                      sorted(t.metadata)};
    }

    void register_trigger(Worker& worker, proto::RegisterTrigger message) {
        auto type = trigger_types.find(message.trigger_type);
        if (type == trigger_types.end()) {
            // Lost for good: it will not activate if the type appears later (spec 4.1).
            note(LogLevel::Warn, "trigger type '{}' not found; trigger '{}' dropped",
                 message.trigger_type, message.id);
            return;
        }
        Trigger trigger{message.trigger_type, message.function_id, std::move(message.config),
                        std::move(message.metadata), worker.id};
        if (!type->second.owner.empty()) {
            Worker* owner = find_worker(type->second.owner);
            if (!owner) {
                note(LogLevel::Warn, "trigger '{}': could not forward to the owner of '{}'",
                     message.id, message.trigger_type);
                return;
            }
            // Stored as soon as the frame is queued to the owner, without waiting for its
            // triggerregistrationresult (spec 4.2 step 3).
            send(*owner, register_trigger_message(message.id, trigger));
        }
        auto previous = triggers.find(message.id);
        if (previous != triggers.end() && previous->second.owner != worker.id) {
            if (Worker* old_owner = find_worker(previous->second.owner))
                old_owner->triggers.erase(message.id);
        }
        triggers[message.id] = std::move(trigger);
        worker.triggers.insert(message.id);
    }

    void unregister_trigger(const std::string& id) {
        auto it = triggers.find(id);
        if (it == triggers.end()) {
            note(LogLevel::Info, "unregistertrigger: trigger '{}' not found", id);
            return;
        }
        const Trigger& trigger = it->second;
        auto type = trigger_types.find(trigger.trigger_type);
        if (type != trigger_types.end() && !type->second.owner.empty()) {
            // Deleted only if the owner was told (spec 4.2 step 7).
            Worker* owner = find_worker(type->second.owner);
            if (!owner) return;
            send(*owner, proto::UnregisterTrigger{id, trigger.trigger_type});
        }
        if (Worker* registrant = find_worker(trigger.owner)) registrant->triggers.erase(id);
        triggers.erase(it);
    }

    // ---- invocations (spec 9.5) ------------------------------------------------------------

    void invoke_from_worker(Worker& worker, proto::InvokeFunction message) {
        if (message.action && std::holds_alternative<Enqueue>(*message.action)) {
            enqueue(worker, std::move(message));
            return;
        }
        const bool is_void = message.action && std::holds_alternative<Void>(*message.action);
        const bool reply = !is_void && message.invocation_id.has_value();

        if (!functions.count(message.function_id)) {
            if (reply) {
                reply_to(worker, *message.invocation_id, message.function_id,
                         Outcome::failure("function_not_found", fmt::format("Function {} not found",
                                                                            message.function_id)),
                         message.traceparent, message.baggage);
            }
            return;
        }
        if (message.data.is_object()) message.data.set("_caller_worker_id", worker.id);

        Call call;
        // A void call gets a fresh id toward the callee, whatever the caller sent (spec 3.2).
        call.invocation_id = reply ? *message.invocation_id : proto::new_uuid();
        call.function_id = std::move(message.function_id);
        call.data = std::move(message.data);
        call.traceparent = std::move(message.traceparent);
        call.baggage = std::move(message.baggage);
        if (reply) {
            call.caller = worker.id;
            worker.invocations.insert(call.invocation_id);
        }
        dispatch(std::move(call));
    }

    /// Runs a call: a built-in inline, a worker's function by forwarding it.
    void dispatch(Call call) {
        auto it = functions.find(call.function_id);
        if (it == functions.end()) {
            finish(call, Outcome::failure("function_not_found",
                                          fmt::format("Function {} not found", call.function_id)));
            return;
        }
        Function& function = it->second;
        if (function.builtin) {
            Outcome outcome;
            try {
                outcome = function.builtin(call.data);
            } catch (const BadInput& bad) {
                outcome = Outcome::failure("deserialization_error",
                                           fmt::format("Failed to deserialize input for {}: {}",
                                                       call.function_id, bad.reason));
            }
            if (outcome.result) sort_keys(*outcome.result);
            finish(call, std::move(outcome));
            return;
        }
        if (function.invocation) {
            finish(call,
                   Outcome::failure("http_request_failed",
                                    "HTTP-invoked functions are not supported by the test engine"));
            return;
        }
        Worker* callee = find_worker(function.owner);
        if (!callee) {
            finish(call, Outcome::failure("function_not_found",
                                          fmt::format("Function {} not found", call.function_id)));
            return;
        }
        pending[call.invocation_id] =
            Pending{call.function_id, call.caller,  callee->id,
                    call.traceparent, call.baggage, std::move(call.on_result)};
        callee->invocations.insert(call.invocation_id);
        proto::InvokeFunction forward;
        forward.invocation_id = call.invocation_id;
        forward.function_id = call.function_id;
        forward.data = sorted(std::move(call.data));
        forward.traceparent = call.traceparent;
        forward.baggage = call.baggage;
        send(*callee, forward);
    }

    /// Delivers the outcome of a call that did not reach a worker (or was answered inline).
    void finish(Call& call, Outcome outcome) {
        if (!call.caller.empty()) {
            if (Worker* caller = find_worker(call.caller)) {
                caller->invocations.erase(call.invocation_id);
                reply_to(*caller, call.invocation_id, call.function_id, outcome, call.traceparent,
                         call.baggage);
            }
        } else if (call.on_result) {
            call.on_result(outcome);
        }
    }

    void reply_to(Worker& worker, const std::string& invocation_id, const std::string& function_id,
                  const Outcome& outcome, const std::optional<std::string>& traceparent,
                  const std::optional<std::string>& baggage) {
        proto::InvocationResult result;
        result.invocation_id = invocation_id;
        result.function_id = function_id;
        if (outcome.error) {
            result.error = outcome.error;
        } else if (outcome.result && !outcome.result->is_null()) {
            // A null result is no result: the real engine omits the key (spec 9.10).
            result.result = sorted(*outcome.result);
        }
        result.traceparent = traceparent;
        result.baggage = baggage;
        send(worker, result);
    }

    void invocation_result(Worker& worker, proto::InvocationResult message) {
        worker.invocations.erase(message.invocation_id);
        auto node = pending.extract(message.invocation_id);
        if (node.empty()) {
            note(LogLevel::Info, "invocation {}: did not find caller", message.invocation_id);
            return;
        }
        Pending& p = node.mapped();
        Outcome outcome{message.error ? std::nullopt : std::move(message.result),
                        std::move(message.error)};
        if (!p.caller.empty()) {
            if (Worker* caller = find_worker(p.caller)) {
                caller->invocations.erase(message.invocation_id);
                reply_to(*caller, message.invocation_id, p.function_id, outcome, p.traceparent,
                         p.baggage);
            }
        } else if (p.on_result) {
            p.on_result(outcome);
        }
    }

    /// A call that starts in the engine (trigger fires, queue deliveries): fresh id, no
    /// `_caller_worker_id`, result consumed here.
    void call_from_engine(std::string function_id, Value data,
                          std::function<void(const Outcome&)> on_result = {}) {
        if (!functions.count(function_id)) {
            note(LogLevel::Info, "engine call: function {} not found", function_id);
            return;
        }
        Call call;
        call.invocation_id = proto::new_uuid();
        call.function_id = std::move(function_id);
        call.data = std::move(data);
        call.on_result = std::move(on_result);
        dispatch(std::move(call));
    }

    // ---- enqueue (spec 9.7) ----------------------------------------------------------------

    void enqueue(Worker& worker, proto::InvokeFunction message) {
        const std::string& queue = std::get<Enqueue>(*message.action).queue;
        std::optional<Outcome> failure;
        auto config = options.queues.find(queue);
        if (config == options.queues.end()) {
            failure = Outcome::failure("enqueue_error", fmt::format("Queue '{}' not found", queue));
        } else if (config->second.kind == QueueConfig::Kind::Fifo) {
            const std::string& group = config->second.message_group_field;
            const Value* value = message.data.find(group);
            if (!value) {
                failure = Outcome::failure(
                    "enqueue_error",
                    fmt::format("FIFO queue '{}' requires field '{}' in data, but it was not found",
                                queue, group));
            } else if (value->is_null()) {
                failure = Outcome::failure(
                    "enqueue_error",
                    fmt::format("FIFO queue '{}': field '{}' must not be null", queue, group));
            }
        }
        if (failure) {
            if (message.invocation_id)
                reply_to(worker, *message.invocation_id, message.function_id, *failure,
                         message.traceparent, message.baggage);
            return;
        }
        // The function's existence is not checked at enqueue time (spec 9.10).
        if (message.invocation_id) {
            reply_to(worker, *message.invocation_id, message.function_id,
                     Outcome::value(Value::object({{"messageReceiptId", proto::new_uuid()}})),
                     message.traceparent, message.baggage);
        }
        // Delivered later, as the queue worker would: data unchanged, an engine-origin call.
        asio::post(io, [this, function_id = std::move(message.function_id),
                        data = std::move(message.data)]() mutable {
            Event event(*this);
            if (!shut_down) call_from_engine(std::move(function_id), std::move(data));
        });
    }

    // ---- trigger types of the engine (spec 5.7, 5.8) ----------------------------------------

    void fire(std::string_view trigger_type, const Value& payload) {
        std::vector<std::string> targets;
        for (const auto& [id, trigger] : triggers)
            if (trigger.trigger_type == trigger_type) targets.push_back(trigger.function_id);
        for (auto& function_id : targets) call_from_engine(std::move(function_id), payload);
    }

    void schedule_functions_available() {
        functions_available_timer.expires_after(options.functions_available_interval);
        functions_available_timer.async_wait([this](std::error_code ec) {
            if (ec || shut_down) return;
            Event event(*this);
            auto ids = function_id_list();
            if (ids != functions_snapshot) {
                functions_snapshot = std::move(ids);
                Value list = Value::array();
                for (const auto& [id, function] : functions)
                    list.push_back(function_info(id, function));
                fire(trigger_type_functions_available,
                     Value::object(
                         {{"event", "functions_changed"}, {"functions", std::move(list)}}));
            }
            schedule_functions_available();
        });
    }

    static Value function_info(const std::string& id, const Function& f) {
        return Value::object({{"function_id", id},
                              {"description", or_null(f.description)},
                              {"request_format", or_null(f.request_format)},
                              {"response_format", or_null(f.response_format)},
                              {"metadata", or_null(f.metadata)}});
    }

    // ---- built-in functions (spec 5) --------------------------------------------------------

    void add_builtin(std::string id, std::string description,
                     std::function<Outcome(const Value&)> handler) {
        Function f;
        f.description = std::move(description);
        f.builtin = std::move(handler);
        functions[std::move(id)] = std::move(f);
    }

    void register_builtins() {
        add_builtin("engine::workers::register", "Register worker metadata",
                    [this](const Value& in) { return workers_register(in); });
        add_builtin("engine::functions::list", "List registered functions",
                    [this](const Value& in) { return functions_list(in); });
        add_builtin("engine::workers::list", "List connected workers",
                    [this](const Value& in) { return workers_list(in); });
        add_builtin("engine::triggers::list", "List registered triggers",
                    [this](const Value& in) { return triggers_list(in); });
        add_builtin("engine::trigger-types::list", "List trigger types",
                    [this](const Value& in) { return trigger_types_list(in); });
        add_builtin("engine::channels::create", "Create a data channel",
                    [this](const Value& in) { return channels_create(in); });
        for (const char* level : {"info", "warn", "error", "debug", "trace"}) {
            add_builtin(fmt::format("engine::log::{}", level),
                        fmt::format("Log at {} level", level), [level](const Value& in) {
                            expect_object(in);
                            const auto message = opt_string(in, "message");
                            note(LogLevel::Debug, "engine::log::{}: {}", level,
                                 message.value_or(""));
                            return Outcome::nothing();
                        });
        }
    }

    Outcome workers_register(const Value& in) {
        expect_object(in);
        const auto caller = opt_string(in, "_caller_worker_id");
        if (!caller) throw BadInput{"missing field `_caller_worker_id`"};
        auto runtime = opt_string(in, "runtime");
        auto version = opt_string(in, "version");
        auto name = opt_string(in, "name");
        auto os = opt_string(in, "os");
        auto pid = opt_uint(in, "pid", 0xffffffffu);
        Value telemetry;
        if (const Value* t = field(in, "telemetry")) {
            expect_object(*t);
            telemetry = Value::object();
            for (const char* key : {"language", "project_name", "framework"})
                telemetry.set(key, or_null(opt_string(*t, key)));
        }
        if (Worker* worker = find_worker(*caller)) {
            worker->runtime = runtime.value_or("unknown");
            worker->version = std::move(version);  // overwritten with null when omitted
            worker->name = std::move(name);
            worker->os = std::move(os);
            if (pid) worker->pid = static_cast<std::uint32_t>(*pid);
            worker->telemetry = std::move(telemetry);
            fire(trigger_type_workers_available,
                 Value::object({{"event", "worker_metadata_updated"}, {"worker_id", *caller}}));
        }
        return Outcome::value(Value::object({{"success", true}}));
    }

    Outcome functions_list(const Value& in) {
        expect_object(in);
        const bool include_internal = opt_bool(in, "include_internal", false);
        Value list = Value::array();
        for (const auto& [id, function] : functions) {
            if (!include_internal && id.starts_with("engine::")) continue;
            list.push_back(function_info(id, function));
        }
        return Outcome::value(Value::object({{"functions", std::move(list)}}));
    }

    Outcome workers_list(const Value& in) {
        expect_object(in);
        const auto only = opt_string(in, "worker_id");
        Value list = Value::array();
        for (const auto& id : worker_order) {
            if (only && *only != id) continue;
            const Worker& w = *workers.at(id);
            std::set<std::string> ids = w.functions;
            ids.insert(w.external_functions.begin(), w.external_functions.end());
            Value names = Value::array();
            for (const auto& f : ids) names.push_back(f);
            Value item =
                Value::object({{"id", w.id},
                               {"name", or_null(w.name)},
                               {"runtime", or_null(w.runtime)},
                               {"version", or_null(w.version)},
                               {"os", or_null(w.os)},
                               {"ip_address", w.ip_address.empty() ? Value() : Value(w.ip_address)},
                               {"status", "connected"},
                               {"connected_at_ms", w.connected_at_ms},
                               {"function_count", ids.size()},
                               {"functions", std::move(names)},
                               {"active_invocations", w.invocations.size()},
                               {"latest_metrics", Value()}});
            if (w.pid) item.set("pid", *w.pid);
            list.push_back(std::move(item));
        }
        return Outcome::value(
            Value::object({{"workers", std::move(list)}, {"timestamp", now_ms()}}));
    }

    Outcome triggers_list(const Value& in) {
        expect_object(in);
        const bool include_internal = opt_bool(in, "include_internal", false);
        Value list = Value::array();
        for (const auto& [id, t] : triggers) {
            // Filtered by the *function* id, not the type (spec 5.4).
            if (!include_internal && t.function_id.starts_with("engine::")) continue;
            Value item = Value::object({{"id", id},
                                        {"trigger_type", t.trigger_type},
                                        {"function_id", t.function_id},
                                        {"config", t.config}});
            if (t.metadata) item.set("metadata", *t.metadata);
            list.push_back(std::move(item));
        }
        return Outcome::value(Value::object({{"triggers", std::move(list)}}));
    }

    Outcome trigger_types_list(const Value& in) {
        expect_object(in);
        const bool include_internal = opt_bool(in, "include_internal", false);
        Value list = Value::array();
        for (const auto& [id, t] : trigger_types) {
            if (!include_internal && id.starts_with("engine::")) continue;
            Value item = Value::object({{"id", id}, {"description", t.description}});
            if (t.trigger_request_format)
                item.set("trigger_request_format", *t.trigger_request_format);
            if (t.call_request_format) item.set("call_request_format", *t.call_request_format);
            list.push_back(std::move(item));
        }
        return Outcome::value(Value::object({{"trigger_types", std::move(list)}}));
    }

    Outcome channels_create(const Value& in) {
        // channels (issue 5): allocation and buffer_size semantics live in ChannelHub
        expect_object(in);
        const auto requested = opt_uint(in, "buffer_size", UINT64_MAX);
        const auto created = channel_hub.create(requested);
        auto ref = [&](const char* direction) {
            return Value::object({{"channel_id", created.channel_id},
                                  {"access_key", created.access_key},
                                  {"direction", direction}});
        };
        return Outcome::value(Value::object({{"writer", ref("write")}, {"reader", ref("read")}}));
    }

    // ---- disconnect (spec 9.3) -------------------------------------------------------------

    void disconnect(Worker& worker) {
        Event event(*this);
        worker.gone = true;
        auto keep = workers.at(worker.id);  // `worker` lives until the end of the cleanup

        // 1. Functions, by id, whoever holds them now (quirk: an overwrite is deleted too).
        for (const auto* set : {&worker.functions, &worker.external_functions})
            for (const auto& id : *set)
                if (functions.erase(id)) functions_dirty = true;

        // 2. Halt every invocation this worker takes part in.
        for (const auto& id : worker.invocations) {
            auto node = pending.extract(id);
            if (node.empty()) continue;
            Pending& p = node.mapped();
            const Outcome stopped = Outcome::failure("invocation_stopped", "Invocation stopped");
            if (p.caller == worker.id) continue;  // the departing caller: discarded
            if (!p.caller.empty()) {
                if (Worker* caller = find_worker(p.caller)) {
                    caller->invocations.erase(id);
                    reply_to(*caller, id, p.function_id, stopped, p.traceparent, p.baggage);
                }
            } else if (p.on_result) {
                p.on_result(stopped);
            }
        }
        worker.invocations.clear();

        // 3. Its triggers; the owners of worker-implemented types are told.
        for (const auto& id : worker.triggers) {
            auto it = triggers.find(id);
            if (it == triggers.end() || it->second.owner != worker.id) continue;
            const std::string type = it->second.trigger_type;
            triggers.erase(it);
            auto owner_type = trigger_types.find(type);
            if (owner_type == trigger_types.end() || owner_type->second.owner.empty() ||
                owner_type->second.owner == worker.id)
                continue;
            if (Worker* owner = find_worker(owner_type->second.owner))
                send(*owner, proto::UnregisterTrigger{id, type});
        }

        // 4. Its trigger types; other workers' triggers of those types stay, orphaned.
        for (const auto& id : worker.trigger_types) {
            auto it = trigger_types.find(id);
            if (it != trigger_types.end() && it->second.owner == worker.id) trigger_types.erase(it);
        }

        // 5. The worker itself.
        workers.erase(worker.id);
        worker_order.erase(std::remove(worker_order.begin(), worker_order.end(), worker.id),
                           worker_order.end());
        workers_dirty = true;
        fire(trigger_type_workers_available,
             Value::object({{"event", "worker_disconnected"}, {"worker_id", worker.id}}));
    }

    // ---- fault injection -------------------------------------------------------------------

    void stall(Worker& worker) {
        if (worker.stalled) return;
        worker.stalled = true;
        worker.socket->pause_reading();
    }

    void resume(Worker& worker) {
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

    void stop_everything() {
        if (shut_down) return;
        shut_down = true;
        functions_available_timer.cancel();
        server->stop_listening();
        for (const auto& [id, worker] : workers) worker->socket->abort();
        auto otel = otel_sockets;  // (a copy: a close may be reported inline)
        for (const auto& [id, socket] : otel) socket->abort();
        channel_hub.abort_all();  // channels (issue 5)
    }
};

// ---- public API ----------------------------------------------------------------------------

Engine::Engine(EngineOptions options) : impl_(std::make_shared<Impl>(std::move(options))) {}

Engine::~Engine() = default;

std::uint16_t Engine::port() const { return impl_->port; }

std::string Engine::url() const {
    return fmt::format("{}://127.0.0.1:{}", impl_->options.tls ? "wss" : "ws", impl_->port);
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

std::vector<std::string> Engine::function_ids() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->observed_functions;
}

bool Engine::wait_for(const std::function<bool()>& predicate,
                      std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        std::uint64_t seen;
        {
            std::lock_guard lock(impl_->mutex);
            seen = impl_->events;
        }
        // Evaluated without the lock: the predicate calls the observation methods. An event
        // published meanwhile bumps `events`, so the wait below returns at once.
        if (predicate()) return true;
        std::unique_lock lock(impl_->mutex);
        if (!impl_->changed.wait_until(lock, deadline, [&] { return impl_->events != seen; })) {
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
