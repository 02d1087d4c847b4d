#include <iii/version.hpp>

namespace iii {

const char* library_version() noexcept { return III_VERSION_STRING; }

}  // namespace iii
