#include "forward/socks.hpp"

#include <sys/stat.h>

#include <fstream>

#include <gtest/gtest.h>

namespace tunnel::forward {
namespace {

using status = socks_handshake::status;

std::string bytes(std::initializer_list<int> b) {
    std::string s;
    for (int c : b) s.push_back(static_cast<char>(c));
    return s;
}

TEST(Socks5, NoAuthConnectIpv4) {
    socks_handshake hs;
    auto g = hs.feed(bytes({5, 1, 0}));
    EXPECT_EQ(g.state, status::need_more);
    EXPECT_EQ(g.reply, bytes({5, 0}));
    auto r = hs.feed(bytes({5, 1, 0, 1, 10, 0, 0, 7, 0x1f, 0x90}));
    ASSERT_EQ(r.state, status::ready) << r.error;
    EXPECT_EQ(hs.target().host, "10.0.0.7");
    EXPECT_EQ(hs.target().port, 8080);
    EXPECT_EQ(hs.version(), 5);
    EXPECT_EQ(hs.final_reply(socks_reply::succeeded), bytes({5, 0, 0, 1, 0, 0, 0, 0, 0, 0}));
    EXPECT_EQ(hs.final_reply(socks_reply::connection_refused)[1], 5);
}

TEST(Socks5, DomainAndIpv6AndByteByByte) {
    std::string all =
        bytes({5, 2, 2, 0}) + bytes({5, 1, 0, 3, 11}) + "example.org" + bytes({0, 80});
    socks_handshake hs;
    std::string replies;
    socks_handshake::step last;
    for (char c : all) {
        last = hs.feed(std::string(1, c));
        replies += last.reply;
        if (last.state != status::need_more) break;
    }
    ASSERT_EQ(last.state, status::ready) << last.error;
    EXPECT_EQ(replies, bytes({5, 0}));
    EXPECT_EQ(hs.target().host, "example.org");
    EXPECT_EQ(hs.target().port, 80);

    socks_handshake v6;
    (void)v6.feed(bytes({5, 1, 0}));
    std::string req = bytes({5, 1, 0, 4});
    req += std::string(15, '\0') + bytes({1});
    req += bytes({1, 0xbb});
    auto r = v6.feed(req);
    ASSERT_EQ(r.state, status::ready);
    EXPECT_EQ(v6.target().host, "::1");
    EXPECT_EQ(v6.target().port, 443);
}

TEST(Socks5, GreetingAndRequestInOneSegmentPlusEarlyData) {
    socks_handshake hs;
    auto r = hs.feed(bytes({5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 22}) + "SSH-2.0-early");
    ASSERT_EQ(r.state, status::ready);
    EXPECT_EQ(r.reply, bytes({5, 0}));
    EXPECT_EQ(hs.take_leftover(), "SSH-2.0-early");
}

TEST(Socks5, BindAndUdpAreRefusedWithCommandNotSupported) {
    for (int cmd : {2, 3, 9}) {
        socks_handshake hs;
        (void)hs.feed(bytes({5, 1, 0}));
        auto r = hs.feed(bytes({5, cmd, 0, 1, 1, 2, 3, 4, 0, 80}));
        EXPECT_EQ(r.state, status::failed);
        EXPECT_EQ(r.reply, bytes({5, 7, 0, 1, 0, 0, 0, 0, 0, 0})) << cmd;
        EXPECT_NE(r.error.find("only CONNECT"), std::string::npos);
    }
}

TEST(Socks5, UnknownAddressTypeAndNoAcceptableMethod) {
    socks_handshake hs;
    (void)hs.feed(bytes({5, 1, 0}));
    auto r = hs.feed(bytes({5, 1, 0, 7, 1, 2}));
    EXPECT_EQ(r.state, status::failed);
    EXPECT_EQ(r.reply[1], 8);

    socks_handshake gss;
    auto g = gss.feed(bytes({5, 1, 1}));  // GSSAPI only
    EXPECT_EQ(g.state, status::failed);
    EXPECT_EQ(g.reply, bytes({5, 0xff}));
}

TEST(Socks5, UsernamePassword) {
    socks_credentials c{"alice", "s3cret"};
    socks_handshake hs(c);
    auto g = hs.feed(bytes({5, 2, 0, 2}));
    EXPECT_EQ(g.reply, bytes({5, 2}));
    auto a = hs.feed(bytes({1, 5}) + "alice" + bytes({6}) + "s3cret");
    EXPECT_EQ(a.state, status::need_more);
    EXPECT_EQ(a.reply, bytes({1, 0}));
    auto r = hs.feed(bytes({5, 1, 0, 1, 1, 1, 1, 1, 0, 53}));
    EXPECT_EQ(r.state, status::ready);

    socks_handshake bad(c);
    (void)bad.feed(bytes({5, 1, 2}));
    auto f = bad.feed(bytes({1, 5}) + "alice" + bytes({5}) + "wrong");
    EXPECT_EQ(f.state, status::failed);
    EXPECT_EQ(f.reply, bytes({1, 1}));
    EXPECT_EQ(f.error.find("wrong"), std::string::npos) << "never log the password";

    socks_handshake noauth(c);
    auto n = noauth.feed(bytes({5, 1, 0}));  // offers only no-auth
    EXPECT_EQ(n.state, status::failed);
    EXPECT_EQ(n.reply, bytes({5, 0xff}));
}

TEST(Socks5, AnUntrustedUserNameIsEscapedBeforeItReachesTheLog) {
    socks_credentials c{"alice", "s3cret"};
    socks_handshake hs(c);
    (void)hs.feed(bytes({5, 1, 2}));
    // A user name that would forge a log line and clear the terminal.
    const std::string user = "x\nINFO admin logged in\x1b[2J";
    auto f = hs.feed(bytes({1, static_cast<int>(user.size())}) + user + bytes({1}) + "p");
    EXPECT_EQ(f.state, status::failed);
    EXPECT_EQ(f.error.find('\n'), std::string::npos) << f.error;
    EXPECT_EQ(f.error.find('\x1b'), std::string::npos) << f.error;
    EXPECT_NE(f.error.find("x\\x0aINFO admin logged in\\x1b[2J"), std::string::npos) << f.error;
}

TEST(Socks4, Socks4AndSocks4a) {
    socks_handshake v4;
    auto r = v4.feed(bytes({4, 1, 0, 80, 192, 168, 1, 2}) + "user" + bytes({0}));
    ASSERT_EQ(r.state, status::ready);
    EXPECT_EQ(v4.target().host, "192.168.1.2");
    EXPECT_EQ(v4.target().port, 80);
    EXPECT_EQ(v4.final_reply(socks_reply::succeeded), bytes({0, 0x5a, 0, 0, 0, 0, 0, 0}));
    EXPECT_EQ(v4.final_reply(socks_reply::host_unreachable)[1], 0x5b);

    socks_handshake v4a;
    auto a = v4a.feed(bytes({4, 1, 1, 0xbb, 0, 0, 0, 1, 0}) + "db.internal" + bytes({0}));
    ASSERT_EQ(a.state, status::ready);
    EXPECT_EQ(v4a.target().host, "db.internal");
    EXPECT_EQ(v4a.target().port, 443);

    socks_handshake bind;
    auto b = bind.feed(bytes({4, 2, 0, 80, 1, 2, 3, 4, 0}));
    EXPECT_EQ(b.state, status::failed);
    EXPECT_EQ(b.reply[1], 0x5b);

    socks_handshake need_auth(socks_credentials{"u", "p"});
    auto n = need_auth.feed(bytes({4, 1, 0, 80, 1, 2, 3, 4, 0}));
    EXPECT_EQ(n.state, status::failed);
}

TEST(Socks, GarbageIsRefusedWithoutAReplyAndBounded) {
    socks_handshake http;
    auto h = http.feed("GET / HTTP/1.1\r\n");
    EXPECT_EQ(h.state, status::failed);
    EXPECT_TRUE(h.reply.empty());
    EXPECT_NE(h.error.find("HTTP request"), std::string::npos);

    socks_handshake tls;
    EXPECT_EQ(tls.feed("\x16\x03\x01").state, status::failed);

    // An endless SOCKS4 user id is cut off.
    socks_handshake endless;
    auto e = endless.feed(bytes({4, 1, 0, 80, 1, 2, 3, 4}) + std::string(2000, 'a'));
    EXPECT_EQ(e.state, status::failed);

    // Found by the fuzzer: a SOCKS4a name over 255 bytes arriving in one piece.
    socks_handshake long_name;
    auto l =
        long_name.feed(bytes({4, 1, 1, 0xbb, 0, 0, 0, 1, 0}) + std::string(300, 'h') + bytes({0}));
    EXPECT_EQ(l.state, status::failed);

    socks_handshake after;
    (void)after.feed("x");
    EXPECT_EQ(after.feed(bytes({5, 1, 0})).state, status::failed) << "stays failed";
}

TEST(SocksCredentials, LoadsOneLineAndRefusesLooseModes) {
    char dir_template[] = "/tmp/socks-test-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir_template));
    const std::string path = std::string(dir_template) + "/pass";
    { std::ofstream(path) << "bob:pa:ss\n"; }
    ::chmod(path.c_str(), 0644);
    auto loose = load_socks_credentials(path);
    ASSERT_FALSE(loose);
    EXPECT_NE(loose.error().message.find("chmod 600"), std::string::npos);
    ::chmod(path.c_str(), 0600);
    auto c = load_socks_credentials(path);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->user, "bob");
    EXPECT_EQ(c->password, "pa:ss");
    { std::ofstream(path) << "nocolon\n"; }
    EXPECT_FALSE(load_socks_credentials(path));
    EXPECT_FALSE(load_socks_credentials(path + ".missing"));
    std::remove(path.c_str());
    ::rmdir(dir_template);
}

}  // namespace
}  // namespace tunnel::forward
