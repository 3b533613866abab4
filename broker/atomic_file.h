// Replacing a file that other programs read (the endpoints file a controller
// watches): the new content goes to a temporary file in the same directory, is
// synced, and is renamed over the old one, so a reader opens either the old file or
// the new one, never a partly written one, and a crash leaves one of the two.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/result.h"

namespace tw::broker {

Status replace_file_atomically(const std::string& path, std::string_view content, mode_t mode);

// Reads a file a privileged process was told to read (`netmap apply PATH`): opened
// O_NONBLOCK|O_NOFOLLOW (a FIFO never blocks, a final symlink is refused), regular
// files only (no /dev/zero), at most `max_bytes` (checked before reading, and the
// read is bounded too).
Result<std::string> read_regular_file_bounded(const std::string& path, std::size_t max_bytes);

}  // namespace tw::broker
