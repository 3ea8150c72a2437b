#include "cluster/redis_script.hpp"

#include <openssl/sha.h>

#include <fmt/format.h>

#include "core/log_text.hpp"

namespace tunnel::cluster {

redis_script::redis_script(std::string name, std::string source)
    : name_(std::move(name)), source_(std::move(source)) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(source_.data()), source_.size(), digest);
    for (unsigned char b : digest) sha1_ += fmt::format("{:02x}", b);
}

asio::awaitable<core::result<reply>> redis_script::run(redis_client& redis,
                                                       std::vector<std::string> keys,
                                                       std::vector<std::string> args) const {
    std::vector<std::string> command{"EVALSHA", sha1_, std::to_string(keys.size())};
    command.insert(command.end(), keys.begin(), keys.end());
    command.insert(command.end(), args.begin(), args.end());
    auto first = redis.command(command);
    auto r = co_await std::move(first);
    if (r && r->is_error() && r->text.starts_with("NOSCRIPT")) {
        ++fallbacks_;
        command[0] = "EVAL";
        command[1] = source_;
        auto second = redis.command(std::move(command));
        r = co_await std::move(second);
    }
    if (!r) co_return r;
    if (r->is_error())
        co_return core::fail(core::errc::protocol_error, fmt::format("redis script {}: {}", name_,
                                                                     core::log_text(r->text, 300)));
    co_return r;
}

}  // namespace tunnel::cluster
