// The primitives WireGuard is built from, as thin wrappers: BLAKE2s-256, keyed
// BLAKE2s-128, HMAC-BLAKE2s and ChaCha20-Poly1305 from OpenSSL 3; X25519 and
// XChaCha20-Poly1305 from libsodium. Nothing here implements a primitive itself.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "common/bytes.h"

namespace tw::wg {

constexpr std::size_t kHashLen = 32;
constexpr std::size_t kMacLen = 16;
constexpr std::size_t kAeadTagLen = 16;
constexpr std::size_t kXNonceLen = 24;

using Hash = std::array<std::uint8_t, kHashLen>;
using SymKey = std::array<std::uint8_t, kHashLen>;
using Mac = std::array<std::uint8_t, kMacLen>;

// Fetches the OpenSSL algorithms (and ChaCha20-Poly1305's provider functions)
// once; aborts if the provider lacks BLAKE2s (nothing in WireGuard can work
// without it). Safe to call repeatedly.
void wg_crypto_init();

// BLAKE2s-256 over the concatenation of the parts.
Hash blake2s(std::initializer_list<ByteView> parts);
// Keyed BLAKE2s with a 16-byte output (WireGuard's MAC); key is 1..32 bytes.
Mac blake2s_mac(ByteView key, ByteView message);
// HMAC-BLAKE2s-256.
Hash hmac_blake2s(ByteView key, std::initializer_list<ByteView> parts);

// HKDF as in the WireGuard paper: KDF_n(key, input) -> n 32-byte outputs.
void kdf1(Hash& t1, const Hash& key, ByteView input);
void kdf2(Hash& t1, Hash& t2, const Hash& key, ByteView input);
void kdf3(Hash& t1, Hash& t2, Hash& t3, const Hash& key, ByteView input);

// X25519; false when the result is all zeros (a low-order point), which WireGuard
// must reject.
bool x25519(std::uint8_t out[32], const std::uint8_t priv[32], const std::uint8_t pub[32]);

// ChaCha20-Poly1305 (IETF) with WireGuard's nonce: 4 zero bytes || counter LE64.
// `out` must hold plain.size() + 16 bytes; may alias `plain` exactly.
void aead_seal(std::uint8_t* out, const SymKey& key, std::uint64_t counter, ByteView plain,
               ByteView ad);
// aead_seal of `plain` followed by `pad` zero bytes, without associated data (a
// transport packet and its padding) and without the caller first copying `plain`
// next to the zeros: `out` receives plain.size() + pad + 16 bytes. `out` may
// alias `plain` exactly, or not overlap it at all.
void aead_seal_padded(std::uint8_t* out, const SymKey& key, std::uint64_t counter, ByteView plain,
                      std::size_t pad);
// Returns false on authentication failure; `out` holds cipher.size() - 16 bytes.
bool aead_open(std::uint8_t* out, const SymKey& key, std::uint64_t counter, ByteView cipher,
               ByteView ad);

// XChaCha20-Poly1305 (cookie replies only).
void xaead_seal(std::uint8_t* out, const SymKey& key, const std::uint8_t nonce[kXNonceLen],
                ByteView plain, ByteView ad);
bool xaead_open(std::uint8_t* out, const SymKey& key, const std::uint8_t nonce[kXNonceLen],
                ByteView cipher, ByteView ad);

}  // namespace tw::wg
