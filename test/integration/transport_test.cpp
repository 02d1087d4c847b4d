// The WebSocket transport (lib/transport) over loopback: connect limits, send accounting,
// numeric hosts, and memory after a huge frame.

#include "run.hpp"
#include "transport/ws_transport.hpp"

#include <catch2/catch.hpp>

#include <asio/ip/tcp.hpp>

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;
using test_support::fast_options;
namespace transport = iii::detail::transport;

#if defined(__SANITIZE_ADDRESS__)
#define III_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define III_TEST_ASAN 1
#endif
#endif
#ifdef III_TEST_ASAN
extern "C" void __sanitizer_purge_allocator();  // the sanitizer runtime's (allocator_interface.h)
#endif

namespace {

/// ASan keeps freed memory in its quarantine (256 MiB by default), so RSS cannot drop under it
/// until the quarantine is released back to the OS; a no-op in other builds.
void release_sanitizer_quarantine() {
#ifdef III_TEST_ASAN
    __sanitizer_purge_allocator();
#endif
}

using Clock = std::chrono::steady_clock;

/// Accepts TCP connections on 127.0.0.1 and never answers: an upgrade that hangs forever.
class SilentListener {
public:
    SilentListener() {
        acceptor_.open(asio::ip::tcp::v4());
        acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
        acceptor_.listen();
        accept();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~SilentListener() {
        asio::post(io_, [this] {
            asio::error_code ignored;
            acceptor_.close(ignored);
            for (auto& s : accepted_) s->close(ignored);
        });
        work_.reset();
        thread_.join();
    }
    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    std::size_t accepted() const { return count_.load(); }

private:
    void accept() {
        auto socket = std::make_shared<asio::ip::tcp::socket>(io_);
        acceptor_.async_accept(*socket, [this, socket](asio::error_code ec) {
            if (ec) return;
            accepted_.push_back(socket);
            ++count_;
            accept();
        });
    }
    asio::io_context io_;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{io_.get_executor()};
    asio::ip::tcp::acceptor acceptor_{io_};
    std::vector<std::shared_ptr<asio::ip::tcp::socket>> accepted_;
    std::atomic<std::size_t> count_{0};
    std::thread thread_;
};

/// Runs `io` on the test thread until `done()` or `limit`.
bool run_until(asio::io_context& io, const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    const auto deadline = Clock::now() + limit;
    io.restart();
    while (!done() && Clock::now() < deadline) io.run_one_for(10ms);
    return done();
}

std::size_t thread_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] auto& entry : std::filesystem::directory_iterator("/proc/self/task")) ++n;
    return n;
}

std::size_t rss_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::size_t size = 0, resident = 0;
    statm >> size >> resident;
    return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

TEST_CASE("a connect_timeout above 5 s is honoured against a listener that never answers the upgrade",
          "[integration][transport][timeout]") {
    SilentListener listener;
    auto options = fast_options();
    options.timings.connect_timeout = 7000ms;
    options.reconnection.initial_delay_ms = 60000;  // only the first attempt matters
    std::atomic<std::int64_t> ended_ms{-1};
    const auto started = Clock::now();
    auto worker = iii::register_worker("ws://127.0.0.1:" + std::to_string(listener.port()), options);
    worker->on_connection_state_change([&](iii::ConnectionState state) {
        if (state == iii::ConnectionState::Reconnecting && ended_ms < 0)
            ended_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    });
    const auto deadline = Clock::now() + 12s;
    while (ended_ms < 0 && Clock::now() < deadline) std::this_thread::sleep_for(10ms);  // polls; bounded
    REQUIRE(ended_ms >= 0);
    CHECK(listener.accepted() == 1);
    // websocketpp's own open-handshake timer used to end every attempt at 5.0 s.
    CHECK(ended_ms >= 6900);
    CHECK(ended_ms < 8500);
}

TEST_CASE("a connect_timeout of 0 leaves an unanswered upgrade waiting", "[integration][transport][timeout]") {
    SilentListener listener;
    auto options = fast_options();
    options.timings.connect_timeout = 0ms;
    auto worker = iii::register_worker("ws://127.0.0.1:" + std::to_string(listener.port()), options);
    // Well past websocketpp's 5 s default: the attempt is still on.
    CHECK_FALSE(test_support::wait_state(*worker, iii::ConnectionState::Reconnecting, 6500ms));
    CHECK(worker->get_connection_state() == iii::ConnectionState::Connecting);
    CHECK(listener.accepted() == 1);
    CHECK_FALSE(worker->last_connect_error());
}

TEST_CASE("the transport's own open_timeout fails the attempt with timed_out", "[integration][transport][timeout]") {
    SilentListener listener;
    asio::io_context io;
    std::optional<std::error_code> closed;
    transport::Callbacks callbacks;
    callbacks.on_close = [&](std::error_code ec, std::uint16_t, std::string) { closed = ec; };
    transport::ConnectOptions options;
    options.open_timeout = 300ms;
    const auto started = Clock::now();
    auto socket = transport::connect(io, "ws://127.0.0.1:" + std::to_string(listener.port()), {},
                                     callbacks, options);
    REQUIRE(run_until(io, [&] { return closed.has_value(); }));
    const auto elapsed = Clock::now() - started;
    CHECK(*closed == std::errc::timed_out);
    CHECK(elapsed >= 290ms);
    CHECK(elapsed < 2s);
}

namespace {

/// A transport server on its own thread whose accepted sockets the test can reach.
struct EchoServer {
    asio::io_context io;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{io.get_executor()};
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<std::shared_ptr<transport::Socket>> sockets;
    std::atomic<std::size_t> received_bytes{0};
    transport::Server server{io, transport::Server::Handlers{
                                     nullptr,
                                     [this](const std::shared_ptr<transport::Socket>& s, const std::string&) {
                                         {
                                             std::lock_guard lock(mutex);
                                             sockets.push_back(s);
                                         }
                                         changed.notify_all();
                                         transport::Callbacks cb;
                                         cb.on_message = [this](std::string&& p, bool) { received_bytes += p.size(); };
                                         return cb;
                                     }}};
    std::uint16_t port = server.listen(0);
    std::thread thread{[this] { io.run(); }};

    ~EchoServer() {
        asio::post(io, [this] {
            server.stop_listening();
            for (auto& s : sockets) s->abort();
        });
        work.reset();
        thread.join();
    }
    std::shared_ptr<transport::Socket> first() {
        std::unique_lock lock(mutex);
        changed.wait_for(lock, 5s, [&] { return !sockets.empty(); });
        return sockets.empty() ? nullptr : sockets.front();
    }
};

}  // namespace

TEST_CASE("buffered_amount counts unwritten data, returns to zero, and ignores control frames",
          "[integration][transport]") {
    EchoServer server;
    asio::io_context io;
    bool open = false;
    transport::Callbacks callbacks;
    callbacks.on_open = [&] { open = true; };
    auto client = transport::connect(io, "ws://127.0.0.1:" + std::to_string(server.port), {}, callbacks);
    REQUIRE(run_until(io, [&] { return open; }));
    auto peer = server.first();
    REQUIRE(peer);
    peer->pause_reading();  // the kernel buffers fill, then our queue grows

    // Read from another thread while the io thread writes: the value is an atomic count, so
    // this is race-free (websocketpp's own counter is read without its lock).
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> max_seen{0};
    std::thread reader([&] {
        while (!stop) {
            const auto now = client->buffered_amount();
            if (now > max_seen) max_seen = now;
        }
    });
    const std::string block(1u << 20, 'x');
    constexpr std::size_t blocks = 32;
    for (std::size_t i = 0; i < blocks; ++i) REQUIRE_FALSE(client->send(block, true));
    CHECK(client->buffered_amount() > 0);
    CHECK(client->buffered_amount() <= blocks * block.size());
    // Pings from the server make this side write pongs: they must not count.
    for (int i = 0; i < 5; ++i) peer->ping();
    run_until(io, [] { return false; }, 100ms);
    // The queue cannot drain while the peer is paused: wait until the reader thread has seen it
    // (on a loaded machine it may not have had a time slice yet), not for a fixed time.
    REQUIRE(run_until(io, [&] { return max_seen > 0; }, 10s));
    peer->resume_reading();
    REQUIRE(run_until(io, [&] { return client->buffered_amount() == 0; }, 10s));
    REQUIRE(run_until(io, [&] { return server.received_bytes == blocks * block.size(); }, 10s));
    stop = true;
    reader.join();
    CHECK(max_seen <= blocks * block.size());
    CHECK(client->buffered_amount() == 0);
    client->detach();
    client->abort();
    run_until(io, [] { return false; }, 50ms);
}

TEST_CASE("a numeric host connects without starting Asio's resolver thread", "[integration][transport]") {
    EchoServer server;
    asio::io_context io;
    int opened = 0;
    transport::Callbacks callbacks;
    callbacks.on_open = [&] { ++opened; };
    const auto before = thread_count();
    auto numeric = transport::connect(io, "ws://127.0.0.1:" + std::to_string(server.port), {}, callbacks);
    REQUIRE(run_until(io, [&] { return opened == 1; }));
    CHECK(thread_count() == before);
    // A host name does resolve, and that starts the thread: the count above can tell.
    auto named = transport::connect(io, "ws://localhost:" + std::to_string(server.port), {}, callbacks);
    REQUIRE(run_until(io, [&] { return opened == 2; }));
    CHECK(thread_count() == before + 1);
    for (auto* s : {numeric.get(), named.get()}) {
        s->detach();
        s->abort();
    }
    run_until(io, [] { return false; }, 50ms);
}

TEST_CASE("after one 64 MiB frame the receive and decode buffers drop back and the connection stays up",
          "[integration][transport][memory]") {
    iii::testing::EngineOptions engine_options;
    engine_options.record_frames = false;  // the engine would keep a copy of the frame
    iii::testing::Engine engine(engine_options);
    auto options = fast_options();
    options.handler_threads = 1;
    auto worker = iii::register_worker(engine.url(), options);
    std::atomic<std::size_t> seen{0};
    std::atomic<int> calls{0};
    worker->register_function(iii::RegisterFunctionMessage::with_id("sink"),
                              [&](iii::Value in) -> iii::Value {
                                  seen = in["blob"].as_string().size();
                                  ++calls;
                                  return iii::Value(true);
                              });
    REQUIRE(test_support::wait_function(engine, "sink"));
    const auto worker_id = test_support::worker_id_of(*worker);
    auto invoke = [&](std::size_t size) {
        std::string frame = R"({"type":"invokefunction","invocation_id":")" + iii::detail::protocol::new_uuid() +
                            R"(","function_id":"sink","data":{"blob":")";
        frame.append(size, 'a');
        frame += "\"}}";
        engine.send_to(worker_id, frame);
    };
    invoke(1024);  // warm up every buffer at its ordinary size
    REQUIRE(engine.wait_for([&] { return calls == 1; }));
    const auto baseline = rss_bytes();

    constexpr std::size_t huge = 64u << 20;
    invoke(huge);
    REQUIRE(engine.wait_for([&] { return calls == 2; }, 30s));
    CHECK(seen == huge);
    // "A moment later": the payload's last copies are freed as the handler's frame unwinds.
    constexpr std::size_t bound = 48u << 20;
    const auto deadline = Clock::now() + 5s;
    while (rss_bytes() > baseline + bound && Clock::now() < deadline) {
        release_sanitizer_quarantine();
        std::this_thread::sleep_for(20ms);
    }
    const auto after = rss_bytes();
    WARN("RSS after a 64 MiB frame: baseline " << baseline / 1048576 << " MiB, a moment later "
                                                 << after / 1048576 << " MiB");
    CHECK(after <= baseline + bound);

    invoke(16);  // still connected, still served
    CHECK(engine.wait_for([&] { return calls == 3; }));
    CHECK(worker->get_connection_state() == iii::ConnectionState::Connected);
}
