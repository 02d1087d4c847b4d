// wss:// end to end: the test engine in TLS mode with a PKI made at test time (test_pki.hpp),
// and workers that must verify it (or be refused, with OpenSSL's reason).

#include "connection.hpp"
#include "run.hpp"
#include "test_pki.hpp"

#include <catch2/catch.hpp>

#include <asio/experimental/awaitable_operators.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using test_support::fast_options;
using test_support::run_sync;
using test_support::TestPki;
using test_support::wait_function;
using test_support::wait_state;

namespace {

iii::testing::EngineOptions tls_engine_options(bool wrong_names = false, bool mutual = false) {
    const auto& pki = TestPki::get();
    iii::testing::EngineOptions options;
    iii::testing::EngineTls tls;
    tls.cert_file = wrong_names ? pki.wrong_cert : pki.server_cert;
    tls.key_file = wrong_names ? pki.wrong_key : pki.server_key;
    if (mutual) tls.client_ca_file = pki.ca;
    options.tls = tls;
    return options;
}

iii::InitOptions trusting_options() {
    auto options = fast_options();
    options.tls.ca_file = TestPki::get().ca;
    return options;
}

/// Waits until `client` reports a failed connect; returns its message ("" on timeout).
std::string wait_connect_error(const iii::Client& client, std::chrono::milliseconds limit = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (auto error = client.last_connect_error()) return error->what();
        std::this_thread::sleep_for(5ms);  // polls client-side state; bounded by the deadline
    }
    return {};
}

void register_echo(iii::Client& client) {
    client.register_function(iii::RegisterFunctionMessage::with_id("echo"),
                             [](iii::Value in) -> asio::awaitable<iii::Value> { co_return in["text"]; });
}

/// Collects what the SDK writes to stderr (its log) while alive.
class StderrCapture {
public:
    StderrCapture() {
        std::fflush(stderr);
        char name[] = "/tmp/iii-stderr-XXXXXX";
        fd_ = mkstemp(name);
        path_ = name;
        saved_ = dup(2);
        dup2(fd_, 2);
    }
    ~StderrCapture() {
        restore();
        std::remove(path_.c_str());
    }
    std::string text() {
        std::fflush(stderr);
        std::ifstream in(path_);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }
    void restore() {
        if (saved_ < 0) return;
        std::fflush(stderr);
        dup2(saved_, 2);
        close(saved_);
        close(fd_);
        saved_ = -1;
    }

private:
    int fd_ = -1, saved_ = -1;
    std::string path_;
};

std::size_t count(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
}

}  // namespace

TEST_CASE("a worker trusting the private CA calls another over wss://", "[integration][tls]") {
    iii::testing::Engine engine(tls_engine_options());
    REQUIRE(engine.url().rfind("wss://127.0.0.1:", 0) == 0);
    auto callee = iii::register_worker(engine.url(), trusting_options());
    // The same engine by DNS name: the certificate names localhost too.
    auto caller = iii::register_worker("wss://localhost:" + std::to_string(engine.port()),
                                       trusting_options());
    register_echo(*callee);
    REQUIRE(wait_function(engine, "echo"));
    asio::io_context ioc;
    iii::TriggerRequest request("echo", iii::Value{{"text", "over TLS"}});
    CHECK(run_sync(ioc, caller->trigger(std::move(request))) == iii::Value("over TLS"));
    CHECK_FALSE(caller->last_connect_error());
    CHECK_FALSE(callee->last_connect_error());
}

// websocketpp takes an operation_aborted completion of the TLS shutdown for its own shutdown
// timer and waits for that timer (5 s); Asio's TLS shutdown completes so after every clean
// close_notify exchange on the engine's side. The engine must see the close at once.
TEST_CASE("the engine sees a wss:// worker's close at once, not after websocketpp's 5 s shutdown timer",
          "[integration][tls]") {
    iii::testing::Engine engine(tls_engine_options());
    auto worker = iii::register_worker(engine.url(), trusting_options());
    const std::string id = test_support::worker_id_of(*worker);
    worker->shutdown();
    CHECK(engine.wait_for([&] { return engine.close_code(id) == std::optional<std::uint16_t>(1000); },
                          std::chrono::seconds(3)));
}

// OpenSSL caches a certificate's decoded extensions on first use; with one context shared by
// every client of the same settings, that first use can come from several io threads at once.
// Each round gets fresh trust (a new ca_pem text or CA directory path, so a new context and new
// certificate objects) and four workers that verify the engine at the same time. Under
// ThreadSanitizer a race there fails the test.
TEST_CASE("workers with the same fresh TLS settings verify the engine concurrently",
          "[integration][tls]") {
    iii::testing::Engine engine(tls_engine_options());
    const auto& pki = TestPki::get();
    const std::string ca_pem = pki.read(pki.ca);
    for (int round = 0; round < 6; ++round) {
        auto options = fast_options();
        options.tls.system_trust_store = false;
        const std::string dir = pki.ca_dir + "-" + std::to_string(round);
        if (round % 2 == 0) {
            options.tls.ca_pem = ca_pem + "# round " + std::to_string(round) + "\n";
        } else {
            std::filesystem::remove_all(dir);
            std::filesystem::copy(pki.ca_dir, dir, std::filesystem::copy_options::copy_symlinks |
                                                         std::filesystem::copy_options::recursive);
            options.tls.ca_dir = dir;
        }
        std::vector<std::shared_ptr<iii::Client>> workers;
        for (int i = 0; i < 4; ++i) workers.push_back(iii::register_worker(engine.url(), options));
        for (auto& worker : workers) CHECK(wait_state(*worker, iii::ConnectionState::Connected));
        workers.clear();
        std::filesystem::remove_all(dir);
    }
}

TEST_CASE("without the CA the handshake fails with OpenSSL's reason, for calls, listeners and the log",
          "[integration][tls]") {
    iii::testing::Engine engine(tls_engine_options());
    auto options = fast_options();  // system trust store only: the test CA is not in it
    options.invocation_timeout = 600ms;
    StderrCapture log;
    auto worker = iii::register_worker(engine.url(), options);
    std::mutex mutex;
    std::vector<std::string> seen_by_listener;
    worker->on_connection_state_change([&, w = worker.get()](iii::ConnectionState state) {
        if (state != iii::ConnectionState::Reconnecting) return;
        std::lock_guard lock(mutex);
        if (auto error = w->last_connect_error()) seen_by_listener.push_back(error->what());
    });
    const auto error = wait_connect_error(*worker);
    CHECK_THAT(error, Catch::Contains("TLS handshake failed: certificate verify failed: "));
    CHECK_THAT(error, Catch::Contains("local issuer certificate") || Catch::Contains("self-signed"));
    CHECK(worker->last_connect_error()->errc() == iii::Errc::WebSocket);

    // A call waiting for the connection names the cause when it times out.
    asio::io_context ioc;
    iii::TriggerRequest request("anything", iii::Value::object());
    try {
        run_sync(ioc, worker->trigger(std::move(request)));
        FAIL("the call succeeded without a connection");
    } catch (const iii::Error& e) {
        CHECK(e.errc() == iii::Errc::Timeout);
        CHECK_THAT(e.what(), Catch::Contains("not connected: TLS handshake failed: certificate verify failed"));
    }
    CHECK(worker->get_connection_state() != iii::ConnectionState::Connected);
    CHECK(engine.worker_ids().empty());
    {
        std::lock_guard lock(mutex);
        REQUIRE_FALSE(seen_by_listener.empty());
        CHECK_THAT(seen_by_listener.front(), Catch::Contains("certificate verify failed"));
    }
    worker->shutdown();
    log.restore();
    CHECK_THAT(log.text(), Catch::Contains("[iii warn] cannot connect to wss://127.0.0.1:") &&
                               Catch::Contains("certificate verify failed"));
}

TEST_CASE("a certificate for other names is refused: IP address and host name mismatch",
          "[integration][tls]") {
    iii::testing::Engine engine(tls_engine_options(/*wrong_names=*/true));
    auto by_ip = iii::register_worker(engine.url(), trusting_options());
    auto by_name = iii::register_worker("wss://localhost:" + std::to_string(engine.port()),
                                        trusting_options());
    CHECK_THAT(wait_connect_error(*by_ip), Catch::Contains("certificate verify failed: IP address mismatch"));
    CHECK_THAT(wait_connect_error(*by_name), Catch::Contains("certificate verify failed: hostname mismatch"));
    CHECK(engine.worker_ids().empty());
}

TEST_CASE("an engine requiring mutual TLS refuses a worker without a certificate and accepts one with it",
          "[integration][tls]") {
    iii::testing::Engine engine(tls_engine_options(false, /*mutual=*/true));
    auto anonymous = iii::register_worker(engine.url(), trusting_options());
    CHECK_THAT(wait_connect_error(*anonymous), Catch::Contains("certificate required") &&
                                                   Catch::Contains("requires a client certificate"));
    auto options = trusting_options();
    options.tls.cert_file = TestPki::get().client_cert;
    options.tls.key_file = TestPki::get().client_key;
    auto identified = iii::register_worker(engine.url(), options);
    register_echo(*identified);
    REQUIRE(wait_function(engine, "echo"));
    CHECK(wait_state(*identified, iii::ConnectionState::Connected));
    CHECK(anonymous->get_connection_state() != iii::ConnectionState::Connected);
}

TEST_CASE("skip_verification connects to an untrusted engine and warns at every connect",
          "[integration][tls]") {
    iii::testing::Engine engine(tls_engine_options(/*wrong_names=*/true));
    auto options = fast_options();
    options.tls.skip_verification = true;
    StderrCapture log;
    auto worker = iii::register_worker(engine.url(), options);
    REQUIRE(wait_state(*worker, iii::ConnectionState::Connected));
    const auto first = test_support::worker_id_of(*worker);
    engine.drop(first);  // a second connect
    REQUIRE(engine.wait_for([&] {
        auto ids = engine.worker_ids();
        return ids.size() == 1 && ids[0] != first;
    }));
    REQUIRE(wait_state(*worker, iii::ConnectionState::Connected));
    worker->shutdown();
    log.restore();
    CHECK(count(log.text(), "TLS certificate verification is off") == 2);
}

TEST_CASE("the trust can come from a CA directory, in-memory PEM or $SSL_CERT_FILE", "[integration][tls]") {
    iii::testing::Engine engine(tls_engine_options());
    const auto& pki = TestPki::get();
    auto connects = [&](iii::InitOptions options) {
        auto worker = iii::register_worker(engine.url(), options);
        return wait_state(*worker, iii::ConnectionState::Connected);
    };
    auto dir = fast_options();
    dir.tls.ca_dir = pki.ca_dir;
    CHECK(connects(dir));
    auto pem = fast_options();
    pem.tls.ca_pem = pki.read(pki.ca);
    CHECK(connects(pem));
    auto only = fast_options();
    only.tls.ca_file = pki.ca;
    only.tls.system_trust_store = false;
    only.tls.min_version = iii::TlsVersion::Tls13;
    CHECK(connects(only));

    ::setenv("SSL_CERT_FILE", pki.ca.c_str(), 1);
    CHECK(connects(fast_options()));
    ::unsetenv("SSL_CERT_FILE");
}

TEST_CASE("TLS settings that cannot be loaded make register_worker throw Runtime naming the file",
          "[integration][tls]") {
    auto expect_runtime = [](iii::InitOptions options, const std::string& needle) {
        try {
            iii::register_worker("wss://127.0.0.1:1", options);
            FAIL("register_worker accepted bad TLS settings");
        } catch (const iii::Error& e) {
            CHECK(e.errc() == iii::Errc::Runtime);
            CHECK_THAT(e.what(), Catch::Contains(needle));
        }
    };
    auto missing = fast_options();
    missing.tls.ca_file = "/nonexistent/ca.pem";
    expect_runtime(missing, "cannot load CA file '/nonexistent/ca.pem'");
    auto garbage = fast_options();
    garbage.tls.ca_pem = "not a certificate";
    expect_runtime(garbage, "ca_pem holds no PEM certificate");
    auto half = fast_options();
    half.tls.cert_file = TestPki::get().client_cert;
    expect_runtime(half, "needs both cert_file and key_file");
    auto mismatched = fast_options();
    mismatched.tls.cert_file = TestPki::get().client_cert;
    mismatched.tls.key_file = TestPki::get().server_key;
    expect_runtime(mismatched, "key values mismatch");
}

TEST_CASE("over wss:// a worker reconnects after an engine restart", "[integration][tls]") {
    auto engine = std::make_unique<iii::testing::Engine>(tls_engine_options());
    const auto port = engine->port();
    auto worker = iii::register_worker(engine->url(), trusting_options());
    register_echo(*worker);
    REQUIRE(wait_function(*engine, "echo"));
    engine.reset();
    REQUIRE(wait_state(*worker, iii::ConnectionState::Reconnecting));
    auto options = tls_engine_options();
    options.port = port;
    engine = std::make_unique<iii::testing::Engine>(options);
    REQUIRE(wait_function(*engine, "echo"));
    REQUIRE(wait_state(*worker, iii::ConnectionState::Connected));
    auto caller = iii::register_worker(engine->url(), trusting_options());
    asio::io_context ioc;
    iii::TriggerRequest request("echo", iii::Value{{"text", "again"}});
    CHECK(run_sync(ioc, caller->trigger(std::move(request))) == iii::Value("again"));
}

namespace {

asio::awaitable<iii::Value> channel_round_trip(iii::Client& a, std::size_t total) {
    auto channel = co_await iii::create_channel(a);
    iii::Value payload = iii::Value::object();
    payload.set("input", channel.reader_ref.to_value());
    auto call = a.trigger(iii::TriggerRequest("count", payload));
    auto write = [&]() -> asio::awaitable<void> {
        std::vector<std::uint8_t> block(256 * 1024, 0x5a);
        for (std::size_t sent = 0; sent < total; sent += block.size()) {
            std::span<const std::uint8_t> bytes(block);
            co_await channel.writer.write(bytes);
        }
        co_await channel.writer.close();
    };
    auto both = std::move(call) && write();
    co_return co_await std::move(both);
}

}  // namespace

TEST_CASE("a channel streams over wss:// with the engine URL's scheme, host and port",
          "[integration][tls][channels]") {
    iii::testing::Engine engine(tls_engine_options());
    auto slow = trusting_options();
    slow.invocation_timeout = 30s;  // a loaded machine: 8 MiB through TLS twice
    auto a = iii::register_worker("wss://localhost:" + std::to_string(engine.port()), slow);
    auto b = iii::register_worker(engine.url(), trusting_options());
    b->register_function(iii::RegisterFunctionMessage::with_id("count"),
                         [c = b.get()](iii::Value in) -> asio::awaitable<iii::Value> {
                             iii::ChannelReader reader(*c, iii::StreamChannelRef::from_value(in.at("input")));
                             std::uint64_t bytes = 0;
                             while (auto chunk = co_await reader.next_binary()) bytes += chunk->size();
                             co_return iii::Value(bytes);
                         });
    REQUIRE(wait_function(engine, "count"));
    asio::io_context ioc;
    constexpr std::size_t total = 8u << 20;
    CHECK(run_sync(ioc, channel_round_trip(*a, total), 30s) == iii::Value(std::uint64_t{total}));
}

TEST_CASE("telemetry reaches the engine over wss://", "[integration][tls][telemetry]") {
    iii::testing::Engine engine(tls_engine_options());
    auto options = trusting_options();
    iii::OtelConfig otel;
    otel.enabled = true;
    otel.metrics_enabled = false;
    otel.logs_flush_interval_ms = 5;
    otel.engine_ws_url = engine.url() + "/otel";
    options.otel = otel;
    auto worker = iii::register_worker(engine.url(), options);
    worker->register_function(iii::RegisterFunctionMessage::with_id("log.tls"),
                              [](iii::Value) -> asio::awaitable<iii::Value> {
                                  iii::Logger().info("hello over wss");
                                  co_return iii::Value(true);
                              });
    REQUIRE(wait_function(engine, "log.tls"));
    auto caller = iii::register_worker(engine.url(), trusting_options());
    asio::io_context ioc;
    iii::TriggerRequest request("log.tls", iii::Value::object());
    CHECK(run_sync(ioc, caller->trigger(std::move(request))) == iii::Value(true));
    CHECK(engine.wait_for([&] {
        for (auto& r : engine.log_records())
            if (r["body"]["stringValue"] == iii::Value("hello over wss")) return true;
        return false;
    }));
}


TEST_CASE("the README's TLS snippet connects with a private CA and a client certificate",
          "[integration][tls][readme]") {
    iii::testing::Engine engine(tls_engine_options(false, /*mutual=*/true));
    const auto port = engine.port();
    const std::string ca_pem = TestPki::get().ca;
    const std::string worker_pem = TestPki::get().client_cert;
    const std::string worker_key = TestPki::get().client_key;
    // ---- README.md, "TLS (wss://)": verbatim ----
    iii::InitOptions options;
    options.tls.ca_file = ca_pem;          // trust a private CA, besides the system store
    options.tls.cert_file = worker_pem;    // mutual TLS: this worker's certificate chain...
    options.tls.key_file = worker_key;     // ...and its unencrypted PEM key
    auto iii = iii::register_worker("wss://localhost:" + std::to_string(port), options);
    // ---- end ----
    CHECK(wait_state(*iii, iii::ConnectionState::Connected));
}

TEST_CASE("min_version Tls13 refuses a TLS 1.2-only engine that the default accepts", "[integration][tls]") {
    auto engine_options = tls_engine_options();
    engine_options.tls->tls12_only = true;
    iii::testing::Engine engine(engine_options);
    auto strict_options = trusting_options();
    strict_options.tls.min_version = iii::TlsVersion::Tls13;
    auto strict = iii::register_worker(engine.url(), strict_options);
    CHECK_THAT(wait_connect_error(*strict), Catch::Contains("TLS handshake failed: ") &&
                                                Catch::Contains("see TlsOptions::min_version"));
    auto lenient = iii::register_worker(engine.url(), trusting_options());  // TLS 1.2 minimum
    CHECK(wait_state(*lenient, iii::ConnectionState::Connected));
    CHECK(strict->get_connection_state() != iii::ConnectionState::Connected);
}
