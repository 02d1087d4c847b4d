#include "iii/types.hpp"
#include "iii/version.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace iii {

const char* to_string(ConnectionState state) noexcept {
    switch (state) {
        case ConnectionState::Disconnected: return "disconnected";
        case ConnectionState::Connecting: return "connecting";
        case ConnectionState::Connected: return "connected";
        case ConnectionState::Reconnecting: return "reconnecting";
        case ConnectionState::Failed: return "failed";
    }
    return "unknown";
}

const char* to_string(HttpMethod method) noexcept {
    switch (method) {
        case HttpMethod::Get: return "GET";
        case HttpMethod::Post: return "POST";
        case HttpMethod::Put: return "PUT";
        case HttpMethod::Patch: return "PATCH";
        case HttpMethod::Delete: return "DELETE";
    }
    return "POST";
}

namespace {

// $LANG, else $LC_ALL, up to the first '.', as the Rust SDK reports it ("en_US"). The "C" and
// "POSIX" locales say nothing about the user's language, so they are left out.
std::optional<std::string> detect_language() {
    for (const char* name : {"LANG", "LC_ALL"}) {
        const char* value = std::getenv(name);
        if (!value || !*value) continue;
        std::string_view locale(value);
        locale = locale.substr(0, locale.find('.'));
        if (locale.empty() || locale == "C" || locale == "POSIX") return std::nullopt;
        return std::string(locale);
    }
    return std::nullopt;
}

// The variable's value, unless it is unset, empty or only whitespace.
std::optional<std::string> non_blank_env(const char* name) {
    const char* value = std::getenv(name);
    if (!value) return std::nullopt;
    std::string_view v(value);
    if (v.find_first_not_of(" \t\r\n") == std::string_view::npos) return std::nullopt;
    return std::string(v);
}

}  // namespace

WorkerMetadata WorkerMetadata::detect() {
    WorkerMetadata m;
    m.runtime = "cpp";
    m.version = III_VERSION_STRING;
    const auto pid = static_cast<std::uint32_t>(::getpid());
    m.pid = pid;

    std::string host_name = "localhost";
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0 && host[0]) host_name = host;
    // An orchestrator (the managed-worker contract of 0.22) names its workers through
    // $III_WORKER_NAME; the default "<hostname>:<pid>" is the same on every reconnect, which
    // the 0.23 name lease relies on.
    if (auto assigned = non_blank_env("III_WORKER_NAME"))
        m.name = std::move(*assigned);
    else
        m.name = host_name + ":" + std::to_string(pid);
    m.isolation = non_blank_env("III_ISOLATION");

    // "<os> <arch> (<family>)", e.g. "linux x86_64 (unix)", like Rust's env::consts.
    struct utsname u {};
    if (::uname(&u) == 0) {
        std::string os = u.sysname;
        for (char& c : os) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        m.os = os + " " + u.machine + " (unix)";
    } else {
        m.os = "unknown (unix)";
    }

    WorkerTelemetryMeta telemetry;
    telemetry.language = detect_language();
    telemetry.framework = "iii-cpp";
    m.telemetry = std::move(telemetry);
    return m;
}

}  // namespace iii
