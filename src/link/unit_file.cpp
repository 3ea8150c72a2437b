#include "link/unit_file.hpp"

#include <sys/stat.h>

#include <cctype>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

namespace tunnel::link {

namespace fs = std::filesystem;

namespace {

// systemd's ExecStart= quoting: double quotes, with \ " and % escaped.
std::string exec_arg(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '%') {
            out += "%%";
            continue;
        }
        if (c == '$') {
            out += "$$";
            continue;
        }
        out += c;
    }
    return out + "\"";
}

}  // namespace

std::string unit_name(const std::string& links_file) {
    std::string stem = fs::path(links_file).stem().string();
    for (char& c : stem)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) c = '-';
    if (stem.empty()) stem = "links";
    return fmt::format("tunnel-up-{}.service", stem);
}

std::string render_unit(const unit_request& r) {
    const bool system = r.scope == unit_scope::system;
    const std::string name = unit_name(r.links_file);
    const std::string runtime = name.substr(0, name.size() - std::string(".service").size());
    std::string exec = exec_arg(r.tunnel_binary) + " up";
    if (system) exec += " --control " + exec_arg("/run/" + runtime + "/control.sock");
    if (r.status_addr) exec += " --status-addr " + exec_arg(*r.status_addr);
    exec += " " + exec_arg(r.links_file);

    std::string u;
    u += "# Written by `tunnel up --install-unit`; see docs/link.md.\n";
    u += "[Unit]\n";
    u += fmt::format("Description=tunnel up: the links in {}\n", r.links_file);
    u += "Documentation=man:ssh_config(5)\n";
    if (system) u += "After=network-online.target\nWants=network-online.target\n";
    u += "\n[Service]\n";
    u += "Type=simple\n";
    u += fmt::format("ExecStart={}\n", exec);
    u += "Restart=on-failure\nRestartSec=2s\n";
    // `tunnel up` exits 2 for a bad file: restarting cannot fix that.
    u += "RestartPreventExitStatus=2\n";
    u += "UMask=0077\n";
    u += "NoNewPrivileges=yes\n";
    u += "LockPersonality=yes\n";
    u += "RestrictRealtime=yes\n";
    u += "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n";
    u += "SystemCallArchitectures=native\n";
    u += "SystemCallFilter=@system-service\n";
    u += "SystemCallFilter=~@privileged\n";  // not @resources: the fd limit is raised at start
    u += "SystemCallErrorNumber=EPERM\n";
    if (system) {
        if (r.user) u += fmt::format("User={}\n", *r.user);
        u += fmt::format("RuntimeDirectory={}\nRuntimeDirectoryMode=0700\n", runtime);
        u += "CapabilityBoundingSet=\nAmbientCapabilities=\n";
        u += "ProtectSystem=strict\nProtectHome=read-only\n";
        u += "PrivateTmp=yes\nPrivateDevices=yes\nPrivateMounts=yes\n";
        u += "ProtectKernelTunables=yes\nProtectKernelModules=yes\nProtectKernelLogs=yes\n";
        u += "ProtectControlGroups=yes\nProtectClock=yes\nProtectHostname=yes\n";
        u += "ProtectProc=invisible\nProcSubset=pid\n";
        u += "RestrictNamespaces=yes\nRestrictSUIDSGID=yes\nRemoveIPC=yes\n";
        u += "MemoryDenyWriteExecute=yes\n";
    }
    u += "\n[Install]\n";
    u += fmt::format("WantedBy={}\n", system ? "multi-user.target" : "default.target");
    return u;
}

core::result<std::string> install_unit(const unit_request& r, const std::string& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
        return core::fail(core::errc::io_error,
                          fmt::format("--install-unit: cannot create {}: {}", dir, ec.message()));
    const std::string path = (fs::path(dir) / unit_name(r.links_file)).string();
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << render_unit(r);
        out.close();
        if (!out)
            return core::fail(core::errc::io_error,
                              fmt::format("--install-unit: cannot write {}", tmp));
    }
    ::chmod(tmp.c_str(), 0644);
    fs::rename(tmp, path, ec);
    if (ec) {
        fs::remove(tmp, ec);
        return core::fail(core::errc::io_error,
                          fmt::format("--install-unit: cannot write {}", path));
    }
    return path;
}

}  // namespace tunnel::link
