// Round-trip benchmark: an `echo` function on one worker, called from another worker through
// the engine, against the same three-process path without the SDK (the floor) and a one-hop
// raw WebSocket echo (the baseline).
//
//   bench_roundtrip [--calls N] [--inflight N] [--payload-bytes N] [--warmup N] [--rounds N]
//                   [--json] [--inline-handlers] [--tls]
//                   [--url ws://HOST:PORT [--engine-pid PID] | --engine PATH]
//
// Paths, each measured sequential (one call at a time) and pipelined (N in flight, default 64):
//
// - SDK: this process is the caller worker; the echo worker is this same binary re-executed
//   with the hidden `--role echo --url URL` (so that each worker's CPU time is measured on its
//   own); the engine is `iii-test-engine` (spawned from ../lib/testing/ next to this binary, or
//   --engine PATH) unless --url names an external one.
// - floor: the same three processes without the SDK. A websocketpp client (a thread of this
//   process) sends the invokefunction frame the echo worker receives from the engine, as text,
//   to a websocketpp relay process (`--role floor-relay`), which forwards it to a websocketpp
//   echo server process (`--role floor-echo`) that answers with the invocationresult frame the
//   caller receives; the relay forwards that back. Same frame sizes, two WebSocket hops each
//   way, no JSON parsing, no routing: what our WebSocket stack costs on this path.
// - raw: the JSON payload alone echoed over one plain websocketpp connection between two threads
//   of this process (one hop each way).
// - with --tls, also SDK and raw over wss://: a second iii-test-engine in TLS mode and a second
//   echo worker, a TLS raw echo server, a throw-away CA and certificate made by `openssl`; the
//   cost of TLS is reported as wss:// / ws:// ratios of the same rounds.
//
// All of them go through lib/transport: websocketpp, with the corrected frame code unless the
// build was configured with -Dwebsocketpp_fast_frames=false (tools/fix_websocketpp.py).
//
// Rounds: each round runs every path and phase, after a warm-up of its own, rotating the order
// of the paths from round to round. Figures are medians over the rounds; ratios are medians of
// the per-round ratios (sequential latency on a shared machine swings 2x with how idle the CPUs
// are; the ratio of two paths measured a few seconds apart does not).
//
// Per phase: calls/s, p50/p99/p99.9 latency (steady_clock per call) and CPU time per call of
// each process: the caller (getrusage), the echo worker (getrusage in the child, reported over
// its stdout when the parent writes "cpu" to its stdin), the engine when its pid is known, the
// relay and the floor's echo server (/proc/<pid>/task/*/schedstat); the floor client and both
// raw threads per thread (RUSAGE_THREAD). SDK phases also count the heap allocations (and
// bytes) per call of the caller and of the echo worker (every malloc of the process,
// samples/alloc_counter.cpp; not in sanitizer builds) and sample both processes' RSS before and
// after the calls: `--rounds 1 --calls 1000000` shows whether memory stays flat.

#include <cstddef>  // first: see lib/transport/ws_transport.hpp

#include <iii/iii.hpp>

#include "alloc_counter.hpp"
#include "bench_support.hpp"
#include "transport/ws_transport.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using bench::Child;
namespace transport = iii::detail::transport;

// ---- options ---------------------------------------------------------------------------------

struct Options {
    std::size_t calls = 20000;
    std::size_t inflight = 64;
    std::size_t payload_bytes = 100;
    std::size_t rounds = 3;
    std::optional<std::size_t> warmup;
    bool json = false;
    bool inline_handlers = false;  // InitOptions::handlers_on_io_thread (no effect any more)
    std::string url;
    std::string engine;
    pid_t engine_pid = -1;  // --engine-pid: the external engine's CPU is measured too
    std::string role;  // hidden: "echo", "floor-relay" or "floor-echo" in the child processes
    bool tls = false;  // --tls: SDK and raw over wss:// too
    bool sdk_only = false;  // --sdk-only: no floor or raw paths (long runs: RSS over 1M calls)
    bool otel = false; // --otel: the SDK path with telemetry on too (or, for --role echo, this one)
    std::string ca;    // hidden: the CA file the echo worker trusts (wss://)
};

void usage(std::FILE* out) {
    std::fputs(
        "usage: bench_roundtrip [options]\n"
        "  --calls N          measured calls per phase, path and round (default 20000)\n"
        "  --inflight N       calls in flight in the pipelined phase (default 64)\n"
        "  --payload-bytes N  size of the JSON payload {\"data\":\"...\"} (default 100)\n"
        "  --warmup N         warm-up calls before each phase (default calls/10, 100..2000)\n"
        "  --rounds N         rounds over all paths; medians (default 3)\n"
        "  --json             print one JSON object instead of the table\n"
        "  --inline-handlers  sets InitOptions::handlers_on_io_thread in the echo worker;\n"
        "                     no effect (coroutine handlers run on the io thread anyway),\n"
        "                     kept so that older command lines still run\n"
        "  --sdk-only         only the SDK paths: no floor or raw baseline, no ratios to\n"
        "                     them (for runs long enough that the idle SDK connection\n"
        "                     would time out during the other paths, e.g. RSS over 1M calls)\n"
        "  --otel             also measure the SDK path with telemetry on at both ends\n"
        "                     (its own engine) and report on / off ratios\n"
        "  --tls              also measure SDK and raw over wss:// (needs `openssl`) and\n"
        "                     report wss:// / ws:// ratios\n"
        "  --url URL          use the engine at URL (ws://host:port) instead of spawning one\n"
        "  --engine-pid PID   with --url: that engine's process, to measure its CPU time\n"
        "  --engine PATH      the iii-test-engine executable to spawn\n"
        "                     (default: ../lib/testing/iii-test-engine next to this binary)\n",
        out);
}

std::size_t parse_count(const char* name, const std::string& text, std::size_t min) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || text[0] == '-' || value < min)
        throw std::invalid_argument(std::string(name) + " needs a number >= " + std::to_string(min) +
                                    ", got '" + text + "'");
    return static_cast<std::size_t>(value);
}

Options parse_options(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            usage(stdout);
            std::exit(0);
        }
        if (arg == "--inline-handlers") {
            o.inline_handlers = true;
            continue;
        }
        if (arg == "--json") {
            o.json = true;
            continue;
        }
        if (arg == "--tls") {
            o.tls = true;
            continue;
        }
        if (arg == "--otel") {
            o.otel = true;
            continue;
        }
        if (arg == "--sdk-only") {
            o.sdk_only = true;
            continue;
        }
        if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
        const std::string value = argv[++i];
        if (arg == "--calls") o.calls = parse_count("--calls", value, 1);
        else if (arg == "--inflight") o.inflight = parse_count("--inflight", value, 1);
        else if (arg == "--payload-bytes") o.payload_bytes = parse_count("--payload-bytes", value, 0);
        else if (arg == "--warmup") o.warmup = parse_count("--warmup", value, 0);
        else if (arg == "--rounds") o.rounds = parse_count("--rounds", value, 1);
        else if (arg == "--url") o.url = value;
        else if (arg == "--engine") o.engine = value;
        else if (arg == "--engine-pid")
            o.engine_pid = static_cast<pid_t>(parse_count("--engine-pid", value, 1));
        else if (arg == "--role") o.role = value;
        else if (arg == "--ca") o.ca = value;
        else throw std::invalid_argument("unknown option '" + arg + "'");
    }
    if (!o.warmup) o.warmup = std::clamp<std::size_t>(o.calls / 10, 100, 2000);
    return o;
}

iii::InitOptions worker_options(bool handlers_on_io_thread = false, const std::string& ca = {},
                                bool with_telemetry = false) {
    iii::InitOptions init;
    init.handlers_on_io_thread = handlers_on_io_thread;
    init.tls.ca_file = ca;
    // Nothing but the calls on the wire, unless `with_telemetry` (the --otel path) or III_BENCH_OTEL=1
    // (inherited by the echo worker): then telemetry at its defaults (a span per call,
    // metrics), to measure what it costs.
    const char* with_otel = std::getenv("III_BENCH_OTEL");
    if (with_telemetry || (with_otel && std::string_view(with_otel) == "1")) return init;
    iii::OtelConfig otel;
    otel.enabled = false;
    init.otel = otel;
    return init;
}

// `{"data":"abc..."}` of `bytes` bytes of JSON text (at least the 11 of the empty object).
iii::Value make_payload(std::size_t bytes) {
    static constexpr std::string_view alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    const std::size_t overhead = std::string_view(R"({"data":""})").size();
    std::string data;
    for (std::size_t i = 0; i + overhead < bytes; ++i) data.push_back(alphabet[i % alphabet.size()]);
    iii::Value payload = iii::Value::object();
    payload.set("data", std::move(data));
    return payload;
}

// The floor's two frames: what the echo worker receives from the engine (the caller's
// invokefunction with `_caller_worker_id` added to the payload) and what the caller receives
// (the echo's invocationresult, whose result is that payload). Written out by hand, in the
// engine's field order, so that the floor does not depend on the SDK's encoder.
struct FloorFrames {
    std::string request;
    std::string reply;
};

FloorFrames floor_frames(std::size_t payload_bytes) {
    const std::string payload = make_payload(payload_bytes).dump();  // {"data":"..."}
    const std::string with_caller =
        payload.substr(0, payload.size() - 1) + R"(,"_caller_worker_id":"5c0e3a52-1f9b-4c1e-9a53-0d2b6f1f7a11"})";
    const std::string id = R"("invocation_id":"0f6d3c1e-8a4b-4e2f-b1c7-93d5a7e2c4f8")";
    return {R"({"type":"invokefunction",)" + id + R"(,"function_id":"echo","data":)" + with_caller + "}",
            R"({"type":"invocationresult",)" + id + R"(,"function_id":"echo","result":)" + with_caller + "}"};
}

// This process's resident set (VmRSS of /proc/self/status), kB; 0 when unreadable.
std::int64_t rss_kb() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
    return 0;
}

// One process's cumulative counters: CPU µs, heap allocations and bytes (alloc_counter.hpp),
// and its resident set now.
struct Usage {
    std::int64_t cpu_us = 0;
    std::uint64_t allocations = 0;
    std::uint64_t allocated_bytes = 0;
    std::int64_t rss_kb = 0;
};

Usage self_usage() {
    const bench::AllocationCount a = bench::allocation_count();
    return {bench::rusage_us(RUSAGE_SELF), a.allocations, a.bytes, rss_kb()};
}

// The echo worker's, asked over its stdin/stdout ("cpu" -> "cpu US ALLOCATIONS BYTES RSS_KB").
Usage echo_usage(Child& echo) {
    echo.write_line("cpu");
    for (;;) {
        auto line = echo.read_line(std::chrono::seconds(5));
        if (!line) throw std::runtime_error("the echo worker did not report its CPU time");
        if (line->rfind("cpu ", 0) != 0) continue;
        Usage u;
        long long cpu = 0, rss = 0;
        unsigned long long allocations = 0, bytes = 0;
        if (std::sscanf(line->c_str() + 4, "%lld %llu %llu %lld", &cpu, &allocations, &bytes, &rss) != 4)
            throw std::runtime_error("the echo worker's usage line is malformed: " + *line);
        u.cpu_us = cpu;
        u.allocations = allocations;
        u.allocated_bytes = bytes;
        u.rss_kb = rss;
        return u;
    }
}

// ---- statistics ------------------------------------------------------------------------------

struct Phase {
    std::string mode;  // "sequential" or "pipelined"
    std::size_t calls = 0;
    std::size_t inflight = 1;
    double seconds = 0;
    double calls_per_s = 0;
    double p50_us = 0, p99_us = 0, p999_us = 0, mean_us = 0, max_us = 0;
    std::vector<std::pair<double, double>> cdf;  // (quantile, µs): the latency distribution
    std::vector<std::pair<std::string, double>> cpu_us_per_call;
    // SDK paths only: heap allocations and bytes per call ("caller", "echo"), and each
    // process's resident set before and after the measured calls (kB).
    std::vector<std::pair<std::string, double>> allocations_per_call;
    std::vector<std::pair<std::string, double>> allocated_bytes_per_call;
    std::vector<std::pair<std::string, std::pair<std::int64_t, std::int64_t>>> rss_kb;

    std::optional<double> cpu(const std::string& who) const {
        for (const auto& [name, us] : cpu_us_per_call)
            if (name == who) return us;
        return std::nullopt;
    }
};

Phase summarize(std::string mode, std::size_t inflight, std::vector<std::int64_t>& latency_ns,
                Clock::duration elapsed) {
    Phase p;
    p.mode = std::move(mode);
    p.inflight = inflight;
    p.calls = latency_ns.size();
    p.seconds = std::chrono::duration<double>(elapsed).count();
    p.calls_per_s = p.seconds > 0 ? static_cast<double>(p.calls) / p.seconds : 0;
    if (latency_ns.empty()) return p;
    std::sort(latency_ns.begin(), latency_ns.end());
    auto percentile = [&](double q) {  // nearest rank
        auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(latency_ns.size())));
        rank = std::clamp<std::size_t>(rank, 1, latency_ns.size());
        return static_cast<double>(latency_ns[rank - 1]) / 1000.0;
    };
    p.p50_us = percentile(0.50);
    p.p99_us = percentile(0.99);
    p.p999_us = percentile(0.999);
    // Enough points for bench_plot.py to draw the CDF, denser in the tail.
    for (int i = 0; i <= 100; ++i) p.cdf.emplace_back(i / 100.0, percentile(i / 100.0));
    for (double q : {0.995, 0.999, 0.9995, 0.9999}) p.cdf.emplace_back(q, percentile(q));
    std::sort(p.cdf.begin(), p.cdf.end());
    double sum = 0;
    for (auto ns : latency_ns) sum += static_cast<double>(ns);
    p.mean_us = sum / static_cast<double>(latency_ns.size()) / 1000.0;
    p.max_us = static_cast<double>(latency_ns.back()) / 1000.0;
    return p;
}

std::int64_t ns_since(Clock::time_point t0) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Per metric, the median over rounds of one path's phases (all of one mode).
Phase median_phase(const std::vector<Phase>& rounds) {
    Phase m = rounds.front();
    auto med = [&](auto field) {
        std::vector<double> v;
        for (const auto& p : rounds) v.push_back(field(p));
        return median(std::move(v));
    };
    m.seconds = med([](const Phase& p) { return p.seconds; });
    m.calls_per_s = med([](const Phase& p) { return p.calls_per_s; });
    m.p50_us = med([](const Phase& p) { return p.p50_us; });
    m.p99_us = med([](const Phase& p) { return p.p99_us; });
    m.p999_us = med([](const Phase& p) { return p.p999_us; });
    m.mean_us = med([](const Phase& p) { return p.mean_us; });
    m.max_us = med([](const Phase& p) { return p.max_us; });
    for (auto& [who, us] : m.cpu_us_per_call) {
        std::vector<double> v;
        for (const auto& p : rounds)
            if (auto c = p.cpu(who)) v.push_back(*c);
        us = median(std::move(v));
    }
    auto med_named = [&](auto member) {
        for (std::size_t i = 0; i < (m.*member).size(); ++i) {
            std::vector<double> v;
            for (const auto& p : rounds)
                if (i < (p.*member).size()) v.push_back((p.*member)[i].second);
            (m.*member)[i].second = median(std::move(v));
        }
    };
    med_named(&Phase::allocations_per_call);
    med_named(&Phase::allocated_bytes_per_call);
    // RSS: the first round's start and the last round's end (growth over the whole run).
    for (std::size_t i = 0; i < m.rss_kb.size(); ++i)
        if (i < rounds.back().rss_kb.size()) m.rss_kb[i].second.second = rounds.back().rss_kb[i].second.second;
    // The distribution point by point: each quantile's median over the rounds.
    for (std::size_t i = 0; i < m.cdf.size(); ++i) {
        std::vector<double> v;
        for (const auto& p : rounds)
            if (i < p.cdf.size()) v.push_back(p.cdf[i].second);
        m.cdf[i].second = median(std::move(v));
    }
    return m;
}

// ---- raw WebSocket paths (floor and baseline): a client on its own io thread -----------------

// Sends `request` and waits for one reply per request, up to `window` in flight, on one
// connection: replies arrive in send order, so the k-th reply belongs to the k-th send. Phases
// are started from the bench's thread and block it until done; CPU is the io thread's own.
class RawDriver {
public:
    struct Result {
        std::vector<std::int64_t> latency_ns;
        Clock::duration elapsed{};
        std::int64_t thread_cpu_us = 0;
    };

    RawDriver(const std::string& url, std::string request, std::size_t reply_size,
              const transport::ConnectOptions& options = {})
        : request_(std::move(request)), reply_size_(reply_size), work_(io_.get_executor()) {
        std::promise<void> opened;
        auto open_result = opened.get_future();
        transport::Callbacks cb;
        cb.on_open = [this, &opened] {
            opened.set_value();
            open_ = true;
        };
        cb.on_message = [this](std::string&& data, bool) { on_reply(data); };
        cb.on_close = [this, &opened](std::error_code ec, std::uint16_t, std::string) {
            const std::string what = "raw connection closed" + (ec ? ": " + ec.message() : std::string());
            if (!open_) opened.set_exception(std::make_exception_ptr(std::runtime_error(what)));
            else fail(what);
        };
        socket_ = transport::connect(io_, url, {}, std::move(cb), options);
        thread_ = std::thread([this] { io_.run(); });
        if (open_result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
            shutdown();
            throw std::runtime_error("no WebSocket connection to " + url);
        }
        try {
            open_result.get();
        } catch (...) {
            shutdown();
            throw;
        }
    }
    RawDriver(const RawDriver&) = delete;
    RawDriver& operator=(const RawDriver&) = delete;
    ~RawDriver() { shutdown(); }

    Result run(std::size_t calls, std::size_t window) {
        std::promise<Result> done;
        auto result = done.get_future();
        asio::post(io_, [this, calls, window, &done] {
            done_ = &done;
            result_ = Result{};
            result_.latency_ns.assign(calls, 0);
            sent_at_.assign(calls, {});
            calls_ = calls;
            sent_ = received_ = 0;
            cpu0_ = bench::rusage_us(RUSAGE_THREAD);
            started_ = Clock::now();
            if (calls == 0) return finish();
            while (sent_ < window && sent_ < calls_) send_one();
        });
        if (result.wait_for(std::chrono::minutes(5)) != std::future_status::ready)
            throw std::runtime_error("a raw phase did not finish within 5 minutes");
        return result.get();
    }

private:
    void send_one() {
        sent_at_[sent_] = Clock::now();
        ++sent_;
        if (auto ec = socket_->send(request_, false)) fail("raw send failed: " + ec.message());
    }

    void on_reply(const std::string& data) {
        if (!done_) return;
        if (data.size() != reply_size_) return fail("unexpected reply of " + std::to_string(data.size()) + " bytes");
        result_.latency_ns[received_] = ns_since(sent_at_[received_]);
        ++received_;
        if (sent_ < calls_) send_one();
        if (received_ == calls_) finish();
    }

    void finish() {
        result_.elapsed = Clock::now() - started_;
        result_.thread_cpu_us = bench::rusage_us(RUSAGE_THREAD) - cpu0_;
        std::exchange(done_, nullptr)->set_value(std::move(result_));
    }

    void fail(const std::string& what) {
        if (done_) std::exchange(done_, nullptr)->set_exception(std::make_exception_ptr(std::runtime_error(what)));
    }

    void shutdown() {
        if (!thread_.joinable()) return;
        asio::post(io_, [this] {
            socket_->detach();
            socket_->abort();
            work_.reset();
        });
        thread_.join();
    }

    std::string request_;
    std::size_t reply_size_;
    asio::io_context io_{1};  // one thread runs it
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::shared_ptr<transport::Socket> socket_;
    std::thread thread_;
    // io thread only:
    bool open_ = false;
    std::promise<Result>* done_ = nullptr;
    Result result_;
    std::vector<Clock::time_point> sent_at_;
    std::size_t calls_ = 0, sent_ = 0, received_ = 0;
    Clock::time_point started_;
    std::int64_t cpu0_ = 0;
};

// The one-hop baseline's echo server, on its own thread of this process.
class LocalEchoServer {
public:
    explicit LocalEchoServer(const transport::ServerTls& tls = {})
        : tls_(!tls.cert_file.empty()), work_(io_.get_executor()) {
        transport::Server::Handlers handlers;
        handlers.on_accept = [this](const std::shared_ptr<transport::Socket>& socket, const std::string&) {
            sockets_.push_back(socket);
            transport::Socket* raw = socket.get();  // kept alive by sockets_
            transport::Callbacks cb;
            cb.on_message = [raw](std::string&& data, bool binary) { raw->send(data, binary); };
            return cb;
        };
        server_.emplace(io_, std::move(handlers), tls);
        port_ = server_->listen(0);
        thread_ = std::thread([this] { io_.run(); });
    }
    LocalEchoServer(const LocalEchoServer&) = delete;
    LocalEchoServer& operator=(const LocalEchoServer&) = delete;
    ~LocalEchoServer() {
        asio::post(io_, [this] {
            server_->stop_listening();
            for (const auto& socket : sockets_) socket->abort();
            sockets_.clear();
            work_.reset();
        });
        thread_.join();
    }

    std::string url() const {
        return std::string(tls_ ? "wss" : "ws") + "://127.0.0.1:" + std::to_string(port_) + "/";
    }

    // The server thread's CPU time, read on that thread.
    std::int64_t cpu_us() {
        std::packaged_task<std::int64_t()> task([] { return bench::rusage_us(RUSAGE_THREAD); });
        auto result = task.get_future();
        asio::post(io_, [&task] { task(); });
        return result.get();
    }

private:
    bool tls_;
    asio::io_context io_{1};  // one thread runs it
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::optional<transport::Server> server_;
    std::vector<std::shared_ptr<transport::Socket>> sockets_;  // server thread only
    std::uint16_t port_ = 0;
    std::thread thread_;
};

// ---- --tls: a throw-away CA and server certificate -------------------------------------------

struct BenchPki {
    std::string dir, ca, cert, key;
    BenchPki() {
        std::string pattern = "/tmp/iii-bench-pki-XXXXXX";
        if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        dir = pattern;
        ca = dir + "/ca.pem";
        cert = dir + "/server.pem";
        key = dir + "/server.key";
        const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        std::ofstream(dir + "/ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
        run("openssl req -x509" + ec + " -keyout " + dir + "/ca.key -out " + ca +
            " -days 1 -subj /CN=bench-ca -addext basicConstraints=critical,CA:TRUE");
        run("openssl req" + ec + " -keyout " + key + " -out " + dir + "/server.csr -subj /CN=bench");
        run("openssl x509 -req -in " + dir + "/server.csr -CA " + ca + " -CAkey " + dir +
            "/ca.key -CAcreateserial -days 1 -out " + cert + " -extfile " + dir + "/ext");
    }
    BenchPki(const BenchPki&) = delete;
    BenchPki& operator=(const BenchPki&) = delete;
    ~BenchPki() {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    }
    static void run(const std::string& command) {
        if (std::system((command + " >/dev/null 2>&1").c_str()) != 0)
            throw std::runtime_error("failed: " + command);
    }
};

// ---- the floor's processes (hidden roles) ----------------------------------------------------

// Serves on 127.0.0.1:0, prints "listening on ws://127.0.0.1:<port>", runs until killed.
// `forward` (the relay) or `reply` (the echo server): what an incoming message turns into.
int run_floor_process(const Options& o) {
    asio::io_context io{1};  // one thread, as the engine's and the SDK's own io_context
    auto work = asio::make_work_guard(io);
    std::shared_ptr<transport::Socket> upstream;       // relay: to the floor's echo server
    std::shared_ptr<transport::Socket> downstream;     // relay: the client of the moment
    std::vector<std::shared_ptr<transport::Socket>> accepted;
    const bool relay = o.role == "floor-relay";
    const std::string reply = floor_frames(o.payload_bytes).reply;

    if (relay) {
        if (o.url.empty()) throw std::invalid_argument("--role floor-relay needs --url");
        std::promise<void> opened;
        auto open_result = opened.get_future();
        transport::Callbacks cb;
        cb.on_open = [&opened] { opened.set_value(); };
        cb.on_message = [&downstream](std::string&& data, bool binary) {
            if (downstream) downstream->send(data, binary);
        };
        cb.on_close = [&io](std::error_code, std::uint16_t, std::string) { io.stop(); };
        upstream = transport::connect(io, o.url, {}, std::move(cb));
        while (open_result.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
            if (io.run_one_for(std::chrono::seconds(10)) == 0)
                throw std::runtime_error("the relay could not connect to " + o.url);
    }

    transport::Server::Handlers handlers;
    handlers.on_accept = [&](const std::shared_ptr<transport::Socket>& socket, const std::string&) {
        accepted.push_back(socket);
        transport::Socket* raw = socket.get();  // kept alive by `accepted`
        transport::Callbacks cb;
        if (relay) {
            downstream = socket;
            cb.on_message = [&upstream](std::string&& data, bool binary) { upstream->send(data, binary); };
        } else {
            cb.on_message = [raw, &reply](std::string&&, bool) { raw->send(reply, false); };
        }
        return cb;
    };
    transport::Server server(io, std::move(handlers));
    const std::uint16_t port = server.listen(0);
    std::printf("%s listening on ws://127.0.0.1:%u/\n", o.role.c_str(), static_cast<unsigned>(port));
    std::fflush(stdout);
    io.run();
    return 0;
}

// Spawns a floor process (`args`) into `child` and returns the URL it prints on start.
std::string spawn_floor_process(Child& child, const std::vector<std::string>& args) {
    child.spawn(args, false);
    const std::string_view marker = "listening on ";
    for (;;) {
        auto line = child.read_line(std::chrono::seconds(10));
        if (!line) throw std::runtime_error(args[0] + " " + args[2] + " did not report its address");
        if (auto at = line->find(marker); at != std::string::npos) return line->substr(at + marker.size());
    }
}

// ---- SDK: caller worker here, echo worker in the child ---------------------------------------

struct SdkRun {
    iii::Client& caller;
    const iii::Value& payload;
    Child& echo;
    pid_t engine_pid;  // -1: unknown
};

asio::awaitable<void> wait_for_echo(SdkRun& run) {
    if (!co_await run.caller.wait_for_state(iii::ConnectionState::Connected, std::chrono::seconds(10)))
        throw std::runtime_error("the caller worker could not connect to " + run.caller.address());
    // The engine does not acknowledge registrations: retry while `echo` is on its way there.
    for (int attempt = 0;; ++attempt) {
        try {
            iii::TriggerRequest request("echo", run.payload);
            iii::Value result = co_await run.caller.trigger(std::move(request));
            // (The engine adds `_caller_worker_id` to the payload, as the real one does.)
            if (!(result["data"] == run.payload["data"]))
                throw std::runtime_error("echo returned a different payload: " + result.dump());
            co_return;
        } catch (const iii::Error& e) {
            if (e.errc() != iii::Errc::Remote || e.remote()->code != "function_not_found" || attempt >= 500)
                throw;
        }
        asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(20));
        co_await pause.async_wait(asio::use_awaitable);
    }
}

asio::awaitable<void> call_sequential(SdkRun& run, std::vector<std::int64_t>& latency) {
    for (auto& slot : latency) {
        const auto t0 = Clock::now();
        iii::TriggerRequest request("echo", run.payload);
        iii::Value result = co_await run.caller.trigger(std::move(request));
        slot = ns_since(t0);
    }
}

struct Lanes {
    explicit Lanes(const asio::any_io_executor& ex) : done(ex, Clock::time_point::max()) {}
    std::size_t next = 0;
    std::size_t remaining = 0;
    std::exception_ptr error;
    asio::steady_timer done;
};

// One of the N concurrent callers of the pipelined phase; all run on one thread.
asio::awaitable<void> call_lane(SdkRun& run, std::vector<std::int64_t>& latency, Lanes& lanes) {
    try {
        for (std::size_t i; (i = lanes.next++) < latency.size();) {
            const auto t0 = Clock::now();
            iii::TriggerRequest request("echo", run.payload);
            iii::Value result = co_await run.caller.trigger(std::move(request));
            latency[i] = ns_since(t0);
        }
    } catch (...) {
        if (!lanes.error) lanes.error = std::current_exception();
        lanes.next = latency.size();
    }
    if (--lanes.remaining == 0) lanes.done.cancel();
}

asio::awaitable<void> call_pipelined(SdkRun& run, std::vector<std::int64_t>& latency, std::size_t window) {
    const auto ex = co_await asio::this_coro::executor;
    Lanes lanes(ex);
    lanes.remaining = std::min(window, latency.size());
    for (std::size_t i = 0, n = lanes.remaining; i < n; ++i)
        asio::co_spawn(ex, call_lane(run, latency, lanes), asio::detached);
    if (lanes.remaining > 0) {
        asio::error_code ec;  // operation_aborted: the last lane finished
        auto token = asio::redirect_error(asio::use_awaitable, ec);
        co_await lanes.done.async_wait(token);
    }
    if (lanes.error) std::rethrow_exception(lanes.error);
}

asio::awaitable<void> calls(SdkRun& run, std::vector<std::int64_t>& latency, std::size_t window) {
    if (window > 1) co_await call_pipelined(run, latency, window);
    else co_await call_sequential(run, latency);
}

// Runs `op` on `io` (this thread) until it completes; the caller's connection keeps `io` busy.
void run_on(asio::io_context& io, asio::awaitable<void> op) {
    bool done = false;
    std::exception_ptr error;
    asio::co_spawn(io, std::move(op), [&](std::exception_ptr e) {
        error = e;
        done = true;
    });
    while (!done)
        if (io.run_one() == 0) throw std::logic_error("the caller's io_context ran out of work");
    if (error) std::rethrow_exception(error);
}

// ---- echo worker (the hidden --role echo) ----------------------------------------------------

int run_echo_worker(const Options& o) {
    if (o.url.empty()) {
        std::fprintf(stderr, "bench_roundtrip: --role echo needs --url\n");
        return 2;
    }
    auto worker = iii::register_worker(o.url, worker_options(o.inline_handlers, o.ca, o.otel));
    worker->register_function(iii::RegisterFunctionMessage::with_id("echo"),
                              [](iii::Value payload) -> asio::awaitable<iii::Value> {
                                  co_return payload;
                              });
    // Commands from the parent, one a line: "cpu" (answer with the cumulative CPU µs of this
    // process), "quit" (or EOF).
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line == "cpu") {
            const Usage u = self_usage();
            std::printf("cpu %lld %llu %llu %lld\n", static_cast<long long>(u.cpu_us),
                        static_cast<unsigned long long>(u.allocations),
                        static_cast<unsigned long long>(u.allocated_bytes), static_cast<long long>(u.rss_kb));
            std::fflush(stdout);
        } else if (line == "quit") {
            break;
        }
    }
    worker->shutdown();
    worker.reset();
    return 0;
}

// ---- the rounds ------------------------------------------------------------------------------

enum class Path { Sdk, Floor, Raw, SdkTls, RawTls, SdkOtel };
constexpr const char* path_key(Path p) {
    switch (p) {
        case Path::Sdk: return "sdk";
        case Path::Floor: return "floor";
        case Path::Raw: return "baseline";
        case Path::SdkTls: return "sdk_wss";
        case Path::RawTls: return "baseline_wss";
        case Path::SdkOtel: return "sdk_otel";
    }
    return "";
}
constexpr const char* path_label(Path p) {
    switch (p) {
        case Path::Sdk: return "SDK";
        case Path::Floor: return "floor";
        case Path::Raw: return "raw";
        case Path::SdkTls: return "SDK wss";
        case Path::RawTls: return "raw wss";
        case Path::SdkOtel: return "SDK otel";
    }
    return "";
}
std::vector<Path> paths_of(const Options& o) {
    std::vector<Path> paths{Path::Sdk};
    if (!o.sdk_only) paths.insert(paths.end(), {Path::Floor, Path::Raw});
    if (o.tls) paths.push_back(Path::SdkTls);
    if (o.tls && !o.sdk_only) paths.push_back(Path::RawTls);
    if (o.otel) paths.push_back(Path::SdkOtel);
    return paths;
}

struct Bench {
    const Options& o;
    asio::io_context& io;
    SdkRun sdk;
    RawDriver& floor;
    pid_t relay_pid, floor_echo_pid;
    RawDriver& raw;
    LocalEchoServer& raw_server;
    // --tls only:
    std::optional<SdkRun> sdk_tls{};
    RawDriver* raw_tls = nullptr;
    LocalEchoServer* raw_tls_server = nullptr;
    // --otel only:
    std::optional<SdkRun> sdk_otel{};

    Phase run_sdk(SdkRun& sdk, const std::string& mode, std::size_t window) {
        std::vector<std::int64_t> warm(*o.warmup), latency(o.calls);
        run_on(io, calls(sdk, warm, window));
        const Usage echo0 = echo_usage(sdk.echo);
        const auto engine0 = sdk.engine_pid > 0 ? bench::process_cpu_us(sdk.engine_pid) : std::nullopt;
        const Usage caller0 = self_usage();
        const auto t0 = Clock::now();
        run_on(io, calls(sdk, latency, window));
        const auto elapsed = Clock::now() - t0;
        const Usage caller1 = self_usage();
        const auto engine1 = sdk.engine_pid > 0 ? bench::process_cpu_us(sdk.engine_pid) : std::nullopt;
        const Usage echo1 = echo_usage(sdk.echo);
        Phase p = summarize(mode, window, latency, elapsed);
        const double n = static_cast<double>(o.calls);
        p.cpu_us_per_call = {{"caller", static_cast<double>(caller1.cpu_us - caller0.cpu_us) / n},
                             {"echo", static_cast<double>(echo1.cpu_us - echo0.cpu_us) / n}};
        // (The other paths' threads of this process are idle meanwhile: the caller's figure
        // is the caller's alone, the bench's own call loop included.)
        if (bench::allocation_counting()) {
            p.allocations_per_call = {{"caller", static_cast<double>(caller1.allocations - caller0.allocations) / n},
                                      {"echo", static_cast<double>(echo1.allocations - echo0.allocations) / n}};
            p.allocated_bytes_per_call = {
                {"caller", static_cast<double>(caller1.allocated_bytes - caller0.allocated_bytes) / n},
                {"echo", static_cast<double>(echo1.allocated_bytes - echo0.allocated_bytes) / n}};
        }
        p.rss_kb = {{"caller", {caller0.rss_kb, caller1.rss_kb}}, {"echo", {echo0.rss_kb, echo1.rss_kb}}};
        if (engine0 && engine1) p.cpu_us_per_call.emplace_back("engine", static_cast<double>(*engine1 - *engine0) / n);
        return p;
    }

    Phase run_floor(const std::string& mode, std::size_t window) {
        floor.run(*o.warmup, window);
        const auto relay0 = bench::process_cpu_us(relay_pid), echo0 = bench::process_cpu_us(floor_echo_pid);
        auto r = floor.run(o.calls, window);
        const auto relay1 = bench::process_cpu_us(relay_pid), echo1 = bench::process_cpu_us(floor_echo_pid);
        Phase p = summarize(mode, window, r.latency_ns, r.elapsed);
        const double n = static_cast<double>(o.calls);
        p.cpu_us_per_call = {{"client", static_cast<double>(r.thread_cpu_us) / n}};
        if (relay0 && relay1) p.cpu_us_per_call.emplace_back("relay", static_cast<double>(*relay1 - *relay0) / n);
        if (echo0 && echo1) p.cpu_us_per_call.emplace_back("echo", static_cast<double>(*echo1 - *echo0) / n);
        return p;
    }

    Phase run_raw(RawDriver& raw, LocalEchoServer& raw_server, const std::string& mode, std::size_t window) {
        raw.run(*o.warmup, window);
        const std::int64_t server0 = raw_server.cpu_us();
        auto r = raw.run(o.calls, window);
        const std::int64_t server1 = raw_server.cpu_us();
        Phase p = summarize(mode, window, r.latency_ns, r.elapsed);
        const double n = static_cast<double>(o.calls);
        p.cpu_us_per_call = {{"client", static_cast<double>(r.thread_cpu_us) / n},
                             {"server", static_cast<double>(server1 - server0) / n}};
        return p;
    }

    Phase run(Path path, const std::string& mode, std::size_t window) {
        switch (path) {
            case Path::Sdk: return run_sdk(sdk, mode, window);
            case Path::Floor: return run_floor(mode, window);
            case Path::Raw: return run_raw(raw, raw_server, mode, window);
            case Path::SdkTls: return run_sdk(*sdk_tls, mode, window);
            case Path::SdkOtel: return run_sdk(*sdk_otel, mode, window);
            case Path::RawTls: break;
        }
        return run_raw(*raw_tls, *raw_tls_server, mode, window);
    }
};

// rounds[r][path][mode]
using Round = std::map<std::string, std::map<std::string, Phase>>;

const char* const modes[] = {"sequential", "pipelined"};

// The SDK's figure over the other path's, per round, then the median; CPU process by process
// (caller/client, echo/echo, engine/relay for the floor; caller/client for the baseline).
struct Ratio {
    double calls_per_s = 0, p50 = 0, p99 = 0;
    std::vector<std::pair<std::string, double>> cpu;
};

using CpuPairs = std::vector<std::pair<std::string, std::string>>;

Ratio median_ratio(const std::vector<Round>& rounds, const std::string& of, const std::string& other,
                   const std::string& mode, const CpuPairs& pairs) {
    Ratio r;
    std::vector<double> cps, p50, p99;
    std::vector<std::vector<double>> cpu(pairs.size());
    for (const auto& round : rounds) {
        const Phase& s = round.at(of).at(mode);
        const Phase& f = round.at(other).at(mode);
        if (f.calls_per_s > 0) cps.push_back(s.calls_per_s / f.calls_per_s);
        if (f.p50_us > 0) p50.push_back(s.p50_us / f.p50_us);
        if (f.p99_us > 0) p99.push_back(s.p99_us / f.p99_us);
        for (std::size_t i = 0; i < pairs.size(); ++i) {
            auto a = s.cpu(pairs[i].first), b = f.cpu(pairs[i].second);
            if (a && b && *b > 0) cpu[i].push_back(*a / *b);
        }
    }
    r.calls_per_s = median(cps);
    r.p50 = median(p50);
    r.p99 = median(p99);
    for (std::size_t i = 0; i < pairs.size(); ++i)
        if (!cpu[i].empty()) r.cpu.emplace_back(pairs[i].first + "/" + pairs[i].second, median(cpu[i]));
    return r;
}

Ratio median_ratio(const std::vector<Round>& rounds, const std::string& other, const std::string& mode) {
    static const CpuPairs floor_cpu = {{"caller", "client"}, {"echo", "echo"}, {"engine", "relay"}};
    static const CpuPairs raw_cpu = {{"caller", "client"}};
    return median_ratio(rounds, "sdk", other, mode, other == "floor" ? floor_cpu : raw_cpu);
}

// wss:// over ws:// of the same path (SDK or raw), per round, then the median.
Ratio tls_ratio(const std::vector<Round>& rounds, bool sdk, const std::string& mode) {
    static const CpuPairs sdk_cpu = {{"caller", "caller"}, {"echo", "echo"}, {"engine", "engine"}};
    static const CpuPairs raw_cpu = {{"client", "client"}, {"server", "server"}};
    return sdk ? median_ratio(rounds, "sdk_wss", "sdk", mode, sdk_cpu)
               : median_ratio(rounds, "baseline_wss", "baseline", mode, raw_cpu);
}

// Telemetry on over off (the --otel path over the SDK path), per round, then the median.
Ratio otel_ratio(const std::vector<Round>& rounds, const std::string& mode) {
    static const CpuPairs sdk_cpu = {{"caller", "caller"}, {"echo", "echo"}, {"engine", "engine"}};
    return median_ratio(rounds, "sdk_otel", "sdk", mode, sdk_cpu);
}

// ---- output ----------------------------------------------------------------------------------

double round2(double x) { return std::round(x * 100.0) / 100.0; }

iii::Value phase_json(const Phase& p) {
    iii::Value latency = iii::Value::object();
    latency.set("p50", round2(p.p50_us)).set("p99", round2(p.p99_us)).set("p999", round2(p.p999_us));
    latency.set("mean", round2(p.mean_us)).set("max", round2(p.max_us));
    iii::Value cpu = iii::Value::object();
    for (const auto& [who, us] : p.cpu_us_per_call) cpu.set(who, round2(us));
    iii::Value v = iii::Value::object();
    v.set("calls", p.calls).set("inflight", p.inflight).set("seconds", round2(p.seconds));
    v.set("calls_per_s", std::round(p.calls_per_s)).set("latency_us", std::move(latency));
    v.set("cpu_us_per_call", std::move(cpu));
    if (!p.allocations_per_call.empty()) {
        iii::Value allocations = iii::Value::object(), bytes = iii::Value::object();
        for (const auto& [who, x] : p.allocations_per_call) allocations.set(who, round2(x));
        for (const auto& [who, x] : p.allocated_bytes_per_call) bytes.set(who, std::round(x));
        v.set("allocations_per_call", std::move(allocations)).set("allocated_bytes_per_call", std::move(bytes));
    }
    if (!p.rss_kb.empty()) {
        iii::Value rss = iii::Value::object();
        for (const auto& [who, kb] : p.rss_kb) rss.set(who, iii::Value::array({kb.first, kb.second}));
        v.set("rss_kb_before_after", std::move(rss));
    }
    iii::Value q = iii::Value::array(), us = iii::Value::array();
    for (const auto& [quantile, micros] : p.cdf) {
        q.push_back(quantile);
        us.push_back(round2(micros));
    }
    iii::Value cdf = iii::Value::object();
    cdf.set("q", std::move(q)).set("us", std::move(us));
    v.set("latency_cdf_us", std::move(cdf));
    return v;
}

iii::Value ratio_json(const Ratio& r) {
    iii::Value v = iii::Value::object();
    v.set("calls_per_s", round2(r.calls_per_s)).set("p50", round2(r.p50)).set("p99", round2(r.p99));
    iii::Value cpu = iii::Value::object();
    for (const auto& [who, x] : r.cpu) cpu.set(who, round2(x));
    v.set("cpu_us_per_call", std::move(cpu));
    return v;
}

const char* const paths_note =
    "SDK: caller -> engine -> echo worker and back, two WebSocket hops each way, three processes. "
    "floor: the same three-process path without the SDK (websocketpp client -> websocketpp relay "
    "process -> websocketpp echo server process and back, the same frame sizes, no JSON parsing). "
    "baseline: one WebSocket hop each way between two threads of one process. Figures: medians "
    "over the rounds; ratios: medians of the per-round ratios.";

struct Report {
    const Options& o;
    std::size_t payload_size;
    const FloorFrames& frames;
    std::string url;
    bool spawned;
    std::vector<Round> rounds;
    const bench::Provenance& provenance;
};

std::map<std::string, std::map<std::string, Phase>> medians(const Report& rep) {
    std::map<std::string, std::map<std::string, Phase>> out;
    for (const Path path : paths_of(rep.o))
        for (const char* mode : modes) {
            std::vector<Phase> per_round;
            for (const auto& round : rep.rounds) per_round.push_back(round.at(path_key(path)).at(mode));
            out[path_key(path)][mode] = median_phase(per_round);
        }
    return out;
}

void print_json(const Report& rep) {
    const Options& o = rep.o;
    iii::Value config = iii::Value::object();
    config.set("calls", o.calls).set("warmup", *o.warmup).set("inflight", o.inflight).set("rounds", o.rounds);
    config.set("payload_bytes", rep.payload_size).set("engine_url", rep.url).set("engine_spawned", rep.spawned);
    config.set("hardware_threads", std::thread::hardware_concurrency());
    config.set("echo_handlers_on_io_thread", o.inline_handlers);
    config.set("floor_request_bytes", rep.frames.request.size()).set("floor_reply_bytes", rep.frames.reply.size());
    iii::Value out = iii::Value::object();
    out.set("config", std::move(config));
    const auto med = medians(rep);
    for (const auto& [path, phases] : med) {
        iii::Value v = iii::Value::object();
        for (const auto& [mode, p] : phases) v.set(mode, phase_json(p));
        out.set(path, std::move(v));
    }
    for (const char* other : {"floor", "baseline"}) {
        if (o.sdk_only) break;
        iii::Value v = iii::Value::object();
        for (const char* mode : modes) v.set(mode, ratio_json(median_ratio(rep.rounds, other, mode)));
        out.set(std::string("sdk_to_") + other, std::move(v));
    }
    if (o.tls) {
        iii::Value sdk = iii::Value::object(), raw = iii::Value::object();
        for (const char* mode : modes) {
            sdk.set(mode, ratio_json(tls_ratio(rep.rounds, true, mode)));
            if (!o.sdk_only) raw.set(mode, ratio_json(tls_ratio(rep.rounds, false, mode)));
        }
        out.set("sdk_wss_to_ws", std::move(sdk)).set("baseline_wss_to_ws", std::move(raw));
    }
    if (o.otel) {
        iii::Value v = iii::Value::object();
        for (const char* mode : modes) v.set(mode, ratio_json(otel_ratio(rep.rounds, mode)));
        out.set("sdk_otel_to_sdk", std::move(v));
    }
    iii::Value per_round = iii::Value::array();
    for (const auto& round : rep.rounds) {
        iii::Value r = iii::Value::object();
        for (const auto& [path, phases] : round) {
            iii::Value v = iii::Value::object();
            for (const auto& [mode, p] : phases) v.set(mode, phase_json(p));
            r.set(path, std::move(v));
        }
        per_round.push_back(std::move(r));
    }
    out.set("rounds", std::move(per_round)).set("note", paths_note);
    out.set("provenance", rep.provenance.to_value());
    std::printf("%s\n", out.dump().c_str());
}

void print_table(const Report& rep) {
    const Options& o = rep.o;
    std::printf("bench_roundtrip: `echo` round trips, %zu round%s x %zu calls per phase and path (after %zu "
                "warm-up each), payload %zu B of JSON%s\n",
                o.rounds, o.rounds == 1 ? "" : "s", o.calls, *o.warmup, rep.payload_size,
                o.inline_handlers ? ", --inline-handlers (no effect)" : "");
    std::printf("engine: %s (%s), %u hardware threads; floor frames %zu B out, %zu B back\n", rep.url.c_str(),
                rep.spawned ? "iii-test-engine, spawned" : "external", std::thread::hardware_concurrency(),
                rep.frames.request.size(), rep.frames.reply.size());
    std::printf("%s\n\n", bench::describe(rep.provenance.to_value()).c_str());
    // (Widths count bytes: each "µ" takes two.)
    std::printf("%-24s %10s %9s %9s %10s    %s\n", "", "calls/s", "p50 µs", "p99 µs", "p99.9 µs",
                "CPU µs per call");
    const auto med = medians(rep);
    auto label = [](const char* path, const Phase& p) {
        std::string l = std::string(path) + " " + p.mode;
        if (p.inflight > 1) l += " (" + std::to_string(p.inflight) + ")";
        return l;
    };
    for (const char* mode : modes) {
        for (const Path path : paths_of(o)) {
            const Phase& p = med.at(path_key(path)).at(mode);
            std::string cpu;
            for (const auto& [who, us] : p.cpu_us_per_call) {
                char cell[64];
                std::snprintf(cell, sizeof cell, "%s%s %.1f", cpu.empty() ? "" : "  ", who.c_str(), us);
                cpu += cell;
            }
            const char* name = path_label(path);
            std::printf("%-24s %10.0f %8.1f %8.1f %9.1f    %s\n", label(name, p).c_str(), p.calls_per_s,
                        p.p50_us, p.p99_us, p.p999_us, cpu.c_str());
        }
    }
    // One ratio table: a header, then a row per (prefix, mode).
    auto ratio_header = [](const char* title) {
        std::printf("\n%-24s %9s %9s %9s    %s\n", title, "calls/s", "p50", "p99",
                    "CPU per call, process by process");
    };
    auto ratio_row = [&](const std::string& prefix, const char* mode, const Ratio& r) {
        std::string cpu;
        for (const auto& [who, x] : r.cpu) {
            char cell[64];
            std::snprintf(cell, sizeof cell, "%s%s %.2fx", cpu.empty() ? "" : "  ", who.c_str(), x);
            cpu += cell;
        }
        std::string l = prefix + mode;
        if (std::string(mode) == "pipelined") l += " (" + std::to_string(o.inflight) + ")";
        std::printf("%-24s %8.2fx %8.2fx %8.2fx    %s\n", l.c_str(), r.calls_per_s, r.p50, r.p99, cpu.c_str());
    };
    for (const char* other : {"floor", "baseline"}) {
        if (o.sdk_only) break;
        ratio_header(("SDK / " + std::string(other)).c_str());
        for (const char* mode : modes) ratio_row("", mode, median_ratio(rep.rounds, other, mode));
    }
    if (o.tls) {
        ratio_header("wss:// / ws://");
        for (const bool sdk : {true, false})
            for (const char* mode : modes) {
                if (!sdk && o.sdk_only) break;
                ratio_row(sdk ? "SDK " : "raw ", mode, tls_ratio(rep.rounds, sdk, mode));
            }
    }
    if (o.otel) {
        ratio_header("telemetry on / off");
        for (const char* mode : modes) ratio_row("SDK ", mode, otel_ratio(rep.rounds, mode));
    }
    bool counted = false;
    for (const char* mode : modes)
        for (const Path path : paths_of(o)) {
            const Phase& p = med.at(path_key(path)).at(mode);
            if (p.rss_kb.empty()) continue;
            if (!counted) {
                std::printf("\n%-24s %s\n", "", "heap allocations (bytes) per call; RSS kB, first round's start -> last round's end");
                counted = true;
            }
            std::string cells;
            for (std::size_t i = 0; i < p.rss_kb.size(); ++i) {
                char cell[128];
                const auto& [who, kb] = p.rss_kb[i];
                if (i < p.allocations_per_call.size())
                    std::snprintf(cell, sizeof cell, "%s%s %.1f (%.0f B), RSS %lld -> %lld", cells.empty() ? "" : "   ",
                                  who.c_str(), p.allocations_per_call[i].second, p.allocated_bytes_per_call[i].second,
                                  static_cast<long long>(kb.first), static_cast<long long>(kb.second));
                else
                    std::snprintf(cell, sizeof cell, "%s%s RSS %lld -> %lld", cells.empty() ? "" : "   ", who.c_str(),
                                  static_cast<long long>(kb.first), static_cast<long long>(kb.second));
                cells += cell;
            }
            std::printf("%-24s %s\n", label(path_label(path), p).c_str(), cells.c_str());
        }
    std::printf("\nNote: %s\nCPU: getrusage of the caller and echo worker processes; the engine's, "
                "relay's and floor echo server's threads from /proc; the floor client and the raw "
                "threads per thread.\n",
                paths_note);
}

// ---- main ------------------------------------------------------------------------------------

int run_bench(const Options& o) {
    const bench::Provenance provenance;  // load before; to_value() adds the load after
    const iii::Value payload = make_payload(o.payload_bytes);
    const std::string payload_text = payload.dump();
    const FloorFrames frames = floor_frames(o.payload_bytes);
    const std::string self = bench::self_exe();

    // The engine: --url, else a spawned iii-test-engine.
    Child engine;
    std::string url = o.url;
    const bool spawned = url.empty();
    if (spawned) {
        const std::string path = o.engine.empty() ? bench::default_engine_path() : o.engine;
        if (access(path.c_str(), X_OK) != 0)
            throw std::runtime_error("no iii-test-engine at " + path + " (use --engine PATH or --url URL)");
        url = bench::spawn_test_engine(engine, path);
    }

    Child echo;
    std::vector<std::string> echo_args{self, "--role", "echo", "--url", url};
    if (o.inline_handlers) echo_args.push_back("--inline-handlers");
    echo.spawn(echo_args, true);

    const std::string bytes = std::to_string(o.payload_bytes);
    Child floor_echo, relay;
    const std::string floor_echo_url =
        spawn_floor_process(floor_echo, {self, "--role", "floor-echo", "--payload-bytes", bytes});
    const std::string relay_url =
        spawn_floor_process(relay, {self, "--role", "floor-relay", "--url", floor_echo_url, "--payload-bytes", bytes});

    // --tls: a second engine in TLS mode with its own echo worker, and a TLS raw echo server.
    std::optional<BenchPki> pki;
    Child tls_engine, tls_echo;
    std::string tls_url;
    if (o.tls) {
        pki.emplace();
        const std::string path = o.engine.empty() ? bench::default_engine_path() : o.engine;
        tls_url = bench::spawn_test_engine(tls_engine, path, {"--tls-cert", pki->cert, "--tls-key", pki->key});
        std::vector<std::string> args{self, "--role", "echo", "--url", tls_url, "--ca", pki->ca};
        if (o.inline_handlers) args.push_back("--inline-handlers");
        tls_echo.spawn(args, true);
    }

    // --otel: a second engine with its own echo worker, both ends with telemetry on (the same
    // frames and function as the SDK path, so the difference is telemetry alone).
    Child otel_engine, otel_echo;
    std::string otel_url;
    if (o.otel) {
        const std::string path = o.engine.empty() ? bench::default_engine_path() : o.engine;
        otel_url = bench::spawn_test_engine(otel_engine, path);
        std::vector<std::string> args{self, "--role", "echo", "--url", otel_url, "--otel"};
        if (o.inline_handlers) args.push_back("--inline-handlers");
        otel_echo.spawn(args, true);
    }

    Report report{o, payload_text.size(), frames, url, spawned, {}, provenance};
    {
        LocalEchoServer raw_server;
        RawDriver raw(raw_server.url(), payload_text, payload_text.size());
        RawDriver floor(relay_url, frames.request, frames.reply.size());
        std::optional<LocalEchoServer> raw_tls_server;
        std::optional<RawDriver> raw_tls;
        if (pki) {
            transport::ServerTls server_tls;
            server_tls.cert_file = pki->cert;
            server_tls.key_file = pki->key;
            raw_tls_server.emplace(server_tls);
            transport::ConnectOptions connect_options;
            connect_options.tls.ca_file = pki->ca;
            raw_tls.emplace(raw_tls_server->url(), payload_text, payload_text.size(), connect_options);
        }

        asio::io_context io{1};  // the caller workers and the bench coroutines share this thread
        auto caller = iii::register_worker(io, url, worker_options());
        std::shared_ptr<iii::Client> tls_caller;
        if (pki) tls_caller = iii::register_worker(io, tls_url, worker_options(false, pki->ca));
        std::shared_ptr<iii::Client> otel_caller;
        if (o.otel) otel_caller = iii::register_worker(io, otel_url, worker_options(false, {}, true));
        Bench b{o, io, SdkRun{*caller, payload, echo, spawned ? engine.pid() : o.engine_pid},
                floor, relay.pid(), floor_echo.pid(), raw, raw_server};
        if (pki) {
            b.sdk_tls.emplace(SdkRun{*tls_caller, payload, tls_echo, tls_engine.pid()});
            b.raw_tls = &*raw_tls;
            b.raw_tls_server = &*raw_tls_server;
        }
        if (otel_caller) b.sdk_otel.emplace(SdkRun{*otel_caller, payload, otel_echo, otel_engine.pid()});
        const std::vector<Path> paths = paths_of(o);
        try {
            run_on(io, wait_for_echo(b.sdk));
            if (b.sdk_tls) run_on(io, wait_for_echo(*b.sdk_tls));
            if (b.sdk_otel) run_on(io, wait_for_echo(*b.sdk_otel));
            for (std::size_t r = 0; r < o.rounds; ++r) {
                Round round;
                for (const char* mode : modes) {
                    const std::size_t window = std::string(mode) == "pipelined" ? o.inflight : 1;
                    for (std::size_t k = 0; k < paths.size(); ++k) {
                        const Path path = paths[(k + r) % paths.size()];
                        round[path_key(path)][mode] = b.run(path, mode, window);
                    }
                }
                report.rounds.push_back(std::move(round));
                if (!o.json) std::fprintf(stderr, "bench_roundtrip: round %zu/%zu done\n", r + 1, o.rounds);
            }
        } catch (...) {
            caller->shutdown();
            if (tls_caller) tls_caller->shutdown();
            if (otel_caller) otel_caller->shutdown();
            throw;
        }
        run_on(io, caller->shutdown_async());
        if (tls_caller) run_on(io, tls_caller->shutdown_async());
        if (otel_caller) run_on(io, otel_caller->shutdown_async());
    }
    if (o.otel) {
        if (otel_echo.stop(SIGTERM, std::chrono::seconds(5)) != 0)
            std::fprintf(stderr, "bench_roundtrip: the telemetry-on echo worker did not exit cleanly\n");
        otel_engine.stop(SIGTERM, std::chrono::seconds(5));
    }
    if (o.tls) {
        if (tls_echo.stop(SIGTERM, std::chrono::seconds(5)) != 0)
            std::fprintf(stderr, "bench_roundtrip: the wss:// echo worker did not exit cleanly\n");
        tls_engine.stop(SIGTERM, std::chrono::seconds(5));
    }

    if (echo.stop(SIGTERM, std::chrono::seconds(5)) != 0)
        std::fprintf(stderr, "bench_roundtrip: the echo worker did not exit cleanly\n");
    relay.stop(SIGTERM, std::chrono::seconds(5));
    floor_echo.stop(SIGTERM, std::chrono::seconds(5));
    if (spawned) engine.stop(SIGTERM, std::chrono::seconds(5));

    if (o.json) print_json(report);
    else print_table(report);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    signal(SIGPIPE, SIG_IGN);
    Options options;
    try {
        options = parse_options(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_roundtrip: %s\n", e.what());
        usage(stderr);
        return 2;
    }
    try {
        if (options.role == "echo") return run_echo_worker(options);
        if (options.role == "floor-relay" || options.role == "floor-echo") return run_floor_process(options);
        if (!options.role.empty()) throw std::invalid_argument("unknown role '" + options.role + "'");
        return run_bench(options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_roundtrip: %s\n", e.what());
        return 1;
    }
}
