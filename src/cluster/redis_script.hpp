// A Lua script run with EVALSHA, falling back to EVAL when the server does
// not know it (NOSCRIPT: a restarted or flushed Redis), which loads it again.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "cluster/redis_client.hpp"

namespace tunnel::cluster {

class redis_script {
  public:
    // `name` is for messages ("route claim").
    redis_script(std::string name, std::string source);

    [[nodiscard]] const std::string& sha1() const noexcept { return sha1_; }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }

    // Runs the script; an error reply (a script error, a wrong type) is
    // returned as errc::protocol_error naming the script.
    [[nodiscard]] asio::awaitable<core::result<reply>> run(redis_client& redis,
                                                           std::vector<std::string> keys,
                                                           std::vector<std::string> args) const;

    // EVALs that fell back from EVALSHA (for tests).
    [[nodiscard]] unsigned long fallbacks() const noexcept { return fallbacks_; }

  private:
    std::string name_;
    std::string source_;
    std::string sha1_;  // hex, as SCRIPT LOAD answers
    mutable unsigned long fallbacks_ = 0;
};

}  // namespace tunnel::cluster
