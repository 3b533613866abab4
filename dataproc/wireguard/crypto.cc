#include "dataproc/wireguard/crypto.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>

#include <cstdlib>
#include <cstring>
#include <memory>

namespace tw::wg {
namespace {

struct Algorithms {
  EVP_MD* blake2s = nullptr;
  EVP_MAC* blake2s_mac = nullptr;
  EVP_MAC* hmac = nullptr;
  EVP_CIPHER* chacha20_poly1305 = nullptr;
};

const Algorithms& algorithms() {
  // Fetched once and never freed: they live as long as the process.
  static const Algorithms algs = [] {
    Algorithms a;
    a.blake2s = EVP_MD_fetch(nullptr, "BLAKE2S-256", nullptr);
    a.blake2s_mac = EVP_MAC_fetch(nullptr, "BLAKE2SMAC", nullptr);
    a.hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    a.chacha20_poly1305 = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
    if (!a.blake2s || !a.blake2s_mac || !a.hmac || !a.chacha20_poly1305 || sodium_init() < 0) {
      std::abort();
    }
    return a;
  }();
  return algs;
}

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct MacCtxFree {
  void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};
struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

// One context of each kind per thread, reused: the handshake path calls these often.
EVP_MD_CTX* md_ctx() {
  thread_local std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  return ctx.get();
}
EVP_MAC_CTX* hmac_ctx() {
  thread_local std::unique_ptr<EVP_MAC_CTX, MacCtxFree> ctx(
      EVP_MAC_CTX_new(algorithms().hmac));
  return ctx.get();
}
EVP_MAC_CTX* keyed_ctx() {
  thread_local std::unique_ptr<EVP_MAC_CTX, MacCtxFree> ctx(
      EVP_MAC_CTX_new(algorithms().blake2s_mac));
  return ctx.get();
}

// The AEAD contexts of this thread, one for sealing and one for opening, made once
// and re-keyed only when the key changes (consecutive packets mostly share one):
// no allocation and no key schedule per packet.
struct AeadCtx {
  explicit AeadCtx(bool seal) : ctx(EVP_CIPHER_CTX_new()) {
    const EVP_CIPHER* c = algorithms().chacha20_poly1305;
    const int ok = ctx && (seal ? EVP_EncryptInit_ex2(ctx.get(), c, nullptr, nullptr, nullptr)
                                : EVP_DecryptInit_ex2(ctx.get(), c, nullptr, nullptr, nullptr));
    if (ok != 1) std::abort();
  }
  AeadCtx(const AeadCtx&) = delete;
  AeadCtx& operator=(const AeadCtx&) = delete;
  ~AeadCtx() { sodium_memzero(key.data(), key.size()); }
  std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree> ctx;
  SymKey key{};
  bool keyed = false;
};

AeadCtx& aead_ctx(bool seal) {
  thread_local AeadCtx sealer(true);
  thread_local AeadCtx opener(false);
  return seal ? sealer : opener;
}

// The key to pass to the next init: null when the context already holds `key`.
const std::uint8_t* rekey(AeadCtx& a, const SymKey& key) {
  // Word-wise and without an early exit (sodium_memcmp goes byte by byte and was
  // ~3% of the data path).
  static_assert(sizeof(SymKey) == 32);
  std::uint64_t x[4], y[4];
  std::memcpy(x, a.key.data(), 32);
  std::memcpy(y, key.data(), 32);
  const std::uint64_t diff = (x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]);
  if (a.keyed && diff == 0) return nullptr;
  a.key = key;
  a.keyed = true;
  return key.data();
}

void must(int ok) {
  if (ok != 1) std::abort();  // only misuse (wrong sizes) can fail these
}

void make_nonce(std::uint8_t nonce[12], std::uint64_t counter) {
  std::memset(nonce, 0, 4);
  store_le64(nonce + 4, counter);
}

}  // namespace

void wg_crypto_init() { (void)algorithms(); }

Hash blake2s(std::initializer_list<ByteView> parts) {
  EVP_MD_CTX* ctx = md_ctx();
  must(EVP_DigestInit_ex2(ctx, algorithms().blake2s, nullptr));
  for (ByteView p : parts) must(EVP_DigestUpdate(ctx, p.data(), p.size()));
  Hash out{};
  unsigned int len = 0;
  must(EVP_DigestFinal_ex(ctx, out.data(), &len));
  return out;
}

Mac blake2s_mac(ByteView key, ByteView message) {
  EVP_MAC_CTX* ctx = keyed_ctx();
  std::size_t size = kMacLen;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                         OSSL_PARAM_construct_end()};
  must(EVP_MAC_init(ctx, key.data(), key.size(), params));
  must(EVP_MAC_update(ctx, message.data(), message.size()));
  Mac out{};
  std::size_t len = 0;
  must(EVP_MAC_final(ctx, out.data(), &len, out.size()));
  return out;
}

Hash hmac_blake2s(ByteView key, std::initializer_list<ByteView> parts) {
  EVP_MAC_CTX* ctx = hmac_ctx();
  char digest[] = "BLAKE2S-256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  must(EVP_MAC_init(ctx, key.data(), key.size(), params));
  for (ByteView p : parts) must(EVP_MAC_update(ctx, p.data(), p.size()));
  Hash out{};
  std::size_t len = 0;
  must(EVP_MAC_final(ctx, out.data(), &len, out.size()));
  return out;
}

namespace {
// HKDF-Expand steps over a pseudo-random key; writes up to three outputs.
void kdf(Hash* outs[], int n, const Hash& key, ByteView input) {
  Hash prk = hmac_blake2s(key, {input});
  const std::uint8_t one = 1;
  Hash prev = hmac_blake2s(prk, {ByteView(&one, 1)});
  *outs[0] = prev;
  for (int i = 1; i < n; ++i) {
    const auto counter = static_cast<std::uint8_t>(i + 1);
    prev = hmac_blake2s(prk, {prev, ByteView(&counter, 1)});
    *outs[i] = prev;
  }
  sodium_memzero(prk.data(), prk.size());
  sodium_memzero(prev.data(), prev.size());
}
}  // namespace

void kdf1(Hash& t1, const Hash& key, ByteView input) {
  Hash* outs[] = {&t1};
  kdf(outs, 1, key, input);
}
void kdf2(Hash& t1, Hash& t2, const Hash& key, ByteView input) {
  Hash* outs[] = {&t1, &t2};
  kdf(outs, 2, key, input);
}
void kdf3(Hash& t1, Hash& t2, Hash& t3, const Hash& key, ByteView input) {
  Hash* outs[] = {&t1, &t2, &t3};
  kdf(outs, 3, key, input);
}

bool x25519(std::uint8_t out[32], const std::uint8_t priv[32], const std::uint8_t pub[32]) {
  // libsodium itself refuses an all-zero result with -1; check again explicitly.
  if (crypto_scalarmult_curve25519(out, priv, pub) != 0) return false;
  return sodium_is_zero(out, 32) == 0;
}

// ChaCha20-Poly1305 from OpenSSL 3: about twice libsodium's rate on packet-sized
// messages on current x86 (its AVX-512/AVX2 code paths), and the data path spends
// most of its time here.
void aead_seal(std::uint8_t* out, const SymKey& key, std::uint64_t counter, ByteView plain,
               ByteView ad) {
  std::uint8_t nonce[12];
  make_nonce(nonce, counter);
  AeadCtx& a = aead_ctx(true);
  EVP_CIPHER_CTX* c = a.ctx.get();
  int len = 0;
  must(EVP_EncryptInit_ex2(c, nullptr, rekey(a, key), nonce, nullptr));
  if (!ad.empty())
    must(EVP_EncryptUpdate(c, nullptr, &len, ad.data(), static_cast<int>(ad.size())));
  if (!plain.empty()) {
    must(EVP_EncryptUpdate(c, out, &len, plain.data(), static_cast<int>(plain.size())));
  }
  must(EVP_EncryptFinal_ex(c, out + plain.size(), &len));
  must(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kAeadTagLen),
                           out + plain.size()));
}

bool aead_open(std::uint8_t* out, const SymKey& key, std::uint64_t counter, ByteView cipher,
               ByteView ad) {
  if (cipher.size() < kAeadTagLen) return false;
  std::uint8_t nonce[12];
  make_nonce(nonce, counter);
  const std::size_t body = cipher.size() - kAeadTagLen;
  // The tag is copied first: `out` may alias `cipher` and the update overwrites it.
  std::uint8_t tag[kAeadTagLen];
  std::memcpy(tag, cipher.data() + body, kAeadTagLen);
  AeadCtx& a = aead_ctx(false);
  EVP_CIPHER_CTX* c = a.ctx.get();
  int len = 0;
  must(EVP_DecryptInit_ex2(c, nullptr, rekey(a, key), nonce, nullptr));
  must(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kAeadTagLen), tag));
  if (!ad.empty())
    must(EVP_DecryptUpdate(c, nullptr, &len, ad.data(), static_cast<int>(ad.size())));
  if (body != 0) must(EVP_DecryptUpdate(c, out, &len, cipher.data(), static_cast<int>(body)));
  if (EVP_DecryptFinal_ex(c, out + body, &len) == 1) return true;
  // Never leave unauthenticated plaintext behind (OpenSSL decrypts before checking).
  sodium_memzero(out, body);
  return false;
}

void xaead_seal(std::uint8_t* out, const SymKey& key, const std::uint8_t nonce[kXNonceLen],
                ByteView plain, ByteView ad) {
  crypto_aead_xchacha20poly1305_ietf_encrypt(out, nullptr, plain.data(), plain.size(),
                                             ad.data(), ad.size(), nullptr, nonce, key.data());
}

bool xaead_open(std::uint8_t* out, const SymKey& key, const std::uint8_t nonce[kXNonceLen],
                ByteView cipher, ByteView ad) {
  if (cipher.size() < kAeadTagLen) return false;
  return crypto_aead_xchacha20poly1305_ietf_decrypt(out, nullptr, nullptr, cipher.data(),
                                                    cipher.size(), ad.data(), ad.size(), nonce,
                                                    key.data()) == 0;
}

}  // namespace tw::wg
