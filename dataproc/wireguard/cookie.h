// mac1/mac2 and cookie replies: the DoS defence of WireGuard. The checker (our side
// as responder) validates mac1 always and mac2 when under load, and answers with an
// XChaCha20-Poly1305-sealed cookie bound to the sender's source. The maker (per peer,
// our side as sender) adds the MACs and keeps the cookie a responder gave us.
#pragma once

#include <cstdint>

#include "common/clock.h"
#include "common/keys.h"
#include "dataproc/wireguard/crypto.h"

namespace tw::wg {

// Messages that carry MACs end with mac1(16) || mac2(16).
constexpr std::size_t kMacsLen = 2 * kMacLen;

class CookieChecker {
 public:
  CookieChecker() = default;
  ~CookieChecker();
  CookieChecker(const CookieChecker&) = delete;
  CookieChecker& operator=(const CookieChecker&) = delete;

  void init(const KeyBytes& our_public);
  bool mac1_valid(ByteView msg) const;
  // `source` identifies where the message came from (address bytes or a peer id).
  bool mac2_valid(ByteView msg, ByteView source, TimePoint now);
  // Writes a 64-byte cookie reply answering `msg` into out.
  void make_reply(ByteView msg, std::uint32_t receiver_index, ByteView source, TimePoint now,
                  std::uint8_t* out);

 private:
  Mac cookie_for(ByteView source, TimePoint now);

  Hash mac1_key_{};
  SymKey cookie_key_{};
  SymKey secret_{};
  TimePoint secret_birth_{};
  bool secret_set_ = false;
};

class CookieMaker {
 public:
  CookieMaker() = default;
  ~CookieMaker();
  CookieMaker(const CookieMaker&) = delete;
  CookieMaker& operator=(const CookieMaker&) = delete;

  void init(const KeyBytes& peer_public);
  // Fills the last 32 bytes of msg with mac1 and (with a fresh cookie) mac2.
  void add_macs(MutableByteView msg, TimePoint now);
  // Decrypts a cookie reply (64 bytes) for the last message we sent; false if it
  // does not open.
  bool consume_reply(ByteView reply, TimePoint now);
  bool has_fresh_cookie(TimePoint now) const;

 private:
  Hash mac1_key_{};
  SymKey cookie_key_{};
  Mac cookie_{};
  TimePoint cookie_birth_{};
  bool has_cookie_ = false;
  Mac last_mac1_{};
  bool has_last_mac1_ = false;
};

}  // namespace tw::wg
