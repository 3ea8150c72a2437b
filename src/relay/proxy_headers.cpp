#include "relay/proxy_headers.hpp"

#include <strings.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <vector>

#include <fmt/format.h>

namespace tunnel::relay {

namespace {

// ASCII case folding (field names are tokens): what std::tolower does in
// the C locale, without its call per character.
constexpr char fold(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                              [](char x, char y) { return fold(x) == fold(y); });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

std::size_t count_fields(const http_head& head, std::string_view name) {
    return static_cast<std::size_t>(
        std::count_if(head.fields.begin(), head.fields.end(),
                      [&](const auto& f) { return iequal(f.name, name); }));
}

// The comma-separated options of every Connection field.
std::vector<std::string_view> connection_options(const http_head& head) {
    std::vector<std::string_view> out;
    for (const auto& f : head.fields) {
        if (!iequal(f.name, "Connection")) continue;
        std::string_view rest = f.value;
        while (!rest.empty()) {
            const auto comma = rest.find(',');
            const auto item = trim(rest.substr(0, comma));
            if (!item.empty()) out.push_back(item);
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
        }
    }
    return out;
}

// Fields the relay sets itself: the caller's copies never reach the origin.
bool is_forwarding_field(std::string_view name) {
    static constexpr std::string_view prefix = "X-Forwarded-";
    return iequal(name, "Forwarded") || iequal(name, "X-Real-IP") ||
           (name.size() >= prefix.size() && iequal(name.substr(0, prefix.size()), prefix));
}

// RFC 9110 §5.6.2 tchar.
bool is_token(std::string_view s) {
    if (s.empty()) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return std::isalnum(u) ||
               std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
}

std::string http_quoted_string(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    out += '"';
    return out;
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
}

}  // namespace

std::optional<std::string> framing_problem(const http_head& request) {
    const std::size_t te = count_fields(request, "Transfer-Encoding");
    const std::size_t cl = count_fields(request, "Content-Length");
    if (te > 1) return "more than one Transfer-Encoding field: send one, \"chunked\"";
    if (te == 1) {
        const auto value = trim(*request.find("Transfer-Encoding"));
        if (!iequal(value, "chunked"))
            return fmt::format(
                "Transfer-Encoding {:?} is not accepted: the relay takes only \"chunked\"",
                std::string(value.substr(0, 64)));
        if (request.version != 11) return "Transfer-Encoding in an HTTP/1.0 request";
        if (cl > 0)
            return "both Transfer-Encoding and Content-Length: send one of them (RFC 9112 §6.1)";
    }
    if (cl > 1) return "more than one Content-Length field";
    if (cl == 1) {
        const auto value = trim(*request.find("Content-Length"));
        if (value.empty() ||
            !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return "Content-Length must be one decimal number";
    }
    const std::size_t hosts = count_fields(request, "Host");
    if (hosts > 1) return "more than one Host field";
    if (hosts == 0 && request.version == 11) return "an HTTP/1.1 request without a Host field";
    return std::nullopt;
}

namespace {

// The hop-by-hop test of one head, with its Connection options read once
// (a head may name thousands).
class hop_filter {
  public:
    explicit hop_filter(const http_head& head) {
        for (auto option : connection_options(head)) named_.emplace_back(option);
    }

    [[nodiscard]] bool drops(std::string_view name) const {
        static constexpr std::array<std::string_view, 7> always = {
            "Connection", "Keep-Alive",          "Proxy-Connection",  "TE",
            "Upgrade",    "Proxy-Authorization", "Proxy-Authenticate"};
        for (auto a : always)
            if (iequal(name, a)) return true;
        // Framing and routing stay whatever Connection names: dropping them
        // would change where the message ends, or where it goes.
        if (iequal(name, "Content-Length") || iequal(name, "Transfer-Encoding") ||
            iequal(name, "Host"))
            return false;
        // Connection names one or two options ("close", "keep-alive"): a
        // scan, with no lower-case copy of every field name.
        return std::any_of(named_.begin(), named_.end(),
                           [&](const std::string& n) { return iequal(name, n); });
    }

  private:
    std::vector<std::string> named_;
};

}  // namespace

bool is_hop_by_hop(const http_head& head, std::string_view name) {
    return hop_filter(head).drops(name);
}

std::string forwarded_node(std::string_view ip) {
    if (ip.find(':') != std::string_view::npos) return http_quoted_string(fmt::format("[{}]", ip));
    return std::string(ip);
}

std::string forwarded_value(const forwarding& from, const std::string* host) {
    std::string out = fmt::format("for={};proto={}", forwarded_node(from.client_ip),
                                  from.https ? "https" : "http");
    if (host) {
        out += ";host=";
        out += is_token(*host) ? *host : http_quoted_string(*host);
    }
    return out;
}

std::string request_for_origin(const http_head& request, std::string_view target,
                               const forwarding& from) {
    const bool upgrade = request.upgrade;
    const hop_filter hop(request);
    std::string out;
    out.reserve(512);
    out += request.method;
    out += ' ';
    out += target;
    out += request.version == 10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n";
    for (const auto& f : request.fields) {
        if (is_forwarding_field(f.name)) continue;
        if (upgrade && iequal(f.name, "Upgrade")) {
            append_field(out, f.name, f.value);
            continue;
        }
        if (hop.drops(f.name)) continue;
        // framing_problem let only "chunked" through, in any case and spacing.
        append_field(out, f.name, iequal(f.name, "Transfer-Encoding") ? "chunked" : f.value);
    }
    // The connection to the origin is the relay's, not the caller's: it is
    // always asked to stay open (the tunnel's keep-alive pool reuses it),
    // whatever the caller said about its own.
    if (upgrade)
        append_field(out, "Connection", "upgrade");
    else if (request.version == 10)
        append_field(out, "Connection", "keep-alive");
    const std::string* host = request.find("Host");
    append_field(out, "Forwarded", forwarded_value(from, host));
    append_field(out, "X-Forwarded-For", from.client_ip);
    append_field(out, "X-Forwarded-Proto", from.https ? "https" : "http");
    if (host) append_field(out, "X-Forwarded-Host", *host);
    append_field(out, "X-Real-IP", from.client_ip);
    out += "\r\n";
    return out;
}

std::string response_for_caller(const http_head& response, std::string_view connection,
                                bool switching) {
    const hop_filter hop(response);
    std::string out;
    out.reserve(512);
    out += fmt::format("HTTP/1.1 {} {}\r\n", response.status, response.reason);
    for (const auto& f : response.fields) {
        if (!switching && hop.drops(f.name)) continue;
        append_field(out, f.name, f.value);
    }
    if (!switching && !connection.empty()) append_field(out, "Connection", connection);
    out += "\r\n";
    return out;
}

std::string drop_field(std::string_view head, std::string_view field) {
    std::string out;
    out.reserve(head.size());
    bool first = true;  // the start line
    bool dropping = false;
    std::size_t at = 0;
    while (at < head.size()) {
        const auto eol = head.find("\r\n", at);
        const auto end = eol == std::string_view::npos ? head.size() : eol + 2;
        const auto line = head.substr(at, end - at);
        at = end;
        if (first) {
            first = false;
            out += line;
            continue;
        }
        const bool continuation = !line.empty() && (line[0] == ' ' || line[0] == '\t');
        if (!continuation)
            dropping = line.size() > field.size() && line[field.size()] == ':' &&
                       ::strncasecmp(line.data(), field.data(), field.size()) == 0;
        if (!dropping) out += line;
    }
    return out;
}

}  // namespace tunnel::relay
