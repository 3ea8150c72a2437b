#include "transport/http_connect.hpp"

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include "core/encoding.hpp"

namespace tunnel::transport {
namespace {

TEST(HttpConnect, RequestNamesTheAuthority) {
    EXPECT_EQ(connect_request("db.internal", 22),
              "CONNECT db.internal:22 HTTP/1.1\r\nHost: db.internal:22\r\nUser-Agent: "
              "tunnel\r\n\r\n");
    EXPECT_NE(connect_request("::1", 2222).find("CONNECT [::1]:2222 HTTP/1.1"), std::string::npos);
}

TEST(HttpConnect, OnlyTwoHundredsAreSuccess) {
    EXPECT_TRUE(check_connect_response("HTTP/1.1 200 Connection established\r\n\r\n"));
    EXPECT_TRUE(check_connect_response("HTTP/1.0 200 OK\r\nProxy-agent: x\r\n\r\n"));
    auto refused = check_connect_response("HTTP/1.1 403 Forbidden\r\n\r\n");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, core::errc::connection_failed);
    EXPECT_NE(refused.error().message.find("403 Forbidden"), std::string::npos);
    auto auth = check_connect_response("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n");
    ASSERT_FALSE(auth);
    EXPECT_EQ(auth.error().code, core::errc::auth_failed);
    auto junk = check_connect_response("SSH-2.0-OpenSSH\r\n\r\n");
    ASSERT_FALSE(junk);
    EXPECT_EQ(junk.error().code, core::errc::protocol_error);
    EXPECT_FALSE(check_connect_response(""));
    EXPECT_FALSE(check_connect_response("HTTP/1.1 2"));
}

TEST(HttpConnect, CredentialsGoInAProxyAuthorizationHeader) {
    const auto r = connect_request("db", 22, "alice:pa:ss");
    EXPECT_NE(
        r.find("\r\nProxy-Authorization: Basic " + core::base64_encode("alice:pa:ss") + "\r\n"),
        std::string::npos)
        << r;
    EXPECT_TRUE(r.ends_with("\r\n\r\n"));
    EXPECT_EQ(connect_request("db", 22).find("Proxy-Authorization"), std::string::npos);
}

TEST(HttpConnect, A407SaysWhatIsMissingOrWhichCredentialsWereRefused) {
    const std::string head = "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n";
    auto none = check_connect_response(head);
    ASSERT_FALSE(none);
    EXPECT_NE(none.error().message.find("set proxy_credentials_file or proxy_credentials_env"),
              std::string::npos)
        << none.error().message;
    auto refused = check_connect_response(head, "environment variable PROXY_CREDS");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, core::errc::auth_failed);
    EXPECT_NE(refused.error().message.find("refused the user:password from environment variable "
                                           "PROXY_CREDS"),
              std::string::npos)
        << refused.error().message;
    // tinyproxy answers wrong credentials with 401.
    auto wrong =
        check_connect_response("HTTP/1.0 401 Unauthorized\r\n\r\n", "proxy_credentials_file /f");
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.error().code, core::errc::auth_failed);
    EXPECT_NE(wrong.error().message.find("from proxy_credentials_file /f"), std::string::npos);
}

TEST(HttpConnect, CredentialsAreReadAndCheckedWithoutQuotingThem) {
    EXPECT_EQ(read_proxy_credentials({}).value(), "");
    ::setenv("TUNNEL_TEST_PROXY_CREDS", "bob:hunter2\n", 1);
    EXPECT_EQ(read_proxy_credentials({"", "TUNNEL_TEST_PROXY_CREDS"}).value(), "bob:hunter2");
    ::setenv("TUNNEL_TEST_PROXY_CREDS", "hunter2", 1);
    auto bad = read_proxy_credentials({"", "TUNNEL_TEST_PROXY_CREDS"});
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("not user:password"), std::string::npos);
    EXPECT_EQ(bad.error().message.find("hunter2"), std::string::npos) << bad.error().message;
    ::unsetenv("TUNNEL_TEST_PROXY_CREDS");
    auto unset = read_proxy_credentials({"", "TUNNEL_TEST_PROXY_CREDS"});
    ASSERT_FALSE(unset);
    EXPECT_NE(unset.error().message.find("environment variable TUNNEL_TEST_PROXY_CREDS is not set"),
              std::string::npos)
        << unset.error().message;
    auto missing = read_proxy_credentials({"/nonexistent/proxy-creds", ""});
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("/nonexistent/proxy-creds"), std::string::npos);
}

}  // namespace
}  // namespace tunnel::transport
