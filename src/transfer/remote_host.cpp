#include "transfer/remote_host.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ssh/channel.hpp"

namespace tunnel::transfer {

remote_host::remote_host(std::shared_ptr<ssh::session> s, sftp::client_options sftp)
    : session_(std::move(s)), target_(session_->options()), sftp_options_(sftp) {}

remote_host::remote_host(ssh::connect_options target, std::shared_ptr<pooled_access> pooled,
                         std::unique_ptr<sftp::client> first, sftp::client_options sftp)
    : target_(std::move(target)), pooled_(std::move(pooled)), sftp_options_(sftp) {
    clients_.push_back(std::move(first));
}

asio::awaitable<core::result<std::shared_ptr<remote_host>>> remote_host::connect(
    asio::any_io_executor executor, ssh::connect_options target, sftp::client_options sftp,
    std::shared_ptr<pooled_access> pooled) {
    if (pooled) {
        auto opening = pooled->open_sftp(target, sftp);
        auto first = co_await std::move(opening);
        if (first) {
            if (!*first) co_return tl::unexpected(first->error());
            co_return std::make_shared<remote_host>(std::move(target), std::move(pooled),
                                                    std::move(**first), sftp);
        }
    }
    auto s = co_await ssh::session::connect(executor, std::move(target));
    if (!s) co_return tl::unexpected(s.error());
    co_return std::make_shared<remote_host>(std::move(*s), sftp);
}

std::string remote_host::display_path(std::string_view path) const {
    return fmt::format("{}:{}", target_.host, path);
}

asio::awaitable<core::result<std::unique_ptr<sftp::client>>> remote_host::open_client() {
    if (!pooled_) co_return co_await sftp::client::open(session_, sftp_options_);
    // Through the manager, a refusal now is an error: part of the copy may
    // already be written over it, so it never goes around it.
    auto opening = pooled_->open_sftp(target_, sftp_options_);
    auto c = co_await std::move(opening);
    if (!c)
        co_return core::fail(core::errc::resource_exhausted,
                             "the link manager (tunnel up) declined another SFTP channel");
    co_return std::move(*c);
}

asio::awaitable<core::result<sftp::client*>> remote_host::sftp(std::size_t slot) {
    if (slot < clients_.size() && clients_[slot]) co_return clients_[slot].get();
    if (clients_.size() <= slot) clients_.resize(slot + 1);
    auto c = co_await open_client();
    if (!c) co_return tl::unexpected(c.error());
    clients_[slot] = std::move(*c);
    co_return clients_[slot].get();
}

asio::awaitable<core::result<std::unique_ptr<sftp::client>>> remote_host::borrow_sftp() {
    if (!spare_.empty()) {
        auto c = std::move(spare_.back());
        spare_.pop_back();
        co_return c;
    }
    if (no_more_channels_)
        co_return core::fail(core::errc::resource_exhausted, "no more SFTP channels");
    auto c = co_await open_client();
    if (!c) no_more_channels_ = true;
    co_return c;
}

asio::awaitable<core::result<command_output>> remote_host::run(std::string command,
                                                               std::chrono::milliseconds timeout) {
    if (pooled_) {
        auto running = pooled_->run(target_, std::move(command), timeout);
        auto r = co_await std::move(running);
        if (!r)
            co_return core::fail(core::errc::channel_failed,
                                 "the link manager (tunnel up) declined to run a command");
        co_return std::move(*r);
    }
    const auto deadline = ssh::clock_type::now() + timeout;
    auto ch = co_await ssh::channel::open_session(session_, deadline);
    if (!ch) co_return tl::unexpected(ch.error());
    if (auto r = co_await ch->request_exec(command, deadline); !r)
        co_return tl::unexpected(r.error());
    ch->send_eof();
    while (!ch->finished()) {
        ch->drain();
        if (ch->finished()) break;
        auto w = co_await session_->wait(deadline);
        if (!w) {
            ch->close();
            co_return tl::unexpected(w.error());
        }
    }
    ch->drain();
    command_output out;
    out.exit_status = ch->state().exit_status.value_or(-1);
    out.out = std::move(ch->state().out);
    out.err = std::move(ch->state().err);
    ch->close();
    co_return out;
}

asio::awaitable<bool> remote_host::exec_allowed() {
    if (exec_allowed_) co_return *exec_allowed_;
    // Under `ForceCommand internal-sftp` the request is accepted but runs an
    // SFTP server instead, which prints nothing and exits at our EOF.
    auto r = co_await run("echo tunnel-exec-probe", std::chrono::seconds(10));
    exec_allowed_ =
        r && r->exit_status == 0 && r->out.find("tunnel-exec-probe") != std::string::npos;
    if (!*exec_allowed_) spdlog::debug("{} runs no commands (SFTP-only account?)", destination());
    co_return *exec_allowed_;
}

}  // namespace tunnel::transfer
