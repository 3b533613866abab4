#include "netproc/disco/message.h"

#include <sodium.h>

#include <cstring>

namespace tw::disco {
namespace {

// Go parsePing: a key only if a whole key follows the txid; the rest is padding.
Result<Message> parse_ping(std::uint8_t version, ByteView body) {
  if (body.size() < kTxIdLen) return make_error("disco: ping body shorter than 12 bytes");
  Ping p;
  p.version = version;
  std::memcpy(p.txid.data(), body.data(), kTxIdLen);
  ByteView rest = body.subspan(kTxIdLen);
  if (rest.size() >= kKeyLen) {
    p.node_key = NodePublic::from_bytes(rest.data());
    rest = rest.subspan(kKeyLen);
  }
  p.padding = rest.size();
  return Message{p};
}

Result<Message> parse_pong(std::uint8_t version, ByteView body) {
  if (body.size() < kPongLen) return make_error("disco: pong body shorter than 30 bytes");
  Pong p;
  p.version = version;
  std::memcpy(p.txid.data(), body.data(), kTxIdLen);
  p.src = decode_endpoint(body.data() + kTxIdLen);  // trailing bytes are ignored
  return Message{p};
}

// Never fails: a newer version or a short body means "no endpoints".
Message parse_call_me_maybe(std::uint8_t version, ByteView body) {
  CallMeMaybe c;
  c.version = version;
  if (version != kVersion) return c;
  for (std::size_t off = 0; off + kEndpointLen <= body.size(); off += kEndpointLen) {
    if (c.endpoints.size() == kMaxCallMeMaybeEndpoints) break;
    c.endpoints.push_back(decode_endpoint(body.data() + off));
  }
  return c;
}

bool encodable(const IpPort& ep) { return ep.valid() && !ep.ip.is_unspecified(); }

std::size_t body_len(const Ping& p) { return kTxIdLen + (p.node_key ? kKeyLen : 0) + p.padding; }
std::size_t body_len(const Pong&) { return kPongLen; }
std::size_t body_len(const CallMeMaybe& c) {
  std::size_t n = 0;
  for (const auto& ep : c.endpoints) n += encodable(ep) ? 1 : 0;
  return n * kEndpointLen;
}
std::size_t body_len(const UnknownMessage&) { return 0; }

std::uint8_t type_code(const Ping&) { return static_cast<std::uint8_t>(MessageType::kPing); }
std::uint8_t type_code(const Pong&) { return static_cast<std::uint8_t>(MessageType::kPong); }
std::uint8_t type_code(const CallMeMaybe&) {
  return static_cast<std::uint8_t>(MessageType::kCallMeMaybe);
}
std::uint8_t type_code(const UnknownMessage& u) { return u.code; }

void write_body(const Ping& p, std::uint8_t* out) {
  std::memcpy(out, p.txid.data(), kTxIdLen);
  out += kTxIdLen;
  if (p.node_key) {
    std::memcpy(out, p.node_key->data(), kKeyLen);
    out += kKeyLen;
  }
  std::memset(out, 0, p.padding);
}
void write_body(const Pong& p, std::uint8_t* out) {
  std::memcpy(out, p.txid.data(), kTxIdLen);
  encode_endpoint(p.src, out + kTxIdLen);
}
void write_body(const CallMeMaybe& c, std::uint8_t* out) {
  for (const auto& ep : c.endpoints) {
    if (!encodable(ep)) continue;
    encode_endpoint(ep, out);
    out += kEndpointLen;
  }
}
void write_body(const UnknownMessage&, std::uint8_t*) {}

}  // namespace

TxId new_txid() {
  TxId t;
  randombytes_buf(t.data(), t.size());
  return t;
}

void encode_endpoint(const IpPort& ep, std::uint8_t* out18) {
  const auto ip16 = ep.ip.to16();
  std::memcpy(out18, ip16.data(), ip16.size());
  store_be16(out18 + 16, ep.port);
}

IpPort decode_endpoint(const std::uint8_t* in18) {
  return IpPort{IpAddr::from16(in18), load_be16(in18 + 16)};
}

Result<Message> parse_message(ByteView pt) {
  if (pt.size() < kMessageHeaderLen) return make_error("disco: message shorter than 2 bytes");
  const std::uint8_t type = pt[0];
  const std::uint8_t version = pt[1];
  const ByteView body = pt.subspan(kMessageHeaderLen);
  // The type guard: each body parser sees only its own type.
  switch (type) {
    case static_cast<std::uint8_t>(MessageType::kPing):
      return parse_ping(version, body);
    case static_cast<std::uint8_t>(MessageType::kPong):
      return parse_pong(version, body);
    case static_cast<std::uint8_t>(MessageType::kCallMeMaybe):
      return parse_call_me_maybe(version, body);
    default:
      return Message{UnknownMessage{type, version}};
  }
}

CallMeMaybe make_call_me_maybe(std::span<const IpPort> advertised) {
  CallMeMaybe c;
  for (const auto& ep : advertised) {
    if (c.endpoints.size() == kMaxCallMeMaybeEndpoints) break;
    if (encodable(ep)) c.endpoints.push_back(ep);
  }
  return c;
}

std::size_t encoded_len(const Message& m) {
  return kMessageHeaderLen + std::visit([](const auto& v) { return body_len(v); }, m);
}

std::size_t encode(const Message& m, MutableByteView out) {
  const std::size_t n = encoded_len(m);
  if (out.size() < n) return 0;
  std::visit(
      [&](const auto& v) {
        out[0] = type_code(v);
        out[1] = v.version;
        write_body(v, out.data() + kMessageHeaderLen);
      },
      m);
  return n;
}

Bytes encode(const Message& m) {
  Bytes b(encoded_len(m));
  (void)encode(m, b);
  return b;
}

}  // namespace tw::disco
