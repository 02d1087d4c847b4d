#pragma once
// iii::testing::Engine: an in-process implementation of the engine side of the iii protocol
// (spec section 9) for tests and benchmarks. Never a production engine: it binds 127.0.0.1 only.

#include <iii/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace iii::testing {

/// A named queue for enqueue invocations (spec 9.7).
struct QueueConfig {
    enum class Kind { Standard, Fifo };
    Kind kind = Kind::Standard;
    /// Fifo only: the payload field that must be present and non-null.
    std::string message_group_field{};
};

/// Options of Engine.
struct EngineOptions {
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
    /// Keep every frame for frames() / received() / sent(). Benchmarks turn it off so that
    /// memory stays flat; those three then return nothing.
    bool record_frames = true;
};

/// One frame seen by the engine on a worker connection.
struct RecordedFrame {
    std::string worker_id{};
    bool inbound = true;  ///< true: worker to engine; false: engine to worker
    bool binary = false;
    std::string text;  ///< the frame's bytes
};

/// The test engine. It runs on its own thread; every method is thread-safe.
class Engine {
public:
    /// Starts listening on 127.0.0.1 at once. Throws std::system_error if the port is taken.
    explicit Engine(EngineOptions options = {});
    /// Closes every connection abruptly and stops.
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    std::uint16_t port() const;
    /// "ws://127.0.0.1:<port>"
    std::string url() const;

    // ---- observation ----------------------------------------------------------------------
    /// Ids of the open worker connections, in connection order.
    std::vector<std::string> worker_ids() const;
    /// Frames of one worker (both directions), oldest first; all workers when `worker_id` is
    /// empty. Includes frames of connections that are already closed.
    std::vector<RecordedFrame> frames(const std::string& worker_id = {}) const;
    /// Inbound frames whose JSON `type` equals `type` (all workers when `worker_id` is empty).
    std::vector<Value> received(const std::string& type, const std::string& worker_id = {}) const;
    /// Outbound frames (engine to worker) whose JSON `type` equals `type`, likewise.
    std::vector<Value> sent(const std::string& type, const std::string& worker_id = {}) const;
    /// Ids in the function registry.
    std::vector<std::string> function_ids() const;
    /// Blocks until `predicate` is true or `timeout` passes; returns the predicate's last value.
    /// The predicate is re-evaluated after every engine event (frame, connect, disconnect), so
    /// no polling interval is involved. It must not call back into the engine's wait_for.
    bool wait_for(const std::function<bool()>& predicate,
                  std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;

    // ---- fault injection ------------------------------------------------------------------
    /// Sends `text` as a text frame to the worker.
    void send_to(const std::string& worker_id, const std::string& text);
    /// Starts a close handshake with `code`.
    void close(const std::string& worker_id, std::uint16_t code = 1000);
    /// Drops the TCP connection without a close handshake (engine crash, network loss).
    void drop(const std::string& worker_id);
    /// Stops reading from the worker (half-open engine): no frames, no pongs.
    void stall(const std::string& worker_id);
    /// Undoes stall().
    void resume(const std::string& worker_id);
    /// Stops listening and drops every connection: the engine is gone. Running the same port
    /// again means constructing a new Engine with EngineOptions::port = port().
    void shutdown();

private:
    struct Impl;
    std::shared_ptr<Impl> impl_{};
};

}  // namespace iii::testing
