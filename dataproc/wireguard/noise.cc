#include "dataproc/wireguard/noise.h"

#include <sodium.h>

#include <cstring>
#include <string_view>

#include "dataproc/wireguard/messages.h"

namespace tw::wg {
namespace {

constexpr std::string_view kConstruction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
constexpr std::string_view kIdentifier = "WireGuard v1 zx2c4 Jason@zx2c4.com";

ByteView view(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// C0 = HASH(CONSTRUCTION), H0 = HASH(C0 || IDENTIFIER): constants, computed once.
const Hash& initial_chain() {
  static const Hash c = blake2s({view(kConstruction)});
  return c;
}
const Hash& initial_hash() {
  static const Hash h = blake2s({initial_chain(), view(kIdentifier)});
  return h;
}

void mix_hash(Hash& h, ByteView data) { h = blake2s({h, data}); }

void mix_key(Hash& chain, ByteView input) { kdf1(chain, chain, input); }

// Generates an ephemeral key pair.
void new_ephemeral(KeyBytes& priv, std::uint8_t* pub_out) {
  priv = random_clamped_private();
  crypto_scalarmult_curve25519_base(pub_out, priv.data());
}

template <typename T>
void wipe(T& a) {
  sodium_memzero(a.data(), a.size());
}

}  // namespace

LocalIdentity::LocalIdentity(const KeyBytes& priv) : private_key(priv) {
  public_key = x25519_base(priv);
  responder_hash = blake2s({initial_hash(), public_key});
}

LocalIdentity::~LocalIdentity() { wipe(private_key); }

Handshake::~Handshake() {
  clear_ephemeral();
  wipe(static_static);
  wipe(preshared_key);
}

bool Handshake::init(const LocalIdentity& local, const KeyBytes& remote_static_key) {
  remote_static = remote_static_key;
  static_static_ok = x25519(static_static.data(), local.private_key.data(), remote_static.data());
  return static_static_ok;
}

void Handshake::clear_ephemeral() {
  wipe(hash);
  wipe(chaining_key);
  wipe(ephemeral_private);
  wipe(remote_ephemeral);
  local_index = 0;
  remote_index = 0;
  state = HandshakeState::kZeroed;
}

ConsumedInitiation::~ConsumedInitiation() {
  wipe(hash);
  wipe(chaining_key);
}

bool create_initiation(Handshake& hs, const LocalIdentity& local, std::uint32_t local_index,
                       const Tai64n& now_ts, std::uint8_t* out) {
  if (!hs.static_static_ok) return false;
  hs.clear_ephemeral();
  hs.chaining_key = initial_chain();
  hs.hash = blake2s({initial_hash(), hs.remote_static});

  write_header(out, MessageType::kInitiation);
  store_le32(out + initiation::kSender, local_index);
  std::uint8_t* eph = out + initiation::kEphemeral;
  new_ephemeral(hs.ephemeral_private, eph);
  mix_key(hs.chaining_key, {eph, 32});
  mix_hash(hs.hash, {eph, 32});

  KeyBytes dh{};
  SymKey key{};
  bool ok = x25519(dh.data(), hs.ephemeral_private.data(), hs.remote_static.data());
  if (ok) {
    kdf2(hs.chaining_key, key, hs.chaining_key, dh);
    aead_seal(out + initiation::kStatic, key, 0, local.public_key, hs.hash);
    mix_hash(hs.hash, {out + initiation::kStatic, 32 + kAeadTagLen});

    kdf2(hs.chaining_key, key, hs.chaining_key, hs.static_static);
    aead_seal(out + initiation::kTimestamp, key, 0, now_ts, hs.hash);
    mix_hash(hs.hash, {out + initiation::kTimestamp, 12 + kAeadTagLen});
    hs.local_index = local_index;
    hs.state = HandshakeState::kCreatedInitiation;
  }
  wipe(dh);
  wipe(key);
  if (!ok) hs.clear_ephemeral();
  return ok;
}

namespace detail {
std::optional<ConsumedInitiation> consume_initiation_with(
    const LocalIdentity& local, ByteView msg,
    const KeyBytes* (*lookup)(void* ctx, const KeyBytes& initiator), void* ctx) {
  if (msg.size() != kInitiationSize) return std::nullopt;
  ConsumedInitiation ci;
  ci.chaining_key = initial_chain();
  ci.hash = local.responder_hash;
  ci.remote_index = load_le32(msg.data() + initiation::kSender);
  std::memcpy(ci.remote_ephemeral.data(), msg.data() + initiation::kEphemeral, 32);
  mix_key(ci.chaining_key, ci.remote_ephemeral);
  mix_hash(ci.hash, ci.remote_ephemeral);

  KeyBytes dh{};
  SymKey key{};
  std::optional<ConsumedInitiation> result;
  do {
    if (!x25519(dh.data(), local.private_key.data(), ci.remote_ephemeral.data())) break;
    kdf2(ci.chaining_key, key, ci.chaining_key, dh);
    ByteView enc_static = msg.subspan(initiation::kStatic, 32 + kAeadTagLen);
    if (!aead_open(ci.initiator_static.data(), key, 0, enc_static, ci.hash)) break;
    mix_hash(ci.hash, enc_static);

    const KeyBytes* static_static = lookup(ctx, ci.initiator_static);
    if (static_static == nullptr) break;
    kdf2(ci.chaining_key, key, ci.chaining_key, *static_static);
    ByteView enc_ts = msg.subspan(initiation::kTimestamp, 12 + kAeadTagLen);
    if (!aead_open(ci.timestamp.data(), key, 0, enc_ts, ci.hash)) break;
    mix_hash(ci.hash, enc_ts);
    result.emplace();
    result->initiator_static = ci.initiator_static;
    result->timestamp = ci.timestamp;
    result->hash = ci.hash;
    result->chaining_key = ci.chaining_key;
    result->remote_ephemeral = ci.remote_ephemeral;
    result->remote_index = ci.remote_index;
  } while (false);
  wipe(dh);
  wipe(key);
  return result;
}
}  // namespace detail

void accept_initiation(Handshake& hs, const ConsumedInitiation& ci, TimePoint now) {
  hs.clear_ephemeral();
  hs.hash = ci.hash;
  hs.chaining_key = ci.chaining_key;
  hs.remote_ephemeral = ci.remote_ephemeral;
  hs.remote_index = ci.remote_index;
  hs.latest_timestamp = ci.timestamp;
  hs.last_initiation_consumption = now;
  hs.has_consumed_initiation = true;
  hs.state = HandshakeState::kConsumedInitiation;
}

bool create_response(Handshake& hs, std::uint32_t local_index, std::uint8_t* out) {
  if (hs.state != HandshakeState::kConsumedInitiation) return false;
  write_header(out, MessageType::kResponse);
  store_le32(out + response::kSender, local_index);
  store_le32(out + response::kReceiver, hs.remote_index);
  std::uint8_t* eph = out + response::kEphemeral;
  new_ephemeral(hs.ephemeral_private, eph);
  mix_key(hs.chaining_key, {eph, 32});
  mix_hash(hs.hash, {eph, 32});

  KeyBytes dh{};
  Hash tau{};
  SymKey key{};
  bool ok = x25519(dh.data(), hs.ephemeral_private.data(), hs.remote_ephemeral.data());
  if (ok) {
    mix_key(hs.chaining_key, dh);
    ok = x25519(dh.data(), hs.ephemeral_private.data(), hs.remote_static.data());
  }
  if (ok) {
    mix_key(hs.chaining_key, dh);
    kdf3(hs.chaining_key, tau, key, hs.chaining_key, hs.preshared_key);
    mix_hash(hs.hash, tau);
    aead_seal(out + response::kEmpty, key, 0, {}, hs.hash);
    mix_hash(hs.hash, {out + response::kEmpty, kAeadTagLen});
    hs.local_index = local_index;
    hs.state = HandshakeState::kCreatedResponse;
  }
  wipe(dh);
  wipe(tau);
  wipe(key);
  if (!ok) hs.clear_ephemeral();
  return ok;
}

bool consume_response(Handshake& hs, const LocalIdentity& local, ByteView msg) {
  if (hs.state != HandshakeState::kCreatedInitiation || msg.size() != kResponseSize) return false;
  Hash chain = hs.chaining_key;
  Hash hash = hs.hash;
  KeyBytes remote_eph{};
  std::memcpy(remote_eph.data(), msg.data() + response::kEphemeral, 32);
  mix_key(chain, remote_eph);
  mix_hash(hash, remote_eph);

  KeyBytes dh{};
  Hash tau{};
  SymKey key{};
  bool ok = x25519(dh.data(), hs.ephemeral_private.data(), remote_eph.data());
  if (ok) {
    mix_key(chain, dh);
    ok = x25519(dh.data(), local.private_key.data(), remote_eph.data());
  }
  if (ok) {
    mix_key(chain, dh);
    kdf3(chain, tau, key, chain, hs.preshared_key);
    mix_hash(hash, tau);
    ByteView empty = msg.subspan(response::kEmpty, kAeadTagLen);
    std::uint8_t nothing[1];
    ok = aead_open(nothing, key, 0, empty, hash);
    if (ok) mix_hash(hash, empty);
  }
  if (ok) {
    hs.chaining_key = chain;
    hs.hash = hash;
    hs.remote_ephemeral = remote_eph;
    hs.remote_index = load_le32(msg.data() + response::kSender);
    hs.state = HandshakeState::kConsumedResponse;
  }
  wipe(chain);
  wipe(hash);
  wipe(dh);
  wipe(tau);
  wipe(key);
  return ok;
}

std::unique_ptr<Keypair> derive_keypair(Handshake& hs, TimePoint now) {
  const bool initiator = hs.state == HandshakeState::kConsumedResponse;
  if (!initiator && hs.state != HandshakeState::kCreatedResponse) return nullptr;
  auto kp = std::make_unique<Keypair>();
  Hash first{}, second{};
  kdf2(first, second, hs.chaining_key, {});
  kp->send_key = initiator ? first : second;
  kp->recv_key = initiator ? second : first;
  kp->initiator = initiator;
  kp->birth = now;
  kp->local_index = hs.local_index;
  kp->remote_index = hs.remote_index;
  wipe(first);
  wipe(second);
  hs.clear_ephemeral();
  return kp;
}

}  // namespace tw::wg
