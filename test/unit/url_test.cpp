#include "url.hpp"

#include "redact.hpp"

#include <iii/channel.hpp>
#include <iii/client.hpp>
#include <iii/error.hpp>

#include <catch2/catch.hpp>

#include <asio/io_context.hpp>

#include <string>

using iii::detail::parse_url;
using iii::detail::redact_text;
using iii::detail::redact_url;

namespace {

std::string why(std::string_view text) {
    std::string error;
    INFO("url: " << text);
    CHECK_FALSE(parse_url(text, &error));
    return error;
}

}  // namespace

TEST_CASE("a ws URL is split into scheme, host, port, path and query", "[unit][url]") {
    auto url = parse_url("ws://Engine.example:49134/ws/x?token=abc&n=1");
    REQUIRE(url);
    CHECK(url->scheme == "ws");
    CHECK(url->host == "Engine.example");
    CHECK(url->port == 49134);
    CHECK(url->explicit_port);
    CHECK(url->path == "/ws/x");
    CHECK(url->query == "token=abc&n=1");
    CHECK(url->target() == "/ws/x?token=abc&n=1");
    CHECK(url->str() == "ws://Engine.example:49134/ws/x?token=abc&n=1");
}

TEST_CASE("defaults: port 80 for ws, 443 for wss, path /, no query", "[unit][url]") {
    auto ws = parse_url("WS://localhost");
    REQUIRE(ws);
    CHECK(ws->scheme == "ws");
    CHECK(ws->port == 80);
    CHECK_FALSE(ws->explicit_port);
    CHECK(ws->path == "/");
    CHECK_FALSE(ws->query);
    auto wss = parse_url("wss://h?");
    REQUIRE(wss);
    CHECK(wss->port == 443);
    CHECK(wss->path == "/");
    CHECK(wss->query == "");
}

TEST_CASE("IPv6 literals are bracketed in the URL and stored without brackets", "[unit][url]") {
    auto url = parse_url("ws://[::1]:8080/p");
    REQUIRE(url);
    CHECK(url->host == "::1");
    CHECK(url->ipv6);
    CHECK(url->port == 8080);
    CHECK(url->host_for_uri() == "[::1]");
    CHECK(parse_url("ws://[2001:db8::ff00:42:8329]"));
    CHECK(parse_url("ws://[::ffff:127.0.0.1]:1"));
    CHECK(why("ws://[::1") == "unterminated IPv6 literal: missing ']'");
    CHECK(why("ws://[]") == "invalid IPv6 literal");
    CHECK(why("ws://[::g]") == "invalid IPv6 literal");
    CHECK(why("ws://[fe80::1%eth0]") == "invalid IPv6 literal");
    CHECK(why("ws://[::1]x") == "unexpected text after the IPv6 literal");
    CHECK(why("ws://::1:80") == "missing host");
}

TEST_CASE("ports must be numbers from 1 to 65535", "[unit][url]") {
    CHECK(parse_url("ws://h:1")->port == 1);
    CHECK(parse_url("ws://h:65535")->port == 65535);
    CHECK(why("ws://127.0.0.1:99999") == "the port is out of range (1-65535)");
    CHECK(why("ws://127.0.0.1:65536") == "the port is out of range (1-65535)");
    CHECK(why("ws://127.0.0.1:0") == "the port is out of range (1-65535)");
    CHECK(why("ws://127.0.0.1:99999999999999999999999") == "the port is out of range (1-65535)");
    CHECK(why("ws://127.0.0.1:notaport") == "the port is not a number");
    CHECK(why("ws://127.0.0.1:-1") == "the port is not a number");
    CHECK(why("ws://127.0.0.1:") == "missing port number after ':'");
}

TEST_CASE("hosts: names and dotted quads, nothing else", "[unit][url]") {
    CHECK(why("ws://") == "missing host");
    CHECK(why("ws:///path") == "missing host");
    CHECK(why("ws://:80") == "missing host");
    CHECK(why("ws://a b") == "invalid character in host");
    CHECK(why("ws://user:pw@h") == "user information (user@host) is not supported");
    CHECK(why("ws://256.0.0.1") == "invalid IPv4 address");
    CHECK(why("ws://1234") == "invalid IPv4 address");
    CHECK(why("ws://1.2.3") == "invalid IPv4 address");
    CHECK(parse_url("ws://10.0.0.255:1"));
    CHECK(parse_url("ws://my-host_1.example~x"));
}

TEST_CASE("scheme, fragment and path characters are checked", "[unit][url]") {
    CHECK(why("http://h") == "the scheme must be ws or wss");
    CHECK(why("h:80") == "expected ws://host[:port][/path]");
    CHECK(why("") == "expected ws://host[:port][/path]");
    CHECK(why("ws://h/#x") == "a WebSocket URL has no fragment ('#')");
    CHECK(why("ws://h#x") == "a WebSocket URL has no fragment ('#')");
    CHECK(why("ws://h/a b") == "spaces, control and non-ASCII bytes must be percent-encoded");
    CHECK(why("ws://h/\xc3\xa9") == "spaces, control and non-ASCII bytes must be percent-encoded");
    CHECK(parse_url("ws://h/a%20b?x=%2F")->path == "/a%20b");
}

TEST_CASE("register_worker throws Errc::Runtime at once for a URL that cannot connect", "[unit][url]") {
    asio::io_context io;
    for (const char* url : {"ws://", "ws://127.0.0.1:99999", "ws://[::1", "ws://127.0.0.1:notaport",
                            "http://127.0.0.1:1"}) {
        INFO("url: " << url);
        try {
            auto client = iii::register_worker(io, url);
            FAIL("register_worker accepted it");
        } catch (const iii::Error& e) {
            CHECK(e.errc() == iii::Errc::Runtime);
        }
    }
    // Nothing was started: no handler, timer or socket is left on the io_context.
    CHECK(io.poll() == 0);
}

TEST_CASE("the error for a bad URL names the problem and hides its token", "[unit][url][redact]") {
    try {
        iii::detail::parse_url_or_throw("ws://h:99999/?token=s3cr3t");
        FAIL("accepted");
    } catch (const iii::Error& e) {
        const std::string what = e.what();
        CHECK(what.find("s3cr3t") == std::string::npos);
        CHECK(what.find("ws://h:99999/?token=***") != std::string::npos);
        CHECK(what.find("out of range") != std::string::npos);
    }
}

TEST_CASE("redact_url hides every query value and a userinfo password", "[unit][redact]") {
    CHECK(redact_url("ws://h:1/?token=abc&x=1") == "ws://h:1/?token=***&x=***");
    CHECK(redact_url("ws://h:1/p") == "ws://h:1/p");
    CHECK(redact_url("ws://h/?abcdef") == "ws://h/?***");
    CHECK(redact_url("ws://h/?a=&&b=2#frag") == "ws://h/?a=***&&b=***#frag");
    CHECK(redact_url("ws://u:pw@h/") == "ws://u:***@h/");
    CHECK(redact_url("ws://[::1]:9/ws/channels/c?key=K%2F1&dir=read") ==
          "ws://[::1]:9/ws/channels/c?key=***&dir=***");
}

TEST_CASE("redact_text finds URLs and secret JSON fields inside a log line", "[unit][redact]") {
    CHECK(redact_text("connected to ws://127.0.0.1:5/?token=abc") == "connected to ws://127.0.0.1:5/?token=***");
    CHECK(redact_text("invalid WebSocket URL 'ws://h/?t=1' (x)") == "invalid WebSocket URL 'ws://h/?t=***' (x)");
    CHECK(redact_text("a ws://h/?t=1 and http://h/?u=2.") == "a ws://h/?t=*** and http://h/?u=***");
    CHECK(redact_text(R"({"channel_id":"c1","access_key":"k-123","direction":"read"})") ==
          R"({"channel_id":"c1","access_key":"***","direction":"read"})");
    CHECK(redact_text(R"({"Authorization" : "Bearer x", "url":"ws://h/?tok=9"})") ==
          R"({"Authorization" : "***", "url":"ws://h/?tok=***"})");
    CHECK(redact_text(R"({"name":"key","v":"secret"})") == R"({"name":"key","v":"secret"})");
    CHECK(redact_text(R"("token":"cut-off)") == R"("token":"***")");
    CHECK(redact_text("no secrets: field `type`") == "no secrets: field `type`");
    CHECK(redact_text("") == "");
    CHECK(iii::detail::redact_headers({{"Authorization", "Bearer x"}, {"X-A", "b"}}) ==
          "{Authorization: ***, X-A: ***}");
}

TEST_CASE("a channel URL stays one valid URL whatever the engine put in the id and key", "[unit][url][channels]") {
    iii::StreamChannelRef ref("../x?key=stolen#f g", "k&dir=write", iii::ChannelDirection::Read);
    const std::string text = iii::channel_url("ws://127.0.0.1:5", ref);
    CHECK(text == "ws://127.0.0.1:5/ws/channels/..%2Fx%3Fkey%3Dstolen%23f%20g?key=k%26dir%3Dwrite&dir=read");
    auto url = parse_url(text);
    REQUIRE(url);
    CHECK(url->path == "/ws/channels/..%2Fx%3Fkey%3Dstolen%23f%20g");
    CHECK(url->query == "key=k%26dir%3Dwrite&dir=read");
    // The worker URL's query stays with the worker connection.
    CHECK(iii::channel_url("ws://h:1/base/?token=t#x", ref).rfind("ws://h:1/base/ws/channels/..%2F", 0) == 0);
    // Engine ids (UUIDs) are unchanged by the encoding.
    iii::StreamChannelRef uuid("3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11", "k", iii::ChannelDirection::Write);
    CHECK(iii::channel_url("ws://h:1/", uuid) == "ws://h:1/ws/channels/3f2b8c1e-8a4d-4c6e-9b0e-2f1c5d7a9e11?key=k&dir=write");
}
