#include "dataproc/wireguard/cookie.h"

#include <sodium.h>

#include <cstring>
#include <string_view>

#include "dataproc/wireguard/messages.h"

namespace tw::wg {
namespace {

constexpr std::string_view kLabelMac1 = "mac1----";
constexpr std::string_view kLabelCookie = "cookie--";
// A cookie stops being used a little before the responder rotates its secret.
constexpr auto kCookieUsableFor = kCookieSecretLifetime - std::chrono::seconds(5);

Hash labelled_key(std::string_view label, const KeyBytes& pub) {
  return blake2s({ByteView(reinterpret_cast<const std::uint8_t*>(label.data()), label.size()),
                  pub});
}

}  // namespace

CookieChecker::~CookieChecker() { sodium_memzero(secret_.data(), secret_.size()); }

void CookieChecker::init(const KeyBytes& our_public) {
  mac1_key_ = labelled_key(kLabelMac1, our_public);
  cookie_key_ = labelled_key(kLabelCookie, our_public);
}

bool CookieChecker::mac1_valid(ByteView msg) const {
  if (msg.size() < kMacsLen) return false;
  const Mac want = blake2s_mac(mac1_key_, msg.first(msg.size() - kMacsLen));
  return sodium_memcmp(want.data(), msg.data() + msg.size() - kMacsLen, kMacLen) == 0;
}

Mac CookieChecker::cookie_for(ByteView source, TimePoint now) {
  if (!secret_set_ || now - secret_birth_ >= kCookieSecretLifetime) {
    randombytes_buf(secret_.data(), secret_.size());
    secret_birth_ = now;
    secret_set_ = true;
  }
  return blake2s_mac(secret_, source);
}

bool CookieChecker::mac2_valid(ByteView msg, ByteView source, TimePoint now) {
  if (msg.size() < kMacsLen) return false;
  const Mac cookie = cookie_for(source, now);
  const Mac want = blake2s_mac(cookie, msg.first(msg.size() - kMacLen));
  return sodium_memcmp(want.data(), msg.data() + msg.size() - kMacLen, kMacLen) == 0;
}

void CookieChecker::make_reply(ByteView msg, std::uint32_t receiver_index, ByteView source,
                               TimePoint now, std::uint8_t* out) {
  write_header(out, MessageType::kCookieReply);
  store_le32(out + cookie_reply::kReceiver, receiver_index);
  std::uint8_t* nonce = out + cookie_reply::kNonce;
  randombytes_buf(nonce, kXNonceLen);
  Mac cookie = cookie_for(source, now);
  ByteView mac1 = msg.subspan(msg.size() - kMacsLen, kMacLen);
  xaead_seal(out + cookie_reply::kCookie, cookie_key_, nonce, cookie, mac1);
  sodium_memzero(cookie.data(), cookie.size());
}

CookieMaker::~CookieMaker() { sodium_memzero(cookie_.data(), cookie_.size()); }

void CookieMaker::init(const KeyBytes& peer_public) {
  mac1_key_ = labelled_key(kLabelMac1, peer_public);
  cookie_key_ = labelled_key(kLabelCookie, peer_public);
}

bool CookieMaker::has_fresh_cookie(TimePoint now) const {
  return has_cookie_ && now - cookie_birth_ < kCookieUsableFor;
}

void CookieMaker::add_macs(MutableByteView msg, TimePoint now) {
  std::uint8_t* mac1 = msg.data() + msg.size() - kMacsLen;
  std::uint8_t* mac2 = mac1 + kMacLen;
  last_mac1_ = blake2s_mac(mac1_key_, msg.first(msg.size() - kMacsLen));
  std::memcpy(mac1, last_mac1_.data(), kMacLen);
  has_last_mac1_ = true;
  if (has_fresh_cookie(now)) {
    const Mac m2 = blake2s_mac(cookie_, msg.first(msg.size() - kMacLen));
    std::memcpy(mac2, m2.data(), kMacLen);
  } else {
    std::memset(mac2, 0, kMacLen);
  }
}

bool CookieMaker::consume_reply(ByteView reply, TimePoint now) {
  if (!has_last_mac1_ || reply.size() != kCookieReplySize) return false;
  Mac cookie{};
  if (!xaead_open(cookie.data(), cookie_key_, reply.data() + cookie_reply::kNonce,
                  reply.subspan(cookie_reply::kCookie, kMacLen + kAeadTagLen), last_mac1_)) {
    return false;
  }
  cookie_ = cookie;
  cookie_birth_ = now;
  has_cookie_ = true;
  has_last_mac1_ = false;
  sodium_memzero(cookie.data(), cookie.size());
  return true;
}

}  // namespace tw::wg
