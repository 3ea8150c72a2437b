#include "relay/public_route.hpp"

#include <gtest/gtest.h>

namespace tunnel::relay {
namespace {

TEST(PublicRoute, ValidLabels) {
    EXPECT_TRUE(valid_label("llm"));
    EXPECT_TRUE(valid_label("a"));
    EXPECT_TRUE(valid_label("web-1"));
    EXPECT_TRUE(valid_label(std::string(63, 'a')));
    EXPECT_FALSE(valid_label(std::string(64, 'a')));
    EXPECT_FALSE(valid_label(""));
    EXPECT_FALSE(valid_label("Web"));
    EXPECT_FALSE(valid_label("-web"));
    EXPECT_FALSE(valid_label("web-"));
    EXPECT_FALSE(valid_label("a--b"));
    EXPECT_FALSE(valid_label("a_b"));
    EXPECT_FALSE(valid_label("a.b"));
    EXPECT_EQ(*normalize_label("LLM", "service name"), "llm");
    auto bad = normalize_label("my_app", "service name");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message, "service name \"my_app\": only a-z, 0-9 and '-' are allowed");
}

TEST(PublicRoute, ByHost) {
    auto r = route_by_host("LLM--Acme.Relay.Example.com:8443", "relay.example.com", "/v1/chat?x=1");
    ASSERT_TRUE(r && *r);
    EXPECT_EQ((*r)->name, "llm");
    EXPECT_EQ((*r)->tenant, "acme");
    EXPECT_EQ((*r)->target, "/v1/chat?x=1");
    EXPECT_TRUE((*r)->by_host);

    auto dotted = route_by_host("web-1--t-2.relay.example.com.", "relay.example.com", "/");
    ASSERT_TRUE(dotted && *dotted);
    EXPECT_EQ((*dotted)->name, "web-1");
    EXPECT_EQ((*dotted)->tenant, "t-2");

    EXPECT_FALSE(route_by_host("relay.example.com", "relay.example.com", "/"));
    EXPECT_FALSE(route_by_host("llm--acme.other.com", "relay.example.com", "/"));
    EXPECT_FALSE(route_by_host("llm--acmerelay.example.com", "relay.example.com", "/"));
    EXPECT_FALSE(route_by_host("llm--acme.relay.example.com", "", "/"));
    EXPECT_FALSE(route_by_host("[::1]:8443", "relay.example.com", "/"));

    for (auto host : {"llm.relay.example.com", "a.llm--acme.relay.example.com",
                      "--acme.relay.example.com", "llm--.relay.example.com",
                      "llm---acme.relay.example.com", "ll_m--acme.relay.example.com"}) {
        auto bad = route_by_host(host, "relay.example.com", "/");
        ASSERT_TRUE(bad) << host;
        EXPECT_FALSE(*bad) << host;
        EXPECT_EQ(bad->error().code, core::errc::invalid_argument) << host;
    }
}

TEST(PublicRoute, ByPath) {
    auto r = route_by_path("/t/acme/llm/api/generate?stream=1");
    ASSERT_TRUE(r && *r);
    EXPECT_EQ((*r)->tenant, "acme");
    EXPECT_EQ((*r)->name, "llm");
    EXPECT_EQ((*r)->target, "/api/generate?stream=1");
    EXPECT_FALSE((*r)->by_host);

    EXPECT_EQ((*route_by_path("/t/a/b"))->target, "/");
    EXPECT_EQ((*route_by_path("/t/a/b/"))->target, "/");
    EXPECT_EQ((*route_by_path("/t/a/b?q=1"))->target, "/?q=1");
    EXPECT_EQ((*route_by_path("/t/A/B/x"))->name, "b");
    EXPECT_EQ((*route_by_path("/t/a/b/x/../y"))->target,
              "/x/../y");  // the origin sees what the caller sent

    EXPECT_FALSE(route_by_path("/"));
    EXPECT_FALSE(route_by_path("/v1/tunnel"));
    EXPECT_FALSE(route_by_path("/tx/a/b"));
    for (auto target :
         {"/t/", "/t/acme", "/t/acme/", "/t//llm/", "/t/acme//x", "/t/a%2f/b", "/t/a/b?c/d"})
        if (auto bad = route_by_path(target); bad) {
            if (std::string_view(target) == "/t/a/b?c/d") {
                EXPECT_TRUE(*bad) << target;  // the query is not part of the path
                continue;
            }
            EXPECT_FALSE(*bad) << target;
        } else {
            ADD_FAILURE() << target << " should be a (bad) path route";
        }
}

TEST(PublicRoute, RouteRequestPrefersHost) {
    auto r = route_request("llm--acme.relay.test", "/t/other/web/x", "relay.test");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->tenant, "acme");
    EXPECT_EQ(r->target, "/t/other/web/x");

    auto p = route_request("relay.test:8443", "/t/other/web/x", "relay.test");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->tenant, "other");
    EXPECT_EQ(p->target, "/x");

    auto none = route_request("127.0.0.1:8080", "/index.html", "");
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code, core::errc::not_found);
    EXPECT_NE(none.error().message.find("/t/<tenant>/<name>/"), std::string::npos);
}

}  // namespace
}  // namespace tunnel::relay
