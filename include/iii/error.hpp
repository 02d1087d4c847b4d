#pragma once
// One exception type for every failure a public call reports (the reference's IIIError).

#include <iii/export.hpp>

#include <optional>
#include <string>
#include <system_error>

namespace iii {

/// The kind of failure, one per variant of the reference's IIIError. Values are stable:
/// new variants are appended, never renumbered.
enum class Errc {
    NotConnected = 1,  ///< no connection (after shutdown, or it dropped while a call waited)
    Timeout,           ///< the invocation timeout elapsed before a result arrived
    Runtime,           ///< a local failure (bad argument, duplicate registration, ...)
    Remote,            ///< the engine or the remote function returned an error; see Error::remote()
    Handler,           ///< a local handler failed
    Serde,             ///< JSON that did not parse or did not have the expected shape
    WebSocket,         ///< the transport failed; see Error::cause()
};

/// The error category of Errc ("iii").
III_API const std::error_category& error_category() noexcept;
inline std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

/// The body of an error reply: `{"code","message","stacktrace"?}` on the wire.
struct RemoteError {
    /// The error code, e.g. "function_not_found", "invocation_failed".
    std::string code;
    /// The human-readable message.
    std::string message;
    /// The remote stack trace, when the remote side sent one.
    std::optional<std::string> stacktrace;
};

/// The exception every awaitable of the SDK throws (besides asio's operation_aborted when the
/// awaiting coroutine is cancelled). `code().category() == iii::error_category()`.
class III_API Error : public std::system_error {
public:
    /// An error of kind `errc` with message `what`.
    Error(Errc errc, const std::string& what);
    /// Errc::Remote with the reply's code, message and stacktrace.
    explicit Error(RemoteError remote);
    /// Errc::WebSocket (or another kind) caused by a transport error.
    Error(Errc errc, const std::string& what, std::error_code cause);

    /// The kind of failure.
    Errc errc() const noexcept { return static_cast<Errc>(code().value()); }
    /// Non-null only for Errc::Remote.
    const RemoteError* remote() const noexcept { return remote_ ? &*remote_ : nullptr; }
    /// The transport error behind an Errc::WebSocket, empty otherwise.
    std::error_code cause() const noexcept { return cause_; }
    /// The message given at construction; for Remote, "<code>: <message>".
    const char* what() const noexcept override { return message_.c_str(); }

private:
    std::string message_;
    std::optional<RemoteError> remote_;
    std::error_code cause_;
};

}  // namespace iii

template <>
struct std::is_error_code_enum<iii::Errc> : std::true_type {};
