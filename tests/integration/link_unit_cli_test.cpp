// `tunnel up --install-unit`: the unit it writes is one systemd accepts
// (`systemd-analyze verify` reports nothing) and is hardened (the offline
// `systemd-analyze security` exposure stays in systemd's "OK" band), runs
// as the links file's owner, and a bad links file writes no unit at all.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <regex>

#include <gtest/gtest.h>

#include "support/process.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

bool have_systemd_analyze() {
    return ::access("/usr/bin/systemd-analyze", X_OK) == 0;
}

class LinkUnitCli : public ::testing::Test {
  protected:
    void SetUp() override {
        auto d = temp_dir::create("tunnel-unit");
        ASSERT_TRUE(d);
        dir.emplace(std::move(*d));
        links = dir->file("links.yaml");
        ASSERT_TRUE(write_text_file(links, "links:\n  db:\n    target: root@127.0.0.1\n"));
    }
    run_result install(const std::string& scope) {
        return run_tunnel({"up", links, "--install-unit", "--unit-scope", scope, "--unit-dir",
                           dir->file("units")});
    }
    std::string unit_path() const { return dir->file("units/tunnel-up-links.service"); }

    std::optional<temp_dir> dir;
    std::string links;
};

TEST_F(LinkUnitCli, ASystemUnitIsValidHardenedAndRunsAsTheFilesOwner) {
    auto r = install("system");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("systemctl daemon-reload && systemctl enable --now "
                         "tunnel-up-links.service"),
              std::string::npos)
        << r.out;
    auto text = read_text_file(unit_path());
    ASSERT_TRUE(text);
    struct stat st {};
    ASSERT_EQ(::stat(unit_path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0644u);
    EXPECT_NE(text->find("ExecStart=\"" + tunnel_binary() +
                         "\" up --control "
                         "\"/run/tunnel-up-links/control.sock\" \"" +
                         links + "\""),
              std::string::npos)
        << *text;
    EXPECT_NE(text->find("WantedBy=multi-user.target"), std::string::npos);
    EXPECT_EQ(text->find("User="), std::string::npos) << "a root-owned file runs as root";

    if (!have_systemd_analyze()) GTEST_SKIP() << "systemd-analyze is not installed";
    auto verify = run({"systemd-analyze", "verify", unit_path()});
    EXPECT_EQ(verify.exit_code, 0) << verify.err;
    EXPECT_EQ(verify.err, "") << "systemd has a complaint about the unit";
    auto security = run({"systemd-analyze", "security", "--offline=yes", unit_path()});
    std::smatch m;
    ASSERT_TRUE(
        std::regex_search(security.out, m, std::regex("exposure level for \\S+: ([0-9.]+)")))
        << security.out << security.err;
    EXPECT_LT(std::stod(m[1]), 2.0) << security.out;

    // Owned by someone else: the unit runs as them (least privilege).
    ASSERT_EQ(::chown(links.c_str(), 65534, 65534), 0);
    ASSERT_EQ(install("system").exit_code, 0);
    text = read_text_file(unit_path());
    ASSERT_TRUE(text);
    EXPECT_NE(text->find("User=nobody\n"), std::string::npos) << *text;
}

TEST_F(LinkUnitCli, AUserUnitUsesTheUsersManagerAndDefaultSocket) {
    auto r = install("user");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("systemctl --user daemon-reload"), std::string::npos) << r.out;
    auto text = read_text_file(unit_path());
    ASSERT_TRUE(text);
    EXPECT_EQ(text->find("--control"), std::string::npos) << *text;
    EXPECT_NE(text->find("WantedBy=default.target"), std::string::npos);
    EXPECT_NE(text->find("NoNewPrivileges=yes"), std::string::npos);
    if (!have_systemd_analyze()) GTEST_SKIP() << "systemd-analyze is not installed";
    auto verify = run({"systemd-analyze", "verify", unit_path()});
    EXPECT_EQ(verify.exit_code, 0) << verify.err;
    EXPECT_EQ(verify.err, "");
}

TEST_F(LinkUnitCli, ABadLinksFileWritesNoUnit) {
    ASSERT_TRUE(write_text_file(links, "links:\n  db:\n    targt: root@127.0.0.1\n"));
    auto r = install("system");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("targt"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(unit_path()));
    r = run_tunnel({"up", links, "--install-unit", "--unit-scope", "both"});
    EXPECT_EQ(r.exit_code, 2) << r.err;
}

}  // namespace
}  // namespace tunnel::test
