// The .deb's systemd units (packaging/systemd/) keep every hardening line
// `tunnel up --install-unit` writes for a system unit (link/unit_file.cpp),
// and add what a packaged service needs: a dynamic user, a strict read-only
// system and a narrow capability bounding set.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "link/unit_file.hpp"

namespace tunnel::link {
namespace {

namespace fs = std::filesystem;

const fs::path units_dir = fs::path(TUNNEL_SOURCE_DIR) / "packaging" / "systemd";

std::vector<std::string> service_lines(const std::string& unit) {
    std::vector<std::string> lines;
    std::istringstream in(unit);
    bool service = false;
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.front() == '[') service = line == "[Service]";
        if (service && !line.empty() && line.front() != '#' && line.front() != '[')
            lines.push_back(line);
    }
    return lines;
}

std::string read(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// The keys that say what runs rather than how it is confined.
const std::set<std::string> per_unit = {"Type",
                                        "ExecStart",
                                        "ExecStartPre",
                                        "Restart",
                                        "RestartSec",
                                        "RestartPreventExitStatus",
                                        "User",
                                        "RuntimeDirectory",
                                        "RuntimeDirectoryMode",
                                        "CapabilityBoundingSet",
                                        "AmbientCapabilities",
                                        "ProtectHome"};

std::string key_of(const std::string& line) {
    return line.substr(0, line.find('='));
}

TEST(PackagedUnits, CarryTheInstallUnitHardeningAndMore) {
    unit_request r;
    r.scope = unit_scope::system;
    r.tunnel_binary = "/usr/bin/tunnel";
    r.links_file = "/etc/tunnel/office.yaml";
    const auto reference = service_lines(render_unit(r));
    ASSERT_GE(reference.size(), 20u);
    for (const char* name : {"tunnel-relay.service", "tunnel-up@.service"}) {
        SCOPED_TRACE(name);
        const auto text = read(units_dir / name);
        ASSERT_FALSE(text.empty()) << (units_dir / name);
        const auto lines = service_lines(text);
        auto has = [&](const std::string& line) {
            return std::find(lines.begin(), lines.end(), line) != lines.end();
        };
        for (const auto& line : reference) {
            if (!per_unit.count(key_of(line))) {
                EXPECT_TRUE(has(line)) << "missing: " << line;
            }
        }
        for (const char* line : {"DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                                 "SupplementaryGroups=tunnel", "ConfigurationDirectory=tunnel"})
            EXPECT_TRUE(has(line)) << "missing: " << line;
        // At most the one capability binding a port below 1024 needs.
        int bounding = 0;
        for (const auto& line : lines)
            if (key_of(line) == "CapabilityBoundingSet" || key_of(line) == "AmbientCapabilities") {
                ++bounding;
                const auto value = line.substr(line.find('=') + 1);
                EXPECT_TRUE(value.empty() || value == "CAP_NET_BIND_SERVICE") << line;
            }
        EXPECT_EQ(bounding, 2);
        // The binary the .deb installs.
        EXPECT_NE(text.find("ExecStart=/usr/bin/tunnel "), std::string::npos);
    }
    // tunnel up needs no capability at all.
    const auto up = service_lines(read(units_dir / "tunnel-up@.service"));
    EXPECT_NE(std::find(up.begin(), up.end(), "CapabilityBoundingSet="), up.end());
}

}  // namespace
}  // namespace tunnel::link
