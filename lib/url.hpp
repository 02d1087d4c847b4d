#pragma once
// The one parser for engine URLs (ws:// and wss://). register_worker validates with it, so a URL
// that can never connect fails at once instead of being retried forever.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace iii::detail {

/// A parsed WebSocket URL (RFC 6455 §3: `ws[s]://host[:port][/path][?query]`, no fragment).
struct Url {
    std::string scheme;        ///< "ws" or "wss", lower-cased
    std::string host;          ///< a name, an IPv4 address, or an IPv6 literal without brackets
    bool ipv6 = false;         ///< host is an IPv6 literal (written `[...]` in the URL)
    std::uint16_t port = 0;    ///< the explicit port, else 80 (ws) or 443 (wss)
    bool explicit_port = false;
    std::string path = "/";    ///< always starts with '/'
    std::optional<std::string> query;  ///< after '?', without it; nullopt when there is no '?'

    /// `host` as it goes into a URL or a Host header: IPv6 literals bracketed.
    std::string host_for_uri() const;
    /// The request target of the upgrade request: path plus "?query".
    std::string target() const;
    /// The URL written back in normal form (scheme and default port spelled out).
    std::string str() const;
};

/// Parses `text`. On failure returns nullopt and, when `error` is given, stores why (the reason
/// never repeats the URL, so it is safe to log even when the URL carries a token).
/// Never throws except std::bad_alloc.
std::optional<Url> parse_url(std::string_view text, std::string* error = nullptr);

/// parse_url, throwing iii::Error(Errc::Runtime, "invalid engine URL '<redacted url>': <why>").
Url parse_url_or_throw(std::string_view text);

}  // namespace iii::detail
