#include "transport/ws_transport.hpp"

#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>
#include <websocketpp/server.hpp>

#include <asio/bind_executor.hpp>
#include <asio/post.hpp>

#include <atomic>
#include <mutex>
#include <sstream>

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
        auto shared = std::make_shared<std::decay_t<Handler>>(std::forward<Handler>(handler));
        wait_then_read(buffers, std::move(shared));
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
    template <class MutableBuffers, class Handler>
    void wait_then_read(const MutableBuffers& buffers, std::shared_ptr<Handler> handler) {
        auto executor = asio::get_associated_executor(*handler, get_executor());
        Base::async_wait(wait_read, asio::bind_executor(executor, [this, buffers, handler](
                                                                      asio::error_code ec) {
            // On error the socket may already be gone: touch nothing of `this`.
            if (ec) return (*handler)(ec, std::size_t{0});
            bool closed = false;
            {
                std::lock_guard lock(mutex_);
                closed = closed_;
                if (!closed && paused_) {
                    parked_ = [this, buffers, handler](asio::error_code error) {
                        if (error) return (*handler)(error, std::size_t{0});
                        wait_then_read(buffers, handler);
                    };
                    return;
                }
            }
            // A wait that completed just before a close must not park: nothing would ever
            // fail the parked read, and it would keep the connection alive forever.
            if (closed) return (*handler)(asio::error::operation_aborted, std::size_t{0});
            if (!non_blocking()) non_blocking(true, ec);
            std::size_t n = ec ? 0 : Base::read_some(buffers, ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again)
                return wait_then_read(buffers, handler);
            (*handler)(ec, n);
        }));
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

// websocketpp's transport with a fast path for numeric hosts: Asio's asynchronous resolver
// starts a thread that lives as long as the io_context, even for "127.0.0.1", and a client on
// the caller's io_context must not add threads. Other hosts still go through the resolver.
template <class TransportConfig>
class NumericHostTransport : public websocketpp::transport::asio::endpoint<TransportConfig> {
    using Base = websocketpp::transport::asio::endpoint<TransportConfig>;

protected:
    void async_connect(typename Base::transport_con_ptr tcon, websocketpp::uri_ptr u,
                       websocketpp::transport::connect_handler cb) {
        asio::error_code ec;
        std::string host = u->get_host();
        if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        const auto address = asio::ip::make_address(host, ec);
        if (ec || !tcon->get_proxy().empty()) {
            Base::async_connect(tcon, u, std::move(cb));
            return;
        }
        tcon->set_uri(u);
        auto results = asio::ip::tcp::resolver::results_type::create(
            asio::ip::tcp::endpoint(address, u->get_port()), u->get_host(), u->get_port_str());
        // handle_resolve() checks and cancels the DNS timer of the resolving path.
        auto dns_timer = tcon->set_timer(TransportConfig::timeout_dns_resolve, [](websocketpp::lib::error_code const&) {});
        this->handle_resolve(tcon, dns_timer, std::move(cb), asio::error_code(), results);
    }
};

// The stock asio configs with the pausable socket policy.
template <class Base>
struct PausableConfig : Base {
    struct transport_config : Base::transport_config {
        typedef pausable_policy::endpoint socket_type;
    };
    typedef NumericHostTransport<transport_config> transport_type;
};

using ClientEndpoint = websocketpp::client<PausableConfig<websocketpp::config::asio_client>>;
using ServerEndpoint = websocketpp::server<PausableConfig<websocketpp::config::asio>>;

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
            if (auto self = weak.lock(); self && !self->detached_ && self->callbacks_.on_open)
                self->callbacks_.on_open();
        });
        con_->set_message_handler([weak](websocketpp::connection_hdl, auto msg) {
            auto self = weak.lock();
            if (!self || self->detached_ || !self->callbacks_.on_message) return;
            const bool binary = msg->get_opcode() == websocketpp::frame::opcode::binary;
            self->callbacks_.on_message(std::move(msg->get_raw_payload()), binary);
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
                if (code == websocketpp::close::status::abnormal_close) ec = to_std(self->con_->get_ec());
                self->report_close(ec, code, self->con_->get_remote_close_reason());
            }
        });
        con_->set_fail_handler([weak, keep = endpoint_](websocketpp::connection_hdl) {
            if (auto self = weak.lock()) {
                auto ec = to_std(self->con_->get_ec());
                // A refused upgrade: callers tell a missing route (404) from other failures.
                if constexpr (std::is_same_v<Endpoint, ClientEndpoint>) {
                    const int status = static_cast<int>(self->con_->get_response_code());
                    if (status >= 300 && status < 600) ec = std::error_code(status, http_status_category());
                }
                if (!ec) ec = std::make_error_code(std::errc::connection_refused);
                self->report_close(ec, websocketpp::close::status::abnormal_close, {});
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
    std::size_t buffered_amount() const override { return con_->get_buffered_amount(); }
    std::string remote_ip() const override {
        asio::error_code ec;
        auto ep = con_->get_raw_socket().remote_endpoint(ec);
        return ec ? std::string() : ep.address().to_string();
    }
    void detach() override { detached_ = true; }
    void set_callbacks(Callbacks callbacks) { callbacks_ = std::move(callbacks); }

private:
    void report_close(std::error_code ec, std::uint16_t code, std::string reason) {
        if (closed_ || detached_) return;
        closed_ = true;
        if (callbacks_.on_close) callbacks_.on_close(ec, code, std::move(reason));
    }

    std::shared_ptr<Endpoint> endpoint_;  // client sockets own their endpoint; null for server
    ConnectionPtr con_;
    Callbacks callbacks_;
    std::atomic<bool> detached_{false};
    bool closed_ = false;
};

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

std::shared_ptr<Socket> connect(asio::io_context& io, const std::string& url,
                                const std::map<std::string, std::string>& headers,
                                Callbacks callbacks) {
    auto endpoint = std::make_shared<ClientEndpoint>();
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
    auto socket = std::make_shared<WsSocket<ClientEndpoint>>(endpoint, con, std::move(callbacks));
    socket->bind();
    endpoint->connect(con);
    return socket;
}

struct Server::Impl {
    Impl(asio::io_context& io, Handlers h) : handlers(std::move(h)) {
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
            auto socket = std::make_shared<WsSocket<ServerEndpoint>>(nullptr, con, Callbacks{});
            Callbacks cb = handlers.on_accept(socket, con->get_resource());
            socket->set_callbacks(std::move(cb));
            socket->bind();
        });
    }
    Handlers handlers;
    ServerEndpoint endpoint;
};

Server::Server(asio::io_context& io, Handlers handlers)
    : impl_(std::make_unique<Impl>(io, std::move(handlers))) {}

Server::~Server() { stop_listening(); }

std::uint16_t Server::listen(std::uint16_t port) {
    // The error-code overloads: the throwing ones raise websocketpp::exception, which callers
    // outside this file cannot name.
    websocketpp::lib::error_code ec;
    impl_->endpoint.listen(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    if (!ec) impl_->endpoint.start_accept(ec);
    if (ec)
        throw std::system_error(to_std(ec), "cannot listen on 127.0.0.1:" + std::to_string(port));
    websocketpp::lib::asio::error_code aec;
    return impl_->endpoint.get_local_endpoint(aec).port();
}

void Server::stop_listening() {
    websocketpp::lib::error_code ec;
    if (impl_->endpoint.is_listening()) impl_->endpoint.stop_listening(ec);
}

}  // namespace iii::detail::transport
