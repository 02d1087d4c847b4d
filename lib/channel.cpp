// Data channels, SDK side (spec section 6). See include/iii/channel.hpp.

#include "iii/channel.hpp"

#include "connection.hpp"
#include "iii/client.hpp"
#include "transport/ws_transport.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <list>

namespace iii {

// ---- one channel end -------------------------------------------------------------------------

namespace detail {

namespace {
constexpr auto as_tuple = asio::experimental::as_tuple(asio::use_awaitable);
using Clock = std::chrono::steady_clock;
/// A writer waits on a full socket send queue until the transport's on_drain (or a close)
/// wakes it: no poll. The limit only bounds one wait; the loop then looks again.
constexpr auto drain_wait = std::chrono::seconds(1);
/// Frames a reader holds locally before it stops reading the socket, and where it resumes.
constexpr std::size_t inbox_high = 4;
constexpr std::size_t inbox_low = 1;
constexpr auto close_limit = std::chrono::seconds(30);
}  // namespace

/// State of one end (writer or reader). Everything but the atomics lives on `strand`.
struct ChannelEndState : std::enable_shared_from_this<ChannelEndState> {
    enum class Phase { Idle, Connecting, Open, Closed };

    ChannelEndState(std::shared_ptr<Connection> c, StreamChannelRef r, bool w)
        : connection(std::move(c)), ref(std::move(r)), write(w), strand(asio::make_strand(connection->io())),
          url(channel_url(connection->url(), StreamChannelRef(ref.channel_id, ref.access_key,
                                                              w ? ChannelDirection::Write
                                                                : ChannelDirection::Read))) {}

    ~ChannelEndState() {
        if (!socket) return;
        socket->detach();
        if (phase != Phase::Closed) socket->abort();
        // The socket owns its websocketpp endpoint: let it go on the io thread, outside any
        // transport handler.
        asio::post(connection->io(), [s = std::move(socket)] {});
    }

    std::shared_ptr<Connection> connection;
    StreamChannelRef ref;
    bool write;
    Strand strand;
    std::string url;

    Phase phase = Phase::Idle;
    bool opened = false;           // the upgrade succeeded once
    bool close_sent = false;       // we started the close handshake
    bool local_closed = false;     // close() was called
    bool error_reported = false;   // a failure was thrown to the user already
    std::error_code close_ec;
    std::uint16_t close_code = 0;
    std::string close_reason;
    std::string connect_error;     // transport::connect threw (bad URL)
    std::shared_ptr<transport::Socket> socket;
    std::atomic<transport::Socket*> socket_view{nullptr};  // `socket`, for other threads
    std::list<asio::steady_timer*> waiters;

    // reader
    std::deque<std::pair<std::string, bool>> inbox;
    bool paused = false;

    // writer statistics (read from any thread)
    std::atomic<std::size_t> peak{0};
    // A drain notification is posted to the strand and not yet run (io thread sets it, the
    // strand clears it): one post per burst of transport signals.
    std::atomic<bool> drain_posted{false};

    const char* end_name() const { return write ? "writer" : "reader"; }

    void notify() {
        for (auto* t : waiters) t->cancel();
    }

    asio::awaitable<void> wait_for(Clock::duration d) {
        asio::steady_timer timer(strand, d);
        waiters.push_back(&timer);
        struct Unlist {
            std::list<asio::steady_timer*>& list;
            std::list<asio::steady_timer*>::iterator it;
            ~Unlist() { list.erase(it); }
        } unlist{waiters, std::prev(waiters.end())};
        co_await timer.async_wait(as_tuple);
    }

    Error failure() {
        error_reported = true;
        const std::string what = "channel " + ref.channel_id + ": ";
        if (!connect_error.empty())
            return Error(Errc::WebSocket, what + "invalid channel URL: " + connect_error);
        if (!opened && close_ec && !close_reason.empty())  // TLS: OpenSSL's reason
            return Error(Errc::WebSocket,
                         what + "cannot open the " + end_name() + ": " + close_reason, close_ec);
        if (!opened)
            return Error(Errc::WebSocket,
                         what + "cannot open the " + end_name() +
                             " (unknown channel or wrong access key?): " +
                             (close_ec ? close_ec.message() : "refused"),
                         close_ec);
        if (close_ec)
            return Error(Errc::WebSocket, what + "the " + std::string(end_name()) +
                                              " connection was lost: " + close_ec.message(),
                         close_ec);
        return Error(Errc::WebSocket, what + "the engine closed the " + end_name() + " (" +
                                          std::to_string(close_code) +
                                          (close_reason.empty() ? "" : " " + close_reason) + ")");
    }

    void start() {
        phase = Phase::Connecting;
        std::weak_ptr<ChannelEndState> weak = shared_from_this();
        transport::Callbacks callbacks;
        callbacks.on_open = [weak] {
            if (auto s = weak.lock())
                asio::post(s->strand, [s] {
                    if (s->phase == Phase::Connecting) {
                        s->phase = Phase::Open;
                        s->opened = true;
                    }
                    s->notify();
                });
        };
        callbacks.on_message = [weak](std::string&& payload, bool binary) {
            if (auto s = weak.lock())
                asio::post(s->strand, [s, payload = std::move(payload), binary]() mutable {
                    s->on_frame(std::move(payload), binary);
                });
        };
        if (write)
            callbacks.on_drain = [weak] {
                auto s = weak.lock();
                if (!s || s->drain_posted.exchange(true)) return;
                asio::post(s->strand, [s] {
                    // Cleared before waking: a signal from now on posts again.
                    s->drain_posted = false;
                    s->notify();
                });
            };
        callbacks.on_close = [weak](std::error_code ec, std::uint16_t code, std::string reason) {
            if (auto s = weak.lock())
                asio::post(s->strand, [s, ec, code, reason = std::move(reason)]() mutable {
                    s->on_closed(ec, code, std::move(reason));
                });
        };
        try {
            transport::ConnectOptions options;
            options.tls = connection->options().tls;
            options.open_timeout = connection->options().timings.connect_timeout;
            if (options.open_timeout.count() <= 0) options.open_timeout = std::chrono::seconds(10);
            // The handshake headers authenticate channel sockets too (RBAC ports).
            socket = transport::connect(connection->io(), url, connection->options().headers,
                                        std::move(callbacks), options);
            socket_view = socket.get();
        } catch (const std::exception& e) {
            connect_error = e.what();
            phase = Phase::Closed;
        }
    }

    void on_frame(std::string&& payload, bool binary) {
        if (write || close_sent || local_closed) return;  // the engine sends writers nothing
        inbox.emplace_back(std::move(payload), binary);
        if (!paused && inbox.size() >= inbox_high && socket) {
            socket->pause_reading();
            paused = true;
        }
        notify();
    }

    void on_closed(std::error_code ec, std::uint16_t code, std::string reason) {
        if (phase == Phase::Closed) return;
        phase = Phase::Closed;
        close_ec = ec;
        close_code = code;
        close_reason = std::move(reason);
        notify();
    }

    void drop_socket() {
        if (socket) {
            socket->detach();
            socket->abort();
        }
        phase = Phase::Closed;
        notify();
    }

    /// Connects when idle and waits for the outcome (strand).
    asio::awaitable<void> connect() {
        if (phase == Phase::Idle) start();
        if (phase != Phase::Connecting) co_return;
        auto limit = connection->options().timings.connect_timeout;
        if (limit.count() <= 0) limit = std::chrono::seconds(10);
        const auto deadline = Clock::now() + limit;
        while (phase == Phase::Connecting) {
            const auto now = Clock::now();
            if (now >= deadline) {
                close_ec = std::make_error_code(std::errc::timed_out);
                drop_socket();
                break;
            }
            co_await wait_for(deadline - now);
        }
    }

    /// Waits until the socket is gone, at most `limit` (then drops it).
    asio::awaitable<void> wait_closed(Clock::duration limit) {
        const auto deadline = Clock::now() + limit;
        while (phase != Phase::Closed) {
            const auto now = Clock::now();
            if (now >= deadline) {
                drop_socket();
                break;
            }
            co_await wait_for(deadline - now);
        }
    }

    void pop_front() {
        inbox.pop_front();
        if (paused && inbox.size() <= inbox_low && socket && phase == Phase::Open) {
            socket->resume_reading();
            paused = false;
        }
    }
};

namespace {

using State = std::shared_ptr<ChannelEndState>;

/// Runs `op` on the channel end's strand and completes on the awaiting coroutine's executor.
/// Not co_spawn(strand, op, use_awaitable): with Asio 1.22 that forwards the caller's
/// cancellation by emitting into the strand coroutine from the caller's thread, a data race.
/// Here the caller's cancellation handler only posts the emit onto the strand.
template <class T>
struct strand_signature {
    using type = void(std::exception_ptr, T);
};
template <>
struct strand_signature<void> {
    using type = void(std::exception_ptr);
};

template <class T>
asio::awaitable<T> on_strand(Strand strand, asio::awaitable<T> op) {
    using Signature = typename strand_signature<T>::type;
    auto fallback = co_await asio::this_coro::executor;
    // Named: GCC 12 destroys a lambda temporary inside a co_await expression twice.
    auto initiation = [strand, fallback](auto handler, asio::awaitable<T> work) {
            auto signal = std::make_shared<asio::cancellation_signal>();
            auto slot = asio::get_associated_cancellation_slot(handler);
            if (slot.is_connected())
                slot.assign([strand, signal](asio::cancellation_type type) {
                    asio::post(strand, [signal, type] { signal->emit(type); });
                });
            auto completion = std::make_shared<Completion<decltype(handler), asio::any_io_executor>>(
                std::move(handler), fallback);
            asio::co_spawn(strand, std::move(work),
                           asio::bind_cancellation_slot(signal->slot(), [completion, signal](auto&&... args) {
                               completion->complete(std::forward<decltype(args)>(args)...);
                           }));
        };
    co_return co_await asio::async_initiate<const asio::use_awaitable_t<>, Signature>(
        std::move(initiation), asio::use_awaitable, std::move(op));
}

State require(const State& s) {
    if (!s) throw Error(Errc::Runtime, "empty channel end");
    return s;
}

// ---- writer operations (strand) ----

asio::awaitable<void> writer_send(State s, std::string_view data, bool binary) {
    if (s->local_closed) throw Error(Errc::Runtime, "channel " + s->ref.channel_id + ": the writer is closed");
    co_await s->connect();
    std::size_t offset = 0;
    do {
        const std::size_t len = binary ? std::min(ChannelWriter::frame_size, data.size() - offset)
                                       : data.size();
        // Backpressure: hand the socket at most max_buffered bytes; on_drain wakes us.
        while (s->phase == ChannelEndState::Phase::Open &&
               s->socket->buffered_amount() + len > ChannelWriter::max_buffered &&
               s->socket->buffered_amount() > 0)
            co_await s->wait_for(drain_wait);
        if (s->phase != ChannelEndState::Phase::Open) throw s->failure();
        if (binary && len == 0) break;  // an empty write sends nothing (as the reference)
        if (auto ec = s->socket->send(data.substr(offset, len), binary))
            throw Error(Errc::WebSocket, "channel " + s->ref.channel_id + ": send failed: " + ec.message(), ec);
        offset += len;
        const std::size_t now = s->socket->buffered_amount();
        std::size_t peak = s->peak.load();
        while (now > peak && !s->peak.compare_exchange_weak(peak, now)) {
        }
    } while (binary && offset < data.size());
}

asio::awaitable<void> writer_close(State s) {
    using Phase = ChannelEndState::Phase;
    if (s->local_closed) {
        co_await s->wait_closed(close_limit);
        co_return;
    }
    s->local_closed = true;
    // A writer that never wrote connects now, so that its reader sees the end of the stream.
    co_await s->connect();
    if (s->phase != Phase::Open) {
        if (!s->opened || (!s->error_reported && s->close_ec)) throw s->failure();
        co_return;  // the engine already closed it (and a write reported why)
    }
    // Close never overtakes data: the Close frame is queued only once the socket's send
    // queue is empty (websocketpp keeps the order too, but this does not rely on it).
    while (s->phase == Phase::Open && s->socket->buffered_amount() > 0)
        co_await s->wait_for(drain_wait);
    if (s->phase != Phase::Open) {
        if (!s->error_reported && s->close_ec) throw s->failure();
        co_return;
    }
    s->close_sent = true;
    s->socket->close(1000, "stream_complete");
    // The engine answers once it has read everything before the Close, i.e. when the reader
    // has drained all but the channel's buffer.
    co_await s->wait_closed(close_limit);
}

// ---- reader operations (strand) ----

struct Pulled {
    std::vector<std::string> texts;
    std::optional<std::vector<std::uint8_t>> binary;
};

asio::awaitable<Pulled> reader_pull(State s) {
    using Phase = ChannelEndState::Phase;
    if (s->local_closed) throw Error(Errc::Runtime, "channel " + s->ref.channel_id + ": the reader is closed");
    co_await s->connect();
    if (!s->opened) throw s->failure();
    Pulled out;
    for (;;) {
        if (!s->inbox.empty()) {
            while (!s->inbox.empty()) {
                auto frame = std::move(s->inbox.front());
                s->pop_front();
                if (frame.second) {
                    const auto* p = reinterpret_cast<const std::uint8_t*>(frame.first.data());
                    out.binary.emplace(p, p + frame.first.size());
                    break;
                }
                out.texts.push_back(std::move(frame.first));
            }
            co_return out;
        }
        if (s->phase == Phase::Closed) {
            // A normal Close from the engine is the end of the stream; anything else is not.
            if (s->close_ec || (s->close_code != 1000 && s->close_code != 1005)) throw s->failure();
            co_return out;  // empty: end
        }
        co_await s->wait_for(std::chrono::hours(24));
    }
}

asio::awaitable<void> reader_close(State s) {
    using Phase = ChannelEndState::Phase;
    if (s->local_closed) co_return;
    s->local_closed = true;
    s->inbox.clear();
    if (s->phase == Phase::Idle) {
        s->phase = Phase::Closed;
        co_return;
    }
    if (s->phase == Phase::Connecting) {
        s->drop_socket();
        co_return;
    }
    if (s->phase == Phase::Open) {
        if (s->paused) {  // the engine's Close must be readable
            s->socket->resume_reading();
            s->paused = false;
        }
        s->close_sent = true;
        s->socket->close(1000, "channel_close");
        co_await s->wait_closed(std::chrono::seconds(5));
    }
}

}  // namespace
}  // namespace detail

// ---- ChannelWriter ---------------------------------------------------------------------------

ChannelWriter::ChannelWriter(Client& client, StreamChannelRef ref)
    : ChannelWriter(client.connection(), std::move(ref)) {}

ChannelWriter::ChannelWriter(std::shared_ptr<detail::Connection> connection, StreamChannelRef ref)
    : state_(std::make_shared<detail::ChannelEndState>(std::move(connection), std::move(ref), true)) {}

asio::awaitable<void> ChannelWriter::write(std::span<const std::uint8_t> data) {
    auto s = detail::require(state_);
    std::string_view view(reinterpret_cast<const char*>(data.data()), data.size());
    co_await detail::on_strand(s->strand, detail::writer_send(s, view, true));
}

asio::awaitable<void> ChannelWriter::write(std::string_view data) {
    auto s = detail::require(state_);
    co_await detail::on_strand(s->strand, detail::writer_send(s, data, true));
}

asio::awaitable<void> ChannelWriter::send_message(std::string text) {
    auto s = detail::require(state_);
    std::string_view view(text);
    co_await detail::on_strand(s->strand, detail::writer_send(s, view, false));
}

asio::awaitable<void> ChannelWriter::close() {
    auto s = detail::require(state_);
    co_await detail::on_strand(s->strand, detail::writer_close(s));
}

const StreamChannelRef& ChannelWriter::ref() const { return detail::require(state_)->ref; }

std::size_t ChannelWriter::buffered_amount() const {
    // The socket is set once on the strand and lives as long as the state.
    auto s = state_;
    if (!s) return 0;
    auto* socket = s->socket_view.load();
    return socket ? socket->buffered_amount() : 0;
}

std::size_t ChannelWriter::peak_buffered() const { return state_ ? state_->peak.load() : 0; }

// ---- ChannelReader ---------------------------------------------------------------------------

ChannelReader::ChannelReader(Client& client, StreamChannelRef ref)
    : ChannelReader(client.connection(), std::move(ref)) {}

ChannelReader::ChannelReader(std::shared_ptr<detail::Connection> connection, StreamChannelRef ref)
    : state_(std::make_shared<detail::ChannelEndState>(std::move(connection), std::move(ref), false)) {}

asio::awaitable<std::optional<std::vector<std::uint8_t>>> ChannelReader::next_binary() {
    auto s = detail::require(state_);
    auto callbacks = callbacks_;
    for (;;) {
        detail::Pulled pulled =
            co_await detail::on_strand(s->strand, detail::reader_pull(s));
        for (const auto& text : pulled.texts)
            for (const auto& callback : *callbacks) callback(text);
        if (pulled.binary) co_return std::move(pulled.binary);
        if (pulled.texts.empty()) co_return std::nullopt;  // end of stream
    }
}

void ChannelReader::on_message(std::function<void(const std::string&)> callback) {
    callbacks_->push_back(std::move(callback));
}

asio::awaitable<std::vector<std::uint8_t>> ChannelReader::read_all() {
    std::vector<std::uint8_t> all;
    for (;;) {
        auto chunk = co_await next_binary();
        if (!chunk) break;
        all.insert(all.end(), chunk->begin(), chunk->end());
    }
    co_return all;
}

asio::awaitable<void> ChannelReader::close() {
    auto s = detail::require(state_);
    co_await detail::on_strand(s->strand, detail::reader_close(s));
}

const StreamChannelRef& ChannelReader::ref() const { return detail::require(state_)->ref; }

// ---- create_channel --------------------------------------------------------------------------

asio::awaitable<Channel> create_channel(Client& client, std::optional<std::size_t> buffer_size) {
    Value payload = Value::object();
    payload.set("buffer_size", buffer_size ? Value(static_cast<std::uint64_t>(*buffer_size)) : Value());
    TriggerRequest request("engine::channels::create", std::move(payload));
    Value response = co_await client.trigger(std::move(request));
    const Value* writer = response.find("writer");
    const Value* reader = response.find("reader");
    if (!writer || !reader)
        throw Error(Errc::Serde,
                    "engine::channels::create: response without writer or reader: " + response.dump());
    Channel channel;
    channel.writer_ref = StreamChannelRef::from_value(*writer);
    channel.reader_ref = StreamChannelRef::from_value(*reader);
    channel.writer = ChannelWriter(client, channel.writer_ref);
    channel.reader = ChannelReader(client, channel.reader_ref);
    co_return channel;
}

}  // namespace iii
