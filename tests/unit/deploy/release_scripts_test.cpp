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

}  // namespace
}  // namespace tunnel::deploy
