#include "sftp/packet.hpp"

#include <fmt/format.h>

namespace tunnel::sftp {

namespace {

tl::unexpected<core::error> malformed(std::string_view what) {
    return core::fail(core::errc::protocol_error, fmt::format("malformed SFTP packet: {}", what));
}

// A NAME reply entry needs at least two empty strings and an attrs word.
constexpr std::size_t min_name_entry = 4 + 4 + 4;

}  // namespace

packet_writer::packet_writer(fxp type, std::uint32_t id) {
    buf_.reserve(64);
    buf_.append(4, '\0');
    u8(static_cast<std::uint8_t>(type));
    u32(id);
}

packet_writer packet_writer::init(std::uint32_t version) {
    packet_writer w;
    w.buf_.append(4, '\0');
    w.u8(static_cast<std::uint8_t>(fxp::init));
    w.u32(version);
    return w;
}

packet_writer& packet_writer::u8(std::uint8_t v) {
    buf_.push_back(static_cast<char>(v));
    return *this;
}

packet_writer& packet_writer::u32(std::uint32_t v) {
    char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                 static_cast<char>(v)};
    buf_.append(b, 4);
    return *this;
}

packet_writer& packet_writer::u64(std::uint64_t v) {
    u32(static_cast<std::uint32_t>(v >> 32));
    return u32(static_cast<std::uint32_t>(v));
}

packet_writer& packet_writer::str(std::string_view v) {
    u32(static_cast<std::uint32_t>(v.size()));
    buf_.append(v);
    return *this;
}

packet_writer& packet_writer::attrs(const file_attrs& a) {
    std::uint32_t flags = 0;
    if (a.size) flags |= attr_size;
    if (a.uid && a.gid) flags |= attr_uidgid;
    if (a.permissions) flags |= attr_permissions;
    if (a.atime && a.mtime) flags |= attr_acmodtime;
    u32(flags);
    if (flags & attr_size) u64(*a.size);
    if (flags & attr_uidgid) u32(*a.uid).u32(*a.gid);
    if (flags & attr_permissions) u32(*a.permissions);
    if (flags & attr_acmodtime) u32(*a.atime).u32(*a.mtime);
    return *this;
}

std::string packet_writer::finish() {
    auto n = static_cast<std::uint32_t>(buf_.size() - 4);
    buf_[0] = static_cast<char>(n >> 24);
    buf_[1] = static_cast<char>(n >> 16);
    buf_[2] = static_cast<char>(n >> 8);
    buf_[3] = static_cast<char>(n);
    return std::move(buf_);
}

core::result<std::uint8_t> packet_reader::u8() {
    if (rest_.empty()) return malformed("truncated byte");
    auto v = static_cast<std::uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return v;
}

core::result<std::uint32_t> packet_reader::u32() {
    if (rest_.size() < 4) return malformed("truncated uint32");
    auto b = reinterpret_cast<const unsigned char*>(rest_.data());
    std::uint32_t v = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) |
                      (std::uint32_t{b[2]} << 8) | b[3];
    rest_.remove_prefix(4);
    return v;
}

core::result<std::uint64_t> packet_reader::u64() {
    auto hi = u32();
    if (!hi) return tl::unexpected(hi.error());
    auto lo = u32();
    if (!lo) return tl::unexpected(lo.error());
    return (std::uint64_t{*hi} << 32) | *lo;
}

core::result<std::string_view> packet_reader::str() {
    auto n = u32();
    if (!n) return tl::unexpected(n.error());
    if (*n > rest_.size()) return malformed("string longer than its packet");
    auto v = rest_.substr(0, *n);
    rest_.remove_prefix(*n);
    return v;
}

core::result<file_attrs> packet_reader::attrs() {
    auto flags = u32();
    if (!flags) return tl::unexpected(flags.error());
    file_attrs a;
    if (*flags & attr_size) {
        auto v = u64();
        if (!v) return tl::unexpected(v.error());
        a.size = *v;
    }
    if (*flags & attr_uidgid) {
        auto u = u32();
        auto g = u ? u32() : u;
        if (!g) return tl::unexpected(g.error());
        a.uid = *u;
        a.gid = *g;
    }
    if (*flags & attr_permissions) {
        auto v = u32();
        if (!v) return tl::unexpected(v.error());
        a.permissions = *v;
    }
    if (*flags & attr_acmodtime) {
        auto at = u32();
        auto mt = at ? u32() : at;
        if (!mt) return tl::unexpected(mt.error());
        a.atime = *at;
        a.mtime = *mt;
    }
    if (*flags & attr_extended) {
        auto count = u32();
        if (!count) return tl::unexpected(count.error());
        // Each pair needs at least 8 bytes: refuse counts the packet cannot hold.
        if (*count > rest_.size() / 8) return malformed("extended attribute count too large");
        for (std::uint32_t i = 0; i < *count; ++i) {
            auto k = str();
            auto v = k ? str() : k;
            if (!v) return tl::unexpected(v.error());
        }
    }
    return a;
}

core::result<std::optional<frame>> next_frame(std::string_view buf, std::uint32_t limit) {
    if (buf.size() < 4) return std::optional<frame>{};
    packet_reader r(buf);
    std::uint32_t len = *r.u32();
    if (len < 5) return malformed(fmt::format("packet length {} is too short", len));
    if (len > limit)
        return malformed(fmt::format("packet length {} exceeds the limit of {}", len, limit));
    if (buf.size() - 4 < len) return std::optional<frame>{};
    packet_reader body(buf.substr(4, len));
    frame f;
    f.type = static_cast<fxp>(*body.u8());
    f.id = *body.u32();
    f.body = buf.substr(9, len - 5);
    f.size = 4 + std::size_t{len};
    return std::optional<frame>{f};
}

core::result<version_reply> parse_version(std::string_view body) {
    // VERSION has no id: frame::id holds the version, body the extension pairs.
    version_reply v;
    packet_reader r(body);
    while (r.remaining() > 0) {
        auto name = r.str();
        if (!name) return tl::unexpected(name.error());
        auto data = r.str();
        if (!data) return tl::unexpected(data.error());
        if (v.extensions.size() >= 256) return malformed("too many extensions");
        v.extensions.emplace_back(std::string(*name), std::string(*data));
    }
    return v;
}

core::result<status_reply> parse_status(std::string_view body) {
    packet_reader r(body);
    auto code = r.u32();
    if (!code) return tl::unexpected(code.error());
    status_reply s{static_cast<status_code>(*code), {}};
    if (r.remaining() > 0) {  // message and language tag (optional in very old servers)
        auto msg = r.str();
        if (!msg) return tl::unexpected(msg.error());
        s.message = std::string(*msg);
    }
    return s;
}

core::result<std::string> parse_handle(std::string_view body) {
    packet_reader r(body);
    auto h = r.str();
    if (!h) return tl::unexpected(h.error());
    if (h->size() > 256) return malformed("handle longer than 256 bytes");
    return std::string(*h);
}

core::result<std::string_view> parse_data(std::string_view body) {
    packet_reader r(body);
    return r.str();
}

core::result<std::vector<name_entry>> parse_name(std::string_view body) {
    packet_reader r(body);
    auto count = r.u32();
    if (!count) return tl::unexpected(count.error());
    if (*count > r.remaining() / min_name_entry)
        return malformed("name count larger than the packet");
    std::vector<name_entry> out;
    out.reserve(*count);
    for (std::uint32_t i = 0; i < *count; ++i) {
        auto fn = r.str();
        if (!fn) return tl::unexpected(fn.error());
        auto ln = r.str();
        if (!ln) return tl::unexpected(ln.error());
        auto a = r.attrs();
        if (!a) return tl::unexpected(a.error());
        out.push_back({std::string(*fn), std::string(*ln), *a});
    }
    return out;
}

core::result<file_attrs> parse_attrs(std::string_view body) {
    packet_reader r(body);
    return r.attrs();
}

core::result<fs_stats> parse_statvfs(std::string_view body) {
    packet_reader r(body);
    fs_stats s;
    for (auto* field : {&s.bsize, &s.frsize, &s.blocks, &s.bfree, &s.bavail, &s.files, &s.ffree,
                        &s.favail, &s.fsid, &s.flag, &s.namemax}) {
        auto v = r.u64();
        if (!v) return tl::unexpected(v.error());
        *field = *v;
    }
    return s;
}

core::result<server_limits> parse_limits(std::string_view body) {
    packet_reader r(body);
    server_limits l;
    for (auto* field :
         {&l.max_packet_length, &l.max_read_length, &l.max_write_length, &l.max_open_handles}) {
        auto v = r.u64();
        if (!v) return tl::unexpected(v.error());
        *field = *v;
    }
    return l;
}

std::string_view to_string(status_code code) noexcept {
    switch (code) {
        case status_code::ok:
            return "ok";
        case status_code::eof:
            return "end of file";
        case status_code::no_such_file:
            return "no such file or directory";
        case status_code::permission_denied:
            return "permission denied";
        case status_code::failure:
            return "failure";
        case status_code::bad_message:
            return "bad message";
        case status_code::no_connection:
            return "no connection";
        case status_code::connection_lost:
            return "connection lost";
        case status_code::op_unsupported:
            return "operation unsupported";
    }
    return "unknown status";
}

}  // namespace tunnel::sftp
