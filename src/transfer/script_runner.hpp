// `tunnel script TARGET FILE [-- ARGS]`: uploads FILE into a fresh private
// directory on the host (mode 0700, random name under /tmp), runs it with
// exec's options (sudo, env, cwd, timeout) and removes the directory again —
// after success, failure or timeout alike.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "exec/executor.hpp"
#include "pool/session_pool.hpp"

namespace tunnel::transfer {

struct script_job {
    std::string local_path;
    std::vector<std::string> args;
    // Run as `INTERPRETER FILE ARGS...`; else the file's own #! line, else `sh`.
    std::optional<std::string> interpreter;
    exec::command options;  // sudo, env, cwd, timeout; argv is filled in here
    std::string remote_tmp = "/tmp";
};

// The argv that runs `remote_file`: interpreter, shebang (executed directly) or sh.
[[nodiscard]] std::vector<std::string> script_argv(std::string_view script_text,
                                                   const std::string& remote_file,
                                                   const std::optional<std::string>& interpreter,
                                                   const std::vector<std::string>& args);

struct script_result {
    exec::exec_result run;
    std::string remote_dir;
    bool cleaned_up = false;
};

asio::awaitable<core::result<script_result>> run_script(pool::session_pool& pool,
                                                        exec::executor& runner,
                                                        const ssh::connect_options& target,
                                                        script_job job, exec::exec_events events,
                                                        exec::run_options options);

}  // namespace tunnel::transfer
