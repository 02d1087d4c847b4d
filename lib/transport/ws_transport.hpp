#pragma once
// The one place that knows websocketpp. Everything else in the SDK and the test engine sees
// these plain types and callbacks, so websocketpp's headers (which need the C++20 fix-up, see
// tools/fix_websocketpp.py) never reach a public header.

// A standard header first, always: asio/detail/config.hpp decides between aligned_alloc/free
// and operator new/delete for its handler memory from _GLIBCXX_HAVE_ALIGNED_ALLOC, which only a
// libstdc++ header defines. A translation unit that includes Asio before any standard header
// picks operator new, one that does not picks free, and the linked program then mixes the two
// (AddressSanitizer: alloc-dealloc-mismatch).
#include <cstddef>

#include <iii/options.hpp>

#include <asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

namespace iii::detail::transport {

/// Callbacks for one socket. All of them run on the io_context the socket was created with.
struct Callbacks {
    std::function<void()> on_open;
    /// A complete message; `binary` tells a binary frame from a text frame.
    std::function<void(std::string&& payload, bool binary)> on_message;
    std::function<void()> on_pong;
    /// Send progress: queued messages were taken for a socket write (buffered_amount()
    /// dropped) or a socket write completed. A writer that bounds buffered_amount() waits for
    /// this instead of polling. Must not block (it runs inside websocketpp's write path). Only
    /// the callbacks given when the socket is created (connect(), Server::Handlers::on_accept)
    /// are asked for it.
    std::function<void()> on_drain;
    /// Called exactly once when the socket is gone: after a close handshake (`ec` empty,
    /// `close_code` the peer's code, 1005 when it sent none), a failed connect or an I/O error.
    /// On a failure (`ec` set) `reason` is a readable account when there is more to say than
    /// `ec.message()` (TLS: OpenSSL's reason and the certificate check's result, e.g.
    /// "TLS handshake failed: certificate verify failed: self-signed certificate"); otherwise
    /// empty. A connect that outlives ConnectOptions::open_timeout fails with
    /// std::errc::timed_out. When this side closed on its own because the peer broke the
    /// protocol (invalid UTF-8: 1007, too big: 1009, a bad frame: 1002), `ec` is in
    /// local_close_category(), `close_code` is the code this side sent and `reason` its reason.
    std::function<void(std::error_code ec, std::uint16_t close_code, std::string reason)> on_close;
};

/// One WebSocket, client or server side. Methods may be called from any thread.
class Socket {
public:
    virtual ~Socket() = default;
    virtual std::error_code send(std::string_view data, bool binary) = 0;
    virtual std::error_code ping() = 0;
    /// Starts the close handshake.
    virtual void close(std::uint16_t code, std::string reason) = 0;
    /// Drops the TCP connection without a close handshake.
    virtual void abort() = 0;
    /// Stops (or resumes) reading from the peer: TCP backpressure builds up behind it.
    virtual void pause_reading() = 0;
    virtual void resume_reading() = 0;
    /// Payload bytes given to send() that websocketpp has not yet handed to a socket write
    /// (read under websocketpp's write lock: safe from any thread while the io thread writes).
    virtual std::size_t buffered_amount() const = 0;
    /// "a.b.c.d" of the peer, empty when unknown.
    virtual std::string remote_ip() const = 0;
    /// Drops all callbacks; none runs after this returns on the io_context thread.
    virtual void detach() = 0;
};

/// The on_close error of a client upgrade that the server answered with an HTTP status other
/// than 101 (e.g. 404 from an engine without that route): category "http", value = the status.
const std::error_category& http_status_category() noexcept;
/// The HTTP status behind `ec`, 0 when it is not an http_status_category() error.
inline int http_status_of(const std::error_code& ec) noexcept {
    return ec.category() == http_status_category() ? ec.value() : 0;
}

/// The on_close error when this side closed the WebSocket without being asked to (Socket::close),
/// because the peer broke the protocol: value = the close code this side sent.
const std::error_category& local_close_category() noexcept;

/// How a client socket connects. Without it (the default argument of connect()): no TLS
/// settings beyond the defaults, 10 s for the whole attempt, 5 s for the close handshake.
/// websocketpp's own fixed 5 s limits on DNS, TCP, TLS and the upgrade never apply.
struct ConnectOptions {
    /// TLS settings, used for `wss://` URLs only.
    TlsOptions tls{};
    /// Limit of the whole attempt (DNS, TCP, TLS, upgrade); 0: none.
    std::chrono::milliseconds open_timeout{10000};
    /// How long the close handshake may take before the TCP connection is dropped; 0: no limit.
    std::chrono::milliseconds close_timeout{5000};
};

/// Opens a client WebSocket to `url` (`ws://` or `wss://`) with extra handshake `headers`.
/// Never throws for network or TLS failures: those arrive as on_close with an error code.
/// Throws std::system_error for a URL that does not parse, and std::invalid_argument for TLS
/// settings that cannot be loaded (check_tls() tells the same up front).
std::shared_ptr<Socket> connect(asio::io_context& io, const std::string& url,
                                const std::map<std::string, std::string>& headers,
                                Callbacks callbacks, const ConnectOptions& options = {});

/// Loads `tls` the way connect() would (CA files, client certificate and key); throws
/// std::invalid_argument whose what() names the file and OpenSSL's reason when that fails.
void check_tls(const TlsOptions& tls);

/// What a server does with an upgrade request for `resource` (path plus query).
struct Admission {
    bool accept = true;
    int http_status = 404;  // sent when !accept
    std::string body;
};

/// TLS of a Server (`wss://`). Empty cert_file: plain `ws://`.
struct ServerTls {
    std::string cert_file{};  ///< PEM certificate chain, leaf first
    std::string key_file{};   ///< PEM private key of cert_file
    /// Non-empty: clients must present a certificate signed by a CA of this PEM file.
    std::string client_ca_file{};
    /// Offer TLS 1.2 only (tests of a client's minimum version).
    bool tls12_only = false;
};

/// A WebSocket server bound to 127.0.0.1.
class Server {
public:
    struct Handlers {
        /// Decides on an upgrade before it completes (e.g. 404 for an unknown channel).
        std::function<Admission(const std::string& resource)> admit;
        /// A new socket is open; returns the callbacks for it (on_open is not used).
        std::function<Callbacks(const std::shared_ptr<Socket>& socket, const std::string& resource)>
            on_accept;
    };
    /// Throws std::invalid_argument when `tls` names files that cannot be loaded.
    Server(asio::io_context& io, Handlers handlers, const ServerTls& tls = {});
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    /// Binds 127.0.0.1:`port` (0 picks a free port) and starts accepting; returns the port.
    std::uint16_t listen(std::uint16_t port);
    /// Stops accepting new connections; open sockets stay until closed.
    void stop_listening();

    struct Impl;  // one per websocketpp configuration (plain, TLS)

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace iii::detail::transport
