#include <gtest/gtest.h>

#include "transfer/filter.hpp"
#include "transfer/location.hpp"

namespace tunnel::transfer {
namespace {

TEST(TransferLocation, ScpStyleOperands) {
    auto r = parse_location("web1:/srv/app");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->host, "web1");
    EXPECT_EQ(r->path, "/srv/app");
    r = parse_location("deploy@10.0.0.5:rel/x");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->host, "deploy@10.0.0.5");
    EXPECT_EQ(r->path, "rel/x");
    r = parse_location("root@[::1]:/tmp/f");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->host, "root@::1");
    EXPECT_EQ(r->path, "/tmp/f");
    for (const char* local : {"/abs/a:b", "./x:y", "dir/file:x", "plain", "../up:x"}) {
        r = parse_location(local);
        ASSERT_TRUE(r) << local;
        EXPECT_FALSE(r->remote()) << local;
        EXPECT_EQ(r->path, local);
    }
}

TEST(TransferLocation, HostWithoutPathIsRefused) {
    auto r = parse_location("web1:");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("web1:PATH"), std::string::npos) << r.error().message;
    EXPECT_FALSE(parse_location(""));
}

TEST(TransferLocation, PathHelpers) {
    EXPECT_EQ(base_name("a/b/"), "b");
    EXPECT_EQ(base_name("file"), "file");
    EXPECT_EQ(dir_name("a/b"), "a");
    EXPECT_EQ(dir_name("b"), ".");
    EXPECT_EQ(dir_name("/b"), "/");
    EXPECT_EQ(join_path("a/", "b"), "a/b");
    EXPECT_EQ(join_path(".", "b"), "b");
}

TEST(TransferLocation, UnsafeNamesAndEscapingLinks) {
    EXPECT_TRUE(safe_entry_name("ok.txt"));
    for (const char* bad : {"", ".", "..", "a/b", "../x", "/etc"})
        EXPECT_FALSE(safe_entry_name(bad)) << bad;
    EXPECT_TRUE(link_escapes("a", "/etc/passwd"));
    EXPECT_TRUE(link_escapes("a", "../x"));
    EXPECT_TRUE(link_escapes("d/a", "../../x"));
    EXPECT_TRUE(link_escapes("d/a", "x/../../../y"));
    EXPECT_FALSE(link_escapes("d/a", "../x"));
    EXPECT_FALSE(link_escapes("a", "b/c"));
    EXPECT_FALSE(link_escapes("a", "./b/../c"));
}

TEST(TransferFilter, GlobSyntax) {
    EXPECT_TRUE(path_glob_match("*.txt", "a.txt"));
    EXPECT_FALSE(path_glob_match("*.txt", "d/a.txt"));
    EXPECT_TRUE(path_glob_match("**.txt", "d/a.txt"));
    EXPECT_TRUE(path_glob_match("d/**", "d/x/y"));
    EXPECT_TRUE(path_glob_match("d/**/z", "d/x/y/z"));
    EXPECT_TRUE(path_glob_match("?.c", "a.c"));
    EXPECT_FALSE(path_glob_match("?", "/"));
    EXPECT_TRUE(path_glob_match("[a-c]x", "bx"));
    EXPECT_FALSE(path_glob_match("[!a-c]x", "bx"));
    EXPECT_FALSE(validate_glob("[abc"));
    EXPECT_TRUE(validate_glob("[]]x"));
}

TEST(TransferFilter, RsyncMeaning) {
    auto f = path_filter::parse({"keep.log"}, {"*.log", "/build/", "cache/", "docs/*.tmp"});
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->excluded("a.log", false));
    EXPECT_TRUE(f->excluded("sub/deep/a.log", false));
    EXPECT_FALSE(f->excluded("sub/keep.log", false));  // include wins
    EXPECT_TRUE(f->excluded("build", true));
    EXPECT_FALSE(f->excluded("src/build", true));  // anchored at the root only
    EXPECT_FALSE(f->excluded("build", false));     // trailing '/': directories only
    EXPECT_TRUE(f->excluded("x/cache", true));
    EXPECT_TRUE(f->excluded("docs/a.tmp", false));
    EXPECT_TRUE(f->excluded("p/docs/a.tmp", false));  // unanchored: any tail
    EXPECT_FALSE(f->excluded("docs/sub/a.tmp", false));
    EXPECT_FALSE(f->excluded("main.c", false));
}

TEST(TransferFilter, InvalidGlobIsAnError) {
    auto f = path_filter::parse({}, {"[oops"});
    ASSERT_FALSE(f);
    EXPECT_NE(f.error().message.find("[oops"), std::string::npos);
}

}  // namespace
}  // namespace tunnel::transfer
