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

}  // namespace tw::broker
