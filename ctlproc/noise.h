// The ts2021 transport below HTTP/2 (docs/control.md): the Noise IK initiator
// (Noise_IK_25519_ChaChaPoly_BLAKE2s with Tailscale's prologue) and the record layer
// with its big-endian nonce and 4096-byte frames. Pure: bytes in, bytes out.
//
// The primitives come from dataproc/wireguard/crypto.h (BLAKE2s, HMAC-BLAKE2s HKDF,
// X25519) and libsodium (ChaCha20-Poly1305 IETF); nothing here is a primitive itself.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "common/bytes.h"
#include "common/keys.h"
#include "common/result.h"

namespace tw::ctl {

constexpr std::size_t kInitiationLen = 101;
constexpr std::size_t kResponseLen = 51;
constexpr std::size_t kRecordHeaderLen = 3;
constexpr std::size_t kMaxFrameLen = 4096;                                  // header included
constexpr std::size_t kMaxCiphertextLen = kMaxFrameLen - kRecordHeaderLen;  // 4093
constexpr std::size_t kMaxPlaintextLen = kMaxCiphertextLen - 16;            // 4077

constexpr std::uint8_t kMsgInitiation = 1;
constexpr std::uint8_t kMsgResponse = 2;
constexpr std::uint8_t kMsgError = 3;
constexpr std::uint8_t kMsgRecord = 4;

using SymKey32 = std::array<std::uint8_t, 32>;

// One direction of the record layer: ChaCha20-Poly1305 with nonce 4 zero bytes ||
// counter as u64 BIG-endian, empty AD, counter from 0.
class RecordCipher {
 public:
  RecordCipher() = default;
  explicit RecordCipher(const SymKey32& key) : key_(key) {}
  ~RecordCipher();
  RecordCipher(const RecordCipher&) = default;
  RecordCipher& operator=(const RecordCipher&) = default;

  // Appends one complete frame (header + ciphertext) for `plain` (<= kMaxPlaintextLen).
  Status seal_frame(ByteView plain, Bytes& out);
  // Decrypts a ciphertext (with tag) into `out` (appended).
  Status open(ByteView cipher, Bytes& out);
  std::uint64_t counter() const { return n_; }

 private:
  SymKey32 key_{};
  std::uint64_t n_ = 0;
  bool exhausted_ = false;
};

struct TransportKeys {
  SymKey32 send{};  // client -> server (k1)
  SymKey32 recv{};  // server -> client (k2)
  std::array<std::uint8_t, 32> handshake_hash{};
};

// The client side of the handshake. The ephemeral key may be injected for tests.
class Initiator {
 public:
  Initiator(const KeyBytes& machine_private, const KeyBytes& control_public,
            std::uint16_t protocol_version, std::optional<KeyBytes> ephemeral_private = {});
  ~Initiator();
  Initiator(const Initiator&) = delete;
  Initiator& operator=(const Initiator&) = delete;

  // The 101-byte initiation message; Error if a DH is all-zero (hostile control key).
  Result<std::array<std::uint8_t, kInitiationLen>> initiation();
  // Consumes the server's reply: a 51-byte response, or an error message whose text is
  // reported (unauthenticated; a hint only).
  Result<TransportKeys> finish(ByteView reply);

 private:
  void mix_hash(ByteView data);
  bool mix_key_dh(const KeyBytes& priv, const KeyBytes& pub);

  KeyBytes machine_priv_{};
  KeyBytes machine_pub_{};
  KeyBytes control_pub_{};
  KeyBytes e_priv_{};
  KeyBytes e_pub_{};
  std::uint16_t version_;
  std::array<std::uint8_t, 32> h_{};
  std::array<std::uint8_t, 32> ck_{};
  SymKey32 k_{};
  bool started_ = false;
  bool done_ = false;
};

// The prologue string mixed into h: "Tailscale Control Protocol v<version>".
std::string noise_prologue(std::uint16_t version);

// Reassembles frames from a byte stream and decrypts them. After any error it stays
// failed (the connection must be dropped), as the Go implementation does.
class RecordReader {
 public:
  explicit RecordReader(const SymKey32& key) : cipher_(key) {}
  // Appends the plaintext of every complete frame in `in` (plus buffered bytes) to `out`.
  Status feed(ByteView in, Bytes& out);
  std::size_t buffered() const { return buf_.size(); }

 private:
  RecordCipher cipher_;
  Bytes buf_;
  std::string failed_;
};

// Splits a plaintext byte stream into frames of at most 4096 bytes.
class RecordWriter {
 public:
  explicit RecordWriter(const SymKey32& key) : cipher_(key) {}
  Status seal(ByteView plain, Bytes& out);

 private:
  RecordCipher cipher_;
  std::string failed_;
};

// The optional early payload a server may put before its HTTP/2 preface:
// ff ff ff 'T' 'S' | u32 BE length | JSON (EarlyNoise). It is validated as JSON and
// dropped; every other byte passes through unchanged.
class EarlyPayloadFilter {
 public:
  static constexpr std::size_t kMaxEarlyPayload = 10 * 1024 * 1024;
  Status feed(ByteView in, Bytes& out);
  bool saw_payload() const { return saw_payload_; }
  const std::string& challenge() const { return challenge_; }

 private:
  enum class State { kPeek, kBody, kPass } state_ = State::kPeek;
  Bytes buf_;
  std::uint32_t want_ = 0;
  bool saw_payload_ = false;
  std::string challenge_;
};

}  // namespace tw::ctl
