#include "observe/audit_log.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/encoding.hpp"

namespace tunnel::observe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class AuditLog : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               fs::path("audit_" + std::to_string(::getpid()) + "_" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
        path_ = (dir_ / "audit.jsonl").string();
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::vector<std::string> lines() const {
        std::ifstream in(path_);
        std::vector<std::string> out;
        for (std::string l; std::getline(in, l);) out.push_back(l);
        return out;
    }
    void rewrite(const std::vector<std::string>& ls, bool final_newline = true) const {
        std::ofstream out(path_, std::ios::trunc);
        for (std::size_t i = 0; i < ls.size(); ++i)
            out << ls[i] << (i + 1 < ls.size() || final_newline ? "\n" : "");
    }
    static audit_log::wall_clock fixed_clock() {
        return [] {
            return std::chrono::system_clock::time_point(
                std::chrono::milliseconds(1'800'000'000'123));
        };
    }
    audit_log open() {
        auto log = audit_log::open(path_, fixed_clock());
        EXPECT_TRUE(log) << (log ? "" : log.error().message);
        return std::move(*log);
    }
    audit_log open(audit_log_options o) {
        if (o.path.empty()) o.path = path_;
        auto log = audit_log::open(std::move(o), fixed_clock());
        EXPECT_TRUE(log) << (log ? "" : log.error().message);
        return std::move(*log);
    }
    static std::vector<std::string> lines_of(const std::string& path) {
        std::ifstream in(path);
        std::vector<std::string> out;
        for (std::string l; std::getline(in, l);) out.push_back(l);
        return out;
    }

    fs::path dir_;
    std::string path_;
};

TEST_F(AuditLog, RecordsAreChainedJsonLines) {
    {
        auto log = open();
        EXPECT_EQ(log.last_hash(), std::string(64, '0'));
        ASSERT_TRUE(log.append("attach", {{"tenant", "acme"}, {"ip", "127.0.0.1"}}));
        ASSERT_TRUE(log.append("publish_denied",
                               {{"tenant", "acme"}, {"name", "db"}, {"reason", "not in allow"}}));
        ASSERT_TRUE(log.append("detach", nullptr));
    }
    auto ls = lines();
    ASSERT_EQ(ls.size(), 3u);
    EXPECT_EQ(
        ls[0],
        R"({"ts":"2027-01-15T08:00:00.123Z","event":"attach","ip":"127.0.0.1","tenant":"acme","prev":")" +
            std::string(64, '0') + "\"}");
    EXPECT_EQ(json::parse(ls[1])["prev"], core::hex_encode(core::sha256(ls[0])));
    EXPECT_EQ(json::parse(ls[2])["prev"], core::hex_encode(core::sha256(ls[1])));
    EXPECT_EQ(json::parse(ls[2])["event"], "detach");
    EXPECT_EQ(fs::status(path_).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);

    auto v = verify_audit_log(path_);
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->ok);
    EXPECT_EQ(v->records, 3u);
}

TEST_F(AuditLog, ReopenContinuesTheChain) {
    { ASSERT_TRUE(open().append("a", {{"n", 1}})); }
    {
        auto log = open();
        EXPECT_EQ(log.last_hash(), core::hex_encode(core::sha256(lines()[0])));
        ASSERT_TRUE(log.append("b", {{"n", 2}}));
    }
    auto v = verify_audit_log(path_);
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->ok) << v->why;
    EXPECT_EQ(v->records, 2u);
}

TEST_F(AuditLog, ReopenFindsLastLineOfALargeFile) {
    {
        auto log = open();
        for (int i = 0; i < 300; ++i)
            ASSERT_TRUE(log.append("e", {{"pad", std::string(static_cast<size_t>(i * 7), 'x')}}));
    }
    auto log = open();
    EXPECT_EQ(log.last_hash(), core::hex_encode(core::sha256(lines().back())));
}

TEST_F(AuditLog, VerifyFindsEditedRemovedAndReorderedLines) {
    {
        auto log = open();
        for (int i = 0; i < 5; ++i) ASSERT_TRUE(log.append("e", {{"i", i}}));
    }
    auto original = lines();

    auto edited = original;
    edited[1].replace(edited[1].find("\"i\":1"), 5, "\"i\":7");
    rewrite(edited);
    auto v = verify_audit_log(path_);
    ASSERT_TRUE(v);
    EXPECT_FALSE(v->ok);
    EXPECT_EQ(v->broken_line, 3u);  // line 2 changed: the link in line 3 breaks
    EXPECT_EQ(v->records, 2u);
    EXPECT_NE(v->why.find("SHA-256 of line 2"), std::string::npos) << v->why;

    auto removed = original;
    removed.erase(removed.begin() + 2);
    rewrite(removed);
    EXPECT_EQ(verify_audit_log(path_)->broken_line, 3u);

    auto first_removed = original;
    first_removed.erase(first_removed.begin());
    rewrite(first_removed);
    EXPECT_EQ(verify_audit_log(path_)->broken_line, 1u);

    auto swapped = original;
    std::swap(swapped[3], swapped[4]);
    rewrite(swapped);
    EXPECT_EQ(verify_audit_log(path_)->broken_line, 4u);

    auto garbage = original;
    garbage[2] = "not json";
    rewrite(garbage);
    v = verify_audit_log(path_);
    EXPECT_EQ(v->broken_line, 3u);
    EXPECT_EQ(v->why, "not a JSON object");

    rewrite(original, false);
    v = verify_audit_log(path_);
    EXPECT_FALSE(v->ok);
    EXPECT_EQ(v->broken_line, 5u);
    EXPECT_NE(v->why.find("incomplete"), std::string::npos);
    // A torn tail also stops the writer from continuing blindly.
    auto reopened = audit_log::open(path_);
    ASSERT_FALSE(reopened);
    EXPECT_NE(reopened.error().message.find("incomplete record"), std::string::npos);
}

TEST_F(AuditLog, EmptyAndMissingFiles) {
    { std::ofstream(path_).flush(); }
    auto v = verify_audit_log(path_);
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->ok);
    EXPECT_EQ(v->records, 0u);
    EXPECT_EQ(verify_audit_log((dir_ / "missing").string()).error().code, core::errc::not_found);
    EXPECT_EQ(audit_log::open((dir_ / "no/such/dir/log").string()).error().code,
              core::errc::not_found);
}

TEST_F(AuditLog, ReservedAndNonObjectFieldsRefused) {
    auto log = open();
    EXPECT_FALSE(log.append("e", {{"prev", "x"}}));
    EXPECT_FALSE(log.append("e", {{"ts", "x"}}));
    EXPECT_FALSE(log.append("e", json::array({1, 2})));
    EXPECT_TRUE(lines().empty());
}

TEST_F(AuditLog, OneWriterPerFile) {
    auto log = open();
    auto second = audit_log::open(path_);
    ASSERT_FALSE(second);
    EXPECT_NE(second.error().message.find("in use"), std::string::npos);
}

TEST_F(AuditLog, ConcurrentAppendsKeepTheChain) {
    {
        auto log = open();
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&log, t] {
                for (int i = 0; i < 50; ++i) ASSERT_TRUE(log.append("e", {{"t", t}, {"i", i}}));
            });
        for (auto& t : threads) t.join();
    }
    auto v = verify_audit_log(path_);
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->ok) << v->why;
    EXPECT_EQ(v->records, 200u);
}

const std::string key = "k3y-of-at-least-thirty-two-bytes-0123456789";

audit_log_options opts(std::string hmac_key, std::uint64_t max_bytes = 0, unsigned keep = 10,
                       std::string path = {}) {
    audit_log_options o;
    o.path = std::move(path);
    o.hmac_key = std::move(hmac_key);
    o.max_bytes = max_bytes;
    o.keep = keep;
    return o;
}
audit_verify_options with_key(std::string hmac_key) {
    audit_verify_options o;
    o.hmac_key = std::move(hmac_key);
    return o;
}
audit_verify_options with_head(std::string head) {
    audit_verify_options o;
    o.expect_head = std::move(head);
    return o;
}

// Finding 10: with a key, each link is an HMAC; a log rewritten without the
// key does not verify, and the head proves nothing was cut off the end.
TEST_F(AuditLog, KeyedChainUsesHmacAndRefusesRewritesWithoutTheKey) {
    {
        auto log = open(opts(key));
        EXPECT_TRUE(log.keyed());
        for (int i = 0; i < 4; ++i) ASSERT_TRUE(log.append("e", {{"i", i}}));
        EXPECT_EQ(log.last_hash(), core::hex_encode(core::hmac_sha256(key, lines().back())));
    }
    auto ls = lines();
    EXPECT_EQ(json::parse(ls[0])["prev_hmac"], std::string(64, '0'));
    EXPECT_FALSE(json::parse(ls[0]).contains("prev"));
    EXPECT_EQ(json::parse(ls[2])["prev_hmac"], core::hex_encode(core::hmac_sha256(key, ls[1])));

    auto v = verify_audit_log(std::vector<std::string>{path_}, with_key(key));
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->ok) << v->why;
    EXPECT_TRUE(v->keyed);
    EXPECT_EQ(v->records, 4u);

    // Without the key there is nothing to check against: say so, do not pass.
    auto unkeyed = verify_audit_log(std::vector<std::string>{path_});
    ASSERT_TRUE(unkeyed);
    EXPECT_FALSE(unkeyed->ok);
    EXPECT_NE(unkeyed->why.find("--hmac-key-file"), std::string::npos) << unkeyed->why;

    // A wholesale rewrite by someone without the key: every link recomputed
    // with another key (or as a plain SHA-256 chain) fails.
    std::vector<std::string> forged;
    std::string link(64, '0');
    for (int i = 0; i < 4; ++i) {
        json r{
            {"ts", "2027-01-15T08:00:00.123Z"}, {"event", "e"}, {"i", i * 10}, {"prev_hmac", link}};
        forged.push_back(r.dump());
        link = core::hex_encode(
            core::hmac_sha256("not-the-key-but-long-enough-0123456", forged.back()));
    }
    rewrite(forged);
    v = verify_audit_log(std::vector<std::string>{path_}, with_key(key));
    ASSERT_TRUE(v);
    EXPECT_FALSE(v->ok);
    EXPECT_EQ(v->broken_line, 2u);
    std::vector<std::string> plain;
    link = std::string(64, '0');
    for (int i = 0; i < 4; ++i) {
        json r{{"ts", "2027-01-15T08:00:00.123Z"}, {"event", "e"}, {"i", i}, {"prev", link}};
        plain.push_back(r.dump());
        link = core::hex_encode(core::sha256(plain.back()));
    }
    rewrite(plain);
    v = verify_audit_log(std::vector<std::string>{path_}, with_key(key));
    EXPECT_FALSE(v->ok);
    EXPECT_NE(v->why.find("not keyed"), std::string::npos) << v->why;
}

TEST_F(AuditLog, ExpectHeadDetectsTruncationAndRewrites) {
    std::string published;
    {
        auto log = open();
        for (int i = 0; i < 5; ++i) ASSERT_TRUE(log.append("e", {{"i", i}}));
        published = log.last_hash();                   // what GET /api/v1/audit/head said
        ASSERT_TRUE(log.append("later", {{"i", 5}}));  // the log grows after that
    }
    auto original = lines();
    auto v = verify_audit_log(std::vector<std::string>{path_}, with_head(published));
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->ok) << v->why;
    EXPECT_EQ(v->expect_head_record, 5u);

    // Cutting records off the end leaves a chain that verifies on its own...
    auto cut = original;
    cut.resize(3);
    rewrite(cut);
    v = verify_audit_log(path_);
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->ok) << "a truncated unkeyed log is a valid chain: the head is what tells";
    // ...but not through the published head.
    v = verify_audit_log(std::vector<std::string>{path_}, with_head(published));
    ASSERT_TRUE(v);
    EXPECT_FALSE(v->ok);
    EXPECT_NE(v->why.find("truncation"), std::string::npos) << v->why;

    // A consistent rewrite of the whole unkeyed log (all links recomputed).
    std::vector<std::string> rewritten;
    std::string link(64, '0');
    for (int i = 0; i < 6; ++i) {
        json r{{"ts", "2027-01-15T08:00:00.123Z"},
               {"event", "e"},
               {"i", i == 2 ? 99 : i},
               {"prev", link}};
        rewritten.push_back(r.dump());
        link = core::hex_encode(core::sha256(rewritten.back()));
    }
    rewrite(rewritten);
    EXPECT_TRUE(verify_audit_log(path_)->ok);
    EXPECT_FALSE(verify_audit_log(std::vector<std::string>{path_}, with_head(published))->ok);
}

TEST_F(AuditLog, OpeningRefusesAnotherModeOrKey) {
    { ASSERT_TRUE(open().append("e", nullptr)); }
    auto keyed = audit_log::open(opts(key, 0, 10, path_));
    ASSERT_FALSE(keyed);
    EXPECT_NE(keyed.error().message.find("written without a key"), std::string::npos);
    fs::remove(path_);
    {
        auto log = open(opts(key));
        ASSERT_TRUE(log.append("e", nullptr));
        ASSERT_TRUE(log.append("e", nullptr));
    }
    auto unkeyed = audit_log::open(path_);
    ASSERT_FALSE(unkeyed);
    EXPECT_NE(unkeyed.error().message.find("hmac_key_file"), std::string::npos);
    auto other = audit_log::open(opts("another-key-of-thirty-two-bytes-or-more", 0, 10, path_));
    ASSERT_FALSE(other);
    EXPECT_NE(other.error().message.find("does not verify under the key"), std::string::npos)
        << other.error().message;
    auto same = audit_log::open(opts(key, 0, 10, path_));
    ASSERT_TRUE(same) << same.error().message;
}

// Finding 7: rotation by size keeps one chain across files; verify checks the set in order.
TEST_F(AuditLog, RotationKeepsTheChainAcrossFiles) {
    {
        auto log = open(opts(key, 1024, 3));
        for (int i = 0; i < 40; ++i)
            ASSERT_TRUE(log.append("e", {{"i", i}, {"pad", std::string(60, 'x')}}));
        EXPECT_LE(log.size(), 1024u);
    }
    auto set = audit_rotated_set(path_);
    ASSERT_EQ(set.size(), 4u);  // keep 3 rotated files + the current one
    EXPECT_EQ(set[0], path_ + ".3");
    EXPECT_EQ(set[3], path_);
    EXPECT_FALSE(fs::exists(path_ + ".4"));
    EXPECT_FALSE(fs::exists(path_ + ".new"));
    for (const auto& f : set) EXPECT_LE(fs::file_size(f), 1024u) << f;
    // Each newer file starts with audit_rotate, linked to the last line of the one before.
    for (std::size_t i = 1; i < set.size(); ++i) {
        auto first = json::parse(lines_of(set[i]).front());
        EXPECT_EQ(first["event"], "audit_rotate");
        EXPECT_EQ(first["prev_hmac"],
                  core::hex_encode(core::hmac_sha256(key, lines_of(set[i - 1]).back())));
    }
    auto v = verify_audit_log(set, with_key(key));
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->ok) << v->file << ": " << v->why;
    EXPECT_TRUE(v->continues) << "older files were dropped (keep: 3)";
    EXPECT_EQ(v->head, core::hex_encode(core::hmac_sha256(key, lines().back())));

    // A missing file in the middle, or files out of order, break the chain.
    auto gap = set;
    gap.erase(gap.begin() + 1);
    v = verify_audit_log(gap, with_key(key));
    EXPECT_FALSE(v->ok);
    EXPECT_EQ(v->file, set[2]);
    EXPECT_EQ(v->broken_line, 1u);
    EXPECT_NE(v->why.find("a file is missing"), std::string::npos) << v->why;
    std::vector<std::string> swapped{set[0], set[2], set[1], set[3]};
    EXPECT_FALSE(verify_audit_log(swapped, with_key(key))->ok);

    // Reopening continues the current file and its chain.
    {
        auto log = open(opts(key, 1024, 3));
        ASSERT_TRUE(log.append("after_restart", nullptr));
    }
    v = verify_audit_log(audit_rotated_set(path_), with_key(key));
    EXPECT_TRUE(v->ok) << v->why;
}

TEST_F(AuditLog, UnkeyedFirstFileMustStartTheChain) {
    {
        auto log = open(opts("", 4096, 5));
        for (int i = 0; i < 60; ++i)
            ASSERT_TRUE(log.append("e", {{"i", i}, {"pad", std::string(50, 'y')}}));
    }
    auto set = audit_rotated_set(path_);
    ASSERT_GE(set.size(), 2u);
    auto v = verify_audit_log(set);
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->ok) << v->why;
    EXPECT_FALSE(v->continues);
    // The oldest file with its first record removed starts neither a log nor a rotation.
    auto oldest = lines_of(set[0]);
    oldest.erase(oldest.begin());
    {
        std::ofstream out(set[0], std::ios::trunc);
        for (const auto& l : oldest) out << l << "\n";
    }
    v = verify_audit_log(set);
    EXPECT_FALSE(v->ok);
    EXPECT_EQ(v->file, set[0]);
    EXPECT_EQ(v->broken_line, 1u);
}

// Disk full: the append fails, nothing is added, the head stays, and the log
// works again once writes succeed. /dev/full answers every write with ENOSPC.
TEST_F(AuditLog, DiskFullFailsTheAppendWithoutChangingTheChain) {
    fs::create_symlink("/dev/full", dir_ / "full.jsonl");
    auto log = audit_log::open((dir_ / "full.jsonl").string());
    ASSERT_TRUE(log) << log.error().message;
    auto a = log->append("attach", {{"tenant", "acme"}});
    ASSERT_FALSE(a);
    EXPECT_NE(a.error().message.find("No space left on device"), std::string::npos)
        << a.error().message;
    EXPECT_EQ(log->last_hash(), audit_genesis_hash());
}

// A write cut short part-way (here by RLIMIT_FSIZE in a child process) is
// taken back: the file never ends in a torn record.
TEST_F(AuditLog, PartialWriteIsCutBackOff) {
    {
        auto log = open();
        ASSERT_TRUE(log.append("first", nullptr));
    }
    const auto before = fs::file_size(path_);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        std::signal(SIGXFSZ, SIG_IGN);
        auto log = audit_log::open(path_);
        if (!log) ::_exit(2);
        rlimit lim{static_cast<rlim_t>(before + 40), static_cast<rlim_t>(before + 40)};
        ::setrlimit(RLIMIT_FSIZE, &lim);
        auto a = log->append("second", {{"pad", std::string(200, 'z')}});
        ::_exit(a ? 3 : (a.error().message.find("File too large") != std::string::npos ? 0 : 4));
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(fs::file_size(path_), before);
    auto log = open();
    ASSERT_TRUE(log.append("third", nullptr));
    auto v = verify_audit_log(path_);
    EXPECT_TRUE(v->ok) << v->why;
    EXPECT_EQ(v->records, 2u);
}

}  // namespace
}  // namespace tunnel::observe
