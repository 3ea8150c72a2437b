#include "link/http_connect.hpp"

#include <gtest/gtest.h>

namespace tunnel::link {
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

}  // namespace
}  // namespace tunnel::link
