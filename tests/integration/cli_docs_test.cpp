// `tunnel completion bash|zsh` and `tunnel man DIR`: generated from the
// command tree, they list every subcommand and option --help shows, bash
// completes with them, zsh parses them, groff renders the pages cleanly.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <set>

#include "support/process.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

namespace fs = std::filesystem;

// The subcommand names `tunnel --help` lists.
std::set<std::string> help_subcommands() {
    auto help = run_tunnel({"--help"});
    std::set<std::string> names;
    const auto at = help.out.find("Subcommands:");
    if (at == std::string::npos) return names;
    static const std::regex line(R"(\n  ([a-z][a-z-]*) )");
    const std::string rest = help.out.substr(at);
    for (auto it = std::sregex_iterator(rest.begin(), rest.end(), line);
         it != std::sregex_iterator(); ++it)
        names.insert((*it)[1]);
    return names;
}

// What bash completes for the words of `line` (the last one being typed).
std::string bash_complete(const std::string& script, const std::string& line) {
    auto dir = temp_dir::create();
    if (!dir || !write_text_file(dir->file("tunnel.bash"), script)) return "(no temp dir)";
    const std::string program = "source " + dir->file("tunnel.bash") + "\nCOMP_WORDS=(" + line +
                                ")\nCOMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
                                "[[ \"" +
                                line +
                                "\" == *' ' ]] && { COMP_WORDS+=(''); "
                                "COMP_CWORD=$((COMP_CWORD + 1)); }\n"
                                "_tunnel\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n";
    auto r = run_cli("/bin/bash", {"--norc", "-c", program});
    return r.out + r.err;
}

TEST(CliDocs, BashCompletesSubcommandsAndOptions) {
    auto script = run_tunnel({"completion", "bash"});
    ASSERT_EQ(script.exit_code, 0) << script.describe();
    auto syntax = run_cli("/bin/bash", {"-n", "-c", script.out});
    EXPECT_EQ(syntax.exit_code, 0) << syntax.describe();
    const auto subs = help_subcommands();
    ASSERT_GE(subs.size(), 20u);
    const auto all = bash_complete(script.out, "tunnel ''");
    for (const auto& s : subs) EXPECT_NE(all.find(s + "\n"), std::string::npos) << s << "\n" << all;
    EXPECT_EQ(bash_complete(script.out, "tunnel rel"), "relay\nreleases\n");
    EXPECT_EQ(bash_complete(script.out, "tunnel relay --pro"), "--profile\n");
    // After a global option's value, the subcommand is still found.
    EXPECT_EQ(bash_complete(script.out, "tunnel --log-format json relay --che"),
              "--check-config\n");
    // Nested subcommands of a subcommand.
    EXPECT_NE(bash_complete(script.out, "tunnel audit ''").find("verify\n"), std::string::npos);
}

TEST(CliDocs, ZshScriptParses) {
    auto script = run_tunnel({"completion", "zsh"});
    ASSERT_EQ(script.exit_code, 0) << script.describe();
    EXPECT_EQ(script.out.rfind("#compdef tunnel\n", 0), 0u);
    EXPECT_NE(script.out.find("'*--profile[A preset"), std::string::npos);
    if (!fs::exists("/usr/bin/zsh")) GTEST_SKIP() << "zsh not installed (scripts/install-deps)";
    auto syntax = run_cli("/usr/bin/zsh", {"-n", "-c", script.out});
    EXPECT_EQ(syntax.exit_code, 0) << syntax.describe();
    for (const auto& s : help_subcommands())
        EXPECT_NE(script.out.find("\n        " + s + ")\n"), std::string::npos) << s;
}

TEST(CliDocs, ManPagesForEverySubcommandRenderCleanly) {
    auto dir = temp_dir::create();
    ASSERT_TRUE(dir) << dir.error().message;
    auto r = run_tunnel({"man", dir->path()});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    auto pages = help_subcommands();
    pages.erase("man");
    for (const auto& s : pages) EXPECT_TRUE(fs::exists(dir->file("tunnel-" + s + ".1"))) << s;
    EXPECT_FALSE(fs::exists(dir->file("tunnel-man.1")));  // the hidden one
    for (const char* page : {"tunnel.1", "tunnel-relay.1", "tunnel-exec.1"}) {
        auto groff =
            run_cli("/usr/bin/groff", {"-man", "-Tutf8", "-ww", "-rLL=100n", dir->file(page)});
        ASSERT_EQ(groff.exit_code, 0) << groff.describe();
        EXPECT_EQ(groff.err, "") << page << ": groff warnings";
        if (std::string(page) == "tunnel-relay.1") {
            // Plain text: groff's hyphens and bold are escapes in the UTF-8 output.
            auto text = run_cli("/bin/sh", {"-c", "groff -man -Tascii -P-cbou -rLL=200n '" +
                                                      dir->file(page) + "'"});
            EXPECT_NE(text.out.find("--profile"), std::string::npos) << text.out;
            EXPECT_NE(text.out.find("tunnel relay --profile prod --config"), std::string::npos)
                << text.out;  // the examples of --help
        }
    }
}

}  // namespace
}  // namespace tunnel::test
