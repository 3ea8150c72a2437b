// `tunnel up` as a user runs it, driven over its control socket by `tunnel
// ls`, `status`, `switch`, `restart`, `events` and `down`, plus hostile
// requests written straight to the socket.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstring>

#include <gtest/gtest.h>

#include "forward_test_support.hpp"
#include "link/control_server.hpp"
#include "link_test_support.hpp"
#include "support/relay_fixture.hpp"

namespace tunnel::test::links {
namespace {

using fwd::eventually;

// A raw client of the control socket.
int dial(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

// Reads one line (without the newline); empty on EOF or timeout.
std::string read_line(int fd) {
    std::string line;
    char c;
    while (::recv(fd, &c, 1, 0) == 1) {
        if (c == '\n') return line;
        line += c;
    }
    return line;
}

void send_text(int fd, const std::string& s) {
    ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

class LinkControlCli : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd.emplace(std::move(*s));
        auto e = echo_server::start();
        ASSERT_TRUE(e) << e.error().message;
        echo = std::move(*e);
        auto h = temp_dir::create("tunnel-up-home");
        ASSERT_TRUE(h);
        home.emplace(std::move(*h));
        socket_path = home->file("run/control.sock");
        status_port = local_port();
        const auto file = home->file("links.yaml");
        ASSERT_TRUE(write_text_file(
            file, fmt::format("links:\n"
                              "  db:\n"
                              "    target: root@127.0.0.1\n"
                              "    options: {}\n"
                              "    transports:\n"
                              "      - {{type: command, name: socat, command: 'socat - "
                              "TCP:%h:%p'}}\n"
                              "      - {{type: tcp}}\n"
                              "    forwards: ['-L 127.0.0.1:{}:127.0.0.1:{}']\n"
                              "    keepalive: 1s\n"
                              "    return_after: 1\n"
                              "control: {{socket: {}, status_addr: '127.0.0.1:{}'}}\n",
                              fixture_options(*sshd), local_port(), echo->port(), socket_path,
                              status_port)));
        auto c = spawn_tunnel({"-v", "up", "-F", "/dev/null", file}, home->path(),
                              home->file("stdout"), home->file("stderr"));
        ASSERT_TRUE(c) << c.error().message;
        up.emplace(std::move(*c));
        ASSERT_TRUE(eventually([&] { return ::access(socket_path.c_str(), F_OK) == 0; }, 10s))
            << err();
    }
    void TearDown() override {
        if (up && up->running()) up->terminate();
    }
    std::string err() const { return read_text_file(home->file("stderr")).value_or(""); }
    run_result tunnel(std::vector<std::string> args) {
        args.insert(args.begin() + 1, {"--control", socket_path});
        return run_tunnel(args);
    }
    nlohmann::json ls() {
        auto r = tunnel({"ls", "--json"});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        return j.is_discarded() ? nlohmann::json() : j;
    }

    std::optional<sshd_fixture> sshd;
    std::unique_ptr<echo_server> echo;
    std::optional<temp_dir> home;
    std::string socket_path;
    uint16_t status_port = 0;
    std::optional<child_process> up;
};

TEST_F(LinkControlCli, LsStatusSwitchEventsAndDown) {
    struct stat st {};
    ASSERT_EQ(::stat(socket_path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    ASSERT_TRUE(eventually(
        [&] {
            auto l = ls()["links"][0];
            return l["state"] == "up" && l["transport"]["index"] == 0;
        },
        15s))
        << ls().dump(2) << err();
    auto j = ls();
    ASSERT_EQ(j["links"].size(), 1u);
    const auto& db = j["links"][0];
    EXPECT_EQ(db["name"], "db");
    EXPECT_EQ(db["transport"]["index"], 0);
    EXPECT_EQ(db["transport"]["type"], "command");
    EXPECT_TRUE(db.contains("rtt_ms"));
    EXPECT_TRUE(db["bytes"].contains("in"));
    const uint16_t lp = db["forwards"][0]["local_port"];
    EXPECT_TRUE(fwd::wait_round_trip("127.0.0.1", lp, 5s));

    auto text = tunnel({"ls"});
    EXPECT_EQ(text.exit_code, 0) << text.err;
    EXPECT_NE(text.out.find("NAME"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("socat#0"), std::string::npos) << text.out;

    auto status = tunnel({"status", "db"});
    EXPECT_EQ(status.exit_code, 0) << status.err;
    EXPECT_NE(status.out.find("tcp #1"), std::string::npos) << status.out;

    ASSERT_TRUE(
        eventually([&] { return ls()["links"][0]["transports"][1]["state"] == "up"; }, 10s));
    auto sw = tunnel({"switch", "db", "tcp", "--json"});
    EXPECT_EQ(sw.exit_code, 0) << sw.err;
    EXPECT_EQ(ls()["links"][0]["transport"]["type"], "tcp");
    EXPECT_TRUE(fwd::wait_round_trip("127.0.0.1", lp, 5s));

    auto bad = tunnel({"switch", "db", "warp"});
    EXPECT_EQ(bad.exit_code, 1);
    EXPECT_NE(bad.err.find("has no transport \"warp\""), std::string::npos) << bad.err;
    auto missing = tunnel({"status", "nope"});
    EXPECT_EQ(missing.exit_code, 1);
    EXPECT_NE(missing.err.find("no link named"), std::string::npos) << missing.err;

    // `tunnel events` follows the stream until the manager goes.
    const auto events_out = home->file("events.out");
    auto follower = spawn_tunnel({"events", "--control", socket_path}, home->path(), events_out,
                                 home->file("events.err"));
    ASSERT_TRUE(follower) << follower.error().message;
    ASSERT_TRUE(eventually(
        [&] {
            return read_text_file(events_out).value_or("").find("manager_started") !=
                   std::string::npos;
        },
        10s));

    // events: the recent ones first, then live ones.
    int ev = dial(socket_path);
    ASSERT_GE(ev, 0);
    send_text(ev, "{\"cmd\":\"events\"}\n");
    EXPECT_NE(read_line(ev).find("manager_started"), std::string::npos);
    auto rs = tunnel({"restart", "db"});
    EXPECT_EQ(rs.exit_code, 0) << rs.err;
    bool saw_restart = false;
    for (int i = 0; i < 200 && !saw_restart; ++i) {
        auto line = read_line(ev);
        if (line.empty()) break;
        saw_restart = line.find("\"restart\"") != std::string::npos;
    }
    EXPECT_TRUE(saw_restart);
    ::close(ev);

    auto down = tunnel({"down"});
    EXPECT_EQ(down.exit_code, 0) << down.err;
    auto code = up->wait(10s);
    ASSERT_TRUE(code) << "tunnel up did not stop\n" << err();
    EXPECT_EQ(*code, 0) << err();
    EXPECT_NE(::access(socket_path.c_str(), F_OK), 0) << "the socket file is removed";
    auto follower_code = follower->wait(5s);
    ASSERT_TRUE(follower_code) << "tunnel events did not end with the manager";
    EXPECT_EQ(*follower_code, 0);
    const auto followed = read_text_file(events_out).value_or("");
    EXPECT_NE(followed.find("\"type\":\"restart\""), std::string::npos) << followed;
    EXPECT_NE(followed.find("\"type\":\"switch\""), std::string::npos) << followed;
    EXPECT_NE(followed.find("manager_stopped"), std::string::npos) << followed;
    auto after = tunnel({"ls"});
    EXPECT_EQ(after.exit_code, 255);
    EXPECT_NE(after.err.find("no `tunnel up` is listening"), std::string::npos) << after.err;
}

// control.status_addr: /metrics says what `tunnel ls --json` says, /healthz
// follows the links, /api/v1/links is the ls document.
TEST_F(LinkControlCli, StatusAddrServesHealthMetricsAndLinks) {
    auto get = [&](const std::string& path) {
        auto r = http_request(status_port,
                              fmt::format("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path), 5s);
        return r ? *r : http_reply{};
    };
    ASSERT_TRUE(eventually([&] { return get("/healthz").status == 200; }, 15s))
        << get("/healthz").raw << err();
    // On the preferred transport first: the plain TCP one can come up before
    // the socat one, and switching to where the link already is counts nothing.
    ASSERT_TRUE(eventually([&] { return ls()["links"][0]["transport"]["index"] == 0; }, 10s))
        << ls().dump();
    ASSERT_EQ(tunnel({"switch", "db", "tcp"}).exit_code, 0);
    ASSERT_TRUE(eventually([&] { return ls()["links"][0]["transport"]["index"] == 1; }, 10s));
    const auto db = ls()["links"][0];
    const auto metrics = get("/metrics");
    ASSERT_EQ(metrics.status, 200) << metrics.raw;
    for (const std::string& line : std::vector<std::string>{
             "tunnel_link_up{link=\"db\"} 1", "tunnel_link_state{link=\"db\",state=\"up\"} 1",
             "tunnel_link_state{link=\"db\",state=\"down\"} 0",
             "tunnel_link_active_transport{link=\"db\"} 1",
             fmt::format("tunnel_link_switches_total{{link=\"db\"}} {}", db["switches"].get<int>()),
             "tunnel_link_transport_up{link=\"db\",transport=\"tcp\"} 1"})
        EXPECT_NE(metrics.body.find(line), std::string::npos) << line << "\n" << metrics.body;
    EXPECT_GE(db["switches"].get<int>(), 1);
    auto links = nlohmann::json::parse(get("/api/v1/links").body, nullptr, false);
    ASSERT_FALSE(links.is_discarded());
    EXPECT_EQ(links["links"][0]["name"], "db");
    EXPECT_EQ(links["links"][0]["transport"]["index"], 1);
    // Only IP literals and localhost in Host (DNS rebinding).
    auto rebound =
        http_request(status_port, "GET /metrics HTTP/1.1\r\nHost: evil.example\r\n\r\n", 5s);
    ASSERT_TRUE(rebound);
    EXPECT_NE(rebound->status, 200);

    // The server goes away: the link is down and /healthz says which.
    sshd.reset();
    ASSERT_TRUE(eventually([&] { return get("/healthz").status == 503; }, 15s)) << err();
    EXPECT_NE(get("/healthz").body.find("db"), std::string::npos);
    EXPECT_NE(get("/metrics").body.find("tunnel_link_up{link=\"db\"} 0"), std::string::npos);
}

TEST_F(LinkControlCli, MalformedAndHostileRequestsGetAnErrorLine) {
    int fd = dial(socket_path);
    ASSERT_GE(fd, 0);
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"not json at all", "not a JSON object"},
        {"[1,2,3]", "must be a JSON object"},
        {"{\"cmd\":\"rm -rf /\"}", "unknown cmd"},
        {"{\"cmd\":\"status\"}", "needs \"link\""},
        {"{\"cmd\":\"status\",\"link\":\"../../etc/passwd\"}", "not a link name"},
        {"{\"cmd\":\"switch\",\"link\":\"db\"}", "needs \"transport\""},
        {"{\"cmd\":\"ls\",\"extra\":1}", "unknown key"},
        {"{\"cmd\":42}", "must be a string"},
        {"{\"cmd\":\"ls\",\"id\":{\"a\":1}}", "\"id\" must be"},
        {std::string(5000, '[') + std::string(5000, ']'), "nested deeper"},
        {"{\"cmd\":\"ls\",\"link\":\"\xff\xfe\"}", "not a JSON object"},
    };
    for (const auto& [request, expected] : cases) {
        send_text(fd, request + "\n");
        auto line = read_line(fd);
        auto j = nlohmann::json::parse(line, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << request << " -> " << line;
        EXPECT_FALSE(j["ok"].get<bool>()) << request;
        EXPECT_NE(j["error"].get<std::string>().find(expected), std::string::npos)
            << request << " -> " << line;
    }
    // The same connection still answers a good request, with its id.
    send_text(fd, "{\"cmd\":\"ls\",\"id\":7}\n");
    auto j = nlohmann::json::parse(read_line(fd));
    EXPECT_TRUE(j["ok"].get<bool>());
    EXPECT_EQ(j["id"], 7);
    // An over-long line is answered and the connection closed.
    send_text(fd, std::string(20'000, 'x') + "\n");
    auto too_long = read_line(fd);
    EXPECT_NE(too_long.find("longer than"), std::string::npos) << too_long;
    EXPECT_EQ(read_line(fd), "") << "closed after an over-long line";
    ::close(fd);
    // A client that connects and goes away, many times: the manager is fine.
    for (int i = 0; i < 50; ++i) {
        int c = dial(socket_path);
        ASSERT_GE(c, 0);
        send_text(c, "{\"cmd\":");
        ::close(c);
    }
    EXPECT_TRUE(up->running()) << err();
    EXPECT_EQ(tunnel({"ls"}).exit_code, 0);
    // A second manager on the same socket is refused, and the first keeps it.
    auto second = run_tunnel({"up", "-F", "/dev/null", home->file("links.yaml")});
    EXPECT_EQ(second.exit_code, 2) << second.err;
    EXPECT_NE(second.err.find("another `tunnel up` is listening"), std::string::npos) << second.err;
    EXPECT_EQ(tunnel({"ls"}).exit_code, 0);
}

TEST(LinkUpCli, CheckReportsFileErrorsWithPathAndLine) {
    auto h = temp_dir::create("tunnel-up-check");
    ASSERT_TRUE(h);
    const auto file = h->file("links.yaml");
    ASSERT_TRUE(write_text_file(file, "links:\n  db:\n    target: h\n    keepalive: soon\n"));
    auto r = run_tunnel({"up", "--check", "--control", h->file("c.sock"), file});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("links.yaml: links.db.keepalive"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("(line 4)"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tunnel::test::links

namespace tunnel::test::links {
namespace {

TEST(LinkUpCli, AStatusAddressOffLoopbackNeedsAToken) {
    auto home = temp_dir::create("tunnel-up-status");
    ASSERT_TRUE(home);
    const auto file = home->file("links.yaml");
    ASSERT_TRUE(write_text_file(file, "links:\n  db:\n    target: root@127.0.0.1\n"));
    auto r =
        run_tunnel({"up", "--control", home->file("c.sock"), "--status-addr", "0.0.0.0:0", file});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("--status-token-file"), std::string::npos) << r.err;
    r = run_tunnel({"up", "--control", home->file("c.sock"), "--status-addr", "localhost:x", file});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("HOST:PORT"), std::string::npos) << r.err;
}

TEST(LinkControlSocket, StaleSocketIsReplacedAndAFileIsNeverRemoved) {
    auto h = temp_dir::create("tunnel-control-sock");
    ASSERT_TRUE(h);
    // A socket left by a manager that died: bound, never unlinked, nobody listening.
    const auto stale = h->file("stale.sock");
    {
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, stale.c_str(), sizeof addr.sun_path - 1);
        ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        ::close(fd);
    }
    EXPECT_TRUE(link::control_server::check_available(stale));
    asio::io_context io;
    auto m = std::make_shared<link::manager>(io.get_executor());
    auto server = link::control_server::open(io.get_executor(), stale, m);
    ASSERT_TRUE(server) << server.error().message;
    struct stat st {};
    ASSERT_EQ(::stat(stale.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    // Now it answers: a second one is refused.
    auto again = link::control_server::check_available(stale);
    ASSERT_FALSE(again);
    EXPECT_NE(again.error().message.find("another `tunnel up`"), std::string::npos);
    (*server)->stop();
    EXPECT_NE(::access(stale.c_str(), F_OK), 0);

    const auto file = h->file("precious.txt");
    ASSERT_TRUE(write_text_file(file, "keep me"));
    auto refused = link::control_server::open(io.get_executor(), file, m);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("is not a socket"), std::string::npos);
    EXPECT_EQ(read_text_file(file).value_or(""), "keep me");
}

}  // namespace
}  // namespace tunnel::test::links
