// Reading a small secret file (the node's key file, the exit's proxy credentials)
// with the checks both need, in one place.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.h"

namespace tw {

// Opens `path` without following a symlink and requires a regular file with no group
// or other permission bits, owned by the effective uid reading it (someone else's
// file, even mode 0600, could be written or replaced by them and must not become this
// node's secret), of at most `max_bytes`; then reads it whole. The caller wipes the
// text after use. Errors start with the path:
//   "<path>: mode 0640 lets group or others <exposure>; chmod 600 it"
//   "<path>: <too_large>" when the file is larger than max_bytes.
Result<std::string> read_owner_only_file(const std::string& path, std::size_t max_bytes,
                                         std::string_view exposure, std::string_view too_large);

}  // namespace tw
