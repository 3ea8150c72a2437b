// Shared by the ops host tests: run `tunnel apply` against test hosts and read
// a host's state through nsenter (works whatever the test did to sshd).
#pragma once

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/test_hosts.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test::ops_hosts {

// Connection flags for every host of `hosts` at once (the inventory names each key).
inline std::vector<std::string> all_host_flags(const test_hosts& hosts) {
    return {"-F", "/dev/null",
            "-o", "UserKnownHostsFile=" + hosts.known_hosts_all(),
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes"};
}

inline run_result apply(const test_hosts& hosts, const std::string& inventory,
                        const std::string& plan, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"apply", plan, "-i", inventory};
    for (auto& f : all_host_flags(hosts)) args.push_back(f);
    for (auto& e : extra) args.push_back(e);
    cli_options o;
    o.timeout = std::chrono::seconds(240);
    auto r = run_tunnel(args, o);
    // A host that could not be reached: what its sshd and sockets said at the
    // time goes into the output the assertions print (tests that expect an
    // unreachable host ignore the extra lines).
    for (std::size_t i = 0; i < hosts.size(); ++i) {
        const auto& name = hosts[i].name;
        if (r.out.find(name + ": unreachable") == std::string::npos) continue;
        r.out += "\n--- diagnostics for " + name + " (" + hosts[i].ip + ") ---\n";
        r.out += hosts
                     .exec(i, {"sh", "-c",
                               "journalctl -u ssh --no-pager -n 30 2>&1; ss -tanp 2>&1 | head -20; "
                               "uptime"})
                     .out;
    }
    return r;
}

inline std::string write_file(const temp_dir& dir, const std::string& name,
                              const std::string& text) {
    auto path = dir.file(name);
    std::ofstream(path, std::ios::binary) << text;
    return path;
}

// stdout of `sh -c COMMAND` inside host i, as root.
inline std::string host_sh(const test_hosts& hosts, std::size_t i, const std::string& command) {
    return hosts.exec(i, {"sh", "-c", command}).out;
}

// Hosts, a temp dir and an inventory shared by the tests of one suite
// (started in SetUpTestSuite, removed in TearDownTestSuite).
struct shared_hosts {
    test_hosts hosts;
    temp_dir dir;
    std::string inventory;

    static core::result<std::unique_ptr<shared_hosts>> start(std::size_t count,
                                                             const std::string& group) {
        auto h = test_hosts::start(count);
        if (!h) return tl::unexpected(h.error());
        auto d = temp_dir::create("ops-hosts");
        if (!d) return tl::unexpected(d.error());
        auto inv = h->write_inventory(group);
        if (!inv) return tl::unexpected(inv.error());
        return std::unique_ptr<shared_hosts>(new shared_hosts{std::move(*h), std::move(*d), *inv});
    }
};

inline bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

}  // namespace tunnel::test::ops_hosts
