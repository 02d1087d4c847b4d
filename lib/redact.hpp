#pragma once
// Keeps secrets out of log lines. A worker's URL may carry a token in its query
// (`ws://engine/?token=...`), channel URLs carry their access key (`?key=...`), handshake headers
// carry credentials: none of that may reach a log, at any level.
//
// log_line() applies redact_text() to every line it prints, so a call site that forgets is still
// covered for URLs and JSON secret fields; call sites that log a header map or a bare secret use
// redact_headers() / redacted.

#include <map>
#include <string>
#include <string_view>

namespace iii::detail {

/// What a secret is replaced with. Fixed, so a log does not even reveal a secret's length.
inline constexpr std::string_view redacted = "***";

/// `url` with the value of every query parameter and any userinfo password replaced by
/// `redacted`; parameter names are kept, so a log still says what was sent:
/// `ws://h:1/?token=abc&x` becomes `ws://h:1/?token=***&x`.
std::string redact_url(std::string_view url);

/// Free text with every URL in it (anything of the form `scheme://...` up to a space, quote or
/// bracket) passed through redact_url(), and the string value of every JSON field whose name
/// says it holds a secret (`key`, `token`, `secret`, `password`, `authorization`, `cookie`,
/// e.g. a channel's `access_key`) replaced by `redacted`.
std::string redact_text(std::string_view text);

/// A header map for a log line: `{Authorization: ***, X-Trace: ***}`. Every value is redacted
/// (which header holds a credential is the engine's business, not ours).
std::string redact_headers(const std::map<std::string, std::string>& headers);

}  // namespace iii::detail
