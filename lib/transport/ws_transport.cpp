#include "transport/ws_transport.hpp"

#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>
#include <websocketpp/server.hpp>

#include <atomic>

namespace iii::detail::transport {
namespace {

using ClientEndpoint = websocketpp::client<websocketpp::config::asio_client>;
using ServerEndpoint = websocketpp::server<websocketpp::config::asio>;

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
        con_->set_close_handler([weak](websocketpp::connection_hdl) {
            if (auto self = weak.lock()) {
                auto code = self->con_->get_remote_close_code();
                std::error_code ec;
                if (code == websocketpp::close::status::abnormal_close) ec = to_std(self->con_->get_ec());
                self->report_close(ec, code, self->con_->get_remote_close_reason());
            }
        });
        con_->set_fail_handler([weak](websocketpp::connection_hdl) {
            if (auto self = weak.lock()) {
                auto ec = to_std(self->con_->get_ec());
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
    void pause_reading() override { con_->pause_reading(); }
    void resume_reading() override { con_->resume_reading(); }
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
    impl_->endpoint.listen(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    impl_->endpoint.start_accept();
    websocketpp::lib::asio::error_code ec;
    return impl_->endpoint.get_local_endpoint(ec).port();
}

void Server::stop_listening() {
    websocketpp::lib::error_code ec;
    if (impl_->endpoint.is_listening()) impl_->endpoint.stop_listening(ec);
}

}  // namespace iii::detail::transport
