#include "url.hpp"

#include "iii/error.hpp"
#include "redact.hpp"

#include <arpa/inet.h>

#include <array>
#include <cstring>

namespace iii::detail {
namespace {

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

bool is_unreserved(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

// Printable ASCII other than space: what may appear unencoded in a path or query. A stray space
// or control byte would otherwise reach the request line of the upgrade request.
bool is_uri_char(char c) noexcept { return c > 0x20 && c < 0x7f; }

// A host made of digits and dots only is read as an IPv4 address by resolvers (even "1234"), so
// it must be a real dotted quad.
bool is_dotted_quad(std::string_view host) noexcept {
    int parts = 0;
    std::size_t i = 0;
    while (i <= host.size()) {
        std::size_t j = i;
        int value = 0;
        while (j < host.size() && is_digit(host[j])) {
            value = value * 10 + (host[j] - '0');
            if (value > 255 || j - i >= 3) return false;
            ++j;
        }
        if (j == i) return false;
        ++parts;
        if (j == host.size()) break;
        if (host[j] != '.') return false;
        i = j + 1;
    }
    return parts == 4;
}

bool fail(std::string* error, const char* why) {
    if (error) *error = why;
    return false;
}

bool parse_into(std::string_view text, Url& url, std::string* error) {
    const std::size_t colon = text.find("://");
    if (colon == std::string_view::npos)
        return fail(error, "expected ws://host[:port][/path]");
    for (char c : text.substr(0, colon)) url.scheme += lower(c);
    if (url.scheme != "ws" && url.scheme != "wss")
        return fail(error, "the scheme must be ws or wss");
    text.remove_prefix(colon + 3);

    const std::size_t authority_end = text.find_first_of("/?#");
    std::string_view authority = text.substr(0, authority_end);
    std::string_view rest = authority_end == std::string_view::npos ? std::string_view()
                                                                    : text.substr(authority_end);
    if (authority.find('@') != std::string_view::npos)
        return fail(error, "user information (user@host) is not supported");
    if (authority.empty()) return fail(error, "missing host");

    std::string_view port_text;
    bool has_port = false;
    if (authority.front() == '[') {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return fail(error, "unterminated IPv6 literal: missing ']'");
        const std::string_view literal = authority.substr(1, close - 1);
        // inet_pton accepts exactly the RFC 4291 text forms; zone ids ("%eth0") are refused.
        std::array<char, 64> buffer{};
        std::array<unsigned char, 16> address{};
        if (literal.empty() || literal.size() >= buffer.size())
            return fail(error, "invalid IPv6 literal");
        std::memcpy(buffer.data(), literal.data(), literal.size());
        if (inet_pton(AF_INET6, buffer.data(), address.data()) != 1)
            return fail(error, "invalid IPv6 literal");
        url.host.assign(literal);
        url.ipv6 = true;
        const std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return fail(error, "unexpected text after the IPv6 literal");
            has_port = true;
            port_text = after.substr(1);
        }
    } else {
        const std::size_t port_colon = authority.find(':');
        const std::string_view host = authority.substr(0, port_colon);
        if (port_colon != std::string_view::npos) {
            has_port = true;
            port_text = authority.substr(port_colon + 1);
        }
        if (host.empty()) return fail(error, "missing host");
        for (char c : host)
            if (!is_unreserved(c)) return fail(error, "invalid character in host");
        if (host.find_first_not_of("0123456789.") == std::string_view::npos && !is_dotted_quad(host))
            return fail(error, "invalid IPv4 address");
        url.host.assign(host);
    }

    if (has_port) {
        if (port_text.empty()) return fail(error, "missing port number after ':'");
        unsigned long value = 0;
        for (char c : port_text) {
            if (!is_digit(c)) return fail(error, "the port is not a number");
            value = value * 10 + static_cast<unsigned long>(c - '0');
            if (value > 65535) return fail(error, "the port is out of range (1-65535)");
        }
        if (value == 0) return fail(error, "the port is out of range (1-65535)");
        url.port = static_cast<std::uint16_t>(value);
        url.explicit_port = true;
    } else {
        url.port = url.scheme == "wss" ? 443 : 80;
    }

    // RFC 6455 §3: fragments are meaningless in a WebSocket URI and must not be used.
    if (rest.find('#') != std::string_view::npos)
        return fail(error, "a WebSocket URL has no fragment ('#')");
    for (char c : rest)
        if (!is_uri_char(c))
            return fail(error, "spaces, control and non-ASCII bytes must be percent-encoded");
    const std::size_t question = rest.find('?');
    const std::string_view path = rest.substr(0, question);
    url.path = path.empty() ? std::string("/") : std::string(path);
    if (question != std::string_view::npos) url.query.emplace(rest.substr(question + 1));
    return true;
}

}  // namespace

std::string Url::host_for_uri() const { return ipv6 ? "[" + host + "]" : host; }

std::string Url::target() const { return query ? path + "?" + *query : path; }

std::string Url::str() const {
    return scheme + "://" + host_for_uri() + ":" + std::to_string(port) + target();
}

std::optional<Url> parse_url(std::string_view text, std::string* error) {
    Url url;
    if (!parse_into(text, url, error)) return std::nullopt;
    return url;
}

Url parse_url_or_throw(std::string_view text) {
    std::string why;
    std::optional<Url> url = parse_url(text, &why);
    if (!url) throw Error(Errc::Runtime, "invalid engine URL '" + redact_url(text) + "': " + why);
    return std::move(*url);
}

}  // namespace iii::detail
