// Sanitizer reports of the processes a test starts (the `tunnel` binary above
// all) fail that test, whatever the process's exit status and wherever its
// stderr went.
//
// Every child started through support/process.hpp gets ASAN_OPTIONS and
// UBSAN_OPTIONS extended with log_path=<dir>/asan (or ubsan), so a report is
// written to <dir>/asan.<pid> instead of a stderr that a test may discard or a
// SIGKILL may cut short. Programs built without sanitizers (sshd, ssh,
// python) ignore the variables. After a child is reaped its reports are
// checked (ADD_FAILURE with the report), and a global test environment checks
// the directory once more at the end for grandchildren (`tunnel ws-connect`
// started by ssh as a ProxyCommand, say).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

namespace tunnel::test {

// Adds log_path to ASAN_OPTIONS and UBSAN_OPTIONS in `env` (NAME=value
// entries, the environment a child will get), keeping every other option.
void route_sanitizer_reports(std::vector<std::string>& env);

// Fails the current test with each report that `pid` (which ran `program`)
// left, then moves the report aside so it is reported once.
void check_sanitizer_reports(pid_t pid, std::string_view program);

// Every report not yet seen, as text ("" when none): what the end-of-run
// check fails with.
[[nodiscard]] std::string take_unseen_sanitizer_reports();

}  // namespace tunnel::test
