// IP addresses and ip:port endpoints as plain values: trivially copyable, hashable,
// comparable, with IPv4-mapped IPv6 (::ffff:a.b.c.d) normalised to IPv4 at every
// entry point (docs/direct-underlay.md#the-socket).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace tw {

class IpAddr {
 public:
  enum class Family : std::uint8_t { kNone = 0, kV4 = 4, kV6 = 6 };

  IpAddr() = default;
  static IpAddr v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d);
  static IpAddr v4(const std::array<std::uint8_t, 4>& b);
  // A 16-byte IPv6 address; IPv4-mapped ones become IPv4.
  static IpAddr from16(const std::uint8_t* b16);
  // Dotted quad or RFC 4291 text; IPv4-mapped text is unmapped.
  static std::optional<IpAddr> parse(std::string_view text);

  Family family() const { return family_; }
  bool valid() const { return family_ != Family::kNone; }
  bool is_v4() const { return family_ == Family::kV4; }
  bool is_v6() const { return family_ == Family::kV6; }

  // Raw bytes: 4 for IPv4 (at the front), 16 for IPv6.
  const std::array<std::uint8_t, 16>& raw() const { return b_; }
  // The 16-byte wire form: IPv4 as ::ffff:a.b.c.d.
  std::array<std::uint8_t, 16> to16() const;

  bool is_unspecified() const;
  bool is_loopback() const;
  bool is_link_local_unicast() const;  // 169.254/16, fe80::/10
  bool is_private() const;             // 10/8, 172.16/12, 192.168/16, fc00::/7
  bool is_multicast() const;
  bool is_broadcast() const;  // 255.255.255.255

  std::string to_string() const;

  friend bool operator==(const IpAddr&, const IpAddr&) = default;
  friend auto operator<=>(const IpAddr&, const IpAddr&) = default;

 private:
  Family family_ = Family::kNone;
  std::array<std::uint8_t, 16> b_{};
};

struct IpPort {
  IpAddr ip;
  std::uint16_t port = 0;

  bool valid() const { return ip.valid(); }
  // "1.2.3.4:41641" or "[2001:db8::1]:443".
  std::string to_string() const;
  static std::optional<IpPort> parse(std::string_view text);

  // Conversions to and from the socket API; from_sockaddr normalises v4-mapped.
  static std::optional<IpPort> from_sockaddr(const sockaddr* sa, socklen_t len);
  // Writes a sockaddr of the family the socket needs: with v6_socket an IPv4
  // endpoint is written v4-mapped. Returns the length written.
  socklen_t to_sockaddr(sockaddr_storage* out, bool v6_socket) const;

  friend bool operator==(const IpPort&, const IpPort&) = default;
  friend auto operator<=>(const IpPort&, const IpPort&) = default;
};

// An address prefix such as 100.64.0.2/32 or ::/0; the address is stored masked.
struct IpPrefix {
  IpAddr addr;
  std::uint8_t bits = 0;

  static std::optional<IpPrefix> parse(std::string_view text);  // strict: host bits must be 0
  bool contains(const IpAddr& ip) const;
  std::string to_string() const;
  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
  friend auto operator<=>(const IpPrefix&, const IpPrefix&) = default;
};

struct IpPortHash {
  std::size_t operator()(const IpPort& e) const noexcept;
};

}  // namespace tw

template <>
struct std::hash<tw::IpPort> {
  std::size_t operator()(const tw::IpPort& e) const noexcept { return tw::IpPortHash{}(e); }
};
