// Channel refs (spec section 6.1): the plain-data part of channels, which every payload from the
// network passes through (extract_channel_refs) and which builds channel URLs. No Asio state, so
// that it can be fuzzed on its own (test/fuzz/channel_fuzz.cpp).

#include "iii/channel.hpp"

#include "iii/error.hpp"

#include <string>
#include <utility>
#include <vector>

namespace iii {

// ---- refs ------------------------------------------------------------------------------------

Value StreamChannelRef::to_value() const {
    return Value::object({{"channel_id", channel_id},
                          {"access_key", access_key},
                          {"direction", direction == ChannelDirection::Read ? "read" : "write"}});
}

bool StreamChannelRef::is_ref(const Value& value) noexcept {
    if (!value.is_object()) return false;
    const Value* id = value.find("channel_id");
    const Value* key = value.find("access_key");
    const Value* dir = value.find("direction");
    if (!id || !key || !dir || !id->is_string() || !key->is_string() || !dir->is_string())
        return false;
    const std::string& d = dir->as_string();
    return d == "read" || d == "write";
}

StreamChannelRef StreamChannelRef::from_value(const Value& value) {
    if (!is_ref(value))
        throw Error(Errc::Serde,
                    "not a channel ref (want {\"channel_id\",\"access_key\",\"direction\":"
                    "\"read\"|\"write\"}): " + value.dump());
    return StreamChannelRef(value.at("channel_id").as_string(), value.at("access_key").as_string(),
                            value.at("direction").as_string() == "read" ? ChannelDirection::Read
                                                                        : ChannelDirection::Write);
}

namespace {

void collect_refs(const Value& value, const std::string& path,
                  std::vector<std::pair<std::string, StreamChannelRef>>& out) {
    if (StreamChannelRef::is_ref(value)) {
        out.emplace_back(path, StreamChannelRef::from_value(value));
        return;
    }
    if (value.is_object()) {
        for (const auto& [key, member] : value.as_object())
            collect_refs(member, path.empty() ? key : path + "." + key, out);
    } else if (value.is_array()) {
        const auto& items = value.as_array();
        for (std::size_t i = 0; i < items.size(); ++i)
            collect_refs(items[i], path + "[" + std::to_string(i) + "]", out);
    }
}

std::string percent_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

}  // namespace

std::vector<std::pair<std::string, StreamChannelRef>> extract_channel_refs(const Value& data) {
    std::vector<std::pair<std::string, StreamChannelRef>> out;
    collect_refs(data, std::string(), out);
    return out;
}

std::string channel_url(std::string_view engine_address, const StreamChannelRef& ref) {
    // The worker URL's own query (say ?token=...) is for the worker connection: appended to, it
    // would swallow the channel's path into the query and connect as a worker.
    engine_address = engine_address.substr(0, engine_address.find_first_of("?#"));
    while (!engine_address.empty() && engine_address.back() == '/') engine_address.remove_suffix(1);
    std::string url(engine_address);
    url += "/ws/channels/";
    // Encoded too: an id from the engine with '/', '?' or '#' in it must not change the path
    // or the query (engine ids are UUIDs, which encoding leaves as they are).
    url += percent_encode(ref.channel_id);
    url += "?key=";
    url += percent_encode(ref.access_key);
    url += ref.direction == ChannelDirection::Read ? "&dir=read" : "&dir=write";
    return url;
}

}  // namespace iii
