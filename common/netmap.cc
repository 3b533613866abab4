#include "common/netmap.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/netmap_diff.h"

namespace tw {
namespace {

using nlohmann::json;

// Collects the path to the field being read so that every error names it.
class Reader {
 public:
  explicit Reader(std::string origin) : origin_(std::move(origin)) {}

  Error fail(const std::string& path, const std::string& why) const {
    return make_error(origin_ + ": " + path + ": " + why);
  }

  Status check_keys(const json& obj, const std::string& path,
                    const std::set<std::string>& known) const {
    if (!obj.is_object()) return fail(path, "expected an object");
    for (const auto& [k, v] : obj.items()) {
      (void)v;
      if (!known.contains(k)) return fail(path, "unknown field \"" + k + "\"");
    }
    return ok_status();
  }

  Result<std::string> str(const json& obj, const std::string& path, const char* key,
                          bool required, std::size_t max_len = 256) const {
    auto it = obj.find(key);
    if (it == obj.end()) {
      if (required) return fail(path, std::string("missing field \"") + key + "\"");
      return std::string();
    }
    if (!it->is_string()) return fail(path + "." + key, "expected a string");
    const auto& s = it->get_ref<const std::string&>();
    if (s.size() > max_len) return fail(path + "." + key, "longer than " + std::to_string(max_len));
    return s;
  }

  Result<std::int64_t> integer(const json& obj, const std::string& path, const char* key,
                               std::int64_t def, std::int64_t lo, std::int64_t hi) const {
    auto it = obj.find(key);
    if (it == obj.end()) return def;
    if (!it->is_number_integer()) return fail(path + "." + key, "expected an integer");
    if (it->is_number_unsigned() && it->get<std::uint64_t>() > static_cast<std::uint64_t>(hi)) {
      return fail(path + "." + key, "out of range");
    }
    auto v = it->get<std::int64_t>();
    if (v < lo || v > hi) {
      return fail(path + "." + key, "expected " + std::to_string(lo) + ".." + std::to_string(hi) +
                                        ", got " + std::to_string(v));
    }
    return v;
  }

  Result<bool> boolean(const json& obj, const std::string& path, const char* key) const {
    auto it = obj.find(key);
    if (it == obj.end()) return false;
    if (!it->is_boolean()) return fail(path + "." + key, "expected true or false");
    return it->get<bool>();
  }

  Result<std::vector<IpPrefix>> prefixes(const json& obj, const std::string& path,
                                         const char* key) const {
    std::vector<IpPrefix> out;
    auto it = obj.find(key);
    if (it == obj.end()) return out;
    if (!it->is_array()) return fail(path + "." + key, "expected an array");
    if (it->size() > kMaxPrefixesPerPeer) return fail(path + "." + key, "too many prefixes");
    for (std::size_t i = 0; i < it->size(); ++i) {
      const auto& e = (*it)[i];
      const std::string p = path + "." + key + "[" + std::to_string(i) + "]";
      if (!e.is_string()) return fail(p, "expected a string like \"100.64.0.2/32\"");
      auto pr = IpPrefix::parse(e.get<std::string>());
      if (!pr) return fail(p, "not a prefix (host bits must be zero): \"" + e.get<std::string>() + "\"");
      out.push_back(*pr);
    }
    return out;
  }

  template <typename Key>
  Result<Key> key(const json& obj, const std::string& path, const char* field) const {
    auto s = str(obj, path, field, true, 128);
    if (!s) return Error{s.error()};
    auto k = Key::parse(*s);
    if (!k) return fail(path + "." + field, k.error());
    if (k->is_zero()) return fail(path + "." + field, "all-zero key");
    return *k;
  }

 private:
  std::string origin_;
};

Result<std::optional<IpAddr>> derp_ip(const Reader& r, const json& node, const std::string& path,
                                      const char* key, IpAddr::Family fam, bool* disabled) {
  auto s = r.str(node, path, key, false, 64);
  if (!s) return Error{s.error()};
  if (s->empty()) return std::optional<IpAddr>{};
  if (*s == "none") {
    *disabled = true;
    return std::optional<IpAddr>{};
  }
  auto ip = IpAddr::parse(*s);
  if (!ip || ip->family() != fam) {
    return r.fail(path + "." + key, "not an " + std::string(fam == IpAddr::Family::kV4 ? "IPv4" : "IPv6") +
                                        " address or \"none\": \"" + *s + "\"");
  }
  return std::optional<IpAddr>(*ip);
}

Result<DerpNode> parse_derp_node(const Reader& r, const json& j, const std::string& path,
                                 std::int64_t region_id) {
  static const std::set<std::string> known = {
      "Name", "RegionID", "HostName", "CertName", "IPv4", "IPv6", "STUNPort", "STUNOnly",
      "DERPPort", "InsecureForTests", "STUNTestIP", "CanPort80"};
  if (auto st = r.check_keys(j, path, known); !st) return Error{st.error()};
  DerpNode n;
  auto name = r.str(j, path, "Name", true, 64);
  if (!name) return Error{name.error()};
  n.name = *name;
  auto rid = r.integer(j, path, "RegionID", region_id, 1, INT32_MAX);
  if (!rid) return Error{rid.error()};
  if (*rid != region_id) return r.fail(path + ".RegionID", "does not match its region");
  n.region_id = *rid;
  auto host = r.str(j, path, "HostName", true, 253);
  if (!host) return Error{host.error()};
  n.host_name = *host;
  auto cert = r.str(j, path, "CertName", false, 253);
  if (!cert) return Error{cert.error()};
  n.cert_name = *cert;
  auto v4 = derp_ip(r, j, path, "IPv4", IpAddr::Family::kV4, &n.ipv4_disabled);
  if (!v4) return Error{v4.error()};
  n.ipv4 = *v4;
  auto v6 = derp_ip(r, j, path, "IPv6", IpAddr::Family::kV6, &n.ipv6_disabled);
  if (!v6) return Error{v6.error()};
  n.ipv6 = *v6;
  auto stun = r.integer(j, path, "STUNPort", 0, -1, 65535);
  if (!stun) return Error{stun.error()};
  n.stun_port = *stun == 0 ? 3478 : static_cast<int>(*stun);
  auto derp = r.integer(j, path, "DERPPort", 0, 0, 65535);
  if (!derp) return Error{derp.error()};
  n.derp_port = *derp == 0 ? 443 : static_cast<int>(*derp);
  for (auto [field, dst] : {std::pair{"STUNOnly", &n.stun_only},
                            std::pair{"InsecureForTests", &n.insecure_for_tests},
                            std::pair{"CanPort80", &n.can_port80}}) {
    auto b = r.boolean(j, path, field);
    if (!b) return Error{b.error()};
    *dst = *b;
  }
  auto test_ip = r.str(j, path, "STUNTestIP", false, 64);
  if (!test_ip) return Error{test_ip.error()};
  if (!test_ip->empty()) {
    auto ip = IpAddr::parse(*test_ip);
    if (!ip) return r.fail(path + ".STUNTestIP", "not an IP address");
    n.stun_test_ip = *ip;
  }
  return n;
}

Result<DerpMap> parse_derp_map_json(const Reader& r, const json& j, const std::string& path) {
  static const std::set<std::string> known = {"HomeParams", "Regions", "omitDefaultRegions"};
  static const std::set<std::string> region_known = {
      "RegionID", "RegionCode", "RegionName", "Latitude", "Longitude", "Avoid", "NoMeasureNoHome",
      "Nodes"};
  if (auto st = r.check_keys(j, path, known); !st) return Error{st.error()};
  DerpMap m;
  auto omit = r.boolean(j, path, "omitDefaultRegions");
  if (!omit) return Error{omit.error()};
  m.omit_default_regions = *omit;
  auto regions = j.find("Regions");
  if (regions == j.end()) return m;
  if (!regions->is_object()) return r.fail(path + ".Regions", "expected an object keyed by region ID");
  // Tailscale's map has about 30 regions; every region costs a STUN probe and a
  // possible DERP dial, so a pasted map may not multiply them without bound.
  if (regions->size() > kMaxDerpRegions) {
    return r.fail(path + ".Regions", "more than " + std::to_string(kMaxDerpRegions) + " regions");
  }
  for (const auto& [id_text, rj] : regions->items()) {
    const std::string rpath = path + ".Regions[\"" + id_text + "\"]";
    std::int64_t id = 0;
    try {
      std::size_t used = 0;
      id = std::stoll(id_text, &used);
      if (used != id_text.size() || id <= 0 || id > INT32_MAX) throw std::invalid_argument("range");
    } catch (const std::exception&) {
      return r.fail(rpath, "region key must be a positive decimal region ID");
    }
    if (auto st = r.check_keys(rj, rpath, region_known); !st) return Error{st.error()};
    DerpRegion reg;
    auto rid = r.integer(rj, rpath, "RegionID", id, 1, INT32_MAX);
    if (!rid) return Error{rid.error()};
    if (*rid != id) return r.fail(rpath + ".RegionID", "does not match its key");
    reg.region_id = id;
    auto code = r.str(rj, rpath, "RegionCode", false, 64);
    if (!code) return Error{code.error()};
    reg.region_code = *code;
    auto name = r.str(rj, rpath, "RegionName", false, 128);
    if (!name) return Error{name.error()};
    reg.region_name = *name;
    auto nmnh = r.boolean(rj, rpath, "NoMeasureNoHome");
    if (!nmnh) return Error{nmnh.error()};
    reg.no_measure_no_home = *nmnh;
    auto avoid = r.boolean(rj, rpath, "Avoid");
    if (!avoid) return Error{avoid.error()};
    reg.avoid = *avoid;
    auto nodes = rj.find("Nodes");
    if (nodes != rj.end()) {
      if (!nodes->is_array()) return r.fail(rpath + ".Nodes", "expected an array");
      if (nodes->size() > 64) return r.fail(rpath + ".Nodes", "more than 64 nodes");
      std::set<std::string> names;
      for (std::size_t i = 0; i < nodes->size(); ++i) {
        auto n = parse_derp_node(r, (*nodes)[i], rpath + ".Nodes[" + std::to_string(i) + "]", id);
        if (!n) return Error{n.error()};
        if (!names.insert(n->name).second) {
          return r.fail(rpath + ".Nodes[" + std::to_string(i) + "]", "duplicate node name \"" + n->name + "\"");
        }
        reg.nodes.push_back(std::move(*n));
      }
    }
    m.regions.emplace(id, std::move(reg));
  }
  return m;
}

Result<NetmapPeer> parse_peer(const Reader& r, const json& j, const std::string& path) {
  static const std::set<std::string> known = {"name",      "node_key",  "disco_key",
                                              "addresses", "allowed_ips", "endpoints",
                                              "home_derp", "wireguard_only"};
  if (auto st = r.check_keys(j, path, known); !st) return Error{st.error()};
  NetmapPeer p;
  auto name = r.str(j, path, "name", true, 64);
  if (!name) return Error{name.error()};
  if (name->empty()) return r.fail(path + ".name", "empty");
  p.name = *name;
  const std::string named = path + " (\"" + p.name + "\")";
  auto wg_only = r.boolean(j, named, "wireguard_only");
  if (!wg_only) return Error{wg_only.error()};
  p.wireguard_only = *wg_only;
  auto nk = r.key<NodePublic>(j, named, "node_key");
  if (!nk) return Error{nk.error()};
  p.node_key = *nk;
  if (j.contains("disco_key")) {
    if (p.wireguard_only) return r.fail(named + ".disco_key", "a wireguard_only peer has no disco key");
    auto dk = r.key<DiscoPublic>(j, named, "disco_key");
    if (!dk) return Error{dk.error()};
    p.disco_key = *dk;
  } else if (!p.wireguard_only) {
    return r.fail(named, "missing field \"disco_key\" (required unless wireguard_only)");
  }
  auto addrs = r.prefixes(j, named, "addresses");
  if (!addrs) return Error{addrs.error()};
  p.addresses = *addrs;
  auto allowed = r.prefixes(j, named, "allowed_ips");
  if (!allowed) return Error{allowed.error()};
  p.allowed_ips = allowed->empty() ? p.addresses : *allowed;
  for (const auto& a : p.addresses) {
    bool covered = false;
    for (const auto& al : p.allowed_ips) covered = covered || (al.bits <= a.bits && al.contains(a.addr));
    if (!covered) return r.fail(named + ".allowed_ips", "does not cover address " + a.to_string());
  }
  auto eps = j.find("endpoints");
  if (eps != j.end()) {
    if (!eps->is_array()) return r.fail(named + ".endpoints", "expected an array");
    if (eps->size() > kMaxEndpointsPerPeer) return r.fail(named + ".endpoints", "too many endpoints");
    for (std::size_t i = 0; i < eps->size(); ++i) {
      const std::string ep = named + ".endpoints[" + std::to_string(i) + "]";
      if (!(*eps)[i].is_string()) return r.fail(ep, "expected a string like \"198.18.1.2:41641\"");
      auto e = IpPort::parse((*eps)[i].get<std::string>());
      if (!e || e->port == 0 || e->ip.is_unspecified()) {
        return r.fail(ep, "not a usable ip:port: \"" + (*eps)[i].get<std::string>() + "\"");
      }
      p.endpoints.push_back(*e);
    }
  }
  if (p.wireguard_only && p.endpoints.empty()) {
    return r.fail(named + ".endpoints", "a wireguard_only peer needs at least one endpoint");
  }
  auto home = r.integer(j, named, "home_derp", 0, 0, INT32_MAX);
  if (!home) return Error{home.error()};
  p.home_derp = *home;
  return p;
}

Result<NetmapSelf> parse_self(const Reader& r, const json& j) {
  static const std::set<std::string> known = {"name", "node_key", "addresses", "home_derp"};
  if (auto st = r.check_keys(j, "self", known); !st) return Error{st.error()};
  NetmapSelf s;
  auto name = r.str(j, "self", "name", true, 64);
  if (!name) return Error{name.error()};
  s.name = *name;
  auto nk = r.key<NodePublic>(j, "self", "node_key");
  if (!nk) return Error{nk.error()};
  s.node_key = *nk;
  auto addrs = r.prefixes(j, "self", "addresses");
  if (!addrs) return Error{addrs.error()};
  s.addresses = *addrs;
  auto home = r.integer(j, "self", "home_derp", 0, 0, INT32_MAX);
  if (!home) return Error{home.error()};
  s.home_derp = *home;
  return s;
}

}  // namespace

std::optional<IpPort> DerpNode::stun_v4() const {
  if (stun_port < 0) return std::nullopt;
  if (stun_test_ip && stun_test_ip->is_v4()) return IpPort{*stun_test_ip, static_cast<std::uint16_t>(stun_port)};
  if (!ipv4) return std::nullopt;
  return IpPort{*ipv4, static_cast<std::uint16_t>(stun_port)};
}

const DerpRegion* DerpMap::region(std::int64_t id) const {
  auto it = regions.find(id);
  return it == regions.end() ? nullptr : &it->second;
}

const DerpNode* DerpMap::node(std::int64_t region_id, const std::string& name) const {
  const DerpRegion* r = region(region_id);
  if (r == nullptr) return nullptr;
  for (const auto& n : r->nodes) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

std::vector<NodePublic> peers_with_new_disco_key(const Netmap& before, const Netmap& after) {
  std::map<NodePublic, DiscoPublic> old;
  for (const auto& p : before.peers) {
    if (p.disco_key) old.emplace(p.node_key, *p.disco_key);
  }
  std::vector<NodePublic> out;
  for (const auto& p : after.peers) {
    auto it = old.find(p.node_key);
    if (it != old.end() && p.disco_key && it->second != *p.disco_key) out.push_back(p.node_key);
  }
  return out;
}

const NetmapPeer* Netmap::peer_by_name(const std::string& name) const {
  for (const auto& p : peers) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

const NetmapPeer* Netmap::peer_by_node_key(const NodePublic& key) const {
  for (const auto& p : peers) {
    if (p.node_key == key) return &p;
  }
  return nullptr;
}

Result<DerpMap> parse_derp_map(const std::string& text, const std::string& origin) {
  Reader r(origin);
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return r.fail("derp_map", "not valid JSON");
  return parse_derp_map_json(r, j, "derp_map");
}

Result<Netmap> parse_netmap(const std::string& text, const std::string& origin) {
  Reader r(origin);
  if (text.size() > kMaxNetmapBytes) return r.fail("netmap", "larger than 64 MiB");
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return r.fail("netmap", "not valid JSON");
  if (auto st = r.check_keys(j, "netmap", {"self", "peers", "derp_map", "packet_filter"}); !st)
    return Error{st.error()};
  Netmap m;
  if (!j.contains("self")) return r.fail("netmap", "missing field \"self\"");
  auto self = parse_self(r, j["self"]);
  if (!self) return Error{self.error()};
  m.self = std::move(*self);
  if (j.contains("derp_map")) {
    auto dm = parse_derp_map_json(r, j["derp_map"], "derp_map");
    if (!dm) return Error{dm.error()};
    m.derp_map = std::move(*dm);
  }
  if (j.contains("packet_filter")) {
    auto pf = parse_filter_rules(j["packet_filter"], "packet_filter");
    if (!pf) return r.fail("netmap", pf.error());
    m.packet_filter = std::move(*pf);
  }
  if (m.self.home_derp != 0 && m.derp_map.region(m.self.home_derp) == nullptr) {
    return r.fail("self.home_derp", "region " + std::to_string(m.self.home_derp) + " is not in derp_map");
  }
  if (j.contains("peers")) {
    const json& peers = j["peers"];
    if (!peers.is_array()) return r.fail("peers", "expected an array");
    if (peers.size() > kMaxNetmapPeers) return r.fail("peers", "too many peers");
    std::set<std::string> names;
    std::set<NodePublic> node_keys{m.self.node_key};
    std::set<DiscoPublic> disco_keys;
    for (std::size_t i = 0; i < peers.size(); ++i) {
      const std::string path = "peers[" + std::to_string(i) + "]";
      auto p = parse_peer(r, peers[i], path);
      if (!p) return Error{p.error()};
      const std::string named = path + " (\"" + p->name + "\")";
      if (!names.insert(p->name).second) return r.fail(named + ".name", "duplicate peer name");
      if (!node_keys.insert(p->node_key).second) {
        return r.fail(named + ".node_key", "duplicate node key (another peer or self)");
      }
      if (p->disco_key && !disco_keys.insert(*p->disco_key).second) {
        return r.fail(named + ".disco_key", "duplicate disco key");
      }
      if (p->home_derp != 0 && m.derp_map.region(p->home_derp) == nullptr) {
        return r.fail(named + ".home_derp", "region " + std::to_string(p->home_derp) + " is not in derp_map");
      }
      m.peers.push_back(std::move(*p));
    }
  }
  return m;
}

Result<Netmap> load_netmap_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return make_error(path + ": read error");
  return parse_netmap(ss.str(), path);
}

}  // namespace tw
