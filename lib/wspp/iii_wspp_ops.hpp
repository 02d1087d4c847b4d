#pragma once
// What the corrected copies of websocketpp's frame code call instead of its byte loops.
//
// websocketpp 0.8.2 masks and unmasks payloads one byte at a time (frame::byte_mask_circ,
// frame::byte_mask) and validates text payloads one byte at a time, twice per message on a
// relay (hybi13::process_payload_bytes when reading, prepare_data_frame when sending). At
// configure time tools/fix_websocketpp.py writes copies of frame.hpp and processors/hybi13.hpp
// that call these two functions instead; nothing else of websocketpp changes. The copies include
// this header by its bare name, so it must stay self-contained and websocketpp-free.

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace iii::detail::wspp {

/// XORs `length` bytes of `in` with the repeating 4-byte masking key `key` into `out`
/// (RFC 6455 §5.3): out[i] = in[i] ^ key[i % 4]. A caller that masks a frame in pieces passes the
/// key rotated by the offset already consumed (websocketpp's "prepared key" does that).
/// `in` and `out` are either the same buffer or do not overlap; neither needs any alignment.
/// 16 bytes at a time (SSE2, the x86-64 baseline), else 8, then the last 0..7 byte by byte.
inline void mask(const std::uint8_t* in, std::uint8_t* out, std::size_t length,
                 const std::uint8_t key[4]) noexcept {
    std::uint32_t k32;
    std::memcpy(&k32, key, 4);
    // Both halves hold the key's bytes in memory order, so this is right on either byte order.
    const std::uint64_t k64 = (static_cast<std::uint64_t>(k32) << 32) | k32;
    std::size_t i = 0;
#if defined(__SSE2__)
    const __m128i k128 = _mm_set1_epi32(static_cast<int>(k32));
    for (; i + 32 <= length; i += 32) {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i + 16));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_xor_si128(a, k128));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i + 16), _mm_xor_si128(b, k128));
    }
    if (i + 16 <= length) {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_xor_si128(a, k128));
        i += 16;
    }
#endif
    // memcpy, not a cast: the buffers are unaligned and a cast would break strict aliasing.
    for (; i + 8 <= length; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, in + i, 8);
        w ^= k64;
        std::memcpy(out + i, &w, 8);
    }
    // Every step above is a multiple of 4 bytes, so the tail still starts at key[0].
    for (; i < length; ++i) out[i] = static_cast<std::uint8_t>(in[i] ^ key[i & 3]);
}

/// True when `data[0, size)` is valid UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
/// above U+10FFFF), checked with simdjson's SIMD validator (lib/wspp/iii_wspp_ops.cpp).
bool valid_utf8(const char* data, std::size_t size) noexcept;

}  // namespace iii::detail::wspp
