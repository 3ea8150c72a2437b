// tunnel completion bash|zsh, and the hidden tunnel man DIR: shell
// completions and man pages generated from the CLI11 command tree itself, so
// they list exactly the subcommands and options `--help` shows (the .deb
// ships them; cmake/packaging.cmake runs both at build time).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli_common.hpp"
#include "commands.hpp"

namespace tunnel::cli {

namespace {

namespace fs = std::filesystem;

// Subcommands a user sees (hidden ones have an empty group).
std::vector<const CLI::App*> visible_subcommands(const CLI::App& app) {
    return app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); });
}

std::vector<const CLI::Option*> named_options(const CLI::App& app) {
    return app.get_options([](const CLI::Option* o) {
        return !o->get_positional() && !o->get_group().empty() &&
               (!o->get_lnames().empty() || !o->get_snames().empty());
    });
}

std::vector<std::string> option_words(const CLI::Option& o) {
    std::vector<std::string> words;
    for (const auto& s : o.get_snames()) words.push_back("-" + s);
    for (const auto& l : o.get_lnames()) words.push_back("--" + l);
    return words;
}

// Flags expect no value (expected(0)), options at least one.
bool takes_value(const CLI::Option& o) {
    return o.get_expected_max() > 0;
}

// --- man pages -----------------------------------------------------------

// roff text: backslashes escaped, hyphens as \-, no line starting a request.
std::string roff(const std::string& text) {
    std::string out;
    bool line_start = true;
    for (char c : text) {
        if (line_start && (c == '.' || c == '\'')) out += "\\&";
        if (c == '\\')
            out += "\\e";
        else if (c == '-')
            out += "\\-";
        else
            out += c;
        line_start = c == '\n';
    }
    return out;
}

std::string upper(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

void man_options(std::string& m, const CLI::App& app) {
    const auto options = named_options(app);
    if (options.empty()) return;
    m += ".SH OPTIONS\n";
    for (const auto* o : options) {
        m += ".TP\n.B " + roff(fmt::format("{}", fmt::join(option_words(*o), ", ")));
        if (takes_value(*o)) {
            std::string type = o->get_option_text();
            if (type.empty()) type = "VALUE";
            m += " \\fI" + roff(type) + "\\fR";
        }
        m += "\n" + roff(o->get_description()) + "\n";
    }
}

std::string man_page(const std::string& title, const std::string& command, const CLI::App& app,
                     const std::vector<std::string>& see_also) {
    std::string m;
    m += fmt::format(".TH {} 1 \"\" \"tunnel 0.1.0\" \"Tunnel Manual\"\n", upper(title));
    m += ".SH NAME\n" + roff(title) + " \\- " + roff(app.get_description()) + "\n";
    m += ".SH SYNOPSIS\n.B " + roff(command) + "\n";
    if (!named_options(app).empty()) m += "[\\fIOPTIONS\\fR]\n";
    for (const auto* p : app.get_options([](const CLI::Option* o) { return o->get_positional(); }))
        m += "\\fI" + roff(upper(p->get_name())) + "\\fR\n";
    const auto subs = visible_subcommands(app);
    if (!subs.empty()) m += "\\fISUBCOMMAND\\fR ...\n";
    m += ".SH DESCRIPTION\n" + roff(app.get_description()) + ".\n";
    if (!subs.empty()) {
        m += ".SH SUBCOMMANDS\n";
        for (const auto* s : subs)
            m += ".TP\n.B " + roff(s->get_name()) + "\n" + roff(s->get_description()) + "\n";
    }
    man_options(m, app);
    if (auto footer = app.get_footer(); !footer.empty()) {
        if (footer.rfind("Examples:\n", 0) == 0) footer.erase(0, 10);  // the section says it
        m += ".SH EXAMPLES\n.nf\n" + roff(footer) + "\n.fi\n";
    }
    if (!see_also.empty()) {
        m += ".SH SEE ALSO\n";
        for (std::size_t i = 0; i < see_also.size(); ++i)
            m += fmt::format("\\fB{}\\fR(1){}\n", roff(see_also[i]),
                             i + 1 < see_also.size() ? "," : "");
    }
    return m;
}

int write_man_pages(const CLI::App& root, const std::string& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
        return report(core::error{core::errc::io_error,
                                  fmt::format("man: cannot create {}: {}", dir, ec.message())});
    auto write = [&](const std::string& name, const std::string& text) {
        const auto path = (fs::path(dir) / (name + ".1")).string();
        std::ofstream out(path, std::ios::trunc);
        out << text;
        out.close();
        return static_cast<bool>(out);
    };
    std::vector<std::string> pages;
    for (const auto* s : visible_subcommands(root)) pages.push_back("tunnel-" + s->get_name());
    if (!write("tunnel", man_page("tunnel", "tunnel", root, pages)))
        return report(core::error{core::errc::io_error, "man: cannot write tunnel.1 in " + dir});
    for (const auto* s : visible_subcommands(root)) {
        const std::string name = "tunnel-" + s->get_name();
        if (!write(name, man_page(name, "tunnel " + s->get_name(), *s, {"tunnel"})))
            return report(
                core::error{core::errc::io_error, fmt::format("man: cannot write {}.1", name)});
    }
    fmt::print("{} man pages in {}\n", pages.size() + 1, dir);
    return 0;
}

// --- bash -------------------------------------------------------------------

std::string words_of(const CLI::App& app, bool with_subcommands) {
    std::vector<std::string> words;
    if (with_subcommands)
        for (const auto* s : visible_subcommands(app)) words.push_back(s->get_name());
    for (const auto* o : named_options(app))
        for (auto& w : option_words(*o)) words.push_back(std::move(w));
    return fmt::format("{}", fmt::join(words, " "));
}

std::string value_options(const CLI::App& app) {
    std::vector<std::string> words;
    for (const auto* o : named_options(app))
        if (takes_value(*o))
            for (auto& w : option_words(*o)) words.push_back(std::move(w));
    return fmt::format("{}", fmt::join(words, "|"));
}

std::string bash_script(const CLI::App& root) {
    std::string s;
    s += "# bash completion for tunnel (generated by `tunnel completion bash`)\n";
    s += "_tunnel() {\n";
    s += "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n";
    s += "    local sub= i\n";
    s += "    for ((i = 1; i < COMP_CWORD; i++)); do\n";
    s += "        case ${COMP_WORDS[i]} in\n";
    const auto global_values = value_options(root);
    if (!global_values.empty()) s += "            " + global_values + ") ((i++)) ;;\n";
    s += "            -*) ;;\n";
    s += "            *) sub=${COMP_WORDS[i]}; break ;;\n";
    s += "        esac\n";
    s += "    done\n";
    s += "    local words=\n";
    s += "    case $sub in\n";
    s += fmt::format("        '') words='{}' ;;\n", words_of(root, true));
    for (const auto* sub : visible_subcommands(root)) {
        s += fmt::format("        {})\n", sub->get_name());
        if (const auto values = value_options(*sub); !values.empty())
            s += fmt::format("            case $prev in {}) return ;; esac\n", values);
        s += fmt::format("            words='{}' ;;\n", words_of(*sub, true));
    }
    s += "    esac\n";
    s += "    if [[ -z $sub || $cur == -* ]]; then\n";
    s += "        COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n";
    s += "    else\n";
    s += "        local subs=\"${words%%-*}\"\n";
    s += "        COMPREPLY=($(compgen -W \"$subs\" -- \"$cur\"))\n";
    s += "    fi\n";
    s += "}\n";
    s += "complete -o default -o bashdefault -F _tunnel tunnel\n";
    return s;
}

// --- zsh --------------------------------------------------------------------

// Text inside a single-quoted _arguments spec: no ', [, ], :, \ trouble.
std::string zsh_text(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '\'')
            out += "'\\''";
        else if (c == '[' || c == ']' || c == ':' || c == '\\')
            out += '\\', out += c;
        else if (c == '\n')
            out += ' ';
        else
            out += c;
    }
    return out.substr(0, 200);
}

std::string zsh_arguments(const CLI::App& app) {
    std::string s = "_arguments -s";
    for (const auto* o : named_options(app))
        for (const auto& w : option_words(*o)) {
            s += fmt::format(" \\\n                '*{}[{}]", w, zsh_text(o->get_description()));
            if (takes_value(*o)) s += ":value:_files";
            s += "'";
        }
    s += " \\\n                '*:argument:_files'";
    return s;
}

std::string zsh_script(const CLI::App& root) {
    std::string s;
    s += "#compdef tunnel\n";
    s += "# zsh completion for tunnel (generated by `tunnel completion zsh`)\n";
    s += "_tunnel() {\n";
    s += "    local -a subcommands\n";
    s += "    subcommands=(\n";
    for (const auto* sub : visible_subcommands(root))
        s += fmt::format("        '{}:{}'\n", sub->get_name(), zsh_text(sub->get_description()));
    s += "    )\n";
    s += "    if (( CURRENT == 2 )); then\n";
    s += "        _describe -t commands 'tunnel subcommand' subcommands\n";
    s += "        return\n";
    s += "    fi\n";
    s += "    local sub=$words[2]\n";
    s += "    (( CURRENT-- )); shift words\n";
    s += "    case $sub in\n";
    for (const auto* sub : visible_subcommands(root))
        s += fmt::format("        {})\n            {} ;;\n", sub->get_name(), zsh_arguments(*sub));
    s += "    esac\n";
    s += "}\n";
    s += "_tunnel \"$@\"\n";
    return s;
}

}  // namespace

void add_completion_commands(CLI::App& app, command_runner& run) {
    const CLI::App* root = &app;
    auto shell = std::make_shared<std::string>();
    auto* completion = app.add_subcommand(
        "completion", "Print a shell completion script for bash or zsh (generated from --help)");
    completion->add_option("SHELL", *shell, "bash or zsh")
        ->required()
        ->check(CLI::IsMember({"bash", "zsh"}));
    completion->footer(
        "Examples:\n"
        "  tunnel completion bash > ~/.local/share/bash-completion/completions/tunnel\n"
        "  tunnel completion zsh > \"${fpath[1]}/_tunnel\"");
    auto output = std::make_shared<std::string>();
    completion->add_option("-o,--output", *output, "Write the script to FILE instead of stdout");
    completion->callback([shell, output, root, &run] {
        run = [shell, output, root] {
            const auto script = *shell == "bash" ? bash_script(*root) : zsh_script(*root);
            if (output->empty()) {
                fmt::print("{}", script);
                return 0;
            }
            std::ofstream out(*output, std::ios::trunc);
            out << script;
            out.close();
            if (!out)
                return report(core::error{core::errc::io_error,
                                          fmt::format("completion: cannot write {}", *output)});
            return 0;
        };
    });

    auto dir = std::make_shared<std::string>();
    auto* man = app.add_subcommand("man", "Write the man pages (tunnel.1, tunnel-SUB.1) into DIR");
    man->group("");  // hidden: the build runs it (cmake/packaging.cmake)
    man->add_option("DIR", *dir, "Output directory")->required();
    man->callback(
        [dir, root, &run] { run = [dir, root] { return write_man_pages(*root, *dir); }; });
}

}  // namespace tunnel::cli
