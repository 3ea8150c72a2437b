// The .deb on a real Debian 12 host with systemd: it installs with apt (its
// dependencies from Debian), ships the binary, man pages, completions,
// examples and units, and tunnel-relay.service starts the relay under the
// prod profile as a dynamic user, serves TLS on 8443 and its admin probes,
// and stops cleanly.
//
// The package is made from this build tree's binary (scripts/package
// --build-dir): under the ci preset that is the ASan + UBSan build, so
// shlibdeps adds libasan8 and libubsan1, and the test host's unit gets a
// drop-in with ASAN_OPTIONS=detect_leaks=0 (LeakSanitizer's ptrace at exit
// is what the unit's seccomp filter forbids). No release build in CI.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include <fmt/format.h>

#include "support/process.hpp"
#include "support/test_hosts.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

TEST(Package, DebInstallsAndTheRelayUnitServes) {
    auto work = temp_dir::create("tunnel-package");
    ASSERT_TRUE(work) << work.error().message;
    // 1. The .deb of this build tree (zstd on every core: xz of the 575 MB ASan binary takes
    // minutes).
    auto built =
        run_cli(fs::path(TUNNEL_SOURCE_DIR) / "scripts/package",
                {"--build-dir", TUNNEL_BUILD_DIR, "--out", work->path(), "--compression", "zstd"},
                cli_options{{}, std::nullopt, {}, 600s});
    ASSERT_EQ(built.exit_code, 0) << built.describe() << built.out;
    const std::string deb =
        trimmed(built.out.substr(built.out.rfind('\n', built.out.size() - 2) + 1));
    ASSERT_TRUE(fs::exists(deb)) << built.out;
    auto contents = run_cli("/usr/bin/dpkg-deb", {"-c", deb});
    ASSERT_EQ(contents.exit_code, 0) << contents.describe();
    for (const char* f :
         {"./usr/bin/tunnel", "./usr/libexec/tunnel/tunnel-cli", "./usr/share/man/man1/tunnel.1",
          "./usr/share/man/man1/tunnel-relay.1", "./usr/share/bash-completion/completions/tunnel",
          "./usr/share/zsh/vendor-completions/_tunnel",
          "./usr/lib/systemd/system/tunnel-relay.service",
          "./usr/lib/systemd/system/tunnel-up@.service",
          "./usr/share/doc/tunnel/examples/relay.yaml", "./etc/tunnel/relay.yaml"})
        EXPECT_NE(contents.out.find(std::string(f) + "\n"), std::string::npos) << f;

    // 2. A TLS certificate for the prod profile's listener.
    auto cert = run_cli("/usr/bin/openssl",
                        {"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                         "-nodes", "-days", "1", "-subj", "/CN=relay.test", "-keyout",
                         work->file("relay.key"), "-out", work->file("relay.crt")});
    ASSERT_EQ(cert.exit_code, 0) << cert.describe();

    auto hosts = test_hosts::start(1);
    ASSERT_TRUE(hosts) << hosts.error().message;
    auto copy = [&](const std::string& local, const std::string& remote) {
        auto args = hosts->tunnel_flags(0);
        args.insert(args.begin(), "cp");
        args.push_back(local);
        args.push_back("root@" + (*hosts)[0].ip + ":" + remote);
        cli_options o;
        o.timeout = 120s;
        return run_tunnel(args, o);
    };
    auto sent = copy(deb, "/tmp/tunnel.deb");
    ASSERT_TRUE(sent.ok()) << sent.describe();
    ASSERT_TRUE(copy(work->file("relay.crt"), "/tmp/relay.crt").ok());
    ASSERT_TRUE(copy(work->file("relay.key"), "/tmp/relay.key").ok());

    // 3. apt installs it with its dependencies (through the harness proxy).
    auto install = hosts->ssh(0,
                              "apt-get update -q >/tmp/apt.log 2>&1 && "
                              "DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                              "--no-install-recommends /tmp/tunnel.deb >>/tmp/apt.log 2>&1; "
                              "rc=$?; tail -5 /tmp/apt.log; exit $rc",
                              240s);
    ASSERT_TRUE(install.ok()) << install.describe() << install.out;
    auto version = hosts->ssh(0,
                              "ASAN_OPTIONS=detect_leaks=0 tunnel --version; getent group tunnel "
                              ">/dev/null && stat -c '%G %a' /etc/tunnel /etc/tunnel/relay.yaml");
    ASSERT_TRUE(version.ok()) << version.describe();
    EXPECT_EQ(version.out, "tunnel 0.1.0\ntunnel 750\ntunnel 640\n");

    // 4. The files the prod profile reads, readable through the tunnel group.
    auto setup = hosts->ssh(
        0,
        "set -e; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /tmp/jwt.secret; "
        "install -m 0640 -g tunnel /tmp/jwt.secret /etc/tunnel/jwt.secret; "
        "install -m 0640 -g tunnel /tmp/relay.crt /etc/tunnel/tls/relay.crt; "
        "install -m 0640 -g tunnel /tmp/relay.key /etc/tunnel/tls/relay.key; "
        "mkdir -p /etc/systemd/system/tunnel-relay.service.d; "
        "printf '[Service]\\nEnvironment=ASAN_OPTIONS=detect_leaks=0\\n' "
        "> /etc/systemd/system/tunnel-relay.service.d/asan.conf; "
        "systemctl daemon-reload; systemd-analyze verify --man=no tunnel-relay.service 2>&1; "
        "systemctl start tunnel-relay.service");
    ASSERT_TRUE(setup.ok())
        << setup.describe() << setup.out
        << hosts->ssh(0, "journalctl -u tunnel-relay --no-pager | tail -30").out;

    // 5. It serves: admin probes on loopback, TLS on 0.0.0.0:8443.
    auto probe = hosts->ssh(0,
                            "for i in $(seq 1 100); do exec 3<>/dev/tcp/127.0.0.1/9090 2>/dev/null "
                            "&& break; sleep 0.1; done; printf 'GET /readyz HTTP/1.1\\r\\nHost: "
                            "127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n' >&3; head -1 <&3");
    ASSERT_TRUE(probe.ok())
        << probe.describe()
        << hosts->ssh(0, "journalctl -u tunnel-relay --no-pager | tail -30").out;
    EXPECT_EQ(trimmed(probe.out), "HTTP/1.1 200 OK") << probe.out;
    auto tls = run_cli("/usr/bin/curl",
                       {"-sk", "-o", "/dev/null", "-w", "%{http_code} %{ssl_verify_result}",
                        "--max-time", "10", "https://" + (*hosts)[0].ip + ":8443/t/nobody/x/"});
    // No tunnel publishes that name: the relay's own answer, over TLS.
    const auto code = tls.out.substr(0, 3);
    EXPECT_TRUE(code == "404" || code == "503") << tls.describe() << tls.out;

    // 6. As a dynamic user, its state and audit log where the profile puts them.
    auto who = hosts->ssh(0,
                          "pid=$(systemctl show -p MainPID --value tunnel-relay); "
                          "stat -c %u /proc/$pid; "
                          "test -s /var/lib/tunnel/relay_host_ed25519 && echo hostkey; "
                          "test -e /var/log/tunnel/audit.jsonl && echo audit");
    ASSERT_TRUE(who.ok()) << who.describe();
    EXPECT_NE(who.out.rfind("0\n", 0), 0u) << "the relay runs as root: " << who.out;
    EXPECT_NE(who.out.find("hostkey\n"), std::string::npos) << who.out;
    EXPECT_NE(who.out.find("audit\n"), std::string::npos) << who.out;
    auto security =
        hosts->ssh(0, "systemd-analyze security tunnel-relay.service --no-pager | tail -1");
    std::cout << "systemd-analyze security tunnel-relay.service: " << security.out;
    std::smatch score;
    ASSERT_TRUE(
        std::regex_search(security.out, score, std::regex(R"(exposure level.*: ([0-9.]+))")))
        << security.out;
    EXPECT_LE(std::stod(score[1]), 2.5) << security.out;

    // 7. It stops cleanly (drains on SIGTERM).
    auto stop = hosts->ssh(0,
                           "systemctl stop tunnel-relay.service; systemctl show -p Result "
                           "--value tunnel-relay.service");
    ASSERT_TRUE(stop.ok()) << stop.describe();
    EXPECT_EQ(trimmed(stop.out), "success");
}

}  // namespace
}  // namespace tunnel::test
