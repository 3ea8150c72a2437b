// The admin router: Host check, bearer token, methods, the generated index.
#include "observe/admin_http.hpp"

#include "core/encoding.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace tunnel::observe {
namespace {

admin_request get(const std::string& path, const std::string& method = "GET") {
    admin_request r;
    r.method = method;
    r.target = path;
    r.path = path.substr(0, path.find('?'));
    r.peer = "127.0.0.1:5555";
    return r;
}

admin_credentials from(std::optional<std::string> host,
                       std::optional<std::string> authorization = std::nullopt) {
    return {std::move(host), std::move(authorization), false};
}

struct fixture {
    int mutations = 0;
    std::vector<admin_endpoint> table() {
        return {
            {"/healthz", "liveness",
             [](const admin_request&) { return admin_response::text("ok\n"); }, false, true},
            {"/metrics", "Prometheus",
             [](const admin_request&) { return admin_response::metrics("up 1\n"); }},
            {"/api/v1/drain", "stop accepting",
             [this](const admin_request&) {
                 ++mutations;
                 return admin_response::json("{}\n");
             },
             true},
        };
    }
};

TEST(AdminHost, IpLiteralsLocalhostAndConfiguredNamesOnly) {
    const std::vector<std::string> names{"relay-admin.internal"};
    for (const char* ok :
         {"127.0.0.1", "127.0.0.1:9090", "10.0.0.7:80", "[::1]", "[::1]:9090", "[2001:db8::1]:443",
          "localhost", "LOCALHOST:9090", "relay-admin.internal", "Relay-Admin.Internal:9090"})
        EXPECT_TRUE(host_allowed(ok, names)) << ok;
    for (const char* bad :
         {"evil.example", "evil.example:9090", "127.0.0.1.evil.example", "localhost.evil.example",
          "::1", "[::1", "[::1]x", "127.0.0.1:99999", "127.0.0.1:", "127.1", "0x7f.0.0.1",
          "[evil.example]", "", "relay-admin.internal.evil", "127.0.0.1:80:80"})
        EXPECT_FALSE(host_allowed(bad, names)) << bad;
}

TEST(AdminRouter, RebindingHostGets421) {
    fixture f;
    admin_router router(f.table(), {}, "Test endpoints");
    auto r = router.route(get("/metrics"), from("evil.example"));
    EXPECT_EQ(r.status, 421);
    EXPECT_EQ(nlohmann::json::parse(r.body)["error"], "misdirected_request");
    EXPECT_EQ(router.route(get("/metrics"), from("127.0.0.1:9090")).status, 200);
    // HTTP/1.1 needs a Host; HTTP/1.0 may omit it.
    EXPECT_EQ(router.route(get("/metrics"), from(std::nullopt)).status, 400);
    EXPECT_EQ(router.route(get("/metrics"), {std::nullopt, std::nullopt, true}).status, 200);
}

TEST(AdminRouter, BearerTokenWhenConfigured) {
    fixture f;
    admin_access access;
    access.bearer_token = "s3cret-token-0123456789";
    access.token_hint = "admin.token_file";
    admin_router router(f.table(), access, "Test endpoints");
    auto none = router.route(get("/metrics"), from("127.0.0.1"));
    EXPECT_EQ(none.status, 401);
    bool challenged = false;
    for (const auto& [k, v] : none.headers) challenged |= k == "WWW-Authenticate";
    EXPECT_TRUE(challenged);
    EXPECT_EQ(none.body.find("s3cret"), std::string::npos);
    EXPECT_EQ(router.route(get("/metrics"), from("127.0.0.1", "Bearer wrong")).status, 401);
    EXPECT_EQ(
        router.route(get("/metrics"), from("127.0.0.1", "Bearer s3cret-token-012345678")).status,
        401);  // a prefix
    EXPECT_EQ(router.route(get("/metrics"), from("127.0.0.1", "Basic czNjcmV0")).status, 401);
    EXPECT_EQ(router.route(get("/metrics"), from("127.0.0.1", "Bearer ")).status, 401);
    EXPECT_EQ(
        router.route(get("/metrics"), from("127.0.0.1", "Bearer s3cret-token-0123456789")).status,
        200);
    EXPECT_EQ(
        router.route(get("/metrics"), from("127.0.0.1", "bearer  s3cret-token-0123456789")).status,
        200);
    // Probes need no token; unknown paths and the index do (the table is not revealed).
    EXPECT_EQ(router.route(get("/healthz"), from("127.0.0.1")).status, 200);
    EXPECT_EQ(router.route(get("/nope"), from("127.0.0.1")).status, 401);
    EXPECT_EQ(router.route(get("/help"), from("127.0.0.1")).status, 401);
    // The Host check comes first, token or not.
    EXPECT_EQ(router.route(get("/metrics"), from("evil.example", "Bearer s3cret-token-0123456789"))
                  .status,
              421);
    EXPECT_EQ(router.route(get("/healthz"), from("evil.example")).status, 421);
}

TEST(AdminRouter, MethodsIndexAndMutations) {
    fixture f;
    admin_router router(f.table(), {}, "Test endpoints");
    bool mutated = false;
    auto r = router.route(get("/api/v1/drain"), from("127.0.0.1"), &mutated);
    EXPECT_EQ(r.status, 405);
    EXPECT_FALSE(mutated);
    EXPECT_EQ(f.mutations, 0);
    r = router.route(get("/api/v1/drain", "POST"), from("127.0.0.1"), &mutated);
    EXPECT_EQ(r.status, 200);
    EXPECT_TRUE(mutated);
    EXPECT_EQ(f.mutations, 1);
    EXPECT_EQ(router.route(get("/metrics", "POST"), from("127.0.0.1")).status, 405);
    EXPECT_EQ(router.route(get("/metrics", "HEAD"), from("127.0.0.1")).status, 200);
    EXPECT_EQ(router.route(get("/metrics?x=1"), from("127.0.0.1")).status, 200);
    EXPECT_EQ(router.route(get("/nope"), from("127.0.0.1")).status, 404);
    for (const char* index : {"/", "/help"}) {
        auto help = router.route(get(index), from("127.0.0.1"));
        EXPECT_EQ(help.status, 200);
        EXPECT_EQ(help.body.rfind("Test endpoints:\n", 0), 0u) << help.body;
        for (const char* p : {"/help", "/healthz", "/metrics", "/api/v1/drain"})
            EXPECT_NE(help.body.find(p), std::string::npos) << p;
        EXPECT_NE(help.body.find("stop accepting (POST)"), std::string::npos) << help.body;
    }
}

TEST(AdminRouter, Serialize) {
    auto r = admin_response::text("ok\n");
    r.headers.emplace_back("Allow", "GET, HEAD");
    EXPECT_EQ(serialize(r),
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "
              "3\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: "
              "close\r\nAllow: GET, HEAD\r\n\r\nok\n");
    EXPECT_EQ(serialize(r, true).find("ok\n"), std::string::npos);
    EXPECT_NE(serialize(admin_response::error(421, "x", "y")).find("421 Misdirected Request"),
              std::string::npos);
}

}  // namespace
}  // namespace tunnel::observe

namespace tunnel::observe {
namespace {

// The dashboard's endpoints take the token as a Basic password (a browser's
// login prompt), only for GET/HEAD of browser endpoints, and never from
// another site.
TEST(AdminRouterBrowser, BasicCarriesTheTokenOnlyForBrowserEndpoints) {
    std::vector<admin_endpoint> table{
        {"/dashboard/", "page", [](const admin_request&) { return admin_response::text("page"); },
         false, false, true},
        {"/metrics", "Prometheus",
         [](const admin_request&) { return admin_response::metrics("up 1\n"); }},
    };
    admin_access access;
    access.bearer_token = "s3cret-token-0123456789";
    admin_router router(table, access, "Test");
    const auto basic = [](const std::string& user_pass) {
        return "Basic " + core::base64_encode(user_pass);
    };
    auto page = [&](std::optional<std::string> auth, std::optional<std::string> site = {}) {
        admin_credentials c{"127.0.0.1:9090", std::move(auth), false};
        c.fetch_site = std::move(site);
        return router.route(get("/dashboard/"), c);
    };
    EXPECT_EQ(page(basic("admin:s3cret-token-0123456789")).status, 200);
    EXPECT_EQ(page(basic(":s3cret-token-0123456789")).status, 200);
    EXPECT_EQ(page("Bearer s3cret-token-0123456789").status, 200);
    EXPECT_EQ(page(basic("admin:wrong")).status, 401);
    EXPECT_EQ(page(basic("s3cret-token-0123456789")).status, 401);  // no colon: no password
    EXPECT_EQ(page("Basic !!!not-base64").status, 401);
    // No credentials: the challenge is Basic, so a browser shows its prompt.
    auto challenge = page(std::nullopt);
    ASSERT_EQ(challenge.status, 401);
    ASSERT_EQ(challenge.headers.size(), 1u);
    EXPECT_EQ(challenge.headers[0].first, "WWW-Authenticate");
    EXPECT_EQ(challenge.headers[0].second.rfind("Basic ", 0), 0u);
    // Another site's page cannot use the browser's remembered credentials.
    EXPECT_EQ(page(basic("admin:s3cret-token-0123456789"), "cross-site").status, 403);
    EXPECT_EQ(page(basic("admin:s3cret-token-0123456789"), "same-site").status, 403);
    EXPECT_EQ(page(basic("admin:s3cret-token-0123456789"), "same-origin").status, 200);
    EXPECT_EQ(page(basic("admin:s3cret-token-0123456789"), "none").status, 200);
    // Basic is not accepted anywhere else.
    admin_credentials c{"127.0.0.1", basic("admin:s3cret-token-0123456789"), false};
    auto metrics = router.route(get("/metrics"), c);
    EXPECT_EQ(metrics.status, 401);
    EXPECT_EQ(metrics.headers[0].second.rfind("Bearer ", 0), 0u);
    // Nor for a method that is not GET/HEAD on a browser endpoint.
    EXPECT_EQ(router.route(get("/dashboard/", "POST"), c).status, 401);
}

}  // namespace
}  // namespace tunnel::observe
