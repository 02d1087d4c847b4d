#pragma once
// One exception type for every failure a public call reports (the reference's IIIError).

#include <iii/export.hpp>

#include <optional>
#include <string>
#include <string_view>
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
    /// The engine refused this worker for good (0.23 `registrationrejected`, e.g.
    /// codes::worker_namespace_conflict): the client stops reconnecting. Error::remote() holds
    /// the rejection's code and message.
    RegistrationRejected = 8,
};

/// Error codes of RemoteError::code that the engine and the official SDKs use, so that callers
/// match them without string literals: `if (e.remote()->code == iii::codes::function_not_found)`.
/// The code stays a free string: engines add codes, and a code not listed here is still passed
/// through unchanged.
namespace codes {
/// No function with that id (on 0.23: in that namespace). Also the engine's answer to a
/// built-in that does not exist in its generation (e.g. `engine::trigger-types::list` on 0.22).
inline constexpr std::string_view function_not_found = "function_not_found";
/// The handler failed (a C++ handler that throws is answered with this code).
inline constexpr std::string_view invocation_failed = "invocation_failed";
/// The callee's worker disconnected while the call ran.
inline constexpr std::string_view invocation_stopped = "invocation_stopped";
/// Enqueue refused: an unknown queue, a FIFO group field missing, or (0.22+) no queue worker
/// installed ("No queue provider is installed"; see the README's queue note).
inline constexpr std::string_view enqueue_error = "enqueue_error";
/// A trigger bind was refused (provider's register_trigger threw, or a built-in trigger type
/// rejected the config); on 0.22+ also sent by the engine to the trigger's registrant.
inline constexpr std::string_view trigger_registration_failed = "trigger_registration_failed";
/// The engine could not decode a built-in's input.
inline constexpr std::string_view deserialization_error = "deserialization_error";
/// A local timeout in the Node and Python SDKs; a C++ peer's own timeout is Errc::Timeout, but
/// a nested call through a Node worker can come back with this code.
inline constexpr std::string_view timeout = "TIMEOUT";
/// RBAC refused the call (0.22+ name the remedy in the message).
inline constexpr std::string_view forbidden = "FORBIDDEN";
/// From the 0.22+ info built-ins (`engine::functions::info`, ...): no such function, worker or
/// trigger.
inline constexpr std::string_view not_found = "NOT_FOUND";
/// From the 0.22+ built-ins: the input was not acceptable.
inline constexpr std::string_view invalid_arguments = "INVALID_ARGUMENTS";
/// 0.23: a blank or malformed namespace.
inline constexpr std::string_view invalid_namespace = "INVALID_NAMESPACE";
/// 0.23 `registrationrejected`: another live worker in the namespace already provides this
/// function id; only that function is refused.
inline constexpr std::string_view function_namespace_conflict = "FUNCTION_NAMESPACE_CONFLICT";
/// 0.23 `registrationrejected`: another live worker already runs under this name in the
/// namespace; fatal (Errc::RegistrationRejected).
inline constexpr std::string_view worker_namespace_conflict = "WORKER_NAMESPACE_CONFLICT";
}  // namespace codes

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
    /// Another kind that carries the engine's code and message, readable through remote()
    /// (Errc::RegistrationRejected). what() is "<code>: <message>".
    Error(Errc errc, RemoteError detail);

    /// The kind of failure.
    Errc errc() const noexcept { return static_cast<Errc>(code().value()); }
    /// Non-null for Errc::Remote, and for errors built with a RemoteError detail
    /// (Errc::RegistrationRejected).
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
