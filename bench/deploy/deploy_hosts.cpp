#include "deploy_hosts.hpp"

#include <chrono>
#include <filesystem>
#include <regex>

#include <fmt/format.h>

namespace tunnel::bench {

namespace fs = std::filesystem;

std::optional<deploy_hosts> deploy_hosts::start(const test::temp_dir& dir, children& procs,
                                                int count) {
    deploy_hosts out;
    out.dir_ = dir.path();
    std::string known;
    for (int i = 0; i < count; ++i) {
        const auto name = fmt::format("h{}", i + 1);
        const auto host_dir = dir.file(name);
        std::error_code ec;
        fs::create_directories(host_dir + "/tunnel", ec);
        fs::create_directories(host_dir + "/ansible", ec);
        if (ec) {
            fmt::print(stderr, "cannot create {}: {}\n", host_dir, ec.message());
            return std::nullopt;
        }
        // Port 0: the server prints the port it got ("Serving HTTP on 127.0.0.1 port N").
        const auto log = "http-" + name + ".log";
        if (!procs.start({"python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                          "--directory", host_dir},
                         log))
            return std::nullopt;
        auto port = procs.wait_log(log, std::regex(R"(port (\d+))"), std::chrono::seconds(10));
        if (!port) return std::nullopt;

        test::sshd_options so;
        so.max_sessions = 64;
        // sshd keeps the first value: these go above the fixture's own lines.
        so.extra_config = {"LogLevel INFO", fmt::format("SetEnv SHLVL=1 HTTP_PORT={}", *port)};
        auto sshd = test::sshd_fixture::start(so);
        if (!sshd) {
            fmt::print(stderr, "cannot start sshd for {}: {}\n", name, sshd.error().message);
            return std::nullopt;
        }
        known += test::read_text_file(sshd->known_hosts_path()).value_or("");
        out.hosts_.push_back(deploy_host{
            name, host_dir, static_cast<std::uint16_t>(std::stoi(*port)), std::move(*sshd)});
    }
    out.known_hosts_ = dir.file("known_hosts");
    if (!test::write_text_file(out.known_hosts_, known, 0600)) return std::nullopt;
    return out;
}

std::string deploy_hosts::root(std::size_t i, const std::string& tool) const {
    return hosts_.at(i).dir + "/" + tool;
}

std::string deploy_hosts::ini_inventory(const std::string& root_tool,
                                        const std::vector<std::string>& group_vars) const {
    std::string inv = "[web]\n";
    for (std::size_t i = 0; i < hosts_.size(); ++i)
        inv += fmt::format(
            "{} ansible_host=127.0.0.1 ansible_port={} ansible_user=root deploy_root={} "
            "http_port={}\n",
            hosts_[i].name, hosts_[i].sshd.port(), root(i, root_tool), hosts_[i].http_port);
    if (!group_vars.empty()) {
        inv += "[web:vars]\n";
        for (const auto& line : group_vars) inv += line + "\n";
    }
    return inv;
}

void deploy_hosts::clear_roots(const std::string& tool) const {
    for (std::size_t i = 0; i < hosts_.size(); ++i) {
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(root(i, tool), ec))
            fs::remove_all(entry.path(), ec);
    }
}

}  // namespace tunnel::bench
