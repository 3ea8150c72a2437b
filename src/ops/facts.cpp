#include "ops/facts.hpp"

#include <fmt/format.h>

namespace tunnel::ops {

const std::vector<std::string_view>& facts::names() {
    static const std::vector<std::string_view> n{
        "distro",   "distro_like", "version", "pkg_manager", "init_system",
        "firewall", "hostname",    "arch",    "user",        "ssh_port"};
    return n;
}

std::optional<std::string> facts::get(std::string_view name) const {
    if (name == "distro") return distro;
    if (name == "distro_like") return distro_like;
    if (name == "version") return version;
    if (name == "pkg_manager") return pkg_manager;
    if (name == "init_system") return init_system;
    if (name == "firewall") return firewall;
    if (name == "hostname") return hostname;
    if (name == "arch") return arch;
    if (name == "user") return user;
    if (name == "ssh_port") return std::to_string(ssh_port);
    return std::nullopt;
}

nlohmann::json facts_json(const facts& f) {
    auto j = nlohmann::json::object();
    for (auto name : facts::names()) j[std::string(name)] = f.get(name).value_or("");
    return j;
}

std::string facts_script() {
    // Each probe is independent; a missing tool only leaves its fact empty.
    return R"SH(PATH="$PATH:/usr/sbin:/sbin"
( . /etc/os-release 2>/dev/null; echo "distro=${ID:-}"; echo "distro_like=${ID_LIKE:-}"; echo "version=${VERSION_ID:-}" )
pm=; for m in apt-get:apt dnf:dnf yum:yum pacman:pacman zypper:zypper; do
  if command -v "${m%%:*}" >/dev/null 2>&1; then pm=${m#*:}; break; fi; done; echo "pkg_manager=$pm"
if [ -d /run/systemd/system ]; then echo init_system=systemd; else echo "init_system=$(cat /proc/1/comm 2>/dev/null)"; fi
fw=none; if command -v ufw >/dev/null 2>&1; then fw=ufw; elif command -v firewall-cmd >/dev/null 2>&1; then fw=firewalld;
  elif command -v nft >/dev/null 2>&1; then fw=nftables; elif command -v iptables >/dev/null 2>&1; then fw=iptables; fi
echo "firewall=$fw"; echo "hostname=$(hostname 2>/dev/null || cat /etc/hostname)"; echo "arch=$(uname -m)"; echo "user=$(id -un)"
echo "ssh_connection=${SSH_CONNECTION:-}"
)SH";
}

namespace {
// "CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT" -> SERVER_PORT.
std::optional<std::uint16_t> server_port(std::string_view ssh_connection) {
    std::vector<std::string_view> fields;
    while (!ssh_connection.empty()) {
        auto sp = ssh_connection.find(' ');
        auto word = ssh_connection.substr(0, sp);
        if (!word.empty()) fields.push_back(word);
        ssh_connection.remove_prefix(sp == std::string_view::npos ? ssh_connection.size() : sp + 1);
    }
    if (fields.size() != 4 || fields[3].empty() || fields[3].size() > 5) return std::nullopt;
    unsigned long port = 0;
    for (char c : fields[3]) {
        if (c < '0' || c > '9') return std::nullopt;
        port = port * 10 + static_cast<unsigned long>(c - '0');
    }
    if (port < 1 || port > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(port);
}
}  // namespace

core::result<facts> parse_facts(std::string_view output, std::uint16_t dialled_port) {
    facts f;
    f.ssh_port = dialled_port;
    f.dialled_port = dialled_port;
    bool saw_distro = false;
    while (!output.empty()) {
        auto nl = output.find('\n');
        auto line = output.substr(0, nl);
        output.remove_prefix(nl == std::string_view::npos ? output.size() : nl + 1);
        auto eq = line.find('=');
        if (eq == std::string_view::npos) continue;
        auto key = line.substr(0, eq);
        std::string value(line.substr(eq + 1));
        if (key == "distro")
            f.distro = value, saw_distro = true;
        else if (key == "distro_like")
            f.distro_like = value;
        else if (key == "version")
            f.version = value;
        else if (key == "pkg_manager")
            f.pkg_manager = value;
        else if (key == "init_system")
            f.init_system = value;
        else if (key == "firewall")
            f.firewall = value;
        else if (key == "hostname")
            f.hostname = value;
        else if (key == "arch")
            f.arch = value;
        else if (key == "user")
            f.user = value;
        else if (key == "ssh_connection") {
            if (auto port = server_port(value)) f.ssh_port = *port;
        }
    }
    if (!saw_distro || f.user.empty())
        return core::fail(core::errc::protocol_error,
                          "gathering facts: the host's answer was not understood (is its login "
                          "shell POSIX sh-like?)");
    return f;
}

}  // namespace tunnel::ops
