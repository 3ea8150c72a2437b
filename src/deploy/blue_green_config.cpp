#include "deploy/blue_green_config.hpp"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "core/yaml_config.hpp"
#include "deploy/deploy_config.hpp"

namespace tunnel::deploy {

namespace {

using core::line_of;

bool unit_name(std::string_view s) {
    return !s.empty() && s.front() != '-' && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
               c == '@' || c == ':';
    });
}

// The names inside {{ }} in `text`, trimmed ("" for an unclosed "{{").
std::vector<std::string> placeholders(std::string_view text) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while ((pos = text.find("{{", pos)) != std::string_view::npos) {
        auto close = text.find("}}", pos + 2);
        if (close == std::string_view::npos) {
            out.emplace_back();
            break;
        }
        std::string name(text.substr(pos + 2, close - pos - 2));
        name.erase(0, name.find_first_not_of(' '));
        name.erase(name.find_last_not_of(' ') + 1);
        out.push_back(name);
        pos = close + 2;
    }
    return out;
}

bool uses(std::string_view text, std::string_view name) {
    auto p = placeholders(text);
    return std::find(p.begin(), p.end(), name) != p.end();
}

// {{slot}} / {{port}} only; each other name is an error at `path`.
void check_placeholders(core::yaml_reader& r, std::string_view text, const std::string& path,
                        const YAML::Node& at) {
    for (const auto& name : placeholders(text))
        if (name != "slot" && name != "port")
            r.error(path, fmt::format("{} in it (only {{{{slot}}}} and {{{{port}}}} are replaced, "
                                      "by the slot's name and port){}",
                                      name.empty() ? std::string("an unclosed \"{{\"")
                                                   : "unknown placeholder {{" + name + "}}",
                                      line_of(at)));
}

void read_slot(core::yaml_reader& r, const YAML::Node& n, const std::string& path, slot_config& s) {
    if (!n || n.IsNull()) return;  // `blue: {}` or `blue:`: a slot without port or unit
    if (!r.expect_map(n, path, {"port", "unit"})) return;
    if (n["port"])
        if (auto p = r.integer(n["port"], path + ".port", 1, 65535))
            s.port = static_cast<unsigned>(*p);
    if (n["unit"]) {
        s.unit = r.string(n["unit"], path + ".unit");
        if (s.unit && !unit_name(*s.unit))
            r.error(path + ".unit",
                    "must be a systemd unit name (e.g. shop@blue.service)" + line_of(n["unit"]));
    }
}

void read_upstream(core::yaml_reader& r, const YAML::Node& n, upstream_config& u) {
    if (!r.expect_map(n, "strategy.upstream", {"file", "template", "reload"})) {
        if (!n || n.IsNull())
            r.error("strategy.upstream",
                    "must be {file: PATH, template: TEXT, reload: COMMAND}" + line_of(n));
        return;
    }
    for (auto key : {"file", "template"})
        if (!n[key]) r.error(std::string("strategy.upstream.") + key, "is required" + line_of(n));
    if (n["file"]) {
        u.file = r.string(n["file"], "strategy.upstream.file").value_or("");
        if (n["file"].IsScalar() &&
            (u.file.empty() || u.file.front() != '/' || u.file.back() == '/' ||
             u.file.find('\n') != std::string::npos || u.file.find("/../") != std::string::npos))
            r.error("strategy.upstream.file",
                    "must be an absolute file path on the hosts (e.g. "
                    "/etc/nginx/conf.d/shop-upstream.conf)" +
                        line_of(n["file"]));
    }
    if (n["template"]) {
        u.template_text = r.string(n["template"], "strategy.upstream.template").value_or("");
        if (n["template"].IsScalar()) {
            check_placeholders(r, u.template_text, "strategy.upstream.template", n["template"]);
            if (!uses(u.template_text, "port") && !uses(u.template_text, "slot"))
                r.error("strategy.upstream.template",
                        "must name the live slot with {{port}} or {{slot}} (e.g. \"upstream "
                        "shop { server 127.0.0.1:{{port}}; }\"), or the switch changes nothing" +
                            line_of(n["template"]));
        }
    }
    if (n["reload"]) u.reload = r.string(n["reload"], "strategy.upstream.reload");
}

}  // namespace

std::string_view other_slot(std::string_view slot) noexcept {
    return slot == "blue" ? "green" : "blue";
}

std::string render_slot(std::string_view text, std::string_view slot, const slot_config& s) {
    std::string out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto open = text.find("{{", pos);
        auto close = open == std::string_view::npos ? open : text.find("}}", open + 2);
        if (close == std::string_view::npos) {
            out += text.substr(pos);
            break;
        }
        std::string name(text.substr(open + 2, close - open - 2));
        name.erase(0, name.find_first_not_of(' '));
        name.erase(name.find_last_not_of(' ') + 1);
        out += text.substr(pos, open - pos);
        if (name == "slot")
            out += slot;
        else if (name == "port" && s.port)
            out += std::to_string(*s.port);
        else
            out += text.substr(open, close + 2 - open);
        pos = close + 2;
    }
    return out;
}

void read_blue_green(core::yaml_reader& r, const YAML::Node& n, strategy& s) {
    const bool bg = s.type == strategy_type::blue_green;
    for (auto key : {"slots", "upstream"})
        if (n[key] && !bg)
            r.error(std::string("strategy.") + key,
                    "applies to the blue_green strategy only" + line_of(n[key]));
    if (!bg) return;
    if (n["slots"]) {
        const auto& slots = n["slots"];
        if (r.expect_map(slots, "strategy.slots", {"blue", "green"})) {
            read_slot(r, slots["blue"], "strategy.slots.blue", s.blue_green.blue);
            read_slot(r, slots["green"], "strategy.slots.green", s.blue_green.green);
            const auto& b = s.blue_green.blue;
            const auto& g = s.blue_green.green;
            if (b.port.has_value() != g.port.has_value())
                r.error("strategy.slots",
                        "give both slots a port, or neither (each slot listens on its own)" +
                            line_of(slots));
            if (b.port && g.port && *b.port == *g.port)
                r.error("strategy.slots", fmt::format("blue and green both use port {}: each "
                                                      "slot needs its own (e.g. 8001 and 8002){}",
                                                      *b.port, line_of(slots)));
            if (b.unit.has_value() != g.unit.has_value())
                r.error("strategy.slots",
                        "give both slots a unit, or neither (the old slot's unit keeps running)" +
                            line_of(slots));
            if (b.unit && g.unit && *b.unit == *g.unit)
                r.error("strategy.slots",
                        fmt::format("blue and green both use unit {}: each slot needs its own "
                                    "(e.g. shop@blue.service and shop@green.service){}",
                                    *b.unit, line_of(slots)));
        }
    }
    if (n["upstream"]) {
        upstream_config u;
        read_upstream(r, n["upstream"], u);
        if (uses(u.template_text, "port") && !s.blue_green.blue.port)
            r.error("strategy.upstream.template",
                    "uses {{port}} but the slots have no port (set strategy.slots.blue.port and "
                    "strategy.slots.green.port)" +
                        line_of(n["upstream"]));
        s.blue_green.upstream = std::move(u);
    }
}

void check_blue_green(core::yaml_reader& r, const YAML::Node& root, const deploy_config& c) {
    if (c.strategy.type != strategy_type::blue_green) return;
    if (c.unit)
        r.error("unit",
                "with strategy blue_green each slot has its own unit, which keeps running so a "
                "rollback is instant: set strategy.slots.blue.unit and strategy.slots.green.unit "
                "instead" +
                    line_of(root["unit"]));
    const bool ports = c.strategy.blue_green.blue.port.has_value();
    for (std::size_t i = 0; i < c.health.size(); ++i) {
        const auto& h = c.health[i];
        const auto path = fmt::format("health[{}].{}", i, h.http ? "http" : "command");
        const auto& text = h.http ? *h.http : h.command.value_or("");
        const auto& at = root["health"][i];
        check_placeholders(r, text, path, at);
        if (uses(text, "port") && !ports)
            r.error(path,
                    "uses {{port}} but the slots have no port (set "
                    "strategy.slots.blue.port and strategy.slots.green.port)" +
                        line_of(at));
        if (h.http && ports && !uses(text, "port"))
            r.error(path,
                    "must reach the new slot, which is checked before traffic is switched to it: "
                    "use {{port}} (e.g. http://127.0.0.1:{{port}}/up)" +
                        line_of(at));
    }
}

}  // namespace tunnel::deploy
