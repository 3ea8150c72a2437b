// The interop suite's shared fixture: each TEST_P runs once per real SSH
// server (OpenSSH sshd, dropbear, tinysshd; support/interop_server.hpp),
// driving the real `tunnel` binary with strict host-key checking. A server
// that is not installed skips with the reason; a scenario a server cannot
// do (tinysshd has no port forwarding) skips with GTEST_SKIP and says why.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "support/interop_server.hpp"
#include "support/process.hpp"
#include "support/tunnel_cli.hpp"
#include "transfer/checksum.hpp"

namespace tunnel::test::interop {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

inline std::string test_name(const ::testing::TestParamInfo<server_kind>& info) {
    return std::string(name_of(info.param));
}

// The servers every suite runs against.
inline auto all_servers() {
    return ::testing::Values(server_kind::openssh, server_kind::dropbear, server_kind::tinysshd);
}

inline long long ms_since(steady::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start).count();
}

inline std::string hash(const std::string& path) {
    auto h = transfer::sha256_file(path);
    return h ? *h : "error: " + h.error().message;
}

inline std::string remote(const std::string& path) {
    return "root@127.0.0.1:" + path;
}

class InteropTest : public ::testing::TestWithParam<server_kind> {
  protected:
    void SetUp() override {
        auto started = interop_server::start(GetParam());
        if (!started && started.error().code == core::errc::not_found)
            GTEST_SKIP() << started.error().message;
        ASSERT_TRUE(started) << started.error().message;
        server_.emplace(std::move(*started));
        auto d = temp_dir::create("tunnel-interop");
        ASSERT_TRUE(d) << d.error().message;
        dir_.emplace(std::move(*d));
    }

    [[nodiscard]] const interop_server& server() const { return *server_; }
    [[nodiscard]] std::string file(const std::string& name) const { return dir_->file(name); }
    [[nodiscard]] const std::string& dir() const { return dir_->path(); }

    // {command, flags..., extra...}: port flag "-P" for cp, "-p" otherwise.
    // via_port: through a fault proxy on that port.
    [[nodiscard]] std::vector<std::string> command(const std::string& sub,
                                                   std::vector<std::string> extra,
                                                   std::uint16_t via_port = 0) const {
        std::vector<std::string> args{sub};
        const auto flags = server_->client_flags(sub == "cp" ? "-P" : "-p", via_port);
        args.insert(args.end(), flags.begin(), flags.end());
        args.insert(args.end(), extra.begin(), extra.end());
        return args;
    }
    // {"exec", flags..., extra..., "root@127.0.0.1", "--", remote_command}
    [[nodiscard]] std::vector<std::string> exec(const std::string& remote_command,
                                                std::vector<std::string> extra = {},
                                                std::uint16_t via_port = 0) const {
        auto args = command("exec", std::move(extra), via_port);
        args.insert(args.end(), {"root@127.0.0.1", "--", remote_command});
        return args;
    }
    // OpenSSH's `ssh` with the same flags and a hermetic HOME, for comparisons.
    [[nodiscard]] run_result run_ssh(const std::string& remote_command,
                                     std::vector<std::string> extra = {}) const {
        auto args = server_->client_flags("-p");
        args.insert(args.end(), extra.begin(), extra.end());
        args.insert(args.end(), {"root@127.0.0.1", remote_command});
        return run_cli("ssh", std::move(args));
    }
    // For failure messages: the result and the server's log.
    [[nodiscard]] std::string diag(const run_result& r) const {
        return r.describe() + "\nstdout: " + r.out.substr(0, 2000) + "\n" +
               std::string(server_->name()) + " log:\n" + server_->log();
    }

    std::optional<interop_server> server_;
    std::optional<temp_dir> dir_;
};

}  // namespace tunnel::test::interop
