// Incremental HTTP/1.1 parsing for the relay's proxy (Beast's basic_parser
// behind a plain header). A tracker reads the heads (routing, limits, the
// heads the relay rebuilds for the origin and for the caller:
// proxy_headers.hpp) and then watches the body bytes the relay forwards raw,
// to learn where each message ends (so a keep-alive channel can carry the
// next request, and a chunked or SSE response is streamed chunk by chunk
// without re-encoding).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tunnel::relay {

struct http_field {
    std::string name;  // as received
    std::string value;
};

struct http_head {
    // Requests.
    std::string method;
    std::string target;
    // Responses.
    int status = 0;
    std::string reason;
    // Both.
    int version = 11;  // 10 or 11
    std::vector<http_field> fields;
    bool keep_alive = true;
    // Requests: a protocol switch is asked for, i.e. HTTP/1.1 with an
    // Upgrade field and the "upgrade" option in Connection. (Beast 1.74's
    // upgrade() is true for any "Connection: upgrade": ARCHITECTURE §3.)
    bool upgrade = false;
    bool chunked = false;
    std::optional<std::uint64_t> content_length;

    // First value of a field (case-insensitive name), or nullptr.
    [[nodiscard]] const std::string* find(std::string_view name) const;
};

// RFC 9110 9.2.2: a request the relay may send again when the connection it
// went on turns out closed before any answer (a kept-alive origin
// connection, a relay of the cluster that died).
[[nodiscard]] bool is_idempotent(std::string_view method) noexcept;

enum class http_problem {
    none,
    bad_message,       // 400 (request) / 502 (response)
    header_too_large,  // 431
    body_too_large,    // 413
};

class http_tracker {
  public:
    // Request heads up to `header_limit` bytes (the whole head as received,
    // however many reads it took), bodies up to `body_limit`.
    [[nodiscard]] static http_tracker for_request(std::uint32_t header_limit,
                                                  std::uint64_t body_limit);
    // `head_request`: the response to a HEAD has no body. Heads up to 64 KiB.
    // An 1xx interim response other than 101 (100 Continue) is a head of its
    // own: header_done() is true after it, interim() says so, done() stays
    // false, and the next feed() starts on the final response.
    [[nodiscard]] static http_tracker for_response(bool head_request);

    http_tracker(http_tracker&&) noexcept;
    http_tracker& operator=(http_tracker&&) noexcept;
    ~http_tracker();

    // Parses from the front of `data`; returns how many bytes it took. Never
    // feed those bytes again. While a head is incomplete the parser may take
    // its complete lines (the head is rebuilt from head(), not copied); it
    // stops at the end of each head (so once header_done() turns true, the
    // bytes taken after that are the body's) and at the end of the message.
    // On a problem returns 0 and problem() says which.
    std::size_t feed(std::string_view data);
    // The peer closed: ends a body delimited by the connection's end.
    void feed_eof();

    [[nodiscard]] bool header_done() const noexcept;
    // The head just read is an 1xx interim response (not 101).
    [[nodiscard]] bool interim() const noexcept;
    [[nodiscard]] bool done() const noexcept;
    [[nodiscard]] const http_head& head() const noexcept;
    [[nodiscard]] http_problem problem() const noexcept;
    [[nodiscard]] const std::string& problem_detail() const noexcept;

  private:
    struct impl;
    explicit http_tracker(std::unique_ptr<impl> p);
    std::unique_ptr<impl> impl_;
};

}  // namespace tunnel::relay
