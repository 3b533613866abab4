// The disco datagram: `magic(6) | sender disco public(32) | nonce(24) | tag(16) |
// ciphertext`, sealed
// with NaCl box under a per-peer precomputed key. Built for the per-packet path:
// seal into a caller buffer, open in place, no allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "common/bytes.h"
#include "common/keys.h"
#include "common/result.h"
#include "netproc/disco/message.h"

namespace tw::disco {

constexpr std::array<std::uint8_t, 6> kMagic = {0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac};  // "TS💬"
constexpr std::size_t kNonceLen = 24;
constexpr std::size_t kTagLen = 16;
constexpr std::size_t kHeaderLen = kMagic.size() + kKeyLen + kNonceLen;      // 62
constexpr std::size_t kOverhead = kHeaderLen + kTagLen;                      // 78
constexpr std::size_t kMinMessagePacketLen = kOverhead + kMessageHeaderLen;  // 80

using Nonce = std::array<std::uint8_t, kNonceLen>;

constexpr std::size_t sealed_len(std::size_t plaintext_len) { return kOverhead + plaintext_len; }

// crypto_box_beforenm(their public, our private), wiped on destruction. One per peer.
class DiscoSharedKey {
 public:
  // Fails when the peer key is a low-order point (the X25519 result is all zero).
  static Result<DiscoSharedKey> derive(const DiscoPrivate& ours, const DiscoPublic& theirs);
  ~DiscoSharedKey();
  DiscoSharedKey(const DiscoSharedKey&) = default;
  DiscoSharedKey& operator=(const DiscoSharedKey&) = default;

  const std::uint8_t* data() const { return k_.data(); }

 private:
  DiscoSharedKey() = default;
  KeyBytes k_{};
};

// LooksLikeDiscoWrapper: at least the 62-byte header and the magic.
bool looks_like_disco(ByteView packet) noexcept;

struct DiscoHeader {
  DiscoPublic sender;
  Nonce nonce{};
};
// The cleartext header, so the caller can find the sender's shared key; no crypto.
std::optional<DiscoHeader> parse_header(ByteView packet) noexcept;

// Seals `plaintext` from `sender` into `out` (>= sealed_len bytes) with a fresh random
// nonce. Returns bytes written, or 0 if `out` is too small. `plaintext` may already
// sit at out[kOverhead..] (in-place sealing).
std::size_t seal(const DiscoSharedKey& key, const DiscoPublic& sender, ByteView plaintext,
                 MutableByteView out);
std::size_t seal_with_nonce(const DiscoSharedKey& key, const DiscoPublic& sender,
                            const Nonce& nonce, ByteView plaintext, MutableByteView out);
// Encodes `m` straight into `out` and seals it in place (random nonce).
std::size_t seal_message(const DiscoSharedKey& key, const DiscoPublic& sender, const Message& m,
                         MutableByteView out);
std::size_t seal_message_with_nonce(const DiscoSharedKey& key, const DiscoPublic& sender,
                                    const Nonce& nonce, const Message& m, MutableByteView out);

enum class OpenStatus : std::uint8_t {
  kOk,
  kNotDisco,        // shorter than the 78-byte header+tag, or wrong magic
  kAuthFailed,      // wrong key or tampered bytes
  kBufferTooSmall,  // caller's output buffer shorter than the plaintext
};

struct Opened {
  OpenStatus status = OpenStatus::kNotDisco;
  ByteView plaintext;  // valid only when status == kOk
  bool ok() const { return status == OpenStatus::kOk; }
};

// Opens in place: the plaintext ends up at packet[kOverhead..] and is returned.
// On failure the packet's ciphertext bytes are unspecified.
Opened open_in_place(const DiscoSharedKey& key, MutableByteView packet);
// Opens into `out`, leaving `packet` untouched.
Opened open(const DiscoSharedKey& key, ByteView packet, MutableByteView out);

}  // namespace tw::disco
