// A relay link in `tunnel up`: the `expose` names published through the
// first of its `relays`, over real `tunnel relay` processes sharing one
// token secret; when that relay dies the link fails over to the next one,
// which then serves the name; `tunnel ls` shows which relay carries it.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "forward_test_support.hpp"
#include "link/link_config.hpp"
#include "support/relay_fixture.hpp"
#include "support/streaming_origin.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using fwd::eventually;

class LinkRelay : public ::testing::Test {
  protected:
    void SetUp() override {
        auto a = relay_fixture::start({});
        ASSERT_TRUE(a) << a.error().message;
        relay_a.emplace(std::move(*a));
        relay_options ob;
        ob.share_secret_of = relay_a->secret_path();
        auto b = relay_fixture::start(std::move(ob));
        ASSERT_TRUE(b) << b.error().message;
        relay_b.emplace(std::move(*b));
        auto org = streaming_origin::start();
        ASSERT_TRUE(org) << org.error().message;
        origin = std::move(*org);
        auto h = temp_dir::create("tunnel-up-relay");
        ASSERT_TRUE(h);
        home.emplace(std::move(*h));
        auto tok = relay_a->mint("alice", "llm");
        ASSERT_TRUE(tok) << tok.error().message;
        socket_path = home->file("control.sock");
        file = home->file("links.yaml");
        ASSERT_TRUE(write_text_file(
            file, fmt::format("links:\n"
                              "  llm:\n"
                              "    relays: [{}, {}]\n"
                              "    token_file: {}\n"
                              "    expose: {{llm: 127.0.0.1:{}}}\n"
                              "    keepalive: 500ms\n"
                              "    failover: {{after_failures: 2}}\n"
                              "control: {{socket: {}}}\n",
                              relay_a->attach_url(), relay_b->attach_url(),
                              relay_a->token_file(*tok), origin->port(), socket_path)));
    }
    void TearDown() override {
        if (up && up->running()) up->terminate();
    }
    void start_up() {
        auto c = spawn_tunnel({"-v", "up", file}, home->path(), home->file("stdout"),
                              home->file("stderr"));
        ASSERT_TRUE(c) << c.error().message;
        up.emplace(std::move(*c));
    }
    std::string err() const { return read_text_file(home->file("stderr")).value_or(""); }
    nlohmann::json ls() {
        auto r = run_tunnel({"ls", "--control", socket_path, "--json"});
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        return j.is_discarded() ? nlohmann::json() : j["links"][0];
    }
    int get(const relay_fixture& relay) {
        auto r = http_request(relay.public_port(),
                              "GET /t/alice/llm/hello HTTP/1.1\r\nHost: x\r\n\r\n", 5s);
        return r ? r->status : 0;
    }

    std::optional<relay_fixture> relay_a, relay_b;
    std::unique_ptr<streaming_origin> origin;
    std::optional<temp_dir> home;
    std::string socket_path, file;
    std::optional<child_process> up;
};

TEST_F(LinkRelay, PublishesThroughTheFirstRelayAndFailsOverToTheNext) {
    start_up();
    ASSERT_TRUE(relay_a->wait_published("alice", "llm", 15s)) << err() << relay_a->log();
    EXPECT_EQ(get(*relay_a), 200);
    auto l = ls();
    EXPECT_EQ(l["state"], "up") << l.dump(2);
    EXPECT_EQ(l["transport"]["index"], 0) << l.dump(2);
    EXPECT_EQ(l["transport"]["type"], "relay") << l.dump(2);
    EXPECT_TRUE(l["target"].is_null());
    // Only the active relay routes the name to the origin. (With parallel
    // start the link may have published through B first, until A came up:
    // B then holds the name for that lease and queues callers for it.)
    EXPECT_NE(get(*relay_b), 200);

    relay_a.reset();  // the relay process dies
    ASSERT_TRUE(relay_b->wait_published("alice", "llm", 15s)) << err() << relay_b->log();
    EXPECT_TRUE(eventually([&] { return get(*relay_b) == 200; }, 5s)) << err();
    l = ls();
    EXPECT_EQ(l["transport"]["index"], 1) << l.dump(2);
    EXPECT_GE(l["switches"].get<int>(), 1);
}

TEST_F(LinkRelay, ASwitchMovesTheNameToTheOtherRelay) {
    start_up();
    ASSERT_TRUE(relay_a->wait_published("alice", "llm", 15s)) << err();
    auto sw = run_tunnel({"switch", "--control", socket_path, "llm", "relay1"});
    ASSERT_EQ(sw.exit_code, 0) << sw.err << sw.out;
    ASSERT_TRUE(relay_b->wait_published("alice", "llm", 15s)) << err();
    EXPECT_TRUE(eventually([&] { return get(*relay_b) == 200; }, 5s)) << err();
    // The relay it left no longer routes the name.
    EXPECT_TRUE(relay_a->wait_published("alice", "llm", 10s, false)) << relay_a->log();
}

TEST(LinkRelayConfig, RelayLinksAreCheckedWithPathAndLine) {
    auto r = link::parse_links_file(
        "links:\n  llm:\n    relays: [wss://a.example/v1/tunnel]\n"
        "    forwards: ['-L 1:x:2']\n",
        "links.yaml");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("links.llm.token_file: missing"), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("links.llm.expose: missing"), std::string::npos);
    EXPECT_NE(r.error().message.find("links.llm.forwards: a relay link publishes"),
              std::string::npos);
    r = link::parse_links_file(
        "links:\n  llm:\n    relays: [http://a.example/, "
        "wss://b.example/v1/tunnel]\n    token_file: t\n"
        "    expose: {LLM_: 127.0.0.1:1}\n",
        "links.yaml");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("links.llm.relays[0]"), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("links.llm.expose.LLM_"), std::string::npos)
        << r.error().message;
    r = link::parse_links_file(
        "links:\n  llm:\n    relays: [wss://a.example/v1/tunnel, "
        "wss://b.example/v1/tunnel]\n    token_file: t\n"
        "    expose: {llm: 127.0.0.1:11434}\n",
        "links.yaml");
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->links[0].transports.size(), 2u);
    EXPECT_EQ(r->links[0].transports[0].name, "a.example");
    EXPECT_EQ(r->links[0].transports[1].type, link::transport_type::relay);
    ASSERT_EQ(r->links[0].forwards.size(), 1u);
    EXPECT_EQ(r->links[0].forwards[0].kind, forward::forward_kind::remote);
}

}  // namespace
}  // namespace tunnel::test
