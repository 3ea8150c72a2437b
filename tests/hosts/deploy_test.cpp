// `tunnel deploy` on real test hosts with systemd: a tiny HTTP app (a sh
// script behind a socket-activated unit) deployed as a directory artifact,
// the unit restarted and waited for, a health check that talks HTTP to it;
// a broken release fails its health check in the first batch and is switched
// back, the app answering from the old release again.
#include <sys/stat.h>

#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ops_support.hpp"

namespace tunnel::test {
namespace {

using namespace ops_hosts;
namespace fs = std::filesystem;

constexpr const char* serve_sh = R"SH(#!/bin/sh
while IFS= read -r line; do
  case "$line" in ""|"$(printf '\r')") break;; esac
done
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n'
)SH";

constexpr const char* check_sh = R"SH(#!/bin/bash
exec 3<>/dev/tcp/127.0.0.1/8000 || exit 2
printf 'GET /up HTTP/1.0\r\n\r\n' >&3
answer=$(cat <&3)
echo "$answer" | tail -n 1
case "$answer" in *"version $(cat VERSION)"*) exit 0;; esac
exit 1
)SH";

void write_file_at(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

void make_app(const std::string& dir, const std::string& version, bool broken) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    write_file_at(dir + "/VERSION", version + "\n");
    std::string serve = serve_sh;
    serve += broken ? "echo broken\n" : "echo \"version $(cat /srv/shop/current/VERSION)\"\n";
    write_file_at(dir + "/serve.sh", serve);
    write_file_at(dir + "/check.sh", check_sh);
    ::chmod((dir + "/serve.sh").c_str(), 0755);
    ::chmod((dir + "/check.sh").c_str(), 0755);
}

TEST(DeployHosts, ASystemdAppIsDeployedRestartedCheckedAndABrokenReleaseSwitchedBack) {
    auto shared = shared_hosts::start(2, "web");
    ASSERT_TRUE(shared) << shared.error().message;
    auto& hosts = (*shared)->hosts;
    auto& dir = (*shared)->dir;
    for (std::size_t i = 0; i < hosts.size(); ++i) {
        auto r = hosts.exec(
            i, {"sh", "-c",
                "printf '[Socket]\\nListenStream=127.0.0.1:8000\\nAccept=yes\\n' > "
                "/etc/systemd/system/shop.socket && printf "
                "'[Service]\\nExecStart=/srv/shop/current/serve.sh\\nStandardInput=socket\\n"
                "StandardOutput=socket\\n' > /etc/systemd/system/shop@.service && systemctl "
                "daemon-reload"});
        ASSERT_TRUE(r.ok()) << r.describe();
    }
    auto deploy = write_file(dir, "deploy.yaml", R"(app: shop
root: /srv/shop
artifact: app/
unit: shop.socket
unit_timeout: 20s
health:
  - {command: "./check.sh", timeout: 5s, interval: 250ms}
strategy: {type: rolling, batch: 1, max_fail_percentage: 0}
)");
    auto run_deploy = [&] {
        std::vector<std::string> args{"deploy", deploy, "-i", (*shared)->inventory, "--json"};
        for (auto& f : all_host_flags(hosts)) args.push_back(f);
        cli_options o;
        o.timeout = std::chrono::seconds(120);
        return run_tunnel(args, o);
    };
    auto ask = [&](std::size_t i) {
        return hosts
            .exec(i, {"bash", "-c",
                      "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 "
                      "&& cat <&3"})
            .out;
    };

    make_app(dir.file("app"), "v1", false);
    auto first = run_deploy();
    ASSERT_EQ(first.exit_code, 0) << first.describe() << first.out;
    for (std::size_t i = 0; i < hosts.size(); ++i) {
        EXPECT_NE(ask(i).find("version v1"), std::string::npos) << ask(i);
        EXPECT_EQ(host_sh(hosts, i, "systemctl is-active shop.socket"), "active\n");
    }

    make_app(dir.file("app"), "v2", true);
    auto second = run_deploy();
    EXPECT_EQ(second.exit_code, 1) << second.describe() << second.out;
    auto j = nlohmann::json::parse(second.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << second.out;
    EXPECT_EQ(j["hosts"][0]["status"], "failed") << j.dump(2);
    EXPECT_NE(j["hosts"][0]["message"].get<std::string>().find(
                  "health check command ./check.sh failed: waited "),
              std::string::npos)
        << j.dump(2);
    EXPECT_NE(j["hosts"][0]["message"].get<std::string>().find("last answer: exit 1: broken"),
              std::string::npos)
        << j.dump(2);
    EXPECT_EQ(j["hosts"][1]["status"], "not switched");
    for (std::size_t i = 0; i < hosts.size(); ++i)
        EXPECT_NE(ask(i).find("version v1"), std::string::npos) << "host " << i << ": " << ask(i);
}

}  // namespace
}  // namespace tunnel::test
