// The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake of WireGuard, as pure functions
// over a per-peer Handshake state. Message MACs (mac1/mac2) are added and checked by
// cookie.h; index allocation, timestamps and replay policy belong to the device.
#pragma once

#include <cstdint>
#include <optional>

#include "common/keys.h"
#include "dataproc/wireguard/crypto.h"
#include "dataproc/wireguard/keypair.h"
#include "dataproc/wireguard/tai64n.h"

namespace tw::wg {

// Our static key with the hash state that depends only on it (precomputed once).
struct LocalIdentity {
  KeyBytes private_key{};
  KeyBytes public_key{};
  Hash responder_hash{};  // HASH(HASH(C0 || IDENTIFIER) || our public key)

  LocalIdentity() = default;
  explicit LocalIdentity(const KeyBytes& priv);
  LocalIdentity(const LocalIdentity&) = delete;
  LocalIdentity& operator=(const LocalIdentity&) = delete;
  ~LocalIdentity();
};

enum class HandshakeState : std::uint8_t {
  kZeroed,
  kCreatedInitiation,
  kConsumedInitiation,
  kCreatedResponse,
  kConsumedResponse,
};

struct Handshake {
  HandshakeState state = HandshakeState::kZeroed;
  KeyBytes remote_static{};
  KeyBytes static_static{};  // DH(our static, their static), precomputed
  bool static_static_ok = false;
  SymKey preshared_key{};
  Hash hash{};
  Hash chaining_key{};
  KeyBytes ephemeral_private{};
  KeyBytes remote_ephemeral{};
  std::uint32_t local_index = 0;
  std::uint32_t remote_index = 0;
  Tai64n latest_timestamp{};
  TimePoint last_initiation_consumption{};
  bool has_consumed_initiation = false;

  Handshake() = default;
  Handshake(const Handshake&) = delete;
  Handshake& operator=(const Handshake&) = delete;
  ~Handshake();

  // Sets the peer and precomputes the static-static DH; false if it is low-order.
  bool init(const LocalIdentity& local, const KeyBytes& remote_static_key);
  // Forgets the in-progress handshake (keeps the peer's keys and replay state).
  void clear_ephemeral();
};

// Writes an initiation up to (not including) mac1 into out[0..116).
bool create_initiation(Handshake& hs, const LocalIdentity& local, std::uint32_t local_index,
                       const Tai64n& now_ts, std::uint8_t* out);

// The outcome of decrypting an initiation: who sent it and the state to continue.
struct ConsumedInitiation {
  KeyBytes initiator_static{};
  Tai64n timestamp{};
  Hash hash{};
  Hash chaining_key{};
  KeyBytes remote_ephemeral{};
  std::uint32_t remote_index = 0;
  ~ConsumedInitiation();
};
// Decrypts the static key and the timestamp of an initiation (mac1 already checked).
// `lookup_static_static` returns the precomputed DH for the initiator's key, or
// nullptr when the key is not one of our peers.
template <typename LookupFn>
std::optional<ConsumedInitiation> consume_initiation(const LocalIdentity& local,
                                                     ByteView msg, LookupFn lookup);

// Accepts a decrypted initiation into the peer's handshake state.
void accept_initiation(Handshake& hs, const ConsumedInitiation& ci, TimePoint now);

// Writes a response up to mac1 into out[0..60).
bool create_response(Handshake& hs, std::uint32_t local_index, std::uint8_t* out);

// Processes a response for a handshake in kCreatedInitiation (mac1 already checked).
bool consume_response(Handshake& hs, const LocalIdentity& local, ByteView msg);

// Derives the transport keys of a finished handshake and zeroes the handshake state.
std::unique_ptr<Keypair> derive_keypair(Handshake& hs, TimePoint now);

// ---- implementation detail used by the template above
namespace detail {
std::optional<ConsumedInitiation> consume_initiation_with(
    const LocalIdentity& local, ByteView msg,
    const KeyBytes* (*lookup)(void* ctx, const KeyBytes& initiator), void* ctx);
}

template <typename LookupFn>
std::optional<ConsumedInitiation> consume_initiation(const LocalIdentity& local,
                                                     ByteView msg, LookupFn lookup) {
  return detail::consume_initiation_with(
      local, msg,
      [](void* ctx, const KeyBytes& k) -> const KeyBytes* {
        return (*static_cast<LookupFn*>(ctx))(k);
      },
      &lookup);
}

}  // namespace tw::wg
