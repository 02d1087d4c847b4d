#include "iii/error.hpp"

namespace iii {
namespace {

class Category final : public std::error_category {
public:
    const char* name() const noexcept override { return "iii"; }
    std::string message(int value) const override {
        switch (static_cast<Errc>(value)) {
            case Errc::NotConnected: return "iii is not connected";
            case Errc::Timeout: return "invocation timed out";
            case Errc::Runtime: return "runtime error";
            case Errc::Remote: return "remote error";
            case Errc::Handler: return "handler error";
            case Errc::Serde: return "serialization error";
            case Errc::WebSocket: return "websocket error";
            case Errc::RegistrationRejected: return "registration rejected by the engine";
        }
        return "unknown iii error";
    }
};

}  // namespace

const std::error_category& error_category() noexcept {
    static const Category category;
    return category;
}

Error::Error(Errc errc, const std::string& what)
    : std::system_error(make_error_code(errc), what), message_(what) {}

Error::Error(RemoteError remote)
    : std::system_error(make_error_code(Errc::Remote), remote.code),
      message_(remote.code + ": " + remote.message),
      remote_(std::move(remote)) {}

Error::Error(Errc errc, RemoteError detail)
    : std::system_error(make_error_code(errc), detail.code),
      message_(detail.code + ": " + detail.message),
      remote_(std::move(detail)) {}

Error::Error(Errc errc, const std::string& what, std::error_code cause)
    : std::system_error(make_error_code(errc), what), message_(what), cause_(cause) {}

}  // namespace iii
