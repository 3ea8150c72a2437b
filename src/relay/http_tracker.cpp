#include "relay/http_tracker.hpp"

#include <strings.h>

#include <limits>

#include "core/beast.hpp"

namespace tunnel::relay {

namespace http = beast::http;

const std::string* http_head::find(std::string_view name) const {
    for (const auto& f : fields)
        if (f.name.size() == name.size() &&
            ::strncasecmp(f.name.data(), name.data(), name.size()) == 0)
            return &f.value;
    return nullptr;
}

namespace {

template <bool IsRequest>
class observer final : public http::basic_parser<IsRequest> {
  public:
    explicit observer(http_head& head) : head_(head) {}

  private:
    using error_code = boost::system::error_code;
    using string_view = beast::string_view;

    void on_request_impl(http::verb, string_view method, string_view target, int version,
                         error_code&) override {
        head_.method.assign(method.data(), method.size());
        head_.target.assign(target.data(), target.size());
        head_.version = version;
    }
    void on_response_impl(int code, string_view reason, int version, error_code&) override {
        head_.status = code;
        head_.reason.assign(reason.data(), reason.size());
        head_.version = version;
    }
    void on_field_impl(http::field, string_view name, string_view value, error_code&) override {
        head_.fields.push_back(
            {std::string(name.data(), name.size()), std::string(value.data(), value.size())});
    }
    void on_header_impl(error_code&) override {
        head_.keep_alive = this->keep_alive();
        head_.upgrade = this->upgrade() && head_.version == 11 && head_.find("Upgrade") != nullptr;
        head_.chunked = this->chunked();
        if (auto n = this->content_length()) head_.content_length = *n;
    }
    void on_body_init_impl(boost::optional<std::uint64_t> const&, error_code&) override {}
    std::size_t on_body_impl(string_view body, error_code&) override { return body.size(); }
    void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code&) override {
        return body.size();
    }
    void on_finish_impl(error_code&) override {}

    http_head& head_;
};

}  // namespace

struct http_tracker::impl {
    bool request = true;
    bool head_request = false;
    std::uint32_t header_limit = 8192;
    std::uint32_t head_used = 0;  // bytes of the current head taken so far
    std::uint64_t body_limit = 0;
    http_head head;
    std::unique_ptr<observer<true>> req;
    std::unique_ptr<observer<false>> res;
    http_problem problem = http_problem::none;
    std::string detail;
    bool fed = false;  // put_eof() must not be called before any byte (Beast asserts)

    void reset_response() {
        head = {};
        head_used = 0;
        fed = false;
        res = std::make_unique<observer<false>>(head);
        res->eager(false);  // one step per put(): feed() stops at the end of the head
        res->body_limit(
            std::numeric_limits<std::uint64_t>::max());  // boost::none trips a Beast 1.74 bug
        res->header_limit(header_limit);
        if (head_request) res->skip(true);
    }

    [[nodiscard]] bool interim() const {
        return !request && res->is_header_done() && head.status >= 100 && head.status < 200 &&
               head.status != 101;
    }

    // Beast checks its header limit against each put() alone, and takes a
    // head's complete lines before the rest arrives: a head fed in pieces
    // could grow past the limit. What is left of the budget is given to the
    // parser before every put().
    void set_head_budget() {
        const std::uint32_t left = header_limit - head_used;
        if (request)
            req->header_limit(left);
        else
            res->header_limit(left);
    }

    [[nodiscard]] bool header_done() const {
        return request ? req->is_header_done() : res->is_header_done();
    }
    [[nodiscard]] bool done() const {
        return request ? req->is_done() : res->is_done() && !interim();
    }

    std::size_t put(std::string_view data, boost::system::error_code& ec) {
        auto b = asio::const_buffer(data.data(), data.size());
        return request ? req->put(b, ec) : res->put(b, ec);
    }

    void fail(const boost::system::error_code& ec) {
        if (ec == http::error::header_limit)
            problem = http_problem::header_too_large;
        else if (ec == http::error::body_limit)
            problem = http_problem::body_too_large;
        else
            problem = http_problem::bad_message;
        detail = ec.message();
    }
};

http_tracker::http_tracker(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
http_tracker::http_tracker(http_tracker&&) noexcept = default;
http_tracker& http_tracker::operator=(http_tracker&&) noexcept = default;
http_tracker::~http_tracker() = default;

http_tracker http_tracker::for_request(std::uint32_t header_limit, std::uint64_t body_limit) {
    auto p = std::make_unique<impl>();
    p->request = true;
    p->header_limit = header_limit;
    p->req = std::make_unique<observer<true>>(p->head);
    p->req->eager(false);  // stop after the head: feed() reports its length
    p->req->header_limit(header_limit);
    p->req->body_limit(body_limit);
    return http_tracker(std::move(p));
}

http_tracker http_tracker::for_response(bool head_request) {
    auto p = std::make_unique<impl>();
    p->request = false;
    p->head_request = head_request;
    p->header_limit = 64 * 1024;
    p->reset_response();
    return http_tracker(std::move(p));
}

std::size_t http_tracker::feed(std::string_view data) {
    auto& p = *impl_;
    if (p.problem != http_problem::none) return 0;
    if (p.interim()) p.reset_response();  // 100 Continue was read: the final response follows
    std::size_t used = 0;
    while (used < data.size() && !p.done()) {
        const bool had_header = p.header_done();
        if (!had_header) {
            if (p.head_used >= p.header_limit) {
                p.problem = http_problem::header_too_large;
                p.detail = "header limit exceeded";
                return 0;
            }
            p.set_head_budget();
        }
        boost::system::error_code ec;
        std::size_t n = p.put(data.substr(used), ec);
        used += n;
        if (n > 0) p.fed = true;
        if (!had_header && (!ec || ec == http::error::need_more)) {
            // Beast applies the budget to the request line and to the fields
            // separately, even within one put(): count the whole head here.
            // While it is incomplete, what is left unparsed is more of it.
            p.head_used += static_cast<std::uint32_t>(n);
            const std::size_t pending = p.header_done() ? 0 : data.size() - used;
            if (p.head_used + pending > p.header_limit) {
                p.problem = http_problem::header_too_large;
                p.detail = "header limit exceeded";
                return 0;
            }
        }
        if (!ec && !had_header && p.header_done()) break;  // the end of a head
        if (ec == http::error::need_more) break;
        if (ec) {
            p.fail(ec);
            return 0;
        }
        if (n == 0) break;
    }
    return used;
}

void http_tracker::feed_eof() {
    auto& p = *impl_;
    if (p.interim()) p.reset_response();
    if (p.problem != http_problem::none || p.done()) return;
    if (!p.fed) {
        p.problem = http_problem::bad_message;
        p.detail = "the connection closed before a message";
        return;
    }
    boost::system::error_code ec;
    if (p.request)
        p.req->put_eof(ec);
    else
        p.res->put_eof(ec);
    if (ec) p.fail(ec);
}

bool http_tracker::header_done() const noexcept {
    return impl_->header_done();
}
bool http_tracker::interim() const noexcept {
    return impl_->interim();
}
bool http_tracker::done() const noexcept {
    return impl_->done();
}
const http_head& http_tracker::head() const noexcept {
    return impl_->head;
}
http_problem http_tracker::problem() const noexcept {
    return impl_->problem;
}
const std::string& http_tracker::problem_detail() const noexcept {
    return impl_->detail;
}

bool is_idempotent(std::string_view method) noexcept {
    for (std::string_view m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
        if (method == m) return true;
    return false;
}

}  // namespace tunnel::relay
