// The exit namespace, built for real (needs root: CAP_SYS_ADMIN for unshare and
// CAP_NET_ADMIN inside; skipped otherwise): only lo and tw-exit, routes only into
// tw-exit, and packets written into the TUN (as dataproc would) are refused,
// redirected or dropped by the kernel exactly as docs/design.md#9-exit-node says.
#include "broker/exit_namespace.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

namespace tw::broker {
namespace {

bool can_create() {
  if (::geteuid() != 0) return false;
  // A sandbox without CAP_SYS_ADMIN: try once in a child.
  pid_t pid = ::fork();
  if (pid == 0) _exit(::unshare(CLONE_NEWNET) == 0 ? 0 : 1);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::uint16_t csum(const std::uint8_t* p, std::size_t n, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i + 1 < n; i += 2)
    sum += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += static_cast<std::uint32_t>(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

std::vector<std::uint8_t> ipv4(std::uint8_t proto, const std::vector<std::uint8_t>& payload) {
  std::vector<std::uint8_t> p(20 + payload.size());
  p[0] = 0x45;
  p[2] = static_cast<std::uint8_t>(p.size() >> 8);
  p[3] = static_cast<std::uint8_t>(p.size());
  p[8] = 64;
  p[9] = proto;
  const std::uint8_t src[4] = {100, 64, 0, 2}, dst[4] = {198, 18, 9, 1};
  std::memcpy(&p[12], src, 4);
  std::memcpy(&p[16], dst, 4);
  const std::uint16_t c = csum(p.data(), 20);
  p[10] = static_cast<std::uint8_t>(c >> 8);
  p[11] = static_cast<std::uint8_t>(c);
  std::copy(payload.begin(), payload.end(), p.begin() + 20);
  return p;
}

// The broker opens its TUN devices with IFF_VNET_HDR (docs/design.md#5-where-a-packet-goes):
// every read and write carries a 10-byte virtio-net header first. A zero header is
// a plain packet.
constexpr std::size_t kVnetHdr = 10;

ssize_t tun_write(int fd, const std::vector<std::uint8_t>& packet) {
  std::vector<std::uint8_t> frame(kVnetHdr, 0);
  frame.insert(frame.end(), packet.begin(), packet.end());
  const ssize_t n = ::write(fd, frame.data(), frame.size());
  return n < 0 ? n : n - static_cast<ssize_t>(kVnetHdr);
}

// Reads packets from the TUN for up to `ms`; returns the first for which `want` holds.
std::vector<std::uint8_t> read_until(int fd, int ms,
                                     bool (*want)(const std::vector<std::uint8_t>&)) {
  for (int waited = 0; waited < ms; waited += 50) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 50) <= 0) continue;
    std::vector<std::uint8_t> buf(2048);
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n <= static_cast<ssize_t>(kVnetHdr)) continue;
    buf.resize(static_cast<std::size_t>(n));
    buf.erase(buf.begin(), buf.begin() + kVnetHdr);
    if (want(buf)) return buf;
  }
  return {};
}

class ExitNamespaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!can_create()) GTEST_SKIP() << "needs root with CAP_SYS_ADMIN";
    auto r = create_exit_namespace(1280, ExitPorts{});
    ASSERT_TRUE(r.ok()) << r.error();
    ns_ = std::move(*r);
  }
  ExitNamespace ns_;
};

TEST_F(ExitNamespaceTest, OnlyLoopbackAndTheTunWithRoutesIntoIt) {
  // The caller is back in its own namespace.
  struct stat here {
  }, there{};
  ASSERT_EQ(::stat("/proc/thread-self/ns/net", &here), 0);
  ASSERT_EQ(::fstat(ns_.netns.get(), &there), 0);
  EXPECT_NE(here.st_ino, there.st_ino);
  EXPECT_EQ(ns_.tun_name, "tw-exit");

  const ExitIsolation iso = inspect_exit_namespace(ns_.netns.get());
  EXPECT_TRUE(iso.problems.empty()) << iso.problems.front();
  auto ifs = iso.interfaces;
  std::sort(ifs.begin(), ifs.end());
  EXPECT_EQ(ifs, (std::vector<std::string>{"lo", "tw-exit"}));
  EXPECT_TRUE(iso.nft_table_present);
  EXPECT_NE(std::find(iso.routes.begin(), iso.routes.end(), "0.0.0.0/0 dev tw-exit"),
            iso.routes.end());
}

TEST_F(ExitNamespaceTest, IcmpEchoIsAnsweredUnreachableAndCounted) {
  std::vector<std::uint8_t> echo = {8, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'};
  const std::uint16_t c = csum(echo.data(), echo.size());
  echo[2] = static_cast<std::uint8_t>(c >> 8);
  echo[3] = static_cast<std::uint8_t>(c);
  const auto pkt = ipv4(1, echo);
  ASSERT_EQ(tun_write(ns_.tun.get(), pkt), static_cast<ssize_t>(pkt.size()));
  const auto reply = read_until(ns_.tun.get(), 2000, [](const std::vector<std::uint8_t>& p) {
    return p.size() >= 28 && (p[0] >> 4) == 4 && p[9] == 1 && p[20] == 3;
  });
  ASSERT_FALSE(reply.empty()) << "no ICMP unreachable came back";
  EXPECT_EQ(reply[21], 1) << "host-unreachable";
  EXPECT_EQ((std::array<std::uint8_t, 4>{reply[16], reply[17], reply[18], reply[19]}),
            (std::array<std::uint8_t, 4>{100, 64, 0, 2}));
  auto k = read_exit_counters(ns_.netns.get());
  ASSERT_TRUE(k.ok()) << k.error();
  EXPECT_EQ(k->refused_icmp, 1u);
  EXPECT_EQ(k->refused_ipv6, 0u);
}

TEST_F(ExitNamespaceTest, UdpIsRedirectedToTheSinkAndDnsToTheDnsSocket) {
  auto udp = [](std::uint16_t dport, const char* text) {
    std::vector<std::uint8_t> u(8 + std::strlen(text));
    u[0] = 0x30;
    u[1] = 0x39;  // 12345
    u[2] = static_cast<std::uint8_t>(dport >> 8);
    u[3] = static_cast<std::uint8_t>(dport);
    u[5] = static_cast<std::uint8_t>(u.size());
    std::memcpy(&u[8], text, std::strlen(text));  // checksum 0: none (IPv4)
    return ipv4(17, u);
  };
  const auto other = udp(4444, "other");
  const auto dns = udp(53, "query");
  ASSERT_EQ(tun_write(ns_.tun.get(), other), static_cast<ssize_t>(other.size()));
  ASSERT_EQ(tun_write(ns_.tun.get(), dns), static_cast<ssize_t>(dns.size()));
  auto recv_text = [](int fd) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 2000) != 1) return std::string("(nothing)");
    char buf[64] = {};
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
    const auto* a = reinterpret_cast<const std::uint8_t*>(&from.sin_addr);
    return std::string(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0))) + " from " +
           std::to_string(a[0]) + "." + std::to_string(a[1]) + "." + std::to_string(a[2]) + "." +
           std::to_string(a[3]);
  };
  EXPECT_EQ(recv_text(ns_.udp_socket.get()), "other from 100.64.0.2");
  EXPECT_EQ(recv_text(ns_.dns_socket.get()), "query from 100.64.0.2");
}

TEST_F(ExitNamespaceTest, Ipv6IsRefusedAndCounted) {
  // An IPv6 UDP datagram to 2001:db8::1: refused with ICMPv6 admin-prohibited.
  std::vector<std::uint8_t> p(48, 0);
  p[0] = 0x60;
  p[5] = 8;   // payload length
  p[6] = 17;  // UDP
  p[7] = 64;
  const std::uint8_t src[16] = {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  const std::uint8_t dst[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  std::memcpy(&p[8], src, 16);
  std::memcpy(&p[24], dst, 16);
  p[40] = 0x30;
  p[42] = 0x11;
  p[45] = 8;
  // UDP over IPv6 needs a checksum: pseudo-header + header.
  std::uint32_t sum = 0;
  for (int i = 8; i < 40; i += 2) sum += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
  sum += 8 + 17;
  const std::uint16_t c = csum(&p[40], 8, sum);
  p[46] = static_cast<std::uint8_t>(c >> 8);
  p[47] = static_cast<std::uint8_t>(c);
  ASSERT_EQ(tun_write(ns_.tun.get(), p), static_cast<ssize_t>(p.size()));
  const auto reply = read_until(ns_.tun.get(), 2000, [](const std::vector<std::uint8_t>& r) {
    return r.size() >= 48 && (r[0] >> 4) == 6 && r[6] == 58 && r[40] == 1;
  });
  ASSERT_FALSE(reply.empty()) << "no ICMPv6 unreachable came back";
  EXPECT_EQ(reply[41], 1) << "administratively prohibited";
  auto k = read_exit_counters(ns_.netns.get());
  ASSERT_TRUE(k.ok()) << k.error();
  EXPECT_EQ(k->refused_ipv6, 1u);
}

}  // namespace
}  // namespace tw::broker
