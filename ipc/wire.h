// Bounded readers and writers for control-message bodies. A BodyReader never reads
// past its span; the first failure latches and every later read yields zeroes, so a
// decoder reads its fields in order and checks ok() once at the end.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/ipaddr.h"
#include "common/keys.h"

namespace tw::ipc {

// An address prefix such as 100.64.0.0/10 (AllowedIPs). Canonical: host bits zero.
// IpPrefix is tw::IpPrefix (common/ipaddr.h).

class BodyWriter {
 public:
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v);
  void u32(std::uint32_t v);
  void u64(std::uint64_t v);
  void raw(ByteView b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void key(const KeyBytes& k) { raw(k); }
  // u32 length then bytes.
  void blob(ByteView b);
  void text(std::string_view s);
  void ip(const IpAddr& a);  // family byte (4 or 6) + 16 bytes
  void ip_port(const IpPort& e);
  void prefix(const IpPrefix& p);
  Bytes take() { return std::move(out_); }
  std::size_t size() const { return out_.size(); }

 private:
  Bytes out_;
};

class BodyReader {
 public:
  explicit BodyReader(ByteView body) : body_(body) {}

  std::uint8_t u8();
  std::uint16_t u16();
  std::uint32_t u32();
  std::uint64_t u64();
  KeyBytes key();
  Bytes blob(std::size_t max_len);
  // Text without control characters, at most max_len bytes.
  std::string text(std::size_t max_len);
  IpAddr ip();
  IpPort ip_port();
  IpPrefix prefix();
  // A count that must not exceed max, and that the remaining bytes could hold at
  // min_item_bytes each (so a forged count cannot make a decoder reserve memory).
  std::uint32_t count(std::uint32_t max, std::size_t min_item_bytes);

  void fail(std::string_view why);
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // The body must be consumed exactly.
  bool finish();

 private:
  const std::uint8_t* take(std::size_t n);

  ByteView body_;
  std::size_t pos_ = 0;
  std::string error_;
};

}  // namespace tw::ipc
