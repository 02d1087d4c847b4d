// Channel throughput benchmark: worker A streams N MiB through a data channel to worker B via
// the engine, against raw websocketpp binary throughput over loopback (the baseline), both
// measured in the same run.
//
//   bench_channels [--mib N] [--rounds N] [--json] [--url ws://HOST:PORT | --engine PATH]
//
// SDK path: the engine is `iii-test-engine` in its own process (spawned from ../lib/testing/
// next to this binary, or --engine PATH; the embedded iii::testing::Engine when neither exists)
// unless --url names one. Worker A (this thread) creates a channel with the engine's default
// buffer, calls `bench::sink` on worker B (its own io thread) with the reader ref and writes
// N MiB through its ChannelWriter in 1 MiB writes (64 KiB frames); B reads with the
// ChannelReader it opens from the ref, checksums every byte and returns the checksum, which A
// verifies. Timed from the first write to both the call's result and the writer's close.
//
// Baseline: one plain websocketpp connection (lib/transport) from a client on this thread to a
// server thread of this process, the same N MiB in 64 KiB binary frames, checksummed by the
// server. The client keeps at most 1 MiB queued in websocketpp (the SDK writer's bound) and,
// like the SDK writer, refills a full queue when the transport signals send progress
// (transport::Callbacks::on_drain). Timed from the first send to the server's end of the close
// handshake.
//
// Each round runs both paths (raw first); the table shows the best round of each and the
// medians of the per-round SDK/raw ratios. CPU: user + system time per MiB over the timed span,
// of this process (both workers, or both raw ends) plus the spawned engine process. Memory: the
// process's peak RSS (VmHWM, reset through /proc/self/clear_refs before each path), the
// engine process's VmHWM and the most bytes the SDK writer had queued on its socket.

#include <cstddef>  // first: see lib/transport/ws_transport.hpp

#include <iii/channel.hpp>
#include <iii/iii.hpp>
#include <iii/testing/engine.hpp>

#include "bench_support.hpp"
#include "transport/ws_transport.hpp"

#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <signal.h>
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
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using namespace asio::experimental::awaitable_operators;
namespace transport = iii::detail::transport;

constexpr std::size_t mib = 1u << 20;
constexpr std::size_t frame_bytes = iii::ChannelWriter::frame_size;     // 64 KiB, both paths
constexpr std::size_t queue_bound = iii::ChannelWriter::max_buffered;  // 1 MiB, both paths

// ---- options ---------------------------------------------------------------------------------

struct Options {
    std::size_t mib = 256;
    std::size_t rounds = 3;
    bool json = false;
    std::string url;
    std::string engine;
};

void usage(std::FILE* out) {
    std::fputs(
        "usage: bench_channels [options]\n"
        "  --mib N        MiB streamed per path and round (default 256)\n"
        "  --rounds N     rounds; the best of each path is shown (default 3)\n"
        "  --json         print one JSON object instead of the table\n"
        "  --url URL      use the engine at URL (ws://host:port) instead of spawning one\n"
        "  --engine PATH  the iii-test-engine executable to spawn\n"
        "                 (default: ../lib/testing/iii-test-engine next to this binary)\n",
        out);
}

std::size_t parse_count(const char* name, const std::string& text, std::size_t min, std::size_t max) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || text[0] == '-' || value < min || value > max)
        throw std::invalid_argument(std::string(name) + " needs a number in " + std::to_string(min) +
                                    ".." + std::to_string(max) + ", got '" + text + "'");
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
        if (arg == "--json") {
            o.json = true;
            continue;
        }
        if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
        const std::string value = argv[++i];
        if (arg == "--mib") o.mib = parse_count("--mib", value, 1, 1u << 16);
        else if (arg == "--rounds") o.rounds = parse_count("--rounds", value, 1, 100);
        else if (arg == "--url") o.url = value;
        else if (arg == "--engine") o.engine = value;
        else throw std::invalid_argument("unknown option '" + arg + "'");
    }
    return o;
}

// ---- data and checksum -----------------------------------------------------------------------

// Order-sensitive 64-bit checksum over 8-byte words, fast enough (several GB/s) not to limit
// either path. Chunk boundaries do not matter: a partial word waits for the next chunk.
class Checksum {
public:
    void add(const std::uint8_t* p, std::size_t n) {
        bytes_ += n;
        while (pending_ > 0 && pending_ < 8 && n > 0) {
            tail_[pending_++] = *p++;
            --n;
        }
        if (pending_ == 8) {
            mix_word(tail_);
            pending_ = 0;
        }
        for (; n >= 8; p += 8, n -= 8) mix_word(p);
        while (n > 0) {
            tail_[pending_++] = *p++;
            --n;
        }
    }
    std::uint64_t value() const {
        std::uint64_t h = h_;
        for (std::size_t i = 0; i < pending_; ++i) h = (h ^ tail_[i]) * prime;
        return (h ^ bytes_) * prime;
    }
    std::uint64_t bytes() const { return bytes_; }

private:
    static constexpr std::uint64_t prime = 0x100000001b3ull;
    void mix_word(const std::uint8_t* p) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        h_ = ((h_ << 5 | h_ >> 59) ^ w) * prime;
    }
    std::uint64_t h_ = 0xcbf29ce484222325ull;
    std::uint64_t bytes_ = 0;
    std::uint8_t tail_[8] = {};
    std::size_t pending_ = 0;
};

// The stream: a 1 MiB block of pseudo-random bytes, sent `mib` times, each copy stamped with
// its index in its first 8 bytes (so a lost, repeated or reordered MiB changes the checksum).
struct Stream {
    explicit Stream(std::size_t mib_count) : count(mib_count), block(mib) {
        std::uint64_t x = 0x2545f4914f6cdd1dull;
        for (auto& b : block) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b = static_cast<std::uint8_t>(x >> 24);
        }
        Checksum sum;
        for (std::size_t i = 0; i < count; ++i) {
            sum.add(stamp(i).data(), mib);
        }
        expected = sum.value();
    }
    const std::vector<std::uint8_t>& stamp(std::size_t i) {
        const std::uint64_t index = i;
        std::memcpy(block.data(), &index, sizeof index);
        return block;
    }
    std::size_t count;
    std::vector<std::uint8_t> block;
    std::uint64_t expected = 0;
};

// ---- memory ----------------------------------------------------------------------------------

// A "VmHWM:" / "VmRSS:" line of /proc/<pid>/status, in bytes.
std::optional<std::size_t> proc_status_kb(const std::string& pid, std::string_view key) {
    std::ifstream status("/proc/" + pid + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind(key, 0) == 0) return std::strtoull(line.c_str() + key.size(), nullptr, 10) * 1024;
    return std::nullopt;
}

// Resets this process's VmHWM to its current RSS (Linux >= 4.0); false when not allowed.
bool reset_peak_rss() {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
    clear.flush();
    return static_cast<bool>(clear);
}

struct Memory {
    std::size_t rss_before = 0;  // VmRSS when the path started
    std::size_t peak = 0;        // VmHWM at its end
};

// ---- one measured transfer -------------------------------------------------------------------

struct Result {
    double seconds = 0;
    double mb_per_s = 0;  // 10^6 bytes per second
    Memory memory;
    std::size_t writer_peak_buffered = 0;  // SDK only
    // CPU time over the timed span: this process (both workers, or both raw ends) and, for the
    // SDK path through a spawned engine, the engine process.
    std::int64_t self_cpu_us = 0;
    std::optional<std::int64_t> engine_cpu_us;
    // All of it, per MiB moved.
    double cpu_us_per_mib(std::size_t mib_count) const {
        return static_cast<double>(self_cpu_us + engine_cpu_us.value_or(0)) / static_cast<double>(mib_count);
    }
};

void finish(Result& r, std::size_t bytes, Clock::duration elapsed) {
    r.seconds = std::chrono::duration<double>(elapsed).count();
    r.mb_per_s = r.seconds > 0 ? static_cast<double>(bytes) / r.seconds / 1e6 : 0;
}

// ---- raw baseline: websocketpp client -> server, no SDK --------------------------------------

// The sending side, on the client io_context's thread.
class RawSender {
public:
    RawSender(asio::io_context& io, Stream& stream) : io_(io), stream_(stream) {}

    void start(const std::string& url) {
        transport::Callbacks cb;
        cb.on_open = [this] {
            started_ = Clock::now();
            started_flag_ = true;
            pump();
        };
        // Send progress: refill, posted (not inside websocketpp's write path), once per burst.
        cb.on_drain = [this] {
            if (!started_flag_ || pump_posted_) return;
            pump_posted_ = true;
            asio::post(io_, [this] {
                pump_posted_ = false;
                pump();
            });
        };
        cb.on_close = [this](std::error_code ec, std::uint16_t, std::string) {
            if (!closing_ && error_.empty())
                error_ = "raw baseline connection closed early" + (ec ? ": " + ec.message() : "");
            io_.stop();
        };
        socket_ = transport::connect(io_, url, {}, std::move(cb));
    }

    Clock::time_point started() const { return started_; }
    const std::string& error() const { return error_; }

private:
    void pump() {
        if (closing_) return;
        const std::size_t frames_per_mib = mib / frame_bytes;
        const std::size_t total = stream_.count * frames_per_mib;
        while (next_ < total && socket_->buffered_amount() + frame_bytes <= queue_bound) {
            const std::size_t i = next_ / frames_per_mib, part = next_ % frames_per_mib;
            const auto& block = part == 0 ? stream_.stamp(i) : stream_.block;
            std::string_view frame(reinterpret_cast<const char*>(block.data()) + part * frame_bytes,
                                   frame_bytes);
            if (auto ec = socket_->send(frame, true)) {
                error_ = "raw send failed: " + ec.message();
                socket_->abort();
                return;
            }
            ++next_;
        }
        if (next_ == total && socket_->buffered_amount() == 0) {
            closing_ = true;  // everything left: end as the SDK writer does
            socket_->close(1000, "stream_complete");
            return;
        }
        // Over the bound (or the last frames still queued): on_drain calls again.
    }

    asio::io_context& io_;
    Stream& stream_;
    std::shared_ptr<transport::Socket> socket_;
    bool started_flag_ = false;  // all on the client io thread
    bool pump_posted_ = false;
    std::size_t next_ = 0;
    bool closing_ = false;
    Clock::time_point started_;
    std::string error_;
};

Result run_raw(Stream& stream) {
    Memory memory;
    reset_peak_rss();
    memory.rss_before = proc_status_kb("self", "VmRSS:").value_or(0);

    // The receiving side, on the server thread.
    asio::io_context server_io;
    std::shared_ptr<transport::Socket> server_socket;  // server thread only
    Checksum sum;
    std::size_t frames = 0;
    std::optional<Clock::time_point> ended;
    transport::Server::Handlers handlers;
    handlers.on_accept = [&](const std::shared_ptr<transport::Socket>& socket, const std::string&) {
        server_socket = socket;
        transport::Callbacks cb;
        cb.on_message = [&](std::string&& data, bool binary) {
            if (!binary) return;
            sum.add(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
            ++frames;
        };
        cb.on_close = [&](std::error_code, std::uint16_t, std::string) { ended = Clock::now(); };
        return cb;
    };
    transport::Server server(server_io, std::move(handlers));
    const std::uint16_t port = server.listen(0);
    auto work = asio::make_work_guard(server_io);
    std::thread server_thread([&server_io] { server_io.run(); });

    asio::io_context client_io;
    RawSender sender(client_io, stream);
    const std::int64_t cpu0 = bench::rusage_us(RUSAGE_SELF);
    sender.start("ws://127.0.0.1:" + std::to_string(port) + "/");
    client_io.run();

    // The client has seen the close handshake end; the server's on_close runs on its thread
    // just before or after, so read the results there once it has.
    std::optional<Clock::time_point> end;
    for (const auto deadline = Clock::now() + std::chrono::seconds(10); !end && Clock::now() < deadline;) {
        std::promise<std::optional<Clock::time_point>> seen;
        auto result = seen.get_future();
        asio::post(server_io, [&] { seen.set_value(ended); });
        end = result.get();
        if (!end) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const std::int64_t cpu1 = bench::rusage_us(RUSAGE_SELF);
    asio::post(server_io, [&] {
        server.stop_listening();
        if (server_socket) server_socket->abort();
        server_socket.reset();
        work.reset();
    });
    server_thread.join();

    if (!sender.error().empty()) throw std::runtime_error(sender.error());
    if (!end) throw std::runtime_error("raw baseline: the server never saw the end of the stream");
    if (sum.bytes() != stream.count * mib || sum.value() != stream.expected)
        throw std::runtime_error("raw baseline: the server received different bytes (" +
                                 std::to_string(sum.bytes()) + " bytes, " + std::to_string(frames) +
                                 " frames)");
    Result r;
    finish(r, stream.count * mib, *end - sender.started());
    memory.peak = proc_status_kb("self", "VmHWM:").value_or(0);
    r.memory = memory;
    r.self_cpu_us = cpu1 - cpu0;
    return r;
}

// ---- SDK: worker A -> engine -> worker B -----------------------------------------------------

iii::InitOptions worker_options() {
    iii::InitOptions init;
    iii::OtelConfig otel;
    otel.enabled = false;  // nothing but the benchmark on the wire
    init.otel = otel;
    init.invocation_timeout = std::chrono::minutes(10);  // a slow machine must not cut the call
    return init;
}

constexpr std::string_view sink_id = "bench::sink";

// Worker B's function: {"input": <read ref>} -> {"bytes", "frames", "checksum"}.
void register_sink(const std::shared_ptr<iii::Client>& b) {
    b->register_function(
        iii::RegisterFunctionMessage::with_id(std::string(sink_id)),
        [c = b.get()](iii::Value in) -> asio::awaitable<iii::Value> {
            iii::ChannelReader reader(*c, iii::StreamChannelRef::from_value(in.at("input")));
            Checksum sum;
            std::uint64_t frames = 0;
            while (auto chunk = co_await reader.next_binary()) {
                sum.add(chunk->data(), chunk->size());
                ++frames;
            }
            iii::Value out = iii::Value::object();
            out.set("bytes", sum.bytes()).set("frames", frames).set("checksum", sum.value());
            co_return out;
        });
}

asio::awaitable<void> sleep_ms(int ms) {
    asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
    co_await timer.async_wait(asio::use_awaitable);
}

// Waits until the engine lists B's function (registrations are not acknowledged).
asio::awaitable<void> wait_for_sink(iii::Client& a) {
    if (!co_await a.wait_for_state(iii::ConnectionState::Connected, std::chrono::seconds(10)))
        throw std::runtime_error("worker A could not connect to " + a.address());
    for (int attempt = 0; attempt < 500; ++attempt) {
        auto functions = co_await a.list_functions();
        for (const auto& f : functions)
            if (f.function_id == sink_id) co_return;
        co_await sleep_ms(20);
    }
    throw std::runtime_error("worker B's function never reached the engine");
}

asio::awaitable<void> write_stream(iii::ChannelWriter& writer, Stream& stream) {
    for (std::size_t i = 0; i < stream.count; ++i) {
        std::span<const std::uint8_t> bytes(stream.stamp(i));
        co_await writer.write(bytes);  // completes once handed to the socket (<= 1 MiB queued)
    }
    co_await writer.close();
}

asio::awaitable<Result> transfer(iii::Client& a, Stream& stream, pid_t engine_pid) {
    Memory memory;
    reset_peak_rss();
    memory.rss_before = proc_status_kb("self", "VmRSS:").value_or(0);

    auto channel = co_await iii::create_channel(a);  // the engine's default buffer (64 frames)
    iii::Value payload = iii::Value::object();
    payload.set("input", channel.reader_ref.to_value());
    iii::TriggerRequest request(std::string(sink_id), std::move(payload));

    const std::int64_t cpu0 = bench::rusage_us(RUSAGE_SELF);
    const auto engine_cpu0 = engine_pid > 0 ? bench::process_cpu_us(engine_pid) : std::nullopt;
    const auto t0 = Clock::now();
    auto call = a.trigger(std::move(request));
    auto write = write_stream(channel.writer, stream);
    auto both = std::move(call) && std::move(write);
    iii::Value result = co_await std::move(both);
    const auto elapsed = Clock::now() - t0;
    const std::int64_t cpu1 = bench::rusage_us(RUSAGE_SELF);
    const auto engine_cpu1 = engine_pid > 0 ? bench::process_cpu_us(engine_pid) : std::nullopt;

    if (result["bytes"].as_uint() != stream.count * mib || result["checksum"].as_uint() != stream.expected)
        throw std::runtime_error("SDK: worker B received different bytes: " + result.dump());
    if (result["frames"].as_uint() != stream.count * mib / frame_bytes)
        throw std::runtime_error("SDK: unexpected frame count: " + result.dump());
    Result r;
    finish(r, stream.count * mib, elapsed);
    memory.peak = proc_status_kb("self", "VmHWM:").value_or(0);
    r.memory = memory;
    r.writer_peak_buffered = channel.writer.peak_buffered();
    r.self_cpu_us = cpu1 - cpu0;
    if (engine_cpu0 && engine_cpu1) r.engine_cpu_us = *engine_cpu1 - *engine_cpu0;
    co_return r;
}

// ---- output ----------------------------------------------------------------------------------

double round2(double x) { return std::round(x * 100.0) / 100.0; }
double to_mib(std::size_t bytes) { return static_cast<double>(bytes) / static_cast<double>(mib); }

const Result& best(const std::vector<Result>& results) {
    return *std::max_element(results.begin(), results.end(),
                             [](const Result& x, const Result& y) { return x.mb_per_s < y.mb_per_s; });
}

// The median over rounds of sdk[i] / raw[i] (both paths run back to back in each round, so a
// round's ratio does not swing with how busy the machine was).
template <class F>
double median_ratio(const std::vector<Result>& sdk, const std::vector<Result>& raw, F value) {
    std::vector<double> ratios;
    for (std::size_t i = 0; i < sdk.size() && i < raw.size(); ++i)
        if (value(raw[i]) > 0) ratios.push_back(value(sdk[i]) / value(raw[i]));
    if (ratios.empty()) return 0;
    std::sort(ratios.begin(), ratios.end());
    const std::size_t n = ratios.size();
    return n % 2 ? ratios[n / 2] : (ratios[n / 2 - 1] + ratios[n / 2]) / 2;
}

const char* const hops_note =
    "The SDK path is two WebSocket hops (A -> engine -> B) through a third process, with the "
    "engine's 64-frame queue in between; the raw path is one hop between two threads of one "
    "process. The ratio therefore bounds the SDK's cost from above.";

struct Report {
    const Options& options;
    std::string url;
    std::string engine_kind;
    std::vector<Result> sdk, raw;
    std::optional<std::size_t> engine_peak;
    bool peak_reset = false;
    bench::Provenance provenance{};  // constructed before the rounds: the load before them
};

iii::Value result_json(const Result& r, std::size_t mib_count) {
    iii::Value v = iii::Value::object();
    v.set("mb_per_s", round2(r.mb_per_s)).set("seconds", std::round(r.seconds * 1000) / 1000);
    v.set("cpu_us_per_mib", std::round(r.cpu_us_per_mib(mib_count))).set("self_cpu_us", r.self_cpu_us);
    v.set("engine_cpu_us", r.engine_cpu_us ? iii::Value(*r.engine_cpu_us) : iii::Value());
    v.set("peak_rss_bytes", r.memory.peak).set("rss_before_bytes", r.memory.rss_before);
    return v;
}

void print_json(const Report& rep) {
    const Result& sdk = best(rep.sdk);
    const Result& raw = best(rep.raw);
    iii::Value config = iii::Value::object();
    config.set("mib", rep.options.mib).set("rounds", rep.options.rounds);
    config.set("frame_bytes", frame_bytes).set("queue_bound_bytes", queue_bound);
    config.set("engine_url", rep.url).set("engine", rep.engine_kind);
    config.set("hardware_threads", std::thread::hardware_concurrency());
    iii::Value sdk_v = result_json(sdk, rep.options.mib), raw_v = result_json(raw, rep.options.mib);
    sdk_v.set("writer_peak_buffered_bytes", sdk.writer_peak_buffered);
    iii::Value sdk_rounds = iii::Value::array(), raw_rounds = iii::Value::array();
    for (const auto& r : rep.sdk) sdk_rounds.push_back(round2(r.mb_per_s));
    for (const auto& r : rep.raw) raw_rounds.push_back(round2(r.mb_per_s));
    sdk_v.set("rounds_mb_per_s", std::move(sdk_rounds));
    raw_v.set("rounds_mb_per_s", std::move(raw_rounds));
    iii::Value out = iii::Value::object();
    out.set("config", std::move(config)).set("sdk", std::move(sdk_v)).set("raw", std::move(raw_v));
    out.set("sdk_to_raw", round2(sdk.mb_per_s / raw.mb_per_s));
    out.set("sdk_to_raw_median_of_rounds",
            round2(median_ratio(rep.sdk, rep.raw, [](const Result& r) { return r.mb_per_s; })));
    const std::size_t mib_count = rep.options.mib;
    out.set("sdk_to_raw_cpu_per_mib_median_of_rounds",
            round2(median_ratio(rep.sdk, rep.raw, [mib_count](const Result& r) { return r.cpu_us_per_mib(mib_count); })));
    out.set("engine_peak_rss_bytes", rep.engine_peak ? iii::Value(*rep.engine_peak) : iii::Value());
    out.set("peak_rss_reset_per_path", rep.peak_reset).set("note", hops_note);
    out.set("provenance", rep.provenance.to_value());
    std::printf("%s\n", out.dump().c_str());
}

void print_table(const Report& rep) {
    const Result& sdk = best(rep.sdk);
    const Result& raw = best(rep.raw);
    std::printf("bench_channels: %zu MiB per path in %zu KiB binary frames, best of %zu round%s\n",
                rep.options.mib, frame_bytes / 1024, rep.options.rounds, rep.options.rounds == 1 ? "" : "s");
    std::printf("engine: %s (%s), %u hardware threads\n", rep.url.c_str(), rep.engine_kind.c_str(),
                std::thread::hardware_concurrency());
    std::printf("%s\n\n", bench::describe(rep.provenance.to_value()).c_str());
    const std::size_t mib_count = rep.options.mib;
    std::printf("%-34s %9s %9s %12s %14s %12s\n", "", "MB/s", "seconds", "CPU us/MiB", "peak RSS MiB",
                "RSS before");
    auto row = [mib_count](const char* label, const Result& r) {
        std::printf("%-34s %9.1f %9.3f %12.0f %14.1f %12.1f\n", label, r.mb_per_s, r.seconds,
                    r.cpu_us_per_mib(mib_count), to_mib(r.memory.peak), to_mib(r.memory.rss_before));
    };
    row("SDK channel  A -> engine -> B", sdk);
    row("raw websocketpp  client -> server", raw);
    std::printf("\nSDK / raw throughput: %.2fx best rounds, %.2fx median of per-round ratios\n",
                sdk.mb_per_s / raw.mb_per_s,
                median_ratio(rep.sdk, rep.raw, [](const Result& r) { return r.mb_per_s; }));
    std::printf("SDK / raw CPU per MiB (all processes): %.2fx median of per-round ratios",
                median_ratio(rep.sdk, rep.raw, [mib_count](const Result& r) { return r.cpu_us_per_mib(mib_count); }));
    if (sdk.engine_cpu_us)
        std::printf(" (best SDK round: workers %.0f, engine %.0f us/MiB)",
                    static_cast<double>(sdk.self_cpu_us) / static_cast<double>(mib_count),
                    static_cast<double>(*sdk.engine_cpu_us) / static_cast<double>(mib_count));
    std::printf("\n");
    std::printf("SDK writer: at most %zu bytes queued on its socket (bound %zu)\n",
                sdk.writer_peak_buffered, queue_bound);
    if (rep.engine_peak)
        std::printf("engine process: peak RSS (VmHWM) %.1f MiB over the whole run\n", to_mib(*rep.engine_peak));
    std::printf("rounds, MB/s: SDK");
    for (const auto& r : rep.sdk) std::printf(" %.1f", r.mb_per_s);
    std::printf("; raw");
    for (const auto& r : rep.raw) std::printf(" %.1f", r.mb_per_s);
    std::printf("\n\nCPU: user + system time over the timed span of this process (both workers, or "
                "both raw ends) plus the spawned engine's.\n");
    std::printf("Peak RSS: this process's VmHWM, %s; it holds both workers (SDK) or both "
                "ends (raw)%s.\nNote: %s\n",
                rep.peak_reset ? "reset before each path" : "NOT resettable here, so cumulative",
                rep.engine_kind == "embedded" ? " and the embedded engine" : "", hops_note);
}

// ---- main ------------------------------------------------------------------------------------

int run_bench(const Options& o) {
    Stream stream(o.mib);
    Report rep{o, o.url, "external", {}, {}, std::nullopt, reset_peak_rss()};

    bench::Child engine_process;
    std::unique_ptr<iii::testing::Engine> embedded;
    if (rep.url.empty()) {
        const std::string path = o.engine.empty() ? bench::default_engine_path() : o.engine;
        if (access(path.c_str(), X_OK) == 0) {
            rep.url = bench::spawn_test_engine(engine_process, path);
            rep.engine_kind = "iii-test-engine, spawned";
        } else if (!o.engine.empty()) {
            throw std::runtime_error("no executable engine at " + path);
        } else {
            iii::testing::EngineOptions engine_options;
            engine_options.record_frames = false;  // keep its memory flat
            embedded = std::make_unique<iii::testing::Engine>(engine_options);
            rep.url = embedded->url();
            rep.engine_kind = "embedded";
        }
    }

    auto b = iii::register_worker(rep.url, worker_options());  // its own io thread
    register_sink(b);
    asio::io_context io;  // worker A and the benchmark coroutines share this thread
    auto a = iii::register_worker(io, rep.url, worker_options());

    auto rounds = [&]() -> asio::awaitable<void> {
        co_await wait_for_sink(*a);
        for (std::size_t i = 0; i < o.rounds; ++i) {
            rep.raw.push_back(run_raw(stream));  // blocks this thread: A is idle meanwhile
            rep.sdk.push_back(co_await transfer(*a, stream, engine_process.pid()));
        }
        co_await a->shutdown_async();
    };
    std::exception_ptr error;
    asio::co_spawn(io, rounds(), [&](std::exception_ptr e) {
        error = e;
        a->shutdown();
        io.stop();
    });
    io.run();
    a.reset();
    b->shutdown();
    b.reset();
    if (error) std::rethrow_exception(error);

    if (engine_process.pid() > 0)
        rep.engine_peak = proc_status_kb(std::to_string(engine_process.pid()), "VmHWM:");
    engine_process.stop(SIGTERM, std::chrono::seconds(5));
    embedded.reset();

    if (o.json) print_json(rep);
    else print_table(rep);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    signal(SIGPIPE, SIG_IGN);
    Options options;
    try {
        options = parse_options(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_channels: %s\n", e.what());
        usage(stderr);
        return 2;
    }
    try {
        return run_bench(options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_channels: %s\n", e.what());
        return 1;
    }
}
