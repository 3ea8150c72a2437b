// Move-only RAII over SQLite (STYLE 4): a database (sqlite3*, closed with
// sqlite3_close_v2) and its prepared statements (sqlite3_stmt*, finalized).
// Errors are values; every message names the database file and the SQL that
// failed.
//
//   auto db = usage::sqlite_db::open("/var/lib/tunnel/usage.db");
//   auto st = db->prepare("SELECT requests FROM usage_hourly WHERE tenant = ?1");
//   st->bind(1, "acme");
//   while (*st->step()) total += st->column_int64(0);
//
// A database handle is used by one thread at a time (the usage store keeps
// one for its flusher thread and one for the admin listener's reads).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace tunnel::usage {

class sqlite_statement {
  public:
    sqlite_statement() = default;
    sqlite_statement(sqlite_statement&& other) noexcept;
    sqlite_statement& operator=(sqlite_statement&& other) noexcept;
    sqlite_statement(const sqlite_statement&) = delete;
    sqlite_statement& operator=(const sqlite_statement&) = delete;
    ~sqlite_statement();

    // Parameters are 1-based (?1, ?2 ...).
    void bind(int index, std::int64_t value);
    void bind(int index, double value);
    void bind(int index, std::string_view text);
    // One step: true when a row is ready, false when done, an error otherwise.
    [[nodiscard]] core::result<bool> step();
    // Steps to the end (statements without rows).
    [[nodiscard]] core::result<void> run();
    // For the next execution: rows and bindings cleared.
    void reset();

    [[nodiscard]] std::int64_t column_int64(int index) const;
    [[nodiscard]] double column_double(int index) const;
    [[nodiscard]] std::string column_text(int index) const;

  private:
    friend class sqlite_db;
    sqlite_statement(sqlite3_stmt* stmt, std::string where) noexcept
        : stmt_(stmt), where_(std::move(where)) {}
    sqlite3_stmt* stmt_ = nullptr;
    std::string where_;  // "PATH: SQL" for messages
};

class sqlite_db {
  public:
    // Opens (creating it when missing) `path` in WAL mode with a busy
    // timeout, so one writer and readers on other handles do not block each
    // other for long.
    [[nodiscard]] static core::result<sqlite_db> open(const std::string& path);

    sqlite_db(sqlite_db&& other) noexcept;
    sqlite_db& operator=(sqlite_db&& other) noexcept;
    sqlite_db(const sqlite_db&) = delete;
    sqlite_db& operator=(const sqlite_db&) = delete;
    ~sqlite_db();

    [[nodiscard]] core::result<sqlite_statement> prepare(std::string_view sql);
    // Runs one or more statements without parameters or rows.
    [[nodiscard]] core::result<void> exec(const std::string& sql);
    [[nodiscard]] const std::string& path() const noexcept { return path_; }

  private:
    sqlite_db(sqlite3* db, std::string path) noexcept : db_(db), path_(std::move(path)) {}
    sqlite3* db_ = nullptr;
    std::string path_;
};

}  // namespace tunnel::usage
