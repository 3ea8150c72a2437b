#include "observe/audit_log.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

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
    audit_log open() {
        auto log = audit_log::open(path_, [] {
            return std::chrono::system_clock::time_point(
                std::chrono::milliseconds(1'800'000'000'123));
        });
        EXPECT_TRUE(log) << (log ? "" : log.error().message);
        return std::move(*log);
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

}  // namespace
}  // namespace tunnel::observe
