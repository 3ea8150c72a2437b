// The blue-green part of a deploy file (strategy.type: blue_green):
//
//   strategy:
//     type: blue_green
//     slots:
//       blue:  {port: 8001, unit: shop@blue.service}
//       green: {port: 8002, unit: shop@green.service}
//     upstream:                              # optional: without it the switch flips `current` only
//       file: /etc/nginx/conf.d/shop-upstream.conf
//       template: "upstream shop { server 127.0.0.1:{{port}}; }"
//       reload: "systemctl reload nginx"
//
// Every host has two release slots, `<root>/slots/blue` and `<root>/slots/green`
// (links to a release). A deploy puts the new release into the slot that is not
// live, restarts that slot's unit, checks its health (`{{port}}` and `{{slot}}`
// in health checks name the new slot), and only then switches traffic: the
// upstream file is rewritten from the template and reloaded (when set) and
// `current` is flipped. The old slot keeps running, so a rollback flips back.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace YAML {
class Node;
}
namespace tunnel::core {
class yaml_reader;
}

namespace tunnel::deploy {

struct deploy_config;
struct strategy;

struct slot_config {
    std::optional<unsigned> port;     // what {{port}} becomes for this slot
    std::optional<std::string> unit;  // the systemd unit serving this slot (kept running)
};

struct upstream_config {
    std::string file;                   // absolute path on the hosts
    std::string template_text;          // {{port}} / {{slot}} replaced by the live slot's
    std::optional<std::string> reload;  // sh command run after the file is written
};

struct blue_green_options {
    slot_config blue, green;
    std::optional<upstream_config> upstream;

    // "blue" or "green"; anything else is blue.
    [[nodiscard]] const slot_config& slot(std::string_view name) const noexcept {
        return name == "green" ? green : blue;
    }
};

// The other slot: blue <-> green.
[[nodiscard]] std::string_view other_slot(std::string_view slot) noexcept;

// `text` with {{slot}} and {{port}} (spaces allowed inside the braces)
// replaced for `slot`. Other text is left as it is.
[[nodiscard]] std::string render_slot(std::string_view text, std::string_view slot,
                                      const slot_config& s);

// Reads strategy.slots and strategy.upstream (deploy_config.cpp's read_strategy
// calls it for every strategy map: they are errors unless type is blue_green).
void read_blue_green(core::yaml_reader& r, const YAML::Node& strategy_node, strategy& s);

// Checks that need the whole file: a top-level `unit` (each slot has its own),
// health checks that would not reach the new slot, placeholders without ports.
void check_blue_green(core::yaml_reader& r, const YAML::Node& root, const deploy_config& c);

}  // namespace tunnel::deploy
