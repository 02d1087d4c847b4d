#pragma once
/// @file
/// Where the SDK's own diagnostics go (connection lost, reconnecting, frames it could not
/// decode, ...). By default they are written to stderr as `[iii <level>] <text>` lines, at the
/// level given by the `III_LOG` environment variable (`error`, `warn`, `info`, `debug`;
/// default `warn`). set_log_sink() routes them into the application's logger instead.
///
/// These are process-wide settings: they apply to every client (and to the test engine of
/// libiii-sdk-testing) in the process. OpenTelemetry log export (iii::Logger in
/// iii/telemetry.hpp) sends the application's records to the engine; the lines it writes
/// locally (telemetry off, or the engine away) also go to the sink, unfiltered by the level.

#include <iii/export.hpp>

#include <functional>
#include <string_view>

namespace iii {

/// Severity of an SDK diagnostic. A line is emitted when its level is at most log_level().
enum class LogLevel {
    Error = 0,  ///< a failure the SDK could not handle itself (e.g. a connection loop ended)
    Warn = 1,   ///< something went wrong and was handled (bad frame dropped, reconnect)
    Info = 2,   ///< connection lifecycle: connected, closed, reconnecting
    Debug = 3,  ///< per-frame details
};

/// Receives one diagnostic line (without a trailing newline).
///
/// Called on SDK threads (the connection's io thread, the handler pool, the test engine's
/// thread), possibly several at once: it must be thread-safe, should return quickly, and must
/// not call into a Client (it may run on the connection's strand). Exceptions it throws are
/// swallowed. `message` is only valid during the call.
using LogSink = std::function<void(LogLevel level, std::string_view message)>;

/// Routes every SDK diagnostic into `sink`; an empty sink restores the default (stderr).
/// Thread-safe. A call of the previous sink that is already running may finish after this
/// returns; no new one starts.
III_API void set_log_sink(LogSink sink);

/// Sets the threshold: lines above `level` are not formatted at all. Overrides `III_LOG`.
III_API void set_log_level(LogLevel level) noexcept;

/// The current threshold (from `III_LOG` until set_log_level() is called).
III_API LogLevel log_level() noexcept;

/// Sends `message` to the current sink if `level` passes the threshold, as the SDK does with
/// its own lines. Never throws.
III_API void log_message(LogLevel level, std::string_view message) noexcept;

/// "error", "warn", "info" or "debug".
III_API const char* to_string(LogLevel level) noexcept;

}  // namespace iii
