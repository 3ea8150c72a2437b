// `tunnel deploy` on real test hosts with systemd: a tiny HTTP app (a sh
// script behind a socket-activated unit) deployed as a directory artifact,
// the unit restarted and waited for, a health check that talks HTTP to it;
// a broken release fails its health check in the first batch and is switched
// back, the app answering from the old release again.
#include <sys/stat.h>

#include <filesystem>
#include <future>
#include <iostream>
#include <thread>

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

// The app as systemd runs it on every host: a socket unit on 8000, one
// serve.sh per connection from the current release.
void install_shop_units(test_hosts& hosts) {
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
}

std::string write_deploy_file(temp_dir& dir, const std::string& strategy) {
    return write_file(dir, "deploy.yaml",
                      fmt::format(R"(app: shop
root: /srv/shop
artifact: app/
unit: shop.socket
unit_timeout: 20s
health:
  - {{command: "./check.sh", timeout: 5s, interval: 250ms}}
strategy: {}
)",
                                  strategy));
}

run_result deploy_json(shared_hosts& shared, const std::string& deploy) {
    std::vector<std::string> args{"deploy", deploy, "-i", shared.inventory, "--json"};
    for (auto& f : all_host_flags(shared.hosts)) args.push_back(f);
    cli_options o;
    o.timeout = std::chrono::seconds(120);
    return run_tunnel(args, o);
}

// What the app on host i answers.
std::string ask_shop(test_hosts& hosts, std::size_t i) {
    return hosts
        .exec(i, {"bash", "-c",
                  "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && "
                  "cat <&3"})
        .out;
}

TEST(DeployHosts, ASystemdAppIsDeployedRestartedCheckedAndABrokenReleaseSwitchedBack) {
    auto shared = shared_hosts::start(2, "web");
    ASSERT_TRUE(shared) << shared.error().message;
    auto& hosts = (*shared)->hosts;
    auto& dir = (*shared)->dir;
    install_shop_units(hosts);
    auto deploy = write_deploy_file(dir, "{type: rolling, batch: 1, max_fail_percentage: 0}");
    auto run_deploy = [&] { return deploy_json(**shared, deploy); };
    auto ask = [&](std::size_t i) { return ask_shop(hosts, i); };

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

namespace tunnel::test {
namespace {

// Blue-green behind nginx: two slots of the tiny app (socket-activated units
// shop-blue.socket on 8001 and shop-green.socket on 8002, each running the
// release its slot links to), nginx on 127.0.0.1:8080 proxying to the upstream
// file the deploy rewrites and reloads. A client loops requests through nginx
// on the host during a deploy and a rollback: not one may fail.
// recreate, rolling (by percent) and canary across three systemd hosts: each
// deploy reaches every host, in the batches its strategy plans; a broken
// canary is switched back and the other hosts are never touched.
TEST(DeployHosts, RecreateRollingAndCanaryOnThreeHosts) {
    auto shared = shared_hosts::start(3, "web");
    ASSERT_TRUE(shared) << shared.error().message;
    auto& hosts = (*shared)->hosts;
    auto& dir = (*shared)->dir;
    install_shop_units(hosts);
    struct deploy_round {
        std::string version, strategy;
        std::size_t batches;
    };
    for (const auto& s :
         std::vector<deploy_round>{{"v1", "{type: recreate}", 1},
                                   {"v2", "{type: rolling, batch: 33%}", 3},
                                   {"v3", "{type: canary, batch: 1, wait: 1s}", 2}}) {
        SCOPED_TRACE(s.strategy);
        make_app(dir.file("app"), s.version, false);
        auto r = deploy_json(**shared, write_deploy_file(dir, s.strategy));
        ASSERT_EQ(r.exit_code, 0) << r.describe() << r.out;
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << r.out;
        EXPECT_EQ(j["batches"], s.batches) << j.dump(2);
        for (std::size_t i = 0; i < hosts.size(); ++i)
            EXPECT_NE(ask_shop(hosts, i).find("version " + s.version), std::string::npos)
                << "host " << i << ": " << ask_shop(hosts, i);
    }

    make_app(dir.file("app"), "v4", true);
    auto r = deploy_json(**shared, write_deploy_file(dir, "{type: canary, batch: 1}"));
    EXPECT_EQ(r.exit_code, 1) << r.describe() << r.out;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(j["hosts"][0]["status"], "failed") << j.dump(2);
    EXPECT_EQ(j["hosts"][1]["status"], "not switched");
    EXPECT_EQ(j["hosts"][2]["status"], "not switched");
    for (std::size_t i = 0; i < hosts.size(); ++i)
        EXPECT_NE(ask_shop(hosts, i).find("version v3"), std::string::npos)
            << "host " << i << ": " << ask_shop(hosts, i);
}

constexpr const char* slot_serve_sh = R"SH(#!/bin/sh
while IFS= read -r line; do
  case "$line" in ""|"$(printf '\r')") break;; esac
done
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n'
echo "version $(cat "$(dirname "$0")/VERSION")"
)SH";

constexpr const char* client_loop_sh = R"SH(ok=0; fail=0
rm -f /tmp/stop-loop /tmp/fails; : > /tmp/seen
while [ ! -e /tmp/stop-loop ]; do
  r=$(curl -s -m 5 -w ' %{http_code}' http://127.0.0.1:8080/ 2>&1)
  case "$r" in
    "version "*" 200") ok=$((ok+1)); echo "${r% 200}" >> /tmp/seen ;;
    *) fail=$((fail+1)); echo "FAIL [$r]" >> /tmp/fails ;;
  esac
  sleep 0.01
done
echo "ok=$ok fail=$fail"
)SH";

TEST(DeployHosts, BlueGreenBehindNginxSwitchesAndRollsBackWithoutAFailedRequest) {
    auto hosts = test_hosts::start(1);
    ASSERT_TRUE(hosts) << hosts.error().message;
    auto dir = temp_dir::create("deploy-bg-hosts");
    ASSERT_TRUE(dir);
    auto inv = hosts->write_inventory("web");
    ASSERT_TRUE(inv);
    auto install = hosts->ssh(0,
                              "apt-get update -q -o Acquire::Retries=3 >/tmp/apt.log 2>&1 && "
                              "DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                              "-o Acquire::Retries=3 nginx-light curl >>/tmp/apt.log 2>&1 && echo "
                              "ok || tail -n 5 /tmp/apt.log",
                              std::chrono::minutes(5));
    ASSERT_EQ(install.out, "ok\n") << "installing nginx-light and curl on the test host failed:\n"
                                   << install.out << install.err;
    std::string units;
    for (auto [slot, port] : {std::pair{"blue", 8001}, std::pair{"green", 8002}})
        units += fmt::format(
            "printf "
            "'[Socket]\\nListenStream=127.0.0.1:{1}\\nAccept=yes\\nTriggerLimitIntervalSec=0\\n'"
            " > /etc/systemd/system/shop-{0}.socket && printf "
            "'[Service]\\nExecStart=/srv/shop/slots/{0}/serve.sh\\nStandardInput=socket\\n"
            "StandardOutput=socket\\n' > /etc/systemd/system/shop-{0}@.service && ",
            slot, port);
    auto setup = hosts->exec(
        0, {"sh", "-c",
            units + "systemctl daemon-reload && rm -f /etc/nginx/sites-enabled/default && printf "
                    "'upstream shop { server 127.0.0.1:8001; }\\n' > "
                    "/etc/nginx/conf.d/shop-upstream.conf && printf 'server { listen "
                    "127.0.0.1:8080; location / { proxy_pass http://shop; } }\\n' > "
                    "/etc/nginx/conf.d/shop.conf && nginx -t -q && systemctl reload nginx"});
    ASSERT_TRUE(setup.ok()) << setup.describe() << setup.out;

    auto deploy = write_file(*dir, "deploy.yaml", R"(app: shop
root: /srv/shop
artifact: app/
unit_timeout: 20s
health:
  - {http: "http://127.0.0.1:{{port}}/up", body: "version", timeout: 10s, interval: 250ms}
strategy:
  type: blue_green
  slots:
    blue: {port: 8001, unit: shop-blue.socket}
    green: {port: 8002, unit: shop-green.socket}
  upstream:
    file: /etc/nginx/conf.d/shop-upstream.conf
    template: "upstream shop { server 127.0.0.1:{{port}}; }"
    reload: "nginx -t -q && systemctl reload nginx"
)");
    auto make = [&](const std::string& version) {
        const auto app = dir->file("app");
        fs::remove_all(app);
        fs::create_directories(app);
        write_file_at(app + "/VERSION", version + "\n");
        write_file_at(app + "/serve.sh", slot_serve_sh);
        ::chmod((app + "/serve.sh").c_str(), 0755);
    };
    auto tunnel = [&](const std::string& cmd) {
        std::vector<std::string> args{cmd, deploy, "-i", *inv, "--json"};
        for (auto& f : all_host_flags(*hosts)) args.push_back(f);
        cli_options o;
        o.timeout = std::chrono::seconds(120);
        auto r = run_tunnel(args, o);
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        return std::pair{r, j};
    };
    auto through_nginx = [&] { return host_sh(*hosts, 0, "curl -s -m 5 http://127.0.0.1:8080/"); };
    // nginx applies a reload a moment after `systemctl reload` returns.
    auto wait_for = [&](const std::string& want) {
        for (int k = 0; k < 50 && through_nginx() != want; ++k)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        return through_nginx();
    };
    auto started = [&](const std::string& unit) {
        return host_sh(*hosts, 0, "systemctl show -p ActiveEnterTimestampMonotonic " + unit);
    };

    make("v1");
    auto [first, j1] = tunnel("deploy");
    ASSERT_EQ(first.exit_code, 0) << first.describe() << first.out;
    EXPECT_EQ(j1["hosts"][0]["slot"], "blue") << j1.dump(2);
    EXPECT_EQ(wait_for("version v1\n"), "version v1\n");
    const auto blue_started = started("shop-blue.socket");

    // The client loops through nginx during a deploy (blue -> green) and a rollback.
    std::promise<run_result> loop_done;
    std::thread loop([&] {
        loop_done.set_value(
            hosts->exec(0, {"bash", "-c", client_loop_sh}, std::chrono::minutes(4)));
    });
    for (int k = 0; k < 100 && host_sh(*hosts, 0, "wc -l < /tmp/seen") == "0\n"; ++k)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    make("v2");
    auto [second, j2] = tunnel("deploy");
    EXPECT_EQ(second.exit_code, 0) << second.describe() << second.out;
    EXPECT_EQ(j2["hosts"][0]["slot"], "green") << j2.dump(2);
    EXPECT_EQ(wait_for("version v2\n"), "version v2\n");
    EXPECT_EQ(host_sh(*hosts, 0, "cat /etc/nginx/conf.d/shop-upstream.conf"),
              "upstream shop { server 127.0.0.1:8002; }\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto [back, jb] = tunnel("rollback");
    EXPECT_EQ(back.exit_code, 0) << back.describe() << back.out;
    EXPECT_EQ(jb["hosts"][0]["slot"], "blue") << jb.dump(2);
    EXPECT_EQ(wait_for("version v1\n"), "version v1\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    (void)host_sh(*hosts, 0, "touch /tmp/stop-loop");
    loop.join();
    auto counts = loop_done.get_future().get();
    EXPECT_TRUE(counts.ok()) << counts.describe();
    EXPECT_NE(counts.out.find(" fail=0\n"), std::string::npos)
        << counts.out << host_sh(*hosts, 0, "head -n 5 /tmp/fails");
    // (each answer is its body line, then the empty line `echo` adds)
    const auto seen = host_sh(*hosts, 0, "grep -v '^$' /tmp/seen | sort -u");
    EXPECT_EQ(seen, "version v1\nversion v2\n") << seen;
    std::cout << "[ blue-green ] client through nginx: " << counts.out
              << host_sh(*hosts, 0, "grep -v '^$' /tmp/seen | uniq -c");
    // The old slot stayed warm: blue's unit was never restarted, and the rollback flipped back
    // to it; green (the new slot) still runs v2.
    EXPECT_EQ(started("shop-blue.socket"), blue_started);
    EXPECT_EQ(host_sh(*hosts, 0, "curl -s -m 5 http://127.0.0.1:8002/"), "version v2\n");
    EXPECT_EQ(host_sh(*hosts, 0, "cat /srv/shop/.tunnel-deploy/live-slot"), "blue\n");
}

}  // namespace
}  // namespace tunnel::test
