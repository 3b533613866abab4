#include "cli/status_format.h"

#include <cctype>
#include <cstdio>

namespace tw::cli {
namespace {

std::string str(const nlohmann::json& j, const char* key, const char* def = "-") {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : def;
}

std::string latency(const nlohmann::json& j) {
  auto it = j.find("latency_ms");
  if (it == j.end() || !it->is_number()) return "-";
  char buf[32];
  double ms = it->get<double>();
  std::snprintf(buf, sizeof buf, ms < 10 ? "%.1fms" : "%.0fms", ms);
  return buf;
}

// "UDP+DERP" from the route field ("udp+derp").
std::string route_upper(const nlohmann::json& peer) {
  std::string r = str(peer, "route", "?");
  for (char& ch : r) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return r;
}

// What the path state adds to the path: a failover or an expired trust sends over
// two routes at once, which plain "direct" or "relay" would hide.
std::string state_suffix(const nlohmann::json& peer) {
  const std::string state = str(peer, "state", "");
  if (state == "failing_over") return " (failing over: " + route_upper(peer) + ")";
  if (state == "expired") return " (trust expired: " + route_upper(peer) + ")";
  if (state == "probing") return " (probing)";
  return "";
}

std::string path_text(const nlohmann::json& peer) {
  const std::string path = str(peer, "path", "none");
  if (path == "direct") return "direct " + str(peer, "endpoint") + state_suffix(peer);
  if (path == "derp") return "relay \"" + str(peer, "derp_region", "?") + "\"" + state_suffix(peer);
  if (path == "idle") return "idle";
  return "no path" + state_suffix(peer);
}

std::string region_label(const nlohmann::json& d) {
  const std::string name = str(d, "region_name", "");
  return name.empty() ? str(d, "region") : name;
}

// "fra: 12ms (Frankfurt) via 1b, min 8.0ms, 3s ago [home, connected]"
std::string derp_line(const nlohmann::json& d) {
  std::string line = str(d, "region") + ": ";
  const std::string stun = str(d, "stun", "");
  if (stun == "measured") {
    line += latency(d);
  } else if (stun == "no_stun") {
    line += "no STUN endpoint";
  } else {
    line += "no STUN reply";
  }
  if (auto name = str(d, "region_name", ""); !name.empty()) line += " (" + name + ")";
  if (stun == "measured") {
    line += " via " + str(d, "node", "?");
    if (auto it = d.find("min_latency_ms"); it != d.end() && it->is_number()) {
      line += ", min " + latency({{"latency_ms", *it}});
    }
    if (auto it = d.find("age_ms"); it != d.end() && it->is_number_integer()) {
      line += ", " + human_ago(it->get<long long>() / 1000);
    }
  }
  std::string tags;
  if (d.value("home", false)) tags += "home";
  if (d.value("connected", false)) tags += std::string(tags.empty() ? "" : ", ") + "connected";
  if (!tags.empty()) line += " [" + tags + "]";
  return line;
}

}  // namespace

std::string human_bytes(unsigned long long n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : "%.1f%s", v, units[u]);
  return buf;
}

std::string human_ago(long long seconds) {
  if (seconds < 0) return "-";
  if (seconds < 60) return std::to_string(seconds) + "s ago";
  if (seconds < 3600) return std::to_string(seconds / 60) + "m ago";
  return std::to_string(seconds / 3600) + "h ago";
}

std::string format_status(const nlohmann::json& s, long long now_unix) {
  std::string out;
  const auto& self = s.value("self", nlohmann::json::object());
  std::string eps;
  for (const auto& e : self.value("endpoints", nlohmann::json::array())) {
    if (e.is_string()) eps += (eps.empty() ? "" : ", ") + e.get<std::string>();
  }
  out += "# " + str(self, "name", "?") + " " + str(self, "address", "") + "\n";
  out += "# endpoints: " + (eps.empty() ? std::string("(none yet)") : eps) + "\n";
  out += "# home DERP: " + str(self, "home_derp", "(none)");
  if (self.value("inert", false)) out += "\n# INERT: no underlay socket could be bound; DERP only";
  out += "\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-16s %-15s %-30s %-8s %-12s %s\n", "PEER", "ADDRESS", "PATH",
                "LATENCY", "HANDSHAKE", "RX/TX");
  out += line;
  for (const auto& p : s.value("peers", nlohmann::json::array())) {
    std::string hs = "-";
    if (auto it = p.find("last_handshake_unix"); it != p.end() && it->is_number_integer() &&
                                                  it->get<long long>() > 0) {
      hs = human_ago(now_unix - it->get<long long>());
    }
    std::string rxtx = human_bytes(p.value("rx_bytes", 0ULL)) + "/" + human_bytes(p.value("tx_bytes", 0ULL));
    std::snprintf(line, sizeof line, "%-16s %-15s %-30s %-8s %-12s %s\n", str(p, "name").c_str(),
                  str(p, "address").c_str(), path_text(p).c_str(), latency(p).c_str(), hs.c_str(),
                  rxtx.c_str());
    out += line;
  }
  return out;
}

std::string format_pong(const nlohmann::json& r) {
  const std::string who = str(r, "peer", "?") + " (" + str(r, "address", "?") + ")";
  if (r.value("timeout", false)) return "timeout waiting for pong from " + who;
  std::string via = str(r, "via", "");
  if (via == "derp") {
    via = "DERP(" + str(r, "derp_region", "?") + ")";
  } else {
    via = str(r, "endpoint", "?");
  }
  return "pong from " + who + " via " + via + " in " + latency(r);
}

std::string format_netcheck(const nlohmann::json& r) {
  std::string out = "Report:\n";
  for (const auto& s : r.value("stun", nlohmann::json::array())) {
    out += "\t* STUN " + str(s, "server") + ": " +
           (s.contains("mapped") ? str(s, "mapped") + " in " + latency(s) : std::string("no reply")) + "\n";
  }
  std::string eps;
  for (const auto& e : r.value("endpoints", nlohmann::json::array())) {
    if (e.is_string()) eps += (eps.empty() ? "" : ", ") + e.get<std::string>();
  }
  out += "\t* Endpoints: " + (eps.empty() ? std::string("(none)") : eps) + "\n";
  if (r.contains("mapping_varies_by_dest_ip") && r["mapping_varies_by_dest_ip"].is_boolean()) {
    out += std::string("\t* MappingVariesByDestIP: ") +
           (r["mapping_varies_by_dest_ip"].get<bool>() ? "true (hard NAT: direct paths unlikely)" : "false") + "\n";
  } else {
    out += "\t* MappingVariesByDestIP: unknown (fewer than two STUN servers answered)\n";
  }
  // netproc lists the regions fastest first, unanswered and STUN-less ones last.
  const auto derp = r.value("derp", nlohmann::json::array());
  for (const auto& d : derp) {
    if (str(d, "stun", "") != "measured") continue;
    out += "\t* Nearest DERP: " + region_label(d) + "\n";
    break;
  }
  out += "\t* DERP latency:\n";
  for (const auto& d : derp) out += "\t\t- " + derp_line(d) + "\n";
  return out;
}

}  // namespace tw::cli
