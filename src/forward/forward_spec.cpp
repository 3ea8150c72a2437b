#include "forward/forward_spec.hpp"

#include <charconv>
#include <vector>

#include <fmt/format.h>

namespace tunnel::forward {

namespace {

// Splits on ':' outside of [brackets]; brackets are removed from the part.
core::result<std::vector<std::string>> split_fields(std::string_view text, std::string_view whole) {
    std::vector<std::string> fields;
    std::string cur;
    bool in_bracket = false;
    bool bracketed = false;
    for (char c : text) {
        if (c == '[' && !in_bracket && cur.empty()) {
            in_bracket = true;
            bracketed = true;
        } else if (c == ']' && in_bracket) {
            in_bracket = false;
        } else if (c == ':' && !in_bracket) {
            fields.push_back(std::move(cur));
            cur.clear();
            bracketed = false;
        } else {
            if (bracketed && !in_bracket)
                return core::fail(core::errc::invalid_argument,
                                  fmt::format("\"{}\": unexpected text after ']'", whole));
            cur.push_back(c);
        }
    }
    if (in_bracket)
        return core::fail(core::errc::invalid_argument, fmt::format("\"{}\": missing ']'", whole));
    fields.push_back(std::move(cur));
    return fields;
}

bool is_path(std::string_view field) {
    return field.find('/') != std::string_view::npos;
}

core::result<uint16_t> parse_port(std::string_view field, std::string_view whole, bool allow_zero) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
    if (field.empty() || ec != std::errc{} || end != field.data() + field.size() || value > 65535 ||
        (value == 0 && !allow_zero))
        return core::fail(core::errc::invalid_argument,
                          fmt::format("\"{}\": bad port \"{}\": use a number from {} to 65535",
                                      whole, field, allow_zero ? 0 : 1));
    return static_cast<uint16_t>(value);
}

std::string_view usage(forward_kind kind) {
    switch (kind) {
        case forward_kind::local:
            return "expected -L [bind_address:]port:host:hostport (or a Unix socket path on either "
                   "side)";
        case forward_kind::remote:
            return "expected -R [bind_address:]port:host:hostport (or port:/local/socket)";
        case forward_kind::dynamic:
            return "expected -D [bind_address:]port";
    }
    return "";
}

core::error bad(forward_kind kind, std::string_view text, std::string_view why) {
    return {core::errc::invalid_argument,
            fmt::format("{} \"{}\": {}; {}", flag_of(kind), text, why, usage(kind))};
}

}  // namespace

std::string endpoint::to_string() const {
    if (is_unix()) return path;
    const std::string h = host.empty() ? "localhost" : host;
    if (h.find(':') != std::string::npos) return fmt::format("[{}]:{}", h, port);
    return fmt::format("{}:{}", h, port);
}

std::string_view flag_of(forward_kind kind) noexcept {
    switch (kind) {
        case forward_kind::local:
            return "-L";
        case forward_kind::remote:
            return "-R";
        case forward_kind::dynamic:
            return "-D";
    }
    return "-?";
}

std::string forward_spec::describe() const {
    if (kind == forward_kind::dynamic) return fmt::format("-D {} (SOCKS)", listen.to_string());
    return fmt::format("{} {} -> {}", flag_of(kind), listen.to_string(), target.to_string());
}

core::result<forward_spec> parse_forward_spec(forward_kind kind, std::string_view text) {
    forward_spec spec;
    spec.kind = kind;
    spec.text = fmt::format("{} {}", flag_of(kind), text);
    if (text.empty()) return tl::unexpected(bad(kind, text, "empty"));
    if (text.find_first_of(" \t\r\n") != std::string_view::npos)
        return tl::unexpected(bad(kind, text, "contains white space"));
    auto fields = split_fields(text, text);
    if (!fields) return tl::unexpected(bad(kind, text, fields.error().message));
    auto& f = *fields;

    if (kind == forward_kind::dynamic) {
        if (f.size() == 1) {
            auto p = parse_port(f[0], text, false);
            if (!p) return tl::unexpected(bad(kind, text, fmt::format("bad port \"{}\"", f[0])));
            spec.listen.port = *p;
        } else if (f.size() == 2) {
            if (is_path(f[0]) || is_path(f[1]))
                return tl::unexpected(bad(kind, text, "Unix sockets are not supported for -D"));
            auto p = parse_port(f[1], text, false);
            if (!p) return tl::unexpected(bad(kind, text, fmt::format("bad port \"{}\"", f[1])));
            spec.listen.host = f[0];
            spec.listen.port = *p;
        } else {
            return tl::unexpected(bad(kind, text, "too many fields"));
        }
        return spec;
    }

    // -L / -R: listen part then target part. Forms (a = address, p = port, s = path):
    //   p:a:p   a:p:a:p   p:s   a:p:s   s:a:p   s:s
    std::size_t i = 0;
    if (is_path(f[0])) {
        spec.listen.path = f[0];
        i = 1;
    } else {
        // Count the target fields first: a path target is one field, else two.
        const bool target_is_path = !f.empty() && is_path(f.back());
        const std::size_t target_fields = target_is_path ? 1 : 2;
        if (f.size() < 1 + target_fields) return tl::unexpected(bad(kind, text, "too few fields"));
        const std::size_t listen_fields = f.size() - target_fields;
        if (listen_fields > 2) return tl::unexpected(bad(kind, text, "too many fields"));
        if (listen_fields == 2) {
            spec.listen.host = f[0];
            if (spec.listen.host.empty())
                return tl::unexpected(
                    bad(kind, text, "empty bind address (use * for every interface)"));
        }
        auto p = parse_port(f[listen_fields - 1], text, kind == forward_kind::remote);
        if (!p) {
            const char* why = kind == forward_kind::remote
                                  ? "bad listen port \"{}\": use 0 to 65535"
                                  : "bad listen port \"{}\": use 1 to 65535";
            return tl::unexpected(
                bad(kind, text, fmt::format(fmt::runtime(why), f[listen_fields - 1])));
        }
        spec.listen.port = *p;
        i = listen_fields;
    }
    const std::size_t rest = f.size() - i;
    if (rest == 1 && is_path(f[i])) {
        spec.target.path = f[i];
    } else if (rest == 2) {
        if (f[i].empty()) return tl::unexpected(bad(kind, text, "empty target host"));
        if (is_path(f[i]) || is_path(f[i + 1]))
            return tl::unexpected(bad(kind, text, "a path where a host or port belongs"));
        auto p = parse_port(f[i + 1], text, false);
        if (!p)
            return tl::unexpected(
                bad(kind, text, fmt::format("bad target port \"{}\": use 1 to 65535", f[i + 1])));
        spec.target.host = f[i];
        spec.target.port = *p;
    } else {
        return tl::unexpected(bad(kind, text, rest < 1 ? "missing target" : "too many fields"));
    }
    if (kind == forward_kind::remote && spec.listen.is_unix())
        return tl::unexpected(bad(
            kind, text,
            "remote Unix-socket listeners (streamlocal-forward) are not supported by libssh 0.10; "
            "listen on a port instead"));
    return spec;
}

core::result<void> check_privileged_port(const forward_spec& spec, uid_t uid) {
    if (spec.kind == forward_kind::remote || spec.listen.is_unix()) return {};
    if (spec.listen.port != 0 && spec.listen.port < 1024 && uid != 0)
        return core::fail(
            core::errc::permission_denied,
            fmt::format("{}: privileged port {} can only be forwarded by root; use a port >= 1024",
                        spec.text, spec.listen.port));
    return {};
}

}  // namespace tunnel::forward
