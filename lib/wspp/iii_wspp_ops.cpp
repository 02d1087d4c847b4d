#include "iii_wspp_ops.hpp"

#include <simdjson.h>

namespace iii::detail::wspp {

// Out of line: simdjson.h is large, and the validator picks its SIMD kernel at run time anyway.
bool valid_utf8(const char* data, std::size_t size) noexcept {
    return simdjson::validate_utf8(data, size);
}

}  // namespace iii::detail::wspp
