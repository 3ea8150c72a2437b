#include "link/control_request.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/log_text.hpp"
#include "link/link_config.hpp"

namespace tunnel::link {

namespace {

constexpr int max_depth = 8;

// Deepest nesting of [ and { outside strings: nlohmann recurses on nested
// values, so a line of 16 KiB of '[' is refused before it is parsed.
int nesting(std::string_view s) {
    int depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (char c : s) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"')
            in_string = true;
        else if (c == '[' || c == '{')
            deepest = std::max(deepest, ++depth);
        else if (c == ']' || c == '}')
            --depth;
    }
    return deepest;
}

core::result<control_request> bad(std::string message) {
    return core::fail(core::errc::invalid_argument, std::move(message));
}

// exec: a command, and the link by name or the destination it must reach;
// sftp: the same without a command.
core::result<control_request> check_exec(control_request r) {
    if (r.from_args) {
        if (r.cmd != "exec") return bad("only exec takes \"args\"");
        if (!r.link.empty() || !r.destination.empty() || !r.command.empty() || !r.transport.empty())
            return bad("exec with \"args\" takes no link, destination, command or transport");
        if (r.args.empty()) return bad("\"args\" is empty: send the words after `tunnel exec`");
        if (r.cwd.empty() || r.cwd.front() != '/')
            return bad("exec with \"args\" needs \"cwd\", an absolute path");
        return r;
    }
    if (r.cmd == "sftp" && !r.command.empty()) return bad("sftp takes no \"command\"");
    if (r.cmd == "exec" && r.command.empty())
        return bad("exec needs \"command\" (the remote command string)");
    if (r.command.find('\0') != std::string::npos) return bad("\"command\" contains a NUL byte");
    if (r.link.empty() && r.destination.empty())
        return bad(fmt::format(
            "{} needs \"link\" (a link's name) or \"destination\" (user@host:port)", r.cmd));
    if (!r.link.empty() && !valid_link_name(r.link))
        return bad("\"link\" is not a link name (1-64 letters, digits, '.', '_', '-')");
    if (!r.destination.empty() &&
        (r.destination.size() > 320 || r.destination.find('@') == std::string::npos ||
         std::any_of(r.destination.begin(), r.destination.end(),
                     [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == 0x7f; })))
        return bad("\"destination\" must be user@host:port (at most 320 bytes, no spaces)");
    if (!r.transport.empty()) return bad(fmt::format("{} takes no \"transport\"", r.cmd));
    return r;
}

}  // namespace

core::result<control_request> parse_control_request(std::string_view line) {
    if (line.size() > max_request_bytes)
        return bad(fmt::format("request longer than {} bytes", max_request_bytes));
    if (nesting(line) > max_depth)
        return bad(fmt::format("request nested deeper than {} levels", max_depth));
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded())
        return bad("not a JSON object: send one object per line, like {\"cmd\":\"ls\"}");
    if (!j.is_object()) return bad("the request must be a JSON object, like {\"cmd\":\"ls\"}");
    control_request r;
    if (auto id = j.find("id"); id != j.end()) {
        if (!id->is_string() && !id->is_number_integer())
            return bad("\"id\" must be a string or an integer");
        if (id->is_string() && id->get_ref<const std::string&>().size() > 128)
            return bad("\"id\" longer than 128 bytes");
        r.id = *id;
    }
    for (const auto& [k, v] : j.items()) {
        if (k == "args" || k == "env") continue;  // read below
        if (k != "cmd" && k != "link" && k != "transport" && k != "id" && k != "destination" &&
            k != "command" && k != "cwd")
            return bad(fmt::format(
                "unknown key \"{}\" (allowed: cmd, link, transport, destination, command, args, "
                "cwd, env, id)",
                core::log_text(k, 40)));
        if (k != "id" && !v.is_string()) return bad(fmt::format("\"{}\" must be a string", k));
    }
    if (auto a = j.find("args"); a != j.end()) {
        if (!a->is_array()) return bad("\"args\" must be an array of strings");
        for (const auto& w : *a) {
            if (!w.is_string()) return bad("\"args\" must be an array of strings");
            if (w.get_ref<const std::string&>().find('\0') != std::string::npos)
                return bad("\"args\" contains a NUL byte");
            r.args.push_back(w.get<std::string>());
        }
        r.from_args = true;
    }
    if (auto e = j.find("env"); e != j.end()) {
        if (!e->is_object()) return bad("\"env\" must be an object of strings");
        for (const auto& [name, value] : e->items()) {
            if (!value.is_string() || name.empty() || name.find('=') != std::string::npos ||
                name.find('\0') != std::string::npos ||
                value.get_ref<const std::string&>().find('\0') != std::string::npos)
                return bad("\"env\" must map names (no '=' or NUL) to strings");
            r.env.emplace(name, value.get<std::string>());
        }
    }
    if (auto c = j.find("cwd"); c != j.end()) r.cwd = c->get<std::string>();
    if (!r.from_args && (!r.cwd.empty() || j.contains("env")))
        return bad("\"cwd\" and \"env\" go with \"args\" only");
    auto cmd = j.find("cmd");
    if (cmd == j.end())
        return bad("missing \"cmd\" (ls, status, restart, switch, events, down, exec, sftp)");
    r.cmd = cmd->get<std::string>();
    const bool needs_link = r.cmd == "status" || r.cmd == "restart" || r.cmd == "switch";
    const bool pooled = r.cmd == "exec" || r.cmd == "sftp";
    if (r.cmd != "ls" && r.cmd != "events" && r.cmd != "down" && !pooled && !needs_link)
        return bad(fmt::format(
            "unknown cmd \"{}\" (ls, status, restart, switch, events, down, exec, sftp)",
            core::log_text(r.cmd, 40)));
    if (auto l = j.find("link"); l != j.end()) r.link = l->get<std::string>();
    if (auto t = j.find("transport"); t != j.end()) r.transport = t->get<std::string>();
    if (auto d = j.find("destination"); d != j.end()) r.destination = d->get<std::string>();
    if (auto c = j.find("command"); c != j.end()) r.command = c->get<std::string>();
    if (pooled) return check_exec(std::move(r));
    if (!r.destination.empty() || !r.command.empty() || r.from_args)
        return bad(fmt::format("{} takes no \"destination\", \"command\" or \"args\"", r.cmd));
    if (needs_link && r.link.empty()) return bad(fmt::format("{} needs \"link\"", r.cmd));
    if (!needs_link && !r.link.empty()) return bad(fmt::format("{} takes no \"link\"", r.cmd));
    if (!r.link.empty() && !valid_link_name(r.link))
        return bad("\"link\" is not a link name (1-64 letters, digits, '.', '_', '-')");
    if (r.cmd == "switch") {
        if (r.transport.empty()) return bad("switch needs \"transport\" (a name or an index)");
        if (!valid_link_name(r.transport))
            return bad("\"transport\" is not a transport name or index");
    } else if (!r.transport.empty()) {
        return bad(fmt::format("{} takes no \"transport\"", r.cmd));
    }
    return r;
}

nlohmann::json to_json(const control_request& r) {
    nlohmann::json j{{"cmd", r.cmd}};
    if (!r.link.empty()) j["link"] = r.link;
    if (!r.transport.empty()) j["transport"] = r.transport;
    if (!r.destination.empty()) j["destination"] = r.destination;
    if (!r.command.empty()) j["command"] = r.command;
    if (!r.id.is_null()) j["id"] = r.id;
    return j;
}

std::string error_line(std::string_view message, const nlohmann::json& id) {
    nlohmann::json j{{"ok", false}, {"error", std::string(message)}};
    if (!id.is_null()) j["id"] = id;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace tunnel::link
