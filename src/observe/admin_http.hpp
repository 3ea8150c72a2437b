// The admin surface's pure half (STYLE 13): endpoints are a table
// {path, help, handler, mutates}; admin_router answers one parsed request
// from it — Host check, bearer token, method, the generated index at `/` and
// `/help` — without touching a socket. observe::admin_http_server reads the
// requests and writes the answers.
//
//   std::vector<admin_endpoint> table{
//       {"/healthz", "200 while serving", [](const admin_request&) {
//            return admin_response::text("ok\n"); }, false, true},
//       {"/metrics", "Prometheus text", [&](const admin_request&) {
//            return admin_response::metrics(registry.expose()); }}};
//   admin_router router(table, {.bearer_token = token}, "relay admin");
//   admin_response r = router.route(request, credentials);
//
// Access rules, in this order:
//   1. Host must be an IP literal (optionally with a port), "localhost", or a
//      name in allowed_hosts; anything else is 421. A browser tricked by DNS
//      rebinding sends the attacker's name, so it never gets an answer.
//      HTTP/1.0 requests may omit Host; HTTP/1.1 ones get 400 without it.
//   2. With a bearer token configured, every endpoint but the `open` ones
//      (liveness probes) needs `Authorization: Bearer <token>`, compared in
//      constant time; else 401. Unknown paths are 401 too, so the table is
//      not revealed to a caller without the token.
//   3. Mutating endpoints need POST (405 otherwise); the others GET or HEAD.
//
// Browser endpoints (the dashboard) also take the token as the password of
// HTTP Basic (any user name): a browser asks for it with its own login
// prompt and sends it with every same-origin request, EventSource included,
// without the page ever holding it. Only for GET/HEAD of those paths, so
// remembered credentials cannot drive any other endpoint, and a request a
// browser marks as coming from another site (Sec-Fetch-Site: cross-site or
// same-site) is refused (403).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tunnel::observe {

class event_subscriber;

struct admin_request {
    std::string method;  // "GET", "HEAD", "POST", ...
    std::string target;  // as sent: "/api/v1/tunnels?verbose=1"
    std::string path;    // the target without its query
    std::string query;   // after '?', or empty
    std::string body;
    std::string peer;  // "ip:port" of the caller
};

// What the access checks read; never handed to endpoint handlers.
struct admin_credentials {
    std::optional<std::string> host;           // the Host header
    std::optional<std::string> authorization;  // the Authorization header
    bool http10 = false;                       // HTTP/1.0 may omit Host
    std::optional<std::string> fetch_site{};   // the Sec-Fetch-Site header
};

struct admin_response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  // extra headers
    // Set: the answer is a Server-Sent Events stream (text/event-stream, no
    // Content-Length, ends when the connection closes) fed by this
    // subscriber; `body` is not sent.
    std::shared_ptr<event_subscriber> events{};
    // Set: the answer is not known yet (the handler waits on I/O, e.g. a
    // query to Redis). The server calls it once with `deliver`, which may be
    // called from any thread, once, and waits for the answer up to its
    // read_timeout (then 504; a close() ends the wait at once), then writes
    // it within another read_timeout. The rest of this response is not sent.
    using deliver_fn = std::function<void(admin_response)>;
    std::function<void(deliver_fn)> later{};

    [[nodiscard]] static admin_response text(std::string body, int status = 200);
    // `json_text` is a serialized JSON document.
    [[nodiscard]] static admin_response json(std::string json_text, int status = 200);
    // {"error": code, "message": message}.
    [[nodiscard]] static admin_response error(int status, std::string_view code,
                                              std::string_view message);
    // Prometheus text format 0.0.4.
    [[nodiscard]] static admin_response metrics(std::string text);
    [[nodiscard]] static admin_response event_stream(std::shared_ptr<event_subscriber> events);
};

struct admin_endpoint {
    std::string path;  // matched exactly, e.g. "/api/v1/tunnels"
    std::string help;  // one line for the index
    std::function<admin_response(const admin_request&)> handler;
    bool mutates = false;  // POST only; reported to admin_server_options::on_mutation
    bool open = false;     // answered without the bearer token (liveness probes only)
    bool browser = false;  // also HTTP Basic with the token as password (see above)
};

struct admin_access {
    std::string bearer_token;  // empty: no token needed (loopback listeners)
    // Host names answered besides IP literals and "localhost", lower case,
    // without a port.
    std::vector<std::string> allowed_hosts;
    // How to get a token, for the 401 message ("the token in admin.token_file").
    std::string token_hint = "the admin token";
};

// True when a Host header value is an IPv4 literal, a bracketed IPv6
// literal, "localhost" or one of `names` (case-insensitive), each with an
// optional ":port".
[[nodiscard]] bool host_allowed(std::string_view host, const std::vector<std::string>& names);

class admin_router {
  public:
    // `title` heads the index, e.g. "Relay admin endpoints".
    admin_router(std::vector<admin_endpoint> table, admin_access access, std::string title);

    // Checks and routes one request. `mutated` is set when a mutating
    // endpoint's handler ran (the server reports it).
    [[nodiscard]] admin_response route(const admin_request& request,
                                       const admin_credentials& credentials,
                                       bool* mutated = nullptr) const;

    // The index served at `/` and `/help`, generated from the table.
    [[nodiscard]] std::string index() const;

    [[nodiscard]] const std::vector<admin_endpoint>& table() const noexcept { return table_; }
    [[nodiscard]] bool needs_token() const noexcept { return !access_.bearer_token.empty(); }

  private:
    [[nodiscard]] bool authorized(const admin_credentials& credentials, bool basic_allowed) const;

    std::vector<admin_endpoint> table_;
    admin_access access_;
    std::string title_;
};

// "HTTP/1.1 <status> <reason>\r\n..." with Content-Length, Cache-Control:
// no-store, X-Content-Type-Options: nosniff and Connection: close; without
// the body when `head_only` (HEAD requests).
[[nodiscard]] std::string serialize(const admin_response& response, bool head_only = false);
// The head of an event-stream answer: status, Content-Type, the extra
// headers, Cache-Control: no-store, nosniff, Connection: close; no length.
[[nodiscard]] std::string serialize_stream_head(const admin_response& response);

}  // namespace tunnel::observe
