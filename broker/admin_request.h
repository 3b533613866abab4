// Requests on the admin socket (docs/design.md): one JSON object per line, e.g.
//   {"cmd":"status"}  {"cmd":"ping","peer":"b","count":3}  {"cmd":"netmap_apply","path":"/x.json"}
// Parsing is strict: unknown commands or fields are refused with a precise error.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace tw::broker {

enum class AdminCommand { kStatus, kAudit, kMetrics, kRebind, kEndpoints, kPing, kNetcheck, kNetmapApply };

struct AdminRequest {
  AdminCommand cmd = AdminCommand::kStatus;
  std::string peer;        // ping
  std::uint32_t count = 0; // ping: 0 = stop at the first direct pong
  std::string path;        // netmap_apply
  bool watch = false;      // endpoints
};

constexpr std::size_t kMaxAdminLine = 64 * 1024;

Result<AdminRequest> parse_admin_request(const std::string& line);
const char* admin_command_name(AdminCommand cmd);

}  // namespace tw::broker
