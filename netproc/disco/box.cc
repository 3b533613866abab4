#include "netproc/disco/box.h"

#include <sodium.h>

#include <cstring>

namespace tw::disco {

static_assert(crypto_box_BEFORENMBYTES == kKeyLen);
static_assert(crypto_box_NONCEBYTES == kNonceLen);
static_assert(crypto_box_MACBYTES == kTagLen);

Result<DiscoSharedKey> DiscoSharedKey::derive(const DiscoPrivate& ours, const DiscoPublic& theirs) {
  DiscoSharedKey k;
  if (crypto_box_beforenm(k.k_.data(), theirs.data(), ours.data()) != 0) {
    return make_error("disco: peer key gives a zero shared secret");
  }
  return k;
}

DiscoSharedKey::~DiscoSharedKey() { secure_wipe(k_.data(), k_.size()); }

bool looks_like_disco(ByteView p) noexcept {
  return p.size() >= kHeaderLen && std::memcmp(p.data(), kMagic.data(), kMagic.size()) == 0;
}

std::optional<DiscoHeader> parse_header(ByteView p) noexcept {
  if (!looks_like_disco(p)) return std::nullopt;
  DiscoHeader h;
  h.sender = DiscoPublic::from_bytes(p.data() + kMagic.size());
  std::memcpy(h.nonce.data(), p.data() + kMagic.size() + kKeyLen, kNonceLen);
  return h;
}

std::size_t seal_with_nonce(const DiscoSharedKey& key, const DiscoPublic& sender,
                            const Nonce& nonce, ByteView plaintext, MutableByteView out) {
  const std::size_t n = sealed_len(plaintext.size());
  if (out.size() < n) return 0;
  std::uint8_t* p = out.data();
  std::memcpy(p, kMagic.data(), kMagic.size());
  std::memcpy(p + kMagic.size(), sender.data(), kKeyLen);
  std::memcpy(p + kMagic.size() + kKeyLen, nonce.data(), kNonceLen);
  // Tag then ciphertext, as Go's box.Seal; libsodium handles in-place/overlap.
  crypto_box_easy_afternm(p + kHeaderLen, plaintext.data(), plaintext.size(), nonce.data(),
                          key.data());
  return n;
}

std::size_t seal(const DiscoSharedKey& key, const DiscoPublic& sender, ByteView plaintext,
                 MutableByteView out) {
  Nonce nonce;
  randombytes_buf(nonce.data(), nonce.size());
  return seal_with_nonce(key, sender, nonce, plaintext, out);
}

std::size_t seal_message_with_nonce(const DiscoSharedKey& key, const DiscoPublic& sender,
                                    const Nonce& nonce, const Message& m, MutableByteView out) {
  if (out.size() < kOverhead) return 0;
  const std::size_t pt_len = encode(m, out.subspan(kOverhead));
  if (pt_len == 0) return 0;
  return seal_with_nonce(key, sender, nonce, ByteView(out.data() + kOverhead, pt_len), out);
}

std::size_t seal_message(const DiscoSharedKey& key, const DiscoPublic& sender, const Message& m,
                         MutableByteView out) {
  Nonce nonce;
  randombytes_buf(nonce.data(), nonce.size());
  return seal_message_with_nonce(key, sender, nonce, m, out);
}

namespace {

Opened open_to(const DiscoSharedKey& key, ByteView packet, std::uint8_t* out, std::size_t cap) {
  if (packet.size() < kOverhead || !looks_like_disco(packet)) return {};
  const std::size_t pt_len = packet.size() - kOverhead;
  if (cap < pt_len) return {OpenStatus::kBufferTooSmall, {}};
  const std::uint8_t* nonce = packet.data() + kMagic.size() + kKeyLen;
  if (crypto_box_open_easy_afternm(out, packet.data() + kHeaderLen, pt_len + kTagLen, nonce,
                                   key.data()) != 0) {
    return {OpenStatus::kAuthFailed, {}};
  }
  return {OpenStatus::kOk, ByteView(out, pt_len)};
}

}  // namespace

Opened open_in_place(const DiscoSharedKey& key, MutableByteView packet) {
  std::uint8_t* out = packet.size() >= kOverhead ? packet.data() + kOverhead : packet.data();
  return open_to(key, packet, out, packet.size() >= kOverhead ? packet.size() - kOverhead : 0);
}

Opened open(const DiscoSharedKey& key, ByteView packet, MutableByteView out) {
  return open_to(key, packet, out.data(), out.size());
}

}  // namespace tw::disco
