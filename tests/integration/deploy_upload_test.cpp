// The artifact upload of `tunnel deploy` against a real sshd on 127.0.0.1:
// the host's copy is compared with the artifact's SHA-256 (computed once by
// inspect_artifact), so a same-sized artifact with other bytes must still
// travel, and an unchanged one must not.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void spit(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

TEST(DeployUpload, ASameSizedArtifactWithOtherBytesIsUploadedAndAnUnchangedOneIsNot) {
    auto sshd = sshd_fixture::start();
    ASSERT_TRUE(sshd) << sshd.error().message;
    auto dir = temp_dir::create("deploy-upload");
    ASSERT_TRUE(dir) << dir.error().message;
    const auto root = dir->file("host");
    spit(dir->file("hosts.ini"),
         fmt::format("[web]\nh1 ansible_host=127.0.0.1 ansible_port={} ansible_user=root\n",
                     sshd->port()));
    spit(dir->file("deploy.yaml"), fmt::format("app: tool\nroot: {}\nartifact: tool.sh\n", root));
    const std::vector<std::string> args{"deploy",
                                        dir->file("deploy.yaml"),
                                        "-i",
                                        dir->file("hosts.ini"),
                                        "--private-key",
                                        sshd->client_key_path(),
                                        "-F",
                                        "/dev/null",
                                        "-o",
                                        "UserKnownHostsFile=" + sshd->known_hosts_path(),
                                        "-o",
                                        "GlobalKnownHostsFile=/dev/null",
                                        "-o",
                                        "BatchMode=yes",
                                        "--json"};
    // Deploys and returns whether the host was sent the artifact.
    auto deploy = [&]() -> bool {
        cli_options o;
        o.timeout = std::chrono::seconds(60);
        auto r = run_tunnel(args, o);
        EXPECT_EQ(r.exit_code, 0) << r.describe() << "\n" << r.out;
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << r.out << r.err;
        if (j.is_discarded() || j["hosts"].empty()) return false;
        EXPECT_EQ(j["hosts"][0]["status"], "deployed") << j.dump();
        return j["hosts"][0]["uploaded"].get<bool>();
    };

    spit(dir->file("tool.sh"), "#!/bin/sh\necho one\n");
    EXPECT_TRUE(deploy());
    EXPECT_EQ(slurp(root + "/current/tool.sh"), "#!/bin/sh\necho one\n");

    spit(dir->file("tool.sh"), "#!/bin/sh\necho two\n");  // same size, other bytes
    EXPECT_TRUE(deploy()) << "the host's copy has the same size but other bytes";
    EXPECT_EQ(slurp(root + "/current/tool.sh"), "#!/bin/sh\necho two\n");

    EXPECT_FALSE(deploy()) << "unchanged: the upload is skipped";
    EXPECT_EQ(slurp(root + "/current/tool.sh"), "#!/bin/sh\necho two\n");
}

}  // namespace
}  // namespace tunnel::test
