#include "inventory/inventory.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <fstream>

#include "inventory/connection.hpp"

namespace tunnel::inventory {
namespace {

std::vector<std::string> names(const core::result<std::vector<host>>& hosts) {
    EXPECT_TRUE(hosts.has_value()) << hosts.error().message;
    std::vector<std::string> out;
    if (hosts)
        for (const auto& h : *hosts) out.push_back(h.name);
    return out;
}

inventory yaml(std::string_view text) {
    auto inv = parse_yaml_inventory(text, "inv.yml");
    EXPECT_TRUE(inv.has_value()) << inv.error().message;
    return inv ? *inv : inventory{};
}

inventory ini(std::string_view text) {
    auto inv = parse_ini_inventory(text, "hosts.ini");
    EXPECT_TRUE(inv.has_value()) << inv.error().message;
    return inv ? *inv : inventory{};
}

std::string yaml_error(std::string_view text) {
    auto inv = parse_yaml_inventory(text, "inv.yml");
    EXPECT_FALSE(inv.has_value());
    return inv ? "" : inv.error().message;
}

std::string ini_error(std::string_view text) {
    auto inv = parse_ini_inventory(text, "hosts.ini");
    EXPECT_FALSE(inv.has_value());
    return inv ? "" : inv.error().message;
}

constexpr std::string_view fleet_yaml = R"(
all:
  vars:
    tier: base
    ansible_user: admin
  hosts:
    bastion:
      ansible_host: 10.0.0.2
  children:
    web:
      vars:
        tier: web
        http_port: 80
      hosts:
        web[01:03]:
      children:
        web_canary:
          vars:
            tier: canary
          hosts:
            web03:
              tier: host-level
    db:
      hosts:
        db1:
          ansible_host: 10.0.1.1
          ansible_port: 2222
          ansible_user: postgres
          ansible_ssh_private_key_file: /keys/db
        db2:
    prod:
      children:
        web:
        db:
      vars:
        env: production
        tier: prod
)";

TEST(InventoryYaml, GroupsChildrenAndRanges) {
    auto inv = yaml(fleet_yaml);
    EXPECT_EQ(names(inv.select("all")),
              (std::vector<std::string>{"bastion", "web01", "web02", "web03", "db1", "db2"}));
    EXPECT_EQ(names(inv.select("web")), (std::vector<std::string>{"web01", "web02", "web03"}));
    EXPECT_EQ(names(inv.select("prod")),
              (std::vector<std::string>{"web01", "web02", "web03", "db1", "db2"}));
    EXPECT_EQ(names(inv.select("ungrouped")), (std::vector<std::string>{"bastion"}));
    EXPECT_EQ(inv.group_hosts("web_canary"), (std::vector<std::string>{"web03"}));
    const host* w3 = inv.find_host("web03");
    ASSERT_NE(w3, nullptr);
    EXPECT_EQ(w3->groups, (std::vector<std::string>{"all", "prod", "web", "web_canary"}));
}

TEST(InventoryYaml, VariablePrecedenceLikeAnsible) {
    auto inv = yaml(fleet_yaml);
    // host > child group > parent group > all
    EXPECT_EQ(inv.find_host("web03")->vars["tier"], "host-level");
    EXPECT_EQ(inv.find_host("web01")->vars["tier"], "web");  // web (depth 2) beats prod (depth 1)
    EXPECT_EQ(inv.find_host("db2")->vars["tier"], "prod");   // prod beats all
    EXPECT_EQ(inv.find_host("bastion")->vars["tier"], "base");  // all only
    EXPECT_EQ(inv.find_host("web02")->vars["http_port"], 80);   // YAML numbers stay numbers
    EXPECT_EQ(inv.find_host("web02")->vars["env"], "production");
}

TEST(InventoryYaml, ConnectionVariables) {
    auto inv = yaml(fleet_yaml);
    const auto& db1 = inv.find_host("db1")->connection;
    EXPECT_EQ(db1.address, "10.0.1.1");
    EXPECT_EQ(db1.port, 2222);
    EXPECT_EQ(db1.user, "postgres");
    EXPECT_EQ(db1.private_key_file, "/keys/db");
    const auto& web = inv.find_host("web01")->connection;
    EXPECT_FALSE(web.address);
    EXPECT_EQ(web.user, "admin");  // from all.vars
    EXPECT_FALSE(web.port);
}

TEST(InventoryPatterns, UnionIntersectionExclusionGlobs) {
    auto inv = yaml(fleet_yaml);
    EXPECT_EQ(names(inv.select("web:db")),
              (std::vector<std::string>{"web01", "web02", "web03", "db1", "db2"}));
    EXPECT_EQ(names(inv.select("web,db")), names(inv.select("web:db")));
    EXPECT_EQ(names(inv.select("web:&web_canary")), (std::vector<std::string>{"web03"}));
    EXPECT_EQ(names(inv.select("prod:!web")), (std::vector<std::string>{"db1", "db2"}));
    EXPECT_EQ(names(inv.select("all:!prod")), (std::vector<std::string>{"bastion"}));
    EXPECT_EQ(names(inv.select("web0*")), (std::vector<std::string>{"web01", "web02", "web03"}));
    EXPECT_EQ(names(inv.select("d*")),
              (std::vector<std::string>{"db1", "db2"}));  // group db and hosts db*
    EXPECT_EQ(names(inv.select("*canary")),
              (std::vector<std::string>{"web03"}));  // glob over group names
    EXPECT_EQ(names(inv.select("~web0[12]")), (std::vector<std::string>{"web01", "web02"}));
    EXPECT_EQ(names(inv.select("*")).size(), 6u);
    EXPECT_EQ(names(inv.select("db1")), (std::vector<std::string>{"db1"}));
    EXPECT_EQ(names(inv.select("!web")), (std::vector<std::string>{"bastion", "db1", "db2"}));
    EXPECT_TRUE(names(inv.select("nomatch*")).empty());
}

TEST(InventoryPatterns, UnknownNamesAreAdHocTargetsOrErrors) {
    auto inv = yaml(fleet_yaml);
    auto sel = inv.select("web01,deploy@10.9.9.9:2200,bastion");
    ASSERT_TRUE(sel) << sel.error().message;
    ASSERT_EQ(sel->size(), 3u);
    EXPECT_EQ((*sel)[2].name, "deploy@10.9.9.9:2200");
    EXPECT_TRUE((*sel)[2].ad_hoc);
    EXPECT_EQ(names(inv.select("myalias")), (std::vector<std::string>{"myalias"}));
    EXPECT_EQ(names(inv.select("root@h:22")), (std::vector<std::string>{"root@h:22"}));

    auto strict = inv.select("webz", unknown_names::error);
    ASSERT_FALSE(strict);
    EXPECT_EQ(strict.error().code, core::errc::not_found);
    EXPECT_NE(strict.error().message.find("no host or group named \"webz\""), std::string::npos)
        << strict.error().message;
    auto bad_excl = inv.select("web:!dbz");
    ASSERT_FALSE(bad_excl);
    EXPECT_NE(bad_excl.error().message.find("dbz"), std::string::npos);
    EXPECT_FALSE(inv.select("web:!"));
    EXPECT_FALSE(inv.select(""));
    EXPECT_FALSE(inv.select("~web("));
}

TEST(InventoryPatterns, LimitNarrowsASelection) {
    auto inv = yaml(fleet_yaml);
    auto all = inv.select("all");
    ASSERT_TRUE(all);
    EXPECT_EQ(names(inv.limit(*all, "web:!web_canary")),
              (std::vector<std::string>{"web01", "web02"}));
    EXPECT_EQ(names(inv.limit(*all, "db2")), (std::vector<std::string>{"db2"}));
    auto bad = inv.limit(*all, "nosuch");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, core::errc::not_found);
}

TEST(InventoryYaml, StrictValidationSaysWhere) {
    auto e = yaml_error("all:\n  hostz:\n    web1:\n");
    EXPECT_NE(e.find("inv.yml:2: all.hostz: unknown key"), std::string::npos) << e;
    e = yaml_error("all:\n  hosts:\n    - web1\n");
    EXPECT_NE(e.find("inv.yml:3: all.hosts: hosts must be a mapping"), std::string::npos) << e;
    e = yaml_error("all:\n  hosts:\n    web1:\n      ansible_port: 70000\n");
    EXPECT_NE(e.find("host web1: ansible_port: 70000 is not a port number"), std::string::npos)
        << e;
    e = yaml_error("all:\n  hosts:\n    web1: 3\n");
    EXPECT_NE(e.find("must be a mapping of its variables"), std::string::npos) << e;
    e = yaml_error(
        "all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            "
        "a:\n");
    EXPECT_NE(e.find("cycle"), std::string::npos) << e;
    e = yaml_error("all:\n  hosts: {web: }\n  children:\n    web:\n");
    EXPECT_NE(e.find("both a host and a group"), std::string::npos) << e;
    e = yaml_error("all:\n  children:\n    \"we b\":\n");
    EXPECT_NE(e.find("group name \"we b\""), std::string::npos) << e;
    e = yaml_error("all:\n  hosts:\n    web[3:1]:\n");
    EXPECT_NE(e.find("start is after end"), std::string::npos) << e;
    e = yaml_error("all: [\n");
    EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
    e = yaml_error("- web1\n");
    EXPECT_NE(e.find("mapping of groups"), std::string::npos) << e;
    e = yaml_error("all:\n  hosts:\n    w1:\n      ansible_connection: local\n");
    EXPECT_NE(e.find("only"), std::string::npos) << e;
}

TEST(InventoryYaml, TopLevelGroupsAreChildrenOfAll) {
    auto inv = yaml("web:\n  hosts:\n    w1:\n    w2:\ndb:\n  hosts:\n    d1:\n");
    EXPECT_EQ(names(inv.select("all")), (std::vector<std::string>{"w1", "w2", "d1"}));
    EXPECT_EQ(names(inv.select("db")), (std::vector<std::string>{"d1"}));
    EXPECT_EQ(names(inv.select("ungrouped")), (std::vector<std::string>{}));
}

constexpr std::string_view fleet_ini = R"(# comment
bastion ansible_host=10.0.0.2

[web]
web[01:03] ansible_user=deploy
web04:2201 http_port=8080 motd="hello world"   # trailing comment

[db]
db1 ansible_host=10.0.1.1 ansible_port=2222

[prod:children]
web
db

[prod:vars]
env = production
tier=prod

[web:vars]
tier=web
; another comment
)";

TEST(InventoryIni, SectionsVarsChildrenRanges) {
    auto inv = ini(fleet_ini);
    EXPECT_EQ(names(inv.select("all")),
              (std::vector<std::string>{"bastion", "web01", "web02", "web03", "web04", "db1"}));
    EXPECT_EQ(names(inv.select("prod:!db")),
              (std::vector<std::string>{"web01", "web02", "web03", "web04"}));
    EXPECT_EQ(names(inv.select("ungrouped")), (std::vector<std::string>{"bastion"}));
    const host* w4 = inv.find_host("web04");
    ASSERT_NE(w4, nullptr);
    EXPECT_EQ(w4->connection.port, 2201);
    EXPECT_EQ(w4->vars["http_port"], 8080);
    EXPECT_EQ(w4->vars["motd"], "hello world");
    EXPECT_EQ(w4->vars["tier"], "web");
    EXPECT_EQ(w4->vars["env"], "production");
    EXPECT_EQ(inv.find_host("web01")->connection.user, "deploy");
    EXPECT_EQ(inv.find_host("db1")->connection.port, 2222);
    EXPECT_EQ(inv.find_host("db1")->vars["tier"], "prod");
    EXPECT_EQ(inv.find_host("bastion")->connection.address, "10.0.0.2");
}

TEST(InventoryIni, ErrorsNameFileAndLine) {
    auto e = ini_error("[web]\nw1\n[web:varz]\n");
    EXPECT_NE(e.find("hosts.ini:3: unknown section suffix :varz"), std::string::npos) << e;
    e = ini_error("[web]\nw1 port\n");
    EXPECT_NE(e.find("hosts.ini:2: \"port\": host variables are written key=value"),
              std::string::npos)
        << e;
    e = ini_error("[web:vars]\njust-a-word\n");
    EXPECT_NE(e.find("hosts.ini:2: expected key=value"), std::string::npos) << e;
    e = ini_error("[web\n");
    EXPECT_NE(e.find("hosts.ini:1:"), std::string::npos) << e;
    e = ini_error("[web]\nw1 ansible_port=abc\n");
    EXPECT_NE(e.find("hosts.ini:2: host w1: ansible_port"), std::string::npos) << e;
    e = ini_error("[web]\nw1 a=\"unterminated\n");
    EXPECT_NE(e.find("unterminated"), std::string::npos) << e;
}

TEST(InventoryRanges, Expansion) {
    EXPECT_EQ(*expand_host_range("web[01:03]"),
              (std::vector<std::string>{"web01", "web02", "web03"}));
    EXPECT_EQ(*expand_host_range("n[0:10:5].x"),
              (std::vector<std::string>{"n0.x", "n5.x", "n10.x"}));
    EXPECT_EQ(*expand_host_range("db-[a:c]"), (std::vector<std::string>{"db-a", "db-b", "db-c"}));
    EXPECT_EQ(expand_host_range("r[1:2]c[1:2]")->size(), 4u);
    EXPECT_EQ(*expand_host_range("plain"), (std::vector<std::string>{"plain"}));
    EXPECT_FALSE(expand_host_range("w[1:"));
    EXPECT_FALSE(expand_host_range("w[1]"));
    EXPECT_FALSE(expand_host_range("w[1:a]"));
    EXPECT_FALSE(expand_host_range("w[0:9999999]"));
}

TEST(InventoryInline, CommaListOfTargets) {
    auto inv = parse_inline_inventory("web1, deploy@10.0.0.7:2201,");
    ASSERT_TRUE(inv) << inv.error().message;
    ASSERT_EQ(inv->hosts().size(), 2u);
    const auto& h = inv->hosts()[1];
    EXPECT_EQ(h.name, "deploy@10.0.0.7:2201");
    EXPECT_EQ(h.connection.address, "10.0.0.7");
    EXPECT_EQ(h.connection.user, "deploy");
    EXPECT_EQ(h.connection.port, 2201);
}

class InventoryFiles : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() / ("inv-test-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::string write(const std::string& name, std::string_view text) {
        auto p = (dir_ / name).string();
        std::ofstream(p) << text;
        return p;
    }
    std::filesystem::path dir_;
};

TEST_F(InventoryFiles, FormatFromExtensionOrContent) {
    auto y = load_inventory(write("inv.yml", fleet_yaml));
    ASSERT_TRUE(y) << y.error().message;
    EXPECT_EQ(y->hosts().size(), 6u);
    auto i = load_inventory(write("hosts", fleet_ini));
    ASSERT_TRUE(i) << i.error().message;
    EXPECT_EQ(i->hosts().size(), 6u);
    auto sniffed = load_inventory(write("inventory", fleet_yaml));
    ASSERT_TRUE(sniffed) << sniffed.error().message;
    EXPECT_EQ(sniffed->hosts().size(), 6u);
    auto missing = load_inventory((dir_ / "nope").string());
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, core::errc::not_found);
    auto inline_list = load_inventory("a,b");
    ASSERT_TRUE(inline_list);
    EXPECT_EQ(inline_list->hosts().size(), 2u);
}

TEST_F(InventoryFiles, ConnectOptionsFromHostVarsFlagsAndSshConfig) {
    auto key = write("key", "not really a key");
    std::filesystem::permissions(
        key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    auto cfg_path = write("ssh_config",
                          "Host web01\n  HostName 192.0.2.11\n  User cfguser\n  Port 2022\n"
                          "Host myalias\n  HostName 192.0.2.99\n  Port 2999\n");
    ssh::resolve_context ctx;
    ctx.home = dir_.string();
    ctx.local_user = "me";
    auto config = ssh::ssh_config::load_file(cfg_path, ctx);
    ASSERT_TRUE(config) << config.error().message;
    auto inv = parse_yaml_inventory(
        fmt::format("all:\n  hosts:\n    web01:\n    web02:\n      ansible_host: 192.0.2.12\n"
                    "      ansible_port: 2202\n      ansible_user: deploy\n"
                    "      ansible_ssh_private_key_file: {}\n",
                    key),
        "inv.yml");
    ASSERT_TRUE(inv) << inv.error().message;
    ssh::client_flags flags;
    flags.user = "cliuser";

    // ssh_config alias by name; -l beats the config's User, as with ssh.
    auto web01 = connect_options_for(*inv->find_host("web01"), *config, flags);
    ASSERT_TRUE(web01) << web01.error().message;
    EXPECT_EQ(web01->host, "192.0.2.11");
    EXPECT_EQ(web01->port, 2022);
    EXPECT_EQ(web01->user, "cliuser");

    // Host variables beat the command line.
    auto web02 = connect_options_for(*inv->find_host("web02"), *config, flags);
    ASSERT_TRUE(web02) << web02.error().message;
    EXPECT_EQ(web02->host, "192.0.2.12");
    EXPECT_EQ(web02->port, 2202);
    EXPECT_EQ(web02->user, "deploy");
    ASSERT_FALSE(web02->identity_files.empty());
    EXPECT_EQ(web02->identity_files.front(), key);

    // Ad-hoc targets resolve like exec's TARGET.
    auto sel = inv->select("myalias,root@192.0.2.50:2500");
    ASSERT_TRUE(sel) << sel.error().message;
    ASSERT_EQ(sel->size(), 2u);
    auto alias = connect_options_for((*sel)[0], *config, flags);
    ASSERT_TRUE(alias) << alias.error().message;
    EXPECT_EQ(alias->host, "192.0.2.99");
    EXPECT_EQ(alias->port, 2999);
    auto direct = connect_options_for((*sel)[1], *config, flags);
    ASSERT_TRUE(direct) << direct.error().message;
    EXPECT_EQ(direct->host, "192.0.2.50");
    EXPECT_EQ(direct->port, 2500);
    EXPECT_EQ(direct->user, "root");

    // A key file that is missing is refused before anything is sent.
    auto bad = parse_yaml_inventory(
        "all:\n  hosts:\n    w:\n      ansible_ssh_private_key_file: /nonexistent/key\n", "i.yml");
    ASSERT_TRUE(bad);
    auto refused = connect_options_for(bad->hosts()[0], *config, flags);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("host w: identity file /nonexistent/key"),
              std::string::npos)
        << refused.error().message;
}

}  // namespace
}  // namespace tunnel::inventory
