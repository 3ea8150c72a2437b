#include "transfer/copy_plan.hpp"

#include <gtest/gtest.h>

namespace tunnel::transfer {
namespace {

copy_request request(std::vector<std::string> paths) {
    copy_request r;
    r.paths = std::move(paths);
    return r;
}

bool mentions(const core::error& e, const std::string& text) {
    return e.message.find(text) != std::string::npos;
}

TEST(CopyPlan, RemoteDestinationIsAnUpload) {
    auto p = plan_copy(request({"a.txt", "./b", "web1:/srv/"}));
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_TRUE(p->upload);
    EXPECT_EQ(p->host, "web1");
    EXPECT_EQ(p->sources, (std::vector<std::string>{"a.txt", "./b"}));
    EXPECT_EQ(p->dest, "/srv/");
}

TEST(CopyPlan, RemoteSourcesAreADownloadFromTheirHost) {
    auto p = plan_copy(request({"deploy@web1:/var/log/a", "deploy@web1:b", "logs/"}));
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_FALSE(p->upload);
    EXPECT_EQ(p->host, "deploy@web1");
    EXPECT_EQ(p->sources, (std::vector<std::string>{"/var/log/a", "b"}));
    EXPECT_EQ(p->dest, "logs/");
}

TEST(CopyPlan, OneSideMustBeLocalAndTheOtherOneHost) {
    auto both_remote = plan_copy(request({"web1:/a", "web2:/b"}));
    ASSERT_FALSE(both_remote);
    EXPECT_EQ(both_remote.error().code, core::errc::invalid_argument);
    EXPECT_TRUE(mentions(both_remote.error(), "both remote")) << both_remote.error().message;
    EXPECT_TRUE(mentions(both_remote.error(), "two steps")) << both_remote.error().message;

    auto both_local = plan_copy(request({"a", "b"}));
    ASSERT_FALSE(both_local);
    EXPECT_TRUE(mentions(both_local.error(), "both local: use cp")) << both_local.error().message;

    // A local source among remote ones, for a local destination.
    auto mixed = plan_copy(request({"web1:/a", "./b", "dest"}));
    ASSERT_FALSE(mixed);
    EXPECT_TRUE(mentions(mixed.error(), "./b and dest are both local")) << mixed.error().message;

    auto hosts = plan_copy(request({"web1:/a", "web2:/b", "dest"}));
    ASSERT_FALSE(hosts);
    EXPECT_TRUE(mentions(hosts.error(), "several hosts (web1 and web2)")) << hosts.error().message;
}

TEST(CopyPlan, NeedsASourceAndADestination) {
    for (auto paths : {std::vector<std::string>{}, std::vector<std::string>{"web1:/a"}}) {
        auto p = plan_copy(request(paths));
        ASSERT_FALSE(p);
        EXPECT_TRUE(mentions(p.error(), "at least one source and a destination"));
    }
    auto no_path = plan_copy(request({"a", "web1:"}));
    ASSERT_FALSE(no_path);
    EXPECT_TRUE(mentions(no_path.error(), "no path")) << no_path.error().message;
}

TEST(CopyPlan, OwnerAndGroupNeedSudoAndAnUpload) {
    auto r = request({"f", "web1:/srv/f"});
    r.owner = "www-data";
    auto no_sudo = plan_copy(r);
    ASSERT_FALSE(no_sudo);
    EXPECT_TRUE(mentions(no_sudo.error(), "add --sudo")) << no_sudo.error().message;

    r.sudo = true;
    r.group = "adm";
    auto ok = plan_copy(r);
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(ok->options.owner, "www-data");
    EXPECT_EQ(ok->options.group, "adm");

    auto down = r;
    down.paths = {"web1:/srv/f", "f"};
    auto refused = plan_copy(down);
    ASSERT_FALSE(refused);
    EXPECT_TRUE(mentions(refused.error(), "uploads only")) << refused.error().message;

    auto group_only = request({"f", "web1:/srv/f"});
    group_only.group = "adm";
    group_only.sudo = true;
    auto g = plan_copy(group_only);
    ASSERT_TRUE(g);
    EXPECT_FALSE(g->options.owner);
    EXPECT_EQ(g->options.group, "adm");
}

TEST(CopyPlan, OwnerAndGroupNamesCannotSmuggleASpecOrAPath) {
    for (const char* bad : {"root:root", "../x", "a b", "a\tb", "a\nb"}) {
        auto r = request({"f", "web1:/srv/f"});
        r.sudo = true;
        r.owner = bad;
        auto p = plan_copy(r);
        ASSERT_FALSE(p) << bad;
        EXPECT_TRUE(mentions(p.error(), "invalid user or group name")) << p.error().message;
        r.owner.clear();
        r.group = bad;
        EXPECT_FALSE(plan_copy(r)) << bad;
    }
}

TEST(CopyPlan, ModeIsOctalPermissionBits) {
    auto r = request({"f", "web1:/srv/f"});
    r.mode = "0640";
    auto p = plan_copy(r);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->options.mode, 0640u);
    r.mode = "999";
    auto bad = plan_copy(r);
    ASSERT_FALSE(bad);
    EXPECT_TRUE(mentions(bad.error(), "--mode \"999\"")) << bad.error().message;
    r.mode.clear();
    EXPECT_FALSE(plan_copy(r)->options.mode);
}

TEST(CopyPlan, CountsAreAtLeastOneAndExplicitStreamsApplyOnAnyLink) {
    auto r = request({"f", "web1:/srv/f"});
    r.jobs = 0;
    r.streams = 0;
    r.recursive = r.preserve = r.resume = r.verify = r.checksum = true;
    auto p = plan_copy(r);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->options.jobs, 1u);
    EXPECT_EQ(p->options.streams, 1u);
    EXPECT_EQ(p->options.stream_min_rtt, std::chrono::microseconds(2000));
    EXPECT_TRUE(p->options.recursive && p->options.preserve && p->options.resume &&
                p->options.verify && p->options.checksum);
    r.streams = 8;
    r.streams_given = true;
    auto given = plan_copy(r);
    EXPECT_EQ(given->options.streams, 8u);
    EXPECT_EQ(given->options.stream_min_rtt, std::chrono::microseconds(0));
}

TEST(CopyPlan, RetriesAreValidatedAndCopyEachFileOverOneChannel) {
    auto r = request({"f", "web1:/srv/f"});
    r.streams = 8;
    r.streams_given = true;
    auto none = plan_copy(r);
    ASSERT_TRUE(none);
    EXPECT_EQ(none->retries, 0u);
    EXPECT_EQ(none->options.streams, 8u);
    r.retries = "5";
    auto some = plan_copy(r);
    ASSERT_TRUE(some);
    EXPECT_EQ(some->retries, 5u);
    EXPECT_EQ(some->options.streams, 1u) << "a multi-channel temp file cannot be resumed";
    r.retries = "-2";
    auto bad = plan_copy(r);
    ASSERT_FALSE(bad);
    EXPECT_TRUE(mentions(bad.error(), "--retries \"-2\": it cannot be negative"))
        << bad.error().message;
}

TEST(CopyPlan, RemoteCommandsAreNeededForOwnershipAndRemoteHashes) {
    copy_options o;
    EXPECT_FALSE(needs_remote_commands(o));
    o.verify = true;
    EXPECT_TRUE(needs_remote_commands(o));
    o = {};
    o.checksum = true;
    EXPECT_TRUE(needs_remote_commands(o));
    o = {};
    o.group = "adm";
    EXPECT_TRUE(needs_remote_commands(o));

    copy_plan plan;
    plan.host = "web1";
    EXPECT_TRUE(notes_without_remote_commands(plan).empty());
    plan.options.owner = "u";
    plan.options.verify = true;
    auto notes = notes_without_remote_commands(plan);
    ASSERT_EQ(notes.size(), 2u);
    EXPECT_NE(notes[0].find("web1 runs no commands"), std::string::npos) << notes[0];
    EXPECT_NE(notes[0].find("--owner/--group cannot be applied"), std::string::npos) << notes[0];
    EXPECT_NE(notes[1].find("reading files back"), std::string::npos) << notes[1];
}

TEST(CopyPlan, DirectoryDestinationsReceiveSourcesByName) {
    EXPECT_EQ(copy_target("/home/me/app.tar.gz", "/srv/releases", true),
              "/srv/releases/app.tar.gz");
    EXPECT_EQ(copy_target("logs/", "/backup/", true), "/backup/logs");
    EXPECT_EQ(copy_target("/home/me/app.tar.gz", "/srv/new-name", false), "/srv/new-name");
}

TEST(CopyPlan, DestinationShapeRules) {
    EXPECT_TRUE(check_copy_destination(1, "/srv/f", false, false, "h:/srv/f"));
    EXPECT_TRUE(check_copy_destination(1, "/srv/f", true, false, "h:/srv/f"));
    EXPECT_TRUE(check_copy_destination(3, "/srv", true, true, "h:/srv"));
    EXPECT_TRUE(check_copy_destination(1, "/srv/", true, true, "h:/srv/"));

    auto file = check_copy_destination(2, "/srv/f", true, false, "h:/srv/f");
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error().code, core::errc::invalid_argument);
    EXPECT_EQ(file.error().message, "h:/srv/f is not a directory (several sources need one)");
    auto missing = check_copy_destination(2, "/srv/x", false, false, "h:/srv/x");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, core::errc::not_found);
    auto slash = check_copy_destination(1, "/srv/new/", false, false, "h:/srv/new/");
    ASSERT_FALSE(slash);
    EXPECT_EQ(slash.error().code, core::errc::not_found);
    EXPECT_EQ(slash.error().message, "directory h:/srv/new/ does not exist");
}

TEST(CopyPlan, ChownSpecAndQuotedBatchedCommands) {
    EXPECT_EQ(chown_spec("www", std::nullopt), "www");
    EXPECT_EQ(chown_spec(std::nullopt, "adm"), ":adm");
    EXPECT_EQ(chown_spec("www", "adm"), "www:adm");

    auto one = chown_commands("www", "adm", {"/srv/a b", "/srv/it's"});
    ASSERT_EQ(one.size(), 1u);
    EXPECT_EQ(one[0], "sudo -n chown -h -- www:adm '/srv/a b' '/srv/it'\\''s'");
    EXPECT_TRUE(chown_commands("www", std::nullopt, {}).empty());

    // Batches: a command takes paths until it reaches the limit.
    std::vector<std::string> paths;
    for (int i = 0; i < 100; ++i) paths.push_back("/srv/file-" + std::to_string(i));
    auto many = chown_commands("www", std::nullopt, paths, 200);
    ASSERT_GT(many.size(), 1u);
    std::string all;
    for (const auto& c : many) {
        EXPECT_EQ(c.rfind("sudo -n chown -h -- www ", 0), 0u) << c;
        EXPECT_LT(c.size(), 200u + 20u) << c;  // at most one path past the limit
        all += c.substr(c.find(" www ") + 4);
    }
    std::string want;
    for (const auto& p : paths) want += " " + p;
    EXPECT_EQ(all, want);
}

}  // namespace
}  // namespace tunnel::transfer
