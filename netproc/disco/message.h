// Disco messages: the plaintext inside the box, `type(1) | version(1) | body`
// (as Tailscale's Go disco package defines it).
// Parsing is lax as in Go and never allocates; types other than Ping, Pong and
// CallMeMaybe parse as UnknownMessage so the caller can count and drop them.
#pragma once

#include <array>
#include <boost/container/static_vector.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <variant>

#include "common/bytes.h"
#include "common/ipaddr.h"
#include "common/keys.h"
#include "common/result.h"

namespace tw::disco {

constexpr std::size_t kMessageHeaderLen = 2;  // type, version
constexpr std::size_t kTxIdLen = 12;
constexpr std::size_t kEndpointLen = 18;                   // 16-byte IPv6 (IPv4 mapped) + BE port
constexpr std::size_t kPingLen = kTxIdLen + kKeyLen;       // body without padding: 44
constexpr std::size_t kPongLen = kTxIdLen + kEndpointLen;  // 30
constexpr std::size_t kMaxCallMeMaybeEndpoints = 16;       // inbound keep-first cap and send cap
constexpr std::uint8_t kVersion = 0;

enum class MessageType : std::uint8_t { kPing = 0x01, kPong = 0x02, kCallMeMaybe = 0x03 };

using TxId = std::array<std::uint8_t, kTxIdLen>;
TxId new_txid();  // random, libsodium CSPRNG

struct Ping {
  TxId txid{};
  std::optional<NodePublic> node_key;  // absent from peers older than ~1.16
  std::size_t padding = 0;             // zero bytes after the key (MTU probes)
  std::uint8_t version = kVersion;
  friend bool operator==(const Ping&, const Ping&) = default;
};

struct Pong {
  TxId txid{};
  IpPort src;  // where the ponger saw the ping come from
  std::uint8_t version = kVersion;
  friend bool operator==(const Pong&, const Pong&) = default;
};

using EndpointList = boost::container::static_vector<IpPort, kMaxCallMeMaybeEndpoints>;

struct CallMeMaybe {
  EndpointList endpoints;
  std::uint8_t version = kVersion;
  friend bool operator==(const CallMeMaybe&, const CallMeMaybe&) = default;
};

// A box that opened but holds a type we do not handle (4-9 relay messages, 0, >= 10).
struct UnknownMessage {
  std::uint8_t code = 0;
  std::uint8_t version = 0;
  friend bool operator==(const UnknownMessage&, const UnknownMessage&) = default;
};

using Message = std::variant<Ping, Pong, CallMeMaybe, UnknownMessage>;

// Parses a plaintext. Errors: fewer than 2 bytes, a Ping body under 12 bytes, a Pong
// body under 30 bytes. A CallMeMaybe never fails: version != 0 or a short body gives
// no endpoints, a trailing partial endpoint is ignored, only the first 16 are kept.
Result<Message> parse_message(ByteView plaintext);

// The send-side CallMeMaybe: endpoints in the caller's order (most useful first),
// skipping invalid and unspecified (0.0.0.0, ::) ones, at most 16.
CallMeMaybe make_call_me_maybe(std::span<const IpPort> advertised);

// Plaintext length of `m`. UnknownMessage encodes as its two header bytes.
std::size_t encoded_len(const Message& m);
// Writes the plaintext into `out`; returns bytes written, or 0 if `out` is too small.
// Ping writes the node key when present; CallMeMaybe skips unspecified endpoints.
std::size_t encode(const Message& m, MutableByteView out);
Bytes encode(const Message& m);

// One 18-byte endpoint: IPv4 is written as ::ffff:a.b.c.d; decoding unmaps it.
void encode_endpoint(const IpPort& ep, std::uint8_t* out18);
IpPort decode_endpoint(const std::uint8_t* in18);

}  // namespace tw::disco
