// The relay config's `visitors:` section, read strictly (every problem with
// its path), htpasswd files loaded and checked at config time.
#include "relay/visitor_config.hpp"

#include <crypt.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

namespace tunnel::relay {
namespace {

namespace fs = std::filesystem;

class VisitorConfig : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               fs::path("visitor_config_" + std::to_string(::getpid()) + "_" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
        char setting[CRYPT_GENSALT_OUTPUT_SIZE] = {};
        crypt_gensalt_rn("$2b$", 5, nullptr, 0, setting, sizeof setting);
        crypt_data data{};
        good_ = (dir_ / "good.htpasswd").string();
        std::ofstream(good_) << "alice:" << crypt_rn("pw", setting, &data, sizeof data) << "\n";
        weak_ = (dir_ / "weak.htpasswd").string();
        std::ofstream(weak_) << "alice:$apr1$salt$Xxd1irWT9ycqoYxGFn4cb.\n";
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::pair<visitor_config, core::yaml_reader> read(const std::string& yaml) {
        core::yaml_reader r("relay.yaml");
        auto doc = r.parse(yaml);
        visitor_config c;
        read_visitor_config(r, doc["visitors"], "visitors", c);
        return {c, r};
    }

    fs::path dir_;
    std::string good_, weak_;
};

TEST_F(VisitorConfig, ReadsEveryMode) {
    auto [c, r] = read(fmt::format(R"(
visitors:
  secret_file: /etc/tunnel/visitor.secret
  names:
    acme/llm: {{access: token}}
    acme/web: {{access: basic, htpasswd_file: {}}}
    Acme/API: {{access: ip, allow_ips: [10.0.0.0/8, "2001:db8::/32"]}}
    acme/docs: {{access: public}}
)",
                                   good_));
    ASSERT_TRUE(r.ok()) << r.failure().message;
    EXPECT_EQ(c.secret_file, "/etc/tunnel/visitor.secret");
    ASSERT_EQ(c.names.size(), 4u);
    EXPECT_EQ(configured_access(c, "acme", "llm")->mode, access_mode::token);
    ASSERT_TRUE(configured_access(c, "acme", "web"));
    EXPECT_TRUE(configured_access(c, "acme", "web")->users->find("alice"));
    EXPECT_EQ(configured_access(c, "acme", "api")->allow_ips.to_string(),
              "10.0.0.0/8,2001:db8::/32");
    EXPECT_FALSE(configured_access(c, "acme", "other"));
    const auto lines = describe(c);
    EXPECT_NE(std::find(lines.begin(), lines.end(),
                        "visitors.names.acme/web: basic (1 users) from " + good_),
              lines.end());
}

TEST_F(VisitorConfig, EveryProblemWithItsPath) {
    auto [c, r] = read(fmt::format(R"(
visitors:
  secrets_file: x
  names:
    llm: {{access: token}}
    acme/web: {{access: basic, htpasswd_file: {}}}
    acme/nofile: {{access: basic}}
    acme/api: {{access: ip, allow_ips: [10.0.0.1/8]}}
    acme/both: {{access: token, allow_ips: [10.0.0.0/8]}}
    acme/x: {{access: private}}
    acme/y: {{}}
    acme/z: {{access: token, extra: 1}}
    acme/missing: {{access: basic, htpasswd_file: {}/missing}}
)",
                                   weak_, dir_.string()));
    ASSERT_FALSE(r.ok());
    const auto m = r.failure().message;
    for (auto want :
         {"visitors.secrets_file: unknown key", "visitors.names.llm: write the key as TENANT/NAME",
          "visitors.names.acme/web.htpasswd_file:", "Apache MD5",
          "visitors.names.acme/nofile.htpasswd_file: required",
          "visitors.names.acme/api.allow_ips:", "did you mean 10.0.0.0/8",
          "visitors.names.acme/both.allow_ips: is for access: ip only",
          "visitors.names.acme/x.access:", "visitors.names.acme/y.access: required",
          "visitors.names.acme/z",
          "visitors.names.acme/missing.htpasswd_file:", "visitors.secret_file: required"})
        EXPECT_NE(m.find(want), std::string::npos) << want << "\n" << m;
}

TEST_F(VisitorConfig, AbsentSectionIsEmpty) {
    auto [c, r] = read("listen: 127.0.0.1:0\n");
    EXPECT_TRUE(r.ok());
    EXPECT_TRUE(c.names.empty());
    EXPECT_TRUE(c.secret_file.empty());
}

}  // namespace
}  // namespace tunnel::relay
