// lib/transport's WebSocket frames over real sockets against a peer that frames, masks and
// unmasks byte by byte (RFC 6455 §5), so that a masking bug cannot cancel itself out on both
// ends: the transport's server unmasks what the raw client masked, the transport's client masks
// what the raw server unmasks, both byte-exact; an invalid UTF-8 text frame gets close 1007, and
// the transport client reports that close as its own (who closed); valid UTF-8 cut inside a code point across fragments arrives whole.

#include <cstddef>  // first: see lib/transport/ws_transport.hpp

#include "transport/ws_transport.hpp"

#include <websocketpp/base64/base64.hpp>
#include <websocketpp/sha1/sha1.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

namespace transport = iii::detail::transport;
using Clock = std::chrono::steady_clock;
using Bytes = std::string;  // raw octets
constexpr auto deadline_after = std::chrono::seconds(10);

Bytes reference_mask(const Bytes& in, const std::uint8_t key[4]) {
    Bytes out(in.size(), '\0');
    for (std::size_t i = 0; i < in.size(); ++i)
        out[i] = static_cast<char>(static_cast<std::uint8_t>(in[i]) ^ key[i % 4]);
    return out;
}

Bytes encode_frame(std::uint8_t opcode, bool fin, const Bytes& payload, const std::uint8_t* key) {
    Bytes f;
    const char mask_bit = key ? '\x80' : '\0';
    f.push_back(static_cast<char>((fin ? 0x80 : 0x00) | opcode));
    const std::uint64_t n = payload.size();
    if (n < 126) {
        f.push_back(static_cast<char>(mask_bit | static_cast<char>(n)));
    } else if (n <= 0xffff) {
        f.push_back(static_cast<char>(mask_bit | 126));
        f.push_back(static_cast<char>(n >> 8));
        f.push_back(static_cast<char>(n));
    } else {
        f.push_back(static_cast<char>(mask_bit | 127));
        for (int shift = 56; shift >= 0; shift -= 8) f.push_back(static_cast<char>(n >> shift));
    }
    if (key) {
        f.append(reinterpret_cast<const char*>(key), 4);
        f += reference_mask(payload, key);
    } else {
        f += payload;
    }
    return f;
}

struct Frame {
    bool fin = false;
    std::uint8_t opcode = 0;
    bool masked = false;
    Bytes payload;  // unmasked
};

// A blocking TCP peer whose every read has a deadline (poll), so a broken transport fails the
// test instead of hanging it.
class RawPeer {
public:
    explicit RawPeer(int fd) : fd_(fd) {
        const int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    RawPeer(RawPeer&& other) noexcept : fd_(std::exchange(other.fd_, -1)), buffer_(std::move(other.buffer_)) {}
    RawPeer& operator=(RawPeer&&) = delete;
    ~RawPeer() {
        if (fd_ >= 0) close(fd_);
    }

    static RawPeer connect_to(std::uint16_t port) {
        const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
        return RawPeer(fd);
    }

    void send_all(const Bytes& data) {
        std::size_t at = 0;
        while (at < data.size()) {
            const ssize_t n = ::send(fd_, data.data() + at, data.size() - at, MSG_NOSIGNAL);
            if (n <= 0) throw std::runtime_error("raw send failed");
            at += static_cast<std::size_t>(n);
        }
    }

    Bytes read_exact(std::size_t n) {
        while (buffer_.size() < n) fill();
        Bytes out = buffer_.substr(0, n);
        buffer_.erase(0, n);
        return out;
    }

    Bytes read_until(const std::string& marker) {
        for (;;) {
            if (auto at = buffer_.find(marker); at != std::string::npos) {
                Bytes out = buffer_.substr(0, at + marker.size());
                buffer_.erase(0, at + marker.size());
                return out;
            }
            fill();
        }
    }

    Frame read_frame() {
        Frame f;
        const Bytes head = read_exact(2);
        f.fin = (head[0] & 0x80) != 0;
        f.opcode = head[0] & 0x0f;
        f.masked = (head[1] & 0x80) != 0;
        std::uint64_t n = head[1] & 0x7f;
        if (n >= 126) {
            const Bytes ext = read_exact(n == 126 ? 2 : 8);
            n = 0;
            for (char c : ext) n = (n << 8) | static_cast<std::uint8_t>(c);
        }
        std::uint8_t key[4] = {0, 0, 0, 0};
        if (f.masked) std::memcpy(key, read_exact(4).data(), 4);
        const Bytes body = read_exact(static_cast<std::size_t>(n));
        f.payload = f.masked ? reference_mask(body, key) : body;
        return f;
    }

private:
    void fill() {
        pollfd p{fd_, POLLIN, 0};
        const int ready = poll(&p, 1, static_cast<int>(std::chrono::milliseconds(deadline_after).count()));
        if (ready <= 0) throw std::runtime_error("raw peer: nothing to read before the deadline");
        char chunk[65536];
        const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
        if (n <= 0) throw std::runtime_error("raw peer: connection closed");
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }

    int fd_;
    Bytes buffer_;
};

std::string accept_key(const std::string& key) {
    const std::string input = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[20];
    websocketpp::sha1::calc(input.data(), input.size(), digest);
    return websocketpp::base64_encode(digest, 20);
}

// A raw client after its opening handshake with the server on `port`.
RawPeer handshake_client(std::uint16_t port) {
    RawPeer peer = RawPeer::connect_to(port);
    const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
    peer.send_all("GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                  "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                  "\r\nSec-WebSocket-Version: 13\r\n\r\n");
    const std::string response = peer.read_until("\r\n\r\n");
    if (response.rfind("HTTP/1.1 101", 0) != 0 ||
        response.find("Sec-WebSocket-Accept: " + accept_key(key)) == std::string::npos)
        throw std::runtime_error("bad handshake response: " + response);
    return peer;
}

// A transport::Server on its own io thread whose sockets echo every message.
class EchoServer {
public:
    EchoServer() : work_(io_.get_executor()) {
        transport::Server::Handlers handlers;
        handlers.on_accept = [this](const std::shared_ptr<transport::Socket>& socket, const std::string&) {
            sockets_.push_back(socket);
            transport::Socket* raw = socket.get();  // kept alive by sockets_
            transport::Callbacks cb;
            cb.on_message = [raw](std::string&& data, bool binary) { raw->send(data, binary); };
            return cb;
        };
        server_.emplace(io_, std::move(handlers));
        port_ = server_->listen(0);
        thread_ = std::thread([this] { io_.run(); });
    }
    ~EchoServer() {
        asio::post(io_, [this] {
            server_->stop_listening();
            for (auto& s : sockets_) s->abort();
            sockets_.clear();
            work_.reset();
        });
        thread_.join();
    }
    std::uint16_t port() const { return port_; }

private:
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::optional<transport::Server> server_;
    std::vector<std::shared_ptr<transport::Socket>> sockets_;  // io thread only
    std::uint16_t port_ = 0;
    std::thread thread_;
};

std::vector<std::size_t> sizes() {
    std::vector<std::size_t> n;
    for (std::size_t i = 0; i <= 40; ++i) n.push_back(i);
    for (std::size_t i : {63u, 64u, 65u, 125u, 126u, 127u, 1000u, 65535u, 65536u, 100003u}) n.push_back(i);
    return n;
}

Bytes random_payload(std::mt19937& rng, std::size_t n, bool text) {
    Bytes b(n, '\0');
    for (auto& c : b) c = text ? static_cast<char>('a' + rng() % 26) : static_cast<char>(rng());
    return b;
}

// A transport client (on its own io thread) connected to a raw server peer that did the
// opening handshake by hand: what the client sends is read byte by byte, and what the peer
// sends reaches the client's callbacks, which the test waits on.
class ClientAtRawServer {
public:
    struct Closed {
        std::error_code ec;
        std::uint16_t code = 0;
        std::string reason;
    };

    ClientAtRawServer() : listener_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)), work_(io_.get_executor()) {
        REQUIRE(listener_ >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        REQUIRE(bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(listen(listener_, 1) == 0);
        REQUIRE(getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        const std::uint16_t port = ntohs(addr.sin_port);

        transport::Callbacks cb;
        cb.on_open = [this] { update([this] { open_ = true; }); };
        cb.on_message = [this](std::string&& data, bool binary) {
            update([&] { received_.emplace_back(std::move(data), binary); });
        };
        cb.on_close = [this](std::error_code ec, std::uint16_t code, std::string reason) {
            update([&] { closed_ = Closed{ec, code, std::move(reason)}; });
        };
        transport::ConnectOptions options;
        options.close_timeout = std::chrono::milliseconds(500);  // bounds the unanswered closes
        client_ = transport::connect(io_, "ws://127.0.0.1:" + std::to_string(port) + "/", {}, std::move(cb),
                                     options);
        thread_ = std::thread([this] { io_.run(); });
    }
    ~ClientAtRawServer() {
        client_->detach();
        client_->abort();
        work_.reset();
        io_.stop();
        thread_.join();
        if (listener_ >= 0) close(listener_);
    }

    /// Accepts the client's connection and answers its upgrade; returns once the client is open.
    RawPeer accept() {
        pollfd p{listener_, POLLIN, 0};
        REQUIRE(poll(&p, 1, 10000) == 1);
        RawPeer peer(accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC));
        const std::string request = peer.read_until("\r\n\r\n");
        const std::string marker = "Sec-WebSocket-Key: ";
        const auto at = request.find(marker);
        REQUIRE(at != std::string::npos);
        const std::string key = request.substr(at + marker.size(), request.find("\r\n", at) - at - marker.size());
        peer.send_all("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: " + accept_key(key) + "\r\n\r\n");
        std::unique_lock lock(mutex_);
        REQUIRE(changed_.wait_for(lock, deadline_after, [&] { return open_; }));
        return peer;
    }
    transport::Socket& client() { return *client_; }
    /// The oldest message the client received and the test has not taken yet.
    std::pair<std::string, bool> take_message() {
        std::unique_lock lock(mutex_);
        REQUIRE(changed_.wait_for(lock, deadline_after, [&] { return !received_.empty(); }));
        auto message = std::move(received_.front());
        received_.pop_front();
        return message;
    }
    Closed wait_closed() {
        std::unique_lock lock(mutex_);
        REQUIRE(changed_.wait_for(lock, deadline_after, [&] { return closed_.has_value(); }));
        return *closed_;
    }

private:
    template <class F>
    void update(F&& f) {
        std::lock_guard lock(mutex_);
        f();
        changed_.notify_all();
    }

    int listener_;
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::shared_ptr<transport::Socket> client_;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable changed_;
    bool open_ = false;
    std::deque<std::pair<std::string, bool>> received_;
    std::optional<Closed> closed_;
};

std::uint16_t close_code_of(const Frame& close) {
    REQUIRE(close.opcode == 0x8);
    REQUIRE(close.payload.size() >= 2);
    return static_cast<std::uint16_t>((static_cast<std::uint8_t>(close.payload[0]) << 8) |
                                      static_cast<std::uint8_t>(close.payload[1]));
}

Bytes close_payload(std::uint16_t code, const std::string& reason) {
    return Bytes{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)} + reason;
}

}  // namespace

TEST_CASE("frames a raw client masks come back byte-exact from a transport echo server", "[integration][wspp]") {
    EchoServer server;
    RawPeer peer = handshake_client(server.port());
    std::mt19937 rng(11);
    for (const std::size_t n : sizes()) {
        for (const bool text : {false, true}) {
            const std::uint8_t key[4] = {static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng()),
                                         static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng())};
            const Bytes payload = random_payload(rng, n, text);
            peer.send_all(encode_frame(text ? 0x1 : 0x2, true, payload, key));
            const Frame echo = peer.read_frame();
            CHECK_FALSE(echo.masked);  // servers never mask
            CHECK(echo.fin);
            CHECK(echo.opcode == (text ? 0x1 : 0x2));
            REQUIRE(echo.payload == payload);
        }
    }
}

TEST_CASE("frames the transport client masks unmask byte-exact at a raw server", "[integration][wspp]") {
    ClientAtRawServer side;
    RawPeer peer = side.accept();
    std::mt19937 rng(13);
    for (const std::size_t n : sizes()) {
        for (const bool text : {false, true}) {
            const Bytes payload = random_payload(rng, n, text);
            REQUIRE_FALSE(side.client().send(payload, !text));
            const Frame f = peer.read_frame();
            CHECK(f.masked);  // clients always mask
            CHECK(f.fin);
            CHECK(f.opcode == (text ? 0x1 : 0x2));
            REQUIRE(f.payload == payload);
            // And back, unmasked, to the transport's reader.
            peer.send_all(encode_frame(text ? 0x1 : 0x2, true, payload, nullptr));
            const auto received = side.take_message();
            CHECK(received.first == payload);
            CHECK(received.second == !text);
        }
    }
}

TEST_CASE("the client reports who closed: the peer, itself on request, itself after a protocol error",
          "[integration][wspp]") {
    SECTION("the peer starts the close handshake") {
        ClientAtRawServer side;
        RawPeer peer = side.accept();
        peer.send_all(encode_frame(0x8, true, close_payload(1001, "going away"), nullptr));
        CHECK(close_code_of(peer.read_frame()) == 1001);  // the client's acknowledgement
        const auto closed = side.wait_closed();
        CHECK_FALSE(closed.ec);
        CHECK(closed.code == 1001);
        CHECK(closed.reason == "going away");
    }
    SECTION("Socket::close") {
        ClientAtRawServer side;
        RawPeer peer = side.accept();
        side.client().close(1000, "bye");
        const Frame close = peer.read_frame();
        CHECK(close_code_of(close) == 1000);
        peer.send_all(encode_frame(0x8, true, close.payload, nullptr));
        const auto closed = side.wait_closed();
        CHECK_FALSE(closed.ec);
        CHECK(closed.code == 1000);
    }
    SECTION("invalid UTF-8 from the peer: the client closes with 1007 on its own") {
        ClientAtRawServer side;
        RawPeer peer = side.accept();
        peer.send_all(encode_frame(0x1, true, "{\"a\":\"\xc3\x28\"}", nullptr));
        const Frame close = peer.read_frame();
        CHECK(close_code_of(close) == 1007);
        // websocketpp reads nothing after a protocol error: the close handshake ends by its timeout.
        const auto closed = side.wait_closed();
        CHECK(closed.ec.category() == transport::local_close_category());
        CHECK(closed.ec.value() == 1007);
        CHECK(closed.code == 1007);
        CHECK_FALSE(closed.reason.empty());
    }
}

TEST_CASE("an invalid UTF-8 text frame from a peer gets close 1007", "[integration][wspp]") {
    EchoServer server;
    const std::vector<Bytes> invalid = {"\xff", "{\"a\":\"\xc3\x28\"}", "\xed\xa0\x80",
                                        Bytes(200, 'x') + "\xc0\xaf"};
    for (const auto& text : invalid) {
        RawPeer peer = handshake_client(server.port());
        const std::uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
        peer.send_all(encode_frame(0x1, true, text, key));
        CHECK(close_code_of(peer.read_frame()) == 1007);
    }
}

TEST_CASE("valid UTF-8 cut inside code points across fragments arrives whole", "[integration][wspp]") {
    EchoServer server;
    RawPeer peer = handshake_client(server.port());
    // {"k":"é€😀"}: cut inside é, inside €, inside 😀.
    const Bytes text = "{\"k\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}";
    const std::uint8_t k1[4] = {1, 2, 3, 4}, k2[4] = {5, 6, 7, 8}, k3[4] = {9, 10, 11, 12}, k4[4] = {13, 14, 15, 16};
    peer.send_all(encode_frame(0x1, false, text.substr(0, 7), k1) + encode_frame(0x0, false, text.substr(7, 2), k2) +
                  encode_frame(0x0, false, text.substr(9, 4), k3) + encode_frame(0x0, true, text.substr(13), k4));
    const Frame echo = peer.read_frame();
    CHECK(echo.opcode == 0x1);
    CHECK(echo.fin);
    CHECK(echo.payload == text);
}
