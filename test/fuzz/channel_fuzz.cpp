// libFuzzer target for the channel data that comes from the network (lib/channel_ref.cpp): the
// refs found anywhere in a payload (extract_channel_refs over the parsed frame, as every
// invocation's data goes through) and the `engine::channels::create` response
// (StreamChannelRef::from_value). Invariants: every ref found round-trips through to_value(),
// and the URL built from it is one valid ws URL whose path and query are exactly the channel's
// (nothing in an id or key can add a path segment, a parameter or a fragment).

#include "url.hpp"

#include <iii/channel.hpp>
#include <iii/error.hpp>

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
    iii::Value payload;
    try {
        payload = iii::Value::parse(text);
    } catch (const iii::Error&) {
        return 0;
    }
    for (const auto& [path, ref] : iii::extract_channel_refs(payload)) {
        require(iii::StreamChannelRef::from_value(ref.to_value()) == ref);
        const auto url = iii::detail::parse_url(iii::channel_url("ws://127.0.0.1:49134/", ref));
        require(url.has_value());
        require(url->host == "127.0.0.1" && url->port == 49134);
        require(url->path.rfind("/ws/channels/", 0) == 0 && url->path.find('/', 13) == std::string::npos);
        require(url->query && url->query->rfind("key=", 0) == 0);
        const std::size_t amp = url->query->find('&');
        require(amp != std::string::npos && url->query->find('&', amp + 1) == std::string::npos);
        const std::string_view dir = std::string_view(*url->query).substr(amp);
        require(dir == (ref.direction == iii::ChannelDirection::Read ? "&dir=read" : "&dir=write"));
    }
    // A create response: {"writer": ref, "reader": ref}; anything else is Errc::Serde.
    if (const iii::Value* writer = payload.find("writer")) {
        try {
            (void)iii::StreamChannelRef::from_value(*writer);
        } catch (const iii::Error& e) {
            require(e.errc() == iii::Errc::Serde);
        }
    }
    return 0;
}
