#include "transfer/retrying_transfer.hpp"

#include <spdlog/spdlog.h>

namespace tunnel::transfer {

asio::awaitable<core::result<void>> run_with_reconnects(
    asio::any_io_executor executor, ssh::connect_options target, sftp::client_options sftp,
    reconnect_options options, progress& p, transfer_stats& stats, transfer_attempt attempt) {
    retry_schedule schedule(options.retries, options.backoff, std::move(options.random));
    stats.track_finished = options.retries > 0;
    for (bool resuming = false;; resuming = true) {
        if (resuming) {
            stats.start_again();
            p.start_again();
        }
        core::result<void> r;
        bool connected = false;
        {
            auto connecting = remote_host::connect(executor, target, sftp, options.pooled);
            auto host = co_await std::move(connecting);
            if (!host) {
                r = tl::unexpected(host.error());
            } else {
                connected = true;
                r = co_await attempt(**host, resuming);
            }
        }  // the session (and every SFTP channel on it) is closed here
        std::optional<core::error> lost;
        if (!r && connection_lost(r.error()))
            lost = r.error();
        else if (stats.connection_lost)
            lost = *stats.connection_lost;
        if (!lost) co_return r;

        // An attempt that moved data had a working link: its cut is a new
        // blip, and the backoff starts again from its base.
        auto delay = schedule.next(p.moved() > 0);
        if (!delay) co_return r;
        retry_event e{schedule.used(), schedule.allowed(), *delay, *lost, connected};
        spdlog::debug("{}", describe(e));
        if (options.on_retry) options.on_retry(e);
        asio::steady_timer wait(executor, *delay);
        boost::system::error_code ec;
        co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

void retry_log::record(const retry_event& e) {
    errors.push_back(e.cause.message);
    ever_connected = ever_connected || e.connected;
}

std::optional<std::string> retry_log::lost_advice(const std::optional<core::error>& fatal,
                                                  const transfer_stats& stats) const {
    const auto retried = static_cast<unsigned>(errors.size());
    if (fatal ? retried > 0 && connection_lost(*fatal) : stats.connection_lost.has_value())
        return lost_connection_advice(retried, ever_connected || !fatal);
    return std::nullopt;
}

void retry_log::add_to(nlohmann::json& j, const std::optional<core::error>& fatal,
                       const std::optional<std::string>& lost) const {
    j["retries"] = static_cast<unsigned>(errors.size());
    j["retry_errors"] = errors;
    if (fatal) j["error"] = fatal->message;
    if (lost) j["error"] = fatal ? fatal->message + "; " + *lost : *lost;
}

}  // namespace tunnel::transfer
