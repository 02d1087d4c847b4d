#pragma once
// iii::testing::Engine: an in-process implementation of the engine side of the iii protocol
// (spec section 9) for tests and benchmarks. Never a production engine: it binds 127.0.0.1 only.

#include <iii/export.hpp>
#include <iii/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace iii::testing {

/// A named queue for enqueue invocations (spec 9.7).
struct QueueConfig {
    /// Standard: any order; Fifo: ordered per message group.
    enum class Kind { Standard, Fifo };
    /// The queue's kind.
    Kind kind = Kind::Standard;
    /// Fifo only: the payload field that must be present and non-null.
    std::string message_group_field{};
};

/// Which release of the iii engine the test engine behaves like. Each generation reproduces the
/// observable behaviour described for it in docs/iii-protocol.md (0.10) and
/// docs/iii-protocol-current.md (0.22.1, 0.23.0-rc.4).
enum class Generation {
    /// The 0.10 engine (b31d5dd04): the baseline protocol of iii-protocol.md. The default.
    V0_10,
    /// iii/v0.22.1, the newest stable release: `reattach_token` and `reattach` (the token is
    /// checked, the old connection evicted), invocation `metadata` forwarded to the callee and
    /// from trigger bindings, the new discovery built-ins (`engine::triggers::list` lists trigger
    /// *types*, `engine::registered-triggers::list` the instances, `engine::functions::info`,
    /// `engine::workers::info`, `engine::triggers::info`, `engine::registered-triggers::info`,
    /// `engine::register_trigger`, `engine::unregister_trigger`; `engine::trigger-types::list`
    /// is gone), `workers::list` without `functions`/`pid`/`timestamp`, `functions::list`
    /// without schemas, triggers of unknown types parked until the type registers,
    /// engine-to-worker `triggerregistrationresult`, function ownership that a stale owner's
    /// unregister or disconnect cannot take away, and enqueue routed to an
    /// `engine::queue::enqueue` provider (`enqueue_error` without one).
    V0_22,
    /// v0.23.0-rc.4: 0.22.1 plus namespaces. Registrations are held until
    /// `engine::workers::register` (or EngineOptions::namespace_grace), functions, trigger
    /// types and invocations are namespaced, a duplicate live function in one namespace gets
    /// `registrationrejected FUNCTION_NAMESPACE_CONFLICT`, and a second live worker with the
    /// same name in one namespace gets `registrationrejected WORKER_NAMESPACE_CONFLICT` and a
    /// Close (1008).
    V0_23,
};
/// "0.10", "0.22", "0.23".
III_API const char* to_string(Generation generation) noexcept;
/// Parses "0.10", "0.22", "0.23" (also "0.22.1" and "0.23.0-rc.4"); nullopt otherwise.
III_API std::optional<Generation> parse_generation(std::string_view text) noexcept;

/// TLS of the test engine: it then serves `wss://` only (worker, channel and `/otel` sockets).
struct EngineTls {
    /// PEM certificate chain (leaf first).
    std::string cert_file{};
    /// The unencrypted PEM private key of cert_file.
    std::string key_file{};
    /// Non-empty: mutual TLS. Clients must present a certificate signed by a CA of this PEM
    /// file; a client without one is refused during the handshake.
    std::string client_ca_file{};
    /// Offer TLS 1.2 only, to test clients that require TLS 1.3.
    bool tls12_only = false;
};

/// Options of Engine.
struct EngineOptions {
    /// The engine release to reproduce. Default 0.10: it is the protocol floor the SDK must
    /// keep working against, the one iii-protocol.md specifies, and the one every test written
    /// before generations existed asserts; tests of newer behaviour name their generation.
    Generation generation = Generation::V0_10;
    /// 0 picks a free port (see Engine::port()).
    std::uint16_t port = 0;
    /// When set, every frame in and out is appended to this file as one JSON line.
    std::optional<std::string> log_file{};
    /// How often the functions-available watcher compares the function set (real engine: 5 s).
    std::chrono::milliseconds functions_available_interval{5000};
    /// Queues known to enqueue; default: "default" (standard), "payment" (fifo, transaction_id).
    std::map<std::string, QueueConfig> queues = {
        {"default", {QueueConfig::Kind::Standard, ""}},
        {"payment", {QueueConfig::Kind::Fifo, "transaction_id"}},
    };
    /// Keep every frame for frames() / received() / sent(), and the decoded telemetry for
    /// telemetry() / spans() / log_records() / metrics(). Benchmarks turn it off so that memory
    /// stays flat; all of those then return nothing (telemetry is then not even parsed).
    bool record_frames = true;
    /// 0.22 and later: behave as if the standalone queue worker were installed, i.e. provide
    /// `engine::queue::enqueue` in-process with the `queues` above (the worker's own function
    /// id, listed by `engine::functions::list`). Off (the default, as on a fresh 0.22 engine),
    /// enqueue needs a worker that registers `engine::queue::enqueue`, and fails with
    /// `enqueue_error` "No queue provider is installed" without one. Ignored on 0.10, whose
    /// queues are built in.
    bool queue_worker = false;
    /// 0.23: how long a connection's registrations wait for `engine::workers::register` before
    /// they are applied in the `default` namespace anyway (the real engine: 5 s,
    /// III_NAMESPACE_GRACE_MS).
    std::chrono::milliseconds namespace_grace{5000};
    /// Serve the telemetry-only route `/otel` (0.22 and later; the 0.11 Node SDK already uses
    /// it). On by default for every generation, because tests written before generations send
    /// telemetry there; the real 0.10 engine answers HTTP 404, which `otel_route = false`
    /// reproduces (the SDK then falls back to `/`).
    bool otel_route = true;
    /// Forward calls and results between workers as text (routing fields peeked at, the caller's
    /// id spliced in) whenever that gives exactly the frame the full path would send; the
    /// other frames always take the full path (decode, sorted keys, re-encode). False: every
    /// frame takes the full path, for comparing the two and for measuring what the text path
    /// saves. What workers receive is the same either way.
    bool forward_as_text = true;
    /// Set: serve `wss://` with these files (Engine's constructor throws std::invalid_argument
    /// naming a file that cannot be loaded); unset: plain `ws://`.
    std::optional<EngineTls> tls{};
};

/// One frame seen by the engine on a worker connection.
struct RecordedFrame {
    /// The worker connection the frame belongs to.
    std::string worker_id{};
    bool inbound = true;  ///< true: worker to engine; false: engine to worker
    /// A binary frame (telemetry) rather than a text one.
    bool binary = false;
    std::string text;  ///< the frame's bytes
};

/// The test engine.
///
/// What it implements (spec section 9): worker connections on `/` (workerregistered first,
/// frames handled in order, registrations applied inline, cleanup on disconnect in the engine's
/// order), routing of sync, void and enqueue invocations with the real engine's quirks (same
/// invocation id, `_caller_worker_id` injected, payloads re-encoded with sorted keys, a null
/// result omitted; a call or result between workers whose payloads already are in that form is
/// forwarded as text with the caller's id spliced in, see EngineOptions::forward_as_text), custom trigger types (forwarding, replay, orphans), the built-in functions
/// `engine::workers::register`, `engine::functions::list`, `engine::workers::list`,
/// `engine::triggers::list`, `engine::trigger-types::list`, `engine::channels::create` and
/// `engine::log::*`, and the trigger types `engine::functions-available` and
/// `engine::workers-available`. The built-in types `http`, `cron`, `durable:subscriber`,
/// `subscribe`, `state`, `stream`, `stream:join`, `stream:leave` and `log` accept and list
/// triggers but never fire. Undecodable frames are logged (iii/log.hpp: stderr, `III_LOG`) and dropped.
/// Telemetry frames (binary, `OTLP`/`MTRC`/`LOGS` prefix, spec 7.1) are decoded and kept for
/// telemetry(), on worker connections and on telemetry-only connections to `/otel` (the HEAD
/// engine's route, which the Node SDK 0.11 uses): those get no `workerregistered`, are not
/// workers (not in worker_ids() or any list, no workers-available event), ignore text frames
/// and are closed by shutdown(); their frames are not in frames(). Channel ends
/// (`/ws/channels/<id>?key=...&dir=...`, spec 6 and 9.8) are handled by the channel hub; an
/// unknown id or a wrong key gets HTTP 404 before the upgrade. Any other path gets 404.
///
/// That is the 0.10 generation, the default; EngineOptions::generation selects 0.22 or 0.23,
/// whose differences are listed at Generation (the built-in set then is that of 0.22.1:
/// `engine::trigger-types::list` answers `function_not_found`).
///
/// Thread safety: the engine runs on its own thread and keeps its state there; every method
/// may be called from any thread. Fault-injection methods return once the engine has acted.
class III_API Engine {
public:
    /// Starts listening on 127.0.0.1 at once. Throws std::system_error if the port is taken.
    explicit Engine(EngineOptions options = {});
    /// Closes every connection abruptly and stops.
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    /// The port it listens on (127.0.0.1).
    std::uint16_t port() const;
    /// The generation it reproduces (EngineOptions::generation).
    Generation generation() const;
    /// "ws://127.0.0.1:<port>"
    std::string url() const;

    // ---- observation ----------------------------------------------------------------------
    /// Ids of the open worker connections, in connection order.
    std::vector<std::string> worker_ids() const;
    /// Frames of one worker (both directions), oldest first; all workers when `worker_id` is
    /// empty. Includes frames of connections that are already closed and frames the engine
    /// dropped as undecodable. An inbound frame comes before the frames the engine sent in
    /// response to it, and becomes visible together with the state change it caused.
    std::vector<RecordedFrame> frames(const std::string& worker_id = {}) const;
    /// Inbound frames whose JSON `type` equals `type` (all workers when `worker_id` is empty),
    /// including ones the engine dropped (e.g. `unregistertriggertype`).
    std::vector<Value> received(const std::string& type, const std::string& worker_id = {}) const;
    /// Outbound frames (engine to worker) whose JSON `type` equals `type`, likewise.
    std::vector<Value> sent(const std::string& type, const std::string& worker_id = {}) const;
    /// Telemetry exports received (spec 7.1, 7.2): the parsed OTLP/JSON bodies of the binary
    /// frames prefixed `prefix` ("OTLP" traces, "MTRC" metrics, "LOGS" logs), oldest first, from
    /// worker and `/otel` connections alike. Like the real engine, a body that is not valid JSON,
    /// or a metrics body with an `asInt` number point written as a string, is dropped (and
    /// logged). Empty when EngineOptions::record_frames is false. wait_for() predicates may
    /// call these four: each export is an engine event.
    std::vector<Value> telemetry(std::string_view prefix) const;
    /// Every span of every trace export (`resourceSpans[].scopeSpans[].spans[]`), oldest first.
    std::vector<Value> spans() const;
    /// Every log record of every logs export (`resourceLogs[].scopeLogs[].logRecords[]`).
    std::vector<Value> log_records() const;
    /// Every metric of every metrics export (`resourceMetrics[].scopeMetrics[].metrics[]`).
    std::vector<Value> metrics() const;
    /// The close code a worker's connection ended with: the worker's code after a close
    /// handshake (1005 when it sent none), 1006 when the TCP connection just went away; nullopt
    /// while it is open.
    std::optional<std::uint16_t> close_code(const std::string& worker_id) const;
    /// How many frames took the text path so far (EngineOptions::forward_as_text): calls and
    /// results forwarded without a decode and re-encode. Always 0 with forward_as_text false.
    std::uint64_t frames_forwarded_as_text() const;
    /// Ids in the function registry, sorted, built-ins (`engine::...`) included. On 0.23 a
    /// function outside the `default` namespace is listed as `<namespace>/<id>`.
    std::vector<std::string> function_ids() const;
    /// Blocks until `predicate` is true or `timeout` passes; returns the predicate's last value.
    /// The predicate is re-evaluated after every engine event (frame, connect, disconnect), so
    /// no polling interval is involved. It must not call back into the engine's wait_for.
    bool wait_for(const std::function<bool()>& predicate,
                  std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;

    // ---- fault injection ------------------------------------------------------------------
    // Each of these is a no-op for an id that is not (or no longer) connected.

    /// Sends `text` as a text frame to the worker (recorded like the engine's own frames).
    void send_to(const std::string& worker_id, const std::string& text);
    /// Starts a close handshake with `code`.
    void close(const std::string& worker_id, std::uint16_t code = 1000);
    /// Drops the TCP connection without a close handshake (engine crash, network loss).
    void drop(const std::string& worker_id);
    /// Stops reading from the worker (half-open engine): no byte is read from the socket, so
    /// no frame is handled, no `pong` and no WebSocket-level Pong is sent, and TCP backpressure
    /// reaches the worker. The engine still writes to it (e.g. invocations routed to it).
    void stall(const std::string& worker_id);
    /// Undoes stall(): frames that arrived meanwhile are handled in order.
    void resume(const std::string& worker_id);
    /// Stops listening and drops every connection: the engine is gone. Running the same port
    /// again means constructing a new Engine with EngineOptions::port = port().
    void shutdown();

private:
    /// The `iii-test-engine` program's entry, which runs an engine on its only thread.
    friend struct EngineProcess;
    struct Impl;
    std::shared_ptr<Impl> impl_{};
};

}  // namespace iii::testing
