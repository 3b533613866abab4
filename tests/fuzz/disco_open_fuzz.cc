// Fuzz target: the receive path for one datagram (classify, header, open in place,
// parse) never crashes on any bytes, and a forged box never opens.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "netproc/disco/box.h"
#include "netproc/disco/datagram_kind.h"

namespace {

struct Keys {
  tw::DiscoPrivate ours{[] {
    tw::KeyBytes k;
    k.fill(0x22);
    return k;
  }()};
  tw::DiscoPrivate peer{[] {
    tw::KeyBytes k;
    k.fill(0x11);
    return k;
  }()};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static bool init = (tw::crypto_init(), true);
  (void)init;
  static const Keys keys;
  tw::Bytes packet(data, data + size);
  (void)tw::disco::classify_datagram(packet);
  auto header = tw::disco::parse_header(packet);
  if (!header) return 0;
  auto key = tw::disco::DiscoSharedKey::derive(keys.ours, header->sender);
  if (!key) return 0;
  auto opened = tw::disco::open_in_place(*key, packet);
  if (opened.ok()) {
    // Only a box sealed under the peer's shared key (e.g. a seed) can open. The sender
    // bytes may still differ: X25519 ignores bit 255, so callers must look peers up by
    // the exact header key (an unknown key is dropped before open).
    static const auto peer_key =
        tw::disco::DiscoSharedKey::derive(keys.ours, keys.peer.public_key()).value();
    if (std::memcmp(key->data(), peer_key.data(), tw::kKeyLen) != 0) std::abort();
    (void)tw::disco::parse_message(opened.plaintext);
  }
  return 0;
}
