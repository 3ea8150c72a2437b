#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

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
    EXPECT_NE(script.find("/srv/shop/releases/20261206-1"), std::string::npos) << script;
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

namespace tunnel::deploy {
namespace {

// Runs the write script with the local sh (it only touches the temp root).
int run_script(const std::string& script) {
    FILE* sh = ::popen("sh -s >/dev/null 2>&1", "w");
    if (!sh) return -1;
    std::fwrite(script.data(), 1, script.size(), sh);
    return ::pclose(sh);
}

TEST(DeployTemplateScript, WritesTheFileAndRefusesASymbolicLinkOnTheWay) {
    namespace fs = std::filesystem;
    auto root = fs::path(::testing::TempDir()) / "deploy-template-script";
    fs::remove_all(root);
    fs::create_directories(root / "releases" / "r1");
    fs::create_directories(root / "outside");
    deploy_config c;
    c.root = root.string();
    ASSERT_EQ(run_script(write_rendered_script(c, "r1", {"config/app.env", "0640", "A=1\n"})), 0);
    std::ifstream in(root / "releases/r1/config/app.env");
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(content, "A=1\n");
    EXPECT_EQ(fs::status(root / "releases/r1/config/app.env").permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    // The artifact made `etc` a link out of the release: nothing is written through it.
    fs::create_directory_symlink(root / "outside", root / "releases/r1/etc");
    EXPECT_NE(run_script(write_rendered_script(c, "r1", {"etc/x.conf", "0644", "B\n"})), 0);
    EXPECT_FALSE(fs::exists(root / "outside/x.conf"));
    fs::remove_all(root);
}

}  // namespace
}  // namespace tunnel::deploy
