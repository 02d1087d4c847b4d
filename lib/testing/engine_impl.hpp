#pragma once
// Engine::Impl: the test engine's state and the declarations of its layers. One io thread owns
// all of it; the observation members are shared with test threads under `mutex`.
//
//   engine.cpp           public API, lifecycle, observation, connections, inbound frames,
//                        fault injection
//   engine_registry.cpp  functions, trigger types, triggers, disconnect cleanup
//   engine_router.cpp    invocations, enqueue, engine-origin calls, engine trigger types
//   engine_builtins.cpp  the engine::* built-in functions of each generation
//   engine_forward.cpp   the hot path: calls and results between workers forwarded as text

#include <iii/testing/engine.hpp>

#include "testing/channel_hub.hpp"  // channels (issue 5)
#include "testing/engine_support.hpp"

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

namespace iii::testing {

using namespace engine_detail;

struct Engine::Impl {
    // ---- engine state: touched only on the io thread -----------------------------------------

    struct Worker : std::enable_shared_from_this<Worker> {
        std::string id;
        std::shared_ptr<transport::Socket> socket;
        proto::Decoder decoder;
        std::uint64_t connected_at_ms = 0;
        std::string ip_address;
        std::set<std::string> functions;           // registered through this connection
        std::set<std::string> external_functions;  // HTTP-invoked ones
        std::set<std::string> triggers;
        std::set<std::string> trigger_types;
        // From engine::workers::register; all null until it is called.
        std::optional<std::string> name, runtime, version, os;
        std::optional<std::uint32_t> pid;
        Value telemetry;
        std::optional<std::string> description, isolation;  // 0.22+
        // 0.22+: proves a reconnecting successor is this worker (`reattach`).
        std::string reattach_token;
        // 0.23: the namespace from engine::workers::register. Until it is known, registration
        // frames wait in `held` (in arrival order); the grace timer ends the wait.
        std::string ns = "default";
        bool namespace_known = true;
        std::vector<proto::Message> held_registrations;
        std::unique_ptr<asio::steady_timer> grace_timer;
        bool stalled = false;
        // Frames delivered while stalled (the transport stops reading, so normally none).
        std::deque<std::pair<std::string, bool>> held;
        bool gone = false;
    };

    /// A worker found by id, remembered for the next lookup of the same id (the hot path looks
    /// up a call's callee and its caller once per frame). Valid only while no worker has
    /// disconnected since: workers are destroyed only after disconnect(), which counts.
    struct WorkerRef {
        Worker* worker = nullptr;
        std::uint64_t disconnects = 0;  // Impl::disconnects when `worker` was found
    };

    struct Function {
        std::string id;                // without the namespace
        std::string ns = "default";    // 0.23; always "default" before
        std::string owner;  // worker id; empty for a built-in
        std::optional<std::string> description;
        std::optional<Value> request_format, response_format, metadata;
        std::optional<HttpInvocationConfig> invocation;  // HTTP-invoked
        std::function<Outcome(const Value&)> builtin;
        std::string builtin_worker;  // 0.22+: the in-process worker that provides a built-in
        WorkerRef owner_ref;  // forward_fast()'s last lookup of `owner`
    };

    struct TriggerType {
        std::string id;              // without the namespace
        std::string ns = "default";  // 0.23
        std::string owner;  // worker id; empty for the engine's own types
        std::string description;
        std::optional<Value> trigger_request_format, call_request_format;
    };

    struct Trigger {
        std::string trigger_type;
        std::string function_id;
        Value config;
        std::optional<Value> metadata;
        std::string owner;  // the worker that registered it; empty: engine::register_trigger
        std::string function_ns = "default";  // 0.23: the bound function's namespace
        std::string type_key;                 // 0.23: the trigger type's registry key
        bool parked = false;  // 0.22+: waits for its type (unknown, gone, or it refused)
    };

    /// One invocation on its way to a function.
    struct Call {
        std::string invocation_id;
        std::string function_id;
        std::string ns = "default";     // 0.23: where function_id is looked up
        std::optional<Value> metadata;  // 0.22+: forwarded to the callee
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
        WorkerRef caller_ref;  // set by forward_fast(); empty from the full path
    };

    EngineOptions options;
    asio::io_context io{1};  // run by `thread` alone (see OwnedIo in client.cpp)
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::unique_ptr<transport::Server> server;
    asio::steady_timer functions_available_timer{io};
    std::uint16_t port = 0;
    std::ofstream log_file;
    bool log_unflushed = false;  // lines written during the current event
    proto::Encoder encoder;

    /// Hashes std::string and std::string_view alike (lookups by view allocate nothing). The
    /// keys are invocation and worker ids (UUIDs, 36 bytes): eight bytes a step, every byte
    /// counted, about a quarter of std::hash's instructions.
    struct StringHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            constexpr std::uint64_t k = 0x9e3779b97f4a7c15ull;
            std::uint64_t h = s.size() * k;
            std::size_t i = 0;
            for (; i + 8 <= s.size(); i += 8) {
                std::uint64_t w;
                std::memcpy(&w, s.data() + i, sizeof w);
                h = (h ^ w) * k;
                h ^= h >> 29;
            }
            if (i < s.size()) {
                std::uint64_t w = 0;
                std::memcpy(&w, s.data() + i, s.size() - i);
                h = (h ^ w) * k;
            }
            h ^= h >> 32;
            return static_cast<std::size_t>(h * 0xbf58476d1ce4e5b9ull);
        }
    };

    std::unordered_map<std::string, std::shared_ptr<Worker>, StringHash, std::equal_to<>> workers;
    // Telemetry-only connections (`/otel`), by connection id; not workers.
    std::unordered_map<std::string, std::shared_ptr<transport::Socket>> otel_sockets;
    std::vector<std::string> worker_order;
    std::map<std::string, Function> functions;
    std::map<std::string, TriggerType> trigger_types;
    std::map<std::string, Trigger> triggers;
    std::map<std::string, RegisterServiceMessage> services;
    std::unordered_map<std::string, Pending, StringHash, std::equal_to<>> pending;
    const std::string* builtin_caller = nullptr;  // the caller of the built-in running now
    // Table nodes of calls forward_fast() finished (at most 64): the next calls it takes reuse
    // them, key and strings with their storage, instead of four allocations each.
    std::vector<decltype(pending)::node_type> spare_pending;
    // ---- channels (issue 5): data channels are bridged by ChannelHub (spec 6, 9.8) ----
    detail::testing::ChannelHub channel_hub{io};
    std::vector<std::string> functions_snapshot;  // the functions-available watcher's last view
    bool shut_down = false;

    // Observations made during the current event, published together at its end so that a
    // waiter never sees a frame before the state change it caused.
    std::vector<RecordedFrame> batch;
    std::vector<std::pair<std::string, Value>> telemetry_batch;  // prefix, parsed body
    struct Outgoing {
        // The worker (not a copy of its id and socket): kept alive until its frame is written.
        std::shared_ptr<Worker> worker;
        std::string text;
    };
    std::vector<Outgoing> outbox;  // frames of the current event, written when it ends
    std::vector<Outgoing> spare_outbox;  // the last flush's (empty) buffer, reused
    // Frame texts the transport has copied, kept for the next frames forward_fast() writes.
    std::vector<std::string> spare_texts;
    /// An empty string, with the capacity of a recently sent frame when there is one.
    std::string take_text();
    bool workers_dirty = false;
    bool functions_dirty = false;
    int event_depth = 0;

    // ---- observed state: shared with the test thread under `mutex` ---------------------------

    mutable std::mutex mutex;
    mutable std::condition_variable changed;
    // Published events. Atomic, with `waiting`, so that an event with nothing to copy out takes
    // no lock when no test thread waits (every routed frame of a benchmark): the io thread
    // bumps `events` and then reads `waiting`; wait_for() raises `waiting` under the lock and
    // then reads `events`, so one of them sees the other (sequentially consistent order).
    std::atomic<std::uint64_t> events{0};
    mutable std::atomic<int> waiting{0};  // wait_for() calls blocked on `changed`
    std::vector<RecordedFrame> recorded;
    std::vector<std::pair<std::string, Value>> observed_telemetry;
    std::vector<std::string> observed_workers;
    std::vector<std::string> observed_functions;
    std::atomic<std::uint64_t> forwarded_as_text{0};  // frames that took forward_fast()
    std::map<std::string, std::uint16_t> close_codes;  // per worker, once its socket closed

    std::thread thread;

    // ---- generations ---------------------------------------------------------------------------

    bool since_0_22() const { return options.generation >= Generation::V0_22; }
    bool since_0_23() const { return options.generation >= Generation::V0_23; }
    /// The registry key of `id` in namespace `ns`: the id itself in `default`.
    static std::string qualify(const std::string& ns, const std::string& id) {
        return ns == "default" ? id : ns + "/" + id;
    }

    /// Listens; with `own_thread`, starts `thread` running `io` (otherwise the caller runs it).
    explicit Impl(EngineOptions opts, bool own_thread = true);
    ~Impl();
    transport::ServerTls server_tls() const;
    std::string url() const;  // what Engine::url() returns
    void run();
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
    void publish();
    void record(const std::string& worker_id, bool inbound, bool binary, std::string_view text);
    /// A telemetry export (spec 7.1): parsed and kept for Engine::telemetry(), published with
    /// the event. Nothing is ever replied. Returns false for a frame with no known prefix.
    bool ingest_telemetry(bool otel, const std::string& connection_id, std::string_view frame);
    void write_log_line(const std::string& worker_id, bool inbound, bool binary,
                        std::string_view text);
    std::vector<std::string> function_id_list() const;

    // ---- connections ---------------------------------------------------------------------------

    transport::Admission admit(const std::string& resource);
    transport::Callbacks accept(const std::shared_ptr<transport::Socket>& socket,
                                const std::string& resource);
    // The HEAD engine's telemetry-only route (spec 10): no workerregistered, no registry entry,
    // binary telemetry frames only (text frames are ignored, as there).
    transport::Callbacks accept_otel(const std::shared_ptr<transport::Socket>& socket);
    transport::Callbacks accept_worker(const std::shared_ptr<transport::Socket>& socket);
    Worker* find_worker(const std::string& id);
    /// find_worker(id), through `ref` when it still holds that worker.
    Worker* find_worker(const std::string& id, WorkerRef& ref);
    /// A WorkerRef to `worker`; empty for none or one that is leaving (destroyed at the end
    /// of its disconnect(), after the count has moved).
    WorkerRef remember(Worker* worker) const {
        return worker && !worker->gone ? WorkerRef{worker, disconnects} : WorkerRef{};
    }
    std::uint64_t disconnects = 0;  // disconnect() calls so far: invalidates every WorkerRef
    void send(Worker& worker, const proto::Message& message);
    // Queued, and written when the event ends, after its state change is published: a test
    // that has seen a frame arrive can rely on the engine's observable state (worker_ids(),
    // function_ids(), frames()) including everything the event did.
    void send_text(Worker& worker, std::string_view text);
    void send_text(Worker& worker, std::string&& text);
    void flush_outbox();

    // ---- inbound frames --------------------------------------------------------------------

    void on_frame(const std::shared_ptr<Worker>& worker, std::string&& payload, bool binary);
    /// The hot path (engine_forward.cpp): an invokefunction from one worker to another's
    /// function, or its invocationresult, forwarded as spliced text when it can be exactly what
    /// the full path would send. Returns false, having changed nothing, for any other frame.
    bool forward_fast(Worker& worker, std::string_view frame);
    struct FastPath;
    struct FastPathDeleter {
        void operator()(FastPath* p) const;
    };
    std::unique_ptr<FastPath, FastPathDeleter> fast;  // created on first use
    void process_frame(Worker& worker, const std::string& payload, bool binary);
    /// Applies one decoded frame (0.23: a registration waits while the namespace is unknown).
    void apply_frame(Worker& worker, proto::Message& message);
    /// 0.22+: `reattach{previous_worker_id, reattach_token}`; evicts the previous connection
    /// when the token is that connection's.
    void reattach(Worker& worker, const Value& frame);
    /// 0.23: the namespace is known (register call, or grace over): applies what waited.
    void drain_held_registrations(Worker& worker);
    /// 0.23: `registrationrejected` (built here, not by the shared encoder, so that the frame
    /// has exactly the engine's fields).
    void send_rejection(Worker& worker, const std::string& code, const std::string& ns,
                        const std::optional<std::string>& worker_name,
                        const std::optional<std::string>& function_id, const std::string& owner);

    // ---- registrations (spec 9.4) ----------------------------------------------------------

    void register_function(Worker& worker, RegisterFunctionMessage message);
    void unregister_function(Worker& worker, const std::string& id);
    void register_trigger_type(Worker& worker, proto::RegisterTriggerType message);
    proto::RegisterTrigger register_trigger_message(const std::string& id, const Trigger& t);
    void register_trigger(Worker& worker, proto::RegisterTrigger message);
    void unregister_trigger(const std::string& id);
    /// 0.22+: a bind that failed at once or that its provider refused, reported back.
    void report_trigger_failure(const std::string& registrant, const std::string& id,
                                const Trigger& trigger, RemoteError error);
    /// 0.22+: the provider's `triggerregistrationresult`.
    void trigger_registration_result(Worker& worker, proto::TriggerRegistrationResult message);
    /// 0.22+: a built-in trigger type's check of a bind's config; the reason when refused.
    std::optional<std::string> builtin_config_problem(const std::string& type,
                                                      const Value& config) const;
    /// The trigger type a bind resolves to (0.23: trigger namespace, then `default`).
    std::map<std::string, TriggerType>::iterator find_trigger_type(const std::string& ns,
                                                                  const std::string& id);

    // ---- invocations (spec 9.5) ------------------------------------------------------------

    void invoke_from_worker(Worker& worker, proto::InvokeFunction message);
    /// `function_not_found` as the generation words it.
    Outcome not_found(const std::string& ns, const std::string& function_id) const;
    /// Runs a call: a built-in inline, a worker's function by forwarding it.
    void dispatch(Call call);
    /// Delivers the outcome of a call that did not reach a worker (or was answered inline).
    void finish(Call& call, Outcome outcome);
    void reply_to(Worker& worker, const std::string& invocation_id, const std::string& function_id,
                  const Outcome& outcome, const std::optional<std::string>& traceparent,
                  const std::optional<std::string>& baggage);
    void invocation_result(Worker& worker, proto::InvocationResult message);
    /// The ids of the calls `worker` takes part in, as caller and as callee, in id order (spec
    /// 9.5's invocation set). The pending table is the only record: a per-worker copy would cost
    /// every forwarded call four allocations.
    std::vector<std::string> invocations_of(const Worker& worker) const;
    /// `active_invocations` of engine::workers::list: invocations_of(), plus the built-in call
    /// being answered when `worker` made it (it is in the set while it runs, spec 9.5).
    std::size_t active_invocations(const Worker& worker) const;
    /// A call that starts in the engine (trigger fires, queue deliveries): fresh id, no
    /// `_caller_worker_id`, result consumed here.
    void call_from_engine(std::string function_id, Value data,
                          std::function<void(const Outcome&)> on_result = {},
                          std::optional<Value> metadata = std::nullopt,
                          const std::string& ns = "default");

    // ---- enqueue (spec 9.7) ----------------------------------------------------------------

    void enqueue(Worker& worker, proto::InvokeFunction message);
    /// 0.22+: enqueue routed to the `engine::queue::enqueue` provider.
    void enqueue_via_provider(Worker& worker, proto::InvokeFunction message);
    /// The queue's checks of a message (unknown queue, FIFO group field); the failure if any.
    std::optional<Outcome> queue_refusal(const std::string& queue, const Value& data) const;
    /// Delivers a queued message later, as the queue worker would: an engine-origin call.
    void deliver_later(std::string function_id, Value data);

    // ---- trigger types of the engine (spec 5.7, 5.8) ----------------------------------------

    void fire(std::string_view trigger_type, const Value& payload);
    void schedule_functions_available();
    static Value function_info(const std::string& id, const Function& f);
    /// 0.22+: `FunctionSummary` `{function_id, worker_name, description?, metadata?}`.
    Value function_summary(const Function& f) const;
    /// The worker name shown for a function or trigger type owner ("" when unknown).
    std::string worker_name_of(const std::string& owner, const std::string& builtin_worker) const;

    // ---- built-in functions (spec 5) --------------------------------------------------------

    void add_builtin(std::string id, std::string description,
                     std::function<Outcome(const Value&)> handler);
    /// The built-ins of every generation (workers::register, channels::create, log::*).
    void register_common_builtins();
    void register_builtins();
    Outcome workers_register(const Value& in);
    Outcome functions_list(const Value& in);
    Outcome workers_list(const Value& in);
    Outcome triggers_list(const Value& in);
    Outcome trigger_types_list(const Value& in);
    Outcome channels_create(const Value& in);
    // 0.22+ (engine_builtins.cpp)
    void register_builtins_0_22();
    Outcome functions_list_0_22(const Value& in);
    Outcome functions_info(const Value& in);
    Outcome workers_list_0_22(const Value& in);
    Outcome workers_info(const Value& in);
    Outcome trigger_types_list_0_22(const Value& in);
    Outcome trigger_types_info(const Value& in);
    Outcome registered_triggers_list(const Value& in);
    Outcome registered_triggers_info(const Value& in);
    Outcome register_trigger_builtin(const Value& in);
    Outcome unregister_trigger_builtin(const Value& in);
    Outcome queue_enqueue_builtin(const Value& in);

    // ---- disconnect (spec 9.3) -------------------------------------------------------------

    void disconnect(Worker& worker);

    // ---- fault injection -------------------------------------------------------------------

    void stall(Worker& worker);
    void resume(Worker& worker);
    void stop_everything();
};

/// iii-test-engine (engine_main.cpp) runs its engine here, on the process's only thread: a
/// process that never starts a second thread skips glibc's cancellation bookkeeping around
/// each system call and libstdc++'s atomic reference counts (about 700 instructions per
/// routed call under callgrind), as the single-threaded relay of the benchmarks does.
struct III_API EngineProcess {
    /// Listens (throws what Engine's constructor throws), calls `on_listening(url)`, then
    /// serves until SIGINT or SIGTERM and stops as ~Engine() does.
    static void serve(EngineOptions options, const std::function<void(const std::string& url)>& on_listening);
};
}  // namespace iii::testing
