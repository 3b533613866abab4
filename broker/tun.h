// The TUN device: the broker creates and configures it (it holds CAP_NET_ADMIN) and
// passes the fd to dataproc, which only reads and writes packets.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/ipaddr.h"
#include "common/result.h"
#include "ipc/unique_fd.h"

namespace tw::broker {

struct TunSettings {
  std::string name = "tailwarden0";
  unsigned mtu = 1280;
  std::vector<IpPrefix> addresses;  // our tailnet addresses (IPv4 ones are assigned)
  bool offload = true;              // ask for TSO and checksum offload (TUNSETOFFLOAD)
};

struct TunDevice {
  ipc::UniqueFd fd;
  std::string name;  // as the kernel named it
  bool offload = false;  // the kernel took TUNSETOFFLOAD (TSO4/TSO6, checksum)
};

// Opens /dev/net/tun (IFF_TUN | IFF_NO_PI | IFF_VNET_HDR), turns on TSO and checksum
// offload where the kernel has them, assigns the IPv4 addresses as /32,
// sets the MTU and brings the link up.
Result<TunDevice> create_tun(const TunSettings& settings);

// Gives the device the first IPv4 address of `addresses` (as /32), replacing the one
// it has, or removes its address when there is none. IPv6 addresses are not assigned
// (as create_tun).
Status set_tun_address(const std::string& ifname, const std::vector<IpPrefix>& addresses);

// The IPv4 address create_tun/set_tun_address assign for `addresses` (nullopt: none).
std::optional<IpAddr> tun_ipv4(const std::vector<IpPrefix>& addresses);

// Makes the kernel route exactly `prefixes` (IPv4, already planned by
// plan_tun_routes: de-duplicated, no /0, none covering an underlay destination)
// through the device: adds the missing routes and removes the ones we added earlier
// that are gone.
Status sync_tun_routes(const std::string& ifname, const std::vector<IpPrefix>& prefixes,
                       std::vector<IpPrefix>* installed);

}  // namespace tw::broker
