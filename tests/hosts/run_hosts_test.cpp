// tunnel run against four test hosts, one of them stopped mid-run.
#include <gtest/gtest.h>

#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/test_hosts.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

TEST(RunOnTestHosts, OneHostStoppedMidRunOthersSucceed) {
    auto hosts = test_hosts::start(4);
    ASSERT_TRUE(hosts) << hosts.error().message;
    auto inventory = hosts->write_inventory("fleet");
    ASSERT_TRUE(inventory) << inventory.error().message;
    auto home = temp_dir::create("tunnel-run-hosts");
    ASSERT_TRUE(home);
    std::vector<std::string> args{"run",
                                  "-i",
                                  *inventory,
                                  "-F",
                                  "/dev/null",
                                  "-o",
                                  "UserKnownHostsFile=" + hosts->known_hosts_all(),
                                  "-o",
                                  "StrictHostKeyChecking=yes",
                                  "--timeout",
                                  "20s",
                                  "--json",
                                  "--",
                                  "touch /run/started; sleep 3; hostname"};
    auto child = spawn_tunnel(args, home->path(), home->file("out.json"), home->file("err.txt"));
    ASSERT_TRUE(child) << child.error().message;
    // Stop th-2 once the command runs there (read through nsenter, not ssh).
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    bool running = false;
    while (!running && std::chrono::steady_clock::now() < deadline) {
        running = hosts->exec(2, {"test", "-e", "/run/started"}).ok();
        if (!running) std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(running) << "the command never started on " << (*hosts)[2].name;
    ASSERT_TRUE(hosts->stop(2, test_hosts::stop_mode::fast));
    auto code = child->wait(60s);
    ASSERT_TRUE(code) << "tunnel run did not finish";
    auto out = read_text_file(home->file("out.json"));
    ASSERT_TRUE(out);
    EXPECT_EQ(*code, 4) << *out << read_text_file(home->file("err.txt")).value_or("");
    auto doc = nlohmann::json::parse(*out, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << *out;
    EXPECT_EQ(doc["summary"]["ok"], 3) << *out;
    EXPECT_EQ(doc["summary"]["unreachable"], 1) << *out;
    for (std::size_t i = 0; i < 4; ++i) {
        const auto& h = doc["hosts"][i];
        EXPECT_EQ(h["host"], (*hosts)[i].name);
        if (i == 2) {
            EXPECT_EQ(h["status"], "unreachable") << h.dump();
        } else {
            EXPECT_EQ(h["status"], "ok") << h.dump();
            EXPECT_EQ(h["stdout"], (*hosts)[i].name + "\n");
        }
    }
}

}  // namespace
}  // namespace tunnel::test
