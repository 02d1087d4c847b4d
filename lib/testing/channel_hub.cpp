#include "testing/channel_hub.hpp"

#include "protocol.hpp"

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <deque>
#include <string_view>
#include <utility>

namespace iii::detail::testing {

namespace {

constexpr std::string_view channel_prefix = "/ws/channels/";

int hex_digit(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            const int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out += static_cast<char>(hi * 16 + lo);
                i += 2;
                continue;
            }
        }
        out += s[i] == '+' ? ' ' : s[i];
    }
    return out;
}

std::map<std::string, std::string> parse_query(std::string_view query) {
    std::map<std::string, std::string> params;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        const auto eq = pair.find('=');
        params.emplace(percent_decode(pair.substr(0, eq)),
                       eq == std::string_view::npos ? std::string()
                                                    : percent_decode(pair.substr(eq + 1)));
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    }
    return params;
}

}  // namespace

struct ChannelHub::Channel {
    Channel(asio::io_context& io, std::string id_, std::string key_, std::size_t capacity_)
        : id(std::move(id_)), key(std::move(key_)), capacity(capacity_), grace_timer(io) {}

    struct Frame {
        std::string data;
        bool binary = false;
    };

    std::string id;
    std::string key;
    std::size_t capacity;
    std::deque<Frame> fifo;

    std::shared_ptr<transport::Socket> writer;  // while connected
    std::shared_ptr<transport::Socket> reader;  // while connected
    bool writer_claimed = false;
    bool reader_claimed = false;
    bool writer_paused = false;
    bool writer_closing = false;  // Close/EOF seen, grace running
    bool writer_done = false;     // FIFO closed: no more frames
    bool reader_gone = false;     // reader left (before or after the end)
    bool end_sent = false;        // Close sent to the reader
    bool drain_posted = false;    // a pump after the reader socket's queue shrank is queued

    asio::steady_timer grace_timer;
};

ChannelHub::ChannelHub(asio::io_context& io) : io_(io) {}

ChannelHub::~ChannelHub() {
    for (auto& [id, channel] : channels_) {
        channel->grace_timer.cancel();
        if (channel->writer) channel->writer->detach();
        if (channel->reader) channel->reader->detach();
    }
}

ChannelHub::Created ChannelHub::create(std::optional<std::uint64_t> buffer_size) {
    Created created;
    created.channel_id = protocol::new_uuid();
    created.access_key = protocol::new_uuid();
    created.capacity = static_cast<std::size_t>(std::clamp<std::uint64_t>(
        buffer_size.value_or(default_capacity), min_capacity, max_capacity));
    channels_[created.channel_id] = std::make_shared<Channel>(io_, created.channel_id,
                                                              created.access_key, created.capacity);
    return created;
}

bool ChannelHub::is_channel_resource(const std::string& resource) {
    return std::string_view(resource).starts_with(channel_prefix);
}

std::optional<ChannelHub::End> ChannelHub::parse(const std::string& resource) const {
    const auto query_at = resource.find('?');
    if (!is_channel_resource(resource) || query_at == std::string::npos) return std::nullopt;
    End end;
    end.channel_id = resource.substr(channel_prefix.size(), query_at - channel_prefix.size());
    auto it = channels_.find(end.channel_id);
    if (it == channels_.end()) return std::nullopt;
    const auto params = parse_query(std::string_view(resource).substr(query_at + 1));
    auto key = params.find("key");
    auto dir = params.find("dir");
    if (key == params.end() || key->second != it->second->key || dir == params.end() ||
        (dir->second != "read" && dir->second != "write"))
        return std::nullopt;
    end.write = dir->second == "write";
    return end;
}

transport::Admission ChannelHub::admission(const std::string& resource) const {
    if (parse(resource)) return {};
    return {false, 404, "Channel not found"};  // before any WebSocket exists (spec 6.2)
}

transport::Callbacks ChannelHub::accept(const std::shared_ptr<transport::Socket>& socket,
                                        const std::string& resource) {
    auto end = parse(resource);
    if (!end) {  // the channel vanished between admission and open
        socket->close(1008, "channel not found");
        return {};
    }
    auto channel = channels_.at(end->channel_id);
    std::weak_ptr<Channel> weak = channel;
    transport::Callbacks callbacks;
    if (end->write) {
        if (channel->writer_claimed) {
            socket->close(1008, "channel writer already claimed");
            return {};
        }
        channel->writer_claimed = true;
        if (channel->reader_gone) {
            // Nobody will ever read: refuse the data at once rather than let it back up.
            channel->writer_done = true;
            socket->close(1011, "channel reader closed");
            maybe_forget(channel);
            return {};
        }
        channel->writer = socket;
        callbacks.on_message = [this, weak](std::string&& payload, bool binary) {
            if (auto c = weak.lock()) on_writer_frame(c, std::move(payload), binary);
        };
        callbacks.on_close = [this, weak](std::error_code, std::uint16_t, std::string) {
            if (auto c = weak.lock()) on_writer_closed(c);
        };
        if (channel->fifo.size() >= channel->capacity) {  // cannot happen, but stay exact
            socket->pause_reading();
            channel->writer_paused = true;
        }
    } else {
        if (channel->reader_claimed) {
            socket->close(1008, "channel reader already claimed");
            return {};
        }
        channel->reader_claimed = true;
        channel->reader = socket;
        // A reader sends nothing but its Close; frames from it are ignored (spec 6.3).
        // Frames waiting on a full reader queue go on when the queue drops below the bound
        // (the transport's write progress; it runs inside websocketpp's write path, so the
        // pump is posted rather than run there).
        callbacks.on_drain = [this, weak] {
            auto c = weak.lock();
            if (!c || c->drain_posted || c->fifo.empty() || !c->reader ||
                c->reader->buffered_amount() >= relay_bound)
                return;
            c->drain_posted = true;
            asio::post(io_, [this, weak] {
                if (auto ch = weak.lock()) {
                    ch->drain_posted = false;
                    pump(ch);
                }
            });
        };
        callbacks.on_close = [this, weak](std::error_code, std::uint16_t, std::string) {
            if (auto c = weak.lock()) on_reader_closed(c);
        };
        // Frames written before the reader came are waiting; start relaying once the socket
        // is fully set up (the transport installs the callbacks after this returns).
        asio::post(io_, [this, weak] {
            if (auto c = weak.lock()) pump(c);
        });
    }
    return callbacks;
}

void ChannelHub::on_writer_frame(const std::shared_ptr<Channel>& channel, std::string&& payload,
                                 bool binary) {
    if (channel->writer_done || channel->reader_gone) return;
    channel->fifo.push_back({std::move(payload), binary});
    if (channel->fifo.size() >= channel->capacity && !channel->writer_paused && channel->writer) {
        // Full: stop reading the writer; frames already read from the kernel may still arrive
        // and are kept (the bound is exact up to the transport's read buffer).
        channel->writer->pause_reading();
        channel->writer_paused = true;
    }
    pump(channel);
}

void ChannelHub::on_writer_closed(const std::shared_ptr<Channel>& channel) {
    if (channel->writer_closing || channel->writer_done) return;
    channel->writer_closing = true;
    channel->writer.reset();
    channel->writer_paused = false;
    std::weak_ptr<Channel> weak = channel;
    channel->grace_timer.expires_after(close_grace);
    channel->grace_timer.async_wait([this, weak](std::error_code ec) {
        if (ec) return;
        if (auto c = weak.lock()) {
            c->writer_done = true;
            pump(c);
            maybe_forget(c);
        }
    });
}

void ChannelHub::on_reader_closed(const std::shared_ptr<Channel>& channel) {
    channel->reader.reset();
    channel->reader_gone = true;
    channel->fifo.clear();
    if (!channel->writer_done && channel->writer) {
        // The relay fails (spec 6.4): the writer learns it now instead of backing up.
        channel->writer->resume_reading();
        channel->writer->close(1011, "channel reader closed");
        channel->writer_paused = false;
    }
    maybe_forget(channel);
}

void ChannelHub::pump(const std::shared_ptr<Channel>& channel) {
    auto& c = *channel;
    if (!c.reader || c.reader_gone) return;
    while (!c.fifo.empty() && c.reader->buffered_amount() < relay_bound) {
        auto& frame = c.fifo.front();
        if (auto ec = c.reader->send(frame.data, frame.binary)) {
            // The reader socket failed; its on_close follows and cleans up.
            return;
        }
        c.fifo.pop_front();
    }
    if (c.writer_paused && c.writer && c.fifo.size() < c.capacity) {
        c.writer->resume_reading();
        c.writer_paused = false;
    }
    if (!c.fifo.empty()) return;  // the reader socket's on_drain pumps again
    if (c.writer_done && !c.end_sent) {
        c.end_sent = true;
        c.reader->close(1000, "stream_complete");
    }
}

void ChannelHub::maybe_forget(const std::shared_ptr<Channel>& channel) {
    // Finished on both sides: later connects get 404 like an unknown channel.
    if (channel->writer_done && (channel->reader_gone || channel->end_sent) && !channel->reader &&
        !channel->writer)
        channels_.erase(channel->id);
}

void ChannelHub::abort_all() {
    for (auto& [id, channel] : channels_) {
        channel->grace_timer.cancel();
        if (channel->writer) channel->writer->abort();
        if (channel->reader) channel->reader->abort();
    }
}

}  // namespace iii::detail::testing
