// The `template` plan module: parsed with its template, rendered per host by
// bind(), then checked like `file` (create, unchanged, changed, mode).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include <fmt/format.h>

#include "core/encoding.hpp"
#include "ops/plan.hpp"

namespace tunnel::ops {
namespace {

class OpsTemplate : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = ::testing::TempDir();
        std::ofstream(dir_ + "/app.conf.mustache")
            << "# {{inventory_hostname}}\nport={{ port }}\n{{#peers}}peer={{.}}\n{{/peers}}"
               "arch={{facts.arch}}\n";
        std::ofstream(dir_ + "/broken.mustache") << "ok\nport={{ prot }}\n";
    }
    void TearDown() override {
        std::remove((dir_ + "/app.conf.mustache").c_str());
        std::remove((dir_ + "/broken.mustache").c_str());
    }
    core::result<plan> parse(const std::string& step) {
        return parse_plan(step, "site.yaml", dir_);
    }
    std::string dir_;
};

nlohmann::json vars() {
    return {{"inventory_hostname", "web1"},
            {"port", 8080},
            {"peers", {"a", "b"}},
            {"facts", {{"arch", "x86_64"}}}};
}

const std::string rendered = "# web1\nport=8080\npeer=a\npeer=b\narch=x86_64\n";

probe_data existing(const std::string& content, const std::string& mode = "640") {
    return probe_data(fmt::format("f.stat {} root root {} regular file\nf.b64 {}\n", mode,
                                  content.size(), core::base64_encode(content)));
}

TEST_F(OpsTemplate, RendersPerHostAndChecksLikeAFile) {
    auto p = parse("- template: {src: app.conf.mustache, path: /etc/app.conf, mode: '0640'}\n");
    ASSERT_TRUE(p) << p.error().message;
    const auto& mod = *p->steps.at(0).mod;
    EXPECT_EQ(mod.kind(), "template");
    auto bound = mod.bind(vars());
    ASSERT_TRUE(bound) << bound.error().message;
    ASSERT_TRUE(*bound);
    facts f;
    auto create = (*bound)->check(f, probe_data("f.absent\n"));
    ASSERT_TRUE(create) << create.error().message;
    ASSERT_EQ(create->changes, std::vector<std::string>{"create /etc/app.conf"});
    ASSERT_EQ(create->actions.size(), 1u);
    EXPECT_EQ(create->actions[0].input, rendered);  // written through write_file_action
    auto same = (*bound)->check(f, existing(rendered));
    ASSERT_TRUE(same) << same.error().message;
    EXPECT_FALSE(same->changed());
    auto old = (*bound)->check(f, existing("# web1\nport=80\n"));
    ASSERT_TRUE(old);
    EXPECT_EQ(old->changes, std::vector<std::string>{"update content of /etc/app.conf"});
    EXPECT_NE(old->diff.find("+port=8080"), std::string::npos) << old->diff;
    auto mode = (*bound)->check(f, existing(rendered, "644"));
    ASSERT_TRUE(mode);
    EXPECT_EQ(mode->changes, std::vector<std::string>{"mode of /etc/app.conf: 644 -> 640"});
}

TEST_F(OpsTemplate, AnUnboundTemplateIsNeverChecked) {
    auto p = parse("- template: {src: app.conf.mustache, path: /etc/app.conf}\n");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_FALSE(p->steps.at(0).mod->check(facts{}, probe_data("f.absent\n")));
}

TEST_F(OpsTemplate, MissingVariableFailsBindNamingTemplateAndLine) {
    auto p = parse("- template: {src: broken.mustache, path: /etc/b.conf}\n");
    ASSERT_TRUE(p) << p.error().message;
    auto bound = p->steps.at(0).mod->bind(vars());
    ASSERT_FALSE(bound);
    EXPECT_NE(bound.error().message.find("broken.mustache:2:"), std::string::npos)
        << bound.error().message;
    EXPECT_NE(bound.error().message.find("prot"), std::string::npos);
}

TEST_F(OpsTemplate, ParseErrorsNameTheStepAndKey) {
    auto missing = parse("- template: {src: nope.mustache, path: /etc/x}\n");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("template.src"), std::string::npos)
        << missing.error().message;
    EXPECT_NE(missing.error().message.find("nope.mustache"), std::string::npos);
    auto no_path = parse("- template: {src: app.conf.mustache}\n");
    ASSERT_FALSE(no_path);
    EXPECT_NE(no_path.error().message.find("template.path"), std::string::npos);
    std::ofstream(dir_ + "/unclosed.mustache") << "a\n{{#x}}\n";
    auto syntax = parse("- template: {src: unclosed.mustache, path: /etc/x}\n");
    std::remove((dir_ + "/unclosed.mustache").c_str());
    ASSERT_FALSE(syntax);
    EXPECT_NE(syntax.error().message.find("unclosed.mustache:2:"), std::string::npos)
        << syntax.error().message;
}

TEST(OpsFacts, FactsAsTemplateVariables) {
    facts f;
    f.distro = "debian";
    f.arch = "aarch64";
    f.ssh_port = 2222;
    auto j = facts_json(f);
    EXPECT_EQ(j["distro"], "debian");
    EXPECT_EQ(j["arch"], "aarch64");
    EXPECT_EQ(j["ssh_port"], "2222");
    for (auto name : facts::names()) EXPECT_TRUE(j.contains(std::string(name))) << name;
}

}  // namespace
}  // namespace tunnel::ops
