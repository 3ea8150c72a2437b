#include <cstdio>

#include <gtest/gtest.h>

#include "deploy/release_host.hpp"
#include "deploy/release_scripts.hpp"

namespace tunnel::deploy {
namespace {

TEST(DeployScripts, ReleaseIdsSortByTimeAndAreSafeWords) {
    auto a = scripts::new_release_id();
    EXPECT_EQ(a.size(), std::string("20261206-160512-123").size()) << a;
    EXPECT_TRUE(scripts::valid_release_id(a));
    EXPECT_LE(a, scripts::new_release_id());
    EXPECT_FALSE(scripts::valid_release_id(""));
    EXPECT_FALSE(scripts::valid_release_id(".x.partial"));
    EXPECT_FALSE(scripts::valid_release_id("a/b"));
    EXPECT_FALSE(scripts::valid_release_id("a b"));
    EXPECT_FALSE(scripts::valid_release_id("$(reboot)"));
}

TEST(DeployScripts, HolderIsDescribedAndUntrustedTextEscaped) {
    EXPECT_EQ(describe_holder(
                  R"({"user":"alice","host":"laptop","pid":4242,"since":"2026-12-06T16:05:12Z"})"),
              "alice@laptop (pid 4242) since 2026-12-06T16:05:12Z");
    EXPECT_EQ(describe_holder("{}"), "?@? (pid ?) since ?");
    EXPECT_EQ(describe_holder("garbage"), "an unknown holder (no holder file)");
    auto evil = describe_holder(R"({"user":"a\u001b[2Jb","host":"h","pid":1,"since":"s"})");
    EXPECT_EQ(evil.find('\x1b'), std::string::npos) << evil;
}

TEST(DeployScripts, ValuesAreQuotedIntoTheScripts) {
    deploy_config c;
    c.app = "shop";
    c.root = "/srv/it's here";
    c.shared = {"log", ".env"};
    artifact a;
    a.kind = artifact_kind::binary;
    a.file_name = "my server";
    auto s = scripts::unpack(c, a, "20261206-160512-123");
    EXPECT_NE(s.find("R='/srv/it'\\''s here'"), std::string::npos) << s;
    EXPECT_NE(s.find("cp \"$A\" \"$P\"/'my server'"), std::string::npos) << s;
    EXPECT_NE(s.find("p=log\n"), std::string::npos);
    EXPECT_NE(s.find("mkdir -p \"$t\""), std::string::npos) << "log is a directory";
    EXPECT_NE(s.find(": > \"$t\""), std::string::npos) << ".env is a file";
    EXPECT_NE(s.find("mv \"$P\" \"$D\""), std::string::npos) << "renamed only when complete";
    auto sw = scripts::switch_to(c, "20261206-160512-123", "old");
    EXPECT_NE(sw.find("mv -T \"$T\" current"), std::string::npos) << sw;
    EXPECT_EQ(scripts::artifact_path(c, a), "/srv/it's here/.tunnel-deploy/artifacts/shop");
}

// `sh -n`: every script parses as POSIX sh (dash on Debian), including the
// ones the sshd-based integration tests cannot run (the unit restart).
TEST(DeployScripts, EveryScriptParsesAsPosixSh) {
    deploy_config c;
    c.app = "shop";
    c.root = "/srv/shop";
    c.shared = {"log/", ".env", "tmp/pids"};
    c.unit = "shop.service";
    health_check http;
    http.http = "http://127.0.0.1:8000/up";
    health_check cmd;
    cmd.command = "systemctl is-active shop";
    std::vector<std::string> all{scripts::lock(c, R"({"user":"a"})"),
                                 scripts::unlock(c, R"({"user":"a"})"),
                                 scripts::force_unlock(c),
                                 scripts::read_state(c, 10),
                                 scripts::switch_to(c, "1", "0"),
                                 scripts::switch_to(c, "", "0"),
                                 scripts::restart_unit(c),
                                 scripts::hook(c, "/srv/shop", "1", "0", "./bin/migrate"),
                                 scripts::http_attempt(http),
                                 scripts::command_attempt(c, cmd),
                                 scripts::prune(c),
                                 scripts::append_log(c, R"({"id":"1"})"),
                                 scripts::discard(c, "1")};
    for (auto kind : {artifact_kind::tar_gz, artifact_kind::zip, artifact_kind::directory,
                      artifact_kind::binary}) {
        artifact a;
        a.kind = kind;
        a.file_name = "server";
        all.push_back(scripts::unpack(c, a, "1"));
    }
    for (const auto& script : all) {
        FILE* sh = ::popen("sh -n 2>&1", "w");
        ASSERT_NE(sh, nullptr);
        std::fwrite(script.data(), 1, script.size(), sh);
        EXPECT_EQ(::pclose(sh), 0) << script;
    }
}

}  // namespace
}  // namespace tunnel::deploy
