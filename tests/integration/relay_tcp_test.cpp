// Raw TCP publishing, end to end (docs/relay.md "Raw TCP"): a real `tunnel
// relay` with a tcp: section, real `tunnel connect --expose-tcp` clients, a
// real sshd reached with OpenSSH through an assigned port, an echo service
// with a large payload both ways, TLS routed by SNI from `openssl s_client`
// to `openssl s_server` (the relay never holds the origin's key), range
// exhaustion, a name the token does not allow, hostile ClientHellos, and a
// reconnect that keeps its port.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../support/client_hello_builder.hpp"
#include "support/eventually.hpp"
#include "support/fault_proxy.hpp"
#include "support/process.hpp"
#include "support/relay_fixture.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// `n` consecutive ports on 127.0.0.1 that nothing listens on now.
std::uint16_t free_port_range(int n) {
    std::mt19937 rng(static_cast<unsigned>(::getpid()) ^
                     static_cast<unsigned>(steady::now().time_since_epoch().count()));
    for (int attempt = 0; attempt < 200; ++attempt) {
        const auto base = static_cast<std::uint16_t>(20000 + rng() % 30000);
        std::vector<int> fds;
        bool ok = true;
        for (int i = 0; i < n && ok; ++i) {
            const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a.sin_port = htons(static_cast<std::uint16_t>(base + i));
            ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
            fds.push_back(fd);
        }
        for (int fd : fds) ::close(fd);
        if (ok) return base;
    }
    return 0;
}

// Reads until EOF, `want` bytes or the deadline.
std::string read_some(int fd, std::chrono::milliseconds timeout, std::size_t want = 1 << 20) {
    std::string out;
    const auto deadline = steady::now() + timeout;
    char buf[4096];
    while (out.size() < want && steady::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
        if (::poll(&p, 1, static_cast<int>(std::max<long long>(1, left.count()))) <= 0) continue;
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

// True when the peer closed `fd` (EOF or reset) within `timeout`.
bool closed_within(int fd, std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    char buf[4096];
    while (steady::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0) continue;
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return true;
    }
    return false;
}

class RelayTcp : public ::testing::Test {
  protected:
    void start(int ports, const std::string& extra = {}) {
        first_port = free_port_range(ports);
        ASSERT_NE(first_port, 0) << "no free port range";
        relay_options o;
        o.audit_log = true;
        o.extra_yaml = fmt::format(
            "limits:\n  tenant_rps: 1000\n  route_rps: 1000\n  route_burst: 1000\n"
            "leases: {{grace: 30s}}\n"
            "tcp:\n  ports: {}-{}\n  bind: 127.0.0.1\n  sni_domain: tcp.test\n"
            "  client_hello_timeout: 1s\n{}",
            first_port, first_port + ports - 1, extra);
        auto r = relay_fixture::start(std::move(o));
        ASSERT_TRUE(r) << r.error().message;
        relay.emplace(std::move(*r));
        auto h = temp_dir::create("tcp-test");
        ASSERT_TRUE(h) << h.error().message;
        home.emplace(std::move(*h));
    }

    // `tunnel connect --json --expose-tcp NAME=127.0.0.1:PORT...` (through
    // `url` when given); waits for `events` published/refused events.
    void connect(const std::string& allow,
                 const std::vector<std::pair<std::string, std::uint16_t>>& exposes, int events = -1,
                 const std::string& url = {}) {
        auto tok = relay->mint("acme", allow);
        ASSERT_TRUE(tok) << tok.error().message;
        std::vector<std::string> args{"connect",
                                      url.empty() ? relay->attach_url() : url,
                                      "--token-file",
                                      relay->token_file(*tok),
                                      "--json",
                                      "--connect-timeout",
                                      "2s",
                                      "--keepalive",
                                      "1s"};
        for (const auto& [name, port] : exposes) {
            args.emplace_back("--expose-tcp");
            args.push_back(fmt::format("{}={}:{}", name, "127.0.0.1", port));
        }
        auto c = spawn_tunnel(args, home->path(), home->file("c.log"), home->file("c.log"));
        ASSERT_TRUE(c) << c.error().message;
        client.emplace(std::move(*c));
        const int want = events < 0 ? static_cast<int>(exposes.size()) : events;
        ASSERT_TRUE(eventually([&] { return count("published") + count("refused") >= want; }, 20s))
            << client_log() << relay->log();
    }

    std::string client_log() const { return read_text_file(home->file("c.log")).value_or(""); }
    std::vector<nlohmann::json> events(const std::string& what) const {
        std::vector<nlohmann::json> out;
        std::istringstream lines(client_log());
        for (std::string line; std::getline(lines, line);) {
            auto j = nlohmann::json::parse(line, nullptr, false);
            if (j.is_object() && j.value("event", "") == what) out.push_back(j);
        }
        return out;
    }
    int count(const std::string& what) const { return static_cast<int>(events(what).size()); }
    // The port the client printed for `name` (0: none).
    std::uint16_t port_of(const std::string& name) const {
        std::uint16_t port = 0;
        for (const auto& e : events("published"))
            if (e.value("name", "") == name) port = e.value("port", 0);
        return port;
    }
    std::string audit() const { return read_text_file(relay->audit_path()).value_or(""); }

    std::uint16_t first_port = 0;
    std::optional<relay_fixture> relay;
    std::optional<temp_dir> home;
    std::optional<child_process> client;
};

TEST_F(RelayTcp, OpenSshAndALargeEchoThroughAssignedPorts) {
    start(4);
    auto sshd = sshd_fixture::start();
    ASSERT_TRUE(sshd) << sshd.error().message;
    auto echo = echo_server::start();
    ASSERT_TRUE(echo) << echo.error().message;
    connect("ssh,echo", {{"ssh", sshd->port()}, {"echo", (*echo)->port()}});
    const auto ssh_port = port_of("ssh");
    const auto echo_port = port_of("echo");
    ASSERT_GE(ssh_port, first_port) << client_log();
    ASSERT_LT(ssh_port, first_port + 4);
    ASSERT_GE(echo_port, first_port);
    EXPECT_NE(ssh_port, echo_port);
    EXPECT_NE(client_log().find(fmt::format("\"urls\":[\"tcp://127.0.0.1:{}\"]", ssh_port)),
              std::string::npos)
        << client_log();

    // OpenSSH to the real sshd through the relay, its host key checked
    // strictly: the relay only carries bytes.
    const std::string known = home->file("known_hosts");
    {
        std::ofstream kh(known);
        kh << fmt::format("[127.0.0.1]:{} {}\n", ssh_port, sshd->host_pubkey());
    }
    std::vector<std::string> argv{"ssh"};
    for (auto& f : strict_client_flags("-p", ssh_port, sshd->client_key_path(), known))
        argv.push_back(f);
    argv.insert(argv.end(), {"root@127.0.0.1", "echo", "through-the-relay"});
    run_options ro;
    ro.timeout = 20s;
    auto r = run(argv, ro);
    EXPECT_TRUE(r.ok()) << r.describe() << "\n" << relay->log();
    EXPECT_EQ(r.out, "through-the-relay\n");

    // 4 MiB each way at once, byte for byte.
    const int fd = connect_tcp("127.0.0.1", echo_port);
    ASSERT_GE(fd, 0);
    const std::string payload = random_bytes(4 << 20, 42);
    auto back = exchange(fd, payload, 30'000);
    ::close(fd);
    ASSERT_TRUE(back) << back.error().message << "\n" << relay->log();
    EXPECT_EQ(back->size(), payload.size());
    EXPECT_EQ(sha256_hex(*back), sha256_hex(payload));

    // The admin API shows the ports; the audit log the publishes.
    const auto api = nlohmann::json::parse(relay->admin_get("/api/v1/tcp"), nullptr, false);
    ASSERT_TRUE(api.is_object()) << relay->admin_get("/api/v1/tcp");
    bool listed = false;
    for (const auto& n : api["names"])
        listed =
            listed || (n.value("name", "") == "ssh" && n.value("port", 0) == ssh_port &&
                       n.value("sni", "") == "ssh--acme.tcp.test" && n.value("published", false));
    EXPECT_TRUE(listed) << api.dump();
    EXPECT_NE(audit().find(fmt::format("\"port\":\"{}\"", ssh_port)), std::string::npos) << audit();
}

TEST_F(RelayTcp, TlsIsRoutedBySniToTheOriginWithoutBeingTerminated) {
    start(2);
    // The origin's own certificate and key: the relay never sees the key.
    const std::string key = home->file("origin.key"), cert = home->file("origin.pem");
    auto made =
        run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=origin.test"});
    ASSERT_TRUE(made.ok()) << made.describe();
    const auto origin_port = free_port_range(1);
    auto origin = spawn_cli("/usr/bin/openssl",
                            {"s_server", "-accept", fmt::format("127.0.0.1:{}", origin_port),
                             "-cert", cert, "-key", key, "-rev"},
                            home->path(), home->file("origin.log"), home->file("origin.log"));
    ASSERT_TRUE(origin) << origin.error().message;
    ASSERT_TRUE(eventually(
        [&] {
            const int fd = connect_tcp("127.0.0.1", origin_port, 200);
            if (fd >= 0) ::close(fd);
            return fd >= 0;
        },
        10s));
    connect("tls", {{"tls", origin_port}});
    ASSERT_NE(port_of("tls"), 0) << client_log();

    // Through the relay's public port, by name, verified against the
    // origin's certificate.
    run_options s_client_options;
    s_client_options.timeout = 15s;
    auto s_client = [&](const std::string& server_name) {
        return run({"bash", "-c",
                    fmt::format("(printf 'hello relay\\n'; sleep 0.5) | openssl s_client -connect "
                                "127.0.0.1:{} -servername {} -CAfile {} -verify_return_error "
                                "-brief 2>&1",
                                relay->public_port(), server_name, cert)},
                   s_client_options);
    };
    auto r = s_client("tls--acme.tcp.test");
    EXPECT_NE(r.out.find("Peer certificate: CN = origin.test"), std::string::npos)
        << r.describe() << r.out << relay->log();
    EXPECT_NE(r.out.find("Verification: OK"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("yaler olleh"), std::string::npos) << r.out;
    // HTTP on the same port is served as before.
    auto http =
        http_request(relay->public_port(),
                     "GET /t/acme/nothing/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    ASSERT_TRUE(http) << http.error().message;
    EXPECT_EQ(http->status, 503) << http->raw;
    // A name nobody publishes: an unrecognized_name alert, and audited.
    auto none = s_client("other--acme.tcp.test");
    EXPECT_EQ(none.out.find("olleh"), std::string::npos) << none.out;
    EXPECT_TRUE(eventually(
        [&] {
            return audit().find("\"tcp_refused\"") != std::string::npos &&
                   audit().find("tunnel_offline") != std::string::npos;
        },
        5s))
        << audit();
}

TEST_F(RelayTcp, ExhaustedRangeAndDisallowedNameAreRefusedAndAudited) {
    start(1);
    auto echo = echo_server::start();
    ASSERT_TRUE(echo) << echo.error().message;
    connect("one,two",
            {{"one", (*echo)->port()}, {"two", (*echo)->port()}, {"three", (*echo)->port()}});
    ASSERT_TRUE(eventually([&] { return count("published") == 1 && count("refused") >= 2; }, 20s))
        << client_log();
    const auto published = events("published")[0];
    EXPECT_EQ(published.value("port", 0), first_port);
    EXPECT_EQ(published.value("proto", ""), "tcp");
    ASSERT_TRUE(eventually(
        [&] {
            const auto a = audit();
            return a.find("ports_exhausted") != std::string::npos &&
                   a.find("no free port in tcp.ports") != std::string::npos &&
                   a.find("does not allow the name \\\"three\\\"") != std::string::npos;
        },
        10s))
        << audit() << relay->log();
    // The one that got a port carries bytes.
    const int fd = connect_tcp("127.0.0.1", first_port);
    ASSERT_GE(fd, 0);
    auto back = exchange(fd, "ping", 5000);
    ::close(fd);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, "ping");
}

TEST_F(RelayTcp, HostileClientHellosAreRefusedWithinTheDeadline) {
    start(1);
    auto send_all = [](int fd, const std::string& data) {
        return ::send(fd, data.data(), data.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(data.size());
    };
    // Garbage after a handshake record header; a record over 16 KiB; a
    // ClientHello whose lengths lie: each refused at once with an alert.
    std::string lying = tunnel::testing::client_hello_record("x--acme.tcp.test");
    lying[6] = '\x7f';  // the handshake message's length: far past the record
    for (const auto& bytes : {std::string("\x16\x03\x01\x00\x10", 5) + std::string(16, '\xff'),
                              std::string("\x16\x03\x01\x7f\xff", 5), lying}) {
        const int fd = connect_tcp("127.0.0.1", relay->public_port());
        ASSERT_GE(fd, 0);
        const auto t0 = steady::now();
        ASSERT_TRUE(send_all(fd, bytes));
        const auto answer = read_some(fd, 3s);
        // At once (bad_client_hello, below), well before the 1 s deadline
        // even on a loaded machine.
        EXPECT_LT(steady::now() - t0, 2500ms);
        ASSERT_GE(answer.size(), 7u) << "no alert";
        EXPECT_EQ(answer[0], '\x15');
        ::close(fd);
    }
    // Truncated (half a ClientHello, then nothing) and slow (a byte every
    // 200 ms): cut off at tcp.client_hello_timeout (1 s).
    const auto whole = tunnel::testing::client_hello_record("x--acme.tcp.test");
    {
        const int fd = connect_tcp("127.0.0.1", relay->public_port());
        ASSERT_GE(fd, 0);
        const auto t0 = steady::now();
        ASSERT_TRUE(send_all(fd, whole.substr(0, whole.size() / 2)));
        EXPECT_TRUE(closed_within(fd, 3s));
        const auto took = steady::now() - t0;
        EXPECT_GE(took, 900ms);
        EXPECT_LT(took, 4s);
        ::close(fd);
    }
    {
        const int fd = connect_tcp("127.0.0.1", relay->public_port());
        ASSERT_GE(fd, 0);
        const auto t0 = steady::now();
        bool cut = false;
        for (std::size_t i = 0; i < whole.size() && !cut; ++i) {
            if (!send_all(fd, whole.substr(i, 1))) break;
            cut = closed_within(fd, 200ms);
        }
        EXPECT_TRUE(cut || closed_within(fd, 3s));
        EXPECT_LT(steady::now() - t0, 4s);
        ::close(fd);
    }
    ASSERT_TRUE(eventually(
        [&] {
            const auto a = audit();
            return a.find("bad_client_hello") != std::string::npos &&
                   a.find("client_hello_timeout") != std::string::npos;
        },
        5s))
        << audit();
    // The relay still serves HTTP.
    auto http = http_request(relay->public_port(),
                             "GET /t/acme/x/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    ASSERT_TRUE(http) << http.error().message;
    EXPECT_EQ(http->status, 503);
}

TEST_F(RelayTcp, AReconnectKeepsItsPort) {
    start(3);
    auto echo = echo_server::start();
    ASSERT_TRUE(echo) << echo.error().message;
    auto proxy = fault_proxy::start(relay->public_port());
    ASSERT_TRUE(proxy) << proxy.error().message;
    connect("db", {{"db", (*echo)->port()}}, 1,
            fmt::format("ws://127.0.0.1:{}/v1/tunnel", (*proxy)->port()));
    const auto port = port_of("db");
    ASSERT_NE(port, 0) << client_log();
    // The tunnel drops; the client comes back with its lease.
    (*proxy)->set_mode(fault_mode::drop);
    (*proxy)->reset_all();
    std::this_thread::sleep_for(500ms);
    (*proxy)->set_mode(fault_mode::pass);
    ASSERT_TRUE(eventually([&] { return count("published") >= 2; }, 20s))
        << client_log() << relay->log();
    const auto again = events("published").back();
    EXPECT_EQ(again.value("port", 0), port) << client_log();
    // The relay's view: the same port, published again.
    ASSERT_TRUE(eventually(
        [&] {
            const auto api = nlohmann::json::parse(relay->admin_get("/api/v1/tcp"), nullptr, false);
            if (!api.is_object()) return false;
            for (const auto& n : api["names"])
                if (n.value("name", "") == "db" && n.value("published", false))
                    return n.value("port", 0) == port;
            return false;
        },
        10s))
        << relay->admin_get("/api/v1/tcp");
    ASSERT_TRUE(eventually(
        [&] {
            const int fd = connect_tcp("127.0.0.1", port, 1000);
            if (fd < 0) return false;
            auto back = exchange(fd, "after the reconnect", 3000);
            ::close(fd);
            return back && *back == "after the reconnect";
        },
        10s))
        << relay->log();
}

}  // namespace
}  // namespace tunnel::test
