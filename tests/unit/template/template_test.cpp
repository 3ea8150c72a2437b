#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "inventory/inventory.hpp"
#include "template/template.hpp"
#include "template/variables.hpp"

namespace tunnel::templating {
namespace {

std::string render_ok(std::string_view text, const nlohmann::json& vars) {
    auto r = render_template(text, "t.mustache", vars);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : std::string();
}

std::string render_error(std::string_view text, const nlohmann::json& vars) {
    auto r = render_template(text, "t.mustache", vars);
    EXPECT_FALSE(r) << "rendered: " << *r;
    return r ? std::string() : r.error().message;
}

TEST(Template, SubstitutesVariablesNumbersAndPaths) {
    auto vars = nlohmann::json{{"name", "shop"},
                               {"port", 8080},
                               {"ratio", 1.5},
                               {"db", {{"host", "db1"}, {"port", 5432}}}};
    EXPECT_EQ(render_ok("app={{ name }} listen={{port}} r={{ratio}} db={{db.host}}:{{ db.port }}\n",
                        vars),
              "app=shop listen=8080 r=1.5 db=db1:5432\n");
}

TEST(Template, SectionsAndInvertedSections) {
    auto text = "{{#tls}}ssl on;\n{{/tls}}{{^tls}}ssl off;\n{{/tls}}";
    EXPECT_EQ(render_ok(text, {{"tls", true}}), "ssl on;\n");
    EXPECT_EQ(render_ok(text, {{"tls", false}}), "ssl off;\n");
    EXPECT_EQ(render_ok(text, {{"tls", nullptr}}), "ssl off;\n");
    // A mapping opens a section whose names resolve inside it first.
    EXPECT_EQ(render_ok("{{#db}}{{host}}:{{port}}{{/db}}", {{"db", {{"host", "h"}, {"port", 1}}}}),
              "h:1");
}

TEST(Template, LoopsOverListsOfStringsAndMappings) {
    EXPECT_EQ(
        render_ok("{{#peers}}server {{.}};\n{{/peers}}", {{"peers", {"10.0.0.1", "10.0.0.2"}}}),
        "server 10.0.0.1;\nserver 10.0.0.2;\n");
    auto users = nlohmann::json{{"domain", "example.org"},
                                {"users", {{{"name", "ann"}}, {{"name", "bob"}}}}};
    // Names not in the item resolve in the enclosing context (domain).
    EXPECT_EQ(render_ok("{{#users}}{{name}}@{{domain}}\n{{/users}}", users),
              "ann@example.org\nbob@example.org\n");
    EXPECT_EQ(render_ok("{{#users}}x{{/users}}{{^users}}nobody{{/users}}",
                        {{"users", nlohmann::json::array()}}),
              "nobody");
}

TEST(Template, MissingVariableNamesTemplateAndLine) {
    auto msg = render_error("a={{a}}\nb={{ b }}\nc={{ missing_one }}\n", {{"a", "1"}, {"b", "2"}});
    EXPECT_NE(msg.find("t.mustache:3:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing_one"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not defined"), std::string::npos) << msg;
}

TEST(Template, MissingVariableInsideALoopIsFoundOnItsLine) {
    auto msg = render_error("upstream {\n{{#peers}}\n  server {{host}}:{{prot}};\n{{/peers}}\n}\n",
                            {{"peers", {{{"host", "a"}, {"port", 1}}}}});
    EXPECT_NE(msg.find("t.mustache:3:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("prot"), std::string::npos) << msg;
}

TEST(Template, MissingSectionNameAndMissingPathAreErrors) {
    EXPECT_NE(render_error("x\n{{#tls}}on{{/tls}}", nlohmann::json::object()).find("t.mustache:2:"),
              std::string::npos);
    EXPECT_NE(render_error("{{^tls}}off{{/tls}}", nlohmann::json::object()).find("tls"),
              std::string::npos);
    EXPECT_NE(render_error("{{db.host}}", {{"db", {{"port", 1}}}}).find("db.host"),
              std::string::npos);
}

TEST(Template, NamesInASectionThatDoesNotRenderAreNotRequired) {
    // tls is false: its block (and cert inside it) is not rendered.
    EXPECT_EQ(render_ok("{{#tls}}{{cert}}{{/tls}}ok", {{"tls", false}}), "ok");
}

TEST(Template, AValueWithoutTextInAVariableTagIsAnError) {
    for (const auto& v : {nlohmann::json(true), nlohmann::json(nullptr), nlohmann::json::array(),
                          nlohmann::json::object()}) {
        auto msg = render_error("\n{{ flag }}", {{"flag", v}});
        EXPECT_NE(msg.find("t.mustache:2:"), std::string::npos) << msg;
        EXPECT_NE(msg.find("no text"), std::string::npos) << msg;
    }
}

TEST(Template, NothingIsHtmlEscaped) {
    // Config files, not HTML: both forms insert the value as it is.
    auto vars = nlohmann::json{{"url", "http://a/?x=1&y=<2>\"'"}};
    EXPECT_EQ(render_ok("{{ url }}|{{{ url }}}|{{& url }}", vars),
              "http://a/?x=1&y=<2>\"'|http://a/?x=1&y=<2>\"'|http://a/?x=1&y=<2>\"'");
}

TEST(Template, SyntaxErrorsNameTheLine) {
    auto c = check_template("ok\n{{#open}}\nnever closed\n", "s.mustache");
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("s.mustache:2:"), std::string::npos) << c.error().message;
    auto u = check_template("a\nb {{ unclosed\n", "s.mustache");
    ASSERT_FALSE(u);
    EXPECT_NE(u.error().message.find("s.mustache:2:"), std::string::npos) << u.error().message;
    auto p = check_template("{{> other }}", "s.mustache");
    ASSERT_FALSE(p);
    EXPECT_NE(p.error().message.find("partial"), std::string::npos);
}

TEST(Template, OutputIsLimited) {
    auto many = nlohmann::json::array();
    for (int i = 0; i < 2000; ++i) many.push_back(i);
    auto vars = nlohmann::json{{"a", many}, {"b", many}, {"c", many}};
    auto msg = render_error("{{#a}}{{#b}}{{#c}}xxxxxxxx{{/c}}{{/b}}{{/a}}", vars);
    EXPECT_NE(msg.find("larger than"), std::string::npos) << msg;
}

TEST(TemplateVariables, PrecedenceInventoryGroupHostThenExtraVars) {
    auto inv = inventory::parse_yaml_inventory(R"(all:
  vars: {port: 80, greeting: hello, tier: all}
  children:
    web:
      vars: {port: 8080, tier: web}
      hosts:
        web1: {port: 9090}
        web2: {}
)",
                                               "inv.yaml");
    ASSERT_TRUE(inv) << inv.error().message;
    const auto* web1 = inv->find_host("web1");
    const auto* web2 = inv->find_host("web2");
    ASSERT_TRUE(web1 && web2);
    auto extra = parse_extra_vars({"greeting=hi"});
    ASSERT_TRUE(extra) << extra.error().message;
    auto v1 = host_variables("web1", web1->vars, *extra);
    auto v2 = host_variables("web2", web2->vars, *extra);
    EXPECT_EQ(v1["port"], 9090);      // host over group
    EXPECT_EQ(v2["port"], 8080);      // group over all
    EXPECT_EQ(v2["tier"], "web");     // group over all
    EXPECT_EQ(v1["greeting"], "hi");  // --extra-vars over everything
    EXPECT_EQ(v1["inventory_hostname"], "web1");
    EXPECT_EQ(render_ok("{{inventory_hostname}} {{port}} {{tier}} {{greeting}}", v2),
              "web2 8080 web hi");
}

TEST(TemplateVariables, ExtraVarsFromFilesAndLaterOnesWin) {
    auto path = ::testing::TempDir() + "/extra_vars_test.yaml";
    {
        std::ofstream out(path);
        out << "port: 7000\nfeatures: [a, b]\nname: fromfile\n";
    }
    auto extra = parse_extra_vars({"name=first", "@" + path, "port=7001"});
    ASSERT_TRUE(extra) << extra.error().message;
    EXPECT_EQ((*extra)["name"], "fromfile");
    EXPECT_EQ((*extra)["port"], "7001");  // KEY=VALUE is a string
    EXPECT_EQ((*extra)["features"], (nlohmann::json{"a", "b"}));
    std::remove(path.c_str());
    auto json_path = ::testing::TempDir() + "/extra_vars_test.json";
    {
        std::ofstream out(json_path);
        out << R"({"replicas": 3, "tls": true})";
    }
    auto j = parse_extra_vars({"@" + json_path});
    ASSERT_TRUE(j) << j.error().message;
    EXPECT_EQ((*j)["replicas"], 3);
    EXPECT_EQ((*j)["tls"], true);
    std::remove(json_path.c_str());
}

TEST(TemplateVariables, BadExtraVarsAreExplained) {
    for (const auto* bad : {"novalue", "=x", "9lives=1", "a-b=1"}) {
        auto r = parse_extra_vars({bad});
        ASSERT_FALSE(r) << bad;
        EXPECT_NE(r.error().message.find("NAME=VALUE"), std::string::npos) << r.error().message;
    }
    auto missing = parse_extra_vars({"@/nonexistent/vars.yaml"});
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("/nonexistent/vars.yaml"), std::string::npos);
    auto path = ::testing::TempDir() + "/extra_vars_list.yaml";
    {
        std::ofstream out(path);
        out << "- a\n- b\n";
    }
    auto list = parse_extra_vars({"@" + path});
    ASSERT_FALSE(list);
    EXPECT_NE(list.error().message.find("mapping"), std::string::npos);
    std::remove(path.c_str());
}

}  // namespace
}  // namespace tunnel::templating
