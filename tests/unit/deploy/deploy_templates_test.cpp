#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "deploy/deploy_templates.hpp"

namespace tunnel::deploy {
namespace {

class DeployTemplates : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = ::testing::TempDir();
        std::ofstream(dir_ + "/env.mustache") << "PORT={{port}}\nNAME={{inventory_hostname}}\n";
    }
    void TearDown() override { std::remove((dir_ + "/env.mustache").c_str()); }
    core::result<deploy_config> parse(const std::string& templates) {
        return parse_deploy_config(
            "app: shop\nroot: /srv/shop\nartifact: shop.tar.gz\n"
            "shared: [log, .env]\n" +
                templates,
            "deploy.yaml", dir_, false);
    }
    std::string dir_;
};

TEST_F(DeployTemplates, ParsesAndRendersPerHost) {
    auto c = parse("templates:\n  - {src: env.mustache, dest: config/app.env, mode: '0640'}\n");
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_EQ(c->templates.size(), 1u);
    EXPECT_EQ(c->templates[0].dest, "config/app.env");
    EXPECT_EQ(c->templates[0].mode, "0640");
    auto files = render_templates(*c, "web1", {{"inventory_hostname", "web1"}, {"port", 8000}});
    ASSERT_TRUE(files) << files.error().message;
    ASSERT_EQ(files->size(), 1u);
    EXPECT_EQ((*files)[0].content, "PORT=8000\nNAME=web1\n");
    auto script = write_rendered_script(*c, "20261206-1", (*files)[0]);
    EXPECT_NE(script.find("'/srv/shop/releases/20261206-1'"), std::string::npos) << script;
    EXPECT_NE(script.find("base64 -d"), std::string::npos);
}

TEST_F(DeployTemplates, MissingVariableNamesHostTemplateAndLine) {
    auto c = parse("templates: [{src: env.mustache, dest: app.env}]\n");
    ASSERT_TRUE(c) << c.error().message;
    auto files = render_templates(*c, "web2", {{"inventory_hostname", "web2"}});
    ASSERT_FALSE(files);
    EXPECT_NE(files.error().message.find("host web2"), std::string::npos) << files.error().message;
    EXPECT_NE(files.error().message.find("env.mustache:1:"), std::string::npos)
        << files.error().message;
    EXPECT_NE(files.error().message.find("port"), std::string::npos);
}

TEST_F(DeployTemplates, BadEntriesAreErrorsWithTheirKey) {
    auto outside = parse("templates: [{src: env.mustache, dest: ../etc/passwd}]\n");
    ASSERT_FALSE(outside);
    EXPECT_NE(outside.error().message.find("templates[0].dest"), std::string::npos)
        << outside.error().message;
    auto shared = parse("templates: [{src: env.mustache, dest: log/x.conf}]\n");
    ASSERT_FALSE(shared);
    EXPECT_NE(shared.error().message.find("shared path"), std::string::npos)
        << shared.error().message;
    auto missing = parse("templates: [{src: none.mustache, dest: x}]\n");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("none.mustache"), std::string::npos);
    auto mode = parse("templates: [{src: env.mustache, dest: x, mode: rw}]\n");
    ASSERT_FALSE(mode);
    EXPECT_NE(mode.error().message.find("templates[0].mode"), std::string::npos);
    auto unknown = parse("templates: [{src: env.mustache, dest: x, owner: root}]\n");
    ASSERT_FALSE(unknown);
}

}  // namespace
}  // namespace tunnel::deploy
