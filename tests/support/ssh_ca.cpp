#include "support/ssh_ca.hpp"

#include <cstdio>

namespace tunnel::test {

core::result<ssh_key_files> generate_ssh_key(const temp_dir& dir, const std::string& name,
                                             const std::string& type) {
    ssh_key_files key{dir.file(name)};
    std::remove(key.path.c_str());
    std::remove(key.pub_path().c_str());
    std::vector<std::string> argv = {"ssh-keygen",          "-q", "-t",    type, "-N", "", "-C",
                                     "tunnel-test-" + name, "-f", key.path};
    if (type == "rsa") argv.insert(argv.begin() + 4, {"-b", "2048"});
    auto r = run(argv);
    if (!r.ok()) return core::fail(core::errc::io_error, "ssh-keygen failed: " + r.describe());
    return key;
}

core::result<ssh_ca> ssh_ca::create(const temp_dir& dir, const std::string& name,
                                    const std::string& type) {
    auto key = generate_ssh_key(dir, name, type);
    if (!key) return tl::unexpected(key.error());
    auto pub = read_text_file(key->pub_path());
    if (!pub) return tl::unexpected(pub.error());
    std::string line = *pub;
    // "type base64 comment\n" -> "type base64"
    const auto first = line.find(' ');
    const auto second = first == std::string::npos ? first : line.find(' ', first + 1);
    if (second != std::string::npos) line.resize(second);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    return ssh_ca(std::move(*key), std::move(line));
}

core::result<std::string> ssh_ca::sign(const std::string& pub_path,
                                       const cert_request& request) const {
    std::string input = pub_path;
    std::string output = pub_path.substr(0, pub_path.size() - 4) + "-cert.pub";  // KEY.pub
    if (!request.output.empty()) {
        // ssh-keygen writes beside its input: sign a copy named after the output.
        const std::string base = request.output.substr(0, request.output.size() - 9);  // -cert.pub
        auto text = read_text_file(pub_path);
        if (!text) return tl::unexpected(text.error());
        if (auto w = write_text_file(base + ".pub", *text); !w) return tl::unexpected(w.error());
        input = base + ".pub";
        output = request.output;
    }
    std::vector<std::string> argv = {
        "ssh-keygen", "-q", "-s", key_.path, "-I", request.identity, "-V", request.validity};
    if (!request.principals.empty()) argv.insert(argv.end(), {"-n", request.principals});
    if (request.host) argv.emplace_back("-h");
    argv.push_back(input);
    auto r = run(argv);
    if (!r.ok()) return core::fail(core::errc::io_error, "ssh-keygen -s failed: " + r.describe());
    return output;
}

}  // namespace tunnel::test
