// The [exit] table of tailwardend's config (docs/deploy.md, "Privacy-proxy exit
// node") and its credentials file, which is loaded at start-up to check it.
#include <algorithm>
#include <string>

#include "broker/config.h"
#include "broker/config_fields.h"
#include "common/secret_file.h"

namespace tw::broker {
namespace config_detail {
namespace {

// ---- [exit] ----

ExitConfig& exit_of(BrokerConfig& c) {
  if (!c.exit) c.exit.emplace();
  return *c.exit;
}

Status set_exit_mode(const FieldRef& f, BrokerConfig& c) {
  auto v = get_choice(f, {"proxy", "host"});
  if (!v) return make_error(v.error());
  if (*v == "host") {
    // Never a fallback: the classic exit (the broker dialling destinations from the
    // host) would have to be chosen here, and it is not built.
    return f.error(
        "\"host\" (the broker dials destinations from this host) is not built yet; "
        "use \"proxy\" with an upstream proxy");
  }
  exit_of(c).mode = ExitMode::kProxy;
  return ok_status();
}

// socks5://IPv4:port or http://IPv4:port, nothing else: the broker dials exactly that
// address, so there is no name to resolve, and credentials live in their own file.
Status set_exit_proxy(const FieldRef& f, BrokerConfig& c) {
  auto v = get_text(f, "a URL like \"socks5://198.18.5.2:1080\" or \"http://198.18.5.2:3128\"");
  if (!v) return make_error(v.error());
  const std::string& url = *v;
  ProxyKind kind;
  std::string rest;
  if (url.rfind("socks5://", 0) == 0) {
    kind = ProxyKind::kSocks5;
    rest = url.substr(9);
  } else if (url.rfind("http://", 0) == 0) {
    kind = ProxyKind::kHttpConnect;
    rest = url.substr(7);
  } else {
    return f.error("expected a socks5:// or http:// URL, got " + quoted_excerpt(url));
  }
  if (rest.find('@') != std::string::npos) {
    return f.error(
        "credentials do not belong in the URL (it shows in status); put "
        "\"username:password\" in exit.credentials_file");
  }
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find(':') == std::string::npos) {
    return f.error("expected an explicit port (<scheme>://<IPv4>:<port>), got " +
                   quoted_excerpt(url));
  }
  auto ep = IpPort::parse(rest);
  if (!ep || !ep->ip.is_v4() || ep->port == 0 || ep->ip.is_unspecified() || ep->ip.is_multicast()) {
    return f.error(
        "expected <scheme>://<IPv4>:<port 1..65535> (host names are not resolved), got " +
        quoted_excerpt(url));
  }
  auto& e = exit_of(c);
  e.proxy_kind = kind;
  e.proxy = *ep;
  e.proxy_url = (kind == ProxyKind::kSocks5 ? "socks5://" : "http://") + ep->to_string();
  return ok_status();
}

Status set_exit_credentials_file(const FieldRef& f, BrokerConfig& c) {
  auto v = get_abs_path(f);
  if (!v) return make_error(v.error());
  exit_of(c).credentials_file = ConfigPath{*v, static_cast<int>(f.node.source().begin.line)};
  return ok_status();
}

Status set_exit_dns_resolver(const FieldRef& f, BrokerConfig& c) {
  auto v = get_text(f, "an IPv4 address like \"198.18.9.53\"");
  if (!v) return make_error(v.error());
  auto ip = IpAddr::parse(*v);
  if (!ip || !ip->is_v4() || ip->is_unspecified() || ip->is_multicast()) {
    return f.error("expected an IPv4 unicast address (port 53 is implied), got " +
                   quoted_excerpt(*v));
  }
  exit_of(c).dns_resolver = *ip;
  return ok_status();
}

constexpr FieldSpec kExitFields[] = {
    {"mode", set_exit_mode, true},
    {"proxy", set_exit_proxy, true},
    {"credentials_file", set_exit_credentials_file, false},
    {"dns_resolver", set_exit_dns_resolver, true},
};

}  // namespace

Status set_exit(const FieldRef& f, BrokerConfig& c) {
  const auto* t = f.node.as_table();
  if (t == nullptr) return f.error("expected a table ([exit]), got " + describe(f.node));
  exit_of(c).line = static_cast<int>(f.node.source().begin.line);
  return apply_table(*t, f.origin, "exit.", kExitFields, c);
}

Status check_exit_credentials(const BrokerConfig& c) {
  if (!c.exit || !c.exit->credentials_file) return ok_status();
  const auto& cf = *c.exit->credentials_file;
  auto creds = load_proxy_credentials(cf.path);
  if (!creds) {
    return make_error(c.origin + ":" + std::to_string(cf.line) +
                      ": exit.credentials_file: " + creds.error());
  }
  return ok_status();
}

}  // namespace config_detail

std::string_view to_string(ProxyKind kind) {
  return kind == ProxyKind::kSocks5 ? "socks5" : "http-connect";
}

Result<ProxyCredentials> load_proxy_credentials(const std::string& path) {
  auto read =
      read_owner_only_file(path, 1024, "read the proxy credentials",
                           "larger than 1024 bytes; expected one line \"username:password\"");
  if (!read) return make_error(read.error());
  std::string& text = *read;  // wiped below, in place
  // Never echo the content: it is a secret.
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  ProxyCredentials creds;
  const auto colon = text.find(':');
  std::string problem;
  if (text.find('\n') != std::string::npos) {
    problem = "more than one line; expected one line \"username:password\"";
  } else if (colon == std::string::npos) {
    problem = "no ':'; expected one line \"username:password\"";
  } else {
    creds.username = text.substr(0, colon);
    creds.password = text.substr(colon + 1);
    auto printable = [](const std::string& s) {
      return std::all_of(s.begin(), s.end(),
                         [](unsigned char ch) { return ch >= 0x20 && ch < 0x7f; });
    };
    if (creds.username.empty() || creds.username.size() > 255) {
      problem = "the username must be 1..255 bytes";
    } else if (creds.password.empty() || creds.password.size() > 255) {
      problem = "the password must be 1..255 bytes";
    } else if (!printable(creds.username) || !printable(creds.password)) {
      problem = "username and password must be printable ASCII";
    }
  }
  std::fill(text.begin(), text.end(), '\0');
  if (!problem.empty()) {
    std::fill(creds.password.begin(), creds.password.end(), '\0');
    return make_error(path + ": " + problem);
  }
  return creds;
}

}  // namespace tw::broker
