#pragma once
// Byte classes tested eight bytes at a time in one 64-bit word ("SIMD within a register"), and
// hex digits written two at a time, for the short fixed-form tokens every call carries
// (invocation ids, trace ids).

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace iii::detail::swar {

inline constexpr std::uint64_t ones = 0x0101010101010101u;
inline constexpr std::uint64_t highs = 0x8080808080808080u;

/// Bit 7 of each byte of `x` set where lo <= byte <= hi, for bytes below 0x80 (`lo` and `hi`
/// below 0x80 too): no carry crosses a byte.
constexpr std::uint64_t within(std::uint64_t x, unsigned char lo, unsigned char hi) noexcept {
    return (x + ones * (0x80u - lo)) & ~(x + ones * (0x7fu - hi)) & highs;
}

/// Bit 7 of each byte of `x` set where the byte is '0'-'9'.
constexpr std::uint64_t digit_bytes(std::uint64_t x) noexcept {
    return within(x & ~highs, '0', '9') & ~x;
}

/// Bit 7 of each byte of `x` set where the byte is 'a'-'f' or, with `any_case`, 'A'-'F'.
constexpr std::uint64_t hex_letter_bytes(std::uint64_t x, bool any_case) noexcept {
    const std::uint64_t folded = any_case ? x | ones * 0x20 : x;
    return within(folded & ~highs, 'a', 'f') & ~x;
}

/// The eight bytes at `p` as one word (memory order: byte i is bits 8i..8i+7 on a
/// little-endian machine; the tests above do not depend on the order).
inline std::uint64_t load(const char* p) noexcept {
    std::uint64_t x;
    std::memcpy(&x, p, sizeof x);
    return x;
}

/// Whether the 36 bytes at `p` are a UUID in canonical form: lower-case hex digits, hyphens at
/// 8, 13, 18 and 23.
inline bool canonical_uuid(const char* p) noexcept {
    if (p[8] != '-' || p[13] != '-' || p[18] != '-' || p[23] != '-') return false;
    char digits[40];
    std::memcpy(digits, p, 36);
    digits[8] = digits[13] = digits[18] = digits[23] = '0';
    std::memset(digits + 36, '0', 4);
    std::uint64_t all = highs;
    for (int i = 0; i < 40; i += 8) {
        const std::uint64_t x = load(digits + i);
        all &= digit_bytes(x) | hex_letter_bytes(x, false);
    }
    return all == highs;
}

/// The two lower-case hex digits of each byte value: 2 * b and 2 * b + 1.
inline constexpr std::array<char, 512> hex_pairs = [] {
    constexpr char digits[] = "0123456789abcdef";
    std::array<char, 512> pairs{};
    for (std::size_t b = 0; b < 256; ++b) {
        pairs[2 * b] = digits[b >> 4];
        pairs[2 * b + 1] = digits[b & 15];
    }
    return pairs;
}();

/// Writes the 16 hex digits of `x`, most significant first, at `out`.
inline void write_hex64(std::uint64_t x, char* out) noexcept {
    for (int byte = 0; byte < 8; ++byte)
        std::memcpy(out + 2 * byte, &hex_pairs[2 * ((x >> (56 - 8 * byte)) & 0xff)], 2);
}

}  // namespace iii::detail::swar
