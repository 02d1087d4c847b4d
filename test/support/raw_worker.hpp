#pragma once
// RawWorker: a bare WebSocket client speaking the iii protocol by hand, for tests of the test
// engine (and of anything else that must be checked frame by frame). It runs its own
// io_context on its own thread; every method is thread-safe, and waits are event-driven with a
// deadline (never sleeps). Catch2 assertions stay on the test thread: nothing here asserts.

#include "transport/ws_transport.hpp"

#include <iii/json.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace test_support {

/// One frame a RawWorker received.
struct RawFrame {
    std::string text;
    bool binary = false;
    /// The parsed frame; null when it is not JSON.
    iii::Value json;
    /// The frame's `type`, empty when it has none.
    std::string type;
};

class RawWorker {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::milliseconds default_timeout{5000};

    /// Starts connecting to `url` (see wait_open()).
    explicit RawWorker(const std::string& url, std::map<std::string, std::string> headers = {})
        : work_(io_.get_executor()) {
        namespace transport = iii::detail::transport;
        transport::Callbacks callbacks;
        callbacks.on_open = [this] {
            std::lock_guard lock(mutex_);
            open_ = true;
            changed_.notify_all();
        };
        callbacks.on_message = [this](std::string&& payload, bool binary) {
            RawFrame frame;
            frame.binary = binary;
            frame.text = std::move(payload);
            try {
                frame.json = iii::Value::parse(frame.text);
                if (const auto* t = frame.json.find("type"); t && t->is_string())
                    frame.type = t->as_string();
            } catch (const std::exception&) {
            }
            std::lock_guard lock(mutex_);
            frames_.push_back(std::move(frame));
            changed_.notify_all();
        };
        callbacks.on_close = [this](std::error_code ec, std::uint16_t code, std::string) {
            std::lock_guard lock(mutex_);
            closed_ = true;
            close_error_ = ec;
            close_code_ = code;
            changed_.notify_all();
        };
        socket_ = transport::connect(io_, url, headers, std::move(callbacks));
        thread_ = std::thread([this] { io_.run(); });
    }

    ~RawWorker() {
        socket_->detach();
        socket_->abort();
        work_.reset();
        io_.stop();
        thread_.join();
    }

    RawWorker(const RawWorker&) = delete;
    RawWorker& operator=(const RawWorker&) = delete;

    // ---- waiting ----------------------------------------------------------------------------

    /// Waits until `predicate(frames)` holds (re-checked on every frame, open and close).
    bool wait(const std::function<bool(const std::vector<RawFrame>&)>& predicate,
              std::chrono::milliseconds timeout = default_timeout) const {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return predicate(frames_); });
    }

    bool wait_open(std::chrono::milliseconds timeout = default_timeout) const {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return open_ || closed_; }) && open_;
    }

    bool wait_closed(std::chrono::milliseconds timeout = default_timeout) const {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return closed_; });
    }

    /// The `n`-th (0-based) frame of `type`; throws when it does not arrive in time.
    iii::Value nth(const std::string& type, std::size_t n,
                   std::chrono::milliseconds timeout = default_timeout) const {
        std::optional<iii::Value> found;
        wait(
            [&](const std::vector<RawFrame>& frames) {
                std::size_t seen = 0;
                for (const auto& f : frames) {
                    if (f.type != type) continue;
                    if (seen++ == n) {
                        found = f.json;
                        return true;
                    }
                }
                return false;
            },
            timeout);
        if (!found)
            throw std::runtime_error("RawWorker: no " + type + " #" + std::to_string(n) +
                                     " within the deadline");
        return *found;
    }

    /// The next frame of `type` not yet returned by next() (a cursor per type).
    iii::Value next(const std::string& type, std::chrono::milliseconds timeout = default_timeout) {
        std::size_t n;
        {
            std::lock_guard lock(mutex_);
            n = cursors_[type]++;
        }
        return nth(type, n, timeout);
    }

    /// The worker id from `workerregistered`.
    std::string worker_id(std::chrono::milliseconds timeout = default_timeout) const {
        return nth("workerregistered", 0, timeout).at("worker_id").as_string();
    }

    /// A barrier: sends `ping` and waits for the matching `pong`. The engine handles a
    /// connection's frames in order, so every reply to earlier frames arrived before it.
    void sync(std::chrono::milliseconds timeout = default_timeout) {
        std::size_t n;
        {
            std::lock_guard lock(mutex_);
            n = pings_++;
        }
        send(R"({"type":"ping"})");
        nth("pong", n, timeout);
    }

    // ---- observation ------------------------------------------------------------------------

    std::vector<RawFrame> frames() const {
        std::lock_guard lock(mutex_);
        return frames_;
    }

    /// How many frames have arrived: a mark for frames_from().
    std::size_t frame_count() const {
        std::lock_guard lock(mutex_);
        return frames_.size();
    }

    /// The frames that arrived after the first `from` (a test exchanging many frames looks at
    /// the new ones only, instead of copying every frame each time).
    std::vector<RawFrame> frames_from(std::size_t from) const {
        std::lock_guard lock(mutex_);
        if (from >= frames_.size()) return {};
        return {frames_.begin() + static_cast<std::ptrdiff_t>(from), frames_.end()};
    }

    std::vector<iii::Value> of_type(const std::string& type) const {
        std::vector<iii::Value> out;
        std::lock_guard lock(mutex_);
        for (const auto& f : frames_)
            if (f.type == type) out.push_back(f.json);
        return out;
    }

    std::size_t count(const std::string& type) const { return of_type(type).size(); }

    /// The raw text of the `n`-th frame of `type` (for checks of key order).
    std::string nth_text(const std::string& type, std::size_t n) const {
        std::lock_guard lock(mutex_);
        std::size_t seen = 0;
        for (const auto& f : frames_)
            if (f.type == type && seen++ == n) return f.text;
        throw std::runtime_error("RawWorker: no " + type + " #" + std::to_string(n));
    }

    bool closed() const {
        std::lock_guard lock(mutex_);
        return closed_;
    }
    std::uint16_t close_code() const {
        std::lock_guard lock(mutex_);
        return close_code_;
    }
    std::error_code close_error() const {
        std::lock_guard lock(mutex_);
        return close_error_;
    }

    // ---- actions ----------------------------------------------------------------------------

    /// Sends a text frame, once the connection is open (waits for it).
    void send(const std::string& text) {
        check(ensure_open() ? socket_->send(text, false) : not_open());
    }
    void send(const char* text) { send(std::string(text)); }
    void send_binary(const std::string& bytes) {
        check(ensure_open() ? socket_->send(bytes, true) : not_open());
    }
    void send(const iii::Value& message) { send(message.dump()); }
    void close(std::uint16_t code = 1000) { socket_->close(code, {}); }
    /// Drops the TCP connection without a close handshake.
    void abort() { socket_->abort(); }
    /// Stops reading from the engine (TCP backpressure builds up).
    void pause_reading() { socket_->pause_reading(); }
    void resume_reading() { socket_->resume_reading(); }

private:
    bool ensure_open() const { return wait_open(); }
    static std::error_code not_open() { return std::make_error_code(std::errc::not_connected); }
    static void check(std::error_code ec) {
        if (ec) throw std::system_error(ec, "RawWorker: send failed");
    }

    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::shared_ptr<iii::detail::transport::Socket> socket_;
    std::thread thread_;

    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::vector<RawFrame> frames_;
    std::map<std::string, std::size_t> cursors_;
    std::size_t pings_ = 0;
    bool open_ = false;
    bool closed_ = false;
    std::error_code close_error_;
    std::uint16_t close_code_ = 0;
};

}  // namespace test_support
