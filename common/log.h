// Logging: one line per event on stderr (journald-friendly), with the level and the
// process tag (broker / netproc / dataproc). Never log key material.
#pragma once

#include <string>

namespace tw {

// level: trace | debug | info | warn | error (anything else: info).
void init_logging(const std::string& process_tag, const std::string& level);

}  // namespace tw
