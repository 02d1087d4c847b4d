// Round-trip benchmark: an `echo` function on one worker, called from another worker through
// the engine, against a raw WebSocket echo with no SDK (the baseline).
//
//   bench_roundtrip [--calls N] [--inflight N] [--payload-bytes N] [--warmup N] [--json]
//                   [--inline-handlers]
//                   [--url ws://HOST:PORT [--engine-pid PID] | --engine PATH]
//
// Processes: this one is the caller worker; the echo worker is this same binary re-executed with
// the hidden `--role echo --url URL` (so that each worker's CPU time can be measured on its
// own); the engine is `iii-test-engine` (spawned from ../lib/testing/ next to this binary, or
// --engine PATH) unless --url names an external one.
//
// Phases, each after a short warm-up: sequential (one call at a time) and pipelined (N in
// flight, default 64). Per phase: calls/s, p50/p99/p99.9 latency (steady_clock per call) and CPU
// time per call of the caller (getrusage), the echo worker (getrusage in the child, reported over
// its stdout at each phase boundary when the parent writes "cpu" to its stdin) and the engine
// when spawned (/proc/<pid>/task/*/schedstat).
//
// Baseline, in the same run: the same payload bytes echoed over one plain websocketpp
// connection (lib/transport) between a server thread and a client thread of this process,
// sequential and pipelined, same statistics; CPU per thread. The SDK figures are then given as
// ratios to it. The SDK path crosses the engine (two WebSocket hops each way) while the baseline
// is one hop, so the ratios bound the SDK's cost from above rather than measure it alone.

#include <cstddef>  // first: see lib/transport/ws_transport.hpp

#include <iii/iii.hpp>

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

#include <dirent.h>
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
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
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
    std::optional<std::size_t> warmup;
    bool json = false;
    bool inline_handlers = false;  // the echo worker runs its handler on its io thread
    std::string url;
    std::string engine;
    pid_t engine_pid = -1;  // --engine-pid: the external engine's CPU is measured too
    std::string role;  // hidden: "echo" in the echo worker child
};

void usage(std::FILE* out) {
    std::fputs(
        "usage: bench_roundtrip [options]\n"
        "  --calls N          measured calls per phase (default 20000)\n"
        "  --inflight N       calls in flight in the pipelined phase (default 64)\n"
        "  --payload-bytes N  size of the JSON payload {\"data\":\"...\"} (default 100)\n"
        "  --warmup N         warm-up calls before each phase (default calls/10, 100..2000)\n"
        "  --json             print one JSON object instead of the table\n"
        "  --inline-handlers  the echo worker runs its handler on its io thread\n"
        "                     (InitOptions::handlers_on_io_thread) instead of its pool\n"
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
        if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
        const std::string value = argv[++i];
        if (arg == "--calls") o.calls = parse_count("--calls", value, 1);
        else if (arg == "--inflight") o.inflight = parse_count("--inflight", value, 1);
        else if (arg == "--payload-bytes") o.payload_bytes = parse_count("--payload-bytes", value, 0);
        else if (arg == "--warmup") o.warmup = parse_count("--warmup", value, 0);
        else if (arg == "--url") o.url = value;
        else if (arg == "--engine") o.engine = value;
        else if (arg == "--engine-pid")
            o.engine_pid = static_cast<pid_t>(parse_count("--engine-pid", value, 1));
        else if (arg == "--role") o.role = value;
        else throw std::invalid_argument("unknown option '" + arg + "'");
    }
    if (!o.warmup) o.warmup = std::clamp<std::size_t>(o.calls / 10, 100, 2000);
    return o;
}

iii::InitOptions worker_options(bool handlers_on_io_thread = false) {
    iii::InitOptions init;
    init.handlers_on_io_thread = handlers_on_io_thread;
    iii::OtelConfig otel;
    otel.enabled = false;  // nothing but the calls on the wire
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

// ---- CPU time --------------------------------------------------------------------------------

std::int64_t rusage_us(int who) {
    rusage ru{};
    getrusage(who, &ru);
    return (static_cast<std::int64_t>(ru.ru_utime.tv_sec) + ru.ru_stime.tv_sec) * 1000000 +
           ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

// CPU time of another process: the sum over its threads of /proc/<pid>/task/<tid>/schedstat
// (ns; the engine's threads live as long as it does), else utime + stime from /proc/<pid>/stat
// (fields 14 and 15, in clock ticks, typically 10 ms).
std::optional<std::int64_t> process_cpu_us(pid_t pid) {
    const std::string proc = "/proc/" + std::to_string(pid);
    if (DIR* tasks = opendir((proc + "/task").c_str())) {
        std::int64_t ns = 0;
        bool any = false;
        while (const dirent* entry = readdir(tasks)) {
            if (entry->d_name[0] == '.') continue;
            std::ifstream schedstat(proc + "/task/" + entry->d_name + "/schedstat");
            long long on_cpu = 0;
            if (schedstat >> on_cpu) {
                ns += on_cpu;
                any = true;
            }
        }
        closedir(tasks);
        if (any) return ns / 1000;
    }
    std::ifstream file(proc + "/stat");
    std::string stat;
    if (!std::getline(file, stat)) return std::nullopt;
    const auto paren = stat.rfind(')');
    if (paren == std::string::npos || paren + 2 > stat.size()) return std::nullopt;
    std::istringstream fields(stat.substr(paren + 2));  // starts at field 3 (state)
    std::string field;
    long long utime = -1, stime = -1;
    for (int n = 3; n <= 15 && fields >> field; ++n) {
        if (n == 14) utime = std::atoll(field.c_str());
        if (n == 15) stime = std::atoll(field.c_str());
    }
    if (utime < 0 || stime < 0) return std::nullopt;
    return (utime + stime) * 1000000 / sysconf(_SC_CLK_TCK);
}

// Cumulative CPU µs of the echo worker, asked over its stdin/stdout.
std::int64_t echo_cpu_us(Child& echo) {
    echo.write_line("cpu");
    for (;;) {
        auto line = echo.read_line(std::chrono::seconds(5));
        if (!line) throw std::runtime_error("the echo worker did not report its CPU time");
        if (line->rfind("cpu ", 0) == 0) return std::atoll(line->c_str() + 4);
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

// ---- raw baseline: websocketpp echo, no SDK --------------------------------------------------

// The client side: a state machine on the client io_context's callbacks. Replies arrive in
// send order (one connection, an echo server), so the k-th reply belongs to the k-th send.
class RawClient {
public:
    struct Step {
        std::string mode;
        std::size_t calls;
        std::size_t window;
        bool measured;
    };

    RawClient(asio::io_context& io, std::string payload, std::vector<Step> steps,
              std::function<std::int64_t()> server_cpu_us)
        : io_(io), payload_(std::move(payload)), steps_(std::move(steps)),
          server_cpu_us_(std::move(server_cpu_us)) {}

    void start(const std::string& url) {
        transport::Callbacks cb;
        cb.on_open = [this] { begin_step(); };
        cb.on_message = [this](std::string&& data, bool) { on_reply(data); };
        cb.on_close = [this](std::error_code ec, std::uint16_t, std::string) {
            if (step_ < steps_.size() && error_.empty())
                error_ = "raw baseline connection closed early" + (ec ? ": " + ec.message() : "");
            io_.stop();
        };
        socket_ = transport::connect(io_, url, {}, std::move(cb));
    }

    const std::vector<Phase>& results() const { return results_; }
    const std::string& error() const { return error_; }

private:
    void begin_step() {
        const Step& s = steps_[step_];
        sent_ = received_ = 0;
        sent_at_.assign(s.calls, {});
        latency_.assign(s.calls, 0);
        if (s.measured) {
            client_cpu0_ = rusage_us(RUSAGE_THREAD);
            server_cpu0_ = server_cpu_us_();
        }
        started_ = Clock::now();
        while (sent_ < s.window && sent_ < s.calls) send_one();
    }

    void send_one() {
        sent_at_[sent_] = Clock::now();
        ++sent_;
        if (auto ec = socket_->send(payload_, false)) fail("raw send failed: " + ec.message());
    }

    void on_reply(const std::string& data) {
        if (step_ >= steps_.size()) return;
        if (data.size() != payload_.size()) return fail("raw echo returned a different payload");
        latency_[received_] = ns_since(sent_at_[received_]);
        ++received_;
        const Step& s = steps_[step_];
        if (sent_ < s.calls) send_one();
        if (received_ < s.calls) return;
        const auto elapsed = Clock::now() - started_;
        if (s.measured) {
            const auto client_cpu = rusage_us(RUSAGE_THREAD) - client_cpu0_;
            const auto server_cpu = server_cpu_us_() - server_cpu0_;
            Phase p = summarize(s.mode, s.window, latency_, elapsed);
            const double n = static_cast<double>(s.calls);
            p.cpu_us_per_call = {{"client", static_cast<double>(client_cpu) / n},
                                 {"server", static_cast<double>(server_cpu) / n}};
            results_.push_back(std::move(p));
        }
        if (++step_ < steps_.size()) return begin_step();
        socket_->close(1000, "done");
    }

    void fail(std::string what) {
        if (error_.empty()) error_ = std::move(what);
        step_ = steps_.size();
        socket_->abort();
    }

    asio::io_context& io_;
    std::string payload_;
    std::vector<Step> steps_;
    std::function<std::int64_t()> server_cpu_us_;
    std::shared_ptr<transport::Socket> socket_;
    std::size_t step_ = 0, sent_ = 0, received_ = 0;
    std::vector<Clock::time_point> sent_at_;
    std::vector<std::int64_t> latency_;
    Clock::time_point started_;
    std::int64_t client_cpu0_ = 0, server_cpu0_ = 0;
    std::vector<Phase> results_;
    std::string error_;
};

// Echo server on its own thread, client on this thread: {sequential, pipelined}.
std::vector<Phase> run_baseline(const Options& o, const std::string& payload) {
    asio::io_context server_io;
    std::vector<std::shared_ptr<transport::Socket>> server_sockets;  // server thread only
    transport::Server::Handlers handlers;
    handlers.on_accept = [&server_sockets](const std::shared_ptr<transport::Socket>& socket,
                                           const std::string&) {
        server_sockets.push_back(socket);
        transport::Socket* raw = socket.get();  // kept alive by server_sockets
        transport::Callbacks cb;
        cb.on_message = [raw](std::string&& data, bool binary) { raw->send(data, binary); };
        return cb;
    };
    transport::Server server(server_io, std::move(handlers));
    const std::uint16_t port = server.listen(0);
    auto work = asio::make_work_guard(server_io);
    std::thread server_thread([&server_io] { server_io.run(); });

    // The server thread's CPU time, read on that thread.
    auto server_cpu_us = [&server_io] {
        std::packaged_task<std::int64_t()> task([] { return rusage_us(RUSAGE_THREAD); });
        auto result = task.get_future();
        asio::post(server_io, [&task] { task(); });
        return result.get();
    };

    const std::size_t warm = *o.warmup;
    std::vector<RawClient::Step> steps = {
        {"sequential", warm, 1, false},
        {"sequential", o.calls, 1, true},
        {"pipelined", warm, o.inflight, false},
        {"pipelined", o.calls, o.inflight, true},
    };
    steps.erase(std::remove_if(steps.begin(), steps.end(), [](const auto& s) { return s.calls == 0; }),
                steps.end());
    asio::io_context client_io;
    RawClient client(client_io, payload, std::move(steps), server_cpu_us);
    client.start("ws://127.0.0.1:" + std::to_string(port) + "/");
    client_io.run();

    asio::post(server_io, [&] {
        server.stop_listening();
        for (const auto& socket : server_sockets) socket->abort();
        server_sockets.clear();
        server_io.stop();
    });
    server_thread.join();
    if (!client.error().empty()) throw std::runtime_error(client.error());
    return client.results();
}

// ---- SDK: caller worker here, echo worker in the child ---------------------------------------

struct SdkRun {
    iii::Client& caller;
    const iii::Value& payload;
    const Options& options;
    Child& echo;
    pid_t engine_pid;  // -1: external engine
    std::vector<Phase> results;
};

struct CpuSnapshot {
    std::int64_t caller = 0, echo = 0;
    std::optional<std::int64_t> engine;
};

CpuSnapshot cpu_snapshot(SdkRun& run) {
    CpuSnapshot s;
    s.echo = echo_cpu_us(run.echo);
    if (run.engine_pid > 0) s.engine = process_cpu_us(run.engine_pid);
    s.caller = rusage_us(RUSAGE_SELF);
    return s;
}

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

asio::awaitable<void> run_sdk(SdkRun& run) {
    co_await wait_for_echo(run);
    const Options& o = run.options;
    for (const bool pipelined : {false, true}) {
        const std::size_t window = pipelined ? o.inflight : 1;
        std::vector<std::int64_t> warm(*o.warmup), latency(o.calls);
        if (pipelined) co_await call_pipelined(run, warm, window);
        else co_await call_sequential(run, warm);

        const CpuSnapshot before = cpu_snapshot(run);
        const auto t0 = Clock::now();
        if (pipelined) co_await call_pipelined(run, latency, window);
        else co_await call_sequential(run, latency);
        const auto elapsed = Clock::now() - t0;
        const CpuSnapshot after = cpu_snapshot(run);

        Phase p = summarize(pipelined ? "pipelined" : "sequential", window, latency, elapsed);
        const double n = static_cast<double>(o.calls);
        p.cpu_us_per_call = {{"caller", static_cast<double>(after.caller - before.caller) / n},
                             {"echo", static_cast<double>(after.echo - before.echo) / n}};
        if (before.engine && after.engine)
            p.cpu_us_per_call.emplace_back("engine", static_cast<double>(*after.engine - *before.engine) / n);
        run.results.push_back(std::move(p));
    }
    co_await run.caller.shutdown_async();
}

// ---- echo worker (the hidden --role echo) ----------------------------------------------------

int run_echo_worker(const Options& o) {
    if (o.url.empty()) {
        std::fprintf(stderr, "bench_roundtrip: --role echo needs --url\n");
        return 2;
    }
    auto worker = iii::register_worker(o.url, worker_options(o.inline_handlers));
    worker->register_function(iii::RegisterFunctionMessage::with_id("echo"),
                              [](iii::Value payload) -> asio::awaitable<iii::Value> {
                                  co_return payload;
                              });
    // Commands from the parent, one a line: "cpu" (answer with the cumulative CPU µs of this
    // process), "quit" (or EOF).
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line == "cpu") {
            std::printf("cpu %lld\n", static_cast<long long>(rusage_us(RUSAGE_SELF)));
            std::fflush(stdout);
        } else if (line == "quit") {
            break;
        }
    }
    worker->shutdown();
    worker.reset();
    return 0;
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

const char* const hops_note =
    "The SDK path crosses the engine: caller -> engine -> echo worker and back, two WebSocket "
    "hops each way and three processes. The raw baseline is one WebSocket hop each way (a "
    "websocketpp client and echo server on two threads of one process, no JSON parsing).";

void print_json(const Options& o, std::size_t payload_size, const std::string& url, bool spawned,
                const std::vector<Phase>& sdk, const std::vector<Phase>& raw,
                const bench::Provenance& provenance) {
    iii::Value config = iii::Value::object();
    config.set("calls", o.calls).set("warmup", *o.warmup).set("inflight", o.inflight);
    config.set("payload_bytes", payload_size).set("engine_url", url).set("engine_spawned", spawned);
    config.set("hardware_threads", std::thread::hardware_concurrency());
    config.set("echo_handlers_on_io_thread", o.inline_handlers);
    iii::Value sdk_v = iii::Value::object(), raw_v = iii::Value::object(), ratio = iii::Value::object();
    for (std::size_t i = 0; i < sdk.size() && i < raw.size(); ++i) {
        sdk_v.set(sdk[i].mode, phase_json(sdk[i]));
        raw_v.set(raw[i].mode, phase_json(raw[i]));
        iii::Value r = iii::Value::object();
        r.set("calls_per_s", round2(sdk[i].calls_per_s / raw[i].calls_per_s));
        r.set("p50", round2(sdk[i].p50_us / raw[i].p50_us));
        ratio.set(sdk[i].mode, std::move(r));
    }
    iii::Value out = iii::Value::object();
    out.set("config", std::move(config)).set("sdk", std::move(sdk_v)).set("baseline", std::move(raw_v));
    out.set("sdk_to_baseline", std::move(ratio)).set("note", hops_note);
    out.set("provenance", provenance.to_value());
    std::printf("%s\n", out.dump().c_str());
}

void print_table(const Options& o, std::size_t payload_size, const std::string& url, bool spawned,
                 const std::vector<Phase>& sdk, const std::vector<Phase>& raw,
                 const bench::Provenance& provenance) {
    std::printf("bench_roundtrip: `echo` round trips, %zu calls per phase (after %zu warm-up), "
                "payload %zu B of JSON%s\n",
                o.calls, *o.warmup, payload_size,
                o.inline_handlers ? ", echo handler on its io thread" : "");
    std::printf("engine: %s (%s), %u hardware threads\n", url.c_str(),
                spawned ? "iii-test-engine, spawned" : "external", std::thread::hardware_concurrency());
    std::printf("%s\n\n", bench::describe(provenance.to_value()).c_str());
    // (Widths count bytes: each "µ" takes two.)
    std::printf("%-22s %10s %9s %9s %10s    %s\n", "", "calls/s", "p50 µs", "p99 µs", "p99.9 µs",
                "CPU µs per call");
    auto row = [](const char* path, const Phase& p) {
        std::string label = std::string(path) + " " + p.mode;
        if (p.inflight > 1) label += " (" + std::to_string(p.inflight) + ")";
        std::string cpu;
        for (const auto& [who, us] : p.cpu_us_per_call) {
            char cell[64];
            std::snprintf(cell, sizeof cell, "%s%s %.1f", cpu.empty() ? "" : "  ", who.c_str(), us);
            cpu += cell;
        }
        std::printf("%-22s %10.0f %8.1f %8.1f %9.1f    %s\n", label.c_str(), p.calls_per_s, p.p50_us,
                    p.p99_us, p.p999_us, cpu.c_str());
    };
    for (const auto& p : sdk) row("SDK", p);
    for (const auto& p : raw) row("raw", p);
    std::printf("\n%-22s %14s %10s\n", "SDK / raw", "calls/s ratio", "p50 ratio");
    for (std::size_t i = 0; i < sdk.size() && i < raw.size(); ++i) {
        std::string label = sdk[i].mode;
        if (sdk[i].inflight > 1) label += " (" + std::to_string(sdk[i].inflight) + ")";
        std::printf("%-22s %13.2fx %9.2fx\n", label.c_str(), sdk[i].calls_per_s / raw[i].calls_per_s,
                    sdk[i].p50_us / raw[i].p50_us);
    }
    std::printf("\nNote: %s\nCPU: getrusage of the caller and echo worker processes, the engine's "
                "threads from /proc; raw: per thread.\n",
                hops_note);
}

// ---- main ------------------------------------------------------------------------------------

int run_bench(const Options& o) {
    const bench::Provenance provenance;  // load before; to_value() adds the load after
    const iii::Value payload = make_payload(o.payload_bytes);
    const std::string payload_text = payload.dump();
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

    std::vector<Phase> raw = run_baseline(o, payload_text);

    std::vector<Phase> sdk;
    {
        asio::io_context io;  // the caller worker and the bench coroutines share this thread
        auto caller = iii::register_worker(io, url, worker_options());
        SdkRun run{*caller, payload, o, echo, spawned ? engine.pid() : o.engine_pid, {}};
        std::exception_ptr error;
        asio::co_spawn(io, run_sdk(run), [&](std::exception_ptr e) {
            error = e;
            caller->shutdown();
            io.stop();
        });
        io.run();
        if (error) std::rethrow_exception(error);
        sdk = std::move(run.results);
    }

    if (echo.stop(SIGTERM, std::chrono::seconds(5)) != 0)
        std::fprintf(stderr, "bench_roundtrip: the echo worker did not exit cleanly\n");
    if (spawned) engine.stop(SIGTERM, std::chrono::seconds(5));

    if (o.json) print_json(o, payload_text.size(), url, spawned, sdk, raw, provenance);
    else print_table(o, payload_text.size(), url, spawned, sdk, raw, provenance);
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
        if (!options.role.empty()) throw std::invalid_argument("unknown role '" + options.role + "'");
        return run_bench(options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_roundtrip: %s\n", e.what());
        return 1;
    }
}
