#pragma once
// ChannelHub: the test engine's data channels (spec sections 5.6, 6 and 9.8).
//
// Owned by iii::testing::Engine and used only on the engine's io thread: `create` backs the
// built-in `engine::channels::create`, `admission` decides on `/ws/channels/{id}?key=&dir=`
// upgrades (HTTP 404 for an unknown id or a wrong key) and `accept` bridges an admitted socket.
//
// Bridging: the writer end pushes its frames (text and binary, in order) into a FIFO bounded to
// `capacity` frames (clamp(buffer_size ?? 64, 1, 1024)); when it is full the hub stops reading
// the writer socket, so TCP backpressure reaches the writing SDK. Frames are relayed one to one
// to the reader end with their type, at most `relay_bound` bytes queued on the reader socket at
// a time (the socket's drain signal resumes the relay, no polling). When the writer closes (Close, error or EOF) the FIFO is marked closed after a 10 ms
// grace (as the real engine), and once it is empty the reader gets a Close (1000). Each end can
// be claimed once: a second socket for a taken end is closed at once (1008). A reader that
// leaves before the end of the stream closes the writer (1011), so its writes fail instead of
// backing up forever.

#include "transport/ws_transport.hpp"

#include <asio/io_context.hpp>

#include <chrono>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace iii::detail::testing {

class ChannelHub {
public:
    /// Default and limits of the FIFO, in frames (spec 6.1).
    static constexpr std::size_t default_capacity = 64;
    static constexpr std::size_t min_capacity = 1;
    static constexpr std::size_t max_capacity = 1024;
    /// Bytes the hub lets queue on a reader socket before it waits for the socket to drain.
    static constexpr std::size_t relay_bound = 1u << 20;
    /// How long a closed writer's frames are still accepted (the real engine's 10 ms).
    static constexpr std::chrono::milliseconds close_grace{10};

    struct Created {
        std::string channel_id;
        std::string access_key;
        std::size_t capacity = default_capacity;
    };

    explicit ChannelHub(asio::io_context& io);
    ~ChannelHub();
    ChannelHub(const ChannelHub&) = delete;
    ChannelHub& operator=(const ChannelHub&) = delete;

    /// Allocates a channel (UUID v4 id and key). `buffer_size` in frames; clamped.
    Created create(std::optional<std::uint64_t> buffer_size);
    /// True for a resource under `/ws/channels/`.
    static bool is_channel_resource(const std::string& resource);
    /// Accepts a `/ws/channels/` upgrade only for a known id with its key and a valid `dir`.
    transport::Admission admission(const std::string& resource) const;
    /// Bridges an admitted socket (see the class comment). Returns its callbacks.
    transport::Callbacks accept(const std::shared_ptr<transport::Socket>& socket,
                                const std::string& resource);
    /// Drops every channel socket without a close handshake (engine shutdown).
    void abort_all();
    /// Channels still known (created and not yet finished on both ends).
    std::size_t size() const noexcept { return channels_.size(); }

private:
    struct Channel;
    struct End {
        std::string channel_id;
        bool write = false;
    };
    std::optional<End> parse(const std::string& resource) const;
    void on_writer_frame(const std::shared_ptr<Channel>& channel, std::string&& payload, bool binary);
    void on_writer_closed(const std::shared_ptr<Channel>& channel);
    void on_reader_closed(const std::shared_ptr<Channel>& channel);
    void pump(const std::shared_ptr<Channel>& channel);
    void maybe_forget(const std::shared_ptr<Channel>& channel);

    asio::io_context& io_;
    std::map<std::string, std::shared_ptr<Channel>> channels_;
};

}  // namespace iii::detail::testing
