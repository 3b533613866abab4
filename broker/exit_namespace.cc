#include "broker/exit_namespace.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/ipv6.h>
#include <net/route.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>

#include "broker/tun.h"

namespace tw::broker {
namespace {

Error sys_error(const std::string& what) {
  return make_error("exit namespace: " + what + ": " + std::generic_category().message(errno));
}

// Returns to the saved namespace when it goes out of scope.
class NamespaceGuard {
 public:
  explicit NamespaceGuard(ipc::UniqueFd home) : home_(std::move(home)) {}
  ~NamespaceGuard() {
    if (home_ && ::setns(home_.get(), CLONE_NEWNET) != 0) {
      // Staying in the wrong namespace would put every later socket there: fatal.
      std::abort();
    }
  }
  NamespaceGuard(const NamespaceGuard&) = delete;
  NamespaceGuard& operator=(const NamespaceGuard&) = delete;

 private:
  ipc::UniqueFd home_;
};

Result<ipc::UniqueFd> own_namespace() {
  ipc::UniqueFd fd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!fd) return sys_error("open /proc/thread-self/ns/net");
  return fd;
}

Status set_flags_up(int sock, const std::string& name) {
  ifreq req{};
  std::memcpy(req.ifr_name, name.c_str(), std::min(name.size(), sizeof req.ifr_name - 1));
  if (::ioctl(sock, SIOCGIFFLAGS, &req) != 0) return sys_error("get flags of " + name);
  req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP | IFF_RUNNING);
  if (::ioctl(sock, SIOCSIFFLAGS, &req) != 0) return sys_error("bring up " + name);
  return ok_status();
}

Status add_default_route4(int sock, const std::string& dev) {
  rtentry rt{};
  auto* dst = reinterpret_cast<sockaddr_in*>(&rt.rt_dst);
  dst->sin_family = AF_INET;
  auto* mask = reinterpret_cast<sockaddr_in*>(&rt.rt_genmask);
  mask->sin_family = AF_INET;
  rt.rt_flags = RTF_UP;
  std::string d = dev;
  rt.rt_dev = d.data();
  if (::ioctl(sock, SIOCADDRT, &rt) != 0) return sys_error("IPv4 default route via " + dev);
  return ok_status();
}

// IPv6 inside the exit namespace: an address so that IPv6 packets reach the stack (to
// be refused there) and a default route back into tw-exit for the refusals.
Status configure_ipv6(const std::string& dev, int ifindex) {
  ipc::UniqueFd sock6(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock6) return sys_error("IPv6 socket for interface configuration");
  in6_ifreq ifr6{};
  if (::inet_pton(AF_INET6, kExitTunAddress6, &ifr6.ifr6_addr) != 1)
    return make_error("bad IPv6 constant");
  ifr6.ifr6_prefixlen = 128;
  ifr6.ifr6_ifindex = ifindex;
  if (::ioctl(sock6.get(), SIOCSIFADDR, &ifr6) != 0) return sys_error("set IPv6 address on " + dev);
  in6_rtmsg rt{};
  rt.rtmsg_dst_len = 0;
  rt.rtmsg_metric = 1;
  rt.rtmsg_flags = RTF_UP;
  rt.rtmsg_ifindex = ifindex;
  if (::ioctl(sock6.get(), SIOCADDRT, &rt) != 0) return sys_error("IPv6 default route via " + dev);
  return ok_status();
}

std::string nft_script(const ExitPorts& p) {
  const std::string tun = kExitTunName;
  std::ostringstream s;
  s << "table inet " << kExitTable << " {\n"
    << "  counter refused_ipv6 { }\n"
    << "  counter refused_icmp { }\n"
    << "  counter dropped_other { }\n"
    << "  chain refuse {\n"
    << "    type filter hook prerouting priority -150; policy accept;\n"
    << "    iifname != \"" << tun << "\" accept\n"
    << "    meta nfproto ipv6 meta l4proto tcp counter name refused_ipv6 reject with tcp reset\n"
    << "    meta nfproto ipv6 counter name refused_ipv6 reject with icmpv6 type admin-prohibited\n"
    << "    meta l4proto { tcp, udp } accept\n"
    << "    icmp type echo-request counter name refused_icmp reject with icmp type "
       "host-unreachable\n"
    << "    counter name dropped_other drop\n"
    << "  }\n"
    << "  chain to_listeners {\n"
    << "    type nat hook prerouting priority dstnat; policy accept;\n"
    << "    iifname \"" << tun << "\" meta nfproto ipv4 meta l4proto tcp redirect to :" << p.tcp
    << "\n"
    << "    iifname \"" << tun << "\" meta nfproto ipv4 udp dport 53 redirect to :" << p.dns << "\n"
    << "    iifname \"" << tun << "\" meta nfproto ipv4 meta l4proto udp redirect to :" << p.udp
    << "\n"
    << "  }\n"
    << "  chain local_in {\n"
    << "    type filter hook input priority filter; policy drop;\n"
    << "    iifname \"lo\" accept\n"
    << "    ct state established,related accept\n"
    << "    ct status dnat meta l4proto tcp th dport " << p.tcp << " accept\n"
    << "    ct status dnat meta l4proto udp th dport { " << p.dns << ", " << p.udp << " } accept\n"
    << "  }\n"
    << "  chain routed {\n"
    << "    type filter hook forward priority filter; policy drop;\n"
    << "  }\n"
    << "  chain local_out {\n"
    << "    type filter hook output priority filter; policy accept;\n"
    << "    oifname != { \"lo\", \"" << tun << "\" } drop\n"
    << "  }\n"
    << "}\n";
  return s.str();
}

// Runs an nft script (or command) in the current namespace: the library's netlink
// socket is opened per context, so a context made here talks to this namespace.
Result<std::string> run_nft(const std::string& script, bool json) {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx == nullptr) return make_error("exit namespace: nft_ctx_new failed");
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  if (json) nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
  const int rc = nft_run_cmd_from_buffer(ctx, script.c_str());
  std::string out = nft_ctx_get_output_buffer(ctx);
  std::string err = nft_ctx_get_error_buffer(ctx);
  nft_ctx_free(ctx);
  if (rc != 0) return make_error("exit namespace: nftables: " + err);
  return out;
}

Result<ipc::UniqueFd> bound_socket(int type, std::uint16_t port, bool listen_too) {
  ipc::UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return sys_error("socket");
  const int one = 1;
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
    return sys_error("bind 0.0.0.0:" + std::to_string(port));
  }
  if (listen_too && ::listen(fd.get(), exitproc::kExitTcpBacklog) != 0)
    return sys_error("listen on :" + std::to_string(port));
  return fd;
}

Result<ExitNamespace> build_inside(unsigned mtu, const ExitPorts& ports) {
  ExitNamespace ns;
  auto self = own_namespace();
  if (!self) return make_error(self.error());
  ns.netns = std::move(*self);

  ipc::UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return sys_error("socket for interface configuration");
  if (auto st = set_flags_up(sock.get(), "lo"); !st) return make_error(st.error());

  TunSettings ts;
  ts.name = kExitTunName;
  ts.mtu = mtu;
  ts.addresses = {*IpPrefix::parse(std::string(kExitTunAddress4) + "/32")};
  auto tun = create_tun(ts);
  if (!tun) return make_error("exit namespace: " + tun.error());
  ns.tun = std::move(tun->fd);
  ns.tun_name = tun->name;
  if (auto st = add_default_route4(sock.get(), ns.tun_name); !st) return make_error(st.error());
  ifreq idx{};
  std::memcpy(idx.ifr_name, ns.tun_name.c_str(),
              std::min(ns.tun_name.size(), sizeof idx.ifr_name - 1));
  if (::ioctl(sock.get(), SIOCGIFINDEX, &idx) != 0) return sys_error("index of " + ns.tun_name);
  if (auto st = configure_ipv6(ns.tun_name, idx.ifr_ifindex); !st) return make_error(st.error());
  if (auto r = run_nft(nft_script(ports), false); !r) return make_error(r.error());

  auto tcp = bound_socket(SOCK_STREAM, ports.tcp, true);
  if (!tcp) return make_error(tcp.error());
  auto dns = bound_socket(SOCK_DGRAM, ports.dns, false);
  if (!dns) return make_error(dns.error());
  auto udp = bound_socket(SOCK_DGRAM, ports.udp, false);
  if (!udp) return make_error(udp.error());
  ns.tcp_listener = std::move(*tcp);
  ns.dns_socket = std::move(*dns);
  ns.udp_socket = std::move(*udp);
  return ns;
}

std::vector<std::string> split_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.erase(0, 1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
  return s;
}

}  // namespace

Result<ExitNamespace> create_exit_namespace(unsigned mtu, const ExitPorts& ports) {
  auto home = own_namespace();
  if (!home) return make_error(home.error());
  NamespaceGuard back(std::move(*home));
  if (::unshare(CLONE_NEWNET) != 0) return sys_error("unshare(CLONE_NEWNET)");
  return build_inside(mtu, ports);
}

Status in_namespace(int netns, const std::function<void()>& fn) {
  auto home = own_namespace();
  if (!home) return make_error(home.error());
  NamespaceGuard back(std::move(*home));
  if (::setns(netns, CLONE_NEWNET) != 0) return sys_error("setns into the exit namespace");
  fn();
  return ok_status();
}

ExitIsolation inspect_exit_namespace(int netns) {
  ExitIsolation iso;
  auto st = in_namespace(netns, [&] {
    // /proc/thread-self/net is this thread's namespace (the exit one, right now).
    const auto dev = split_lines("/proc/thread-self/net/dev");
    for (std::size_t i = 2; i < dev.size(); ++i) {
      const auto colon = dev[i].find(':');
      if (colon == std::string::npos) continue;
      iso.interfaces.push_back(trim(dev[i].substr(0, colon)));
    }
    const auto r4 = split_lines("/proc/thread-self/net/route");
    for (std::size_t i = 1; i < r4.size(); ++i) {
      std::istringstream f(r4[i]);
      std::string iface, dst, gw, flags, refcnt, use, metric, mask;
      if (!(f >> iface >> dst >> gw >> flags >> refcnt >> use >> metric >> mask)) continue;
      const auto d = static_cast<std::uint32_t>(std::stoul(dst, nullptr, 16));
      const auto m = static_cast<std::uint32_t>(std::stoul(mask, nullptr, 16));
      in_addr a{d};
      char buf[INET_ADDRSTRLEN] = {};
      ::inet_ntop(AF_INET, &a, buf, sizeof buf);
      iso.routes.push_back(std::string(buf) + "/" + std::to_string(__builtin_popcount(m)) +
                           " dev " + iface);
      if (iface != kExitTunName)
        iso.problems.push_back("IPv4 route " + iso.routes.back() + " not via " + kExitTunName);
      if (gw != "00000000")
        iso.problems.push_back("IPv4 route " + iso.routes.back() + " has a gateway");
    }
    // ipv6_route: dst dstlen src srclen nexthop metric refcnt use flags dev. Local
    // (RTF_LOCAL) and multicast table entries on lo and tw-exit are the stack's own.
    for (const auto& line : split_lines("/proc/thread-self/net/ipv6_route")) {
      std::istringstream f(line);
      std::string dst, dstlen, src, srclen, nh, metric, refcnt, use, flags, iface;
      if (!(f >> dst >> dstlen >> src >> srclen >> nh >> metric >> refcnt >> use >> flags >> iface))
        continue;
      const auto fl = flags;
      const unsigned bits = static_cast<unsigned>(std::stoul(dstlen, nullptr, 16));
      (void)fl;
      if (iface == "lo") continue;  // loopback and the kernel's unreachable entry: nowhere out
      in6_addr a6{};
      for (std::size_t i = 0; i < 16 && 2 * i + 1 < dst.size(); ++i) {
        a6.s6_addr[i] = static_cast<std::uint8_t>(std::stoul(dst.substr(2 * i, 2), nullptr, 16));
      }
      char buf6[INET6_ADDRSTRLEN] = {};
      ::inet_ntop(AF_INET6, &a6, buf6, sizeof buf6);
      iso.routes.push_back(std::string(buf6) + "/" + std::to_string(bits) + " dev " + iface);
      if (iface != kExitTunName && iface != "lo") {
        iso.problems.push_back("IPv6 route " + iso.routes.back() + " not via " + kExitTunName);
      }
      if (nh != std::string(32, '0'))
        iso.problems.push_back("IPv6 route " + iso.routes.back() + " has a gateway");
    }
    auto t = run_nft(std::string("list table inet ") + kExitTable, false);
    iso.nft_table_present = t.ok();
  });
  if (!st) iso.problems.push_back(st.error());
  for (const auto& i : iso.interfaces) {
    if (i != "lo" && i != kExitTunName) iso.problems.push_back("unexpected interface " + i);
  }
  if (!iso.nft_table_present)
    iso.problems.push_back(std::string("nft table inet ") + kExitTable + " missing");
  return iso;
}

Result<ExitKernelCounters> read_exit_counters(int netns) {
  Result<std::string> out = make_error("not run");
  auto st = in_namespace(
      netns, [&] { out = run_nft(std::string("list counters table inet ") + kExitTable, true); });
  if (!st) return make_error(st.error());
  if (!out) return make_error(out.error());
  ExitKernelCounters c;
  auto j = nlohmann::json::parse(*out, nullptr, false);
  if (j.is_discarded() || !j.contains("nftables") || !j["nftables"].is_array()) {
    return make_error("exit namespace: unreadable nft counters");
  }
  for (const auto& item : j["nftables"]) {
    if (!item.is_object() || !item.contains("counter")) continue;
    const auto& k = item["counter"];
    if (!k.is_object() || !k.contains("name") || !k.contains("packets")) continue;
    if (!k["name"].is_string() || !k["packets"].is_number_unsigned()) continue;
    const std::string name = k["name"];
    const auto v = k["packets"].get<std::uint64_t>();
    if (name == "refused_ipv6") c.refused_ipv6 = v;
    if (name == "refused_icmp") c.refused_icmp = v;
    if (name == "dropped_other") c.dropped_other = v;
  }
  return c;
}

}  // namespace tw::broker
