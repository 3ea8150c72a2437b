#include "ops/diff.hpp"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

namespace tunnel::ops {

namespace {

std::vector<std::string_view> split_lines(std::string_view s) {
    std::vector<std::string_view> out;
    while (!s.empty()) {
        auto nl = s.find('\n');
        if (nl == std::string_view::npos) {
            out.push_back(s);
            break;
        }
        out.push_back(s.substr(0, nl));
        s.remove_prefix(nl + 1);
    }
    return out;
}

struct edit {
    char op;           // ' ', '-', '+'
    std::size_t a, b;  // line indexes in old/new (the one that applies)
};

// LCS table walk: fine for config-sized inputs (bounded by diff_max_lines).
std::vector<edit> edits(const std::vector<std::string_view>& a,
                        const std::vector<std::string_view>& b) {
    // Trim the common prefix and suffix first: most edits are small.
    std::size_t pre = 0;
    while (pre < a.size() && pre < b.size() && a[pre] == b[pre]) ++pre;
    std::size_t suf = 0;
    while (suf < a.size() - pre && suf < b.size() - pre &&
           a[a.size() - 1 - suf] == b[b.size() - 1 - suf])
        ++suf;
    const std::size_t n = a.size() - pre - suf, m = b.size() - pre - suf;
    std::vector<std::vector<std::uint32_t>> lcs(n + 1, std::vector<std::uint32_t>(m + 1, 0));
    for (std::size_t i = n; i-- > 0;)
        for (std::size_t j = m; j-- > 0;)
            lcs[i][j] = a[pre + i] == b[pre + j] ? lcs[i + 1][j + 1] + 1
                                                 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    std::vector<edit> out;
    for (std::size_t i = 0; i < pre; ++i) out.push_back({' ', i, i});
    std::size_t i = 0, j = 0;
    while (i < n || j < m) {
        if (i < n && j < m && a[pre + i] == b[pre + j]) {
            out.push_back({' ', pre + i, pre + j});
            ++i, ++j;
        } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
            out.push_back({'-', pre + i, pre + j});
            ++i;
        } else {
            out.push_back({'+', pre + i, pre + j});
            ++j;
        }
    }
    for (std::size_t k = 0; k < suf; ++k) out.push_back({' ', pre + n + k, pre + m + k});
    return out;
}

}  // namespace

std::string unified_diff(std::string_view old_text, std::string_view new_text,
                         std::string_view old_name, std::string_view new_name, int context) {
    if (old_text == new_text) return {};
    auto a = split_lines(old_text);
    auto b = split_lines(new_text);
    std::string out = fmt::format("--- {}\n+++ {}\n", old_name, new_name);
    if (a.size() > diff_max_lines || b.size() > diff_max_lines)
        return out + fmt::format("(too large to diff: {} lines -> {} lines)\n", a.size(), b.size());
    auto e = edits(a, b);
    const auto ctx = static_cast<std::size_t>(std::max(context, 0));
    std::size_t k = 0;
    while (k < e.size()) {
        // Find the next change and the hunk around it.
        while (k < e.size() && e[k].op == ' ') ++k;
        if (k == e.size()) break;
        std::size_t start = k >= ctx ? k - ctx : 0;
        std::size_t end = k;
        // Extend while the gap between changes is at most 2*ctx lines.
        while (true) {
            while (end < e.size() && e[end].op != ' ') ++end;
            std::size_t next = end;
            while (next < e.size() && e[next].op == ' ') ++next;
            if (next < e.size() && next - end <= 2 * ctx) {
                end = next;
                continue;
            }
            end = std::min(e.size(), end + ctx);
            break;
        }
        std::size_t a_start = 0, a_len = 0, b_start = 0, b_len = 0;
        bool a_set = false, b_set = false;
        std::string body;
        for (std::size_t x = start; x < end; ++x) {
            const auto& ed = e[x];
            if (ed.op != '+') {
                if (!a_set) a_start = ed.a, a_set = true;
                ++a_len;
            }
            if (ed.op != '-') {
                if (!b_set) b_start = ed.b, b_set = true;
                ++b_len;
            }
            body += ed.op;
            body += ed.op == '+' ? b[ed.b] : a[ed.a];
            body += '\n';
        }
        if (!a_set) a_start = e[start].a;
        if (!b_set) b_start = e[start].b;
        // diff -u numbers lines from 1; an empty range names the line before it.
        out += fmt::format("@@ -{},{} +{},{} @@\n", a_len ? a_start + 1 : a_start, a_len,
                           b_len ? b_start + 1 : b_start, b_len);
        out += body;
        k = end;
    }
    if (!old_text.empty() && old_text.back() != '\n') out += "\\ No newline at end of old file\n";
    if (!new_text.empty() && new_text.back() != '\n') out += "\\ No newline at end of new file\n";
    return out;
}

}  // namespace tunnel::ops
