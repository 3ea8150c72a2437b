#include "forward/forward_spec.hpp"

#include <gtest/gtest.h>

namespace tunnel::forward {
namespace {

forward_spec ok(forward_kind k, std::string_view text) {
    auto s = parse_forward_spec(k, text);
    EXPECT_TRUE(s) << text << ": " << (s ? "" : s.error().message);
    return s ? *s : forward_spec{};
}

std::string err(forward_kind k, std::string_view text) {
    auto s = parse_forward_spec(k, text);
    EXPECT_FALSE(s) << text << " should be refused";
    if (s) return "";
    EXPECT_EQ(s.error().code, core::errc::invalid_argument);
    return s.error().message;
}

TEST(ForwardSpec, LocalPortHostPort) {
    auto s = ok(forward_kind::local, "8080:db.internal:5432");
    EXPECT_EQ(s.listen.host, "");
    EXPECT_EQ(s.listen.port, 8080);
    EXPECT_EQ(s.target.host, "db.internal");
    EXPECT_EQ(s.target.port, 5432);
    EXPECT_EQ(s.text, "-L 8080:db.internal:5432");
    EXPECT_EQ(s.describe(), "-L localhost:8080 -> db.internal:5432");
}

TEST(ForwardSpec, LocalWithBindAddressAndIpv6Brackets) {
    auto s = ok(forward_kind::local, "[::1]:8080:[2001:db8::5]:443");
    EXPECT_EQ(s.listen.host, "::1");
    EXPECT_EQ(s.target.host, "2001:db8::5");
    EXPECT_EQ(s.target.port, 443);
    EXPECT_EQ(s.listen.to_string(), "[::1]:8080");
    auto star = ok(forward_kind::local, "*:8080:h:1");
    EXPECT_EQ(star.listen.host, "*");
    auto v4 = ok(forward_kind::local, "0.0.0.0:1:h:2");
    EXPECT_EQ(v4.listen.host, "0.0.0.0");
}

TEST(ForwardSpec, UnixSocketsWhereOpenSshAllowsThem) {
    auto a = ok(forward_kind::local, "/tmp/l.sock:host:80");
    EXPECT_EQ(a.listen.path, "/tmp/l.sock");
    EXPECT_EQ(a.target.port, 80);
    auto b = ok(forward_kind::local, "8080:/run/app.sock");
    EXPECT_EQ(b.listen.port, 8080);
    EXPECT_EQ(b.target.path, "/run/app.sock");
    auto c = ok(forward_kind::local, "/tmp/a.sock:/run/b.sock");
    EXPECT_TRUE(c.listen.is_unix());
    EXPECT_TRUE(c.target.is_unix());
    auto d = ok(forward_kind::remote, "9000:/run/local.sock");
    EXPECT_EQ(d.target.path, "/run/local.sock");
    EXPECT_NE(err(forward_kind::remote, "/remote.sock:h:1").find("not supported"),
              std::string::npos);
}

TEST(ForwardSpec, RemoteAllowsPortZero) {
    auto s = ok(forward_kind::remote, "0:127.0.0.1:8080");
    EXPECT_EQ(s.listen.port, 0);
    EXPECT_NE(err(forward_kind::local, "0:h:1").find("1 to 65535"), std::string::npos);
}

TEST(ForwardSpec, Dynamic) {
    EXPECT_EQ(ok(forward_kind::dynamic, "1080").listen.port, 1080);
    auto s = ok(forward_kind::dynamic, "127.0.0.1:1080");
    EXPECT_EQ(s.listen.host, "127.0.0.1");
    EXPECT_EQ(s.describe(), "-D 127.0.0.1:1080 (SOCKS)");
    err(forward_kind::dynamic, "a:b:c");
    err(forward_kind::dynamic, "");
}

TEST(ForwardSpec, MalformedSpecsSayWhatIsExpected) {
    auto m = err(forward_kind::local, "8080");
    EXPECT_NE(m.find("-L \"8080\""), std::string::npos) << m;
    EXPECT_NE(m.find("expected -L [bind_address:]port:host:hostport"), std::string::npos) << m;
    err(forward_kind::local, "8080:host");
    err(forward_kind::local, "a:b:c:d:e");
    err(forward_kind::local, "x:8080:host:1:2");
    err(forward_kind::local, "99999:h:1");
    err(forward_kind::local, "-1:h:1");
    err(forward_kind::local, "8080:h:0");
    err(forward_kind::local, "8080::80");
    err(forward_kind::local, ":8080:h:80");
    err(forward_kind::local, "[::1:8080:h:1");
    err(forward_kind::local, "[::1]x:8080:h:1");
    err(forward_kind::local, "80 80:h:1");
    err(forward_kind::local, "8080:h:80x");
}

TEST(ForwardSpec, PrivilegedPortsNeedRoot) {
    auto low = ok(forward_kind::local, "80:h:8080");
    auto r = check_privileged_port(low, 1000);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, core::errc::permission_denied);
    EXPECT_NE(r.error().message.find("privileged port 80 can only be forwarded by root"),
              std::string::npos);
    EXPECT_TRUE(check_privileged_port(low, 0));
    EXPECT_TRUE(check_privileged_port(ok(forward_kind::local, "1024:h:1"), 1000));
    EXPECT_FALSE(check_privileged_port(ok(forward_kind::dynamic, "1023"), 1000));
    // -R binds on the server: its own rules apply there.
    EXPECT_TRUE(check_privileged_port(ok(forward_kind::remote, "80:h:1"), 1000));
}

}  // namespace
}  // namespace tunnel::forward
