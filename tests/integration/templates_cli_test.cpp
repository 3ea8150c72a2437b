// Variables and templates end to end against a real sshd on 127.0.0.1 (every
// inventory host is that server under another name): `tunnel apply` with a
// `template` step using inventory, group and host vars, --extra-vars and
// facts, idempotent on the second run; `tunnel deploy` rendering `templates:`
// into each release; and a missing variable for one host stopping apply and
// deploy before any host is touched.
#include <sys/stat.h>
#include <sys/utsname.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void spit(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

class TemplatesCli : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd_ = new sshd_fixture(std::move(*s));
    }
    static void TearDownTestSuite() {
        delete sshd_;
        sshd_ = nullptr;
    }
    void SetUp() override {
        auto d = temp_dir::create("templates-cli");
        ASSERT_TRUE(d) << d.error().message;
        dir_.emplace(std::move(*d));
    }
    // A YAML inventory: inventory-wide vars, group `web` vars, then `hosts`
    // (name -> its host vars as YAML flow mapping entries).
    std::string write_inventory(const std::vector<std::pair<std::string, std::string>>& hosts) {
        std::string text =
            "all:\n  vars: {greeting: hello, port: 80, workers: 1}\n  children:\n    web:\n"
            "      vars: {port: 8080, upstreams: [a.internal, b.internal]}\n      hosts:\n";
        for (const auto& [name, vars] : hosts)
            text += fmt::format(
                "        {}: {{ansible_host: 127.0.0.1, ansible_port: {}, ansible_user: "
                "root{}{}}}\n",
                name, sshd_->port(), vars.empty() ? "" : ", ", vars);
        auto path = dir_->file("inventory.yaml");
        spit(path, text);
        return path;
    }
    std::vector<std::string> cli_args(const std::string& cmd, const std::string& file,
                                      const std::string& inventory,
                                      std::vector<std::string> extra) {
        std::vector<std::string> args{cmd, file, "-i", inventory};
        auto flags = fixture_flags(*sshd_);
        for (std::size_t i = 0; i < flags.size(); ++i) {
            if (flags[i] == "-p") {
                ++i;  // the port comes from the inventory
                continue;
            }
            args.push_back(flags[i] == "-i" ? "--private-key" : flags[i]);
        }
        args.insert(args.end(), extra.begin(), extra.end());
        return args;
    }

    static sshd_fixture* sshd_;
    std::optional<temp_dir> dir_;
};
sshd_fixture* TemplatesCli::sshd_ = nullptr;

TEST_F(TemplatesCli, ApplyRendersHostGroupAndExtraVarsThenReportsNoChange) {
    auto inv = write_inventory({{"web1", "workers: 4"}});
    spit(dir_->file("app.conf.mustache"),
         "# {{inventory_hostname}} ({{facts.arch}})\ngreeting={{greeting}}\nport={{ port }}\n"
         "workers={{workers}}\n{{#upstreams}}\nupstream {{.}};\n{{/upstreams}}\n{{#tls}}\n"
         "ssl on;\n{{/tls}}\n");
    spit(dir_->file("extra.yaml"), "tls: true\n");
    const auto target = dir_->file("app.conf");
    spit(dir_->file("plan.yaml"),
         fmt::format("- name: app config\n  template: {{src: app.conf.mustache, path: {}, mode: "
                     "\"0640\"}}\n",
                     target));
    const std::vector<std::string> extra{"-e", "greeting=hi", "--extra-vars",
                                         "@" + dir_->file("extra.yaml")};
    auto first = run_tunnel(cli_args("apply", dir_->file("plan.yaml"), inv, extra));
    ASSERT_EQ(first.exit_code, 0) << first.describe() << first.out;
    EXPECT_NE(first.out.find("web1  ok=0 changed=1 failed=0"), std::string::npos) << first.out;
    struct utsname u {};
    ASSERT_EQ(::uname(&u), 0);
    // Host vars over group vars over inventory-wide vars; --extra-vars over all.
    EXPECT_EQ(slurp(target), fmt::format("# web1 ({})\ngreeting=hi\nport=8080\nworkers=4\n"
                                         "upstream a.internal;\nupstream b.internal;\nssl on;\n",
                                         u.machine));
    struct stat st {};
    ASSERT_EQ(::stat(target.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);

    auto second = run_tunnel(cli_args("apply", dir_->file("plan.yaml"), inv, extra));
    ASSERT_EQ(second.exit_code, 0) << second.describe() << second.out;
    EXPECT_NE(second.out.find("web1  ok=1 changed=0 failed=0"), std::string::npos) << second.out;

    // Without the extra vars `tls` is defined nowhere: an error with the line, nothing changed.
    auto strict = run_tunnel(cli_args("apply", dir_->file("plan.yaml"), inv, {}));
    EXPECT_EQ(strict.exit_code, 1) << strict.describe() << strict.out;
    EXPECT_NE(strict.out.find("app.conf.mustache:8: {{#tls}} is not defined"), std::string::npos)
        << strict.out;
    // Other values: --check shows the diff and changes nothing.
    spit(dir_->file("tls-off.json"), R"({"tls": false})");
    auto check =
        run_tunnel(cli_args("apply", dir_->file("plan.yaml"), inv,
                            {"--check", "--diff", "-e", "@" + dir_->file("tls-off.json")}));
    ASSERT_EQ(check.exit_code, 0) << check.describe() << check.out;
    EXPECT_NE(check.out.find("-greeting=hi\n+greeting=hello\n"), std::string::npos) << check.out;
    EXPECT_NE(check.out.find("-ssl on;\n"), std::string::npos) << check.out;
    EXPECT_NE(slurp(target).find("greeting=hi"), std::string::npos);
}

TEST_F(TemplatesCli, ApplyWithAVariableMissingOnOneHostTouchesNoHost) {
    // web1 has `secret`, web2 does not; step 1 would change every host.
    auto inv = write_inventory({{"web1", "secret: s3cret"}, {"web2", ""}});
    spit(dir_->file("secret.mustache"), "user=app\npassword={{ secret }}\n");
    spit(dir_->file("plan.yaml"),
         fmt::format("- name: marker\n  file: {{path: {0}, content: \"x\\n\"}}\n"
                     "- name: secret config\n  template: {{src: secret.mustache, path: {1}}}\n",
                     dir_->file("touched"), dir_->file("secret.conf")));
    auto r = run_tunnel(cli_args("apply", dir_->file("plan.yaml"), inv, {}));
    EXPECT_EQ(r.exit_code, 1) << r.describe() << r.out;
    EXPECT_NE(r.out.find("web2: failed step 2 (secret config)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("secret.mustache:2: {{ secret }} is not defined"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("web1: skipped plan (not run: a template failed to render"),
              std::string::npos)
        << r.out;
    EXPECT_FALSE(fs::exists(dir_->file("touched")));
    EXPECT_FALSE(fs::exists(dir_->file("secret.conf")));
}

class TemplatesDeployCli : public TemplatesCli {
  protected:
    void SetUp() override {
        TemplatesCli::SetUp();
        auto src = dir_->file("src");
        fs::create_directories(src + "/config");
        spit(src + "/app.txt", "v1\n");
        auto r = run({"tar", "-czf", dir_->file("app.tar.gz"), "-C", src, "."});
        ASSERT_TRUE(r.ok()) << r.describe();
        spit(dir_->file("env.mustache"),
             "HOST={{inventory_hostname}}\nPORT={{port}}\nNOTE={{note}}\n{{#db_password}}"
             "DB_PASSWORD={{db_password}}\n{{/db_password}}");
        spit(dir_->file("deploy.yaml"), R"(app: shop
root: "{{ deploy_root }}"
artifact: app.tar.gz
shared: [log]
templates:
  - {src: env.mustache, dest: config/app.env, mode: "0640"}
strategy: {type: rolling, batch: 1}
)");
    }
    [[nodiscard]] std::string root(int i) const { return dir_->file(fmt::format("h{}", i)); }
};

TEST_F(TemplatesDeployCli, DeployRendersTemplatesIntoEachRelease) {
    auto inv =
        write_inventory({{"h1", fmt::format("deploy_root: {}, db_password: pw1", root(1))},
                         {"h2", fmt::format("deploy_root: {}, db_password: false", root(2))}});
    auto r = run_tunnel(cli_args("deploy", dir_->file("deploy.yaml"), inv, {"-e", "note=first"}));
    ASSERT_EQ(r.exit_code, 0) << r.describe() << r.out;
    EXPECT_EQ(slurp(root(1) + "/current/config/app.env"),
              "HOST=h1\nPORT=8080\nNOTE=first\nDB_PASSWORD=pw1\n");
    EXPECT_EQ(slurp(root(2) + "/current/config/app.env"), "HOST=h2\nPORT=8080\nNOTE=first\n");
    EXPECT_EQ(slurp(root(1) + "/current/app.txt"), "v1\n");
    struct stat st {};
    ASSERT_EQ(::stat((root(1) + "/current/config/app.env").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
}

TEST_F(TemplatesDeployCli, AMissingVariableStopsTheDeployBeforeAnyHostIsTouched) {
    // `note` is set for h1 only (and not with -e): h2's render fails.
    auto inv =
        write_inventory({{"h1", fmt::format("deploy_root: {}, note: n, db_password: x", root(1))},
                         {"h2", fmt::format("deploy_root: {}, db_password: y", root(2))}});
    auto r = run_tunnel(cli_args("deploy", dir_->file("deploy.yaml"), inv, {}));
    EXPECT_EQ(r.exit_code, 2) << r.describe() << r.out;
    EXPECT_NE(
        r.err.find("host h2: " + dir_->file("env.mustache") + ":3: {{ note }} is not defined"),
        std::string::npos)
        << r.err;
    EXPECT_FALSE(fs::exists(root(1))) << "h1 was touched";
    EXPECT_FALSE(fs::exists(root(2))) << "h2 was touched";
}

TEST_F(TemplatesDeployCli, TemplatesThatNameFactsGetEachHostsFactsReadBeforeAnythingIsTouched) {
    auto inv = write_inventory({{"h1", fmt::format("deploy_root: {}", root(1))}});
    spit(dir_->file("facts.mustache"), "ARCH={{ facts.arch }}\nINIT={{ facts.init_system }}\n");
    spit(dir_->file("deploy.yaml"), R"(app: shop
root: "{{ deploy_root }}"
artifact: app.tar.gz
templates:
  - {src: facts.mustache, dest: facts.env}
)");
    auto r = run_tunnel(cli_args("deploy", dir_->file("deploy.yaml"), inv, {}));
    ASSERT_EQ(r.exit_code, 0) << r.describe() << r.out;
    auto arch = run({"uname", "-m"});
    ASSERT_TRUE(arch.ok());
    EXPECT_NE(slurp(root(1) + "/current/facts.env").find("ARCH=" + arch.out), std::string::npos)
        << slurp(root(1) + "/current/facts.env");

    // A fact that does not exist: the hosts were read, not touched.
    fs::remove_all(root(1));
    spit(dir_->file("facts.mustache"), "X={{ facts.kernel_flavour }}\n");
    r = run_tunnel(cli_args("deploy", dir_->file("deploy.yaml"), inv, {}));
    EXPECT_EQ(r.exit_code, 2) << r.describe() << r.out;
    EXPECT_NE(r.err.find("facts.mustache:1: {{ facts.kernel_flavour }} is not defined"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(fs::exists(root(1))) << "h1 was touched";
}

}  // namespace
}  // namespace tunnel::test
