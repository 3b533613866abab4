// The Noise_IKpsk2 handshake of WireGuard, step by step as the paper and the kernel's
// noise.c write it. Messages (-> initiator to responder, <- back):
//
//   <- s                                  (pre-message: the responder's static key)
//   -> e, es, s, ss, {t}                  create_initiation / consume_initiation_with
//   <- e, ee, se, psk, {}                 create_response / consume_response
//
// e: a fresh ephemeral public key, mixed into chaining key and hash; es, ss, ee, se:
// Diffie-Hellman results mixed into the chaining key (the first letter is the
// initiator's key); s: our static public key, encrypted; {t}: the TAI64N timestamp,
// encrypted; psk: the preshared key (zero unless configured); {}: an empty AEAD
// payload that proves the responder derived the same keys. Every AEAD seals under
// the running hash as associated data, and the hash then absorbs the ciphertext.
#include "dataproc/wireguard/noise.h"

#include <sodium.h>

#include <cstring>
#include <string_view>
#include <tuple>

#include "dataproc/wireguard/messages.h"

namespace tw::wg {
namespace {

constexpr std::string_view kConstruction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
constexpr std::string_view kIdentifier = "WireGuard v1 zx2c4 Jason@zx2c4.com";

// Field lengths of the handshake messages.
constexpr std::size_t kPublicLen = kKeyLen;                                  // e, s: X25519 public
constexpr std::size_t kTimestampLen = std::tuple_size_v<Tai64n>;             // t: TAI64N
constexpr std::size_t kEncryptedStaticLen = kPublicLen + kAeadTagLen;        // AEAD(s)
constexpr std::size_t kEncryptedTimestampLen = kTimestampLen + kAeadTagLen;  // AEAD(t)
constexpr std::size_t kEncryptedNothingLen = kAeadTagLen;                    // AEAD(empty)
static_assert(initiation::kStatic - initiation::kEphemeral == kPublicLen);
static_assert(initiation::kTimestamp - initiation::kStatic == kEncryptedStaticLen);
static_assert(initiation::kMac1 - initiation::kTimestamp == kEncryptedTimestampLen);
static_assert(response::kEmpty - response::kEphemeral == kPublicLen);
static_assert(response::kMac1 - response::kEmpty == kEncryptedNothingLen);
// Each handshake AEAD uses a fresh key once, so its nonce is always zero.
constexpr std::uint64_t kHandshakeNonce = 0;

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
  // <- s: the responder's static key is known in advance.
  hs.chaining_key = initial_chain();
  hs.hash = blake2s({initial_hash(), hs.remote_static});

  write_header(out, MessageType::kInitiation);
  store_le32(out + initiation::kSender, local_index);
  // -> e
  std::uint8_t* eph = out + initiation::kEphemeral;
  new_ephemeral(hs.ephemeral_private, eph);
  mix_key(hs.chaining_key, {eph, kPublicLen});
  mix_hash(hs.hash, {eph, kPublicLen});

  KeyBytes dh{};
  SymKey key{};
  // -> es
  bool ok = x25519(dh.data(), hs.ephemeral_private.data(), hs.remote_static.data());
  if (ok) {
    kdf2(hs.chaining_key, key, hs.chaining_key, dh);
    // -> s
    aead_seal(out + initiation::kStatic, key, kHandshakeNonce, local.public_key, hs.hash);
    mix_hash(hs.hash, {out + initiation::kStatic, kEncryptedStaticLen});

    // -> ss (precomputed in Handshake::init)
    kdf2(hs.chaining_key, key, hs.chaining_key, hs.static_static);
    // -> {t}
    aead_seal(out + initiation::kTimestamp, key, kHandshakeNonce, now_ts, hs.hash);
    mix_hash(hs.hash, {out + initiation::kTimestamp, kEncryptedTimestampLen});
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
  // e
  std::memcpy(ci.remote_ephemeral.data(), msg.data() + initiation::kEphemeral, kPublicLen);
  mix_key(ci.chaining_key, ci.remote_ephemeral);
  mix_hash(ci.hash, ci.remote_ephemeral);

  KeyBytes dh{};
  SymKey key{};
  std::optional<ConsumedInitiation> result;
  do {
    // es
    if (!x25519(dh.data(), local.private_key.data(), ci.remote_ephemeral.data())) break;
    kdf2(ci.chaining_key, key, ci.chaining_key, dh);
    // s: who is calling; it must be a configured peer
    ByteView enc_static = msg.subspan(initiation::kStatic, kEncryptedStaticLen);
    if (!aead_open(ci.initiator_static.data(), key, kHandshakeNonce, enc_static, ci.hash)) break;
    mix_hash(ci.hash, enc_static);

    // ss (the peer's precomputed static-static)
    const KeyBytes* static_static = lookup(ctx, ci.initiator_static);
    if (static_static == nullptr) break;
    kdf2(ci.chaining_key, key, ci.chaining_key, *static_static);
    // {t}: the caller checks it is newer than the last one (replay)
    ByteView enc_ts = msg.subspan(initiation::kTimestamp, kEncryptedTimestampLen);
    if (!aead_open(ci.timestamp.data(), key, kHandshakeNonce, enc_ts, ci.hash)) break;
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
  // <- e
  std::uint8_t* eph = out + response::kEphemeral;
  new_ephemeral(hs.ephemeral_private, eph);
  mix_key(hs.chaining_key, {eph, kPublicLen});
  mix_hash(hs.hash, {eph, kPublicLen});

  KeyBytes dh{};
  Hash tau{};
  SymKey key{};
  // <- ee
  bool ok = x25519(dh.data(), hs.ephemeral_private.data(), hs.remote_ephemeral.data());
  if (ok) {
    mix_key(hs.chaining_key, dh);
    // <- se
    ok = x25519(dh.data(), hs.ephemeral_private.data(), hs.remote_static.data());
  }
  if (ok) {
    mix_key(hs.chaining_key, dh);
    // <- psk
    kdf3(hs.chaining_key, tau, key, hs.chaining_key, hs.preshared_key);
    mix_hash(hs.hash, tau);
    // <- {}
    aead_seal(out + response::kEmpty, key, kHandshakeNonce, {}, hs.hash);
    mix_hash(hs.hash, {out + response::kEmpty, kEncryptedNothingLen});
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
  // e
  KeyBytes remote_eph{};
  std::memcpy(remote_eph.data(), msg.data() + response::kEphemeral, kPublicLen);
  mix_key(chain, remote_eph);
  mix_hash(hash, remote_eph);

  KeyBytes dh{};
  Hash tau{};
  SymKey key{};
  // ee
  bool ok = x25519(dh.data(), hs.ephemeral_private.data(), remote_eph.data());
  if (ok) {
    mix_key(chain, dh);
    // se
    ok = x25519(dh.data(), local.private_key.data(), remote_eph.data());
  }
  if (ok) {
    mix_key(chain, dh);
    // psk
    kdf3(chain, tau, key, chain, hs.preshared_key);
    mix_hash(hash, tau);
    // {}: only a responder that derived the same keys can produce this tag
    ByteView empty = msg.subspan(response::kEmpty, kEncryptedNothingLen);
    std::uint8_t nothing[1];
    ok = aead_open(nothing, key, kHandshakeNonce, empty, hash);
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
  // Transport keys: KDF2(chaining key, empty); the initiator sends with the first.
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
