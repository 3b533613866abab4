#include "common/packet_filter.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace tw {
namespace {

using nlohmann::json;

constexpr std::uint8_t kIcmp4 = 1;
constexpr std::uint8_t kTcp = 6;
constexpr std::uint8_t kUdp = 17;
constexpr std::uint8_t kIpv6Fragment = 44;
constexpr std::uint8_t kIcmp6 = 58;
constexpr std::uint8_t kTsmp = 99;  // Tailscale's own in-tunnel messages
constexpr std::uint8_t kSctp = 132;

constexpr auto kFlowIdle = std::chrono::minutes(2);

Error fail(const std::string& path, const std::string& why) {
  return make_error(path + ": " + why);
}

using U128 = unsigned __int128;

U128 to_u128(const IpAddr& a) {
  U128 v = 0;
  const auto b = a.to16();
  for (auto x : b) v = (v << 8) | x;
  return v;
}

IpAddr from_u128(U128 v, bool v4) {
  std::uint8_t b[16];
  for (int i = 15; i >= 0; --i) {
    b[i] = static_cast<std::uint8_t>(v & 0xff);
    v >>= 8;
  }
  if (v4) return IpAddr::v4(b[12], b[13], b[14], b[15]);
  return IpAddr::from16(b);
}

// The smallest list of prefixes covering [lo, hi] (same family).
Status range_prefixes(const IpAddr& lo, const IpAddr& hi, std::vector<IpPrefix>& out,
                      std::size_t budget) {
  const bool v4 = lo.is_v4();
  const int width = v4 ? 32 : 128;
  U128 a = to_u128(lo);
  const U128 b = to_u128(hi);
  for (;;) {
    // The largest aligned block at `a` that stays inside [a, b]; b >= a throughout.
    int host = 0;
    while (host < width) {
      const int h = host + 1;
      const U128 mask = h >= 128 ? ~U128{0} : (U128{1} << h) - 1;
      if ((a & mask) != 0 || b - a < mask) break;
      host = h;
    }
    if (out.size() >= budget) return make_error("range covers too many prefixes");
    const IpAddr start = from_u128(a, v4);
    if (start.is_v4() != v4) return make_error("range crosses the IPv4-mapped addresses");
    out.push_back(IpPrefix{start, static_cast<std::uint8_t>(width - host)});
    const U128 block = host >= 128 ? ~U128{0} : (U128{1} << host) - 1;
    if (b - a <= block) break;
    a += block + 1;
  }
  return ok_status();
}

// One SrcIPs / DstPorts.IP entry. An empty result with no error means "skip".
Status parse_ip_set(const std::string& s, std::vector<IpPrefix>& out, std::size_t budget) {
  if (s == "*") {
    out.push_back(*IpPrefix::parse("0.0.0.0/0"));
    out.push_back(*IpPrefix::parse("::/0"));
    return ok_status();
  }
  if (s.rfind("cap:", 0) == 0) return ok_status();  // a capability, not addresses
  if (s.find('/') != std::string::npos) {
    auto p = IpPrefix::parse(s);
    if (!p) return make_error("not a prefix (or host bits set): \"" + s.substr(0, 64) + "\"");
    out.push_back(*p);
    return ok_status();
  }
  if (std::count(s.begin(), s.end(), '-') == 1) {
    const auto dash = s.find('-');
    auto lo = IpAddr::parse(s.substr(0, dash));
    auto hi = IpAddr::parse(s.substr(dash + 1));
    if (!lo || !hi || lo->family() != hi->family() || to_u128(*hi) < to_u128(*lo)) {
      return make_error("not an address range: \"" + s.substr(0, 64) + "\"");
    }
    return range_prefixes(*lo, *hi, out, budget);
  }
  auto a = IpAddr::parse(s);
  if (!a) return make_error("not an address: \"" + s.substr(0, 64) + "\"");
  out.push_back(IpPrefix{*a, static_cast<std::uint8_t>(a->is_v4() ? 32 : 128)});
  return ok_status();
}

bool present(const json& o, const char* k) {
  auto it = o.find(k);
  if (it == o.end() || it->is_null()) return false;
  return !(it->is_array() && it->empty());
}

Result<std::uint16_t> port_field(const json& ports, const std::string& path, const char* k) {
  auto it = ports.find(k);
  if (it == ports.end() || it->is_null()) return std::uint16_t{0};
  if (!it->is_number_integer()) return fail(path + "." + k, "expected an integer");
  const auto v = it->get<std::int64_t>();
  if (it->is_number_unsigned() ? it->get<std::uint64_t>() > 65535 : (v < 0 || v > 65535))
    return fail(path + "." + k, "not a port number");
  return static_cast<std::uint16_t>(v);
}

bool in_list(const std::vector<IpPrefix>& l, const IpAddr& a) {
  for (const auto& p : l) {
    if (p.contains(a)) return true;
  }
  return false;
}

// What the filter needs of an IP packet.
struct Parsed {
  bool fragment = false;  // a non-first fragment
  std::uint8_t proto = 0;
  IpAddr src, dst;
  std::uint16_t src_port = 0, dst_port = 0;
  bool tcp_syn = false;  // SYN without ACK
  bool icmp_reply_or_error = false;
};

std::optional<Parsed> parse_packet(ByteView p) {
  Parsed q;
  if (p.empty()) return std::nullopt;
  std::size_t l4 = 0;
  const unsigned version = p[0] >> 4;
  if (version == 4) {
    if (p.size() < 20) return std::nullopt;
    const std::size_t ihl = std::size_t{p[0] & 0x0fu} * 4;
    if (ihl < 20 || ihl > p.size()) return std::nullopt;
    q.proto = p[9];
    q.src = IpAddr::v4(p[12], p[13], p[14], p[15]);
    q.dst = IpAddr::v4(p[16], p[17], p[18], p[19]);
    if ((load_be16(p.data() + 6) & 0x1fff) != 0) {
      q.fragment = true;
      return q;
    }
    l4 = ihl;
  } else if (version == 6) {
    if (p.size() < 40) return std::nullopt;
    q.proto = p[6];
    q.src = IpAddr::from16(p.data() + 8);
    q.dst = IpAddr::from16(p.data() + 24);
    l4 = 40;
    if (q.proto == kIpv6Fragment) {
      if (p.size() < 48) return std::nullopt;
      if ((load_be16(p.data() + 42) & 0xfff8) != 0) {
        q.fragment = true;
        return q;
      }
      q.proto = p[40];
      l4 = 48;
    }
  } else {
    return std::nullopt;
  }
  const ByteView t = p.subspan(l4);
  switch (q.proto) {
    case kTcp:
      if (t.size() < 20) return std::nullopt;
      q.src_port = load_be16(t.data());
      q.dst_port = load_be16(t.data() + 2);
      q.tcp_syn = (t[13] & 0x12) == 0x02;
      break;
    case kUdp:
    case kSctp:
      if (t.size() < (q.proto == kUdp ? 8u : 12u)) return std::nullopt;
      q.src_port = load_be16(t.data());
      q.dst_port = load_be16(t.data() + 2);
      break;
    case kIcmp4:
      if (t.size() < 4) return std::nullopt;
      q.icmp_reply_or_error = t[0] == 0 || t[0] == 3 || t[0] == 11;
      break;
    case kIcmp6:
      if (t.size() < 4) return std::nullopt;
      q.icmp_reply_or_error = t[0] == 129 || (t[0] >= 1 && t[0] <= 4);
      break;
    default:
      break;
  }
  return q;
}

std::string flow_key(std::uint8_t proto, const IpAddr& a, std::uint16_t ap, const IpAddr& b,
                     std::uint16_t bp) {
  std::string k(1 + 16 + 2 + 16 + 2, '\0');
  k[0] = static_cast<char>(proto);
  const auto a16 = a.to16();
  const auto b16 = b.to16();
  std::copy(a16.begin(), a16.end(), k.begin() + 1);
  k[17] = static_cast<char>(ap >> 8);
  k[18] = static_cast<char>(ap & 0xff);
  std::copy(b16.begin(), b16.end(), k.begin() + 19);
  k[35] = static_cast<char>(bp >> 8);
  k[36] = static_cast<char>(bp & 0xff);
  return k;
}

bool match_ports(const PacketFilter& f, const Parsed& q) {
  for (const auto& r : f.rules) {
    if (std::find(r.protos.begin(), r.protos.end(), q.proto) == r.protos.end()) continue;
    if (!in_list(r.srcs, q.src)) continue;
    for (const auto& d : r.dsts) {
      if (d.net.contains(q.dst) && q.dst_port >= d.first && q.dst_port <= d.last) return true;
    }
  }
  return false;
}

// ICMP: any rule naming the source and destination, whatever its protocols and ports
// (Tailscale's matchIPsOnly). Other protocols: the protocol and all ports.
bool match_ips(const PacketFilter& f, const Parsed& q, bool need_proto_all_ports) {
  for (const auto& r : f.rules) {
    if (need_proto_all_ports &&
        std::find(r.protos.begin(), r.protos.end(), q.proto) == r.protos.end())
      continue;
    if (!in_list(r.srcs, q.src)) continue;
    for (const auto& d : r.dsts) {
      if (need_proto_all_ports && !d.all_ports()) continue;
      if (d.net.contains(q.dst)) return true;
    }
  }
  return false;
}

}  // namespace

Result<PacketFilter> parse_filter_rules(const json& rules, const std::string& path) {
  PacketFilter f;
  if (rules.is_null()) return f;
  if (!rules.is_array()) return fail(path, "expected an array of rules");
  if (rules.size() > kMaxFilterRules)
    return fail(path, "more than " + std::to_string(kMaxFilterRules) + " rules");
  std::size_t prefixes = 0;
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const std::string rp = path + "[" + std::to_string(i) + "]";
    const json& r = rules[i];
    if (!r.is_object()) return fail(rp, "expected an object");
    if (present(r, "SrcBits"))
      return fail(rp + ".SrcBits", "not supported (an old control server)");
    FilterRule out;
    if (auto it = r.find("IPProto"); it != r.end() && !it->is_null()) {
      if (!it->is_array()) return fail(rp + ".IPProto", "expected an array");
      if (it->size() > 256) return fail(rp + ".IPProto", "too many protocols");
      for (const auto& n : *it) {
        if (!n.is_number_integer()) return fail(rp + ".IPProto", "expected integers");
        const auto v = n.get<std::int64_t>();
        if (!n.is_number_unsigned() && v < 0) continue;  // ignored, as Tailscale does
        if (n.is_number_unsigned() && n.get<std::uint64_t>() > 0xff) continue;
        if (v > 0xff) continue;
        out.protos.push_back(static_cast<std::uint8_t>(v));
      }
      if (out.protos.empty() && !it->empty()) continue;  // only unusable numbers: matches nothing
    }
    if (out.protos.empty()) out.protos = {kTcp, kUdp, kIcmp4, kIcmp6};
    if (auto it = r.find("SrcIPs"); it != r.end() && !it->is_null()) {
      if (!it->is_array()) return fail(rp + ".SrcIPs", "expected an array");
      for (std::size_t k = 0; k < it->size(); ++k) {
        const json& s = (*it)[k];
        const std::string sp = rp + ".SrcIPs[" + std::to_string(k) + "]";
        if (!s.is_string()) return fail(sp, "expected a string");
        if (s.get_ref<const std::string&>().size() > 128) return fail(sp, "too long");
        if (auto st = parse_ip_set(s.get<std::string>(), out.srcs, kMaxFilterPrefixes - prefixes);
            !st)
          return fail(sp, st.error());
        if (prefixes + out.srcs.size() > kMaxFilterPrefixes) return fail(sp, "too many prefixes");
      }
    }
    std::vector<IpPrefix> nets;
    if (auto it = r.find("DstPorts"); it != r.end() && !it->is_null()) {
      if (!it->is_array()) return fail(rp + ".DstPorts", "expected an array");
      for (std::size_t k = 0; k < it->size(); ++k) {
        const json& d = (*it)[k];
        const std::string dp = rp + ".DstPorts[" + std::to_string(k) + "]";
        if (!d.is_object()) return fail(dp, "expected an object");
        if (present(d, "Bits")) return fail(dp + ".Bits", "not supported (an old control server)");
        auto ip = d.find("IP");
        if (ip == d.end() || !ip->is_string()) return fail(dp + ".IP", "expected a string");
        if (ip->get_ref<const std::string&>().size() > 128) return fail(dp + ".IP", "too long");
        std::uint16_t first = 0, last = 0;
        if (auto pr = d.find("Ports"); pr != d.end() && !pr->is_null()) {
          if (!pr->is_object()) return fail(dp + ".Ports", "expected an object");
          auto a = port_field(*pr, dp + ".Ports", "First");
          if (!a) return Error{a.error()};
          auto b = port_field(*pr, dp + ".Ports", "Last");
          if (!b) return Error{b.error()};
          first = *a;
          last = *b;
        }
        if (ip->get_ref<const std::string&>().rfind("cap:", 0) == 0)
          return fail(dp + ".IP", "a capability is not a destination");
        nets.clear();
        const std::size_t used = prefixes + out.srcs.size() + out.dsts.size();
        if (auto st = parse_ip_set(ip->get<std::string>(), nets,
                                   kMaxFilterPrefixes - std::min(used, kMaxFilterPrefixes));
            !st)
          return fail(dp + ".IP", st.error());
        if (used + nets.size() > kMaxFilterPrefixes) return fail(dp, "too many prefixes");
        if (first > last) continue;  // an empty range matches nothing
        for (const auto& n : nets) out.dsts.push_back({n, first, last});
      }
    }
    if (present(r, "CapGrant") && out.dsts.empty()) continue;  // grants only
    if (out.srcs.empty() || out.dsts.empty()) continue;        // matches nothing
    prefixes += out.srcs.size() + out.dsts.size();
    f.rules.push_back(std::move(out));
  }
  return f;
}

json filter_rules_json(const PacketFilter& f) {
  json rules = json::array();
  for (const auto& r : f.rules) {
    json src = json::array();
    for (const auto& s : r.srcs) src.push_back(s.to_string());
    json dst = json::array();
    for (const auto& d : r.dsts) {
      dst.push_back({{"IP", d.net.to_string()}, {"Ports", {{"First", d.first}, {"Last", d.last}}}});
    }
    json protos = json::array();
    for (auto p : r.protos) protos.push_back(p);
    rules.push_back(
        {{"SrcIPs", std::move(src)}, {"DstPorts", std::move(dst)}, {"IPProto", std::move(protos)}});
  }
  return rules;
}

void FlowTable::note_outbound(ByteView packet, Clock::time_point now) {
  auto q = parse_packet(packet);
  if (!q || q->fragment || (q->proto != kUdp && q->proto != kSctp)) return;
  std::string k = flow_key(q->proto, q->src, q->src_port, q->dst, q->dst_port);
  auto it = flows_.find(k);
  if (it != flows_.end()) {
    it->second = now;
    return;
  }
  if (flows_.size() >= capacity_) {
    auto oldest = flows_.begin();
    for (auto i = flows_.begin(); i != flows_.end(); ++i) {
      if (i->second < oldest->second) oldest = i;
    }
    flows_.erase(oldest);
  }
  flows_.emplace(std::move(k), now);
}

bool FlowTable::answers(ByteView packet, Clock::time_point now) const {
  auto q = parse_packet(packet);
  if (!q || q->fragment || (q->proto != kUdp && q->proto != kSctp)) return false;
  // The reply's destination is the flow's source.
  auto it = flows_.find(flow_key(q->proto, q->dst, q->dst_port, q->src, q->src_port));
  return it != flows_.end() && now - it->second < kFlowIdle;
}

FilterVerdict filter_inbound(const PacketFilter& f, ByteView packet, const FlowTable* flows,
                             FlowTable::Clock::time_point now) {
  auto q = parse_packet(packet);
  if (!q) return FilterVerdict::kDropInvalid;
  if (q->dst.is_multicast() || q->dst.is_link_local_unicast()) return FilterVerdict::kDropMulticast;
  if (q->fragment) return FilterVerdict::kAccept;
  switch (q->proto) {
    case kTcp:
      if (!q->tcp_syn || match_ports(f, *q)) return FilterVerdict::kAccept;
      break;
    case kUdp:
    case kSctp:
      if ((flows != nullptr && flows->answers(packet, now)) || match_ports(f, *q))
        return FilterVerdict::kAccept;
      break;
    case kIcmp4:
    case kIcmp6:
      if (q->icmp_reply_or_error || match_ips(f, *q, false)) return FilterVerdict::kAccept;
      break;
    case kTsmp:
      return FilterVerdict::kAccept;
    default:
      if (match_ips(f, *q, true)) return FilterVerdict::kAccept;
      break;
  }
  return FilterVerdict::kDropNoRule;
}

}  // namespace tw
