#include "dataproc/wireguard/crypto.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <sodium.h>
#include <strings.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace tw::wg {
namespace {

constexpr const char* kChaChaPoly = "ChaCha20-Poly1305";

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
    a.chacha20_poly1305 = EVP_CIPHER_fetch(nullptr, kChaChaPoly, nullptr);
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

// ChaCha20-Poly1305 is driven through its provider's dispatch table (the
// documented provider-cipher interface that EVP itself calls) instead of
// EVP_CIPHER_CTX. In OpenSSL 3.0 every EVP_EncryptInit_ex2 with an IV asks the
// provider for the IV length through an OSSL_PARAM round trip and every tag
// EVP_CIPHER_CTX_ctrl is translated into another one (strcmp, OSSL_PARAM_locate):
// about 7% of an encrypt+decrypt of a 1420-byte packet, more for small ones. The
// provider's own init/update/final/get_ctx_params do the same cryptography
// without that layer; the tag moves through one prebuilt OSSL_PARAM array per
// context. The EVP_CIPHER fetched in algorithms() is never freed, which keeps
// the provider and so these function pointers alive.
struct AeadProvider {
  void* provctx = nullptr;
  OSSL_FUNC_cipher_newctx_fn* newctx = nullptr;
  OSSL_FUNC_cipher_freectx_fn* freectx = nullptr;
  OSSL_FUNC_cipher_encrypt_init_fn* einit = nullptr;
  OSSL_FUNC_cipher_decrypt_init_fn* dinit = nullptr;
  OSSL_FUNC_cipher_update_fn* update = nullptr;
  OSSL_FUNC_cipher_final_fn* final = nullptr;
  OSSL_FUNC_cipher_get_ctx_params_fn* get_ctx_params = nullptr;
};

// True when `name` is one of the colon-separated names of an algorithm entry.
bool names_contain(const char* names, const char* name) {
  const std::size_t n = std::strlen(name);
  for (const char* p = names; p != nullptr && *p != '\0';) {
    const char* end = std::strchr(p, ':');
    const std::size_t len = end ? static_cast<std::size_t>(end - p) : std::strlen(p);
    if (len == n && strncasecmp(p, name, n) == 0) return true;
    p = end ? end + 1 : nullptr;
  }
  return false;
}

const AeadProvider& aead_provider() {
  static const AeadProvider prov = [] {
    AeadProvider a;
    const EVP_CIPHER* cipher = algorithms().chacha20_poly1305;
    const OSSL_PROVIDER* p = EVP_CIPHER_get0_provider(cipher);
    if (p == nullptr) std::abort();  // an ENGINE implementation: not supported
    a.provctx = OSSL_PROVIDER_get0_provider_ctx(p);
    int no_cache = 0;
    const OSSL_ALGORITHM* algs = OSSL_PROVIDER_query_operation(p, OSSL_OP_CIPHER, &no_cache);
    const OSSL_DISPATCH* fns = nullptr;
    for (const OSSL_ALGORITHM* alg = algs; alg != nullptr && alg->algorithm_names != nullptr;
         ++alg) {
      if (names_contain(alg->algorithm_names, kChaChaPoly)) {
        fns = alg->implementation;
        break;
      }
    }
    for (; fns != nullptr && fns->function_id != 0; ++fns) {
      switch (fns->function_id) {
        case OSSL_FUNC_CIPHER_NEWCTX:
          a.newctx = OSSL_FUNC_cipher_newctx(fns);
          break;
        case OSSL_FUNC_CIPHER_FREECTX:
          a.freectx = OSSL_FUNC_cipher_freectx(fns);
          break;
        case OSSL_FUNC_CIPHER_ENCRYPT_INIT:
          a.einit = OSSL_FUNC_cipher_encrypt_init(fns);
          break;
        case OSSL_FUNC_CIPHER_DECRYPT_INIT:
          a.dinit = OSSL_FUNC_cipher_decrypt_init(fns);
          break;
        case OSSL_FUNC_CIPHER_UPDATE:
          a.update = OSSL_FUNC_cipher_update(fns);
          break;
        case OSSL_FUNC_CIPHER_FINAL:
          a.final = OSSL_FUNC_cipher_final(fns);
          break;
        case OSSL_FUNC_CIPHER_GET_CTX_PARAMS:
          a.get_ctx_params = OSSL_FUNC_cipher_get_ctx_params(fns);
          break;
        default:
          break;
      }
    }
    // The table is static in the provider; the pointers stay valid after this.
    OSSL_PROVIDER_unquery_operation(p, OSSL_OP_CIPHER, algs);
    if (!a.newctx || !a.freectx || !a.einit || !a.dinit || !a.update || !a.final ||
        !a.get_ctx_params)
      std::abort();
    return a;
  }();
  return prov;
}

// The AEAD contexts of this thread, one for sealing and one for opening, made once
// and re-keyed only when the key changes (consecutive packets mostly share one):
// no allocation and no key schedule per packet.
struct AeadCtx {
  AeadCtx() : ctx(aead_provider().newctx(aead_provider().provctx)) {
    if (ctx == nullptr) std::abort();
    tag_param[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, kAeadTagLen);
    tag_param[1] = OSSL_PARAM_construct_end();
  }
  AeadCtx(const AeadCtx&) = delete;
  AeadCtx& operator=(const AeadCtx&) = delete;
  ~AeadCtx() {
    aead_provider().freectx(ctx);
    sodium_memzero(key.data(), key.size());
  }
  void* ctx;
  SymKey key{};
  bool keyed = false;
  std::uint8_t tag[kAeadTagLen]{};
  OSSL_PARAM tag_param[2];
};

AeadCtx& aead_ctx(bool seal) {
  thread_local AeadCtx sealer;
  thread_local AeadCtx opener;
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

void wg_crypto_init() {
  (void)algorithms();
  (void)aead_provider();
}

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
namespace {
// Zero bytes for the padding sealed after a transport packet's plaintext.
constexpr std::uint8_t kZeros[64] = {};

void seal(std::uint8_t* out, const SymKey& key, std::uint64_t counter, ByteView plain,
          std::size_t pad, ByteView ad) {
  std::uint8_t nonce[12];
  make_nonce(nonce, counter);
  const AeadProvider& p = aead_provider();
  AeadCtx& a = aead_ctx(true);
  std::size_t len = 0;
  const std::uint8_t* k = rekey(a, key);
  must(p.einit(a.ctx, k, k ? key.size() : 0, nonce, sizeof nonce, nullptr));
  if (!ad.empty()) must(p.update(a.ctx, nullptr, &len, ad.size(), ad.data(), ad.size()));
  if (!plain.empty()) must(p.update(a.ctx, out, &len, plain.size(), plain.data(), plain.size()));
  std::uint8_t* o = out + plain.size();
  for (std::size_t left = pad; left != 0;) {
    const std::size_t n = std::min(left, sizeof kZeros);
    must(p.update(a.ctx, o, &len, n, kZeros, n));
    o += n;
    left -= n;
  }
  must(p.final(a.ctx, o, &len, kAeadTagLen));
  must(p.get_ctx_params(a.ctx, a.tag_param));
  std::memcpy(o, a.tag, kAeadTagLen);
}
}  // namespace

void aead_seal(std::uint8_t* out, const SymKey& key, std::uint64_t counter, ByteView plain,
               ByteView ad) {
  seal(out, key, counter, plain, 0, ad);
}

void aead_seal_padded(std::uint8_t* out, const SymKey& key, std::uint64_t counter, ByteView plain,
                      std::size_t pad) {
  seal(out, key, counter, plain, pad, {});
}

bool aead_open(std::uint8_t* out, const SymKey& key, std::uint64_t counter, ByteView cipher,
               ByteView ad) {
  if (cipher.size() < kAeadTagLen) return false;
  std::uint8_t nonce[12];
  make_nonce(nonce, counter);
  const std::size_t body = cipher.size() - kAeadTagLen;
  const AeadProvider& p = aead_provider();
  AeadCtx& a = aead_ctx(false);
  // The tag is copied first: `out` may alias `cipher` and the update overwrites it.
  // The init sets it as the expected tag (its params are applied after the IV).
  std::memcpy(a.tag, cipher.data() + body, kAeadTagLen);
  std::size_t len = 0;
  const std::uint8_t* k = rekey(a, key);
  must(p.dinit(a.ctx, k, k ? key.size() : 0, nonce, sizeof nonce, a.tag_param));
  if (!ad.empty()) must(p.update(a.ctx, nullptr, &len, ad.size(), ad.data(), ad.size()));
  if (body != 0) must(p.update(a.ctx, out, &len, body, cipher.data(), body));
  if (p.final(a.ctx, out + body, &len, 0) == 1) return true;
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
