#include "link/link_config.hpp"

#include <gtest/gtest.h>

namespace tunnel::link {
namespace {

// The issue's example file, verbatim: its shape is a contract.
constexpr const char* example = R"(links:
  db:
    target: deploy@db.internal          # as `tunnel exec` takes it; ssh_config aliases work
    options: {Port: 22, IdentityFile: ~/.ssh/id_ed25519, UserKnownHostsFile: ~/.ssh/known_hosts}  # ssh_config keywords
    transports:                         # priority order
      - {type: command, command: "cloudflared access ssh --hostname db.example.com"}
      - {type: jump, via: bastion.example.com}
      - {type: tcp}
    forwards: ["-L 127.0.0.1:5432:127.0.0.1:5432"]
    keepalive: 5s
    failover: {after_failures: 3, rtt_above: 500ms}
    return_after: 5                     # healthy probes on a preferred transport
  llm:
    relays: [wss://relay-a.example.com/v1/tunnel, wss://relay-b.example.com/v1/tunnel]
    token_file: ~/.config/tunnel/token
    expose: {llm: 127.0.0.1:11434}
control: {socket: /run/user/1000/tunnel/control.sock, status_addr: 127.0.0.1:9091}
)";

links_file ok(std::string_view text) {
    auto f = parse_links_file(text, "links.yaml");
    EXPECT_TRUE(f) << (f ? "" : f.error().message);
    return f ? *f : links_file{};
}

std::string err(std::string_view text) {
    auto f = parse_links_file(text, "links.yaml");
    EXPECT_FALSE(f) << text << "\nshould be refused";
    if (f) return "";
    EXPECT_EQ(f.error().code, core::errc::invalid_argument);
    return f.error().message;
}

TEST(LinkConfig, TheIssueExampleParses) {
    auto f = ok(example);
    ASSERT_EQ(f.links.size(), 2u);
    const auto& db = f.links[0];
    EXPECT_EQ(db.name, "db");
    EXPECT_EQ(db.target, "deploy@db.internal");
    ASSERT_EQ(db.options.size(), 3u);
    EXPECT_EQ(db.options[0], (std::pair<std::string, std::string>{"Port", "22"}));
    EXPECT_EQ(db.options[1].second, "~/.ssh/id_ed25519");
    ASSERT_EQ(db.transports.size(), 3u);
    EXPECT_EQ(db.transports[0].type, transport_type::command);
    EXPECT_EQ(db.transports[0].command, "cloudflared access ssh --hostname db.example.com");
    EXPECT_EQ(db.transports[1].type, transport_type::jump);
    EXPECT_EQ(db.transports[1].via, "bastion.example.com");
    EXPECT_EQ(db.transports[2].type, transport_type::tcp);
    EXPECT_EQ(db.transports[2].name, "tcp");
    ASSERT_EQ(db.forwards.size(), 1u);
    EXPECT_EQ(db.forwards[0].kind, forward::forward_kind::local);
    EXPECT_EQ(db.forwards[0].listen.port, 5432);
    EXPECT_EQ(db.keepalive, std::chrono::seconds(5));
    EXPECT_EQ(db.after_failures, 3);
    EXPECT_EQ(db.rtt_above, std::chrono::milliseconds(500));
    EXPECT_EQ(db.return_after, 5);
    EXPECT_EQ(db.probe_timeout(), std::chrono::milliseconds(500));
    const auto& llm = f.links[1];
    EXPECT_TRUE(llm.is_relay());
    EXPECT_EQ(llm.relays.size(), 2u);
    ASSERT_EQ(llm.expose.size(), 1u);
    EXPECT_EQ(llm.expose[0].first, "llm");
    EXPECT_EQ(f.control.socket, "/run/user/1000/tunnel/control.sock");
    EXPECT_EQ(f.control.status_addr, "127.0.0.1:9091");
    EXPECT_EQ(f.find("db"), &f.links[0]);
    EXPECT_EQ(f.find("nope"), nullptr);
}

TEST(LinkConfig, DefaultsAreOneTcpTransportAndNoForwards) {
    auto f = ok("links:\n  web: {target: web.example.com}\n");
    ASSERT_EQ(f.links.size(), 1u);
    ASSERT_EQ(f.links[0].transports.size(), 1u);
    EXPECT_EQ(f.links[0].transports[0].type, transport_type::tcp);
    EXPECT_EQ(f.links[0].keepalive, std::chrono::seconds(5));
    EXPECT_EQ(f.links[0].after_failures, 3);
    EXPECT_EQ(f.links[0].return_after, 5);
    EXPECT_EQ(f.links[0].start, start_policy::parallel);
    EXPECT_EQ(f.links[0].probe_timeout(), std::chrono::seconds(5));
    EXPECT_TRUE(f.control.socket.empty());
}

TEST(LinkConfig, ErrorsNameThePathAndTheLine) {
    auto m = err("links:\n  db:\n    target: h\n    failover: {after_failures: 0}\n");
    EXPECT_NE(m.find("links.yaml: links.db.failover.after_failures: must be a whole number from 1"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("(line 4)"), std::string::npos) << m;

    m = err("links:\n  db:\n    target: h\n    trasnports: []\n");
    EXPECT_NE(m.find("links.db.trasnports: unknown key (line 4)"), std::string::npos) << m;

    m =
        err("links:\n  db:\n    target: h\n    transports:\n      - {type: tcp}\n      - {type: "
            "carrier_pigeon}\n");
    EXPECT_NE(m.find("links.db.transports[1].type: unknown transport `carrier_pigeon`"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("(line 6)"), std::string::npos) << m;
}

TEST(LinkConfig, EveryProblemIsReportedAtOnce) {
    auto m =
        err("links:\n"
            "  a:\n"
            "    target: h\n"
            "    keepalive: 5 parsecs\n"
            "    forwards: [\"-X 1:2:3\", \"-L nonsense\"]\n"
            "  b:\n"
            "    transports: [{type: jump}]\n"
            "control: {socket: '', colour: blue}\n");
    EXPECT_NE(m.find("links.a.keepalive"), std::string::npos) << m;
    EXPECT_NE(m.find("links.a.forwards[0]: must start with -L, -R or -D"), std::string::npos) << m;
    EXPECT_NE(m.find("links.a.forwards[1]"), std::string::npos) << m;
    EXPECT_NE(m.find("links.b: needs `target`"), std::string::npos) << m;
    EXPECT_NE(m.find("links.b.transports[0].via: missing"), std::string::npos) << m;
    EXPECT_NE(m.find("control.colour: unknown key"), std::string::npos) << m;
    EXPECT_NE(m.find("control.socket: must be a path"), std::string::npos) << m;
}

TEST(LinkConfig, TransportsAreCheckedPerType) {
    auto f =
        ok("links:\n"
           "  x:\n"
           "    target: u@h:2222\n"
           "    transports:\n"
           "      - {type: http_connect, proxy: '127.0.0.1:8888'}\n"
           "      - {type: command, command: 'socat - TCP:%h:%p', name: via-socat}\n"
           "    forwards: ['-D 1080', '-R 0:localhost:80']\n"
           "    start: on_demand\n"
           "    switch_wait: 2s\n");
    ASSERT_EQ(f.links[0].transports.size(), 2u);
    EXPECT_EQ(f.links[0].transports[0].proxy, "127.0.0.1:8888");
    EXPECT_EQ(f.links[0].transports[1].name, "via-socat");
    EXPECT_EQ(f.links[0].forwards[0].kind, forward::forward_kind::dynamic);
    EXPECT_EQ(f.links[0].forwards[1].kind, forward::forward_kind::remote);
    EXPECT_EQ(f.links[0].start, start_policy::on_demand);
    EXPECT_EQ(f.links[0].switch_wait, std::chrono::seconds(2));

    auto m =
        err("links:\n  x:\n    target: h\n    transports: [{type: http_connect, proxy: "
            "nohost}]\n");
    EXPECT_NE(m.find("transports[0].proxy: must be host:port"), std::string::npos) << m;
    m = err("links:\n  x:\n    target: h\n    transports: [{type: tcp, via: b}]\n");
    EXPECT_NE(m.find("transports[0].via: not used by a tcp transport"), std::string::npos) << m;
    m = err("links:\n  x:\n    target: h\n    transports: [{type: tcp}, {type: tcp}]\n");
    EXPECT_NE(m.find("two transports are named `tcp`"), std::string::npos) << m;
}

TEST(LinkConfig, ProxyCredentialsComeFromAFileOrAnEnvironmentVariable) {
    auto f =
        ok("links:\n"
           "  x:\n"
           "    target: h\n"
           "    transports:\n"
           "      - {type: http_connect, proxy: 'p:3128', proxy_credentials_file: /run/p}\n"
           "      - {type: http_connect, name: b, proxy: 'p:3128', "
           "proxy_credentials_env: PROXY_CREDS}\n");
    EXPECT_EQ(f.links[0].transports[0].proxy_credentials_file, "/run/p");
    EXPECT_EQ(f.links[0].transports[1].proxy_credentials_env, "PROXY_CREDS");

    auto m =
        err("links:\n  x:\n    target: h\n    transports: [{type: http_connect, proxy: "
            "'p:1', proxy_credentials_env: 'alice:s3cret'}]\n");
    EXPECT_NE(m.find("proxy_credentials_env: must be the name of an environment variable"),
              std::string::npos)
        << m;
    m =
        err("links:\n  x:\n    target: h\n    transports: [{type: http_connect, proxy: 'p:1', "
            "proxy_credentials_env: A, proxy_credentials_file: /f}]\n");
    EXPECT_NE(m.find("set one of them"), std::string::npos) << m;
    m =
        err("links:\n  x:\n    target: h\n    transports: [{type: tcp, proxy_credentials_file: "
            "/f}]\n");
    EXPECT_NE(m.find("proxy_credentials_file: not used by a tcp transport"), std::string::npos)
        << m;
    // No inline user/password keys: the strict parser names them as unknown.
    m =
        err("links:\n  x:\n    target: h\n    transports: [{type: http_connect, proxy: 'p:1', "
            "password: x}]\n");
    EXPECT_NE(m.find("password: unknown key"), std::string::npos) << m;
}

TEST(LinkConfig, HostileInputIsRefusedNotCrashed) {
    EXPECT_NE(err("").find("empty"), std::string::npos);
    EXPECT_NE(err("links: [1, 2]\n").find("links: must be a mapping"), std::string::npos);
    EXPECT_NE(err("links:\n  '../../etc': {target: h}\n").find("a link name is"),
              std::string::npos);
    EXPECT_NE(err("links:\n  a: {target: '-oProxyCommand=x'}\n").find("links.a.target"),
              std::string::npos);
    EXPECT_NE(err("links: {a: {target: h}\n").find("invalid YAML"), std::string::npos);
    EXPECT_NE(err("links:\n  a: {target: h, options: {Port: [1, 2]}}\n")
                  .find("links.a.options.Port: must be a string"),
              std::string::npos);
    EXPECT_NE(err("links:\n  a: {target: h, keepalive: 1ms}\n").find("from 100ms to 1h"),
              std::string::npos);
    std::string big(2 << 20, '#');
    EXPECT_NE(err(big).find("larger than"), std::string::npos);
}

}  // namespace
}  // namespace tunnel::link

namespace tunnel::link {
namespace {

TEST(LinkConfig, ExecPoolIsOnByDefaultAndCanBeTurnedOff) {
    auto f = ok("links:\n  db: {target: db}\n  web: {target: web, exec_pool: false}\n");
    ASSERT_EQ(f.links.size(), 2u);
    EXPECT_TRUE(f.links[0].exec_pool);
    EXPECT_FALSE(f.links[1].exec_pool);
    EXPECT_NE(
        err("links:\n  db:\n    target: db\n    exec_pool: sometimes\n").find("links.db.exec_pool"),
        std::string::npos);
    EXPECT_NE(err("links:\n  llm:\n    relays: [wss://r.example.com/v1/tunnel]\n    token_file: "
                  "t\n    expose: {llm: 127.0.0.1:1}\n    exec_pool: true\n")
                  .find("links.llm.exec_pool"),
              std::string::npos);
}

}  // namespace
}  // namespace tunnel::link
