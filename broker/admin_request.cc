#include "broker/admin_request.h"

#include <nlohmann/json.hpp>
#include <set>

namespace tw::broker {
namespace {

struct CommandInfo {
  const char* name;
  AdminCommand cmd;
  std::set<std::string> fields;  // besides "cmd"
};

const CommandInfo kCommands[] = {
    {"status", AdminCommand::kStatus, {}},
    {"audit", AdminCommand::kAudit, {}},
    {"metrics", AdminCommand::kMetrics, {}},
    {"rebind", AdminCommand::kRebind, {}},
    {"endpoints", AdminCommand::kEndpoints, {"watch"}},
    {"ping", AdminCommand::kPing, {"peer", "count"}},
    {"netcheck", AdminCommand::kNetcheck, {}},
    {"netmap_apply", AdminCommand::kNetmapApply, {"path"}},
};

}  // namespace

const char* admin_command_name(AdminCommand cmd) {
  for (const auto& c : kCommands) {
    if (c.cmd == cmd) return c.name;
  }
  return "?";
}

Result<AdminRequest> parse_admin_request(const std::string& line) {
  if (line.size() > kMaxAdminLine) return make_error("request longer than 64 KiB");
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error("request is not a JSON object");
  auto cmd_it = j.find("cmd");
  if (cmd_it == j.end() || !cmd_it->is_string()) return make_error("missing string field \"cmd\"");
  const std::string name = cmd_it->get<std::string>();
  const CommandInfo* info = nullptr;
  for (const auto& c : kCommands) {
    if (name == c.name) info = &c;
  }
  if (info == nullptr) return make_error("unknown command \"" + name + "\"");
  AdminRequest req;
  req.cmd = info->cmd;
  for (const auto& [k, v] : j.items()) {
    if (k == "cmd") continue;
    if (!info->fields.contains(k)) return make_error(name + ": unknown field \"" + k + "\"");
    if (k == "peer") {
      if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 255) {
        return make_error("ping: \"peer\" must be a non-empty name or address");
      }
      req.peer = v.get<std::string>();
    } else if (k == "count") {
      if (!v.is_number_unsigned() || v.get<std::uint64_t>() > 1000) {
        return make_error("ping: \"count\" must be an integer 0..1000");
      }
      req.count = static_cast<std::uint32_t>(v.get<std::uint64_t>());
    } else if (k == "path") {
      if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 4096) {
        return make_error("netmap_apply: \"path\" must be a file path");
      }
      req.path = v.get<std::string>();
    } else if (k == "watch") {
      if (!v.is_boolean()) return make_error("endpoints: \"watch\" must be true or false");
      req.watch = v.get<bool>();
    }
  }
  if (req.cmd == AdminCommand::kPing && req.peer.empty()) return make_error("ping: missing \"peer\"");
  if (req.cmd == AdminCommand::kNetmapApply && req.path.empty()) {
    return make_error("netmap_apply: missing \"path\"");
  }
  return req;
}

}  // namespace tw::broker
