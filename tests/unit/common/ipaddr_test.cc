#include <gtest/gtest.h>

#include "common/ipaddr.h"

namespace tw {
namespace {

TEST(IpAddrTest, V4MappedIsNormalisedToV4) {
  auto ip = IpAddr::parse("::ffff:198.18.0.1");
  ASSERT_TRUE(ip);
  EXPECT_TRUE(ip->is_v4());
  EXPECT_EQ(ip->to_string(), "198.18.0.1");
  EXPECT_EQ(*ip, *IpAddr::parse("198.18.0.1"));
}

TEST(IpAddrTest, Classification) {
  EXPECT_TRUE(IpAddr::parse("10.1.2.3")->is_private());
  EXPECT_TRUE(IpAddr::parse("172.31.0.1")->is_private());
  EXPECT_FALSE(IpAddr::parse("172.32.0.1")->is_private());
  EXPECT_TRUE(IpAddr::parse("192.168.0.1")->is_private());
  EXPECT_TRUE(IpAddr::parse("fd89::1")->is_private());
  EXPECT_TRUE(IpAddr::parse("169.254.1.1")->is_link_local_unicast());
  EXPECT_TRUE(IpAddr::parse("fe80::1")->is_link_local_unicast());
  EXPECT_TRUE(IpAddr::parse("127.0.0.1")->is_loopback());
  EXPECT_TRUE(IpAddr::parse("::1")->is_loopback());
  EXPECT_TRUE(IpAddr::parse("0.0.0.0")->is_unspecified());
  EXPECT_TRUE(IpAddr::parse("::")->is_unspecified());
  EXPECT_FALSE(IpAddr::parse("198.18.0.1")->is_private());
}

TEST(IpPortTest, ParseAndFormat) {
  auto e = IpPort::parse("203.0.113.7:41641");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->port, 41641);
  EXPECT_EQ(e->to_string(), "203.0.113.7:41641");
  auto e6 = IpPort::parse("[2001:db8::1]:443");
  ASSERT_TRUE(e6);
  EXPECT_EQ(e6->to_string(), "[2001:db8::1]:443");
  EXPECT_FALSE(IpPort::parse("2001:db8::1:443"));
  EXPECT_FALSE(IpPort::parse("1.2.3.4:65536"));
  EXPECT_FALSE(IpPort::parse("1.2.3.4:"));
  EXPECT_FALSE(IpPort::parse("1.2.3.4"));
  EXPECT_FALSE(IpPort::parse("[1.2.3.4]:80"));
  EXPECT_FALSE(IpPort::parse("1.2.3.4:8a"));
}

TEST(IpPortTest, SockaddrRoundTripNormalisesMapped) {
  auto e = *IpPort::parse("198.18.1.2:7");
  sockaddr_storage ss{};
  socklen_t len = e.to_sockaddr(&ss, /*v6_socket=*/true);
  EXPECT_EQ(ss.ss_family, AF_INET6);
  auto back = IpPort::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, e);
  EXPECT_TRUE(back->ip.is_v4());
}

}  // namespace
}  // namespace tw
