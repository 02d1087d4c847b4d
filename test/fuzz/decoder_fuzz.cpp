// libFuzzer target for everything the engine can send us: the frame decoder (simdjson
// on-demand into protocol messages), and, for frames that decode, re-encoding them and parsing
// the frame as iii::Value. No coroutine code, so it builds with clang: tools/fuzz.sh [SECONDS].

#include "protocol.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace proto = iii::detail::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static proto::Decoder decoder;
    static proto::Encoder encoder;
    // The same frames into recycled storage (Decoder::recycle): the previous input's value, of
    // whatever shape, must not show through, nor change what decodes.
    static proto::Decoder recycling;
    static iii::Value previous;
    const std::string_view frame(reinterpret_cast<const char*>(data), size);
    proto::Message message;
    proto::DecodeFailure failure;
    const bool decoded = decoder.decode(frame, message, failure);
    if (decoded) {
        // Whatever decodes must encode again without throwing.
        std::visit([&](const auto& m) {
            if constexpr (requires { encoder.encode(m); }) (void)encoder.encode(m);
        }, message);
    }
    std::string spare_id(40, 'x');
    recycling.recycle(std::move(previous), std::move(spare_id));
    previous = iii::Value();
    proto::Message again;
    proto::DecodeFailure again_failure;
    if (recycling.decode(frame, again, again_failure) != decoded) __builtin_trap();
    if (decoded)
        if (auto* invoke = std::get_if<proto::InvokeFunction>(&message)) {
            auto& other = std::get<proto::InvokeFunction>(again);
            if (other.data.dump() != invoke->data.dump() || other.invocation_id != invoke->invocation_id)
                __builtin_trap();
            previous = std::move(other.data);
        }
    try {
        iii::Value parsed = iii::Value::parse(frame);
        (void)parsed.dump();
        if (previous.is_null()) previous = std::move(parsed);
    } catch (const iii::Error&) {
        // invalid JSON is an Errc::Serde error, which is the contract
    }
    return 0;
}
