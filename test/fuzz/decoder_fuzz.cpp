// libFuzzer target for everything the engine can send us: the frame decoder (simdjson
// on-demand into protocol messages), and, for frames that decode, re-encoding them and parsing
// the frame as iii::Value. No coroutine code, so it builds with clang: tools/fuzz.sh [SECONDS].

#include "protocol.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static iii::detail::protocol::Decoder decoder;
    static iii::detail::protocol::Encoder encoder;
    const std::string_view frame(reinterpret_cast<const char*>(data), size);
    iii::detail::protocol::Message message;
    iii::detail::protocol::DecodeFailure failure;
    if (decoder.decode(frame, message, failure)) {
        // Whatever decodes must encode again without throwing.
        std::visit([&](const auto& m) {
            if constexpr (requires { encoder.encode(m); }) (void)encoder.encode(m);
        }, message);
    }
    try {
        (void)iii::Value::parse(frame).dump();
    } catch (const iii::Error&) {
        // invalid JSON is an Errc::Serde error, which is the contract
    }
    return 0;
}
