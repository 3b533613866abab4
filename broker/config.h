// tailwardend's configuration file: TOML, edited by hand, so every error names the
// file, the line and the field, and unknown keys are errors (a typo must not silently
// leave a default in force). docs/design.md#3-start-up: nothing starts half-configured.
//
//   state_dir    = "/var/lib/tailwarden"          # default
//   key_file     = "/var/lib/tailwarden/node.key"  # required
//   netmap_file  = "/etc/tailwarden/netmap.json"   # required unless control_url is set
//   listen_port  = 41641           # 0 (default) = ephemeral
//   enable_ipv6  = false
//   admin_socket = "/run/tailwarden/tailwarden.sock"
//   admin_group  = "tailwarden"    # optional; group allowed on the admin socket
//   child_user   = "tailwarden"    # required; the base of the children's accounts:
//                                  # each child runs under its own, "<child_user>-<role>"
//                                  # (tailwarden-netproc, -dataproc, -ctlproc, -exitproc)
//   netproc_user = "..."           # optional, each: another account for that child
//   dataproc_user = "..."          # (distinct uids, none 0, are checked at load)
//   ctlproc_user = "..."
//   exitproc_user = "..."
//   sandbox_mode = "strict"        # or "permissive-for-debugging", never implied
//   log_level    = "info"          # trace | debug | info | warn | error
//   allow_lan_endpoints     = true
//   advertise_lan_endpoints = false
//   derp_dns     = false           # resolve DERP host names (off: fixed IPv4 only)
//   endpoints_file = "/run/tailwarden/endpoints.json"  # optional; rewritten atomically
//                                  # with each new endpoint set (`endpoints --json`)
//   derp_insecure_for_tests = false  # dial InsecureForTests DERP nodes (tests only)
//   egress_allowlist = "nftables"  # or "unenforced": the kernel allowlist on the
//                                  # underlay socket (docs/deploy.md); never implied
//
//   control_url  = "http://198.18.0.1:8080"  # optional: join a tailnet (ts2021 control;
//                                  # plain http to a fixed IPv4 address for now)
//   control_key  = "mkey:<64 hex>"  # optional: pin the control server's Noise key
//                                  # (else fetched from <control_url>/key)
//   auth_key_file = "/etc/tailwarden/authkey"  # optional: pre-auth key (else the
//                                  # login URL shows in `tailwarden status`)
//   hostname     = "vps1"          # optional: the name shown to the tailnet
//   advertise_exit_node = false    # optional: offer 0.0.0.0/0 and ::/0 to control
//   netmap_file is optional with control_url (the map then comes from control only)
//
//   [tun]
//   enabled = true
//   name    = "tailwarden0"
//   mtu     = 1280                 # 1280..65535
//
//   [exit]                         # optional: be the tailnet's privacy-proxy exit node
//   mode = "proxy"                 # required; "host" is refused (not built yet)
//   proxy = "socks5://198.18.5.2:1080"   # required; or "http://IPv4:port" (HTTP CONNECT)
//   credentials_file = "/etc/tailwarden/proxy-credentials"  # optional; mode 0600,
//                                  # one line "username:password"
//   dns_resolver = "198.18.9.53"   # required; IPv4, queried over TCP through the proxy
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/ipaddr.h"
#include "common/result.h"

namespace tw::broker {

enum class SandboxMode { kStrict, kPermissiveForDebugging };
enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };
// How the underlay socket's destinations are enforced: by an nftables allowlist the
// broker alone maintains (the default; the broker refuses to start without it), or
// only by netproc's own code (a documented weaker mode, shown by `tailwarden audit`).
enum class EgressAllowlistMode { kNftables, kUnenforced };
std::string_view to_string(EgressAllowlistMode mode);

std::string_view to_string(SandboxMode mode);
std::string_view to_string(LogLevel level);

struct TunConfig {
  bool enabled = true;
  std::string name = "tailwarden0";
  std::uint32_t mtu = 1280;
};

// A user or group name from the file, with where it was written (for errors found
// when resolving it) and, after resolve_accounts(), its ids.
struct ChildAccount {
  std::string name;
  int line = 0;
  uid_t uid = 0;
  gid_t gid = 0;    // the user's primary group
  std::string key;  // the config key that named it (errors): "netproc_user" or "child_user"
};

// The children, each under its own account (docs/deploy.md, "Child accounts"): a
// compromised child cannot signal, ptrace or read /proc of another, and shares no
// per-uid limit (RLIMIT_NPROC) with it.
enum class ChildRole { kNetproc, kDataproc, kCtlproc, kExitproc };
inline constexpr std::size_t kChildRoles = 4;
std::string_view to_string(ChildRole role);
// An optional file path with the line it was written on: its directory is checked
// when the config is loaded, not parsed (parsing never touches the system).
struct ConfigPath {
  std::string path;
  int line = 0;
};
struct AdminGroup {
  std::string name;
  int line = 0;
  gid_t gid = 0;
};

// The exit node (docs/design.md#9-exit-node): every peer flow leaves through the one
// upstream proxy; nothing else is ever dialled for it.
enum class ExitMode { kProxy };
enum class ProxyKind { kSocks5, kHttpConnect };
std::string_view to_string(ProxyKind kind);

struct ExitConfig {
  ExitMode mode = ExitMode::kProxy;
  ProxyKind proxy_kind = ProxyKind::kSocks5;
  IpPort proxy;           // IPv4:port, the only destination dialled for exit flows
  std::string proxy_url;  // as written (it holds no credentials)
  std::optional<ConfigPath> credentials_file;
  IpAddr dns_resolver;  // IPv4
  int line = 0;         // where [exit] starts
};

// The credentials file: mode 0600 (no group or other bits), owned by the user loading
// it, a regular file, one line "username:password" (each 1..255 bytes of printable
// ASCII, the username without ':'), as SOCKS5 username/password auth allows.
struct ProxyCredentials {
  std::string username;
  std::string password;
};
Result<ProxyCredentials> load_proxy_credentials(const std::string& path);

struct BrokerConfig {
  std::string origin;  // the file it came from, for later messages
  std::string state_dir = "/var/lib/tailwarden";
  std::string key_file;
  std::string netmap_file;
  std::uint16_t listen_port = 0;  // 0: ephemeral
  bool enable_ipv6 = false;
  TunConfig tun;
  std::string admin_socket = "/run/tailwarden/tailwarden.sock";
  std::optional<AdminGroup> admin_group;
  ChildAccount child_user;  // the base name; its uid/gid are not used
  // Per role (index: ChildRole): from <role>_user, else "<child_user>-<role>" (filled
  // by parse_config_text); uid/gid by resolve_accounts, for the roles that run.
  std::array<ChildAccount, kChildRoles> child_accounts;
  const ChildAccount& account(ChildRole r) const {
    return child_accounts[static_cast<std::size_t>(r)];
  }
  SandboxMode sandbox_mode = SandboxMode::kStrict;
  LogLevel log_level = LogLevel::kInfo;
  bool allow_lan_endpoints = true;
  bool advertise_lan_endpoints = false;
  bool derp_dns = false;
  bool derp_insecure_for_tests = false;
  std::optional<ConfigPath> endpoints_file;
  EgressAllowlistMode egress_allowlist = EgressAllowlistMode::kNftables;
  // Control plane (ctlproc). Empty control_url: netmap file only.
  std::string control_url;
  std::string control_authority;  // "ip:port", the HTTP Host
  std::optional<IpPort> control_address;
  std::string control_key;  // "mkey:..." or empty
  std::string auth_key_file;
  std::string hostname;
  // Offer this node to the tailnet as an exit node (Hostinfo.RoutableIPs 0.0.0.0/0 and
  // ::/0; the control server's admin approves the routes).
  bool advertise_exit_node = false;
  std::optional<ExitConfig> exit;  // [exit]: absent = not an exit node
};

// Parses and validates config text without touching the system; `origin` names the
// file in errors ("<origin>:<line>: <field>: <what is wrong>").
Result<BrokerConfig> parse_config_text(std::string_view text, const std::string& origin);

// Looks up the account of each child that this config runs (netproc and dataproc;
// ctlproc with control_url; exitproc with [exit]) (getpwnam_r) and admin_group
// (getgrnam_r). An account with uid or gid 0, or two children with the same uid, are
// refused unless the sandbox mode is permissive-for-debugging.
Status resolve_accounts(BrokerConfig& config);

// The endpoints file's directory must exist (the broker creates the file, never
// directories): "<origin>:<line>: endpoints_file: directory \"/x\" does not exist".
Status check_paths(const BrokerConfig& config);

// Reads the file, parses it, resolves the accounts and checks the paths (and, with
// [exit], that the credentials file is loadable).
Result<BrokerConfig> load_config(const std::string& path);

}  // namespace tw::broker
