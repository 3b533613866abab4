#include "ctlproc/noise.h"

#include <sodium.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "dataproc/wireguard/crypto.h"

namespace tw::ctl {
namespace {

constexpr char kProtocolName[] = "Noise_IK_25519_ChaChaPoly_BLAKE2s";

ByteView view(const std::string& s) {
  return ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

void record_nonce(std::uint8_t nonce[12], std::uint64_t n) {
  std::memset(nonce, 0, 4);
  store_be64(nonce + 4, n);
}

}  // namespace

std::string noise_prologue(std::uint16_t version) {
  return "Tailscale Control Protocol v" + std::to_string(version);
}

RecordCipher::~RecordCipher() { secure_wipe(key_.data(), key_.size()); }

Status RecordCipher::seal_frame(ByteView plain, Bytes& out) {
  if (plain.size() > kMaxPlaintextLen)
    return make_error("ts2021: record plaintext over 4077 bytes");
  // Go refuses the last nonce values; never reuse one.
  if (exhausted_ || n_ == UINT64_MAX) {
    exhausted_ = true;
    return make_error("ts2021: send nonce exhausted");
  }
  std::uint8_t nonce[12];
  record_nonce(nonce, n_++);
  const std::size_t clen = plain.size() + crypto_aead_chacha20poly1305_ietf_ABYTES;
  const std::size_t off = out.size();
  out.resize(off + kRecordHeaderLen + clen);
  out[off] = kMsgRecord;
  store_be16(&out[off + 1], static_cast<std::uint16_t>(clen));
  unsigned long long written = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(&out[off + kRecordHeaderLen], &written, plain.data(),
                                            plain.size(), nullptr, 0, nullptr, nonce, key_.data());
  return ok_status();
}

Status RecordCipher::open(ByteView cipher, Bytes& out) {
  if (cipher.size() < crypto_aead_chacha20poly1305_ietf_ABYTES) {
    return make_error("ts2021: record shorter than its 16-byte tag");
  }
  if (exhausted_ || n_ == UINT64_MAX) {
    exhausted_ = true;
    return make_error("ts2021: receive nonce exhausted");
  }
  std::uint8_t nonce[12];
  record_nonce(nonce, n_);
  const std::size_t off = out.size();
  const std::size_t plen = cipher.size() - crypto_aead_chacha20poly1305_ietf_ABYTES;
  out.resize(off + plen);
  unsigned long long got = 0;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(plen ? &out[off] : nullptr, &got, nullptr,
                                                cipher.data(), cipher.size(), nullptr, 0, nonce,
                                                key_.data()) != 0) {
    out.resize(off);
    return make_error("ts2021: record failed authentication (counter " + std::to_string(n_) + ")");
  }
  ++n_;
  return ok_status();
}

Initiator::Initiator(const KeyBytes& machine_private, const KeyBytes& control_public,
                     std::uint16_t protocol_version, std::optional<KeyBytes> ephemeral_private)
    : machine_priv_(machine_private), control_pub_(control_public), version_(protocol_version) {
  wg::wg_crypto_init();
  machine_pub_ = x25519_base(machine_priv_);
  e_priv_ = ephemeral_private ? *ephemeral_private : random_clamped_private();
  e_pub_ = x25519_base(e_priv_);
}

Initiator::~Initiator() {
  secure_wipe(machine_priv_.data(), machine_priv_.size());
  secure_wipe(e_priv_.data(), e_priv_.size());
  secure_wipe(ck_.data(), ck_.size());
  secure_wipe(k_.data(), k_.size());
}

void Initiator::mix_hash(ByteView data) { h_ = wg::blake2s({ByteView(h_), data}); }

bool Initiator::mix_key_dh(const KeyBytes& priv, const KeyBytes& pub) {
  std::uint8_t dh[32];
  if (!wg::x25519(dh, priv.data(), pub.data())) {
    secure_wipe(dh, sizeof dh);
    return false;
  }
  wg::Hash ck2, k;
  wg::kdf2(ck2, k, ck_, ByteView(dh, sizeof dh));
  ck_ = ck2;
  k_ = k;
  secure_wipe(dh, sizeof dh);
  secure_wipe(ck2.data(), ck2.size());
  secure_wipe(k.data(), k.size());
  return true;
}

Result<std::array<std::uint8_t, kInitiationLen>> Initiator::initiation() {
  if (started_) return make_error("ts2021: initiation already produced");
  started_ = true;
  // The name is longer than the hash, so h = HASH(name); ck = h.
  h_ = wg::blake2s(
      {ByteView(reinterpret_cast<const std::uint8_t*>(kProtocolName), sizeof kProtocolName - 1)});
  ck_ = h_;
  mix_hash(view(noise_prologue(version_)));
  mix_hash(control_pub_);

  std::array<std::uint8_t, kInitiationLen> msg{};
  store_be16(&msg[0], version_);
  msg[2] = kMsgInitiation;
  store_be16(&msg[3], 96);
  std::memcpy(&msg[5], e_pub_.data(), 32);
  mix_hash(e_pub_);
  if (!mix_key_dh(e_priv_, control_pub_))
    return make_error("ts2021: control public key is a low-order point");
  // EncryptAndHash(machine static public key): 32 + 16 bytes at offset 37.
  wg::aead_seal(&msg[37], k_, 0, machine_pub_, h_);
  mix_hash(ByteView(&msg[37], 48));
  if (!mix_key_dh(machine_priv_, control_pub_))
    return make_error("ts2021: control public key is a low-order point");
  wg::aead_seal(&msg[85], k_, 0, ByteView(), h_);
  mix_hash(ByteView(&msg[85], 16));
  return msg;
}

Result<TransportKeys> Initiator::finish(ByteView reply) {
  if (!started_ || done_) return make_error("ts2021: handshake not in progress");
  done_ = true;
  if (reply.size() >= 3 && reply[0] == kMsgError) {
    const std::size_t n = load_be16(&reply[1]);
    std::string text(reinterpret_cast<const char*>(reply.data() + 3),
                     std::min<std::size_t>(n, std::min<std::size_t>(reply.size() - 3, 256)));
    for (char& c : text) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    return make_error("ts2021: control server refused the handshake: \"" + text + "\"");
  }
  if (reply.size() != kResponseLen) {
    return make_error("ts2021: handshake response is " + std::to_string(reply.size()) +
                      " bytes, want 51");
  }
  if (reply[0] != kMsgResponse) {
    return make_error("ts2021: handshake response has type " + std::to_string(reply[0]) +
                      ", want 2");
  }
  if (load_be16(&reply[1]) != 48)
    return make_error("ts2021: handshake response length field is not 48");
  KeyBytes re{};
  std::memcpy(re.data(), &reply[3], 32);
  mix_hash(re);
  if (!mix_key_dh(e_priv_, re))
    return make_error("ts2021: server ephemeral key is a low-order point");
  if (!mix_key_dh(machine_priv_, re))
    return make_error("ts2021: server ephemeral key is a low-order point");
  std::uint8_t empty[1];
  if (!wg::aead_open(empty, k_, 0, ByteView(&reply[35], 16), h_)) {
    return make_error("ts2021: handshake response failed authentication (wrong control key?)");
  }
  mix_hash(ByteView(&reply[35], 16));
  TransportKeys keys;
  wg::Hash k1, k2;
  wg::kdf2(k1, k2, ck_, ByteView());
  keys.send = k1;
  keys.recv = k2;
  keys.handshake_hash = h_;
  secure_wipe(k1.data(), k1.size());
  secure_wipe(k2.data(), k2.size());
  return keys;
}

Status RecordReader::feed(ByteView in, Bytes& out) {
  if (!failed_.empty()) return make_error(failed_);
  buf_.insert(buf_.end(), in.begin(), in.end());
  std::size_t pos = 0;
  Status st = ok_status();
  while (buf_.size() - pos >= kRecordHeaderLen) {
    const std::uint8_t type = buf_[pos];
    const std::size_t len = load_be16(&buf_[pos + 1]);
    if (type != kMsgRecord) {
      st = make_error("ts2021: unexpected message type " + std::to_string(type) +
                      " after the handshake");
      break;
    }
    if (len > kMaxCiphertextLen) {
      st = make_error("ts2021: record of " + std::to_string(len) +
                      " bytes exceeds the 4093-byte limit");
      break;
    }
    if (buf_.size() - pos - kRecordHeaderLen < len) break;
    if (auto o = cipher_.open(ByteView(&buf_[pos + kRecordHeaderLen], len), out); !o) {
      st = make_error(o.error());
      break;
    }
    pos += kRecordHeaderLen + len;
  }
  if (!st) {
    failed_ = st.error();
    buf_.clear();
    return st;
  }
  buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos));
  return ok_status();
}

Status RecordWriter::seal(ByteView plain, Bytes& out) {
  if (!failed_.empty()) return make_error(failed_);
  while (!plain.empty()) {
    const std::size_t n = std::min(plain.size(), kMaxPlaintextLen);
    if (auto st = cipher_.seal_frame(plain.first(n), out); !st) {
      failed_ = st.error();
      return st;
    }
    plain = plain.subspan(n);
  }
  return ok_status();
}

Status EarlyPayloadFilter::feed(ByteView in, Bytes& out) {
  static constexpr std::uint8_t kMagic[5] = {0xff, 0xff, 0xff, 'T', 'S'};
  if (state_ == State::kPass) {
    out.insert(out.end(), in.begin(), in.end());
    return ok_status();
  }
  buf_.insert(buf_.end(), in.begin(), in.end());
  if (buf_.empty()) return ok_status();
  if (state_ == State::kPeek) {
    // Decide as soon as the bytes seen so far differ from the magic, or 9 bytes are in.
    const std::size_t cmp = std::min<std::size_t>(buf_.size(), 5);
    if (std::memcmp(buf_.data(), kMagic, cmp) != 0) {
      state_ = State::kPass;
      out.insert(out.end(), buf_.begin(), buf_.end());
      buf_.clear();
      return ok_status();
    }
    if (buf_.size() < 9) return ok_status();
    want_ = load_be32(&buf_[5]);
    if (want_ > kMaxEarlyPayload) return make_error("ts2021: early payload larger than 10 MiB");
    buf_.erase(buf_.begin(), buf_.begin() + 9);
    state_ = State::kBody;
  }
  if (buf_.size() < want_) return ok_status();
  std::string text(buf_.begin(), buf_.begin() + want_);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error("ts2021: early payload is not a JSON object");
  if (auto it = j.find("nodeKeyChallenge"); it != j.end() && it->is_string()) {
    challenge_ = it->get<std::string>().substr(0, 128);
  }
  saw_payload_ = true;
  state_ = State::kPass;
  out.insert(out.end(), buf_.begin() + want_, buf_.end());
  buf_.clear();
  buf_.shrink_to_fit();
  return ok_status();
}

}  // namespace tw::ctl
