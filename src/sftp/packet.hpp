// SFTP v3 wire format (draft-ietf-secsh-filexfer-02 plus OpenSSH's
// extensions): building requests and decoding replies. Pure code, no I/O.
// Every read is bounds-checked: a truncated, oversized or malformed packet
// is an error value, never a crash or an over-read (fuzzed in
// tests/fuzz/sftp_packet_fuzz.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace tunnel::sftp {

// Packet types.
enum class fxp : std::uint8_t {
    init = 1,
    version = 2,
    open = 3,
    close = 4,
    read = 5,
    write = 6,
    lstat = 7,
    fstat = 8,
    setstat = 9,
    fsetstat = 10,
    opendir = 11,
    readdir = 12,
    remove = 13,
    mkdir = 14,
    rmdir = 15,
    realpath = 16,
    stat = 17,
    rename = 18,
    readlink = 19,
    symlink = 20,
    status = 101,
    handle = 102,
    data = 103,
    name = 104,
    attrs = 105,
    extended = 200,
    extended_reply = 201,
};

// SSH_FX_* status codes.
enum class status_code : std::uint32_t {
    ok = 0,
    eof = 1,
    no_such_file = 2,
    permission_denied = 3,
    failure = 4,
    bad_message = 5,
    no_connection = 6,
    connection_lost = 7,
    op_unsupported = 8,
};

// SSH_FXF_* open flags.
inline constexpr std::uint32_t open_read = 0x01;
inline constexpr std::uint32_t open_write = 0x02;
inline constexpr std::uint32_t open_append = 0x04;
inline constexpr std::uint32_t open_creat = 0x08;
inline constexpr std::uint32_t open_trunc = 0x10;
inline constexpr std::uint32_t open_excl = 0x20;

// SSH_FILEXFER_ATTR_* flags.
inline constexpr std::uint32_t attr_size = 0x01;
inline constexpr std::uint32_t attr_uidgid = 0x02;
inline constexpr std::uint32_t attr_permissions = 0x04;
inline constexpr std::uint32_t attr_acmodtime = 0x08;
inline constexpr std::uint32_t attr_extended = 0x80000000u;

// The largest packet we accept from a server: a 256 KiB data reply plus
// headroom for a NAME reply with many entries. Anything larger is refused.
inline constexpr std::uint32_t max_packet = 256 * 1024 + 64 * 1024;

struct file_attrs {
    std::optional<std::uint64_t> size;
    std::optional<std::uint32_t> uid, gid;
    std::optional<std::uint32_t> permissions;  // includes S_IFMT type bits from servers
    std::optional<std::uint32_t> atime, mtime;

    [[nodiscard]] bool is_dir() const noexcept {
        return permissions && (*permissions & 0170000) == 0040000;
    }
    [[nodiscard]] bool is_reg() const noexcept {
        return permissions && (*permissions & 0170000) == 0100000;
    }
    [[nodiscard]] bool is_link() const noexcept {
        return permissions && (*permissions & 0170000) == 0120000;
    }
};

struct name_entry {
    std::string filename;
    std::string longname;
    file_attrs attrs;
};

struct status_reply {
    status_code code = status_code::ok;
    std::string message;
};

// statvfs@openssh.com reply.
struct fs_stats {
    std::uint64_t bsize = 0, frsize = 0, blocks = 0, bfree = 0, bavail = 0;
    std::uint64_t files = 0, ffree = 0, favail = 0, fsid = 0, flag = 0, namemax = 0;
    [[nodiscard]] std::uint64_t available_bytes() const noexcept {
        return bavail * (frsize ? frsize : bsize);
    }
};

// limits@openssh.com reply.
struct server_limits {
    std::uint64_t max_packet_length = 0, max_read_length = 0, max_write_length = 0,
                  max_open_handles = 0;
};

struct version_reply {
    std::uint32_t version = 0;
    std::vector<std::pair<std::string, std::string>> extensions;
};

// Builds one request: the 4-byte length is filled in by finish().
class packet_writer {
  public:
    packet_writer(fxp type, std::uint32_t id);
    // SSH_FXP_INIT carries a version where other packets carry an id.
    static packet_writer init(std::uint32_t version);

    packet_writer& u8(std::uint8_t v);
    packet_writer& u32(std::uint32_t v);
    packet_writer& u64(std::uint64_t v);
    packet_writer& str(std::string_view v);
    packet_writer& attrs(const file_attrs& a);

    // The complete packet, length prefix included.
    [[nodiscard]] std::string finish();

  private:
    packet_writer() = default;
    std::string buf_;
};

// Bounds-checked reader over one packet body.
class packet_reader {
  public:
    explicit packet_reader(std::string_view body) noexcept : rest_(body) {}
    [[nodiscard]] core::result<std::uint8_t> u8();
    [[nodiscard]] core::result<std::uint32_t> u32();
    [[nodiscard]] core::result<std::uint64_t> u64();
    [[nodiscard]] core::result<std::string_view> str();
    [[nodiscard]] core::result<file_attrs> attrs();
    [[nodiscard]] std::size_t remaining() const noexcept { return rest_.size(); }

  private:
    std::string_view rest_;
};

// One framed reply: type, request id (0 for VERSION) and the body after the id.
struct frame {
    fxp type{};
    std::uint32_t id = 0;
    std::string_view body;  // points into the buffer given to next_frame
    std::size_t size = 0;   // bytes consumed from that buffer
};

// Splits the next packet off `buf`: nullopt when more bytes are needed, an
// error when the length is zero or above `limit`.
[[nodiscard]] core::result<std::optional<frame>> next_frame(std::string_view buf,
                                                            std::uint32_t limit = max_packet);

// Body decoders (the body as in frame::body).
[[nodiscard]] core::result<version_reply> parse_version(std::string_view body);
[[nodiscard]] core::result<status_reply> parse_status(std::string_view body);
[[nodiscard]] core::result<std::string> parse_handle(std::string_view body);
[[nodiscard]] core::result<std::string_view> parse_data(std::string_view body);
[[nodiscard]] core::result<std::vector<name_entry>> parse_name(std::string_view body);
[[nodiscard]] core::result<file_attrs> parse_attrs(std::string_view body);
[[nodiscard]] core::result<fs_stats> parse_statvfs(std::string_view body);
[[nodiscard]] core::result<server_limits> parse_limits(std::string_view body);

[[nodiscard]] std::string_view to_string(status_code code) noexcept;

}  // namespace tunnel::sftp
