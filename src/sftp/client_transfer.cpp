// sftp::client's data transfer (client.hpp): upload (writes pipelined up to
// max_inflight and the queue bound), read_pipelined (reads pipelined, in
// order or as they come, short reads asked again) and the download and
// read_stream built on it. The packet loop, the handshake and the file
// operations are in client.cpp.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <unordered_map>

#include <fmt/format.h>

#include "sftp/client.hpp"

namespace tunnel::sftp {

namespace {

// Requests queued beyond what the channel window accepts.
constexpr std::size_t max_queued = 4u << 20;

core::result<void> write_all_at(int fd, std::string_view data, std::uint64_t offset) {
    while (!data.empty()) {
        ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            return core::fail(e == ENOSPC ? core::errc::resource_exhausted : core::errc::io_error,
                              fmt::format("local write failed: {}", std::strerror(e)));
        }
        data.remove_prefix(static_cast<std::size_t>(n));
        offset += static_cast<std::uint64_t>(n);
    }
    return {};
}

}  // namespace

asio::awaitable<core::result<void>> client::upload(int fd, std::string handle, std::uint64_t offset,
                                                   std::uint64_t length, progress_fn progress) {
    struct pending {
        std::uint64_t offset;
        std::size_t len;
    };
    std::unordered_map<std::uint32_t, pending> inflight;
    const std::uint64_t end = offset + length;
    auto until = deadline();
    while (offset < end || !inflight.empty()) {
        while (offset < end && inflight.size() < options_.max_inflight && queued_ < max_queued) {
            std::size_t n = static_cast<std::size_t>(
                std::min<std::uint64_t>(options_.chunk_size, end - offset));
            auto id = next_id();
            // The header, then the file's bytes read straight into the packet.
            const std::string head = packet_writer(fxp::write, id)
                                         .str(handle)
                                         .u64(offset)
                                         .u32(static_cast<std::uint32_t>(n))
                                         .finish();
            const std::size_t header = head.size();
            out_packet packet{std::make_unique_for_overwrite<char[]>(header + n), header + n};
            std::memcpy(packet.bytes.get(), head.data(), header);
            const auto total = static_cast<std::uint32_t>(packet.size - 4);
            packet.bytes[0] = static_cast<char>(total >> 24);
            packet.bytes[1] = static_cast<char>(total >> 16);
            packet.bytes[2] = static_cast<char>(total >> 8);
            packet.bytes[3] = static_cast<char>(total);
            std::size_t got = 0;
            while (got < n) {
                ssize_t r = ::pread(fd, packet.bytes.get() + header + got, n - got,
                                    static_cast<off_t>(offset + got));
                if (r < 0 && errno == EINTR) continue;
                if (r < 0)
                    co_return core::fail(core::errc::io_error, fmt::format("local read failed: {}",
                                                                           std::strerror(errno)));
                if (r == 0)
                    co_return core::fail(core::errc::io_error,
                                         "the source file shrank while it was being copied");
                got += static_cast<std::size_t>(r);
            }
            send(std::move(packet));
            inflight.emplace(id, pending{offset, n});
            offset += n;
        }
        if (auto s = co_await step(until); !s) co_return s;
        for (auto it = inflight.begin(); it != inflight.end();) {
            auto r = replies_.find(it->first);
            if (r == replies_.end()) {
                ++it;
                continue;
            }
            auto st = r->second.type == fxp::status ? parse_status(r->second.body)
                                                    : core::result<status_reply>{};
            if (r->second.type != fxp::status || !st || st->code != status_code::ok) {
                auto e =
                    fail_status(r->second, fmt::format("write at offset {}", it->second.offset));
                replies_.erase(r);
                co_return tl::unexpected(e);
            }
            if (progress) progress(it->second.len);
            replies_.erase(r);
            it = inflight.erase(it);
            until = deadline();
        }
    }
    co_return core::result<void>{};
}

asio::awaitable<core::result<std::uint64_t>> client::read_pipelined(
    std::string handle, std::uint64_t offset, std::uint64_t length,
    std::function<core::result<void>(std::uint64_t, std::string_view)> on_data, bool in_order) {
    struct pending {
        std::uint32_t id;
        std::uint64_t offset;
        std::size_t len;
    };
    std::deque<pending> inflight;               // issue order
    std::map<std::uint64_t, std::string> held;  // out-of-order data (in_order only)
    std::uint64_t next = offset;                // next offset to request
    std::uint64_t end = offset + length;        // lowered when the server reports EOF
    std::uint64_t delivered = offset;           // in_order: next offset to hand out
    std::uint64_t total = 0;
    std::deque<std::pair<std::uint64_t, std::size_t>> gaps;  // short reads to ask again
    auto until = deadline();
    const std::size_t depth = read_inflight();
    std::optional<core::error> sink_error;
    struct sink_reset {
        client* self;
        ~sink_reset() { self->data_sink_ = nullptr; }
    } reset{this};
    if (!in_order) {
        data_sink_ = [&](std::uint32_t id, std::string_view body) -> bool {
            auto it = std::find_if(inflight.begin(), inflight.end(),
                                   [id](const pending& q) { return q.id == id; });
            if (it == inflight.end()) return false;
            auto data = parse_data(body);
            if (!data || data->size() > it->len) return false;  // the general path reports it
            const pending p = *it;
            inflight.erase(it);
            until = deadline();
            if (data->size() < p.len)
                gaps.emplace_back(p.offset + data->size(), p.len - data->size());
            total += data->size();
            if (!sink_error)
                if (auto w = on_data(p.offset, *data); !w) sink_error = w.error();
            return true;
        };
    }
    while (next < end || !inflight.empty() || !gaps.empty()) {
        while (inflight.size() < depth && (!gaps.empty() || next < end)) {
            std::uint64_t off;
            std::size_t n;
            if (!gaps.empty()) {
                std::tie(off, n) = gaps.front();
                gaps.pop_front();
                if (off >= end) continue;
            } else {
                off = next;
                n = static_cast<std::size_t>(
                    std::min<std::uint64_t>(options_.chunk_size, end - next));
                next += n;
            }
            auto id = next_id();
            send(packet_writer(fxp::read, id)
                     .str(handle)
                     .u64(off)
                     .u32(static_cast<std::uint32_t>(n))
                     .finish());
            inflight.push_back({id, off, n});
            peak_reads_ = std::max(peak_reads_, inflight.size());
        }
        if (inflight.empty()) break;
        if (auto s = co_await step(until); !s) co_return tl::unexpected(s.error());
        if (sink_error) co_return tl::unexpected(*sink_error);
        for (auto it = inflight.begin(); it != inflight.end();) {
            auto r = replies_.find(it->id);
            if (r == replies_.end()) {
                ++it;
                continue;
            }
            reply rep = std::move(r->second);
            replies_.erase(r);
            const pending p = *it;
            it = inflight.erase(it);
            until = deadline();
            if (rep.type == fxp::status) {
                auto st = parse_status(rep.body);
                if (st && st->code == status_code::eof) {
                    end = std::min(end, p.offset);  // the file is shorter than fstat said
                    continue;
                }
                co_return tl::unexpected(
                    fail_status(rep, fmt::format("read at offset {}", p.offset)));
            }
            if (rep.type != fxp::data) co_return tl::unexpected(fail_status(rep, "read"));
            auto data = parse_data(rep.body);
            if (!data) co_return tl::unexpected(data.error());
            if (data->size() > p.len)
                co_return core::fail(core::errc::protocol_error,
                                     fmt::format("{} sent {} bytes for a {}-byte read",
                                                 destination_, data->size(), p.len));
            if (data->size() < p.len)
                gaps.emplace_back(p.offset + data->size(), p.len - data->size());
            total += data->size();
            if (!in_order) {
                if (auto w = on_data(p.offset, *data); !w) co_return tl::unexpected(w.error());
            } else {
                held.emplace(p.offset, std::string(*data));
            }
        }
        while (in_order && !held.empty() && held.begin()->first == delivered) {
            auto node = held.extract(held.begin());
            if (auto w = on_data(node.key(), node.mapped()); !w)
                co_return tl::unexpected(w.error());
            delivered += node.mapped().size();
        }
    }
    if (in_order && !held.empty())
        co_return core::fail(core::errc::protocol_error,
                             fmt::format("{} left a gap in a file read", destination_));
    co_return total;
}

asio::awaitable<core::result<std::uint64_t>> client::download(std::string handle, int fd,
                                                              std::uint64_t offset,
                                                              std::uint64_t length,
                                                              progress_fn progress, bool sparse) {
    co_return co_await read_pipelined(
        std::move(handle), offset, length,
        [&](std::uint64_t off, std::string_view data) -> core::result<void> {
            bool zeros =
                sparse && std::all_of(data.begin(), data.end(), [](char ch) { return ch == 0; });
            if (!zeros)
                if (auto w = write_all_at(fd, data, off); !w) return w;
            if (progress) progress(data.size());
            return {};
        },
        false);
}

asio::awaitable<core::result<std::uint64_t>> client::read_stream(
    std::string handle, std::uint64_t offset, std::uint64_t length,
    std::function<void(std::string_view)> sink) {
    co_return co_await read_pipelined(
        std::move(handle), offset, length,
        [&](std::uint64_t, std::string_view data) -> core::result<void> {
            sink(data);
            return {};
        },
        true);
}

}  // namespace tunnel::sftp
