#include "util/redact.hpp"

#include "util/curl_handles.hpp"

#include <algorithm>
#include <curl/curl.h>
#include <fmt/format.h>

namespace crashmail {
namespace {

bool unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

// Percent-encoded `text`: every byte but the unreserved ones as %XX (`upper` or lower hex),
// a space as '+' when `plus`.
std::string percent_encoded(std::string_view text, bool upper, bool plus) {
    std::string out;
    for (char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (unreserved(byte)) {
            out += c;
        } else if (plus && c == ' ') {
            out += '+';
        } else {
            out += upper ? fmt::format("%{:02X}", byte) : fmt::format("%{:02x}", byte);
        }
    }
    return out;
}

// `text` as it appears inside a JSON string: '"' and '\' escaped, '/' also as "\/".
std::string json_escaped(std::string_view text, bool slash) {
    std::string out;
    for (char c : text) {
        if (c == '"' || c == '\\' || (slash && c == '/')) {
            out += '\\';
        }
        out += c;
    }
    return out;
}

std::string decoded(std::string_view text) {
    int length = 0;
    char* raw = curl_easy_unescape(nullptr, text.data(), static_cast<int>(text.size()), &length);
    if (raw == nullptr) {
        return std::string(text);
    }
    std::string out(raw, static_cast<std::size_t>(length));
    curl_free(raw);
    return out;
}

// Adds `part` as it appears in the URL and percent-decoded.
void add_url_part(Secrets& secrets, std::string_view part) {
    secrets.add(part);
    secrets.add(decoded(part));
}

} // namespace

void Secrets::add_form(std::string form) {
    if (form.size() < k_min_secret_length || std::ranges::find(m_forms, form) != m_forms.end()) {
        return;
    }
    // Longest first: a secret holding another is replaced before the shorter one cuts it.
    auto at = std::ranges::find_if(
        m_forms, [&](const std::string& known) { return known.size() < form.size(); });
    m_forms.insert(at, std::move(form));
}

void Secrets::add(std::string_view secret) {
    if (secret.size() < k_min_secret_length) {
        return;
    }
    add_form(std::string(secret));
    add_form(percent_encoded(secret, true, false));
    add_form(percent_encoded(secret, false, false));
    add_form(percent_encoded(secret, true, true));
    add_form(json_escaped(secret, false));
    add_form(json_escaped(secret, true));
}

void Secrets::add_exact(std::string_view secret) {
    add_form(std::string(secret));
}

void Secrets::add_all(const Secrets& other) {
    for (const std::string& form : other.m_forms) {
        add_form(form);
    }
}

std::string Secrets::redact(std::string_view text) const {
    std::string out(text);
    for (const std::string& form : m_forms) {
        for (std::size_t at = out.find(form); at != std::string::npos;
             at = out.find(form, at + k_redacted.size())) {
            out.replace(at, form.size(), k_redacted);
        }
    }
    return out;
}

bool url_path_token(std::string_view segment) {
    if (segment.size() >= 20) {
        return true;
    }
    return segment.size() >= 8 &&
           !std::ranges::all_of(segment, [](char c) { return c >= 'a' && c <= 'z'; });
}

Secrets url_secrets(std::string_view url) {
    Secrets secrets;
    curl::Url handle(curl_url());
    const std::string text(url);
    if (!handle || curl_url_set(handle.get(), CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) {
        return secrets;
    }
    add_url_part(secrets, curl::url_part(handle.get(), CURLUPART_PASSWORD));
    add_url_part(secrets, curl::url_part(handle.get(), CURLUPART_USER));
    add_url_part(secrets, curl::url_part(handle.get(), CURLUPART_FRAGMENT));
    const std::string query = curl::url_part(handle.get(), CURLUPART_QUERY);
    add_url_part(secrets, query);
    for (std::size_t start = 0; start <= query.size();) {
        std::size_t end = query.find('&', start);
        if (end == std::string::npos) {
            end = query.size();
        }
        std::string_view pair = std::string_view(query).substr(start, end - start);
        if (auto equals = pair.find('='); equals != std::string_view::npos) {
            add_url_part(secrets, pair.substr(equals + 1));
        }
        start = end + 1;
    }
    const std::string path = curl::url_part(handle.get(), CURLUPART_PATH);
    // The first segment is shown by every channel's name (redact_url()); the rest may be
    // tokens.
    std::size_t start = path.find('/', 1);
    while (start != std::string::npos && start + 1 < path.size()) {
        std::size_t end = path.find('/', start + 1);
        std::string_view segment = std::string_view(path).substr(
            start + 1, (end == std::string::npos ? path.size() : end) - start - 1);
        if (url_path_token(decoded(segment))) {
            add_url_part(secrets, segment);
        }
        start = end;
    }
    return secrets;
}

std::string base64(std::string_view data) {
    static constexpr char k_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((data.size() + 2) / 3 * 4);
    for (std::size_t i = 0; i < data.size(); i += 3) {
        const std::size_t left = data.size() - i;
        std::uint32_t chunk = static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])) << 16;
        if (left > 1) {
            chunk |= static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8;
        }
        if (left > 2) {
            chunk |= static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 2]));
        }
        out += k_alphabet[(chunk >> 18) & 0x3F];
        out += k_alphabet[(chunk >> 12) & 0x3F];
        out += left > 1 ? k_alphabet[(chunk >> 6) & 0x3F] : '=';
        out += left > 2 ? k_alphabet[chunk & 0x3F] : '=';
    }
    return out;
}

} // namespace crashmail
