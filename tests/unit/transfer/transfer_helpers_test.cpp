#include <gtest/gtest.h>

#include "transfer/copier.hpp"
#include "transfer/script_runner.hpp"
#include "transfer/sync.hpp"
#include "transfer/target.hpp"

namespace tunnel::transfer {
namespace {

TEST(TransferHelpers, TempNameIsHiddenBesideTheTarget) {
    EXPECT_EQ(temp_path_for("/srv/app/data.bin"), "/srv/app/.data.bin.tunnel-part");
    EXPECT_EQ(temp_path_for("data.bin"), ".data.bin.tunnel-part");
}

TEST(TransferHelpers, ResumeBacksOffOneWindow) {
    EXPECT_EQ(resume_offset(0, 16 << 20), 0u);
    EXPECT_EQ(resume_offset(10 << 20, 16 << 20), 0u);
    EXPECT_EQ(resume_offset(40 << 20, 16 << 20), 24u << 20);
}

TEST(TransferHelpers, ParseMode) {
    EXPECT_EQ(*parse_mode("0640"), 0640u);
    EXPECT_EQ(*parse_mode("755"), 0755u);
    EXPECT_EQ(*parse_mode("4755"), 04755u);
    for (const char* bad : {"", "999", "0x1ff", "77777", "rwx"})
        EXPECT_FALSE(parse_mode(bad)) << bad;
}

TEST(TransferHelpers, ScriptArgvPicksInterpreterShebangOrSh) {
    using v = std::vector<std::string>;
    EXPECT_EQ(script_argv("#!/bin/bash\n", "/tmp/d/s", std::nullopt, {}), (v{"exec", "/tmp/d/s"}));
    EXPECT_EQ(script_argv("#!/bin/bash\n", "/tmp/d/s", std::nullopt, {"a b"}),
              (v{"/tmp/d/s", "a b"}));
    EXPECT_EQ(script_argv("echo hi", "/tmp/d/s", std::nullopt, {}), (v{"sh", "/tmp/d/s"}));
    EXPECT_EQ(script_argv("#!/bin/sh", "/tmp/d/s", std::string("python3"), {"x"}),
              (v{"python3", "/tmp/d/s", "x"}));
}

TEST(TransferHelpers, SyncActionsDescribeThemselves) {
    EXPECT_EQ((sync_action{sync_action::kind::copy, "a/b", "new"}.describe()), "copy   a/b (new)");
    EXPECT_EQ((sync_action{sync_action::kind::mkdir, "", {}}.describe()), "mkdir  ./");
    EXPECT_EQ((sync_action{sync_action::kind::link, "l", "t"}.describe()), "link   l -> t");
    EXPECT_EQ((sync_action{sync_action::kind::rmdir, "d", {}}.describe()), "delete d/");
}

TEST(TransferHelpers, SummaryJson) {
    transfer_stats s;
    s.files = 2;
    s.skipped = 1;
    s.errors = {"x"};
    auto j = summary_json(s, 2u << 20, 2.0);
    EXPECT_EQ(j["files"], 2);
    EXPECT_EQ(j["bytes"], 2u << 20);
    EXPECT_DOUBLE_EQ(j["mib_per_s"].get<double>(), 1.0);
    EXPECT_EQ(j["errors"].size(), 1u);
}

}  // namespace
}  // namespace tunnel::transfer
