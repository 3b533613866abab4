// Our netmap model written as netmap-file JSON (the format `tailwarden netmap apply`
// reads), so a map from control is checked by exactly the same parser as a file.
#pragma once

#include <string>

#include "common/netmap.h"

namespace tw::ctl {

std::string netmap_to_json(const Netmap& nm);

}  // namespace tw::ctl
