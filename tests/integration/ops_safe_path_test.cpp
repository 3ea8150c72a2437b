// The scripts `tunnel apply` runs as root, run here by the real sh against a
// real file tree in a temp dir: a directory owned by another user (uid 65534)
// holds links planted at root-owned "victim" files, as a user would plant them
// in their own home. The writes, chmods, chowns, reads and removals must
// refuse the links (or replace the link itself) and leave every victim as it
// was; the ordinary cases still work. Needs root (chown); CI runs as root.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "ops/module.hpp"
#include "ops/safe_path.hpp"
#include "support/process.hpp"

namespace tunnel::test {
namespace {

namespace fs = std::filesystem;
constexpr uid_t other_uid = 65534;  // nobody: owns the "user's" tree

struct file_facts {
    std::string content;
    uid_t uid = 0;
    mode_t mode = 0;
    bool operator==(const file_facts&) const = default;
};

file_facts facts_of(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return {"<missing>", 0, 0};
    auto text = read_text_file(path);
    return {text ? *text : "<unreadable>", st.st_uid, st.st_mode & 07777};
}

std::ostream& operator<<(std::ostream& os, const file_facts& f) {
    return os << "{" << f.content << ", uid " << f.uid << ", mode " << std::oct << f.mode
              << std::dec << "}";
}

class OpsSafePath : public ::testing::Test {
  protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root (chown to another user)";
        auto d = temp_dir::create("ops-safe-path");
        ASSERT_TRUE(d) << d.error().message;
        dir_.emplace(std::move(*d));
        home_ = dir_->file("home/u");
        victim_ = dir_->file("victim");
        fs::create_directories(home_);
        fs::create_directories(victim_);
        ::chmod(dir_->path().c_str(), 0755);
        ::chmod(dir_->file("home").c_str(), 0755);
        ::chmod(victim_.c_str(), 0700);
        ASSERT_EQ(::chown(home_.c_str(), other_uid, other_uid), 0);
        ASSERT_TRUE(
            write_text_file(victim_ + "/authorized_keys", "ssh-ed25519 ROOTKEY root\n", 0600));
        ASSERT_TRUE(write_text_file(victim_ + "/shadow", "root:$y$secret:19000::::::\n", 0640));
    }

    // Makes `path` (in the user's tree) a directory the user owns.
    void user_dir(const std::string& path) {
        fs::create_directories(path);
        ASSERT_EQ(::chown(path.c_str(), other_uid, other_uid), 0);
    }
    // A link the user planted (lchown: the user owns it).
    void user_link(const std::string& target, const std::string& link) {
        fs::create_symlink(target, link);
        ASSERT_EQ(::lchown(link.c_str(), other_uid, other_uid), 0);
    }

    static run_result sh(const std::string& script, const std::string& input = "") {
        run_options o;
        o.stdin_text = input;
        return run({"sh", "-c", ops::script_prologue() + script}, o);
    }
    static run_result write(const std::string& path, const std::string& content,
                            bool backup = false) {
        ops::file_write w{path, content, "65534", "65534", "0600", std::nullopt, backup, false};
        auto a = ops::write_file_action(w);
        return sh(a.script, a.input);
    }

    std::optional<temp_dir> dir_;
    std::string home_, victim_;
};

TEST_F(OpsSafePath, WriteThroughALinkedDirectoryIsRefusedAndTheVictimUntouched) {
    const auto before = facts_of(victim_ + "/authorized_keys");
    user_link(victim_, home_ + "/.ssh");  // ln -s /root/.ssh ~/.ssh
    auto r = write(home_ + "/.ssh/authorized_keys", "ssh-ed25519 USERKEY u\n");
    EXPECT_EQ(r.exit_code, 4) << r.describe();
    EXPECT_NE(r.err.find(home_ + "/.ssh is a symbolic link in " + home_ +
                         ", which user nobody can change: refusing to follow it as root"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(facts_of(victim_ + "/authorized_keys"), before);
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(victim_)) ++entries;
    EXPECT_EQ(entries, 2u) << "a temp file or backup was left in the victim directory";
}

TEST_F(OpsSafePath, ALinkSwappedInAfterTheCheckIsCaughtOnceInside) {
    // The race, made deterministic: `cd` is wrapped (a function wins over the builtin) so the
    // real ~/.ssh is swapped for a link to the victim between the link check and the cd.
    const auto before = facts_of(victim_ + "/authorized_keys");
    user_dir(home_ + "/.ssh");
    ops::file_write w{home_ + "/.ssh/authorized_keys",
                      "ssh-ed25519 USERKEY u\n",
                      "65534",
                      "65534",
                      "0600",
                      std::nullopt,
                      false,
                      false};
    auto a = ops::write_file_action(w);
    const std::string swap = "cd() { if [ \"$3\" = ./.ssh ]; then mv ./.ssh ./.ssh-real && ln -s " +
                             victim_ + " ./.ssh; fi; command cd \"$@\"; }\n";
    auto r = sh(swap + a.script, a.input);
    EXPECT_EQ(r.exit_code, 4) << r.describe();
    EXPECT_NE(r.err.find(".ssh was replaced by a symbolic link while it was being entered"),
              std::string::npos)
        << r.err;
    EXPECT_TRUE(fs::is_symlink(home_ + "/.ssh"))
        << "the swap did not happen: the test tests nothing";
    EXPECT_EQ(facts_of(victim_ + "/authorized_keys"), before);
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(victim_)) ++entries;
    EXPECT_EQ(entries, 2u);
}

TEST_F(OpsSafePath, ALinkThroughARootOwnedLinkIsStillChecked) {
    // A root-owned link into the user's tree (trusted itself) leads through the user's link.
    const auto before = facts_of(victim_ + "/authorized_keys");
    fs::create_symlink(home_, dir_->file("u-home"));
    user_link(victim_, home_ + "/.ssh");
    auto r = write(dir_->file("u-home/.ssh/authorized_keys"), "ssh-ed25519 USERKEY u\n");
    EXPECT_EQ(r.exit_code, 4) << r.describe();
    EXPECT_NE(r.err.find(".ssh is a symbolic link in " + home_), std::string::npos) << r.err;
    EXPECT_EQ(facts_of(victim_ + "/authorized_keys"), before);
}

TEST_F(OpsSafePath, ALinkedFileIsReplacedNeverWrittenThrough) {
    const auto before = facts_of(victim_ + "/shadow");
    user_dir(home_ + "/.ssh");
    user_link(victim_ + "/shadow", home_ + "/.ssh/authorized_keys");
    auto r = write(home_ + "/.ssh/authorized_keys", "ssh-ed25519 USERKEY u\n", true);
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(facts_of(victim_ + "/shadow"), before);
    EXPECT_EQ(facts_of(home_ + "/.ssh/authorized_keys"),
              (file_facts{"ssh-ed25519 USERKEY u\n", other_uid, 0600}));
    for (const auto& e : fs::directory_iterator(home_ + "/.ssh"))
        EXPECT_EQ(e.path().filename(), "authorized_keys")
            << "left behind: " << e.path() << " (a link is not backed up, temp dirs are removed)";
}

TEST_F(OpsSafePath, OrdinaryWriteInTheUsersTreeKeepsABackupAndCleansUp) {
    user_dir(home_ + "/.ssh");
    ASSERT_TRUE(write_text_file(home_ + "/.ssh/authorized_keys", "old\n", 0644));
    auto r = write(home_ + "/.ssh/authorized_keys", "new\n", true);
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(facts_of(home_ + "/.ssh/authorized_keys"), (file_facts{"new\n", other_uid, 0600}));
    std::vector<std::string> others;
    for (const auto& e : fs::directory_iterator(home_ + "/.ssh"))
        if (e.path().filename() != "authorized_keys") others.push_back(e.path().filename());
    ASSERT_EQ(others.size(), 1u);
    EXPECT_EQ(others[0].rfind("authorized_keys.", 0), 0u) << others[0];
    EXPECT_EQ(read_text_file(home_ + "/.ssh/" + others[0]).value_or(""), "old\n");
}

TEST_F(OpsSafePath, ProbeRefusesLinksAndHardLinksInTheUsersTree) {
    user_link(victim_, home_ + "/.ssh");
    auto r = sh(ops::probe_path("ak", home_ + "/.ssh/authorized_keys", true));
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    auto st = ops::read_path(ops::probe_data(r.out), "ak");
    ASSERT_TRUE(st.refused) << r.out;
    EXPECT_NE(st.refused->find(".ssh is a symbolic link"), std::string::npos) << *st.refused;
    EXPECT_EQ(r.out.find("ak.b64"), std::string::npos) << r.out;

    // A hard link to a root-only file (possible where fs.protected_hardlinks is off).
    fs::remove(home_ + "/.ssh");
    user_dir(home_ + "/.ssh");
    ASSERT_EQ(::link((victim_ + "/shadow").c_str(), (home_ + "/.ssh/authorized_keys").c_str()), 0);
    r = sh(ops::probe_path("ak", home_ + "/.ssh/authorized_keys", true));
    st = ops::read_path(ops::probe_data(r.out), "ak");
    ASSERT_TRUE(st.refused) << r.out;
    EXPECT_NE(st.refused->find("has 2 hard links"), std::string::npos) << *st.refused;
    EXPECT_EQ(r.out.find("ak.b64"), std::string::npos) << r.out;
    EXPECT_EQ(st.others_can_change, "user nobody");

    // Root's own directories: read as before.
    r = sh(ops::probe_path("v", victim_ + "/authorized_keys", true));
    st = ops::read_path(ops::probe_data(r.out), "v");
    EXPECT_FALSE(st.refused) << r.out;
    EXPECT_FALSE(st.others_can_change);
    EXPECT_EQ(st.content, "ssh-ed25519 ROOTKEY root\n");
    EXPECT_EQ(st.mode, "600");
}

TEST_F(OpsSafePath, DirectoryStepDoesNotChmodOrChownThroughALink) {
    user_link(victim_, home_ + "/data");
    auto r = sh(ops::directory_script(home_ + "/data", "65534", std::nullopt, "0777"));
    EXPECT_EQ(r.exit_code, 4) << r.describe();
    struct stat st {};
    ASSERT_EQ(::stat(victim_.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(st.st_mode & 07777, 0700u);

    // Created with its parents, attributes set on the directory itself.
    r = sh(ops::directory_script(home_ + "/new/sub", "65534", "65534", "0750"));
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    ASSERT_EQ(::lstat((home_ + "/new/sub").c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_uid, other_uid);
    EXPECT_EQ(st.st_mode & 07777, 0750u);
}

TEST_F(OpsSafePath, RemovalRemovesTheLinkNotItsTarget) {
    const auto before = facts_of(victim_ + "/shadow");
    user_link(victim_ + "/shadow", home_ + "/f");
    user_link(victim_, home_ + "/d");
    auto r = sh(ops::remove_script(home_ + "/f", false, true));
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    r = sh(ops::remove_script(home_ + "/d", true, false));
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_FALSE(fs::exists(fs::symlink_status(home_ + "/f")));
    EXPECT_FALSE(fs::exists(fs::symlink_status(home_ + "/d")));
    EXPECT_EQ(facts_of(victim_ + "/shadow"), before);
    EXPECT_EQ(facts_of(victim_ + "/authorized_keys").content, "ssh-ed25519 ROOTKEY root\n");
    EXPECT_TRUE(fs::is_empty(home_)) << "a backup of the link's target was made";
    // Through a linked directory: refused, nothing removed.
    user_link(victim_, home_ + "/.ssh");
    r = sh(ops::remove_script(home_ + "/.ssh/authorized_keys", false, false));
    EXPECT_EQ(r.exit_code, 4) << r.describe();
    EXPECT_TRUE(fs::exists(victim_ + "/authorized_keys"));
}

}  // namespace
}  // namespace tunnel::test
