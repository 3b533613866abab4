#include "ipc/wire.h"

#include <algorithm>
#include <array>

namespace tw::ipc {
namespace {

constexpr std::uint8_t kFamilyV4 = 4;
constexpr std::uint8_t kFamilyV6 = 6;

bool host_bits_zero(const IpPrefix& p) {
  const auto& raw = p.addr.raw();
  std::size_t total = p.addr.is_v4() ? 4 : 16;
  for (std::size_t i = 0; i < total; ++i) {
    std::size_t first_bit = i * 8;
    std::uint8_t keep = 0;
    if (p.bits >= first_bit + 8) keep = 0xff;
    else if (p.bits > first_bit) keep = static_cast<std::uint8_t>(0xff << (8 - (p.bits - first_bit)));
    if ((raw[i] & ~keep) != 0) return false;
  }
  return true;
}

}  // namespace

void BodyWriter::u16(std::uint16_t v) {
  std::uint8_t b[2];
  store_be16(b, v);
  raw(b);
}
void BodyWriter::u32(std::uint32_t v) {
  std::uint8_t b[4];
  store_be32(b, v);
  raw(b);
}
void BodyWriter::u64(std::uint64_t v) {
  std::uint8_t b[8];
  store_be64(b, v);
  raw(b);
}
void BodyWriter::blob(ByteView b) {
  u32(static_cast<std::uint32_t>(b.size()));
  raw(b);
}
void BodyWriter::text(std::string_view s) {
  blob(ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
}
void BodyWriter::ip(const IpAddr& a) {
  u8(a.is_v4() ? kFamilyV4 : a.is_v6() ? kFamilyV6 : 0);
  raw(a.raw());
}
void BodyWriter::ip_port(const IpPort& e) {
  ip(e.ip);
  u16(e.port);
}
void BodyWriter::prefix(const IpPrefix& p) {
  ip(p.addr);
  u8(p.bits);
}

const std::uint8_t* BodyReader::take(std::size_t n) {
  if (!ok()) return nullptr;
  if (n > body_.size() - pos_) {
    fail("body too short");
    return nullptr;
  }
  const std::uint8_t* p = body_.data() + pos_;
  pos_ += n;
  return p;
}

void BodyReader::fail(std::string_view why) {
  if (ok()) error_ = std::string(why);
}

std::uint8_t BodyReader::u8() {
  const auto* p = take(1);
  return p ? p[0] : 0;
}
std::uint16_t BodyReader::u16() {
  const auto* p = take(2);
  return p ? load_be16(p) : 0;
}
std::uint32_t BodyReader::u32() {
  const auto* p = take(4);
  return p ? load_be32(p) : 0;
}
std::uint64_t BodyReader::u64() {
  const auto* p = take(8);
  return p ? load_be64(p) : 0;
}
KeyBytes BodyReader::key() {
  KeyBytes k{};
  if (const auto* p = take(k.size())) std::copy_n(p, k.size(), k.begin());
  return k;
}

Bytes BodyReader::blob(std::size_t max_len) {
  std::uint32_t len = u32();
  if (len > max_len) {
    fail("field longer than its limit");
    return {};
  }
  const auto* p = take(len);
  return p ? Bytes(p, p + len) : Bytes{};
}

std::string BodyReader::text(std::size_t max_len) {
  Bytes b = blob(max_len);
  for (std::uint8_t c : b) {
    if (c < 0x20 || c == 0x7f) {
      fail("control character in text field");
      return {};
    }
  }
  return std::string(b.begin(), b.end());
}

IpAddr BodyReader::ip() {
  std::uint8_t family = u8();
  const auto* p = take(16);
  if (!p) return {};
  if (family == kFamilyV4) {
    if (!std::all_of(p + 4, p + 16, [](std::uint8_t b) { return b == 0; })) {
      fail("IPv4 address with trailing bytes");
      return {};
    }
    return IpAddr::v4(p[0], p[1], p[2], p[3]);
  }
  if (family == kFamilyV6) {
    IpAddr a = IpAddr::from16(p);
    // v4-mapped must travel as IPv4 so that every address has one encoding.
    if (!a.is_v6()) fail("IPv4-mapped address sent as IPv6");
    return a;
  }
  fail("bad address family");
  return {};
}

IpPort BodyReader::ip_port() {
  IpPort e;
  e.ip = ip();
  e.port = u16();
  return e;
}

IpPrefix BodyReader::prefix() {
  IpPrefix p;
  p.addr = ip();
  p.bits = u8();
  if (!ok()) return {};
  if (p.bits > (p.addr.is_v4() ? 32 : 128)) fail("prefix length out of range");
  else if (!host_bits_zero(p)) fail("prefix has host bits set");
  return p;
}

std::uint32_t BodyReader::count(std::uint32_t max, std::size_t min_item_bytes) {
  std::uint32_t n = u32();
  if (!ok()) return 0;
  if (n > max) {
    fail("list longer than its limit");
    return 0;
  }
  if (min_item_bytes > 0 && n > (body_.size() - pos_) / min_item_bytes) {
    fail("list count exceeds body");
    return 0;
  }
  return n;
}

bool BodyReader::finish() {
  if (ok() && pos_ != body_.size()) fail("trailing bytes after body");
  return ok();
}

}  // namespace tw::ipc
