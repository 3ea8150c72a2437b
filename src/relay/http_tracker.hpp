// Incremental HTTP/1.1 parsing for the relay's proxy (Beast's basic_parser
// behind a plain header). The relay forwards bytes as they arrive, raw; a
// tracker watches the same bytes to learn the request head (routing, limits,
// the head rewritten for the origin) and where each message ends (so a
// keep-alive channel can carry the next request, and a chunked or SSE
// response is streamed chunk by chunk without re-encoding).
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
    // Both.
    int version = 11;  // 10 or 11
    std::vector<http_field> fields;
    bool keep_alive = true;
    bool upgrade = false;
    bool chunked = false;
    std::optional<std::uint64_t> content_length;

    // First value of a field (case-insensitive name), or nullptr.
    [[nodiscard]] const std::string* find(std::string_view name) const;
};

enum class http_problem {
    none,
    bad_message,       // 400 (request) / 502 (response)
    header_too_large,  // 431
    body_too_large,    // 413
};

class http_tracker {
  public:
    // Request heads up to `header_limit` bytes, bodies up to `body_limit`.
    [[nodiscard]] static http_tracker for_request(std::uint32_t header_limit,
                                                  std::uint64_t body_limit);
    // `head_request`: the response to a HEAD has no body. 1xx interim
    // responses other than 101 are passed over: done() waits for the final one.
    [[nodiscard]] static http_tracker for_response(bool head_request);

    http_tracker(http_tracker&&) noexcept;
    http_tracker& operator=(http_tracker&&) noexcept;
    ~http_tracker();

    // Parses from the front of `data`; returns how many bytes belong to the
    // message so far (0 while a head is incomplete: call again with more).
    // Stops at the end of the message and, for requests, at the end of the
    // head (so the first non-zero result is the head's length). On a problem returns 0 and
    // problem() says which.
    std::size_t feed(std::string_view data);
    // The peer closed: ends a body delimited by the connection's end.
    void feed_eof();

    [[nodiscard]] bool header_done() const noexcept;
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
