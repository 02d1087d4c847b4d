// The corrected websocketpp frame code (tools/fix_websocketpp.py --fast-frames) against a
// byte-by-byte reference: masking of every length and key offset, websocketpp's hybi13
// processor reading masked frames fed in arbitrary pieces and writing masked frames, and the
// once-per-message UTF-8 check (invalid text is processor::error::invalid_utf8, which
// websocketpp answers with close 1007), the recycled messages and the send queue. No sockets:
// the processor is driven directly.

#include <cstddef>  // first: see lib/transport/ws_transport.hpp

#include "iii_wspp_ops.hpp"
#include "iii_wspp_queue.hpp"
#include "mask_keys.hpp"

#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>
#include <websocketpp/processors/hybi13.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using Bytes = std::vector<std::uint8_t>;
namespace frame = websocketpp::frame;

// RFC 6455 §5.3, one byte at a time, starting `offset` bytes into the key.
Bytes reference_mask(const Bytes& in, const std::uint8_t key[4], std::size_t offset = 0) {
    Bytes out(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) out[i] = in[i] ^ key[(i + offset) % 4];
    return out;
}

Bytes random_bytes(std::mt19937& rng, std::size_t n) {
    Bytes b(n);
    for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    return b;
}

std::string as_string(const Bytes& b) { return std::string(b.begin(), b.end()); }

// Lengths that cross every step of the masking loops (32, 16, 8, 1 bytes) and then some.
std::vector<std::size_t> lengths() {
    std::vector<std::size_t> n;
    for (std::size_t i = 0; i <= 130; ++i) n.push_back(i);
    for (std::size_t i : {255u, 256u, 1000u, 4095u, 65535u, 65536u, 65537u, 200001u}) n.push_back(i);
    return n;
}

// A client-to-server frame, header and masked payload, built byte by byte.
Bytes masked_frame(std::uint8_t opcode, bool fin, const Bytes& payload, const std::uint8_t key[4]) {
    Bytes f;
    f.push_back(static_cast<std::uint8_t>((fin ? 0x80 : 0x00) | opcode));
    const std::uint64_t n = payload.size();
    if (n < 126) {
        f.push_back(static_cast<std::uint8_t>(0x80 | n));
    } else if (n <= 0xffff) {
        f.push_back(0x80 | 126);
        f.push_back(static_cast<std::uint8_t>(n >> 8));
        f.push_back(static_cast<std::uint8_t>(n));
    } else {
        f.push_back(0x80 | 127);
        for (int shift = 56; shift >= 0; shift -= 8) f.push_back(static_cast<std::uint8_t>(n >> shift));
    }
    f.insert(f.end(), key, key + 4);
    const Bytes masked = reference_mask(payload, key);
    f.insert(f.end(), masked.begin(), masked.end());
    return f;
}

// Decodes one server-to-client or client-to-server frame byte by byte (payload unmasked).
struct Decoded {
    bool fin = false;
    std::uint8_t opcode = 0;
    bool masked = false;
    Bytes payload;
};

Decoded reference_decode(const Bytes& f) {
    Decoded d;
    REQUIRE(f.size() >= 2);
    d.fin = (f[0] & 0x80) != 0;
    d.opcode = f[0] & 0x0f;
    d.masked = (f[1] & 0x80) != 0;
    std::uint64_t n = f[1] & 0x7f;
    std::size_t at = 2;
    if (n == 126) {
        n = (std::uint64_t{f[2]} << 8) | f[3];
        at = 4;
    } else if (n == 127) {
        n = 0;
        for (int i = 0; i < 8; ++i) n = (n << 8) | f[2 + i];
        at = 10;
    }
    std::uint8_t key[4] = {0, 0, 0, 0};
    if (d.masked) {
        std::copy(f.begin() + static_cast<std::ptrdiff_t>(at), f.begin() + static_cast<std::ptrdiff_t>(at) + 4, key);
        at += 4;
    }
    REQUIRE(f.size() == at + n);
    const Bytes body(f.begin() + static_cast<std::ptrdiff_t>(at), f.end());
    d.payload = d.masked ? reference_mask(body, key) : body;
    return d;
}

template <class Config>
struct Processor {
    using hybi13 = websocketpp::processor::hybi13<Config>;
    using message_ptr = typename Config::message_type::ptr;

    explicit Processor(bool server)
        : manager(std::make_shared<typename Config::con_msg_manager_type>()),
          p(false, server, manager, rng) {
        p.set_max_message_size(1u << 24);
    }

    // Feeds `wire` in pieces of `piece` bytes (0: all at once); returns the messages that came
    // out and the first error.
    std::vector<message_ptr> feed(const Bytes& wire, std::size_t piece, websocketpp::lib::error_code& ec) {
        std::vector<message_ptr> out;
        Bytes buf = wire;  // consume() unmasks in place
        std::size_t at = 0;
        while (at < buf.size()) {
            const std::size_t len = piece == 0 ? buf.size() - at : std::min(piece, buf.size() - at);
            std::size_t used = 0;
            while (used < len) {
                used += p.consume(buf.data() + at + used, len - used, ec);
                if (ec) return out;
                if (p.ready()) out.push_back(p.get_message());
            }
            at += len;
        }
        return out;
    }

    typename Config::rng_type rng;
    typename Config::con_msg_manager_type::ptr manager;
    hybi13 p;
};

using ServerProcessor = Processor<websocketpp::config::asio>;
using ClientProcessor = Processor<websocketpp::config::asio_client>;

}  // namespace

TEST_CASE("mask matches the byte-wise reference for every length, key offset and alignment", "[unit][wspp]") {
    std::mt19937 rng(12);
    for (const std::size_t n : lengths()) {
        for (std::size_t key_offset = 0; key_offset < 4; ++key_offset) {
            for (const std::size_t align : {0u, 1u, 3u, 7u, 13u}) {
                const std::uint8_t base_key[4] = {static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng()),
                                                  static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng())};
                const std::uint8_t key[4] = {base_key[key_offset % 4], base_key[(key_offset + 1) % 4],
                                             base_key[(key_offset + 2) % 4], base_key[(key_offset + 3) % 4]};
                const Bytes in = random_bytes(rng, n);
                const Bytes expected = reference_mask(in, base_key, key_offset);

                // Out of place, both buffers unaligned, guard bytes around the output.
                Bytes src(n + align), dst(n + align + 8, 0xa5);
                std::copy(in.begin(), in.end(), src.begin() + static_cast<std::ptrdiff_t>(align));
                iii::detail::wspp::mask(src.data() + align, dst.data() + align, n, key);
                CHECK(Bytes(dst.begin() + static_cast<std::ptrdiff_t>(align),
                            dst.begin() + static_cast<std::ptrdiff_t>(align + n)) == expected);
                CHECK(std::all_of(dst.begin(), dst.begin() + static_cast<std::ptrdiff_t>(align),
                                  [](auto b) { return b == 0xa5; }));
                CHECK(std::all_of(dst.end() - 8, dst.end(), [](auto b) { return b == 0xa5; }));

                // In place.
                iii::detail::wspp::mask(src.data() + align, src.data() + align, n, key);
                CHECK(Bytes(src.begin() + static_cast<std::ptrdiff_t>(align), src.end()) == expected);
            }
        }
    }
}

TEST_CASE("websocketpp's byte_mask_circ carries the key offset across pieces of a payload", "[unit][wspp]") {
    std::mt19937 rng(7);
    for (const std::size_t n : {1u, 5u, 31u, 64u, 257u, 4099u}) {
        for (const std::size_t piece : {1u, 2u, 3u, 5u, 8u, 17u, 33u, 1000u}) {
            frame::masking_key_type key;
            key.i = static_cast<std::uint32_t>(rng());
            const Bytes in = random_bytes(rng, n);
            Bytes buf = in;
            std::size_t prepared = frame::prepare_masking_key(key);
            for (std::size_t at = 0; at < n; at += piece)
                prepared = frame::byte_mask_circ(buf.data() + at, std::min(piece, n - at), prepared);
            CHECK(buf == reference_mask(in, key.c));
        }
    }
}

TEST_CASE("the server processor unmasks frames of every size fed in any pieces byte-exact", "[unit][wspp]") {
    std::mt19937 rng(3);
    for (const std::size_t n : lengths()) {
        for (const std::size_t piece : {0u, 1u, 3u, 61u}) {
            if (piece == 1 && n > 4096) continue;  // byte-at-a-time over 200 kB adds nothing
            ServerProcessor server(true);
            const std::uint8_t key[4] = {static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng()),
                                         static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng())};
            const Bytes payload = random_bytes(rng, n);
            websocketpp::lib::error_code ec;
            auto messages = server.feed(masked_frame(0x2, true, payload, key), piece, ec);
            REQUIRE_FALSE(ec);
            REQUIRE(messages.size() == 1);
            CHECK(messages[0]->get_opcode() == frame::opcode::binary);
            CHECK(messages[0]->get_payload() == as_string(payload));
        }
    }
}

TEST_CASE("the client processor masks what it sends as the reference does", "[unit][wspp]") {
    std::mt19937 rng(5);
    ClientProcessor client(false);
    ServerProcessor server(true);
    for (const std::size_t n : lengths()) {
        for (const auto op : {frame::opcode::binary, frame::opcode::text}) {
            Bytes payload = random_bytes(rng, n);
            if (op == frame::opcode::text)
                for (auto& b : payload) b = static_cast<std::uint8_t>('a' + b % 26);
            auto check = [&](auto& side, bool masked) {
                auto in = client.manager->get_message(op, n);
                in->set_payload(as_string(payload));
                auto out = client.manager->get_message();
                REQUIRE_FALSE(side.prepare_data_frame(in, out));
                const std::string wire = out->get_header() + out->get_payload();
                const Decoded d = reference_decode(Bytes(wire.begin(), wire.end()));
                CHECK(d.masked == masked);
                CHECK(d.fin);
                CHECK(d.opcode == static_cast<std::uint8_t>(op));
                CHECK(d.payload == payload);
            };
            check(client.p, true);
            check(server.p, false);
        }
    }
}

TEST_CASE("an invalid UTF-8 text frame is invalid_utf8, which websocketpp closes with 1007", "[unit][wspp]") {
    const std::uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    const std::vector<std::string> invalid = {
        "\xff",                    // never valid
        "{\"a\":\"\xc3\x28\"}",    // bad continuation byte
        "\xc0\xaf",                // overlong '/'
        "\xed\xa0\x80",            // UTF-16 surrogate U+D800
        "\xf4\x90\x80\x80",        // above U+10FFFF
        "abc\xe2\x82",             // ends inside a code point
        std::string(100, 'x') + "\x80" + std::string(100, 'y'),  // in the SIMD part
    };
    for (const auto& text : invalid) {
        for (const std::size_t piece : {0u, 1u}) {
            ServerProcessor server(true);
            websocketpp::lib::error_code ec;
            auto messages = server.feed(masked_frame(0x1, true, Bytes(text.begin(), text.end()), key), piece, ec);
            CHECK(messages.empty());
            CHECK(ec == websocketpp::processor::error::make_error_code(websocketpp::processor::error::invalid_utf8));
            CHECK(websocketpp::processor::error::to_ws(ec) == websocketpp::close::status::invalid_payload);
            CHECK(websocketpp::close::status::invalid_payload == 1007);
        }
    }
    // The same bytes in a binary frame are fine.
    ServerProcessor server(true);
    websocketpp::lib::error_code ec;
    auto messages = server.feed(masked_frame(0x2, true, Bytes{0xff, 0xfe}, key), 0, ec);
    CHECK_FALSE(ec);
    CHECK(messages.size() == 1);
}

TEST_CASE("valid UTF-8 split inside a code point across fragments passes", "[unit][wspp]") {
    // {"k":"é€😀"} as three fragments, cut inside é and inside 😀.
    const std::string text = "{\"k\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}";
    const std::size_t cut1 = 7, cut2 = 13;
    const std::uint8_t key1[4] = {1, 2, 3, 4}, key2[4] = {0xaa, 0xbb, 0xcc, 0xdd}, key3[4] = {9, 8, 7, 6};
    Bytes wire = masked_frame(0x1, false, Bytes(text.begin(), text.begin() + cut1), key1);
    const Bytes f2 = masked_frame(0x0, false, Bytes(text.begin() + cut1, text.begin() + cut2), key2);
    const Bytes f3 = masked_frame(0x0, true, Bytes(text.begin() + cut2, text.end()), key3);
    wire.insert(wire.end(), f2.begin(), f2.end());
    wire.insert(wire.end(), f3.begin(), f3.end());
    for (const std::size_t piece : {0u, 1u, 2u, 5u}) {
        ServerProcessor server(true);
        websocketpp::lib::error_code ec;
        auto messages = server.feed(wire, piece, ec);
        REQUIRE_FALSE(ec);
        REQUIRE(messages.size() == 1);
        CHECK(messages[0]->get_opcode() == frame::opcode::text);
        CHECK(messages[0]->get_payload() == text);
    }
}

TEST_CASE("a fragmented text message that ends inside a code point is invalid_utf8", "[unit][wspp]") {
    // Stock websocketpp looked at the last frame's opcode (continuation) and let this through.
    const std::uint8_t key[4] = {5, 6, 7, 8};
    Bytes wire = masked_frame(0x1, false, Bytes{'a', 'b'}, key);
    const Bytes last = masked_frame(0x0, true, Bytes{'c', 0xe2, 0x82}, key);
    wire.insert(wire.end(), last.begin(), last.end());
    ServerProcessor server(true);
    websocketpp::lib::error_code ec;
    auto messages = server.feed(wire, 0, ec);
    CHECK(messages.empty());
    CHECK(ec == websocketpp::processor::error::make_error_code(websocketpp::processor::error::invalid_utf8));
}

TEST_CASE("sending invalid UTF-8 as text is refused, as stock websocketpp does", "[unit][wspp]") {
    ClientProcessor client(false);
    auto in = client.manager->get_message(frame::opcode::text, 4);
    in->set_payload("ab\xc3");
    auto out = client.manager->get_message();
    CHECK(client.p.prepare_data_frame(in, out) ==
          websocketpp::processor::error::make_error_code(websocketpp::processor::error::invalid_payload));
}

TEST_CASE("websocketpp's message manager recycles messages, reset as new ones", "[unit][wspp]") {
    using config = websocketpp::config::asio;
    auto manager = std::make_shared<config::con_msg_manager_type>();
    auto first = manager->get_message(frame::opcode::text, 300);
    const auto* address = first.get();
    first->set_payload(std::string(200, 'x'));
    first->set_header("hdr");
    first->set_prepared(true);
    first->set_fin(false);
    first->set_terminal(true);
    first->set_compressed(true);
    const std::size_t capacity = first->get_raw_payload().capacity();
    first.reset();

    auto again = manager->get_message(frame::opcode::binary, 10);
    CHECK(again.get() == address);  // the same object, back from the pool
    CHECK(again->get_opcode() == frame::opcode::binary);
    CHECK(again->get_payload().empty());
    CHECK(again->get_raw_payload().capacity() >= capacity);  // the buffer is kept
    CHECK(again->get_header().empty());
    CHECK_FALSE(again->get_prepared());
    CHECK(again->get_fin());
    CHECK_FALSE(again->get_terminal());
    CHECK_FALSE(again->get_compressed());

    // Another message while that one is alive is a different object.
    auto other = manager->get_message();
    CHECK(other.get() != again.get());
    CHECK(other->get_payload().empty());
}

TEST_CASE("recycled messages may outlive their manager and be dropped on another thread", "[unit][wspp]") {
    using config = websocketpp::config::asio;
    std::vector<config::message_type::ptr> kept;
    {
        auto manager = std::make_shared<config::con_msg_manager_type>();
        for (int i = 0; i < 40; ++i) {
            kept.push_back(manager->get_message(frame::opcode::text, 64));
            kept.back()->set_payload(std::string(static_cast<std::size_t>(i), 'a'));
        }
    }  // the manager is gone; its pool lives as long as its messages
    std::thread dropper([&kept] { kept.clear(); });
    dropper.join();
    CHECK(kept.empty());
}

TEST_CASE("client masking keys come from fresh entropy across refills of the key pool", "[unit][wspp]") {
    // 4096 keys span four refills of the 4 KiB pool: a refill that reused its bytes would give
    // at most 1024 distinct keys; random ones repeat a key in about one run of 500, and the
    // check allows six repeats.
    iii::detail::wspp::MaskKeys<std::uint32_t, websocketpp::concurrency::basic> keys;
    std::set<std::uint32_t> seen;
    for (int i = 0; i < 4096; ++i) seen.insert(keys());
    CHECK(seen.size() >= 4090);
    // Two endpoints' generators do not share a sequence.
    iii::detail::wspp::MaskKeys<std::uint32_t, websocketpp::concurrency::basic> other;
    std::vector<std::uint32_t> a, b;
    for (int i = 0; i < 8; ++i) {
        a.push_back(keys());
        b.push_back(other());
    }
    CHECK(a != b);
}

TEST_CASE("the send queue is first in, first out across wrap-around and growth", "[unit][wspp]") {
    iii::detail::wspp::RingQueue<int> queue;
    CHECK(queue.empty());
    int next_in = 0, next_out = 0;
    // Uneven pushes and pops: the head wraps around the ring and the ring grows while wrapped.
    for (int round = 0; round < 50; ++round) {
        for (int i = 0; i < round % 7 + 3; ++i) queue.push(next_in++);
        for (int i = 0; i < round % 5 + 1 && !queue.empty(); ++i) {
            REQUIRE(queue.front() == next_out++);
            queue.pop();
        }
        REQUIRE(queue.size() == static_cast<std::size_t>(next_in - next_out));
    }
    while (!queue.empty()) {
        REQUIRE(queue.front() == next_out++);
        queue.pop();
    }
    CHECK(next_out == next_in);
}

TEST_CASE("the send queue lets go of a message when it is popped, and of a burst's slots once drained",
          "[unit][wspp]") {
    iii::detail::wspp::RingQueue<std::shared_ptr<std::string>> queue;
    auto message = std::make_shared<std::string>(1000, 'x');
    std::weak_ptr<std::string> watch = message;
    queue.push(std::move(message));
    queue.push(std::make_shared<std::string>("next"));
    queue.pop();
    CHECK(watch.expired());  // not kept alive by a free slot
    CHECK(*queue.front() == "next");
    queue.pop();
    CHECK(queue.capacity() == 8);  // one message at a time never grows the ring
    // A burst far beyond the kept slots, then drained: its slots go with it.
    const std::size_t burst = iii::detail::wspp::RingQueue<int>::kept_slots * 16;
    std::vector<std::weak_ptr<std::string>> held;
    for (std::size_t i = 0; i < burst; ++i) {
        auto m = std::make_shared<std::string>(std::to_string(i));
        held.push_back(m);
        queue.push(std::move(m));
    }
    CHECK(queue.size() == burst);
    CHECK(queue.capacity() >= burst);
    for (std::size_t i = 0; i < burst; ++i) {
        REQUIRE(*queue.front() == std::to_string(i));
        queue.pop();
    }
    CHECK(queue.empty());
    CHECK(queue.capacity() <= iii::detail::wspp::RingQueue<int>::kept_slots);
    CHECK(std::all_of(held.begin(), held.end(), [](const auto& w) { return w.expired(); }));
}
