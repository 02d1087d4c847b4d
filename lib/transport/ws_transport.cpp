#include "transport/ws_transport.hpp"

#include "log.hpp"
#include "pooled_post.hpp"
#include "small_pool.hpp"
#include "wspp/mask_keys.hpp"

#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>
#include <websocketpp/logger/stub.hpp>
#include <websocketpp/message_buffer/alloc.hpp>
#include <websocketpp/message_buffer/message.hpp>
#include <websocketpp/server.hpp>

#include <asio/bind_allocator.hpp>
#include <asio/bind_executor.hpp>
#include <asio/post.hpp>
#include <asio/ssl.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <new>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <type_traits>

namespace iii::detail::transport {
namespace {

// ---- a TCP socket whose reads can be held -----------------------------------------------------
//
// Why not websocketpp's own pause_reading(): in 0.8.2 it only stops the *next* read. The read
// already in flight still completes, so frames and pings that arrive after the pause are parsed,
// delivered and auto-ponged; and resume_reading() issues a second read while that one is still
// outstanding, so two reads fill one buffer. Holding the read at the socket instead gives an
// exact pause: no byte leaves the kernel buffer until resume, and TCP backpressure reaches the
// peer. websocketpp reads through async_read_some, which this class hides; everything else is
// the plain asio socket.

class PausableSocket : public asio::ip::tcp::socket {
    using Base = asio::ip::tcp::socket;

public:
    using Base::Base;

    // Waits for readability, then reads what is there without blocking, unless paused, in which
    // case the read is parked until resume() (or failed by close/cancel/shutdown).
    template <class MutableBuffers, class Handler>
    void async_read_some(const MutableBuffers& buffers, Handler&& handler) {
        using H = std::decay_t<Handler>;
        auto executor = asio::get_associated_executor(handler, get_executor());
        // The handler waits in a read slot that a successful read gives back to the socket for
        // the next one (websocketpp reads one at a time), instead of a new shared block per
        // read. While a read is pending only the wait owns the slot: the handler owns the
        // connection that owns this socket, so the socket must not own the handler.
        std::shared_ptr<ReadSlot> slot = std::move(spare_slot_);
        if (!slot || slot->busy() || !ReadSlot::fits<H>()) slot = std::make_shared<ReadSlot>();
        slot->hold(std::forward<Handler>(handler));
        if (asio::buffer_size(buffers) == 0) {
            // Completes at once, as on a plain socket. Asio's TLS stream reads zero bytes to get
            // an asynchronous completion for a read that OpenSSL's buffer already satisfied:
            // waiting for readability there would hold decrypted data until the peer sent more.
            asio::post(executor, [slot] { slot->complete(asio::error_code(), std::size_t{0}); });
            return;
        }
        wait_then_read(buffers, std::move(slot), executor);
    }

    void pause() {
        std::lock_guard lock(mutex_);
        paused_ = true;
    }
    void resume() {
        std::function<void(asio::error_code)> parked;
        {
            std::lock_guard lock(mutex_);
            paused_ = false;
            parked = std::move(parked_);
            parked_ = nullptr;
        }
        // Posted, never run inline: the caller may be inside a websocketpp handler.
        if (parked) asio::post(get_executor(), [parked] { parked({}); });
    }

    // A parked read would otherwise never complete, so a paused connection could not be torn
    // down (and the parked handler would keep the connection alive forever).
    void close(asio::error_code& ec) {
        mark_closed();
        fail_parked();
        Base::close(ec);
    }
    void cancel(asio::error_code& ec) {
        fail_parked();
        Base::cancel(ec);
    }
    void shutdown(shutdown_type what, asio::error_code& ec) {
        mark_closed();
        fail_parked();
        Base::shutdown(what, ec);
    }

private:
    // A read's completion handler, held in place (shared with the pending wait, which may
    // complete after the socket is gone). Handlers too big for it get a slot of their own.
    class ReadSlot {
    public:
        ReadSlot() = default;
        ReadSlot(const ReadSlot&) = delete;
        ReadSlot& operator=(const ReadSlot&) = delete;
        ~ReadSlot() {
            if (destroy_) destroy_(storage_);
        }
        template <class H>
        static constexpr bool fits() {
            return sizeof(H) <= capacity && alignof(H) <= alignof(std::max_align_t);
        }
        bool busy() const noexcept { return complete_ != nullptr; }
        template <class Handler>
        void hold(Handler&& handler) {
            using H = std::decay_t<Handler>;
            if constexpr (fits<H>()) {
                new (storage_) H(std::forward<Handler>(handler));
                complete_ = [](unsigned char* p, asio::error_code ec, std::size_t n) {
                    H* held = std::launder(reinterpret_cast<H*>(p));
                    H h(std::move(*held));
                    held->~H();
                    std::move(h)(ec, n);
                };
                destroy_ = [](unsigned char* p) { std::launder(reinterpret_cast<H*>(p))->~H(); };
            } else {
                auto* heap = new H(std::forward<Handler>(handler));
                std::memcpy(storage_, &heap, sizeof heap);
                complete_ = [](unsigned char* p, asio::error_code ec, std::size_t n) {
                    H* held = nullptr;
                    std::memcpy(&held, p, sizeof held);
                    H h(std::move(*held));
                    delete held;
                    std::move(h)(ec, n);
                };
                destroy_ = [](unsigned char* p) {
                    H* held = nullptr;
                    std::memcpy(&held, p, sizeof held);
                    delete held;
                };
            }
        }
        /// Takes the handler out (the slot is free again) and calls it.
        void complete(asio::error_code ec, std::size_t n) {
            auto complete = complete_;
            complete_ = nullptr;
            destroy_ = nullptr;
            complete(storage_, ec, n);
        }

    private:
        static constexpr std::size_t capacity = 512;
        alignas(std::max_align_t) unsigned char storage_[capacity];
        void (*complete_)(unsigned char*, asio::error_code, std::size_t) = nullptr;
        void (*destroy_)(unsigned char*) = nullptr;
    };

    template <class MutableBuffers, class Executor>
    void wait_then_read(const MutableBuffers& buffers, std::shared_ptr<ReadSlot> handler, const Executor& executor) {
        // The wait's operation from the pool (see small_pool.hpp), not Asio's per-thread cache.
        Base::async_wait(wait_read, asio::bind_executor(executor, asio::bind_allocator(small_pool::Allocator<void>(),
                                                                      [this, buffers, handler, executor](
                                                                      asio::error_code ec) {
            // On error the socket may already be gone: touch nothing of `this`.
            if (ec) return handler->complete(ec, std::size_t{0});
            bool closed = false;
            {
                std::lock_guard lock(mutex_);
                closed = closed_;
                if (!closed && paused_) {
                    parked_ = [this, buffers, handler, executor](asio::error_code error) {
                        if (error) return handler->complete(error, std::size_t{0});
                        wait_then_read(buffers, handler, executor);
                    };
                    return;
                }
            }
            // A wait that completed just before a close must not park: nothing would ever
            // fail the parked read, and it would keep the connection alive forever.
            if (closed) return handler->complete(asio::error::operation_aborted, std::size_t{0});
            if (!non_blocking()) non_blocking(true, ec);
            std::size_t n = ec ? 0 : Base::read_some(buffers, ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again)
                return wait_then_read(buffers, handler, executor);
            spare_slot_ = handler;  // the socket is alive here; complete() frees the slot first
            handler->complete(ec, n);
        })));
    }

    void fail_parked() {
        std::function<void(asio::error_code)> parked;
        {
            std::lock_guard lock(mutex_);
            parked = std::move(parked_);
            parked_ = nullptr;
        }
        if (parked)
            asio::post(get_executor(), [parked] { parked(asio::error::operation_aborted); });
    }

    void mark_closed() {
        std::lock_guard lock(mutex_);
        closed_ = true;
    }

    std::mutex mutex_;
    bool paused_ = false;
    bool closed_ = false;
    std::function<void(asio::error_code)> parked_;
    std::shared_ptr<ReadSlot> spare_slot_;  // the idle read slot (see async_read_some)
};

// websocketpp's "none" security policy (transport/asio/security/none.hpp) with the socket type
// replaced by PausableSocket. Same interface, same behaviour otherwise.
namespace pausable_policy {

using websocketpp::connection_hdl;
namespace lib = websocketpp::lib;
namespace socket_error = websocketpp::transport::asio::socket;
using socket_init_handler = lib::function<void(connection_hdl, PausableSocket&)>;

class connection : public lib::enable_shared_from_this<connection> {
public:
    typedef connection type;
    typedef lib::shared_ptr<type> ptr;
    typedef asio::io_context* io_service_ptr;
    typedef lib::shared_ptr<asio::io_context::strand> strand_ptr;
    typedef PausableSocket socket_type;
    typedef lib::shared_ptr<socket_type> socket_ptr;

    connection() = default;
    ptr get_shared() { return shared_from_this(); }
    bool is_secure() const { return false; }
    void set_socket_init_handler(socket_init_handler h) { socket_init_handler_ = h; }
    PausableSocket& get_socket() { return *socket_; }
    PausableSocket& get_next_layer() { return *socket_; }
    PausableSocket& get_raw_socket() { return *socket_; }

    // Nothing beyond the error code to tell for plain TCP.
    std::string failure_detail() const { return {}; }

    std::string get_remote_endpoint(lib::error_code& ec) const {
        std::stringstream s;
        asio::error_code aec;
        asio::ip::tcp::endpoint ep = socket_->remote_endpoint(aec);
        if (aec) {
            ec = websocketpp::transport::asio::error::make_error_code(
                websocketpp::transport::asio::error::pass_through);
            s << "Error getting remote endpoint: " << aec << " (" << aec.message() << ")";
        } else {
            ec = lib::error_code();
            s << ep;
        }
        return s.str();
    }

protected:
    lib::error_code init_asio(io_service_ptr service, strand_ptr, bool) {
        if (state_ != State::Uninitialized)
            return socket_error::make_error_code(socket_error::error::invalid_state);
        socket_ = lib::make_shared<PausableSocket>(*service);
        if (socket_init_handler_) socket_init_handler_(hdl_, *socket_);
        state_ = State::Ready;
        return lib::error_code();
    }
    void set_uri(websocketpp::uri_ptr) {}
    void pre_init(websocketpp::transport::init_handler callback) {
        if (state_ != State::Ready) {
            callback(socket_error::make_error_code(socket_error::error::invalid_state));
            return;
        }
        state_ = State::Reading;
        callback(lib::error_code());
    }
    void post_init(websocketpp::transport::init_handler callback) { callback(lib::error_code()); }
    void set_handle(connection_hdl hdl) { hdl_ = hdl; }
    asio::error_code cancel_socket() {
        asio::error_code ec;
        socket_->cancel(ec);
        return ec;
    }
    void async_shutdown(socket_error::shutdown_handler h) {
        asio::error_code ec;
        socket_->shutdown(asio::ip::tcp::socket::shutdown_both, ec);
        h(ec);
    }
    lib::error_code get_ec() const { return lib::error_code(); }

public:
    template <typename ErrorCodeType>
    static lib::error_code translate_ec(ErrorCodeType) {
        return websocketpp::transport::error::make_error_code(
            websocketpp::transport::error::pass_through);
    }
    static lib::error_code translate_ec(lib::error_code ec) { return ec; }

private:
    enum class State { Uninitialized, Ready, Reading };
    socket_ptr socket_;
    State state_ = State::Uninitialized;
    connection_hdl hdl_;
    socket_init_handler socket_init_handler_;
};

class endpoint {
public:
    typedef endpoint type;
    typedef connection socket_con_type;
    typedef socket_con_type::ptr socket_con_ptr;

    endpoint() = default;
    bool is_secure() const { return false; }
    void set_socket_init_handler(socket_init_handler h) { socket_init_handler_ = h; }

protected:
    lib::error_code init(socket_con_ptr scon) {
        scon->set_socket_init_handler(socket_init_handler_);
        return lib::error_code();
    }

private:
    socket_init_handler socket_init_handler_;
};

}  // namespace pausable_policy

// ---- TLS ---------------------------------------------------------------------------------------

// The OpenSSL reason of the most recent error on this thread's queue (and the queue cleared),
// or `fallback` when there is none.
std::string openssl_reason(std::string fallback = "unknown OpenSSL error") {
    std::string text;
    while (const unsigned long e = ERR_get_error()) {
        if (const char* reason = ERR_reason_error_string(e)) text = reason;
    }
    return text.empty() ? fallback : text;
}

[[noreturn]] void tls_config_error(const std::string& what) { throw std::invalid_argument(what); }

bool is_ip_literal(const std::string& host) {
    asio::error_code ec;
    (void)asio::ip::make_address(host, ec);
    return !ec;
}

// What went wrong in a TLS operation, in words: OpenSSL's reason, the certificate check's
// verdict when that was the cause, and a hint for the alerts a user can act on. Empty for
// errors that are not TLS errors (their error_code says it all).
std::string describe_tls_error(const asio::error_code& ec, SSL* ssl) {
    if (ec == asio::ssl::error::stream_truncated)
        return "the peer closed the connection without a TLS close_notify";
    if (ec.category() != asio::error::get_ssl_category()) return {};
    const auto code = static_cast<unsigned long>(ec.value());
    const char* reason = ERR_reason_error_string(code);
    std::string text = reason ? reason : ec.message();
    switch (ERR_GET_REASON(code)) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        if (ssl) {
            const long verdict = SSL_get_verify_result(ssl);
            if (verdict != X509_V_OK)
                text += std::string(": ") + X509_verify_cert_error_string(verdict);
        }
        break;
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        text += " (the engine requires a client certificate and none was given: set "
                "TlsOptions::cert_file and key_file)";
        break;
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
        text += " (the engine rejected the client certificate)";
        break;
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
        text += " (the engine refused the handshake; does it require a client certificate?)";
        break;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        text += " (no TLS version both sides accept; see TlsOptions::min_version)";
        break;
    default:
        break;
    }
    return text;
}

// The TLS stream websocketpp reads and writes through: an ssl::stream over the pausable TCP
// socket that remembers the first TLS error of a read or write. websocketpp turns every TLS
// error into one generic code ("Generic TLS related error"), which would lose why a peer
// refused us (a TLS 1.3 server refuses a client certificate only after the handshake, on the
// first read).
//
// Pausing holds the TCP reads; records OpenSSL has already decrypted (at most one read of
// ciphertext, about 17 KB) are still delivered after a pause.
class TlsStream : public asio::ssl::stream<PausableSocket> {
    using Base = asio::ssl::stream<PausableSocket>;

public:
    TlsStream(asio::io_context& io, asio::ssl::context& context) : Base(io, context) {}

    template <class MutableBuffers, class Handler>
    void async_read_some(const MutableBuffers& buffers, Handler&& handler) {
        Base::async_read_some(buffers, watch(std::forward<Handler>(handler)));
    }
    template <class ConstBuffers, class Handler>
    void async_write_some(const ConstBuffers& buffers, Handler&& handler) {
        Base::async_write_some(buffers, watch(std::forward<Handler>(handler)));
    }

    // Called on the connection's strand (handshake, reads, writes) and by the socket's owner
    // after the connection failed: hence the mutex.
    void note(const asio::error_code& ec) {
        std::string text = describe_tls_error(ec, native_handle());
        if (text.empty()) return;
        std::lock_guard lock(mutex_);
        if (detail_.empty()) detail_ = std::move(text);
    }
    /// A TLS error ended the session: no close_notify exchange is possible any more.
    bool failed() const {
        std::lock_guard lock(mutex_);
        return !detail_.empty();
    }
    std::string detail() const {
        std::lock_guard lock(mutex_);
        return detail_;
    }

private:
    template <class Handler>
    auto watch(Handler&& handler) {
        auto shared = std::make_shared<std::decay_t<Handler>>(std::forward<Handler>(handler));
        auto executor = asio::get_associated_executor(*shared, get_executor());
        // The stream outlives its operations (websocketpp keeps the connection, which owns
        // it, alive through every pending handler), so `this` is safe here.
        return asio::bind_executor(executor, [this, shared](asio::error_code ec, std::size_t n) {
            if (ec) note(ec);
            (*shared)(ec, n);
        });
    }

    mutable std::mutex mutex_;
    std::string detail_;
};

// websocketpp's TLS socket policy (transport/asio/security/tls.hpp) rewritten for three
// reasons: the socket under the TLS stream is the pausable one; host name verification (DNS
// names and IP addresses) is set up, which websocketpp leaves to the user; and SNI is sent
// for DNS names only (websocketpp sends IP literals too, which RFC 6066 forbids).
namespace tls_policy {

using websocketpp::connection_hdl;
namespace lib = websocketpp::lib;
namespace socket_error = websocketpp::transport::asio::socket;
using socket_init_handler = lib::function<void(connection_hdl, TlsStream&)>;
using ContextPtr = std::shared_ptr<asio::ssl::context>;

class connection : public lib::enable_shared_from_this<connection> {
public:
    typedef connection type;
    typedef lib::shared_ptr<type> ptr;
    typedef asio::io_context* io_service_ptr;
    typedef lib::shared_ptr<asio::io_context::strand> strand_ptr;
    typedef TlsStream socket_type;
    typedef lib::shared_ptr<socket_type> socket_ptr;

    connection() = default;
    ptr get_shared() { return shared_from_this(); }
    bool is_secure() const { return true; }
    void set_socket_init_handler(socket_init_handler h) { socket_init_handler_ = h; }
    void set_tls(ContextPtr context, bool verify_host) {
        context_ = std::move(context);
        verify_host_ = verify_host;
    }
    TlsStream& get_socket() { return *socket_; }
    PausableSocket& get_next_layer() { return socket_->next_layer(); }
    // The pausable socket, not lowest_layer(): close() and shutdown() must go through
    // PausableSocket's versions, which fail a parked read.
    PausableSocket& get_raw_socket() { return socket_->next_layer(); }

    std::string failure_detail() const { return socket_ ? socket_->detail() : std::string(); }

    std::string get_remote_endpoint(lib::error_code& ec) const {
        std::stringstream s;
        asio::error_code aec;
        asio::ip::tcp::endpoint ep = socket_->next_layer().remote_endpoint(aec);
        if (aec) {
            ec = websocketpp::transport::asio::error::make_error_code(
                websocketpp::transport::asio::error::pass_through);
            s << "Error getting remote endpoint: " << aec << " (" << aec.message() << ")";
        } else {
            ec = lib::error_code();
            s << ep;
        }
        return s.str();
    }

protected:
    lib::error_code init_asio(io_service_ptr service, strand_ptr strand, bool is_server) {
        if (!context_) return socket_error::make_error_code(socket_error::error::invalid_tls_context);
        socket_ = lib::make_shared<TlsStream>(*service, *context_);
        if (socket_init_handler_) socket_init_handler_(hdl_, *socket_);
        strand_ = strand;
        is_server_ = is_server;
        return lib::error_code();
    }
    void set_uri(websocketpp::uri_ptr u) { uri_ = u; }
    void pre_init(websocketpp::transport::init_handler callback) {
        if (!is_server_ && uri_) {
            SSL* ssl = socket_->native_handle();
            const std::string& host = uri_->get_host();
            const bool ip = is_ip_literal(host);
            if (verify_host_) {
                X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
                X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                                  : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
                if (ok != 1) {
                    callback(socket_error::make_error_code(socket_error::error::tls_failed_sni_hostname));
                    return;
                }
            }
            if (!ip && SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) {
                callback(socket_error::make_error_code(socket_error::error::tls_failed_sni_hostname));
                return;
            }
        }
        callback(lib::error_code());
    }
    void post_init(websocketpp::transport::init_handler callback) {
        ec_ = socket_error::make_error_code(socket_error::error::tls_handshake_timeout);
        auto done = lib::bind(&type::handle_init, get_shared(), callback, lib::placeholders::_1);
        const auto kind = is_server_ ? asio::ssl::stream_base::server : asio::ssl::stream_base::client;
        if (strand_)
            socket_->async_handshake(kind, strand_->wrap(done));
        else
            socket_->async_handshake(kind, done);
    }
    void set_handle(connection_hdl hdl) { hdl_ = hdl; }
    void handle_init(websocketpp::transport::init_handler callback, const asio::error_code& ec) {
        if (ec) {
            socket_->note(ec);
            ec_ = socket_error::make_error_code(socket_error::error::tls_handshake_failed);
        } else {
            ec_ = lib::error_code();
            handshake_done_ = true;
        }
        callback(ec_);
    }
    lib::error_code get_ec() const { return ec_; }
    asio::error_code cancel_socket() {
        asio::error_code ec;
        socket_->next_layer().cancel(ec);
        return ec;
    }
    void async_shutdown(socket_error::shutdown_handler callback) {
        // Without a session (handshake not done, or ended by a TLS error) there is no
        // close_notify to exchange: waiting for the peer's would hold a failed connect (and
        // its fail handler) until the shutdown timer, since the peer has given up on us too.
        if (!handshake_done_ || socket_->failed()) {
            asio::error_code ignored;
            socket_->next_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
            callback(asio::error_code());
            return;
        }
        // websocketpp reads operation_aborted from a shutdown as "my shutdown timer fired" and
        // drops it, leaving the connection to that 5 s timer. Asio's TLS shutdown completes
        // with it after a close_notify exchange that did finish (seen on the engine side of
        // wss:// closes), so it is the end of the shutdown like any other. When the timer
        // did fire, websocketpp still sees that from the timer and ignores this completion.
        callback = [callback = std::move(callback)](const lib::error_code& ec) {
            callback(ec == asio::error::operation_aborted ? lib::error_code() : ec);
        };
        if (strand_)
            socket_->async_shutdown(strand_->wrap(callback));
        else
            socket_->async_shutdown(callback);
    }

public:
    template <typename ErrorCodeType>
    static lib::error_code translate_ec(ErrorCodeType ec) {
        if (ec.category() == asio::error::get_ssl_category())
            return websocketpp::transport::error::make_error_code(websocketpp::transport::error::tls_error);
        return websocketpp::transport::error::make_error_code(
            websocketpp::transport::error::pass_through);
    }
    static lib::error_code translate_ec(lib::error_code ec) { return ec; }

private:
    ContextPtr context_;
    bool verify_host_ = true;
    socket_ptr socket_;
    strand_ptr strand_;
    websocketpp::uri_ptr uri_;
    bool is_server_ = false;
    bool handshake_done_ = false;  // strand
    lib::error_code ec_;
    connection_hdl hdl_;
    socket_init_handler socket_init_handler_;
};

class endpoint {
public:
    typedef endpoint type;
    typedef connection socket_con_type;
    typedef socket_con_type::ptr socket_con_ptr;

    endpoint() = default;
    bool is_secure() const { return true; }
    void set_socket_init_handler(socket_init_handler h) { socket_init_handler_ = h; }
    /// The context (and whether to check the host name) of every connection made from now on.
    void set_tls(ContextPtr context, bool verify_host) {
        context_ = std::move(context);
        verify_host_ = verify_host;
    }

protected:
    lib::error_code init(socket_con_ptr scon) {
        scon->set_socket_init_handler(socket_init_handler_);
        scon->set_tls(context_, verify_host_);
        return lib::error_code();
    }

private:
    socket_init_handler socket_init_handler_;
    ContextPtr context_;
    bool verify_host_ = true;
};

}  // namespace tls_policy

// OpenSSL 3.0 decodes a certificate's extensions on first use and caches them behind a check
// of its flags made outside the certificate's lock, so two handshakes verifying against the same
// trusted certificate on two threads race there (ThreadSanitizer sees it). A shared context
// therefore (1) decodes every certificate it holds once, before it is shared, and (2) verifies
// peers one at a time: a CA directory adds certificates to the store lazily, during verification.
struct SharedClientContext {
    asio::ssl::context context{asio::ssl::context::tls_client};
    std::mutex verifying;
};

int verify_serialized(X509_STORE_CTX* store_ctx, void* shared) {
    std::lock_guard lock(static_cast<SharedClientContext*>(shared)->verifying);
    return X509_verify_cert(store_ctx);
}

void decode_extensions_now(SSL_CTX* ctx) {
    STACK_OF(X509)* trusted = X509_STORE_get1_all_certs(SSL_CTX_get_cert_store(ctx));
    for (int i = 0; i < sk_X509_num(trusted); ++i) X509_check_purpose(sk_X509_value(trusted, i), -1, 0);
    sk_X509_pop_free(trusted, X509_free);
    if (X509* own = SSL_CTX_get0_certificate(ctx)) X509_check_purpose(own, -1, 0);
    STACK_OF(X509)* chain = nullptr;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    for (int i = 0; i < sk_X509_num(chain); ++i) X509_check_purpose(sk_X509_value(chain, i), -1, 0);
}

// Client contexts are cached by their settings: loading the system trust store takes a few
// milliseconds, and every channel opens its own socket. The key includes $SSL_CERT_FILE and
// $SSL_CERT_DIR, which OpenSSL reads while loading.
std::shared_ptr<asio::ssl::context> build_client_context(const TlsOptions& tls) {
    auto shared = std::make_shared<SharedClientContext>();
    std::shared_ptr<asio::ssl::context> context(shared, &shared->context);
    SSL_CTX* ctx = context->native_handle();
    SSL_CTX_set_cert_verify_callback(ctx, &verify_serialized, shared.get());
    ERR_clear_error();
    SSL_CTX_set_min_proto_version(
        ctx, tls.min_version == TlsVersion::Tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (tls.skip_verification) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        if (tls.system_trust_store && SSL_CTX_set_default_verify_paths(ctx) != 1)
            tls_config_error("TLS: cannot load the system trust store: " + openssl_reason());
        if (!tls.ca_file.empty() &&
            SSL_CTX_load_verify_locations(ctx, tls.ca_file.c_str(), nullptr) != 1)
            tls_config_error("TLS: cannot load CA file '" + tls.ca_file + "': " + openssl_reason());
        if (!tls.ca_dir.empty()) {
            std::error_code ec;
            if (!std::filesystem::is_directory(tls.ca_dir, ec))
                tls_config_error("TLS: CA directory '" + tls.ca_dir + "' is not a directory");
            if (SSL_CTX_load_verify_locations(ctx, nullptr, tls.ca_dir.c_str()) != 1)
                tls_config_error("TLS: cannot use CA directory '" + tls.ca_dir +
                                 "': " + openssl_reason());
        }
        if (!tls.ca_pem.empty()) {
            std::unique_ptr<BIO, decltype(&BIO_free)> bio(
                BIO_new_mem_buf(tls.ca_pem.data(), static_cast<int>(tls.ca_pem.size())), &BIO_free);
            X509_STORE* store = SSL_CTX_get_cert_store(ctx);
            int added = 0;
            while (X509* cert = bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)
                                    : nullptr) {
                const int ok = X509_STORE_add_cert(store, cert);
                X509_free(cert);
                if (ok != 1)
                    tls_config_error("TLS: cannot add a certificate of ca_pem: " + openssl_reason());
                ++added;
            }
            ERR_clear_error();  // the loop ends on "no start line"
            if (added == 0) tls_config_error("TLS: ca_pem holds no PEM certificate");
        }
    }
    if (tls.cert_file.empty() != tls.key_file.empty())
        tls_config_error("TLS: a client certificate needs both cert_file and key_file");
    if (!tls.cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1)
            tls_config_error("TLS: cannot load client certificate '" + tls.cert_file +
                             "': " + openssl_reason());
        if (SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
            tls_config_error("TLS: cannot load client key '" + tls.key_file +
                             "': " + openssl_reason());
        if (SSL_CTX_check_private_key(ctx) != 1)
            tls_config_error("TLS: client key '" + tls.key_file + "' does not match '" +
                             tls.cert_file + "': " + openssl_reason());
    }
    decode_extensions_now(ctx);
    ERR_clear_error();
    return context;
}

std::shared_ptr<asio::ssl::context> client_context(const TlsOptions& tls) {
    const auto env = [](const char* name) {
        const char* value = std::getenv(name);
        return std::string(value ? value : "");
    };
    std::string key;
    for (const std::string* part : {&tls.ca_file, &tls.ca_dir, &tls.ca_pem, &tls.cert_file,
                                    &tls.key_file}) {
        key += *part;
        key += '\0';
    }
    key += tls.system_trust_store ? 's' : '-';
    key += tls.skip_verification ? 'k' : '-';
    key += tls.min_version == TlsVersion::Tls13 ? '3' : '2';
    key += env("SSL_CERT_FILE") + '\0' + env("SSL_CERT_DIR");

    static std::mutex mutex;
    static std::map<std::string, std::shared_ptr<asio::ssl::context>> cache;
    std::lock_guard lock(mutex);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
    auto context = build_client_context(tls);
    if (cache.size() >= 16) cache.clear();  // settings rarely vary; keep the cache small
    cache.emplace(std::move(key), context);
    return context;
}

std::shared_ptr<asio::ssl::context> server_context(const ServerTls& tls) {
    auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    SSL_CTX* ctx = context->native_handle();
    ERR_clear_error();
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (tls.tls12_only) SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1)
        tls_config_error("TLS: cannot load certificate '" + tls.cert_file + "': " + openssl_reason());
    if (SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
        tls_config_error("TLS: cannot load key '" + tls.key_file + "': " + openssl_reason());
    if (SSL_CTX_check_private_key(ctx) != 1)
        tls_config_error("TLS: key '" + tls.key_file + "' does not match '" + tls.cert_file +
                         "': " + openssl_reason());
    if (!tls.client_ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(ctx, tls.client_ca_file.c_str(), nullptr) != 1)
            tls_config_error("TLS: cannot load client CA file '" + tls.client_ca_file +
                             "': " + openssl_reason());
        SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(tls.client_ca_file.c_str()));
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
        // Session resumption with client verification needs an id context, or resumed
        // handshakes fail.
        static const unsigned char id[] = "iii-test-engine";
        SSL_CTX_set_session_id_context(ctx, id, sizeof id - 1);
    }
    return context;
}

// ---- numeric hosts connect without the resolver ------------------------------------------------

// Asio's asynchronous resolver runs getaddrinfo on a private thread that it starts on first use
// and keeps for as long as the io_context lives. An IP literal needs no resolving, so for those
// this endpoint builds the one-entry result itself and goes straight to websocketpp's connect
// step; host names (and proxies) take websocketpp's own path.
template <class TransportConfig>
class NumericHostEndpoint : public websocketpp::transport::asio::endpoint<TransportConfig> {
    using Base = websocketpp::transport::asio::endpoint<TransportConfig>;

protected:
    void async_connect(typename Base::transport_con_ptr tcon, websocketpp::uri_ptr u,
                       websocketpp::transport::connect_handler cb) {
        if (!connect_numeric_host(tcon, u, cb)) Base::async_connect(tcon, u, cb);
    }

private:
    // True when it took over: the host is an IP literal and no proxy is set.
    bool connect_numeric_host(typename Base::transport_con_ptr tcon, websocketpp::uri_ptr u,
                              websocketpp::transport::connect_handler cb) {
        if (!tcon->get_proxy().empty()) return false;
        asio::error_code ec;
        std::string host = u->get_host();
        if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        const auto address = asio::ip::make_address(host, ec);
        if (ec) return false;
        tcon->set_uri(u);
        auto results = asio::ip::tcp::resolver::results_type::create(
            asio::ip::tcp::endpoint(address, u->get_port()), u->get_host(), u->get_port_str());
        // websocketpp's next step checks that its resolve timer has not expired and cancels
        // it; this one is cancelled there before it could fire.
        auto dns_timer = tcon->set_timer(TransportConfig::timeout_dns_resolve,
                                         [](const websocketpp::lib::error_code&) {});
        auto next = [this, tcon, dns_timer, cb, results] {
            this->handle_resolve(tcon, dns_timer, cb, asio::error_code(), results);
        };
        if (auto strand = tcon->get_strand())
            asio::post(*strand, std::move(next));
        else
            asio::post(tcon->get_raw_socket().get_executor(), std::move(next));
        return true;
    }
};

// ---- configurations ----------------------------------------------------------------------------

// Before the upgrade completes, a client socket has no limits of websocketpp's own (its fixed
// 5 s DNS, TCP and TLS timers would cut every longer connect_timeout short): the caller's
// ConnectOptions::open_timeout bounds the whole attempt instead (WsSocket's open timer).
constexpr long no_limit_ms = 24L * 3600 * 1000;

template <class Base, class SocketPolicy, bool IsClient>
struct Config : Base {
    struct transport_config : Base::transport_config {
        typedef SocketPolicy socket_type;
        using Stock = typename Base::transport_config;
        static const long timeout_dns_resolve = IsClient ? no_limit_ms : Stock::timeout_dns_resolve;
        static const long timeout_connect = IsClient ? no_limit_ms : Stock::timeout_connect;
        static const long timeout_socket_pre_init =
            IsClient ? no_limit_ms : Stock::timeout_socket_pre_init;
        static const long timeout_socket_post_init =
            IsClient ? no_limit_ms : Stock::timeout_socket_post_init;
        typedef websocketpp::log::stub elog_type;
        typedef websocketpp::log::stub alog_type;
    };
    typedef NumericHostEndpoint<transport_config> transport_type;
    // Logging is off (quiet()), and websocketpp's basic logger locks a mutex on every write()
    // before it looks whether the channel is on: a lock per message for nothing.
    typedef websocketpp::log::stub elog_type;
    typedef websocketpp::log::stub alog_type;
    // Clients mask every frame: keys from the kernel's CSPRNG in bulk, not std::random_device
    // per frame (wspp/mask_keys.hpp). Servers do not mask.
    typedef std::conditional_t<IsClient, iii::detail::wspp::MaskKeys<std::uint32_t, typename Base::concurrency_type>,
                               typename Base::rng_type>
        rng_type;
};

using PlainClientEndpoint =
    websocketpp::client<Config<websocketpp::config::asio_client, pausable_policy::endpoint, true>>;
using TlsClientEndpoint =
    websocketpp::client<Config<websocketpp::config::asio_client, tls_policy::endpoint, true>>;
using PlainServerEndpoint =
    websocketpp::server<Config<websocketpp::config::asio, pausable_policy::endpoint, false>>;
using TlsServerEndpoint =
    websocketpp::server<Config<websocketpp::config::asio, tls_policy::endpoint, false>>;

// Channels stream 64 MiB and more as 64 KiB frames, but a single protocol message can be large
// too (payloads are arbitrary JSON); websocketpp's 32 MB default would close the connection.
constexpr std::size_t max_message_size = 256u << 20;

std::error_code to_std(const websocketpp::lib::error_code& ec) {
    if (!ec) return {};
    return std::error_code(ec.value(), ec.category());
}

template <class Endpoint>
void quiet(Endpoint& ep) {
    ep.clear_access_channels(websocketpp::log::alevel::all);
    ep.clear_error_channels(websocketpp::log::elevel::all);
}

// One socket of either configuration (plain or TLS, client or server): the same code path,
// instantiated per websocketpp endpoint type.
template <class Endpoint>
class WsSocket final : public Socket, public std::enable_shared_from_this<WsSocket<Endpoint>> {
public:
    using ConnectionPtr = typename Endpoint::connection_ptr;

    WsSocket(std::shared_ptr<Endpoint> endpoint, ConnectionPtr con, Callbacks callbacks)
        : endpoint_(std::move(endpoint)), con_(std::move(con)), callbacks_(std::move(callbacks)) {}

    // Wires websocketpp's per-connection handlers to our callbacks. The handlers hold only a
    // weak reference: the owner decides how long the socket lives.
    void bind() {
        std::weak_ptr<WsSocket> weak = this->shared_from_this();
        con_->set_open_handler([weak](websocketpp::connection_hdl) {
            auto self = weak.lock();
            if (!self) return;
            self->opened_ = true;
            if (self->open_timer_) self->open_timer_->cancel();
            if (!self->detached_ && !self->closed_ && self->callbacks_.on_open)
                self->callbacks_.on_open();
        });
        con_->set_message_handler([weak](websocketpp::connection_hdl, auto msg) {
            auto self = weak.lock();
            if (!self || self->detached_ || !self->callbacks_.on_message) return;
            const bool binary = msg->get_opcode() == websocketpp::frame::opcode::binary;
            self->callbacks_.on_message(std::move(msg->get_raw_payload()), binary);
        });
        // The corrected connection.hpp's send-progress hook (tools/fix_websocketpp.py); only
        // for sockets that asked (it runs on every socket write).
        if (callbacks_.on_drain)
            con_->set_iii_drain_handler([weak] {
                if (auto self = weak.lock(); self && !self->detached_ && self->callbacks_.on_drain)
                    self->callbacks_.on_drain();
            });
        con_->set_pong_handler([weak](websocketpp::connection_hdl, std::string) {
            if (auto self = weak.lock(); self && !self->detached_ && self->callbacks_.on_pong)
                self->callbacks_.on_pong();
        });
        // The handlers live inside the websocketpp connection, which lives until its last
        // pending operation completes; capturing the endpoint keeps it alive that long too.
        // websocketpp's client calls back into its endpoint (handle_connect) after a socket we
        // gave up on (connect timeout, shutdown) was released.
        con_->set_close_handler([weak, keep = endpoint_](websocketpp::connection_hdl) {
            if (auto self = weak.lock()) {
                auto code = self->con_->get_remote_close_code();
                std::error_code ec;
                std::string reason = self->con_->get_remote_close_reason();
                if (self->con_->iii_closed_first() && !self->close_requested_) {
                    // websocketpp itself closed: the peer broke the protocol (1007, 1009, 1002).
                    // It stops reading then, so the peer's answer is never seen (code 1006).
                    code = self->con_->get_local_close_code();
                    ec = std::error_code(code, local_close_category());
                    reason = self->con_->get_local_close_reason();
                } else if (code == websocketpp::close::status::abnormal_close) {
                    ec = to_std(self->con_->get_ec());
                    reason = self->failure_reason();
                }
                self->report_close(ec, code, std::move(reason));
            }
        });
        con_->set_fail_handler([weak, keep = endpoint_](websocketpp::connection_hdl) {
            if (auto self = weak.lock()) {
                auto ec = to_std(self->con_->get_ec());
                // A client upgrade refused with an HTTP status: callers tell a missing route
                // (404) from other failures. (Client sockets own their endpoint.)
                if (self->endpoint_) {
                    const int status = static_cast<int>(self->con_->get_response_code());
                    if (status >= 300 && status < 600) ec = std::error_code(status, http_status_category());
                }
                if (!ec) ec = std::make_error_code(std::errc::connection_refused);
                self->report_close(ec, websocketpp::close::status::abnormal_close,
                                   self->failure_reason());
            }
        });
        con_->set_tcp_post_init_handler([weak](websocketpp::connection_hdl) {
            // Round trips are latency-bound: small frames must not wait for Nagle.
            if (auto self = weak.lock()) {
                asio::error_code ignored;
                self->con_->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ignored);
            }
        });
        con_->set_max_message_size(max_message_size);
    }

    // Client sockets: the limits of the open and close handshakes, and one timer over the
    // whole attempt (websocketpp's own open-handshake timer starts only once the upgrade
    // request is written, after DNS, TCP and TLS).
    void set_limits(const ConnectOptions& options) {
        con_->set_open_handshake_timeout(options.open_timeout.count());
        con_->set_close_handshake_timeout(options.close_timeout.count());
        if (options.open_timeout.count() <= 0) return;
        std::weak_ptr<WsSocket> weak = this->shared_from_this();
        open_timer_ = con_->set_timer(
            static_cast<long>(options.open_timeout.count()),
            [weak](const websocketpp::lib::error_code& ec) {
                auto self = weak.lock();
                if (ec || !self || self->opened_) return;
                // Reported here: an aborted TCP connect or DNS lookup never reaches
                // websocketpp's fail handler.
                self->report_close(std::make_error_code(std::errc::timed_out),
                                   websocketpp::close::status::abnormal_close, {});
                self->abort();
            });
    }

    std::error_code send(std::string_view data, bool binary) override {
        return to_std(con_->send(data.data(), data.size(),
                                 binary ? websocketpp::frame::opcode::binary
                                        : websocketpp::frame::opcode::text));
    }
    std::error_code ping() override {
        websocketpp::lib::error_code ec;
        con_->ping("", ec);
        return to_std(ec);
    }
    void close(std::uint16_t code, std::string reason) override {
        close_requested_ = true;
        websocketpp::lib::error_code ec;
        con_->close(code, reason, ec);
    }
    void abort() override {
        auto con = con_;
        asio::dispatch(con->get_raw_socket().get_executor(), [con] {
            asio::error_code ignored;
            con->get_raw_socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
            con->get_raw_socket().close(ignored);
        });
    }
    void pause_reading() override { con_->get_raw_socket().pause(); }
    void resume_reading() override { con_->get_raw_socket().resume(); }
    // Thread-safe: the corrected connection_impl.hpp takes the write lock there
    // (tools/fix_websocketpp.py). Callbacks::on_drain tells when it drops.
    std::size_t buffered_amount() const override { return con_->get_buffered_amount(); }
    std::string remote_ip() const override {
        asio::error_code ec;
        auto ep = con_->get_raw_socket().remote_endpoint(ec);
        return ec ? std::string() : ep.address().to_string();
    }
    void detach() override { detached_ = true; }
    void set_callbacks(Callbacks callbacks) { callbacks_ = std::move(callbacks); }

private:
    std::string failure_reason() const {
        std::string detail = con_->failure_detail();
        if (detail.empty()) return detail;
        return (opened_ ? "TLS error: " : "TLS handshake failed: ") + detail;
    }

    // On the connection's strand (websocketpp handlers and timers).
    void report_close(std::error_code ec, std::uint16_t code, std::string reason) {
        if (closed_ || detached_) return;
        closed_ = true;
        if (open_timer_) open_timer_->cancel();
        if (callbacks_.on_close) callbacks_.on_close(ec, code, std::move(reason));
    }

    std::shared_ptr<Endpoint> endpoint_;  // client sockets own their endpoint; null for server
    ConnectionPtr con_;
    Callbacks callbacks_;
    typename Endpoint::transport_con_type::timer_ptr open_timer_;
    std::atomic<bool> detached_{false};
    std::atomic<bool> opened_{false};
    std::atomic<bool> close_requested_{false};  // close() was called (any thread)
    bool closed_ = false;
};

bool is_wss(const std::string& url) {
    constexpr std::string_view scheme = "wss://";
    if (url.size() < scheme.size()) return false;
    for (std::size_t i = 0; i < scheme.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(url[i])) != scheme[i]) return false;
    return true;
}

template <class Endpoint>
std::shared_ptr<Socket> connect_with(std::shared_ptr<Endpoint> endpoint, asio::io_context& io,
                                     const std::string& url,
                                     const std::map<std::string, std::string>& headers,
                                     Callbacks callbacks, const ConnectOptions& options) {
    quiet(*endpoint);
    endpoint->init_asio(&io);
    websocketpp::lib::error_code ec;
    auto con = endpoint->get_connection(url, ec);
    if (ec) throw std::system_error(to_std(ec), "invalid WebSocket URL '" + url + "'");
    for (const auto& [name, value] : headers) {
        // Invalid header names or values are skipped, as the reference SDKs do.
        try {
            con->append_header(name, value);
        } catch (...) {
        }
    }
    auto socket = std::make_shared<WsSocket<Endpoint>>(endpoint, con, std::move(callbacks));
    socket->bind();
    socket->set_limits(options);
    endpoint->connect(con);
    return socket;
}

}  // namespace

const std::error_category& http_status_category() noexcept {
    struct Category final : std::error_category {
        const char* name() const noexcept override { return "http"; }
        std::string message(int status) const override {
            return "the server answered the upgrade with HTTP " + std::to_string(status);
        }
    };
    static const Category category;
    return category;
}

const std::error_category& local_close_category() noexcept {
    struct Category final : std::error_category {
        const char* name() const noexcept override { return "websocket-local-close"; }
        std::string message(int code) const override {
            return "closed with " + std::to_string(code) + " after a protocol error from the peer";
        }
    };
    static const Category category;
    return category;
}

std::shared_ptr<Socket> connect(asio::io_context& io, const std::string& url,
                                const std::map<std::string, std::string>& headers,
                                Callbacks callbacks, const ConnectOptions& options) {
    if (!is_wss(url))
        return connect_with(std::make_shared<PlainClientEndpoint>(), io, url, headers,
                            std::move(callbacks), options);
    auto endpoint = std::make_shared<TlsClientEndpoint>();
    endpoint->set_tls(client_context(options.tls), !options.tls.skip_verification);
    if (options.tls.skip_verification)
        log(LogLevel::Warn,
            "TLS certificate verification is off (TlsOptions::skip_verification): the connection "
            "to {} is encrypted but the engine is not authenticated",
            url.substr(0, url.find('?')));
    return connect_with(std::move(endpoint), io, url, headers, std::move(callbacks), options);
}

void check_tls(const TlsOptions& tls) { (void)client_context(tls); }

struct Server::Impl {
    virtual ~Impl() = default;
    virtual std::uint16_t listen(std::uint16_t port) = 0;
    virtual void stop_listening() = 0;
};

namespace {

template <class Endpoint>
struct ServerImpl final : Server::Impl {
    ServerImpl(asio::io_context& io, Server::Handlers h) : handlers(std::move(h)) {
        quiet(endpoint);
        endpoint.init_asio(&io);
        endpoint.set_reuse_addr(true);
        endpoint.set_validate_handler([this](websocketpp::connection_hdl hdl) {
            auto con = endpoint.get_con_from_hdl(hdl);
            if (!handlers.admit) return true;
            Admission admission = handlers.admit(con->get_resource());
            if (admission.accept) return true;
            con->set_status(static_cast<websocketpp::http::status_code::value>(admission.http_status),
                            admission.body);
            return false;
        });
        endpoint.set_tcp_post_init_handler([this](websocketpp::connection_hdl hdl) {
            asio::error_code ignored;
            endpoint.get_con_from_hdl(hdl)->get_raw_socket().set_option(
                asio::ip::tcp::no_delay(true), ignored);
        });
        endpoint.set_open_handler([this](websocketpp::connection_hdl hdl) {
            auto con = endpoint.get_con_from_hdl(hdl);
            auto socket = std::make_shared<WsSocket<Endpoint>>(nullptr, con, Callbacks{});
            Callbacks cb = handlers.on_accept(socket, con->get_resource());
            socket->set_callbacks(std::move(cb));
            socket->bind();
        });
    }

    std::uint16_t listen(std::uint16_t port) override {
        // The error-code overloads: the throwing ones raise websocketpp::exception, which
        // callers outside this file cannot name.
        websocketpp::lib::error_code ec;
        endpoint.listen(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
        if (!ec) endpoint.start_accept(ec);
        if (ec)
            throw std::system_error(to_std(ec), "cannot listen on 127.0.0.1:" + std::to_string(port));
        websocketpp::lib::asio::error_code aec;
        return endpoint.get_local_endpoint(aec).port();
    }

    void stop_listening() override {
        websocketpp::lib::error_code ec;
        if (endpoint.is_listening()) endpoint.stop_listening(ec);
    }

    Server::Handlers handlers;
    Endpoint endpoint;
};

}  // namespace

Server::Server(asio::io_context& io, Handlers handlers, const ServerTls& tls) {
    if (tls.cert_file.empty()) {
        impl_ = std::make_unique<ServerImpl<PlainServerEndpoint>>(io, std::move(handlers));
    } else {
        auto context = server_context(tls);
        auto impl = std::make_unique<ServerImpl<TlsServerEndpoint>>(io, std::move(handlers));
        impl->endpoint.set_tls(std::move(context), false);
        impl_ = std::move(impl);
    }
}

Server::~Server() { stop_listening(); }

std::uint16_t Server::listen(std::uint16_t port) { return impl_->listen(port); }

void Server::stop_listening() { impl_->stop_listening(); }

}  // namespace iii::detail::transport
