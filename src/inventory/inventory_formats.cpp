// The inventory file formats: Ansible's YAML and INI layouts, an inline
// comma-separated list, and host ranges (web[01:03]).
#include <sys/stat.h>

#include <cctype>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/ascii.hpp"
#include "inventory/inventory.hpp"
#include "inventory/inventory_builder.hpp"
#include "inventory/yaml_value.hpp"
#include "ssh/ssh_config.hpp"

namespace tunnel::inventory {

namespace {

constexpr std::size_t max_inventory_bytes = 16 * 1024 * 1024;
constexpr std::size_t max_range_hosts = 100'000;

std::string trim(std::string_view s) {
    auto b = s.find_first_not_of(" \t\r");
    if (b == std::string_view::npos) return {};
    auto e = s.find_last_not_of(" \t\r");
    return std::string(s.substr(b, e - b + 1));
}

using core::all_digits;

// ---- YAML -------------------------------------------------------------------

class yaml_loader {
  public:
    yaml_loader(inventory_builder& b, std::string source) : b_(b), source_(std::move(source)) {}

    std::string where(const YAML::Node& n, const std::string& path) const {
        auto m = n.Mark();
        if (m.line < 0) return fmt::format("{}: {}", source_, path);
        return fmt::format("{}:{}: {}", source_, m.line + 1, path);
    }

    void group(const std::string& name, const YAML::Node& node, const std::string& path) {
        b_.add_group(name, where(node, path));
        if (!node || node.IsNull()) return;
        if (!node.IsMap()) {
            b_.error(where(node, path),
                     "a group must be a mapping with hosts, vars and/or children");
            return;
        }
        for (const auto& kv : node) {
            const auto key = kv.first.as<std::string>();
            const auto sub = path + "." + key;
            if (key == "hosts") {
                hosts(name, kv.second, sub);
            } else if (key == "vars") {
                vars(kv.second, sub, [&](const std::string& k, nlohmann::json v) {
                    b_.set_group_var(name, k, std::move(v));
                });
            } else if (key == "children") {
                children(name, kv.second, sub);
            } else {
                b_.error(
                    where(kv.first, sub),
                    "unknown key (a group has hosts, vars and children; put variables under vars)");
            }
        }
    }

  private:
    template <class Set>
    void vars(const YAML::Node& node, const std::string& path, Set set) {
        if (!node || node.IsNull()) return;
        if (!node.IsMap()) {
            b_.error(where(node, path), "vars must be a mapping of name: value");
            return;
        }
        for (const auto& kv : node) {
            if (!kv.first.IsScalar() || kv.first.Scalar().empty()) {
                b_.error(where(kv.first, path), "a variable name must be a non-empty string");
                continue;
            }
            set(kv.first.Scalar(), yaml_value(kv.second));
        }
    }

    void hosts(const std::string& group, const YAML::Node& node, const std::string& path) {
        if (!node || node.IsNull()) return;
        if (!node.IsMap()) {
            b_.error(where(node, path),
                     "hosts must be a mapping of host name to its variables (or nothing), "
                     "e.g. hosts: {web1: {ansible_host: 10.0.0.5}}");
            return;
        }
        for (const auto& kv : node) {
            const auto pattern = kv.first.as<std::string>();
            const auto at = where(kv.first, path + "." + pattern);
            auto names = expand_host_range(pattern);
            if (!names) {
                b_.error(at, names.error().message);
                continue;
            }
            for (const auto& h : *names) {
                b_.add_host(group, h, at);
                if (kv.second && !kv.second.IsNull() && !kv.second.IsMap()) {
                    b_.error(at, "a host's value must be a mapping of its variables, or nothing");
                    break;
                }
                vars(kv.second, path + "." + pattern, [&](const std::string& k, nlohmann::json v) {
                    b_.set_host_var(h, k, std::move(v));
                });
            }
        }
    }

    void children(const std::string& parent, const YAML::Node& node, const std::string& path) {
        if (!node || node.IsNull()) return;
        if (!node.IsMap()) {
            b_.error(where(node, path), "children must be a mapping of group name to group");
            return;
        }
        for (const auto& kv : node) {
            const auto child = kv.first.as<std::string>();
            b_.add_child(parent, child, where(kv.first, path + "." + child));
            group(child, kv.second, path + "." + child);
        }
    }

    inventory_builder& b_;
    std::string source_;
};

// ---- INI --------------------------------------------------------------------

// Splits a host line into words, honouring quotes; a word starting with #
// begins a comment.
struct word {
    std::string text;
    bool quoted = false;  // some of it was in quotes: a string value, never a number
};

core::result<std::vector<word>> split_words(std::string_view line) {
    std::vector<word> words;
    word cur;
    bool in_word = false;
    char quote = 0;
    for (char c : line) {
        if (quote) {
            if (c == quote)
                quote = 0;
            else
                cur.text += c;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r') {
            if (in_word) words.push_back(std::move(cur));
            cur = {};
            in_word = false;
            continue;
        }
        if (c == '#' && !in_word) break;
        if (c == '"' || c == '\'') {
            quote = c;
            cur.quoted = true;
        } else {
            cur.text += c;
        }
        in_word = true;
    }
    if (quote)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("unterminated {} quote", quote));
    if (in_word) words.push_back(std::move(cur));
    return words;
}

nlohmann::json ini_value(std::string_view raw, bool was_quoted) {
    if (was_quoted) return std::string(raw);
    if (all_digits(raw) && raw.size() < 18) return std::stoll(std::string(raw));
    if (raw == "True" || raw == "true") return true;
    if (raw == "False" || raw == "false") return false;
    return std::string(raw);
}

void load_ini(inventory_builder& b, std::string_view text, const std::string& source) {
    enum class section { hosts, vars, children };
    section kind = section::hosts;
    std::string group = "all";
    std::istringstream in{std::string(text)};
    std::string line;
    int lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        const auto at = fmt::format("{}:{}", source, lineno);
        auto t = trim(line);
        if (t.empty() || t[0] == '#' || t[0] == ';') continue;
        if (t[0] == '[') {
            auto close = t.find(']');
            if (close == std::string::npos ||
                trim(std::string_view(t).substr(close + 1)).size() > 0) {
                b.error(at, "a section header is [group], [group:vars] or [group:children]");
                continue;
            }
            auto name = t.substr(1, close - 1);
            kind = section::hosts;
            if (auto colon = name.find(':'); colon != std::string::npos) {
                auto suffix = name.substr(colon + 1);
                name = name.substr(0, colon);
                if (suffix == "vars")
                    kind = section::vars;
                else if (suffix == "children")
                    kind = section::children;
                else {
                    b.error(at, fmt::format("unknown section suffix :{} (use :vars or :children)",
                                            suffix));
                    continue;
                }
            }
            group = name;
            b.add_group(group, at);
            continue;
        }
        if (kind == section::children) {
            b.add_child(group, t, at);
            continue;
        }
        if (kind == section::vars) {
            auto eq = t.find('=');
            if (eq == std::string::npos) {
                b.error(at, fmt::format("expected key=value in [{}:vars]", group));
                continue;
            }
            auto key = trim(std::string_view(t).substr(0, eq));
            auto value = trim(std::string_view(t).substr(eq + 1));
            if (key.empty() || key.find_first_of(" \t") != std::string::npos) {
                b.error(at, fmt::format("\"{}\" is not a variable name", key));
                continue;
            }
            bool quoted = value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
                          value.back() == value.front();
            if (quoted) value = value.substr(1, value.size() - 2);
            b.set_group_var(group, key, ini_value(value, quoted));
            continue;
        }
        // A host line: NAME[:PORT] [key=value ...]
        auto words = split_words(t);
        if (!words) {
            b.error(at, words.error().message);
            continue;
        }
        if (words->empty()) continue;
        auto name = (*words)[0].text;
        std::optional<std::string> port;
        if (auto colon = name.rfind(':'); colon != std::string::npos && name.find(':') == colon &&
                                          all_digits(std::string_view(name).substr(colon + 1))) {
            port = name.substr(colon + 1);
            name = name.substr(0, colon);
        }
        auto names = expand_host_range(name);
        if (!names) {
            b.error(at, names.error().message);
            continue;
        }
        std::vector<std::pair<std::string, nlohmann::json>> vars;
        bool bad = false;
        for (std::size_t i = 1; i < words->size(); ++i) {
            const auto& w = (*words)[i].text;
            auto eq = w.find('=');
            if (eq == std::string::npos || eq == 0) {
                b.error(at,
                        fmt::format(
                            "\"{}\": host variables are written key=value after the host name", w));
                bad = true;
                break;
            }
            vars.emplace_back(w.substr(0, eq),
                              ini_value(std::string_view(w).substr(eq + 1), (*words)[i].quoted));
        }
        if (bad) continue;
        for (const auto& h : *names) {
            b.add_host(group, h, at);
            if (port) b.set_host_var(h, "ansible_port", std::stoll(*port));
            for (const auto& [k, v] : vars) b.set_host_var(h, k, v);
        }
    }
}

bool looks_like_yaml(std::string_view text) {
    std::istringstream in{std::string(text)};
    std::string line;
    while (std::getline(in, line)) {
        auto t = trim(line);
        if (t.empty() || t[0] == '#' || t[0] == ';') continue;
        if (t == "---") return true;
        if (t[0] == '[') return false;
        return t.back() == ':' || t.find(": ") != std::string::npos;
    }
    return false;
}

}  // namespace

core::result<std::vector<std::string>> expand_host_range(std::string_view name) {
    auto open = name.find('[');
    if (open == std::string_view::npos) {
        if (name.find(']') != std::string_view::npos)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("host \"{}\": ']' without '['", name));
        return std::vector<std::string>{std::string(name)};
    }
    auto close = name.find(']', open);
    if (close == std::string_view::npos)
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("host range \"{}\": missing ']' (write e.g. web[01:10])", name));
    const auto inner = name.substr(open + 1, close - open - 1);
    std::vector<std::string> parts;
    for (std::size_t start = 0;;) {
        auto c = inner.find(':', start);
        parts.emplace_back(
            inner.substr(start, c == std::string_view::npos ? std::string_view::npos : c - start));
        if (c == std::string_view::npos) break;
        start = c + 1;
    }
    auto bad = [&](std::string_view why) {
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("host range \"{}\": {} (write [01:10], [a:f] or [0:20:5])", name, why));
    };
    if (parts.size() < 2 || parts.size() > 3)
        return bad("expected [start:end] or [start:end:step]");
    long long step = 1;
    if (parts.size() == 3) {
        if (!all_digits(parts[2]) || parts[2].size() > 9 || std::stoll(parts[2]) == 0)
            return bad("step must be a whole number > 0");
        step = std::stoll(parts[2]);
    }
    std::vector<std::string> items;
    if (all_digits(parts[0]) && all_digits(parts[1])) {
        if (parts[0].size() > 9 || parts[1].size() > 9) return bad("numbers too large");
        const long long a = std::stoll(parts[0]), z = std::stoll(parts[1]);
        if (a > z) return bad("start is after end");
        if ((z - a) / step + 1 > static_cast<long long>(max_range_hosts))
            return bad("too many hosts");
        const bool padded = parts[0].size() > 1 && parts[0][0] == '0';
        for (long long i = a; i <= z; i += step)
            items.push_back(padded ? fmt::format("{:0{}}", i, parts[0].size()) : std::to_string(i));
    } else if (parts[0].size() == 1 && parts[1].size() == 1 &&
               std::isalpha(static_cast<unsigned char>(parts[0][0])) &&
               std::isalpha(static_cast<unsigned char>(parts[1][0]))) {
        if (parts[0][0] > parts[1][0]) return bad("start is after end");
        for (long long c = parts[0][0]; c <= parts[1][0]; c += step)
            items.emplace_back(1, static_cast<char>(c));
    } else {
        return bad("start and end must both be numbers or both single letters");
    }
    auto rest = expand_host_range(name.substr(close + 1));
    if (!rest) return rest;
    if (items.size() * rest->size() > max_range_hosts) return bad("too many hosts");
    std::vector<std::string> out;
    const auto prefix = name.substr(0, open);
    for (const auto& i : items)
        for (const auto& r : *rest) out.push_back(fmt::format("{}{}{}", prefix, i, r));
    return out;
}

core::result<inventory> parse_yaml_inventory(std::string_view text, const std::string& source) {
    inventory_builder b(source);
    YAML::Node root;
    try {
        root = YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}:{}:{}: invalid YAML: {}", source, e.mark.line + 1,
                                      e.mark.column + 1, e.msg));
    }
    if (root.IsNull()) return b.finish();
    if (!root.IsMap())
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("{}: an inventory is a mapping of groups, starting with all:, e.g.\n"
                        "all:\n  hosts:\n    web1:\n      ansible_host: 10.0.0.5",
                        source));
    yaml_loader loader(b, source);
    for (const auto& kv : root) {
        const auto name = kv.first.as<std::string>();
        if (name != "all") b.add_child("all", name, loader.where(kv.first, name));
        loader.group(name, kv.second, name);
    }
    return b.finish();
}

core::result<inventory> parse_ini_inventory(std::string_view text, const std::string& source) {
    inventory_builder b(source);
    load_ini(b, text, source);
    return b.finish();
}

core::result<inventory> parse_inline_inventory(std::string_view list) {
    inventory_builder b("inline inventory");
    std::size_t start = 0;
    while (start <= list.size()) {
        auto comma = list.find(',', start);
        auto item = trim(list.substr(
            start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
        start = comma == std::string_view::npos ? list.size() + 1 : comma + 1;
        if (item.empty()) continue;
        auto t = ssh::parse_target(item);
        if (!t) {
            b.error(fmt::format("inline inventory entry \"{}\"", item), t.error().message);
            continue;
        }
        b.add_host("all", item, fmt::format("inline inventory entry \"{}\"", item));
        if (t->host != item) b.set_host_var(item, "ansible_host", t->host);
        if (t->user) b.set_host_var(item, "ansible_user", *t->user);
        if (t->port) b.set_host_var(item, "ansible_port", *t->port);
    }
    return b.finish();
}

core::result<inventory> load_inventory(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (path.find(',') != std::string::npos) return parse_inline_inventory(path);
        return core::fail(
            core::errc::not_found,
            fmt::format(
                "inventory {}: {}: give an inventory file (YAML or INI) or a comma-separated "
                "host list such as 'web1,web2,'",
                path, std::strerror(errno)));
    }
    if (!S_ISREG(st.st_mode))
        return core::fail(core::errc::invalid_argument,
                          fmt::format("inventory {}: not a regular file", path));
    if (static_cast<std::size_t>(st.st_size) > max_inventory_bytes)
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("inventory {}: larger than {} MiB", path, max_inventory_bytes >> 20));
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return core::fail(core::errc::permission_denied,
                          fmt::format("cannot read inventory {}: {}", path, std::strerror(errno)));
    std::ostringstream ss;
    ss << in.rdbuf();
    const auto text = ss.str();
    auto ends_with = [&](std::string_view suffix) {
        return path.size() >= suffix.size() &&
               path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends_with(".yml") || ends_with(".yaml") || ends_with(".json"))
        return parse_yaml_inventory(text, path);
    if (ends_with(".ini") || ends_with(".cfg")) return parse_ini_inventory(text, path);
    return looks_like_yaml(text) ? parse_yaml_inventory(text, path)
                                 : parse_ini_inventory(text, path);
}

// YAML 1.1 scalars as Ansible (PyYAML) reads them; quoted scalars stay strings.
nlohmann::json yaml_value(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Null:
        case YAML::NodeType::Undefined:
            return nullptr;
        case YAML::NodeType::Sequence: {
            auto a = nlohmann::json::array();
            for (const auto& item : node) a.push_back(yaml_value(item));
            return a;
        }
        case YAML::NodeType::Map: {
            auto o = nlohmann::json::object();
            for (const auto& kv : node) o[kv.first.as<std::string>()] = yaml_value(kv.second);
            return o;
        }
        case YAML::NodeType::Scalar:
            break;
    }
    const auto& s = node.Scalar();
    if (node.Tag() == "!") return s;  // quoted
    if (s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
    static const char* const truthy[] = {"true", "True", "TRUE", "yes", "Yes",
                                         "YES",  "on",   "On",   "ON"};
    static const char* const falsy[] = {"false", "False", "FALSE", "no", "No",
                                        "NO",    "off",   "Off",   "OFF"};
    for (const char* t : truthy)
        if (s == t) return true;
    for (const char* f : falsy)
        if (s == f) return false;
    long long i = 0;
    if (YAML::convert<long long>::decode(node, i) &&
        (all_digits(s) ||
         (s.size() > 1 && (s[0] == '-' || s[0] == '+') && all_digits(s.substr(1)))))
        return i;
    double d = 0;
    if (!s.empty() &&
        (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '.') &&
        YAML::convert<double>::decode(node, d))
        return d;
    return s;
}

}  // namespace tunnel::inventory
