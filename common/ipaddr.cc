#include "common/ipaddr.h"

#include <arpa/inet.h>

#include <cstring>

namespace tw {
namespace {

constexpr std::array<std::uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

IpAddr IpAddr::v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  IpAddr ip;
  ip.family_ = Family::kV4;
  ip.b_[0] = a;
  ip.b_[1] = b;
  ip.b_[2] = c;
  ip.b_[3] = d;
  return ip;
}

IpAddr IpAddr::v4(const std::array<std::uint8_t, 4>& b) { return v4(b[0], b[1], b[2], b[3]); }

IpAddr IpAddr::from16(const std::uint8_t* b16) {
  if (std::memcmp(b16, kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0) {
    return v4(b16[12], b16[13], b16[14], b16[15]);
  }
  IpAddr ip;
  ip.family_ = Family::kV6;
  std::memcpy(ip.b_.data(), b16, 16);
  return ip;
}

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  std::string s(text);
  in_addr a4{};
  if (inet_pton(AF_INET, s.c_str(), &a4) == 1) {
    IpAddr ip;
    ip.family_ = Family::kV4;
    std::memcpy(ip.b_.data(), &a4, 4);
    return ip;
  }
  in6_addr a6{};
  if (inet_pton(AF_INET6, s.c_str(), &a6) == 1) return from16(a6.s6_addr);
  return std::nullopt;
}

std::array<std::uint8_t, 16> IpAddr::to16() const {
  std::array<std::uint8_t, 16> out{};
  if (is_v4()) {
    std::memcpy(out.data(), kV4MappedPrefix.data(), 12);
    std::memcpy(out.data() + 12, b_.data(), 4);
  } else {
    out = b_;
  }
  return out;
}

bool IpAddr::is_unspecified() const {
  if (is_v4()) return b_[0] == 0 && b_[1] == 0 && b_[2] == 0 && b_[3] == 0;
  if (is_v6()) return b_ == std::array<std::uint8_t, 16>{};
  return false;
}

bool IpAddr::is_loopback() const {
  if (is_v4()) return b_[0] == 127;
  if (is_v6()) {
    std::array<std::uint8_t, 16> one{};
    one[15] = 1;
    return b_ == one;
  }
  return false;
}

bool IpAddr::is_link_local_unicast() const {
  if (is_v4()) return b_[0] == 169 && b_[1] == 254;
  if (is_v6()) return b_[0] == 0xfe && (b_[1] & 0xc0) == 0x80;
  return false;
}

bool IpAddr::is_private() const {
  if (is_v4()) {
    return b_[0] == 10 || (b_[0] == 172 && (b_[1] & 0xf0) == 16) || (b_[0] == 192 && b_[1] == 168);
  }
  if (is_v6()) return (b_[0] & 0xfe) == 0xfc;
  return false;
}

bool IpAddr::is_multicast() const {
  if (is_v4()) return (b_[0] & 0xf0) == 224;
  if (is_v6()) return b_[0] == 0xff;
  return false;
}

bool IpAddr::is_broadcast() const {
  return is_v4() && b_[0] == 255 && b_[1] == 255 && b_[2] == 255 && b_[3] == 255;
}

std::string IpAddr::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    inet_ntop(AF_INET, b_.data(), buf, sizeof buf);
  } else if (is_v6()) {
    inet_ntop(AF_INET6, b_.data(), buf, sizeof buf);
  } else {
    return "invalid";
  }
  return buf;
}

std::string IpPort::to_string() const {
  // Built by appending into one buffer: GCC 12 at -O3 reports a false -Wrestrict
  // overlap on chained operator+ of temporaries (GCC bug 105329).
  std::string out;
  out.reserve(INET6_ADDRSTRLEN + 8);
  if (ip.is_v6()) out.push_back('[');
  out.append(ip.to_string());
  if (ip.is_v6()) out.push_back(']');
  out.push_back(':');
  out.append(std::to_string(port));
  return out;
}

std::optional<IpPort> IpPort::parse(std::string_view text) {
  std::string_view host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
    auto ip = IpAddr::parse(host);
    // A bracketed form must hold real IPv6 text, not a dotted quad.
    if (!ip || host.find(':') == std::string_view::npos) return std::nullopt;
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs brackets
  }
  if (port_text.empty() || port_text.size() > 5) return std::nullopt;
  std::uint32_t port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (port > 65535) return std::nullopt;
  auto ip = IpAddr::parse(host);
  if (!ip) return std::nullopt;
  return IpPort{*ip, static_cast<std::uint16_t>(port)};
}

std::optional<IpPort> IpPort::from_sockaddr(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr) return std::nullopt;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    const auto* s4 = reinterpret_cast<const sockaddr_in*>(sa);
    std::array<std::uint8_t, 4> b{};
    std::memcpy(b.data(), &s4->sin_addr, 4);
    return IpPort{IpAddr::v4(b), ntohs(s4->sin_port)};
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(sa);
    return IpPort{IpAddr::from16(s6->sin6_addr.s6_addr), ntohs(s6->sin6_port)};
  }
  return std::nullopt;
}

socklen_t IpPort::to_sockaddr(sockaddr_storage* out, bool v6_socket) const {
  std::memset(out, 0, sizeof *out);
  if (ip.is_v4() && !v6_socket) {
    auto* s4 = reinterpret_cast<sockaddr_in*>(out);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    std::memcpy(&s4->sin_addr, ip.raw().data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* s6 = reinterpret_cast<sockaddr_in6*>(out);
  s6->sin6_family = AF_INET6;
  s6->sin6_port = htons(port);
  auto b16 = ip.to16();
  std::memcpy(s6->sin6_addr.s6_addr, b16.data(), 16);
  return sizeof(sockaddr_in6);
}

std::optional<IpPrefix> IpPrefix::parse(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto ip = IpAddr::parse(text.substr(0, slash));
  std::string_view bits_text = text.substr(slash + 1);
  if (!ip || bits_text.empty() || bits_text.size() > 3) return std::nullopt;
  unsigned bits = 0;
  for (char c : bits_text) {
    if (c < '0' || c > '9') return std::nullopt;
    bits = bits * 10 + static_cast<unsigned>(c - '0');
  }
  if (bits > (ip->is_v4() ? 32u : 128u)) return std::nullopt;
  IpPrefix p{*ip, static_cast<std::uint8_t>(bits)};
  // Host bits set (e.g. 100.64.0.1/24) is almost always an operator mistake: refuse it.
  for (unsigned i = bits; i < (ip->is_v4() ? 32u : 128u); ++i) {
    if (ip->raw()[i / 8] & (0x80 >> (i % 8))) return std::nullopt;
  }
  return p;
}

bool IpPrefix::contains(const IpAddr& ip) const {
  if (ip.family() != addr.family()) return false;
  const auto& a = addr.raw();
  const auto& b = ip.raw();
  unsigned full = bits / 8;
  for (unsigned i = 0; i < full; ++i) {
    if (a[i] != b[i]) return false;
  }
  unsigned rem = bits % 8;
  if (rem == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rem));
  return (a[full] & mask) == (b[full] & mask);
}

std::string IpPrefix::to_string() const { return addr.to_string() + "/" + std::to_string(bits); }

std::size_t IpPortHash::operator()(const IpPort& e) const noexcept {
  // FNV-1a over family, address and port: cheap and well spread for small keys.
  std::uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](std::uint8_t b) {
    h ^= b;
    h *= 1099511628211ULL;
  };
  mix(static_cast<std::uint8_t>(e.ip.family()));
  for (auto b : e.ip.raw()) mix(b);
  mix(static_cast<std::uint8_t>(e.port >> 8));
  mix(static_cast<std::uint8_t>(e.port));
  return static_cast<std::size_t>(h);
}

}  // namespace tw
