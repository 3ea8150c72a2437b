#include "transfer/local_checks.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace tunnel::transfer {
namespace {

namespace fs = std::filesystem;

class LocalChecks : public ::testing::Test {
  protected:
    void SetUp() override {
        char pattern[] = "/tmp/tunnel-local-checks-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir = pattern;
        std::ofstream(dir + "/file") << "x";
        fs::create_directory(dir + "/tree");
    }
    void TearDown() override { fs::remove_all(dir); }
    std::string dir;
};

TEST_F(LocalChecks, UploadSourcesNameEveryProblem) {
    EXPECT_TRUE(check_upload_sources({dir + "/file"}, false).empty());
    EXPECT_TRUE(check_upload_sources({dir + "/file", dir + "/tree"}, true).empty());
    const auto problems =
        check_upload_sources({dir + "/missing", dir + "/tree", dir + "/file"}, false);
    ASSERT_EQ(problems.size(), 2u);
    EXPECT_EQ(problems[0].code, core::errc::not_found);
    EXPECT_NE(problems[0].message.find(dir + "/missing"), std::string::npos) << problems[0].message;
    EXPECT_NE(problems[1].message.find("is a directory (use -r)"), std::string::npos)
        << problems[1].message;
    const auto fifo = dir + "/fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    ASSERT_EQ(check_upload_sources({fifo}, true).size(), 1u);
}

TEST_F(LocalChecks, DownloadDestinationMustHaveAnExistingDirectory) {
    EXPECT_TRUE(check_download_destination(dir, 3));
    EXPECT_TRUE(check_download_destination(dir + "/new-file", 1));
    EXPECT_TRUE(check_download_destination(dir + "/file", 1));   // replaced
    EXPECT_FALSE(check_download_destination(dir + "/file", 2));  // several need a directory
    auto missing_dir = check_download_destination(dir + "/nope/", 1);
    ASSERT_FALSE(missing_dir);
    EXPECT_NE(missing_dir.error().message.find("does not exist"), std::string::npos);
    auto missing_parent = check_download_destination(dir + "/nope/file", 1);
    ASSERT_FALSE(missing_parent);
    EXPECT_NE(missing_parent.error().message.find(dir + "/nope"), std::string::npos)
        << missing_parent.error().message;
}

}  // namespace
}  // namespace tunnel::transfer
