// A SQLite database file of its own for a usage test, removed with its WAL
// files at the end.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace tunnel::usage::test {

struct temp_db {
    std::filesystem::path dir;
    temp_db() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "usage-test-XXXXXX").string();
        dir = ::mkdtemp(tmpl.data());
    }
    ~temp_db() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    temp_db(const temp_db&) = delete;
    temp_db& operator=(const temp_db&) = delete;
    [[nodiscard]] std::string path() const { return (dir / "usage.db").string(); }
};

}  // namespace tunnel::usage::test
