#include "relay/revocation_list.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "core/utc_time.hpp"
#include "usage/sqlite.hpp"

namespace tunnel::relay {

namespace {

using sys = std::chrono::system_clock;

class local_revocation_list final : public revocation_list {
  public:
    local_revocation_list(std::optional<usage::sqlite_db> db,
                          std::map<std::string, revoked_token> entries)
        : db_(std::move(db)), entries_(std::move(entries)) {
        publish();
    }

    core::result<bool> add(revoked_token entry) override {
        if (auto why = check_jti(entry.jti); !why.empty())
            return core::fail(core::errc::invalid_argument, "jti: " + why);
        std::vector<listener> to_call;
        bool added = false;
        {
            std::lock_guard lock(mutex_);
            // Expired entries go first: their tokens are refused as expired anyway.
            std::erase_if(entries_,
                          [&](const auto& e) { return e.second.expires <= entry.revoked_at; });
            auto it = entries_.find(entry.jti);
            added = it == entries_.end();
            if (added && entries_.size() >= max_revocations)
                return core::fail(core::errc::resource_exhausted,
                                  fmt::format("the relay holds {} revocations already (the most it "
                                              "keeps); rotate the signing key instead",
                                              max_revocations));
            revoked_token next = entry;
            if (!added) {
                next.revoked_at = it->second.revoked_at;
                next.expires = std::max(it->second.expires, entry.expires);
            }
            if (db_) {
                if (auto saved = save(next); !saved) return tl::unexpected(saved.error());
            }
            entries_[next.jti] = next;
            publish();
            if (added) to_call = listeners_;
            entry = next;
        }
        for (const auto& fn : to_call) fn(entry);
        return added;
    }

    bool revoked(std::string_view jti) const override {
        const auto set = snapshot_.load(std::memory_order_acquire);
        return set->find(jti) != set->end();
    }

    std::vector<revoked_token> list() const override {
        std::vector<revoked_token> out;
        const auto now = sys::now();
        {
            std::lock_guard lock(mutex_);
            for (const auto& [jti, e] : entries_)
                if (e.expires > now) out.push_back(e);
        }
        std::stable_sort(out.begin(), out.end(),
                         [](const auto& a, const auto& b) { return a.revoked_at < b.revoked_at; });
        return out;
    }

    void subscribe(listener fn) override {
        std::lock_guard lock(mutex_);
        listeners_.push_back(std::move(fn));
    }

  private:
    core::result<void> save(const revoked_token& e) {
        auto st = db_->prepare(
            "INSERT OR REPLACE INTO revoked_tokens (jti, expires, revoked_at) VALUES (?1, ?2, ?3)");
        if (!st) return tl::unexpected(st.error());
        st->bind(1, std::string_view(e.jti));
        st->bind(2, core::unix_seconds(e.expires));
        st->bind(3, core::unix_seconds(e.revoked_at));
        if (auto r = st->run(); !r) return r;
        auto prune = db_->prepare("DELETE FROM revoked_tokens WHERE expires <= ?1");
        if (!prune) return tl::unexpected(prune.error());
        prune->bind(1, core::unix_seconds(e.revoked_at));
        return prune->run();
    }

    void publish() {
        auto set = std::make_shared<std::set<std::string, std::less<>>>();
        for (const auto& [jti, e] : entries_) set->insert(jti);
        snapshot_.store(std::move(set), std::memory_order_release);
    }

    mutable std::mutex mutex_;
    std::optional<usage::sqlite_db> db_;
    std::map<std::string, revoked_token> entries_;
    std::vector<listener> listeners_;
    std::atomic<std::shared_ptr<const std::set<std::string, std::less<>>>> snapshot_;
};

}  // namespace

std::string check_jti(std::string_view jti) {
    if (jti.empty()) return "is empty; give the token's jti claim (tunnel token --json prints it)";
    if (jti.size() > 64) return fmt::format("is {} characters; a jti has at most 64", jti.size());
    for (unsigned char c : jti)
        if (c <= 0x20 || c >= 0x7f) return "may hold printable ASCII only, without spaces";
    return {};
}

core::result<std::unique_ptr<revocation_list>> open_local_revocation_list(
    const std::string& state_file, std::chrono::system_clock::time_point now) {
    std::map<std::string, revoked_token> entries;
    if (state_file.empty())
        return std::make_unique<local_revocation_list>(std::nullopt, std::move(entries));
    auto db = usage::sqlite_db::open(state_file);
    if (!db) return tl::unexpected(db.error());
    if (auto r = db->exec(
            "CREATE TABLE IF NOT EXISTS revoked_tokens (jti TEXT PRIMARY KEY, expires INTEGER NOT "
            "NULL, revoked_at INTEGER NOT NULL)");
        !r)
        return tl::unexpected(r.error());
    {
        auto prune = db->prepare("DELETE FROM revoked_tokens WHERE expires <= ?1");
        if (!prune) return tl::unexpected(prune.error());
        prune->bind(1, core::unix_seconds(now));
        if (auto r = prune->run(); !r) return tl::unexpected(r.error());
    }
    auto st = db->prepare("SELECT jti, expires, revoked_at FROM revoked_tokens LIMIT ?1");
    if (!st) return tl::unexpected(st.error());
    st->bind(1, static_cast<std::int64_t>(max_revocations));
    for (;;) {
        auto row = st->step();
        if (!row) return tl::unexpected(row.error());
        if (!*row) break;
        revoked_token e{st->column_text(0), core::from_unix_seconds(st->column_int64(1)),
                        core::from_unix_seconds(st->column_int64(2))};
        if (check_jti(e.jti).empty()) entries.emplace(e.jti, std::move(e));
    }
    return std::make_unique<local_revocation_list>(std::move(*db), std::move(entries));
}

}  // namespace tunnel::relay
