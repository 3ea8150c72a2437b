// The local artifact of a deploy: its kind, its SHA-256 (for a directory, of
// its sorted listing of paths, modes, link targets and file hashes, so an
// unchanged tree hashes the same) and the name it gets on the hosts.
#pragma once

#include <cstdint>
#include <string>

#include "core/error.hpp"
#include "deploy/deploy_config.hpp"

namespace tunnel::deploy {

struct artifact {
    std::string path;  // local
    artifact_kind kind = artifact_kind::tar_gz;
    std::string sha256;
    std::uint64_t bytes = 0;  // file size, or the sum of a directory's regular files
    std::string file_name;    // a binary's name inside the release
};

// Reads and hashes the artifact a deploy file names; the message says what is
// wrong (missing, a directory where a file was expected, unreadable).
[[nodiscard]] core::result<artifact> inspect_artifact(const deploy_config& c);

}  // namespace tunnel::deploy
