#include "broker/config.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <span>
#include <sstream>
#include <system_error>
#include <vector>

#include "broker/config_fields.h"
#include "common/keys.h"
#include "common/machine_key.h"

namespace tw::broker {
namespace config_detail {

std::string quoted_excerpt(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out + (s.size() > 40 ? "...\"" : "\"");
}

// "got 70000", "got the string \"x\"": what was written instead of what we wanted.
std::string describe(const toml::node& n) {
  if (auto i = n.as_integer()) return std::to_string(i->get());
  if (auto s = n.as_string()) return "the string " + quoted_excerpt(s->get());
  if (auto b = n.as_boolean()) return b->get() ? "true" : "false";
  if (auto f = n.as_floating_point()) {
    std::ostringstream o;
    o << f->get();
    return "the number " + o.str();
  }
  if (n.is_table()) return "a table";
  if (n.is_array()) return "an array";
  return "a date or time";
}

Result<bool> get_bool(const FieldRef& f) {
  if (auto b = f.node.as_boolean()) return b->get();
  return f.error("expected true or false, got " + describe(f.node));
}

Result<std::int64_t> get_int_in(const FieldRef& f, std::int64_t lo, std::int64_t hi) {
  const auto* i = f.node.as_integer();
  if (i == nullptr || i->get() < lo || i->get() > hi) {
    return f.error("expected an integer " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " +
                   describe(f.node));
  }
  return i->get();
}

// A non-empty string of printable characters (no NUL or control bytes, which TOML
// escapes could otherwise smuggle into paths and names).
Result<std::string> get_text(const FieldRef& f, std::string_view expected) {
  const auto* s = f.node.as_string();
  if (s == nullptr) return f.error("expected " + std::string(expected) + ", got " + describe(f.node));
  const std::string& v = s->get();
  if (v.empty()) return f.error("expected " + std::string(expected) + ", got an empty string");
  if (std::any_of(v.begin(), v.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
    return f.error("contains a control character");
  }
  return v;
}

Result<std::string> get_abs_path(const FieldRef& f, std::size_t max_len) {
  auto v = get_text(f, "an absolute path");
  if (!v) return v;
  if ((*v)[0] != '/') return f.error("expected an absolute path, got " + quoted_excerpt(*v));
  if (v->size() > max_len) {
    return f.error("path is " + std::to_string(v->size()) + " bytes, longer than the " + std::to_string(max_len) +
                   " allowed");
  }
  return v;
}

Result<std::string> get_choice(const FieldRef& f, const std::vector<std::string_view>& choices) {
  std::string expected = "one of";
  for (std::size_t i = 0; i < choices.size(); ++i) {
    expected += (i ? ", \"" : " \"") + std::string(choices[i]) + "\"";
  }
  const auto* s = f.node.as_string();
  if (s == nullptr || std::find(choices.begin(), choices.end(), s->get()) == choices.end()) {
    return f.error("expected " + expected + ", got " + describe(f.node));
  }
  return s->get();
}

Status apply_table(const toml::table& table, const std::string& origin, std::string_view prefix,
                   std::span<const FieldSpec> specs, BrokerConfig& c) {
  std::set<std::string_view> seen;
  for (const auto& [k, node] : table) {
    const std::string key(k.str());
    const FieldRef f{origin, std::string(prefix) + key, node};
    auto spec =
        std::find_if(specs.begin(), specs.end(), [&](const FieldSpec& s) { return s.key == key; });
    if (spec == specs.end()) return f.error("unknown key");
    if (auto st = spec->set(f, c); !st) return st;
    seen.insert(spec->key);
  }
  for (const auto& s : specs) {
    if (s.required && !seen.count(s.key)) {
      return make_error(origin + ": missing required field " + std::string(prefix) +
                        std::string(s.key));
    }
  }
  return ok_status();
}

}  // namespace config_detail

namespace {

using namespace config_detail;

constexpr std::size_t kMaxConfigBytes = 1 << 20;
constexpr std::size_t kMaxSocketPath = sizeof(sockaddr_un{}.sun_path) - 1;
constexpr std::size_t kMaxIfName = 15;  // IFNAMSIZ - 1

Result<std::string> get_ifname(const FieldRef& f) {
  auto v = get_text(f, "an interface name");
  if (!v) return v;
  const bool charset_ok = std::all_of(v->begin(), v->end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.';
  });
  if (v->size() > kMaxIfName || !charset_ok || *v == "." || *v == "..") {
    return f.error("expected an interface name of 1..15 letters, digits, '-', '_' or '.', got " + quoted_excerpt(*v));
  }
  return v;
}

Status set_tun_enabled(const FieldRef& f, BrokerConfig& c) { return store(get_bool(f), c.tun.enabled); }
Status set_tun_name(const FieldRef& f, BrokerConfig& c) { return store(get_ifname(f), c.tun.name); }
Status set_tun_mtu(const FieldRef& f, BrokerConfig& c) {
  auto v = get_int_in(f, 1280, 65535);
  if (!v) return make_error(v.error());
  c.tun.mtu = static_cast<std::uint32_t>(*v);
  return ok_status();
}

constexpr FieldSpec kTunFields[] = {
    {"enabled", set_tun_enabled, false},
    {"name", set_tun_name, false},
    {"mtu", set_tun_mtu, false},
};

Status set_tun(const FieldRef& f, BrokerConfig& c) {
  const auto* t = f.node.as_table();
  if (t == nullptr) return f.error("expected a table ([tun]), got " + describe(f.node));
  return apply_table(*t, f.origin, "tun.", kTunFields, c);
}

Status set_listen_port(const FieldRef& f, BrokerConfig& c) {
  auto v = get_int_in(f, 0, 65535);
  if (!v) return make_error(v.error());
  c.listen_port = static_cast<std::uint16_t>(*v);
  return ok_status();
}

Status set_sandbox_mode(const FieldRef& f, BrokerConfig& c) {
  auto v = get_choice(f, {"strict", "permissive-for-debugging"});
  if (!v) return make_error(v.error());
  c.sandbox_mode = *v == "strict" ? SandboxMode::kStrict : SandboxMode::kPermissiveForDebugging;
  return ok_status();
}

Status set_egress_allowlist(const FieldRef& f, BrokerConfig& c) {
  auto v = get_choice(f, {"nftables", "unenforced"});
  if (!v) return make_error(v.error());
  c.egress_allowlist =
      *v == "nftables" ? EgressAllowlistMode::kNftables : EgressAllowlistMode::kUnenforced;
  return ok_status();
}

Status set_log_level(const FieldRef& f, BrokerConfig& c) {
  static const std::vector<std::string_view> kLevels = {"trace", "debug", "info", "warn", "error"};
  auto v = get_choice(f, kLevels);
  if (!v) return make_error(v.error());
  c.log_level = static_cast<LogLevel>(std::find(kLevels.begin(), kLevels.end(), *v) - kLevels.begin());
  return ok_status();
}

Status set_child_user(const FieldRef& f, BrokerConfig& c) {
  c.child_user.line = static_cast<int>(f.node.source().begin.line);
  c.child_user.key = "child_user";
  return store(get_text(f, "a user name"), c.child_user.name);
}

// netproc_user, dataproc_user, ctlproc_user, exitproc_user.
template <ChildRole R>
Status set_role_user(const FieldRef& f, BrokerConfig& c) {
  auto& a = c.child_accounts[static_cast<std::size_t>(R)];
  a.line = static_cast<int>(f.node.source().begin.line);
  a.key = std::string(to_string(R)) + "_user";
  return store(get_text(f, "a user name"), a.name);
}

Status set_endpoints_file(const FieldRef& f, BrokerConfig& c) {
  auto v = get_abs_path(f);
  if (!v) return make_error(v.error());
  if (v->back() == '/') return f.error("expected a file path, got the directory " + quoted_excerpt(*v));
  c.endpoints_file = ConfigPath{*v, static_cast<int>(f.node.source().begin.line)};
  return ok_status();
}

Status set_admin_group(const FieldRef& f, BrokerConfig& c) {
  auto v = get_text(f, "a group name");
  if (!v) return make_error(v.error());
  c.admin_group = AdminGroup{*v, static_cast<int>(f.node.source().begin.line), 0};
  return ok_status();
}

// Plain http to a fixed IPv4 address: the broker dials exactly that address (the
// egress policy has no DNS for control), and ctlproc's Noise layer authenticates the
// server by its key.
Status set_control_url(const FieldRef& f, BrokerConfig& c) {
  auto v = get_text(f, "a URL like \"http://198.18.0.1:8080\"");
  if (!v) return make_error(v.error());
  std::string url = *v;
  if (url.rfind("https://", 0) == 0) {
    return f.error("https:// control URLs are not supported yet (TLS to control is not implemented); "
                   "use http:// (the Noise layer authenticates the server)");
  }
  if (url.rfind("http://", 0) != 0) return f.error("expected an http:// URL, got " + quoted_excerpt(url));
  std::string rest = url.substr(7);
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  auto ep = IpPort::parse(rest.find(':') == std::string::npos ? rest + ":80" : rest);
  if (!ep || !ep->ip.is_v4() || ep->port == 0 || ep->ip.is_unspecified()) {
    return f.error("expected http://<IPv4>[:port] (host names are not resolved), got " + quoted_excerpt(url));
  }
  c.control_url = url;
  c.control_address = *ep;
  c.control_authority = ep->to_string();
  return ok_status();
}

Status set_control_key(const FieldRef& f, BrokerConfig& c) {
  auto v = get_text(f, "a key like \"mkey:<64 hex>\"");
  if (!v) return make_error(v.error());
  auto k = MachinePublic::parse(*v);
  if (!k) return f.error(k.error());
  if (k->is_zero()) return f.error("all-zero key");
  c.control_key = *v;
  return ok_status();
}

Status set_hostname(const FieldRef& f, BrokerConfig& c) {
  auto v = get_text(f, "a host name");
  if (!v) return make_error(v.error());
  if (v->size() > 63) return f.error("longer than 63 characters");
  for (char ch : *v) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-') {
      return f.error("only letters, digits and '-' are allowed, got " + quoted_excerpt(*v));
    }
  }
  c.hostname = *v;
  return ok_status();
}

constexpr FieldSpec kTopFields[] = {
    {"state_dir",
     [](const FieldRef& f, BrokerConfig& c) { return store(get_abs_path(f), c.state_dir); }, false},
    {"key_file",
     [](const FieldRef& f, BrokerConfig& c) { return store(get_abs_path(f), c.key_file); }, true},
    // Required unless control_url is set (checked in parse_config_text).
    {"netmap_file",
     [](const FieldRef& f, BrokerConfig& c) { return store(get_abs_path(f), c.netmap_file); },
     false},
    {"listen_port", set_listen_port, false},
    {"enable_ipv6",
     [](const FieldRef& f, BrokerConfig& c) { return store(get_bool(f), c.enable_ipv6); }, false},
    {"tun", set_tun, false},
    {"admin_socket",
     [](const FieldRef& f, BrokerConfig& c) {
       return store(get_abs_path(f, kMaxSocketPath), c.admin_socket);
     },
     false},
    {"admin_group", set_admin_group, false},
    {"child_user", set_child_user, true},
    {"netproc_user", set_role_user<ChildRole::kNetproc>, false},
    {"dataproc_user", set_role_user<ChildRole::kDataproc>, false},
    {"ctlproc_user", set_role_user<ChildRole::kCtlproc>, false},
    {"exitproc_user", set_role_user<ChildRole::kExitproc>, false},
    {"sandbox_mode", set_sandbox_mode, false},
    {"log_level", set_log_level, false},
    {"allow_lan_endpoints",
     [](const FieldRef& f, BrokerConfig& c) { return store(get_bool(f), c.allow_lan_endpoints); },
     false},
    {"advertise_lan_endpoints",
     [](const FieldRef& f, BrokerConfig& c) {
       return store(get_bool(f), c.advertise_lan_endpoints);
     },
     false},
    {"derp_dns", [](const FieldRef& f, BrokerConfig& c) { return store(get_bool(f), c.derp_dns); },
     false},
    {"endpoints_file", set_endpoints_file, false},
    {"egress_allowlist", set_egress_allowlist, false},
    {"derp_insecure_for_tests",
     [](const FieldRef& f, BrokerConfig& c) {
       return store(get_bool(f), c.derp_insecure_for_tests);
     },
     false},
    {"control_url", set_control_url, false},
    {"control_key", set_control_key, false},
    {"auth_key_file",
     [](const FieldRef& f, BrokerConfig& c) { return store(get_abs_path(f), c.auth_key_file); },
     false},
    {"hostname", set_hostname, false},
    {"advertise_exit_node",
     [](const FieldRef& f, BrokerConfig& c) { return store(get_bool(f), c.advertise_exit_node); },
     false},
    {"exit", set_exit, false},
};

// getpwnam_r/getgrnam_r want a caller buffer; grow it while they say ERANGE.
template <typename Entry, typename Lookup>
Result<std::optional<Entry>> lookup_entry(const std::string& name, Lookup lookup) {
  std::vector<char> buf(4096);
  for (;;) {
    Entry entry{};
    Entry* found = nullptr;
    int rc = lookup(name.c_str(), &entry, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0) return make_error(std::strerror(rc));
    if (found == nullptr) return std::optional<Entry>{};
    return std::optional<Entry>{entry};
  }
}

}  // namespace

std::string_view to_string(ChildRole role) {
  switch (role) {
    case ChildRole::kNetproc:
      return "netproc";
    case ChildRole::kDataproc:
      return "dataproc";
    case ChildRole::kCtlproc:
      return "ctlproc";
    case ChildRole::kExitproc:
      return "exitproc";
  }
  return "child";
}

std::string_view to_string(SandboxMode mode) {
  return mode == SandboxMode::kStrict ? "strict" : "permissive-for-debugging";
}

std::string_view to_string(EgressAllowlistMode mode) {
  return mode == EgressAllowlistMode::kNftables ? "nftables" : "unenforced";
}

std::string_view to_string(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace: return "trace";
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

Result<BrokerConfig> parse_config_text(std::string_view text, const std::string& origin) {
  if (text.size() > kMaxConfigBytes) return make_error(origin + ": larger than 1 MiB; not a config file");
  toml::table table;
  try {
    table = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    return make_error(origin + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  BrokerConfig config;
  config.origin = origin;
  if (auto st = apply_table(table, origin, "", kTopFields, config); !st) return make_error(st.error());
  if (config.advertise_exit_node && config.control_url.empty()) {
    return make_error(
        origin + ": advertise_exit_node needs control_url (it is offered to the control server)");
  }
  if (config.netmap_file.empty() && config.control_url.empty()) {
    return make_error(origin +
                      ": missing required field netmap_file (or control_url, to take the map from "
                      "a control server)");
  }
  // The default account of each child: "<child_user>-<role>".
  for (std::size_t i = 0; i < kChildRoles; ++i) {
    auto& a = config.child_accounts[i];
    if (!a.name.empty()) continue;
    a.name = config.child_user.name + "-" + std::string(to_string(static_cast<ChildRole>(i)));
    a.line = config.child_user.line;
    a.key = "child_user";
  }
  return config;
}

Status resolve_accounts(BrokerConfig& c) {
  const bool strict = c.sandbox_mode == SandboxMode::kStrict;
  std::vector<ChildRole> running = {ChildRole::kNetproc, ChildRole::kDataproc};
  if (!c.control_url.empty()) running.push_back(ChildRole::kCtlproc);
  if (c.exit) running.push_back(ChildRole::kExitproc);
  for (std::size_t i = 0; i < running.size(); ++i) {
    const ChildRole role = running[i];
    auto& a = c.child_accounts[static_cast<std::size_t>(role)];
    const std::string where = c.origin + ":" + std::to_string(a.line) + ": " + a.key + ": ";
    // A derived name says where it came from, so an old config's error is clear.
    const std::string derived =
        a.key == "child_user"
            ? " (" + std::string(to_string(role)) + " runs under its own account, \"<child_user>-" +
                  std::string(to_string(role)) + "\", unless " + std::string(to_string(role)) +
                  "_user names another; see docs/deploy.md, \"Child accounts\")"
            : std::string();
    auto pw = lookup_entry<passwd>(a.name, ::getpwnam_r);
    if (!pw) return make_error(where + "looking up \"" + a.name + "\": " + pw.error());
    if (!*pw) {
      std::string msg = where + "no such user \"" + a.name + "\"";
      msg += derived;
      return make_error(msg);
    }
    a.uid = (*pw)->pw_uid;
    a.gid = (*pw)->pw_gid;
    if ((a.uid == 0 || a.gid == 0) && strict) {
      return make_error(
          where + "\"" + a.name +
          "\" has uid or gid 0; children must run unprivileged (sandbox_mode = \"strict\")");
    }
    for (std::size_t j = 0; j < i && strict; ++j) {
      const auto& other = c.account(running[j]);
      if (other.uid != a.uid) continue;
      return make_error(where + std::string(to_string(role)) + " and " +
                        std::string(to_string(running[j])) + " would share uid " +
                        std::to_string(a.uid) + " (\"" + a.name + "\", \"" + other.name +
                        "\"); each child needs an account of its own (sandbox_mode = \"strict\")");
    }
  }
  if (c.admin_group) {
    auto gr = lookup_entry<group>(c.admin_group->name, ::getgrnam_r);
    const std::string gwhere = c.origin + ":" + std::to_string(c.admin_group->line) + ": admin_group: ";
    if (!gr) return make_error(gwhere + "looking up \"" + c.admin_group->name + "\": " + gr.error());
    if (!*gr) return make_error(gwhere + "no such group \"" + c.admin_group->name + "\"");
    c.admin_group->gid = (*gr)->gr_gid;
  }
  return ok_status();
}

Status check_paths(const BrokerConfig& c) {
  if (!c.endpoints_file) return ok_status();
  const std::string& file = c.endpoints_file->path;
  const std::string where = c.origin + ":" + std::to_string(c.endpoints_file->line) + ": endpoints_file: ";
  const std::string dir = file.substr(0, std::max<std::size_t>(file.rfind('/'), 1));
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return make_error(where + "directory \"" + dir + "\" " +
                      (errno == ENOENT ? std::string("does not exist") : std::string(std::strerror(errno))));
  }
  if (!S_ISDIR(st.st_mode)) return make_error(where + "\"" + dir + "\" is not a directory");
  if (::stat(file.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return make_error(where + "\"" + file + "\" is a directory");
  }
  return ok_status();
}

Result<BrokerConfig> load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": cannot open: " + std::strerror(errno));
  std::string text;
  char buf[8192];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxConfigBytes) return make_error(path + ": larger than 1 MiB; not a config file");
  }
  if (in.bad()) return make_error(path + ": read error");
  auto config = parse_config_text(text, path);
  if (!config) return config;
  if (auto st = resolve_accounts(*config); !st) return make_error(st.error());
  if (auto st = check_paths(*config); !st) return make_error(st.error());
  if (auto st = config_detail::check_exit_credentials(*config); !st) return make_error(st.error());
  return config;
}

}  // namespace tw::broker
