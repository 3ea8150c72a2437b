#include "cluster/redis_address.hpp"

#include <gtest/gtest.h>

namespace tunnel::cluster {
namespace {

TEST(RedisAddress, ParsesAServerWithPasswordAndDatabase) {
    auto a = parse_redis_address("redis://:s3cret@127.0.0.1:6380/2");
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(a->type, redis_address::kind::direct);
    ASSERT_EQ(a->endpoints.size(), 1u);
    EXPECT_EQ(a->endpoints[0].host, "127.0.0.1");
    EXPECT_EQ(a->endpoints[0].port, 6380);
    EXPECT_EQ(a->password, "s3cret");
    EXPECT_EQ(a->user, "");
    EXPECT_EQ(a->db, 2);
    EXPECT_EQ(describe(*a), "redis://:***@127.0.0.1:6380/2");
}

TEST(RedisAddress, DefaultsPortAndDatabaseAndTakesIpv6AndUsers) {
    auto a = parse_redis_address("redis://redis.internal");
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(a->endpoints[0].host, "redis.internal");
    EXPECT_EQ(a->endpoints[0].port, 6379);
    EXPECT_EQ(a->db, 0);
    auto v6 = parse_redis_address("redis://relay:p@ss/w:rd@[::1]:7000");
    ASSERT_TRUE(v6) << v6.error().message;
    EXPECT_EQ(v6->endpoints[0].host, "::1");
    EXPECT_EQ(v6->endpoints[0].port, 7000);
    EXPECT_EQ(v6->user, "relay");
    EXPECT_EQ(v6->password, "p@ss/w:rd");
    EXPECT_EQ(describe(v6->endpoints[0]), "[::1]:7000");
}

TEST(RedisAddress, ParsesSentinels) {
    auto a = parse_redis_address("redis-sentinel://10.0.0.1:26380,10.0.0.2,[fd00::3]:1/mymaster");
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(a->type, redis_address::kind::sentinel);
    ASSERT_EQ(a->endpoints.size(), 3u);
    EXPECT_EQ(a->endpoints[0].port, 26380);
    EXPECT_EQ(a->endpoints[1].host, "10.0.0.2");
    EXPECT_EQ(a->endpoints[1].port, 26379);
    EXPECT_EQ(a->endpoints[2].host, "fd00::3");
    EXPECT_EQ(a->master, "mymaster");
    EXPECT_EQ(describe(*a), "redis-sentinel://10.0.0.1:26380,10.0.0.2:26379,[fd00::3]:1/mymaster");
}

struct bad_case {
    const char* url;
    const char* says;  // part of the message
};

TEST(RedisAddress, RefusesBadAddressesSayingWhatIsWrong) {
    const bad_case cases[] = {
        {"", "empty"},
        {"http://127.0.0.1:6379", "is not a Redis address"},
        {"rediss://127.0.0.1:6379", "TLS"},
        {"redis://", "host is missing"},
        {"redis://127.0.0.1:0", "port \"0\" must be a number from 1 to 65535"},
        {"redis://127.0.0.1:70000", "from 1 to 65535"},
        {"redis://127.0.0.1:", "port after ':' is missing"},
        {"redis://127.0.0.1:6379/x", "database after '/'"},
        {"redis://127.0.0.1:6379?timeout=1", "query parameters"},
        {"redis://a,b:6379", "takes one server"},
        {"redis://::1:6379", "IPv6 address in brackets"},
        {"redis://[::1:6379", "closing ']'"},
        {"redis://pw@127.0.0.1", ":password@"},
        {"redis://:@127.0.0.1", "password after ':' is empty"},
        {"redis://bad host:1", "spaces"},
        {"redis-sentinel://127.0.0.1:26379", "master's name is missing"},
        {"redis-sentinel://127.0.0.1:26379/", "master's name is missing"},
        {"redis-sentinel://127.0.0.1:26379,,x/m", "empty sentinel"},
        {"redis-sentinel://127.0.0.1:26379/my/master", "master's name may hold"},
    };
    for (const auto& c : cases) {
        auto a = parse_redis_address(c.url);
        ASSERT_FALSE(a) << c.url;
        EXPECT_EQ(a.error().code, core::errc::invalid_argument) << c.url;
        EXPECT_NE(a.error().message.find(c.says), std::string::npos)
            << c.url << " -> " << a.error().message;
    }
}

TEST(RedisAddress, NeverEchoesThePassword) {
    for (const char* url : {"redis://:hunter22@127.0.0.1:0", "redis://:hunter22@127.0.0.1:1/x",
                            "redis://:hunter22@bad host", "rediss://:hunter22@127.0.0.1:1",
                            "redis-sentinel://:hunter22@127.0.0.1:26379"}) {
        auto a = parse_redis_address(url);
        ASSERT_FALSE(a) << url;
        EXPECT_EQ(a.error().message.find("hunter22"), std::string::npos) << a.error().message;
    }
    auto ok = parse_redis_address("redis://:hunter22@127.0.0.1:1");
    ASSERT_TRUE(ok);
    EXPECT_EQ(describe(*ok).find("hunter22"), std::string::npos);
}

}  // namespace
}  // namespace tunnel::cluster
