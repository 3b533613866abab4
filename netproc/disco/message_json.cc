#include "netproc/disco/message_json.h"

#include <string>

namespace tw::disco {
namespace {

using ojson = nlohmann::ordered_json;

ojson to_json(const Ping& p) {
  ojson j;
  j["type"] = "ping";
  j["version"] = p.version;
  j["txid"] = to_hex(p.txid);
  j["node_key"] = p.node_key ? ojson(p.node_key->to_string()) : ojson(nullptr);
  j["padding"] = p.padding;
  return j;
}

ojson to_json(const Pong& p) {
  ojson j;
  j["type"] = "pong";
  j["version"] = p.version;
  j["txid"] = to_hex(p.txid);
  j["src"] = p.src.to_string();
  return j;
}

ojson to_json(const CallMeMaybe& c) {
  ojson j;
  j["type"] = "call_me_maybe";
  j["version"] = c.version;
  j["endpoints"] = ojson::array();
  for (const auto& ep : c.endpoints) j["endpoints"].push_back(ep.to_string());
  return j;
}

ojson to_json(const UnknownMessage& u) {
  ojson j;
  j["type"] = "unknown";
  j["code"] = u.code;
  return j;
}

Result<std::uint8_t> byte_field(const nlohmann::json& j, const char* name, std::uint8_t dflt) {
  if (!j.contains(name)) return dflt;
  const auto& v = j[name];
  if (!v.is_number_unsigned() || v.get<std::uint64_t>() > 255) {
    return make_error(std::string("\"") + name + "\" must be an integer 0..255");
  }
  return static_cast<std::uint8_t>(v.get<std::uint64_t>());
}

Result<TxId> txid_field(const nlohmann::json& j) {
  if (!j.contains("txid") || !j["txid"].is_string()) return make_error("\"txid\" (24 hex) missing");
  auto t = from_hex_fixed<kTxIdLen>(j["txid"].get<std::string>());
  if (!t) return make_error("\"txid\" must be 24 hex digits");
  return *t;
}

Result<IpPort> endpoint_of(const nlohmann::json& v) {
  if (!v.is_string()) return make_error("endpoint must be a string \"IP:PORT\"");
  auto ep = IpPort::parse(v.get<std::string>());
  if (!ep) return make_error("bad endpoint \"" + v.get<std::string>() + "\"");
  return *ep;
}

Result<Message> ping_from(const nlohmann::json& j, std::uint8_t version) {
  auto txid = txid_field(j);
  if (!txid) return make_error(txid.error());
  Ping p{*txid, std::nullopt, 0, version};
  if (j.contains("node_key") && !j["node_key"].is_null()) {
    if (!j["node_key"].is_string()) return make_error("\"node_key\" must be a string or null");
    auto k = NodePublic::parse(j["node_key"].get<std::string>());
    if (!k) return make_error(k.error());
    p.node_key = *k;
  }
  if (j.contains("padding")) {
    if (!j["padding"].is_number_unsigned() || j["padding"].get<std::uint64_t>() > 65535) {
      return make_error("\"padding\" must be an integer 0..65535");
    }
    p.padding = j["padding"].get<std::size_t>();
  }
  return Message{p};
}

Result<Message> pong_from(const nlohmann::json& j, std::uint8_t version) {
  auto txid = txid_field(j);
  if (!txid) return make_error(txid.error());
  if (!j.contains("src")) return make_error("\"src\" missing");
  auto src = endpoint_of(j["src"]);
  if (!src) return make_error(src.error());
  return Message{Pong{*txid, *src, version}};
}

Result<Message> call_me_maybe_from(const nlohmann::json& j, std::uint8_t version) {
  CallMeMaybe c{{}, version};
  if (!j.contains("endpoints")) return Message{c};
  if (!j["endpoints"].is_array()) return make_error("\"endpoints\" must be an array");
  for (const auto& v : j["endpoints"]) {
    auto ep = endpoint_of(v);
    if (!ep) return make_error(ep.error());
    if (ep->ip.is_unspecified()) return make_error("unspecified endpoint is never sent");
    if (c.endpoints.size() == kMaxCallMeMaybeEndpoints) {
      return make_error("at most 16 endpoints in a call_me_maybe");
    }
    c.endpoints.push_back(*ep);
  }
  return Message{c};
}

}  // namespace

nlohmann::ordered_json message_to_json(const Message& m) {
  return std::visit([](const auto& v) { return to_json(v); }, m);
}

Result<Message> message_from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return make_error("expected an object with a string \"type\"");
  }
  auto version = byte_field(j, "version", kVersion);
  if (!version) return make_error(version.error());
  const auto type = j["type"].get<std::string>();
  if (type == "ping") return ping_from(j, *version);
  if (type == "pong") return pong_from(j, *version);
  if (type == "call_me_maybe") return call_me_maybe_from(j, *version);
  if (type == "unknown") {
    auto code = byte_field(j, "code", 0);
    if (!code) return make_error(code.error());
    return Message{UnknownMessage{*code, *version}};
  }
  return make_error("unknown \"type\" \"" + type + "\"");
}

}  // namespace tw::disco
