// The exit's DNS forwarder on real loopback UDP sockets: the TCP framing, the
// in-flight bound, and the replies a client gets for good, oversized and failed
// exchanges.
#include "exitproc/dns_forward.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

namespace tw::exitproc {
namespace {

// A query for a.test A with the given ID, RD set.
Bytes query(std::uint16_t id) {
  const auto hi = static_cast<std::uint8_t>(id >> 8), lo = static_cast<std::uint8_t>(id);
  // Header: ID, RD, QDCOUNT 1; then the question.
  return Bytes{hi, lo,  0x01, 0,   0,   1,   0,   0, 0, 0, 0, 0,  //
               1,  'a', 4,    't', 'e', 's', 't', 0, 0, 1, 0, 1};
}

int udp_socket(sockaddr_in& sa) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  EXPECT_GE(fd, 0);
  sa = {};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  socklen_t l = sizeof sa;
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &l), 0);
  return fd;
}

void send_to(int fd, const Bytes& b, const sockaddr_in& to) {
  ASSERT_EQ(::sendto(fd, b.data(), b.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to),
            static_cast<ssize_t>(b.size()));
}

Bytes receive(int fd) {
  std::uint8_t buf[4096];
  const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  return n < 0 ? Bytes{} : Bytes(buf, buf + n);
}

TEST(ExitDnsForwardTest, FramingIsALengthPrefix) {
  const Bytes q = query(7);
  const Bytes framed = frame_dns_query(q);
  ASSERT_EQ(framed.size(), q.size() + 2);
  EXPECT_EQ(load_be16(framed.data()), q.size());
  EXPECT_TRUE(std::equal(q.begin(), q.end(), framed.begin() + 2));
  EXPECT_EQ(framed_dns_answer_size({}), 2u);
  EXPECT_EQ(framed_dns_answer_size(ByteView(framed.data(), 1)), 2u);
  EXPECT_EQ(framed_dns_answer_size(framed), framed.size());
  const Bytes big = {0xff, 0xff};
  EXPECT_EQ(framed_dns_answer_size(big), 65537u);
}

TEST(ExitDnsForwardTest, QueriesAreBoundedCheckedAndAnswered) {
  sockaddr_in server{}, client{};
  ExitStats stats;
  DnsForwarder fwd(stats);
  fwd.attach(udp_socket(server), 2);
  const int c = udp_socket(client);
  for (std::uint16_t id : {1, 2, 3}) send_to(c, query(id), server);
  send_to(c, Bytes{1, 2, 3}, server);  // not a query
  std::vector<DnsQuery> started;
  const auto take = [&started](DnsQuery&& q) {
    started.push_back(std::move(q));
    return true;
  };
  fwd.read_queries(64, take);
  ASSERT_EQ(started.size(), 2u);
  EXPECT_EQ(fwd.in_flight(), 2u);
  EXPECT_EQ(stats.dns_queries, 4u);
  EXPECT_EQ(stats.dns_dropped, 1u);  // the third: over the bound
  EXPECT_EQ(stats.dns_invalid, 1u);
  EXPECT_EQ(started[0].info.id, 1);
  EXPECT_EQ(ntohs(started[0].client.sin_port), ntohs(client.sin_port));

  // A matching answer goes back as it is.
  Bytes answer = query(1);
  answer[2] |= 0x80;
  fwd.finish(started[0], ByteView(frame_dns_query(answer)));
  EXPECT_EQ(receive(c), answer);
  EXPECT_EQ(stats.dns_ok, 1u);
  // An answer with another ID: SERVFAIL.
  fwd.finish(started[1], ByteView(frame_dns_query(answer)));
  Bytes reply = receive(c);
  ASSERT_GE(reply.size(), 4u);
  EXPECT_EQ(load_be16(reply.data()), 2);
  EXPECT_EQ(reply[3] & 0x0f, 2);
  EXPECT_EQ(stats.dns_failed, 1u);
  EXPECT_EQ(fwd.in_flight(), 0u);

  // Room again; a query `start` cannot forward is counted invalid and not in flight.
  send_to(c, query(4), server);
  fwd.read_queries(64, [](DnsQuery&&) { return false; });
  EXPECT_EQ(stats.dns_invalid, 2u);
  EXPECT_EQ(fwd.in_flight(), 0u);

  // An answer too large for UDP: truncated (TC=1) with the question only.
  started.clear();
  send_to(c, query(5), server);
  fwd.read_queries(64, take);
  ASSERT_EQ(started.size(), 1u);
  Bytes large = query(5);
  large[2] |= 0x80;
  large.resize(kMaxDnsUdpAnswer + 1);
  fwd.finish(started[0], ByteView(frame_dns_query(large)));
  reply = receive(c);
  ASSERT_EQ(reply.size(), query(5).size());
  EXPECT_NE(reply[2] & 0x02, 0);
  EXPECT_EQ(stats.dns_ok, 2u);

  // A failed exchange: SERVFAIL.
  started.clear();
  send_to(c, query(6), server);
  fwd.read_queries(64, take);
  ASSERT_EQ(started.size(), 1u);
  fwd.finish(started[0], std::nullopt);
  reply = receive(c);
  ASSERT_GE(reply.size(), 4u);
  EXPECT_EQ(load_be16(reply.data()), 6);
  EXPECT_EQ(reply[3] & 0x0f, 2);
  EXPECT_EQ(stats.dns_failed, 2u);
  EXPECT_EQ(fwd.in_flight(), 0u);
  ::close(c);
}

}  // namespace
}  // namespace tw::exitproc
