// Removes one header field from the response heads an origin sends, and
// passes everything after the final head through untouched. The relay uses
// it for Service-Worker-Allowed on path-routed requests: every tenant's
// path-routed service shares one browser origin, and that header would let a
// service worker registered under /t/<tenant>/<name>/ take the scope "/",
// i.e. every tenant's pages.
//
// The bytes must already have passed the response http_tracker (which
// refuses what is not HTTP/1.x): the filter only finds CRLFCRLF-terminated
// heads and field lines in them. Interim 1xx heads (100 Continue, 103) are
// filtered and released as soon as they are complete; the final head (any
// other status, 101 included) ends the filtering.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tunnel::relay {

class response_head_filter {
  public:
    // `field`: the name to drop, compared case-insensitively.
    explicit response_head_filter(std::string field) : field_(std::move(field)) {}

    // Takes the next response bytes; returns those that may go to the caller
    // now. An incomplete head is held back (at most the tracker's head limit).
    [[nodiscard]] std::string feed(std::string_view bytes);

    // The final head went through: feed() returns its input unchanged.
    [[nodiscard]] bool done() const noexcept { return done_; }
    // Bytes held back waiting for the rest of a head.
    [[nodiscard]] std::size_t held() const noexcept { return held_.size(); }

  private:
    std::string field_;
    std::string held_;
    bool done_ = false;
};

// `head` (a status line and field lines, ending in CRLFCRLF) without the
// lines of `field` (and their obs-fold continuation lines).
[[nodiscard]] std::string drop_field(std::string_view head, std::string_view field);

}  // namespace tunnel::relay
