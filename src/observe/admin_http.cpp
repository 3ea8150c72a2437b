#include "observe/admin_http.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/encoding.hpp"
#include "core/http_reason.hpp"

namespace tunnel::observe {

namespace {

bool valid_port(std::string_view port) {
    if (port.empty() || port.size() > 5) return false;
    unsigned value = 0;
    for (char c : port) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    return value <= 65535;
}

bool is_ip_literal(std::string_view text, int family) {
    if (text.empty() || text.size() > 64) return false;
    unsigned char out[16];
    return ::inet_pton(family, std::string(text).c_str(), out) == 1;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

bool read_only_method(std::string_view m) {
    return m == "GET" || m == "HEAD";
}

}  // namespace

admin_response admin_response::text(std::string body, int status) {
    return {status, "text/plain; charset=utf-8", std::move(body), {}};
}

admin_response admin_response::json(std::string json_text, int status) {
    return {status, "application/json", std::move(json_text), {}};
}

admin_response admin_response::error(int status, std::string_view code, std::string_view message) {
    nlohmann::json j{{"error", std::string(code)}, {"message", std::string(message)}};
    return json(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", status);
}

admin_response admin_response::metrics(std::string text) {
    return {200, "text/plain; version=0.0.4; charset=utf-8", std::move(text), {}};
}

admin_response admin_response::event_stream(std::shared_ptr<event_subscriber> events) {
    admin_response r{200, "text/event-stream; charset=utf-8", {}, {}};
    r.events = std::move(events);
    return r;
}

bool host_allowed(std::string_view host, const std::vector<std::string>& names) {
    if (host.empty() || host.size() > 255) return false;
    if (host.front() == '[') {
        const auto close = host.find(']');
        if (close == std::string_view::npos) return false;
        const auto rest = host.substr(close + 1);
        if (!rest.empty() && (rest.front() != ':' || !valid_port(rest.substr(1)))) return false;
        return is_ip_literal(host.substr(1, close - 1), AF_INET6);
    }
    std::string_view name = host;
    if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
        if (!valid_port(host.substr(colon + 1))) return false;
        name = host.substr(0, colon);
    }
    if (name.find(':') != std::string_view::npos) return false;  // IPv6 needs brackets
    if (is_ip_literal(name, AF_INET)) return true;
    const auto n = lower(name);
    if (n == "localhost") return true;
    return std::find(names.begin(), names.end(), n) != names.end();
}

admin_router::admin_router(std::vector<admin_endpoint> table, admin_access access,
                           std::string title)
    : table_(std::move(table)), access_(std::move(access)), title_(std::move(title)) {
    for (auto& name : access_.allowed_hosts) name = lower(name);
}

bool admin_router::authorized(const admin_credentials& c, bool basic_allowed) const {
    if (access_.bearer_token.empty()) return true;
    if (!c.authorization) return false;
    std::string_view value = *c.authorization;
    if (basic_allowed && value.size() > 6 && iequals(value.substr(0, 6), "Basic ")) {
        value.remove_prefix(6);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
        if (value.size() > 1024) return false;
        auto decoded = core::base64_decode(value);
        if (!decoded) return false;
        const std::string_view pair = *decoded;
        const auto colon = pair.find(':');
        if (colon == std::string_view::npos) return false;
        const auto password = pair.substr(colon + 1);
        return !password.empty() && core::secret_equal(password, access_.bearer_token);
    }
    if (value.size() < 7 || !iequals(value.substr(0, 7), "Bearer ")) return false;
    value.remove_prefix(7);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
    return !value.empty() && core::secret_equal(value, access_.bearer_token);
}

std::string admin_router::index() const {
    std::size_t width = 5;  // "/help"
    for (const auto& e : table_) width = std::max(width, e.path.size());
    std::string out = title_ + ":\n";
    out += fmt::format("  {:<{}}  {}\n", "/help", width, "this list");
    for (const auto& e : table_) {
        std::string notes;
        if (e.mutates) notes += " (POST)";
        if (e.open && needs_token()) notes += " (no token needed)";
        out += fmt::format("  {:<{}}  {}{}\n", e.path, width, e.help, notes);
    }
    if (needs_token())
        out += "Send 'Authorization: Bearer <token>' (" + access_.token_hint + ").\n";
    return out;
}

admin_response admin_router::route(const admin_request& request, const admin_credentials& c,
                                   bool* mutated) const {
    if (mutated) *mutated = false;
    if (!c.host) {
        if (!c.http10)
            return admin_response::error(400, "bad_request",
                                         "an HTTP/1.1 request needs a Host header");
    } else if (!host_allowed(*c.host, access_.allowed_hosts)) {
        return admin_response::error(
            421, "misdirected_request",
            "this admin listener answers only requests addressed to an IP address, localhost or "
            "a configured name (admin.allowed_hosts)");
    }
    const bool is_index = request.path == "/" || request.path == "/help";
    const admin_endpoint* endpoint = nullptr;
    for (const auto& e : table_)
        if (e.path == request.path) endpoint = &e;
    const bool browser = endpoint && endpoint->browser && read_only_method(request.method);
    if (browser && c.fetch_site && (*c.fetch_site == "cross-site" || *c.fetch_site == "same-site"))
        return admin_response::error(
            403, "cross_site",
            "the dashboard answers only requests from its own pages (Sec-Fetch-Site: " +
                std::string(*c.fetch_site == "cross-site" ? "cross-site" : "same-site") + ")");
    if (!(endpoint && endpoint->open) && !authorized(c, browser)) {
        auto r = admin_response::error(
            401, "unauthorized",
            fmt::format("send 'Authorization: Bearer <token>' with {}", access_.token_hint));
        // A browser shows its login prompt for Basic: the token is the password.
        r.headers.emplace_back("WWW-Authenticate",
                               browser ? "Basic realm=\"tunnel relay dashboard\", charset=\"UTF-8\""
                                       : "Bearer realm=\"tunnel admin\"");
        return r;
    }
    if (is_index && !endpoint) {
        if (!read_only_method(request.method)) {
            auto r = admin_response::error(405, "method_not_allowed", "use GET");
            r.headers.emplace_back("Allow", "GET, HEAD");
            return r;
        }
        return admin_response::text(index());
    }
    if (!endpoint) return admin_response::error(404, "not_found", "no such endpoint; see /help");
    if (endpoint->mutates && request.method != "POST") {
        auto r = admin_response::error(405, "method_not_allowed",
                                       fmt::format("{} changes state: use POST", endpoint->path));
        r.headers.emplace_back("Allow", "POST");
        return r;
    }
    if (!endpoint->mutates && !read_only_method(request.method)) {
        auto r = admin_response::error(405, "method_not_allowed", "use GET");
        r.headers.emplace_back("Allow", "GET, HEAD");
        return r;
    }
    auto r = endpoint->handler(request);
    if (endpoint->mutates && mutated) *mutated = true;
    return r;
}

std::string serialize(const admin_response& r, bool head_only) {
    std::string out = fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        r.status, core::http_reason(r.status), r.content_type, r.body.size());
    for (const auto& [name, value] : r.headers) out += fmt::format("{}: {}\r\n", name, value);
    out += "\r\n";
    if (!head_only) out += r.body;
    return out;
}

std::string serialize_stream_head(const admin_response& r) {
    std::string out = fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nCache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        r.status, core::http_reason(r.status), r.content_type);
    for (const auto& [name, value] : r.headers) out += fmt::format("{}: {}\r\n", name, value);
    out += "\r\n";
    return out;
}

}  // namespace tunnel::observe
