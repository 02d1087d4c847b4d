// Data channels (spec section 6) through the test engine: refs passed between workers, a
// 64 MiB stream with a message in the middle, both directions at once, backpressure, empty
// streams, early close and the error paths.

#include "run.hpp"

#include <iii/channel.hpp>

#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/this_coro.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <thread>

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using test_support::run_sync;
using test_support::wait_function;

namespace {

iii::InitOptions options() {
    auto o = test_support::fast_options();
    o.invocation_timeout = 30000ms;
    return o;
}

struct Fnv {
    std::uint64_t h = 14695981039346656037ull;
    void add(const std::uint8_t* p, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            h ^= p[i];
            h *= 1099511628211ull;
        }
    }
};

std::uint8_t byte_at(std::uint64_t i) { return static_cast<std::uint8_t>((i * 2654435761u) >> 13); }

void fill(std::vector<std::uint8_t>& block, std::uint64_t offset) {
    for (std::size_t i = 0; i < block.size(); ++i) block[i] = byte_at(offset + i);
}

struct Workers {
    iii::testing::Engine engine;
    std::shared_ptr<iii::Client> a = iii::register_worker(engine.url(), options());
    std::shared_ptr<iii::Client> b = iii::register_worker(engine.url(), options());
    asio::io_context ioc;
};

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
    asio::steady_timer timer(co_await asio::this_coro::executor, d);
    co_await timer.async_wait(asio::use_awaitable);
}

/// Writes `total` bytes in 1 MiB blocks (a text message before the block at `message_at`),
/// closes, and returns the FNV-1a of the bytes.
asio::awaitable<std::uint64_t> stream(iii::ChannelWriter& writer, std::size_t total,
                                      std::size_t message_at, std::string message) {
    Fnv fnv;
    std::vector<std::uint8_t> block(1u << 20);
    for (std::size_t off = 0; off < total; off += block.size()) {
        if (off == message_at) co_await writer.send_message(message);
        block.resize(std::min<std::size_t>(1u << 20, total - off));
        fill(block, off);
        fnv.add(block.data(), block.size());
        std::span<const std::uint8_t> bytes(block);
        co_await writer.write(bytes);
    }
    co_await writer.close();
    co_return fnv.h;
}

/// Registers "sink" on `client`: reads the channel whose read ref is anywhere in the payload
/// and returns {fnv, bytes, frames, max_frame, messages, message_offsets, path}.
void register_sink(const std::shared_ptr<iii::Client>& client) {
    client->register_function(
        iii::RegisterFunctionMessage::with_id("sink"),
        [c = client.get()](iii::Value in) -> asio::awaitable<iii::Value> {
            auto refs = iii::extract_channel_refs(in);
            if (refs.size() != 1) throw std::runtime_error("expected exactly one channel ref");
            iii::ChannelReader reader(*c, refs[0].second);
            Fnv fnv;
            std::uint64_t bytes = 0, frames = 0, max_frame = 0;
            iii::Value messages = iii::Value::array();
            iii::Value offsets = iii::Value::array();
            reader.on_message([&](const std::string& text) {
                messages.push_back(iii::Value(text));
                offsets.push_back(iii::Value(bytes));
            });
            while (auto chunk = co_await reader.next_binary()) {
                fnv.add(chunk->data(), chunk->size());
                bytes += chunk->size();
                ++frames;
                max_frame = std::max<std::uint64_t>(max_frame, chunk->size());
            }
            iii::Value out = iii::Value::object();
            out.set("fnv", fnv.h).set("bytes", bytes).set("frames", frames);
            out.set("max_frame", max_frame).set("messages", messages);
            out.set("message_offsets", offsets).set("path", refs[0].first);
            co_return out;
        });
}

asio::awaitable<std::pair<iii::Value, std::uint64_t>> big_transfer(Workers& w, std::size_t total) {
    auto channel = co_await iii::create_channel(*w.a);
    iii::Value payload = iii::Value::object();
    payload.set("job", iii::Value::object({{"input", channel.reader_ref.to_value()}}));
    auto call = w.a->trigger(iii::TriggerRequest("sink", payload));
    auto write = stream(channel.writer, total, total / 2, "halfway");
    auto both = std::move(call) && std::move(write);
    auto [result, hash] = co_await std::move(both);
    co_return std::make_pair(std::move(result), hash);
}

iii::Errc errc_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const iii::Error& error) {
        return error.errc();
    } catch (...) {
    }
    return iii::Errc::Runtime;
}

}  // namespace

TEST_CASE("channel refs serialize, parse and are found anywhere in a payload", "[channels]") {
    iii::StreamChannelRef ref("id-1", "k y/+", iii::ChannelDirection::Write);
    auto v = ref.to_value();
    CHECK(v == iii::Value({{"channel_id", "id-1"}, {"access_key", "k y/+"}, {"direction", "write"}}));
    CHECK(iii::StreamChannelRef::from_value(v) == ref);
    CHECK(iii::channel_url("ws://h:1/", ref) == "ws://h:1/ws/channels/id-1?key=k%20y%2F%2B&dir=write");

    iii::Value reader = iii::StreamChannelRef("c", "k", iii::ChannelDirection::Read).to_value();
    iii::Value data = {{"a", {{"b", iii::Value::array({1, 2, {{"c", reader}}})}}}, {"w", v}};
    auto refs = iii::extract_channel_refs(data);
    REQUIRE(refs.size() == 2);
    CHECK(refs[0].first == "a.b[2].c");
    CHECK(refs[0].second.direction == iii::ChannelDirection::Read);
    CHECK(refs[1].first == "w");
    CHECK(iii::extract_channel_refs(reader).at(0).first.empty());

    iii::Value bad = {{"channel_id", "c"}, {"access_key", "k"}, {"direction", "sideways"}};
    CHECK_FALSE(iii::StreamChannelRef::is_ref(bad));
    CHECK(iii::extract_channel_refs(bad).empty());
    try {
        iii::StreamChannelRef::from_value(bad);
        FAIL("expected Serde");
    } catch (const iii::Error& e) {
        CHECK(e.errc() == iii::Errc::Serde);
    }
}

TEST_CASE("64 MiB stream to another worker with a message in the middle", "[channels][integration]") {
    Workers w;
    register_sink(w.b);
    REQUIRE(wait_function(w.engine, "sink"));
    constexpr std::size_t total = 64u << 20;
    const auto started = std::chrono::steady_clock::now();
    auto [result, hash] = run_sync(w.ioc, big_transfer(w, total), 60s);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started).count();
    WARN("64 MiB through the channel in " << ms << " ms");
    CHECK(result["bytes"].as_uint() == total);
    CHECK(result["fnv"].as_uint() == hash);
    CHECK(result["max_frame"].as_uint() == iii::ChannelWriter::frame_size);
    CHECK(result["frames"].as_uint() == total / iii::ChannelWriter::frame_size);
    CHECK(result["path"] == iii::Value("job.input"));
    REQUIRE(result["messages"].size() == 1);
    CHECK(result["messages"][0] == iii::Value("halfway"));
    CHECK(result["message_offsets"][0].as_uint() == total / 2);  // in order with the data
}

namespace {

/// Registers "invert": reads `in`, writes every byte inverted to `out`, closes `out`.
void register_invert(const std::shared_ptr<iii::Client>& client) {
    client->register_function(
        iii::RegisterFunctionMessage::with_id("invert"),
        [c = client.get()](iii::Value in) -> asio::awaitable<iii::Value> {
            iii::ChannelReader reader(*c, iii::StreamChannelRef::from_value(in.at("in")));
            iii::ChannelWriter writer(*c, iii::StreamChannelRef::from_value(in.at("out")));
            std::uint64_t bytes = 0;
            while (auto chunk = co_await reader.next_binary()) {
                for (auto& b : *chunk) b = static_cast<std::uint8_t>(~b);
                bytes += chunk->size();
                std::span<const std::uint8_t> view(*chunk);
                co_await writer.write(view);
            }
            co_await writer.close();
            co_return iii::Value(bytes);
        });
}

asio::awaitable<std::uint64_t> read_inverted(iii::ChannelReader& reader) {
    // Returns the FNV of the re-inverted bytes (so it equals the original's).
    Fnv fnv;
    while (auto chunk = co_await reader.next_binary()) {
        for (auto& b : *chunk) b = static_cast<std::uint8_t>(~b);
        fnv.add(chunk->data(), chunk->size());
    }
    co_return fnv.h;
}

struct Duplex {
    iii::Value result;
    std::uint64_t sent = 0, received = 0;
};

asio::awaitable<Duplex> duplex(Workers& w, std::size_t total) {
    auto there = co_await iii::create_channel(*w.a, 16);
    auto back = co_await iii::create_channel(*w.a, 16);
    iii::Value payload = iii::Value::object();
    payload.set("in", there.reader_ref.to_value()).set("out", back.writer_ref.to_value());
    auto call = w.a->trigger(iii::TriggerRequest("invert", payload));
    auto write = stream(there.writer, total, total, "");
    auto read = read_inverted(back.reader);
    auto all = std::move(call) && std::move(write) && std::move(read);
    auto [result, sent, received] = co_await std::move(all);
    co_return Duplex{std::move(result), sent, received};
}

}  // namespace

TEST_CASE("both directions at once: a pipeline through another worker", "[channels][integration]") {
    Workers w;
    register_invert(w.b);
    REQUIRE(wait_function(w.engine, "invert"));
    constexpr std::size_t total = 16u << 20;
    auto d = run_sync(w.ioc, duplex(w, total), 30s);
    CHECK(d.result.as_uint() == total);
    CHECK(d.sent == d.received);
}

namespace {

struct SlowResult {
    std::uint64_t read = 0;
    std::size_t peak = 0;
    std::size_t max_ahead = 0;
};

asio::awaitable<void> slow_read(iii::ChannelReader& reader, std::atomic<std::uint64_t>& read) {
    while (auto chunk = co_await reader.next_binary()) {
        read += chunk->size();
        co_await sleep_for(1ms);
    }
}

asio::awaitable<void> fast_write(iii::ChannelWriter& writer, std::size_t total,
                                 std::atomic<std::uint64_t>& read, SlowResult& r) {
    std::vector<std::uint8_t> block(256u << 10);
    for (std::size_t off = 0; off < total; off += block.size()) {
        fill(block, off);
        std::span<const std::uint8_t> bytes(block);
        co_await writer.write(bytes);
        r.peak = std::max(r.peak, writer.buffered_amount());
        r.max_ahead = std::max<std::size_t>(r.max_ahead, off + block.size() - read.load());
    }
    co_await writer.close();
}

asio::awaitable<SlowResult> slow_reader(Workers& w, std::size_t total) {
    auto channel = co_await iii::create_channel(*w.a, 4);
    iii::ChannelReader reader(*w.b, channel.reader_ref);  // the other worker's connection
    std::atomic<std::uint64_t> read{0};
    SlowResult r;
    auto a = fast_write(channel.writer, total, read, r);
    auto b = slow_read(reader, read);
    auto both = std::move(a) && std::move(b);
    co_await std::move(both);
    r.read = read.load();
    r.peak = std::max(r.peak, channel.writer.peak_buffered());
    co_return r;
}

}  // namespace

TEST_CASE("a slow reader slows the writer and the writer's buffer stays bounded", "[channels][integration]") {
    Workers w;
    constexpr std::size_t total = 32u << 20;  // 512 frames, ~1 ms each
    auto r = run_sync(w.ioc, slow_reader(w, total), 30s);
    CHECK(r.read == total);
    CHECK(r.peak <= iii::ChannelWriter::max_buffered);
    // The engine's backpressure did reach the SDK: its send queue filled up to near the bound
    // (so the check above is not vacuous).
    CHECK(r.peak > iii::ChannelWriter::max_buffered / 2);
    // The writer never ran far ahead of the reader: SDK buffers, the engine's 4 frames and
    // the kernel's socket buffers in between (about 12 MiB on Linux loopback), well short
    // of the whole stream.
    WARN("writer ahead of the reader by at most " << r.max_ahead << " bytes; peak SDK buffer " << r.peak);
    CHECK(r.max_ahead < total * 3 / 4);
}

namespace {

struct EmptyResult {
    std::size_t size = 1;
    bool still_ended = false;
    std::exception_ptr second_claim;
};

asio::awaitable<EmptyResult> empty_stream(Workers& w) {
    auto channel = co_await iii::create_channel(*w.a);
    co_await channel.writer.close();  // never wrote: connects so the reader sees the end
    iii::ChannelReader reader(*w.b, channel.reader_ref);
    EmptyResult r;
    auto all = co_await reader.read_all();
    r.size = all.size();
    r.still_ended = !(co_await reader.next_binary()).has_value();  // the end is sticky
    try {
        co_await channel.reader.next_binary();  // a second claim of the read end
    } catch (...) {
        r.second_claim = std::current_exception();
    }
    co_return r;
}

}  // namespace

TEST_CASE("an empty stream: a writer that never wrote still ends the reader", "[channels][integration]") {
    Workers w;
    auto r = run_sync(w.ioc, empty_stream(w), 10s);
    CHECK(r.size == 0);
    CHECK(r.still_ended);
    // The read end was claimed by the first reader (or the finished channel is gone): either
    // way the engine refuses it, and the SDK says so.
    REQUIRE(r.second_claim);
    CHECK(errc_of(r.second_claim) == iii::Errc::WebSocket);
}

namespace {

asio::awaitable<std::exception_ptr> early_close(Workers& w) {
    auto channel = co_await iii::create_channel(*w.a, 8);
    iii::ChannelReader reader(*w.b, channel.reader_ref);
    std::vector<std::uint8_t> block(1u << 20, 7);
    std::span<const std::uint8_t> bytes(block);
    co_await channel.writer.write(bytes);
    auto first = co_await reader.next_binary();
    if (!first) throw std::runtime_error("no data");
    co_await reader.close();
    std::exception_ptr error;
    try {
        for (int i = 0; i < 256; ++i) co_await channel.writer.write(bytes);  // 256 MiB
    } catch (...) {
        error = std::current_exception();
    }
    co_await channel.writer.close();  // must not hang (and not throw again)
    co_return error;
}

}  // namespace

TEST_CASE("a reader that closes early makes the writer fail, not hang", "[channels][integration]") {
    Workers w;
    auto error = run_sync(w.ioc, early_close(w), 20s);
    REQUIRE(error);
    CHECK(errc_of(error) == iii::Errc::WebSocket);
}

namespace {

asio::awaitable<std::vector<iii::Errc>> wrong_keys(Workers& w) {
    auto channel = co_await iii::create_channel(*w.a);
    std::vector<iii::Errc> out;
    auto bad = channel.reader_ref;
    bad.access_key = "not-the-key";
    iii::ChannelReader reader(*w.b, bad);
    try {
        co_await reader.next_binary();
    } catch (...) {
        out.push_back(errc_of(std::current_exception()));
    }
    auto unknown = channel.writer_ref;
    unknown.channel_id = "00000000-0000-4000-8000-000000000000";
    iii::ChannelWriter writer(*w.b, unknown);
    try {
        co_await writer.write(std::string_view("data"));
    } catch (...) {
        out.push_back(errc_of(std::current_exception()));
    }
    iii::ChannelWriter never(*w.b, unknown);
    try {
        co_await never.close();
    } catch (...) {
        out.push_back(errc_of(std::current_exception()));
    }
    co_return out;
}

}  // namespace

TEST_CASE("a wrong key or an unknown channel fails with a clear error", "[channels][integration]") {
    Workers w;
    auto errors = run_sync(w.ioc, wrong_keys(w), 10s);
    CHECK(errors == std::vector<iii::Errc>{iii::Errc::WebSocket, iii::Errc::WebSocket, iii::Errc::WebSocket});
}

namespace {

asio::awaitable<std::exception_ptr> read_until_engine_dies(Workers& w, std::thread& killer) {
    auto channel = co_await iii::create_channel(*w.a);
    std::exception_ptr error;
    try {
        co_await channel.writer.write(std::string_view("one frame"));
        auto first = co_await channel.reader.next_binary();
        if (!first) throw std::runtime_error("no data");
        // The delay only makes it likely that the read below is already waiting; an engine
        // that is gone before it starts must fail it just the same.
        killer = std::thread([&engine = w.engine] {
            std::this_thread::sleep_for(100ms);
            engine.shutdown();
        });
        co_await channel.reader.next_binary();  // waits; the engine goes away
    } catch (...) {
        error = std::current_exception();
    }
    co_return error;
}

}  // namespace

TEST_CASE("the engine going away ends a waiting read with an error", "[channels][integration]") {
    Workers w;
    std::thread killer;
    std::exception_ptr error;
    try {
        error = run_sync(w.ioc, read_until_engine_dies(w, killer), 10s);
    } catch (...) {
        if (killer.joinable()) killer.join();
        throw;
    }
    if (killer.joinable()) killer.join();  // before `w` (and its engine) is destroyed
    REQUIRE(error);
    CHECK(errc_of(error) == iii::Errc::WebSocket);
}

namespace {

/// What a channel does with `frames` frames written before any reader exists.
struct Probe {
    bool closed_alone = false;  // the writer's close handshake completed with no reader
    std::uint64_t read = 0;     // bytes a reader then got
    bool closed_after_read = false;
};

asio::awaitable<void> poll_until(const bool& flag, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!flag && std::chrono::steady_clock::now() < deadline) co_await sleep_for(2ms);
}

// The engine answers the writer's Close only once it reads it, and it stops reading the writer
// socket when its queue holds `capacity` frames. So with no reader, close() completes when
// fewer than `capacity` frames precede the Close and stays pending when more do. Frames are
// 64 KiB, larger than the transport's 16 KiB read buffer, so a paused engine cannot have read
// the Close along with the frame that filled the queue: the bound shows to within one frame.
asio::awaitable<Probe> probe(Workers& w, std::optional<std::size_t> buffer_size, std::size_t frames,
                             bool expect_alone) {
    auto channel = co_await iii::create_channel(*w.a, buffer_size);
    std::vector<std::uint8_t> frame(iii::ChannelWriter::frame_size, 0x5a);
    std::span<const std::uint8_t> bytes(frame);
    for (std::size_t i = 0; i < frames; ++i) co_await channel.writer.write(bytes);

    // Shared with the closing coroutine, which may outlive this frame if the test fails.
    struct Closing {
        bool done = false;
        std::exception_ptr error;
    };
    auto closing = std::make_shared<Closing>();
    auto closer = [](iii::ChannelWriter writer, std::shared_ptr<Closing> c) -> asio::awaitable<void> {
        try {
            co_await writer.close();
        } catch (...) {
            c->error = std::current_exception();
        }
        c->done = true;
    };
    asio::co_spawn(co_await asio::this_coro::executor, closer(channel.writer, closing),
                   asio::detached);
    // Positive case: wait for it. Negative case: an engine that read on would answer within
    // milliseconds on loopback, so 500 ms without an answer shows it stopped reading.
    Probe p;
    co_await poll_until(closing->done, expect_alone ? 10000ms : 500ms);
    p.closed_alone = closing->done;

    iii::ChannelReader reader(*w.b, channel.reader_ref);
    auto all = co_await reader.read_all();
    p.read = all.size();
    co_await poll_until(closing->done, 10000ms);  // the queue drained: the Close gets through
    p.closed_after_read = closing->done && !closing->error;
    co_return p;
}

asio::awaitable<iii::Value> create_raw(Workers& w, iii::Value payload) {
    iii::TriggerRequest request("engine::channels::create", std::move(payload));
    co_return co_await w.a->trigger(std::move(request));
}

}  // namespace

TEST_CASE("engine::channels::create sizes the queue in frames: default 64, clamped to 1..1024",
          "[channels][integration]") {
    Workers w;
    // The reply to an absent size: two refs to one channel, with one key (spec 5.6).
    auto reply = run_sync(w.ioc, create_raw(w, iii::Value::object()));
    auto writer = iii::StreamChannelRef::from_value(reply.at("writer"));
    auto reader = iii::StreamChannelRef::from_value(reply.at("reader"));
    CHECK(writer.direction == iii::ChannelDirection::Write);
    CHECK(reader.direction == iii::ChannelDirection::Read);
    CHECK(writer.channel_id == reader.channel_id);
    CHECK(writer.access_key == reader.access_key);
    CHECK(writer.channel_id.size() == 36);  // UUID v4 text

    struct Case {
        std::optional<std::size_t> requested;
        std::size_t capacity;
    };
    const std::vector<Case> cases = {
        {std::nullopt, 64},  // null, as the Rust SDK sends it
        {0, 1},
        {10, 10},
        {5000, 1024},
    };
    constexpr auto frame = iii::ChannelWriter::frame_size;
    for (const auto& c : cases) {
        const std::string label = c.requested ? std::to_string(*c.requested) : "null";
        INFO("buffer_size " << label << ", expected capacity " << c.capacity << " frames");
        // Fewer frames than the capacity: all queued, the Close is read.
        auto under = run_sync(w.ioc, probe(w, c.requested, c.capacity - 1, true), 60s);
        CHECK(under.closed_alone);
        CHECK(under.read == (c.capacity - 1) * frame);
        CHECK(under.closed_after_read);
        // One frame more than the capacity: the engine stops reading before the Close.
        auto over = run_sync(w.ioc, probe(w, c.requested, c.capacity + 1, false), 60s);
        CHECK_FALSE(over.closed_alone);
        CHECK(over.read == (c.capacity + 1) * frame);
        CHECK(over.closed_after_read);
    }
}
