#include "broker/underlay_socket.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

namespace tw::broker {
namespace {

int socket_domain(int fd) {
  int d = 0;
  socklen_t len = sizeof d;
  getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &d, &len);
  return d;
}

TEST(UnderlaySocketTest, DefaultIsIpv4AnyEphemeral) {
  auto s = bind_underlay({});
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_FALSE(s->v6);
  EXPECT_EQ(socket_domain(s->fd.get()), AF_INET);
  EXPECT_NE(s->port, 0);
  EXPECT_TRUE(s->warnings.empty());
}

// netproc cannot set socket options under its sandbox: the broker turns on coalesced
// receive (UDP_GRO) for it, on both families.
TEST(UnderlaySocketTest, CoalescedReceiveIsOn) {
  for (bool v6 : {false, true}) {
    auto s = bind_underlay({.port = 0, .enable_ipv6 = v6});
    ASSERT_TRUE(s.ok()) << s.error();
    int on = 0;
    socklen_t len = sizeof on;
    ASSERT_EQ(getsockopt(s->fd.get(), IPPROTO_UDP, UDP_GRO, &on, &len), 0) << v6;
    EXPECT_EQ(on, 1) << v6;
  }
}

TEST(UnderlaySocketTest, PinnedPortIsBound) {
  auto first = bind_underlay({});
  ASSERT_TRUE(first.ok());
  std::uint16_t port = first->port;
  first->fd.reset();
  auto s = bind_underlay({port, false});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->port, port);
}

TEST(UnderlaySocketTest, TakenPinnedPortFallsBackToEphemeralWithWarning) {
  auto holder = bind_underlay({});
  ASSERT_TRUE(holder.ok());
  auto s = bind_underlay({holder->port, false});
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_NE(s->port, holder->port);
  ASSERT_EQ(s->warnings.size(), 1u);
  EXPECT_NE(s->warnings[0].find("0.0.0.0:" + std::to_string(holder->port)), std::string::npos);
}

TEST(UnderlaySocketTest, Ipv6SocketIsExplicitlyDualStack) {
  auto s = bind_underlay({0, true});
  ASSERT_TRUE(s.ok()) << s.error();
  if (!s->v6) GTEST_SKIP() << "no IPv6 on this host: fell back to IPv4 (" << s->warnings.at(0) << ")";
  int v6only = -1;
  socklen_t len = sizeof v6only;
  ASSERT_EQ(getsockopt(s->fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len), 0);
  EXPECT_EQ(v6only, 0);
}

TEST(UnderlaySocketTest, Ipv6FailureFallsBackToIpv4) {
  auto s = bind_underlay({0, true}, [](int fd, const sockaddr* sa, socklen_t len) {
    if (sa->sa_family == AF_INET6) {
      errno = EADDRNOTAVAIL;
      return -1;
    }
    return ::bind(fd, sa, len);
  });
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->v6);
  EXPECT_EQ(s->warnings.size(), 1u);
}

TEST(UnderlaySocketTest, EveryBindFailingMeansInertWithAllReasons) {
  auto s = bind_underlay({41641, true}, [](int, const sockaddr*, socklen_t) {
    errno = EACCES;
    return -1;
  });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("[::]:41641"), std::string::npos) << s.error();
  EXPECT_NE(s.error().find("0.0.0.0:0"), std::string::npos) << s.error();
}

}  // namespace
}  // namespace tw::broker
