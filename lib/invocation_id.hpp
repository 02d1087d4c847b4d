#pragma once
// An invocation id held inline. The SDK's ids are canonical UUIDs (36 characters), beyond
// std::string's small-string buffer: as std::string every id and every copy of one (the pending
// table's key, the deadline index, the cancellation handler) costs an allocation per call.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace iii::detail {

class InvocationId {
public:
    /// A canonical UUID's length; longer ids are refused.
    static constexpr std::size_t capacity = 36;

    InvocationId() noexcept = default;
    /// Throws std::length_error beyond `capacity` characters.
    InvocationId(std::string_view text) {  // NOLINT: implicit, as the strings it replaces
        if (text.size() > capacity)
            throw std::length_error("invocation id longer than " + std::to_string(capacity) + " characters");
        std::memcpy(data_, text.data(), text.size());
        size_ = static_cast<std::uint8_t>(text.size());
    }
    InvocationId(const std::string& text) : InvocationId(std::string_view(text)) {}
    InvocationId(const char* text) : InvocationId(std::string_view(text)) {}

    std::string_view view() const noexcept { return {data_, size_}; }
    std::string str() const { return std::string(view()); }
    bool empty() const noexcept { return size_ == 0; }
    /// The bytes, for writing an id in place (new_invocation_id()); size() must be set after.
    char* data() noexcept { return data_; }
    void resize(std::size_t n) noexcept { size_ = static_cast<std::uint8_t>(n < capacity ? n : capacity); }

    friend bool operator==(const InvocationId& a, const InvocationId& b) noexcept { return a.view() == b.view(); }
    friend bool operator<(const InvocationId& a, const InvocationId& b) noexcept { return a.view() < b.view(); }

private:
    char data_[capacity] = {};
    std::uint8_t size_ = 0;
};

struct InvocationIdHash {
    std::size_t operator()(const InvocationId& id) const noexcept { return std::hash<std::string_view>{}(id.view()); }
};

}  // namespace iii::detail
