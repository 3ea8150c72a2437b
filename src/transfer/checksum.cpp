#include "transfer/checksum.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "core/shell_quote.hpp"
#include "transfer/local_file.hpp"

namespace tunnel::transfer {

namespace {

struct sha256 {
    sha256() : ctx(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr); }
    sha256(const sha256&) = delete;
    sha256& operator=(const sha256&) = delete;
    ~sha256() { EVP_MD_CTX_free(ctx); }
    void update(std::string_view d) { EVP_DigestUpdate(ctx, d.data(), d.size()); }
    std::string hex() {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        EVP_DigestFinal_ex(ctx, md, &n);
        std::string out;
        for (unsigned i = 0; i < n; ++i) out += fmt::format("{:02x}", md[i]);
        return out;
    }
    EVP_MD_CTX* ctx;
};

}  // namespace

core::result<std::string> sha256_file(const std::string& path) {
    fd_guard fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return tl::unexpected(errno_error("cannot open", path));
    sha256 h;
    std::string buf(1 << 20, '\0');
    for (;;) {
        ssize_t n = ::read(fd.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return tl::unexpected(errno_error("cannot read", path));
        if (n == 0) break;
        h.update(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    }
    return h.hex();
}

asio::awaitable<core::result<std::string>> sha256_remote(remote_host& host, sftp::client& c,
                                                         std::string path) {
    if (co_await host.exec_allowed()) {
        auto r =
            co_await host.run("sha256sum -- " + core::shell_quote(path), std::chrono::minutes(30));
        if (r && r->exit_status == 0 && r->out.size() >= 64) co_return r->out.substr(0, 64);
        spdlog::debug("sha256sum on {} failed; reading the file back instead", host.destination());
    }
    auto h = co_await c.open_file(path, sftp::open_read);
    if (!h) co_return tl::unexpected(h.error());
    auto st = co_await c.fstat(*h);
    if (!st) co_return tl::unexpected(st.error());
    sha256 hash;
    auto r = co_await c.read_stream(*h, 0, st->size.value_or(0),
                                    [&](std::string_view d) { hash.update(d); });
    (void)co_await c.close(*h);
    if (!r) co_return tl::unexpected(r.error());
    co_return hash.hex();
}

asio::awaitable<core::result<void>> verify_same_content(remote_host& host, sftp::client& c,
                                                        const std::string& local,
                                                        const std::string& remote) {
    auto lh = sha256_file(local);
    if (!lh) co_return tl::unexpected(lh.error());
    auto rh = co_await sha256_remote(host, c, remote);
    if (!rh) co_return tl::unexpected(rh.error());
    if (*lh != *rh)
        co_return core::fail(
            core::errc::io_error,
            fmt::format("verification failed: SHA-256 of {} ({}) differs from {} ({})", local,
                        lh->substr(0, 16), host.display_path(remote), rh->substr(0, 16)));
    co_return core::result<void>{};
}

}  // namespace tunnel::transfer
