// Upstream proxy handshakes as pure byte state machines: the caller writes what
// take_output() returns to the proxy connection and feeds what it reads; no fd, no
// clock here (the flow relay owns both). Exact-length parsing: a SOCKS5 reply is
// consumed to its last byte and no further; an HTTP CONNECT reply header is bounded
// (kMaxHttpReplyHeader) and whatever follows its blank line is the tunnel's first
// bytes, left to the caller (feed() says how many bytes it consumed).
//   SOCKS5: RFC 1928 CONNECT to an IPv4 address or a domain name, RFC 1929
//   username/password authentication.
//   HTTP: CONNECT host:port HTTP/1.1 with Basic proxy authentication (RFC 9110,
//   RFC 7617); any 2xx is success, 407 is an authentication refusal.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/bytes.h"
#include "common/result.h"
#include "exitproc/link.h"

namespace tw::exitproc {

constexpr std::size_t kMaxHttpReplyHeader = 8 * 1024;

struct ConnectTarget {
  std::optional<std::array<std::uint8_t, 4>> ipv4;  // set: an IPv4 address
  std::string domain;                               // else: a domain name (1..255 bytes)
  std::uint16_t port = 0;
  std::string authority() const;  // "a.b.c.d:port" or "name:port"
};

struct Credentials {
  std::string username;  // empty: no authentication
  std::string password;
};

enum class HandshakeState { kRunning, kDone, kFailed };

struct HandshakeFailure {
  Refusal kind = Refusal::kProxyHandshake;  // kProxyHandshake, kAuthRefused or kConnectRefused
  std::string detail;                       // no credentials, ever
};

class ProxyHandshake {
 public:
  virtual ~ProxyHandshake() = default;
  // Bytes to send to the proxy now (empty when nothing is due).
  Bytes take_output() {
    Bytes o = std::move(out_);
    out_.clear();
    return o;
  }
  // Feeds bytes read from the proxy; returns how many it consumed. After kDone the
  // unconsumed rest belongs to the tunnel. Nothing is consumed once done or failed.
  std::size_t feed(ByteView in);
  // The proxy closed its side (EOF) during the handshake.
  void on_eof();
  HandshakeState state() const { return state_; }
  const HandshakeFailure& failure() const { return failure_; }

 protected:
  virtual std::size_t step(ByteView in) = 0;
  void fail(Refusal kind, std::string detail) {
    if (state_ != HandshakeState::kRunning) return;
    state_ = HandshakeState::kFailed;
    failure_ = {kind, std::move(detail)};
  }
  void done() {
    if (state_ == HandshakeState::kRunning) state_ = HandshakeState::kDone;
  }
  Bytes out_;

 private:
  HandshakeState state_ = HandshakeState::kRunning;
  HandshakeFailure failure_;
};

// Refuses (error text) a target or credentials the protocol cannot carry: an empty
// or overlong domain, port 0, a credential over 255 bytes, a ':' in a Basic username,
// control characters in a domain name or credential.
Result<std::unique_ptr<ProxyHandshake>> make_handshake(ProxyKind kind, const ConnectTarget& target,
                                                       const Credentials& creds);

}  // namespace tw::exitproc
