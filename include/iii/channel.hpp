#pragma once
// Data channels (spec section 6): one-way, engine-buffered pipes of frames between workers.
//
// @code
//   // The consumer reads the channel whose ref is anywhere in its input.
//   client->register_function(iii::RegisterFunctionMessage::with_id("consumer"),
//       [c = client.get()](iii::Value input) -> asio::awaitable<iii::Value> {
//           std::size_t total = 0;
//           for (auto& [path, ref] : iii::extract_channel_refs(input)) {
//               iii::ChannelReader reader(*c, ref);
//               while (auto chunk = co_await reader.next_binary()) total += chunk->size();
//           }
//           co_return iii::Value(total);
//       });
//
//   // The producer creates a channel, hands the reader's ref to the consumer and writes.
//   iii::Channel channel = co_await iii::create_channel(*client);  // engine::channels::create
//   iii::Value input = iii::Value::object({{"input", channel.reader_ref.to_value()}});
//   iii::TriggerRequest request("consumer", input, iii::Void{});  // named: see README (g++ 12)
//   co_await client->trigger(std::move(request));
//   std::vector<std::uint8_t> bytes(200000, 7);
//   co_await channel.writer.write(bytes);                         // 64 KiB binary frames
//   co_await channel.writer.close();                              // end of stream
// @endcode
//
// Threading: the sockets run on the client's io_context, each channel end on its own strand;
// every awaitable completes on the awaiting coroutine's executor. One operation at a time per
// end (do not run two writes of the same writer concurrently). A channel end must not outlive
// the Client it was made from.
//
// Cancellation: every awaitable here honours its coroutine's cancellation slot, from any
// executor or thread (the cancellation is handed to the end's strand; nothing races). A
// cancelled operation throws std::system_error with asio::error::operation_aborted once the
// strand has stopped it:
// - write()/send_message(): frames already handed to the socket stay sent (the reader may see
//   a prefix of the data, never a partial frame); the rest is not sent. The writer stays usable.
// - next_binary()/read_all(): nothing is lost; frames that arrive stay queued for the next read.
// - close(): the Close frame may already be out; the end counts as closed locally either way.

#include <iii/error.hpp>
#include <iii/export.hpp>
#include <iii/json.hpp>

#include <asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace iii {

class Client;

namespace detail {
class Connection;
struct ChannelEndState;
}  // namespace detail

/// Which end of a channel a ref opens.
enum class ChannelDirection { Read, Write };

/// A channel end as it travels in payloads:
/// `{"channel_id":"…","access_key":"…","direction":"read"|"write"}` (spec 6.5).
struct III_API StreamChannelRef {
    StreamChannelRef() = default;
    /// A ref from its three parts.
    StreamChannelRef(std::string channel_id, std::string access_key, ChannelDirection direction)
        : channel_id(std::move(channel_id)), access_key(std::move(access_key)),
          direction(direction) {}

    /// The channel id the engine assigned.
    std::string channel_id;
    /// The key that opens this end.
    std::string access_key;
    /// Which end it opens.
    ChannelDirection direction = ChannelDirection::Read;

    /// The JSON object above.
    Value to_value() const;
    /// Parses the JSON object above. Throws iii::Error(Errc::Serde) when `value` is not an
    /// object with string `channel_id` and `access_key` and a `direction` of "read" or "write".
    static StreamChannelRef from_value(const Value& value);
    /// True when `value` has the shape of a ref (as from_value accepts).
    static bool is_ref(const Value& value) noexcept;

    /// Equal when all three parts are.
    friend bool operator==(const StreamChannelRef&, const StreamChannelRef&) = default;
};

/// Every ref inside `data`, depth first, with its path: `a.b[2].c` (Rust SDK style; "" for
/// `data` itself). A ref's own members are not searched further.
III_API std::vector<std::pair<std::string, StreamChannelRef>> extract_channel_refs(const Value& data);

/// `<address>/ws/channels/<id>?key=<key>&dir=read|write` (spec 6.2), id and key
/// percent-encoded; `<address>` is `engine_address` without its query and trailing "/".
III_API std::string channel_url(std::string_view engine_address, const StreamChannelRef& ref);

/// The writing end of a channel. Connects lazily (first write, send_message or close).
///
/// Backpressure: write() completes once its data has been handed to the socket and the
/// socket's send queue is at most `max_buffered` bytes, so a slow reader slows the writer and
/// the memory a writer holds stays bounded. Errors: iii::Error(Errc::WebSocket) when the
/// channel cannot be opened (HTTP 404: unknown channel or wrong key) or the engine closes or
/// drops the socket (e.g. the reader left); Errc::NotConnected when the client is gone.
class III_API ChannelWriter {
public:
    /// Bytes per binary frame (as the reference SDKs).
    static constexpr std::size_t frame_size = 64 * 1024;
    /// Send-queue bound of the socket, in bytes.
    static constexpr std::size_t max_buffered = 1u << 20;

    /// An empty writer (every operation throws Errc::Runtime).
    ChannelWriter() = default;
    /// Opens the end `ref` names through `client`'s engine (the ref's direction is not checked:
    /// the engine does not care who holds which ref, spec 6.1).
    ChannelWriter(Client& client, StreamChannelRef ref);
    /// As above, from the client's connection (for SDK extensions).
    ChannelWriter(std::shared_ptr<detail::Connection> connection, StreamChannelRef ref);

    /// Sends `data` as binary frames of at most frame_size bytes.
    asio::awaitable<void> write(std::span<const std::uint8_t> data);
    /// As above, for text or bytes in a string.
    asio::awaitable<void> write(std::string_view data);
    /// Sends one text frame (an out-of-band message, in order with the data).
    asio::awaitable<void> send_message(std::string text);
    /// Ends the stream: waits until everything written has left the socket, sends Close and
    /// waits for the engine's Close. A writer that never wrote connects first, so its reader
    /// sees the end of the stream. Idempotent; throws Errc::WebSocket when the channel cannot
    /// be opened or the connection failed with data still unsent.
    asio::awaitable<void> close();

    /// The ref this writer was made from.
    const StreamChannelRef& ref() const;
    /// Bytes queued on the socket now, and the most ever seen right after a send.
    std::size_t buffered_amount() const;
    /// See buffered_amount().
    std::size_t peak_buffered() const;
    /// False for a default-constructed writer.
    explicit operator bool() const noexcept { return state_ != nullptr; }

private:
    std::shared_ptr<detail::ChannelEndState> state_;
};

/// The reading end of a channel. Connects lazily (first read). Pull-based: frames are read from
/// the socket only while fewer than a few are waiting locally, so an idle reader makes the
/// engine and then the writer wait.
class III_API ChannelReader {
public:
    ChannelReader() = default;
    /// Opens the end `ref` names through `client`'s engine (lazily, on the first read).
    ChannelReader(Client& client, StreamChannelRef ref);
    /// As above, from the client's connection (for SDK extensions).
    ChannelReader(std::shared_ptr<detail::Connection> connection, StreamChannelRef ref);

    /// The next binary frame's bytes; nullopt at the end of the stream (the engine closed the
    /// channel normally). Text frames met on the way go to the on_message callbacks first, on
    /// the awaiting coroutine's executor, in order with the data. Throws Errc::WebSocket when
    /// the channel cannot be opened or the connection is lost before the end.
    asio::awaitable<std::optional<std::vector<std::uint8_t>>> next_binary();
    /// Adds a callback for text frames (see next_binary).
    void on_message(std::function<void(const std::string&)> callback);
    /// Every remaining binary frame, concatenated, up to the end of the stream.
    asio::awaitable<std::vector<std::uint8_t>> read_all();
    /// Stops reading: sends Close and drops what is buffered. Idempotent.
    asio::awaitable<void> close();

    /// The ref this reader was made from.
    const StreamChannelRef& ref() const;
    /// False for a default-constructed reader.
    explicit operator bool() const noexcept { return state_ != nullptr; }

private:
    std::shared_ptr<detail::ChannelEndState> state_;
    std::shared_ptr<std::vector<std::function<void(const std::string&)>>> callbacks_ =
        std::make_shared<std::vector<std::function<void(const std::string&)>>>();
};

/// A new channel: a local writer and reader plus both refs, either of which may be passed to
/// another function.
struct Channel {
    /// Writes into the channel.
    ChannelWriter writer;
    /// Reads from it.
    ChannelReader reader;
    /// The writing end, to hand to another function.
    StreamChannelRef writer_ref;
    /// The reading end, to hand to another function.
    StreamChannelRef reader_ref;
};

/// Creates a channel through `engine::channels::create` with a queue of `buffer_size` frames
/// (engine default 64, clamped to 1..1024). Throws as Client::trigger, and Errc::Serde when the
/// response lacks `writer` or `reader`.
III_API asio::awaitable<Channel> create_channel(Client& client,
                                        std::optional<std::size_t> buffer_size = std::nullopt);

}  // namespace iii
