#include "ctlproc/tailcfg.h"

#include <ctime>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace tw::ctl {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxStringField = 4096;

Error fail(const std::string& path, const std::string& why) {
  return make_error(path + ": " + why);
}

// A field that is absent or JSON null reads as absent (Go writes nil slices as null).
const json* field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

Result<std::string> get_str(const json& obj, const std::string& path, const char* key) {
  const json* v = field(obj, key);
  if (v == nullptr) return std::string();
  if (!v->is_string()) return fail(path + "." + key, "expected a string");
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() > kMaxStringField) return fail(path + "." + key, "longer than 4096 bytes");
  return s;
}

Result<bool> get_bool(const json& obj, const std::string& path, const char* key) {
  const json* v = field(obj, key);
  if (v == nullptr) return false;
  if (!v->is_boolean()) return fail(path + "." + key, "expected true or false");
  return v->get<bool>();
}

Result<std::int64_t> get_int(const json& obj, const std::string& path, const char* key,
                             std::int64_t lo, std::int64_t hi) {
  const json* v = field(obj, key);
  if (v == nullptr) return std::int64_t{0};
  if (!v->is_number_integer()) return fail(path + "." + key, "expected an integer");
  if (v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(hi)) {
    return fail(path + "." + key, "out of range");
  }
  const auto x = v->get<std::int64_t>();
  if (x < lo || x > hi) return fail(path + "." + key, "out of range: " + std::to_string(x));
  return x;
}

template <typename Key>
Result<std::optional<Key>> get_key(const json& obj, const std::string& path, const char* key) {
  const json* v = field(obj, key);
  if (v == nullptr) return std::optional<Key>{};
  if (!v->is_string()) return fail(path + "." + key, "expected a key string");
  auto k = Key::parse(v->get_ref<const std::string&>());
  if (!k) return fail(path + "." + key, k.error());
  return std::optional<Key>(*k);
}

Result<std::vector<IpPrefix>> get_prefixes(const json& arr, const std::string& path) {
  if (!arr.is_array()) return fail(path, "expected an array");
  if (arr.size() > kMaxPrefixesPerPeer)
    return fail(path, "more than " + std::to_string(kMaxPrefixesPerPeer) + " prefixes");
  std::vector<IpPrefix> out;
  for (std::size_t i = 0; i < arr.size(); ++i) {
    const std::string p = path + "[" + std::to_string(i) + "]";
    if (!arr[i].is_string()) return fail(p, "expected a prefix string");
    auto pr = IpPrefix::parse(arr[i].get_ref<const std::string&>());
    if (!pr) return fail(p, "not a prefix: \"" + arr[i].get<std::string>().substr(0, 64) + "\"");
    out.push_back(*pr);
  }
  return out;
}

// Endpoints that do not parse (IPv6 zones, garbage) or cannot be used are dropped and
// counted, as Tailscale drops zoned ones; a wrong JSON type is an error.
Result<std::vector<IpPort>> get_endpoints(const json& arr, const std::string& path,
                                          std::size_t* dropped) {
  if (!arr.is_array()) return fail(path, "expected an array");
  if (arr.size() > 4 * kMaxEndpointsPerPeer) return fail(path, "too many endpoints");
  std::vector<IpPort> out;
  for (std::size_t i = 0; i < arr.size(); ++i) {
    if (!arr[i].is_string())
      return fail(path + "[" + std::to_string(i) + "]", "expected an ip:port string");
    auto e = IpPort::parse(arr[i].get_ref<const std::string&>());
    if (!e || e->port == 0 || e->ip.is_unspecified() || out.size() >= kMaxEndpointsPerPeer) {
      if (dropped != nullptr) ++*dropped;
      continue;
    }
    out.push_back(*e);
  }
  return out;
}

// The legacy DERP field: "127.3.3.40:<region>".
std::int64_t legacy_derp_region(const std::string& s) {
  static const std::string prefix = "127.3.3.40:";
  if (s.compare(0, prefix.size(), prefix) != 0) return 0;
  std::int64_t v = 0;
  const std::string digits = s.substr(prefix.size());
  if (digits.empty() || digits.size() > 9) return 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + (c - '0');
  }
  return v;
}

Result<ControlNode> parse_node(const json& j, const std::string& path) {
  if (!j.is_object()) return fail(path, "expected an object");
  ControlNode n;
  auto id = get_int(j, path, "ID", INT64_MIN, INT64_MAX);
  if (!id) return Error{id.error()};
  n.id = *id;
  auto name = get_str(j, path, "Name");
  if (!name) return Error{name.error()};
  n.name = *name;
  if (n.name.empty()) {
    auto cn = get_str(j, path, "ComputedName");
    if (!cn) return Error{cn.error()};
    n.name = *cn;
  }
  if (const json* hi = field(j, "Hostinfo"); hi != nullptr) {
    if (!hi->is_object()) return fail(path + ".Hostinfo", "expected an object");
    auto hn = get_str(*hi, path + ".Hostinfo", "Hostname");
    if (!hn) return Error{hn.error()};
    n.hostname = *hn;
  }
  auto key = get_key<NodePublic>(j, path, "Key");
  if (!key) return Error{key.error()};
  if (!*key || (*key)->is_zero()) return fail(path + ".Key", "missing or zero node key");
  n.key = **key;
  auto disco = get_key<DiscoPublic>(j, path, "DiscoKey");
  if (!disco) return Error{disco.error()};
  if (*disco && !(*disco)->is_zero()) n.disco_key = **disco;
  if (const json* a = field(j, "Addresses"); a != nullptr) {
    auto v = get_prefixes(*a, path + ".Addresses");
    if (!v) return Error{v.error()};
    n.addresses = std::move(*v);
  }
  if (const json* a = field(j, "AllowedIPs"); a != nullptr) {
    auto v = get_prefixes(*a, path + ".AllowedIPs");
    if (!v) return Error{v.error()};
    n.allowed_ips = std::move(*v);
  }
  if (const json* e = field(j, "Endpoints"); e != nullptr) {
    auto v = get_endpoints(*e, path + ".Endpoints", &n.dropped_endpoints);
    if (!v) return Error{v.error()};
    n.endpoints = std::move(*v);
  }
  auto home = get_int(j, path, "HomeDERP", 0, INT32_MAX);
  if (!home) return Error{home.error()};
  n.home_derp = *home;
  if (n.home_derp == 0) {
    auto legacy = get_str(j, path, "DERP");
    if (!legacy) return Error{legacy.error()};
    n.home_derp = legacy_derp_region(*legacy);
  }
  for (auto [k, dst] :
       {std::pair{"IsWireGuardOnly", &n.wireguard_only}, std::pair{"Expired", &n.expired},
        std::pair{"MachineAuthorized", &n.machine_authorized}}) {
    auto b = get_bool(j, path, k);
    if (!b) return Error{b.error()};
    *dst = *b;
  }
  auto exp = get_str(j, path, "KeyExpiry");
  if (!exp) return Error{exp.error()};
  // Go writes the zero time.Time as "0001-01-01T00:00:00Z": no expiry.
  n.key_expiry = exp->rfind("0001-01-01", 0) == 0 ? std::string() : *exp;
  return n;
}

Result<PeerPatch> parse_patch(const json& j, const std::string& path) {
  if (!j.is_object()) return fail(path, "expected an object");
  PeerPatch p;
  auto id = get_int(j, path, "NodeID", INT64_MIN, INT64_MAX);
  if (!id) return Error{id.error()};
  p.node_id = *id;
  if (field(j, "DERPRegion") != nullptr) {
    auto r = get_int(j, path, "DERPRegion", 0, INT32_MAX);
    if (!r) return Error{r.error()};
    p.derp_region = *r;
  }
  if (const json* e = field(j, "Endpoints"); e != nullptr) {
    auto v = get_endpoints(*e, path + ".Endpoints", nullptr);
    if (!v) return Error{v.error()};
    p.endpoints = std::move(*v);
  }
  auto key = get_key<NodePublic>(j, path, "Key");
  if (!key) return Error{key.error()};
  if (*key && !(*key)->is_zero()) p.key = **key;
  auto disco = get_key<DiscoPublic>(j, path, "DiscoKey");
  if (!disco) return Error{disco.error()};
  if (*disco) p.disco_key = **disco;
  if (field(j, "KeyExpiry") != nullptr) {
    auto e = get_str(j, path, "KeyExpiry");
    if (!e) return Error{e.error()};
    p.key_expiry = e->rfind("0001-01-01", 0) == 0 ? std::string() : *e;
  }
  return p;
}

// Keeps the DERPMap fields tailwarden's netmap parser knows, so a server's new fields
// do not make a valid map fail; the result is then checked by parse_derp_map.
json filter_derp_map(const json& j) {
  static const std::set<std::string> top = {"Regions", "omitDefaultRegions"};
  static const std::set<std::string> region = {"RegionID",        "RegionCode", "RegionName",
                                               "Latitude",        "Longitude",  "Avoid",
                                               "NoMeasureNoHome", "Nodes"};
  static const std::set<std::string> node = {
      "Name",     "RegionID", "HostName", "CertName",         "IPv4",       "IPv6",
      "STUNPort", "STUNOnly", "DERPPort", "InsecureForTests", "STUNTestIP", "CanPort80"};
  auto keep = [](const json& o, const std::set<std::string>& known) {
    json out = json::object();
    if (!o.is_object()) return o;  // the strict parser reports the type error
    for (const auto& [k, v] : o.items()) {
      if (known.contains(k) && !v.is_null()) out[k] = v;
    }
    return out;
  };
  json out = keep(j, top);
  if (out.is_object() && out.contains("Regions") && out["Regions"].is_object()) {
    for (auto& [id, r] : out["Regions"].items()) {
      r = keep(r, region);
      if (r.is_object() && r.contains("Nodes") && r["Nodes"].is_array()) {
        for (auto& n : r["Nodes"]) n = keep(n, node);
      }
    }
  }
  return out;
}

json hostinfo_json(const Hostinfo& h) {
  json j = json::object();
  if (!h.hostname.empty()) j["Hostname"] = h.hostname;
  j["OS"] = h.os;
  if (!h.ipn_version.empty()) j["IPNVersion"] = h.ipn_version;
  if (h.preferred_derp != 0) j["NetInfo"] = json{{"PreferredDERP", h.preferred_derp}};
  if (!h.routable_ips.empty()) {
    json r = json::array();
    for (const auto& p : h.routable_ips) r.push_back(p.to_string());
    j["RoutableIPs"] = std::move(r);
  }
  return j;
}

}  // namespace

std::string register_request_json(const RegisterParams& p) {
  json j = json::object();
  j["Version"] = p.version;
  j["NodeKey"] = p.node_key.to_string();
  if (!p.auth_key.empty()) j["Auth"] = json{{"AuthKey", p.auth_key}};
  if (!p.followup.empty()) j["Followup"] = p.followup;
  j["Hostinfo"] = hostinfo_json(p.hostinfo);
  if (p.ephemeral) j["Ephemeral"] = true;
  // Expiry is omitted on purpose: a time in the past means logout.
  return j.dump();
}

Result<RegisterResponse> parse_register_response(std::string_view text) {
  auto j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error("RegisterResponse: not a JSON object");
  RegisterResponse r;
  const std::string path = "RegisterResponse";
  for (auto [k, dst] : {std::pair{"AuthURL", &r.auth_url}, std::pair{"Error", &r.error}}) {
    auto s = get_str(j, path, k);
    if (!s) return Error{s.error()};
    *dst = *s;
  }
  for (auto [k, dst] : {std::pair{"NodeKeyExpired", &r.node_key_expired},
                        std::pair{"MachineAuthorized", &r.machine_authorized}}) {
    auto b = get_bool(j, path, k);
    if (!b) return Error{b.error()};
    *dst = *b;
  }
  if (const json* login = field(j, "Login"); login != nullptr && login->is_object()) {
    auto s = get_str(*login, path + ".Login", "LoginName");
    if (s) r.user = *s;
  }
  if (r.user.empty()) {
    if (const json* user = field(j, "User"); user != nullptr && user->is_object()) {
      auto s = get_str(*user, path + ".User", "DisplayName");
      if (s) r.user = *s;
    }
  }
  return r;
}

std::string map_request_json(const MapRequestParams& p) {
  json j = json::object();
  j["Version"] = p.version;
  if (p.compress) j["Compress"] = "zstd";
  j["KeepAlive"] = true;
  j["NodeKey"] = p.node_key.to_string();
  if (p.disco_key && !p.disco_key->is_zero()) j["DiscoKey"] = p.disco_key->to_string();
  j["Stream"] = p.stream;
  j["OmitPeers"] = p.omit_peers;
  j["Hostinfo"] = hostinfo_json(p.hostinfo);
  if (!p.endpoints.empty()) {
    json eps = json::array();
    json types = json::array();
    for (const auto& e : p.endpoints) {
      eps.push_back(e.addr.to_string());
      types.push_back(static_cast<int>(e.type));
    }
    j["Endpoints"] = std::move(eps);
    j["EndpointTypes"] = std::move(types);
  }
  return j.dump();
}

Result<MapResponse> parse_map_response(std::string_view text) {
  if (text.size() > kMaxNetmapBytes) return make_error("MapResponse: larger than 64 MiB");
  auto j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) return make_error("MapResponse: not valid JSON");
  if (!j.is_object()) return make_error("MapResponse: expected a JSON object");
  MapResponse m;
  auto ka = get_bool(j, "MapResponse", "KeepAlive");
  if (!ka) return Error{ka.error()};
  m.keep_alive = *ka;
  if (m.keep_alive) return m;  // only keep-alive semantics apply
  if (const json* n = field(j, "Node"); n != nullptr) {
    auto node = parse_node(*n, "Node");
    if (!node) return Error{node.error()};
    m.node = std::move(*node);
  }
  if (const json* d = field(j, "DERPMap"); d != nullptr) {
    auto dm = parse_derp_map(filter_derp_map(*d).dump(), "DERPMap");
    if (!dm) return Error{dm.error()};
    m.derp_map = std::move(*dm);
  }
  auto list = [&](const char* key, std::vector<ControlNode>& out) -> Status {
    const json* a = field(j, key);
    if (a == nullptr) return ok_status();
    if (!a->is_array()) return fail(key, "expected an array");
    if (a->size() > kMaxNetmapPeers)
      return fail(key, "more than " + std::to_string(kMaxNetmapPeers) + " nodes");
    out.reserve(a->size());
    for (std::size_t i = 0; i < a->size(); ++i) {
      auto n = parse_node((*a)[i], std::string(key) + "[" + std::to_string(i) + "]");
      if (!n) return Error{n.error()};
      out.push_back(std::move(*n));
    }
    return ok_status();
  };
  if (auto st = list("Peers", m.peers); !st) return Error{st.error()};
  if (auto st = list("PeersChanged", m.peers_changed); !st) return Error{st.error()};
  if (const json* a = field(j, "PeersRemoved"); a != nullptr) {
    if (!a->is_array()) return fail("PeersRemoved", "expected an array");
    if (a->size() > kMaxNetmapPeers) return fail("PeersRemoved", "too many entries");
    for (std::size_t i = 0; i < a->size(); ++i) {
      if (!(*a)[i].is_number_integer())
        return fail("PeersRemoved[" + std::to_string(i) + "]", "expected a node ID");
      m.peers_removed.push_back((*a)[i].get<std::int64_t>());
    }
  }
  if (const json* a = field(j, "PeersChangedPatch"); a != nullptr) {
    if (!a->is_array()) return fail("PeersChangedPatch", "expected an array");
    if (a->size() > kMaxNetmapPeers) return fail("PeersChangedPatch", "too many entries");
    for (std::size_t i = 0; i < a->size(); ++i) {
      auto p = parse_patch((*a)[i], "PeersChangedPatch[" + std::to_string(i) + "]");
      if (!p) return Error{p.error()};
      m.peers_changed_patch.push_back(std::move(*p));
    }
  }
  m.has_packet_filter = field(j, "PacketFilter") != nullptr || field(j, "PacketFilters") != nullptr;
  if (const json* pf = field(j, "PacketFilter"); pf != nullptr) {
    auto f = parse_filter_rules(*pf, "PacketFilter");
    if (!f) return Error{f.error()};
    m.packet_filter = std::move(*f);
  }
  if (const json* pfs = field(j, "PacketFilters"); pfs != nullptr) {
    if (!pfs->is_object()) return fail("PacketFilters", "expected an object");
    if (pfs->size() > 1024) return fail("PacketFilters", "too many chunks");
    for (const auto& [name, rules] : pfs->items()) {
      if (name.size() > 256) return fail("PacketFilters", "chunk name longer than 256 bytes");
      if (rules.is_null()) {
        m.packet_filters[name] = std::nullopt;
        continue;
      }
      auto f = parse_filter_rules(rules, "PacketFilters[\"" + name + "\"]");
      if (!f) return Error{f.error()};
      m.packet_filters[name] = std::move(*f);
    }
  }
  auto dom = get_str(j, "MapResponse", "Domain");
  if (!dom) return Error{dom.error()};
  m.domain = *dom;
  return m;
}

Status MapState::apply(const MapResponse& m) {
  if (m.keep_alive) return ok_status();
  if (!self_ && !m.node) return make_error("MapResponse: the first map lacks Node");
  if (m.node) self_ = *m.node;
  if (m.derp_map) derp_map_ = *m.derp_map;
  if (!m.domain.empty()) domain_ = m.domain;
  if (m.packet_filter) filters_["base"] = *m.packet_filter;
  if (auto all = m.packet_filters.find("*"); all != m.packet_filters.end() && !all->second)
    filters_.clear();
  for (const auto& [name, f] : m.packet_filters) {
    if (name == "*") continue;
    if (f) {
      filters_[name] = *f;
    } else {
      filters_.erase(name);
    }
  }
  std::size_t rules = 0;
  std::size_t prefixes = 0;
  for (const auto& [name, f] : filters_) {
    rules += f.rules.size();
    for (const auto& r : f.rules) prefixes += r.srcs.size() + r.dsts.size();
  }
  if (rules > kMaxFilterRules || prefixes > kMaxFilterPrefixes) {
    filters_.clear();  // fail closed: an empty filter drops what peers start
    return make_error("PacketFilters: more rules or prefixes in all than tailwarden accepts");
  }
  if (!m.peers.empty()) {
    // A full list replaces everything; the deltas in the same message are ignored.
    peers_.clear();
    for (const auto& p : m.peers) peers_[p.id] = p;
  } else {
    for (auto id : m.peers_removed) peers_.erase(id);
    for (const auto& p : m.peers_changed) peers_[p.id] = p;
    for (const auto& patch : m.peers_changed_patch) {
      auto it = peers_.find(patch.node_id);
      if (it == peers_.end()) continue;
      ControlNode& n = it->second;
      if (patch.derp_region && *patch.derp_region != 0) n.home_derp = *patch.derp_region;
      if (patch.endpoints) n.endpoints = *patch.endpoints;
      if (patch.key) n.key = *patch.key;
      if (patch.disco_key) {
        n.disco_key = patch.disco_key->is_zero() ? std::nullopt
                                                 : std::optional<DiscoPublic>(*patch.disco_key);
      }
      if (patch.key_expiry) n.key_expiry = *patch.key_expiry;
    }
  }
  ++updates_;
  return ok_status();
}

std::optional<SystemTime> parse_rfc3339(const std::string& s) {
  if (s.size() < 20 || s.size() > 40) return std::nullopt;
  std::tm tm{};
  std::istringstream in(s.substr(0, 19));
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) return std::nullopt;
  std::size_t i = 19;
  if (s[i] == '.') {  // fractional seconds: ignored (expiry to the second is enough)
    ++i;
    const std::size_t digits = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == digits) return std::nullopt;
  }
  long offset = 0;
  if (i + 1 == s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    offset = 0;
  } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    std::tm off{};
    std::istringstream o(s.substr(i + 1));
    o >> std::get_time(&off, "%H:%M");
    if (o.fail()) return std::nullopt;
    offset = (off.tm_hour * 60L + off.tm_min) * 60L * (s[i] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  const std::time_t t = ::timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) return std::nullopt;
  return std::chrono::system_clock::from_time_t(t - offset);
}

namespace {
// Expired by control's flag or by its KeyExpiry (an unparsable expiry: not expired,
// as Go's zero time).
bool key_expired(const ControlNode& n, SystemTime now) {
  if (n.expired) return true;
  if (n.key_expiry.empty()) return false;
  auto t = parse_rfc3339(n.key_expiry);
  return t && *t <= now;
}
}  // namespace

std::optional<SystemTime> MapState::next_key_expiry(SystemTime now) const {
  std::optional<SystemTime> next;
  for (const auto& [id, p] : peers_) {
    if (p.key_expiry.empty()) continue;
    auto t = parse_rfc3339(p.key_expiry);
    if (t && *t > now && (!next || *t < *next)) next = t;
  }
  return next;
}

bool MapState::self_key_expired(SystemTime now) const { return self_ && key_expired(*self_, now); }

PacketFilter MapState::packet_filter() const {
  PacketFilter out;
  for (const auto& [name, f] : filters_) {
    out.rules.insert(out.rules.end(), f.rules.begin(), f.rules.end());
  }
  return out;
}

std::string netmap_name(const ControlNode& n) {
  std::string base = n.name.substr(0, n.name.find('.'));
  if (base.empty()) base = n.hostname;
  std::string clean;
  for (char c : base) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) {
      clean.push_back(static_cast<char>(std::tolower(u)));
    } else if ((c == '-' || c == '_' || c == ' ') && !clean.empty() && clean.back() != '-') {
      clean.push_back('-');
    }
    if (clean.size() >= 40) break;
  }
  while (!clean.empty() && clean.back() == '-') clean.pop_back();
  if (clean.empty()) clean = "node";
  return clean + "-" + std::to_string(n.id);
}

Result<Netmap> MapState::to_netmap(ConvertStats* stats, SystemTime now) const {
  ConvertStats local;
  ConvertStats& s = stats != nullptr ? *stats : local;
  if (!self_) return make_error("control: no map received yet");
  Netmap nm;
  nm.derp_map = derp_map_;
  nm.packet_filter = packet_filter();
  nm.self.name = netmap_name(*self_);
  nm.self.node_key = self_->key;
  nm.self.addresses = self_->addresses;
  nm.self.home_derp = derp_map_.region(self_->home_derp) != nullptr ? self_->home_derp : 0;
  std::set<NodePublic> node_keys{self_->key};
  std::set<DiscoPublic> disco_keys;
  for (const auto& [id, p] : peers_) {
    if (nm.peers.size() >= kMaxNetmapPeers) {
      ++s.skipped_invalid;
      continue;
    }
    if (key_expired(p, now)) {
      ++s.skipped_expired;
      continue;
    }
    if (!p.wireguard_only && !p.disco_key) {
      ++s.skipped_no_disco;
      continue;
    }
    NetmapPeer q;
    q.name = netmap_name(p);
    q.node_key = p.key;
    q.wireguard_only = p.wireguard_only;
    if (!p.wireguard_only) q.disco_key = p.disco_key;
    q.addresses = p.addresses;
    q.allowed_ips = p.allowed_ips ? *p.allowed_ips : p.addresses;
    if (q.allowed_ips.empty()) q.allowed_ips = q.addresses;
    bool covered = true;
    for (const auto& a : q.addresses) {
      bool c = false;
      for (const auto& al : q.allowed_ips) c = c || (al.bits <= a.bits && al.contains(a.addr));
      covered = covered && c;
    }
    q.endpoints = p.endpoints;
    q.home_derp = derp_map_.region(p.home_derp) != nullptr ? p.home_derp : 0;
    if (!covered || (p.wireguard_only && q.endpoints.empty()) ||
        !node_keys.insert(q.node_key).second ||
        (q.disco_key && !disco_keys.insert(*q.disco_key).second)) {
      ++s.skipped_invalid;
      continue;
    }
    nm.peers.push_back(std::move(q));
  }
  return nm;
}

}  // namespace tw::ctl
