#include "ssh/keepalive.hpp"

#include <libssh/server.h>  // ssh_send_keepalive: a global request, valid from clients too
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstddef>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace tunnel::ssh {

namespace {

// The kernel's struct tcp_info (<linux/tcp.h>) as far as the counters we
// read. glibc's struct tcp_info stops at tcpi_total_retrans, and the kernel
// header cannot be included beside glibc's (both define struct tcphdr); the
// kernel only ever appends to this struct.
struct kernel_tcp_info {
    struct tcp_info glibc;  // through tcpi_total_retrans
    std::uint64_t pacing_rate;
    std::uint64_t max_pacing_rate;
    std::uint64_t bytes_acked;
    std::uint64_t bytes_received;  // Linux 4.1
    std::uint32_t segs_out;
    std::uint32_t segs_in;
    std::uint32_t notsent_bytes;  // Linux 4.6
    std::uint32_t min_rtt;
    std::uint32_t data_segs_in;
    std::uint32_t data_segs_out;  // Linux 4.6
};
static_assert(sizeof(struct tcp_info) == 104, "glibc's struct tcp_info changed");
static_assert(offsetof(kernel_tcp_info, bytes_received) == 128);
static_assert(offsetof(kernel_tcp_info, data_segs_out) == 156);

}  // namespace

std::optional<socket_counters> read_socket_counters(int fd) noexcept {
    kernel_tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::nullopt;
    if (len < sizeof info) return std::nullopt;  // an older kernel
    // Written: segments that carried data, plus bytes still queued unsent.
    return socket_counters{info.bytes_received, info.data_segs_out + info.notsent_bytes};
}

core::result<void> keepalive::tick(ssh_session session, int fd, int count_max,
                                   std::chrono::seconds interval, const std::string& destination) {
    const auto before = read_socket_counters(fd);
    const bool heard_since = before && last_received_ && before->received != *last_received_;
    if (before) last_received_ = before->received;
    if (heard_since) unanswered_ = 0;  // read inside libssh, where our wait could not see it
    if (blocked_) {
        ssh_send_ignore(session, "");
        return {};
    }
    if (++unanswered_ > count_max)
        return core::fail(core::errc::disconnected,
                          fmt::format("{} stopped answering keepalives ({} × {}s): connection lost",
                                      destination, count_max, interval.count()));
    const auto wrote_since = [&] {
        const auto now = read_socket_counters(fd);
        return !before || !now || now->written != before->written;
    };
    // The first call may only collect the last keepalive's answer; then the
    // second sends. (Without counters: two calls, at worst two keepalives.)
    ssh_send_keepalive(session);
    bool sent = before && wrote_since();
    if (!sent) {
        ssh_send_keepalive(session);
        sent = wrote_since();
    }
    if (!sent && sent_last_tick_ && heard_since) {
        // Our last keepalive was answered, yet libssh sends none now: the
        // answer was not one libssh recognises (tinysshd's UNIMPLEMENTED).
        blocked_ = true;
        unanswered_ = 0;
        spdlog::debug(
            "{} answers keepalive@openssh.com in a way libssh does not take as an answer "
            "(SSH_MSG_UNIMPLEMENTED: tinysshd); no more keepalives can be sent on this session, "
            "so it keeps to SSH_MSG_IGNORE and a peer that goes silent is no longer noticed",
            destination);
        ssh_send_ignore(session, "");
    }
    sent_last_tick_ = sent;
    return {};
}

}  // namespace tunnel::ssh
