// Node (WireGuard) and disco key pairs: X25519 via libsodium, Tailscale text forms,
// private keys wiped on destruction.
//
// Text forms: public  "nodekey:<64 hex>", "discokey:<64 hex>";
//             private "privkey:<64 hex>" (node, as Tailscale), "discoprivkey:<64 hex>"
//             (Tailscale has no text form for a disco private key; ours is distinct so
//             the two private keys can never be swapped by accident).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"

namespace tw {

constexpr std::size_t kKeyLen = 32;
using KeyBytes = std::array<std::uint8_t, kKeyLen>;

struct NodeKeyTag {
  static constexpr std::string_view kPublicPrefix = "nodekey:";
  static constexpr std::string_view kPrivatePrefix = "privkey:";
  static constexpr std::string_view kName = "node";
};
struct DiscoKeyTag {
  static constexpr std::string_view kPublicPrefix = "discokey:";
  static constexpr std::string_view kPrivatePrefix = "discoprivkey:";
  static constexpr std::string_view kName = "disco";
};

// Parses "<prefix><64 hex>" into 32 bytes with an error that says what is wrong.
Result<KeyBytes> parse_prefixed_key(std::string_view text, std::string_view prefix,
                                    std::string_view what);
void secure_wipe(void* p, std::size_t n);

template <typename Tag>
class PublicKey {
 public:
  PublicKey() = default;
  explicit PublicKey(const KeyBytes& b) : b_(b) {}
  static PublicKey from_bytes(const std::uint8_t* p) {
    PublicKey k;
    for (std::size_t i = 0; i < kKeyLen; ++i) k.b_[i] = p[i];
    return k;
  }
  static Result<PublicKey> parse(std::string_view text) {
    auto r = parse_prefixed_key(text, Tag::kPublicPrefix,
                                std::string(Tag::kName) + " public key");
    if (!r) return make_error(r.error());
    return PublicKey(*r);
  }
  const KeyBytes& bytes() const { return b_; }
  const std::uint8_t* data() const { return b_.data(); }
  bool is_zero() const { return b_ == KeyBytes{}; }
  std::string to_string() const { return std::string(Tag::kPublicPrefix) + to_hex(b_); }
  std::string hex() const { return to_hex(b_); }
  friend bool operator==(const PublicKey&, const PublicKey&) = default;
  friend auto operator<=>(const PublicKey&, const PublicKey&) = default;

 private:
  KeyBytes b_{};
};

template <typename Tag>
class PrivateKey {
 public:
  PrivateKey() = default;
  explicit PrivateKey(const KeyBytes& b) : b_(b) {}
  ~PrivateKey() { secure_wipe(b_.data(), b_.size()); }
  PrivateKey(const PrivateKey&) = default;
  PrivateKey& operator=(const PrivateKey&) = default;

  // A fresh clamped X25519 private key from libsodium's CSPRNG.
  static PrivateKey generate();
  static Result<PrivateKey> parse(std::string_view text) {
    auto r = parse_prefixed_key(text, Tag::kPrivatePrefix,
                                std::string(Tag::kName) + " private key");
    if (!r) return make_error(r.error());
    PrivateKey k(*r);
    secure_wipe(r->data(), r->size());
    return k;
  }
  // X25519 base-point multiplication.
  PublicKey<Tag> public_key() const;
  const KeyBytes& bytes() const { return b_; }
  const std::uint8_t* data() const { return b_.data(); }
  bool is_zero() const { return b_ == KeyBytes{}; }
  std::string to_string() const { return std::string(Tag::kPrivatePrefix) + to_hex(b_); }

 private:
  KeyBytes b_{};
};

using NodePublic = PublicKey<NodeKeyTag>;
using NodePrivate = PrivateKey<NodeKeyTag>;
using DiscoPublic = PublicKey<DiscoKeyTag>;
using DiscoPrivate = PrivateKey<DiscoKeyTag>;

KeyBytes x25519_base(const KeyBytes& priv);
KeyBytes random_clamped_private();

template <typename Tag>
PrivateKey<Tag> PrivateKey<Tag>::generate() {
  KeyBytes b = random_clamped_private();
  PrivateKey k(b);
  secure_wipe(b.data(), b.size());
  return k;
}

template <typename Tag>
PublicKey<Tag> PrivateKey<Tag>::public_key() const {
  return PublicKey<Tag>(x25519_base(b_));
}

struct KeyHash {
  template <typename Tag>
  std::size_t operator()(const PublicKey<Tag>& k) const noexcept {
    std::size_t h = 0;
    for (std::size_t i = 0; i < sizeof h; ++i) h = (h << 8) | k.bytes()[i];
    return h;  // keys are uniformly random: the first bytes are a good hash
  }
};

// Must be called once before any other key function (wraps sodium_init).
void crypto_init();

}  // namespace tw
