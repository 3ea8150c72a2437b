// tunnel audit verify FILE: checks the hash chain of a relay audit log.
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "observe/audit_log.hpp"

namespace tunnel::cli {

namespace {

struct audit_verify_flags {
    std::string file;
    bool json = false;
};

int run_audit_verify(const audit_verify_flags& f) {
    auto v = observe::verify_audit_log(f.file);
    if (!v) return report(v.error());
    if (f.json) {
        nlohmann::json out{{"file", f.file}, {"ok", v->ok}, {"records", v->records}};
        if (!v->ok) {
            out["line"] = v->broken_line;
            out["error"] = v->why;
        }
        std::cout << out.dump() << "\n";
    } else if (v->ok) {
        fmt::print("{}: ok, {} record{}, chain intact\n", f.file, v->records,
                   v->records == 1 ? "" : "s");
    } else {
        fmt::print(stderr, "{}: line {}: {}\n", f.file, v->broken_line, v->why);
    }
    return v->ok ? 0 : 1;
}

}  // namespace

void add_audit_command(CLI::App& app, command_runner& run) {
    auto* audit = app.add_subcommand("audit", "Relay audit log tools");
    audit->require_subcommand(1);
    auto* verify = audit->add_subcommand(
        "verify", "Check the hash chain of a relay audit log (exit 1 if broken)");
    verify->footer(
        "Each record's \"prev\" must be the SHA-256 of the line before it (the first: 64 zeros).\n"
        "Prints the first broken link as 'line N: why' and exits 1.\n"
        "Example:\n"
        "  tunnel audit verify /var/log/tunnel/audit.jsonl");
    auto flags = std::make_shared<audit_verify_flags>();
    verify->add_option("FILE", flags->file, "The audit log (JSON lines)")->required();
    verify->add_flag("--json", flags->json,
                     "Print one JSON object: {file, ok, records, line, error}");
    verify->callback([flags, &run] { run = [flags] { return run_audit_verify(*flags); }; });
}

}  // namespace tunnel::cli
