#include "broker/egress_allowlist.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <nftables/libnftables.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "ipc/unique_fd.h"

namespace tw::broker {

namespace {

constexpr const char* kTablePrefix = "tailwarden_";

std::string key_text(const AllowElement& e) {
  return e.dst.ip.to_string() + " . " + std::to_string(e.dst.port) + " . " + e.src.to_string() +
         " . " + std::to_string(e.oif);
}

std::string element_text(const AllowElement& e) {
  std::string s = key_text(e);
  if (e.lifetime)
    s += " timeout " + std::to_string(std::max<std::int64_t>(1, e.lifetime->count())) + "s";
  return s;
}

// The outgoing interface of the kernel's route to `dst` (RTM_GETROUTE, as
// `ip route get` asks it: an output lookup as the broker, with no source or mark,
// as for a datagram of the unbound underlay socket). nullopt on any error or a
// reply without RTA_OIF.
std::optional<std::uint32_t> route_oif(const IpAddr& dst) {
  ipc::UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return std::nullopt;
  const bool v6 = dst.is_v6();
  const auto& bytes = dst.raw();  // 4 bytes at the front for IPv4
  const std::size_t alen = v6 ? 16 : 4;
  struct {
    nlmsghdr h;
    rtmsg r;
    std::array<char, RTA_SPACE(16)> attrs;
  } req{};
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg)) + RTA_SPACE(alen);
  req.h.nlmsg_type = RTM_GETROUTE;
  req.h.nlmsg_flags = NLM_F_REQUEST;
  req.h.nlmsg_seq = 1;
  req.r.rtm_family = static_cast<unsigned char>(v6 ? AF_INET6 : AF_INET);
  req.r.rtm_dst_len = static_cast<unsigned char>(alen * 8);
  auto* rta = reinterpret_cast<rtattr*>(req.attrs.data());
  rta->rta_type = RTA_DST;
  rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(alen));
  std::memcpy(RTA_DATA(rta), bytes.data(), alen);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd.get(), &req, req.h.nlmsg_len, 0, reinterpret_cast<const sockaddr*>(&kernel),
               sizeof kernel) != static_cast<ssize_t>(req.h.nlmsg_len))
    return std::nullopt;
  alignas(nlmsghdr) std::array<char, 4096> buf{};
  const ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
  if (n <= 0) return std::nullopt;
  int len = static_cast<int>(n);
  // NLMSG_OK compares the unsigned nlmsg_len with the int len (clang: -Wsign-compare).
  const auto fits = [](const nlmsghdr* h, int left) {
    return left >= static_cast<int>(sizeof(nlmsghdr)) && h->nlmsg_len >= sizeof(nlmsghdr) &&
           h->nlmsg_len <= static_cast<unsigned>(left);
  };
  for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); fits(h, len); h = NLMSG_NEXT(h, len)) {
    if (h->nlmsg_seq != 1 || h->nlmsg_type != RTM_NEWROUTE) return std::nullopt;  // NLMSG_ERROR too
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return std::nullopt;
    const auto* rt = static_cast<const rtmsg*>(NLMSG_DATA(h));
    if (rt->rtm_type != RTN_UNICAST) return std::nullopt;
    int alen_left = static_cast<int>(RTM_PAYLOAD(h));
    for (auto* a = RTM_RTA(rt); RTA_OK(a, alen_left); a = RTA_NEXT(a, alen_left)) {
      if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) == sizeof(std::uint32_t)) {
        std::uint32_t oif = 0;
        std::memcpy(&oif, RTA_DATA(a), sizeof oif);
        if (oif == 0) return std::nullopt;
        return oif;
      }
    }
    return std::nullopt;
  }
  return std::nullopt;
}

// "add element inet T allow4 { a, b }" for the elements of one family; empty if none.
std::string element_command(const char* verb, const std::string& table,
                            std::span<const AllowElement> elements, bool v6, bool with_lifetime) {
  std::string list;
  for (const auto& e : elements) {
    if (e.dst.ip.is_v6() != v6 || e.src.is_v6() != v6) continue;
    if (!list.empty()) list += ", ";
    list += with_lifetime ? element_text(e) : key_text(e);
  }
  if (list.empty()) return "";
  return std::string(verb) + " element inet " + table + (v6 ? " allow6" : " allow4") + " { " +
         list + " }\n";
}

}  // namespace

bool never_an_underlay_destination(const IpAddr& ip, bool enable_ipv6) {
  if (!ip.valid() || ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() ||
      ip.is_broadcast())
    return true;
  return ip.is_v6() && !enable_ipv6;
}

bool is_pingable_for_broker(const IpPort& ep, bool enable_ipv6) {
  if (ep.port == 0 || never_an_underlay_destination(ep.ip, enable_ipv6)) return false;
  return !ep.ip.is_link_local_unicast() && !ep.ip.is_private();
}

std::optional<RouteChoice> route_for(const IpPort& dst) {
  const int family = dst.ip.is_v6() ? AF_INET6 : AF_INET;
  ipc::UniqueFd fd(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return std::nullopt;
  sockaddr_storage sa{};
  const socklen_t len = dst.to_sockaddr(&sa, family == AF_INET6);
  // A directed broadcast fails here (EACCES without SO_BROADCAST): never approved.
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), len) != 0) return std::nullopt;
  sockaddr_storage local{};
  socklen_t local_len = sizeof local;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &local_len) != 0)
    return std::nullopt;
  auto src = IpPort::from_sockaddr(reinterpret_cast<const sockaddr*>(&local), local_len);
  if (!src || !src->ip.valid() || src->ip.is_unspecified()) return std::nullopt;
  // One of the host's own addresses: the route picks the destination itself, or a
  // loopback source (127.0.0.53 and the like).
  if (src->ip == dst.ip || src->ip.is_loopback()) return std::nullopt;
  auto oif = route_oif(dst.ip);
  if (!oif) return std::nullopt;
  return RouteChoice{src->ip, *oif};
}

std::string nft_rebuild_script(const std::string& table, std::uint16_t port,
                               std::span<const AllowElement> elements) {
  const std::string t = "inet " + table;
  std::string s;
  s += "add table " + t + "\n";
  s += "add set " + t +
       " allow4 { type ipv4_addr . inet_service . ipv4_addr . iface_index; flags timeout; }\n";
  s += "add set " + t +
       " allow6 { type ipv6_addr . inet_service . ipv6_addr . iface_index; flags timeout; }\n";
  s += "add counter " + t + " dropped\n";
  s += "add chain " + t +
       " underlay_out { type filter hook output priority filter; policy accept; }\n";
  s += "flush chain " + t + " underlay_out\n";
  s += "flush set " + t + " allow4\n";
  s += "flush set " + t + " allow6\n";
  if (port != 0) {
    const std::string p = std::to_string(port);
    s += "add rule " + t + " underlay_out udp sport " + p +
         " ip daddr . udp dport . ip saddr . meta oif @allow4 accept\n";
    s += "add rule " + t + " underlay_out udp sport " + p +
         " ip6 daddr . udp dport . ip6 saddr . meta oif @allow6 accept\n";
    s += "add rule " + t + " underlay_out udp sport " + p + " counter name dropped drop\n";
  }
  s += element_command("add", table, elements, false, true);
  s += element_command("add", table, elements, true, true);
  return s;
}

std::string nft_add_script(const std::string& table, std::span<const AllowElement> elements) {
  // "add" leaves an existing element's timeout alone: add (so that the delete finds
  // it), delete, add again with the full lifetime; one transaction.
  std::string s;
  for (bool v6 : {false, true}) {
    const std::string add = element_command("add", table, elements, v6, true);
    if (add.empty()) continue;
    s += add;
    s += element_command("delete", table, elements, v6, false);
    s += add;
  }
  return s;
}

TunRoutePlan plan_tun_routes(std::span<const IpPrefix> prefixes,
                             std::span<const IpAddr> underlay_destinations) {
  TunRoutePlan plan;
  std::set<IpPrefix> seen;
  for (const auto& p : prefixes) {
    if (!p.addr.is_v4() || p.bits == 0 || !seen.insert(p).second) continue;
    const bool covers = std::any_of(underlay_destinations.begin(), underlay_destinations.end(),
                                    [&p](const IpAddr& d) { return p.contains(d); });
    (covers ? plan.skipped : plan.routes).push_back(p);
  }
  return plan;
}

// ---- CandidateRegistry ----

void CandidateRegistry::set_peers(const std::set<std::uint32_t>& peer_ids) {
  peers_ = peer_ids;
  for (auto it = learned_.begin(); it != learned_.end();) {
    it = peers_.count(it->first) != 0 ? std::next(it) : learned_.erase(it);
  }
}

void CandidateRegistry::prune(Clock::time_point now) {
  for (auto& [peer, addrs] : learned_) {
    std::erase_if(addrs, [now](const auto& kv) { return kv.second <= now; });
  }
}

CandidateRegistry::Verdict CandidateRegistry::admit(std::uint32_t peer_id, const IpPort& addr,
                                                    bool enable_ipv6, Clock::time_point now) {
  if (!bucket_.take(now)) return Verdict::kRateLimited;
  if (peers_.count(peer_id) == 0) return Verdict::kUnknownPeer;
  if (!is_pingable_for_broker(addr, enable_ipv6)) return Verdict::kNotPingable;
  prune(now);
  auto& addrs = learned_[peer_id];
  auto it = addrs.find(addr);
  if (it == addrs.end() && addrs.size() >= limits_.per_peer) return Verdict::kPeerFull;
  addrs[addr] = now + limits_.lifetime;
  return Verdict::kAccepted;
}

std::vector<std::pair<IpPort, std::chrono::seconds>> CandidateRegistry::live(
    Clock::time_point now) {
  prune(now);
  std::vector<std::pair<IpPort, std::chrono::seconds>> out;
  for (const auto& [peer, addrs] : learned_) {
    for (const auto& [a, expiry] : addrs) {
      auto left = std::chrono::ceil<std::chrono::seconds>(expiry - now);
      out.emplace_back(a, std::max(left, std::chrono::seconds(1)));
    }
  }
  return out;
}

std::string_view to_string(CandidateRegistry::Verdict v) {
  switch (v) {
    case CandidateRegistry::Verdict::kAccepted:
      return "accepted";
    case CandidateRegistry::Verdict::kUnknownPeer:
      return "not a disco peer of the netmap";
    case CandidateRegistry::Verdict::kNotPingable:
      return "not a pingable address";
    case CandidateRegistry::Verdict::kPeerFull:
      return "32 learned candidates already";
    case CandidateRegistry::Verdict::kRateLimited:
      break;
  }
  return "rate limited";
}

// ---- NftAllowlist ----

Result<std::unique_ptr<NftAllowlist>> NftAllowlist::install(
    std::uint16_t port, std::span<const AllowElement> elements) {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx == nullptr) return make_error("nftables: cannot create a context");
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  std::unique_ptr<NftAllowlist> self(
      new NftAllowlist(ctx, kTablePrefix + std::to_string(::getpid())));
  // Tables of brokers that are gone would keep filtering a port someone may reuse.
  nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
  if (nft_run_cmd_from_buffer(ctx, "list tables inet") == 0) {
    auto j = nlohmann::json::parse(nft_ctx_get_output_buffer(ctx), nullptr, false);
    if (j.is_object() && j.contains("nftables") && j["nftables"].is_array()) {
      for (const auto& item : j["nftables"]) {
        if (!item.is_object() || !item.contains("table") || !item["table"].is_object()) continue;
        const auto& name = item["table"].value("name", std::string());
        if (name.rfind(kTablePrefix, 0) != 0) continue;
        const std::string digits = name.substr(std::string(kTablePrefix).size());
        if (digits.empty() || digits.size() > 9 ||
            !std::all_of(digits.begin(), digits.end(), ::isdigit))
          continue;
        const pid_t pid = static_cast<pid_t>(std::stol(digits));
        if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
        spdlog::info("egress allowlist: removing table {} of a broker that is gone", name);
        (void)self->run("delete table inet " + name + "\n");
      }
    }
  }
  nft_ctx_output_set_flags(ctx, 0);
  if (auto st = self->rebuild(port, elements); !st) return make_error(st.error());
  return self;
}

NftAllowlist::~NftAllowlist() {
  (void)run("delete table inet " + table_ + "\n");
  nft_ctx_free(ctx_);
}

Status NftAllowlist::run(const std::string& script) {
  if (script.empty()) return ok_status();
  const int rc = nft_run_cmd_from_buffer(ctx_, script.c_str());
  std::string err = nft_ctx_get_error_buffer(ctx_);
  if (rc != 0) {
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    return make_error("nftables: " + (err.empty() ? std::string("command failed") : err));
  }
  return ok_status();
}

Status NftAllowlist::rebuild(std::uint16_t port, std::span<const AllowElement> elements) {
  return run(nft_rebuild_script(table_, port, elements));
}

Status NftAllowlist::add(std::span<const AllowElement> elements) {
  return run(nft_add_script(table_, elements));
}

std::uint64_t NftAllowlist::dropped_packets() {
  nft_ctx_output_set_flags(ctx_, NFT_CTX_OUTPUT_JSON);
  const int rc =
      nft_run_cmd_from_buffer(ctx_, ("list counter inet " + table_ + " dropped").c_str());
  nft_ctx_output_set_flags(ctx_, 0);
  if (rc != 0) return 0;
  auto j = nlohmann::json::parse(nft_ctx_get_output_buffer(ctx_), nullptr, false);
  if (!j.is_object() || !j.contains("nftables") || !j["nftables"].is_array()) return 0;
  for (const auto& item : j["nftables"]) {
    if (!item.is_object() || !item.contains("counter") || !item["counter"].is_object()) continue;
    const auto& c = item["counter"];
    if (c.contains("packets") && c["packets"].is_number_unsigned())
      return c["packets"].get<std::uint64_t>();
  }
  return 0;
}

}  // namespace tw::broker
