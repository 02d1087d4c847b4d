#include "redact.hpp"

#include <array>

namespace iii::detail {
namespace {

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool contains_ci(std::string_view haystack, std::string_view needle) noexcept {
    if (needle.size() > haystack.size()) return false;
    for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
        std::size_t j = 0;
        while (j < needle.size() && lower(haystack[i + j]) == needle[j]) ++j;
        if (j == needle.size()) return true;
    }
    return false;
}

bool is_secret_name(std::string_view name) noexcept {
    static constexpr std::array<std::string_view, 6> words = {"key",      "token",         "secret",
                                                              "password", "authorization", "cookie"};
    for (std::string_view w : words)
        if (contains_ci(name, w)) return true;
    return false;
}

// Where a URL written inside free text ends: log lines quote URLs ('...'), JSON holds them in
// strings, prose puts them before a space or a closing parenthesis.
bool ends_url(char c) noexcept {
    switch (c) {
        case ' ': case '\t': case '\r': case '\n': case '"': case '\'': case '`': case '<':
        case '>': case ')': case '\\':
            return true;
        default:
            return static_cast<unsigned char>(c) < 0x20;
    }
}

// `rest` is what follows "scheme://": hides a userinfo password and every query value.
void redact_after_scheme(std::string_view rest, std::string& out) {
    const std::size_t authority_end = rest.find_first_of("/?#");
    const std::string_view authority = rest.substr(0, authority_end);
    if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
        const std::string_view userinfo = authority.substr(0, at);
        const std::size_t colon = userinfo.find(':');
        out += userinfo.substr(0, colon);
        if (colon != std::string_view::npos) {
            out += ':';
            out += redacted;
        }
        out += authority.substr(at);
    } else {
        out += authority;
    }
    if (authority_end == std::string_view::npos) return;
    rest.remove_prefix(authority_end);
    const std::size_t question = rest.find('?');
    out += rest.substr(0, question);
    if (question == std::string_view::npos) return;
    out += '?';
    std::string_view query = rest.substr(question + 1);
    const std::size_t hash = query.find('#');
    const std::string_view fragment = hash == std::string_view::npos ? std::string_view()
                                                                     : query.substr(hash);
    query = query.substr(0, hash);
    bool first = true;
    while (true) {
        const std::size_t amp = query.find('&');
        const std::string_view param = query.substr(0, amp);
        if (!first) out += '&';
        first = false;
        if (!param.empty()) {
            // A bare parameter (`?abcdef`) may itself be the token: hidden whole.
            const std::size_t eq = param.find('=');
            if (eq != std::string_view::npos) out += param.substr(0, eq + 1);
            out += redacted;
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    out += fragment;
}

// If a JSON string starts at `text[i]` (a '"'), the index one past its closing quote, else npos.
std::size_t json_string_end(std::string_view text, std::size_t i) noexcept {
    for (std::size_t j = i + 1; j < text.size(); ++j) {
        if (text[j] == '\\') {
            ++j;
        } else if (text[j] == '"') {
            return j + 1;
        }
    }
    return std::string_view::npos;
}

std::size_t skip_spaces(std::string_view text, std::size_t i) noexcept {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n')) ++i;
    return i;
}

}  // namespace

std::string redact_url(std::string_view url) {
    std::string out;
    out.reserve(url.size());
    const std::size_t scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) {
        redact_after_scheme(url, out);
        return out;
    }
    out += url.substr(0, scheme_end + 3);
    redact_after_scheme(url.substr(scheme_end + 3), out);
    return out;
}

std::string redact_text(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 16);
    std::size_t i = 0;
    while (i < text.size()) {
        if (text.compare(i, 3, "://") == 0) {
            std::size_t end = i + 3;
            while (end < text.size() && !ends_url(text[end])) ++end;
            out += "://";
            redact_after_scheme(text.substr(i + 3, end - i - 3), out);
            i = end;
            continue;
        }
        if (text[i] == '"') {
            const std::size_t key_end = json_string_end(text, i);
            if (key_end == std::string_view::npos) {
                out += text.substr(i);
                break;
            }
            const std::size_t colon = skip_spaces(text, key_end);
            const std::string_view name = text.substr(i + 1, key_end - i - 2);
            if (colon < text.size() && text[colon] == ':' && is_secret_name(name)) {
                const std::size_t value = skip_spaces(text, colon + 1);
                if (value < text.size() && text[value] == '"') {
                    const std::size_t value_end = json_string_end(text, value);
                    out += text.substr(i, value - i);
                    out += '"';
                    out += redacted;
                    out += '"';
                    if (value_end == std::string_view::npos) break;  // cut-off line: hide the rest
                    i = value_end;
                    continue;
                }
            }
            // An ordinary string: copied whole (so quotes stay paired), URLs inside redacted.
            out += '"';
            out += redact_text(text.substr(i + 1, key_end - i - 2));
            out += '"';
            i = key_end;
            continue;
        }
        out += text[i++];
    }
    return out;
}

std::string redact_headers(const std::map<std::string, std::string>& headers) {
    std::string out = "{";
    for (const auto& [name, value] : headers) {
        if (out.size() > 1) out += ", ";
        out += name;
        out += ": ";
        out += redacted;
    }
    out += '}';
    return out;
}

}  // namespace iii::detail
