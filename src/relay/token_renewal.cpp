#include "relay/token_renewal.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace tunnel::relay {

namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

// How often a token file is looked at for a change.
constexpr milliseconds file_poll = 1000ms;

// Bytes moved and channels opened: a request just forwarded to us counts
// before its first byte does.
std::uint64_t activity(const forward::supervisor& s) {
    std::uint64_t n = 0;
    for (const auto& f : s.snapshot().forwards) n += f.bytes_in + f.bytes_out + f.connections;
    return n;
}

}  // namespace

asio::awaitable<bool> quiet_moment(asio::steady_timer& timer, const forward::supervisor& s,
                                   milliseconds limit, const bool& stopped) {
    const auto until = std::chrono::steady_clock::now() + limit;
    auto last = activity(s);
    int still = 0;
    while (!stopped && std::chrono::steady_clock::now() < until) {
        timer.expires_after(50ms);
        boost::system::error_code ec;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        const auto now = activity(s);
        still = now == last ? still + 1 : 0;
        last = now;
        // 100 ms without a byte or a new channel, and no channel open (a
        // request waiting for its origin's answer moves no byte); or 1 s
        // without any: channels still open then are idle (a relay keeps
        // them for keep-alive).
        if ((still >= 2 && s.open_channels() == 0) || still >= 20) co_return true;
    }
    co_return false;
}

token_renewal::token_renewal(asio::any_io_executor executor, std::shared_ptr<token_source> source,
                             std::shared_ptr<forward::supervisor> supervisor,
                             std::function<void(const token_renewed&)> on_renewed)
    : timer_(std::move(executor)),
      source_(std::move(source)),
      supervisor_(std::move(supervisor)),
      on_renewed_(std::move(on_renewed)) {}

void token_renewal::stop() {
    stopped_ = true;
    timer_.cancel();
    source_->cancel();
}

asio::awaitable<void> token_renewal::sleep(milliseconds d) {
    timer_.expires_after(std::max(d, 1ms));
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> token_renewal::run() {
    while (!stopped_) {
        const std::string in_use = source_->last();
        const auto exp = token_expiry(in_use);
        const auto margin = renewal_margin(in_use);
        const auto now = std::chrono::system_clock::now();
        // Wake for the renewal, or to look at the file again.
        auto wait =
            exp ? std::chrono::duration_cast<milliseconds>(*exp - margin - now) : milliseconds(24h);
        if (!source_->is_command()) wait = std::min(wait, file_poll);
        co_await sleep(wait);
        if (stopped_) break;

        const bool due = exp && std::chrono::system_clock::now() >= *exp - margin;
        const bool changed = source_->file_changed();
        if (!due && !changed) continue;
        auto fresh = co_await source_->fetch_async();
        if (stopped_) break;
        // Trying again: every 5 s, or sooner when the token in use expires
        // sooner (a quarter of what is left, at least 100 ms); said once per
        // token in use, not at every try.
        const auto retry = std::clamp(exp ? std::chrono::duration_cast<milliseconds>(
                                                *exp - std::chrono::system_clock::now()) /
                                                4
                                          : 5000ms,
                                      100ms, 5000ms);
        const bool first_try = warned_for_ != in_use;
        if (!fresh) {
            if (first_try)
                spdlog::warn("could not get a fresh token: {}; trying again every {} ms",
                             fresh.error().message, retry.count());
            warned_for_ = in_use;
            co_await sleep(retry);
            continue;
        }
        if (*fresh == in_use) {
            if (due && !changed) {
                if (first_try)
                    spdlog::warn(
                        "the token source gave the same token again, which expires {}; {} "
                        "(trying again every {} ms)",
                        exp && *exp > std::chrono::system_clock::now() ? "soon" : "now",
                        source_->is_command() ? "check --token-command"
                                              : "write a fresh token to the --token-file",
                        retry.count());
                warned_for_ = in_use;
                co_await sleep(retry);
            }
            continue;
        }
        // Attach again with it at a quiet moment, before the old one expires.
        const auto left =
            exp ? std::chrono::duration_cast<milliseconds>(*exp - std::chrono::system_clock::now())
                : milliseconds(10'000);
        (void)co_await quiet_moment(timer_, *supervisor_, std::clamp(left - 500ms, 0ms, 10'000ms),
                                    stopped_);
        if (stopped_) break;
        token_renewed ev;
        if (auto e = token_expiry(*fresh)) ev.expires = *e;
        ev.file_changed = changed && !due;
        supervisor_->reconnect_now(changed && !due ? "the token file changed"
                                                   : "attaching with a renewed token");
        if (on_renewed_) on_renewed_(ev);
    }
}

}  // namespace tunnel::relay
