#include "usage/sqlite.hpp"

#include <sqlite3.h>

#include <utility>

#include <fmt/format.h>

namespace tunnel::usage {

namespace {

core::error sqlite_error(sqlite3* db, std::string_view where, int rc) {
    const char* msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    const auto code = rc == SQLITE_CANTOPEN || rc == SQLITE_PERM || rc == SQLITE_READONLY
                          ? core::errc::permission_denied
                          : core::errc::io_error;
    return {code, fmt::format("{}: {}", where, msg ? msg : sqlite3_errstr(rc))};
}

}  // namespace

// ------------------------------------------------------------ sqlite_statement

sqlite_statement::sqlite_statement(sqlite_statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)), where_(std::move(other.where_)) {}

sqlite_statement& sqlite_statement::operator=(sqlite_statement&& other) noexcept {
    if (this != &other) {
        if (stmt_) sqlite3_finalize(stmt_);
        stmt_ = std::exchange(other.stmt_, nullptr);
        where_ = std::move(other.where_);
    }
    return *this;
}

sqlite_statement::~sqlite_statement() {
    if (stmt_) sqlite3_finalize(stmt_);
}

void sqlite_statement::bind(int index, std::int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
}

void sqlite_statement::bind(int index, double value) {
    sqlite3_bind_double(stmt_, index, value);
}

void sqlite_statement::bind(int index, std::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

core::result<bool> sqlite_statement::step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return tl::unexpected(sqlite_error(sqlite3_db_handle(stmt_), where_, rc));
}

core::result<void> sqlite_statement::run() {
    for (;;) {
        auto r = step();
        if (!r) return tl::unexpected(r.error());
        if (!*r) return {};
    }
}

void sqlite_statement::reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

std::int64_t sqlite_statement::column_int64(int index) const {
    return sqlite3_column_int64(stmt_, index);
}

double sqlite_statement::column_double(int index) const {
    return sqlite3_column_double(stmt_, index);
}

std::string sqlite_statement::column_text(int index) const {
    const auto* p = sqlite3_column_text(stmt_, index);
    const int n = sqlite3_column_bytes(stmt_, index);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n))
             : std::string();
}

// ------------------------------------------------------------------ sqlite_db

core::result<sqlite_db> sqlite_db::open(const std::string& path) {
    sqlite3* raw = nullptr;
    const int rc =
        sqlite3_open_v2(path.c_str(), &raw,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    sqlite_db db(raw, path);  // closes `raw` on every path below
    if (rc != SQLITE_OK)
        return tl::unexpected(
            sqlite_error(raw, fmt::format("{}: cannot open the database", path), rc));
    sqlite3_busy_timeout(raw, 2000);
    if (auto r = db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"); !r)
        return tl::unexpected(r.error());
    return db;
}

sqlite_db::sqlite_db(sqlite_db&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), path_(std::move(other.path_)) {}

sqlite_db& sqlite_db::operator=(sqlite_db&& other) noexcept {
    if (this != &other) {
        if (db_) sqlite3_close_v2(db_);
        db_ = std::exchange(other.db_, nullptr);
        path_ = std::move(other.path_);
    }
    return *this;
}

sqlite_db::~sqlite_db() {
    if (db_) sqlite3_close_v2(db_);
}

core::result<sqlite_statement> sqlite_db::prepare(std::string_view sql) {
    sqlite3_stmt* stmt = nullptr;
    const int rc =
        sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
    const std::string where = fmt::format("{}: {}", path_, sql.substr(0, 60));
    if (rc != SQLITE_OK) {
        if (stmt) sqlite3_finalize(stmt);
        return tl::unexpected(sqlite_error(db_, where, rc));
    }
    return sqlite_statement(stmt, where);
}

core::result<void> sqlite_db::exec(const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return {};
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return core::fail(rc == SQLITE_READONLY ? core::errc::permission_denied : core::errc::io_error,
                      fmt::format("{}: {}: {}", path_, sql.substr(0, 60), msg));
}

}  // namespace tunnel::usage
