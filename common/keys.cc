#include "common/keys.h"

#include <sodium.h>

#include <cstdlib>

namespace tw {

void crypto_init() {
  if (sodium_init() < 0) {
    std::abort();  // no usable CSPRNG: nothing is safe to do
  }
}

void secure_wipe(void* p, std::size_t n) { sodium_memzero(p, n); }

Result<KeyBytes> parse_prefixed_key(std::string_view text, std::string_view prefix,
                                    std::string_view what) {
  if (text.substr(0, prefix.size()) != prefix) {
    return make_error(std::string(what) + ": expected prefix \"" + std::string(prefix) + "\"");
  }
  std::string_view hex = text.substr(prefix.size());
  if (hex.size() != 2 * kKeyLen) {
    return make_error(std::string(what) + ": expected 64 hex digits after \"" +
                      std::string(prefix) + "\", got " + std::to_string(hex.size()));
  }
  auto b = from_hex_fixed<kKeyLen>(hex);
  if (!b) return make_error(std::string(what) + ": not hexadecimal");
  return *b;
}

KeyBytes x25519_base(const KeyBytes& priv) {
  KeyBytes pub{};
  crypto_scalarmult_curve25519_base(pub.data(), priv.data());
  return pub;
}

KeyBytes random_clamped_private() {
  KeyBytes b{};
  randombytes_buf(b.data(), b.size());
  b[0] &= 248;
  b[31] = static_cast<std::uint8_t>((b[31] & 127) | 64);
  return b;
}

}  // namespace tw
