#include "broker/tun.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <net/route.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

namespace tw::broker {
namespace {

Error sys_error(const std::string& what) { return make_error(what + ": " + std::strerror(errno)); }

void fill_sin(sockaddr* sa, const IpAddr& ip) {
  auto* sin = reinterpret_cast<sockaddr_in*>(sa);
  std::memset(sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  std::memcpy(&sin->sin_addr, ip.raw().data(), 4);
}

IpAddr netmask(unsigned bits) {
  std::uint32_t m = bits == 0 ? 0 : ~0u << (32 - bits);
  return IpAddr::v4(static_cast<std::uint8_t>(m >> 24), static_cast<std::uint8_t>(m >> 16),
                    static_cast<std::uint8_t>(m >> 8), static_cast<std::uint8_t>(m));
}

Status route_op(int sock, unsigned long op, const std::string& ifname, const IpPrefix& p) {
  rtentry rt{};
  fill_sin(&rt.rt_dst, p.addr);
  fill_sin(&rt.rt_genmask, netmask(p.bits));
  rt.rt_flags = RTF_UP | (p.bits == 32 ? RTF_HOST : 0);
  std::string dev = ifname;
  rt.rt_dev = dev.data();
  if (::ioctl(sock, op, &rt) != 0 && !(op == SIOCADDRT && errno == EEXIST)) {
    return sys_error(std::string(op == SIOCADDRT ? "add" : "delete") + " route " + p.to_string());
  }
  return ok_status();
}

}  // namespace

Result<TunDevice> create_tun(const TunSettings& s) {
  if (s.name.size() >= IFNAMSIZ) return make_error("tun name too long: " + s.name);
  ipc::UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return sys_error("/dev/net/tun");
  ifreq ifr{};
  // Every read and write carries a virtio-net header (dataproc/offload/tun_offload.h).
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR;
  std::memcpy(ifr.ifr_name, s.name.c_str(), s.name.size());
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) return sys_error("TUNSETIFF " + s.name);
  TunDevice dev{std::move(fd), ifr.ifr_name};
  // Let the kernel hand over TCP segments of up to 64 KiB with the checksum left to
  // us (dataproc cuts them); without it reads are single packets, still with a header.
  dev.offload =
      s.offload && ::ioctl(dev.fd.get(), TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) == 0;

  ipc::UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return sys_error("socket for interface configuration");
  ifreq req{};
  std::memcpy(req.ifr_name, dev.name.c_str(), dev.name.size());
  req.ifr_mtu = static_cast<int>(s.mtu);
  if (::ioctl(sock.get(), SIOCSIFMTU, &req) != 0) return sys_error("set MTU of " + dev.name);
  for (const auto& a : s.addresses) {
    if (!a.addr.is_v4()) continue;  // IPv6 tailnet addresses: not assigned yet
    fill_sin(&req.ifr_addr, a.addr);
    if (::ioctl(sock.get(), SIOCSIFADDR, &req) != 0) return sys_error("set address " + a.to_string());
    fill_sin(&req.ifr_netmask, netmask(32));
    if (::ioctl(sock.get(), SIOCSIFNETMASK, &req) != 0) return sys_error("set netmask");
    break;  // one IPv4 address per interface through this interface
  }
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &req) != 0) return sys_error("get flags of " + dev.name);
  req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP | IFF_RUNNING);
  if (::ioctl(sock.get(), SIOCSIFFLAGS, &req) != 0) return sys_error("bring up " + dev.name);
  return dev;
}

std::optional<IpAddr> tun_ipv4(const std::vector<IpPrefix>& addresses) {
  for (const auto& a : addresses) {
    if (a.addr.is_v4()) return a.addr;
  }
  return std::nullopt;
}

Status set_tun_address(const std::string& ifname, const std::vector<IpPrefix>& addresses) {
  if (ifname.size() >= IFNAMSIZ) return make_error("tun name too long: " + ifname);
  ipc::UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return sys_error("socket for interface configuration");
  ifreq req{};
  std::memcpy(req.ifr_name, ifname.c_str(), ifname.size());
  const auto v4 = tun_ipv4(addresses);
  // 0.0.0.0 removes the interface's IPv4 address.
  fill_sin(&req.ifr_addr, v4.value_or(IpAddr::v4(0, 0, 0, 0)));
  if (::ioctl(sock.get(), SIOCSIFADDR, &req) != 0 && (v4 || errno != EADDRNOTAVAIL))
    return sys_error("set address of " + ifname);
  if (v4) {
    fill_sin(&req.ifr_netmask, netmask(32));
    if (::ioctl(sock.get(), SIOCSIFNETMASK, &req) != 0)
      return sys_error("set netmask of " + ifname);
  }
  return ok_status();
}

Status sync_tun_routes(const std::string& ifname, const std::vector<IpPrefix>& prefixes,
                       std::vector<IpPrefix>* installed) {
  ipc::UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return sys_error("socket for routes");
  const std::set<IpPrefix> want_set(prefixes.begin(), prefixes.end());
  std::vector<IpPrefix> want;
  for (const auto& p : want_set) {
    if (p.addr.is_v4() && p.bits > 0) want.push_back(p);
  }
  for (const auto& p : *installed) {
    if (want_set.count(p) == 0) {
      (void)route_op(sock.get(), SIOCDELRT, ifname, p);  // already gone is fine
    }
  }
  installed->clear();
  for (const auto& p : want) {
    if (auto st = route_op(sock.get(), SIOCADDRT, ifname, p); !st) return st;
    installed->push_back(p);
  }
  return ok_status();
}

}  // namespace tw::broker
