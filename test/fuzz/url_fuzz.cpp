// libFuzzer target for the engine-URL parser and the log redaction (lib/url.*, lib/redact.*).
// Invariants: a URL that parses parses again from its normal form to the same parts; its
// redacted form parses too, to the same host, port and path, with every query value hidden;
// redaction never throws on any text.

#include "redact.hpp"
#include "url.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)iii::detail::redact_text(text);
    const auto url = iii::detail::parse_url(text);
    if (!url) return 0;
    require(url->path.front() == '/');
    require(url->port != 0);
    const auto again = iii::detail::parse_url(url->str());
    require(again && again->scheme == url->scheme && again->host == url->host &&
            again->port == url->port && again->path == url->path && again->query == url->query &&
            again->ipv6 == url->ipv6);
    const auto redacted = iii::detail::parse_url(iii::detail::redact_url(text));
    require(redacted && redacted->host == url->host && redacted->port == url->port &&
            redacted->path == url->path);
    if (redacted->query) {
        std::string_view query = *redacted->query;
        for (;;) {
            const std::size_t amp = query.find('&');
            const std::string_view param = query.substr(0, amp);
            const std::size_t eq = param.find('=');
            require(param.empty() || param == "***" || param.substr(eq + 1) == "***");
            if (amp == std::string_view::npos) break;
            query.remove_prefix(amp + 1);
        }
    }
    return 0;
}
