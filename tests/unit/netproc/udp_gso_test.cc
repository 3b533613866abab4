// UdpIo::flush with UDP GSO on a real loopback socket: runs of same-size datagrams
// to one destination leave as one message and arrive as the separate datagrams
// they were, in order; other destinations and sizes break runs.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "netproc/magicsock/udp_io.h"
#include "tests/unit/netproc/rt_util.h"

namespace tw::magicsock {
namespace {

using namespace ::tw::netproc_test;

std::vector<Bytes> receive_all(int fd, std::size_t want) {
  std::vector<Bytes> got;
  std::uint8_t buf[65536];
  for (int tries = 0; got.size() < want && tries < 2000; ++tries) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      ::usleep(1000);
      continue;
    }
    got.emplace_back(buf, buf + n);
  }
  return got;
}

Bytes datagram(std::uint8_t marker, std::size_t len) {
  Bytes d(len);
  for (std::size_t i = 0; i < len; ++i) d[i] = static_cast<std::uint8_t>(marker + i);
  return d;
}

TEST(UdpGso, RunsLeaveAsOneMessageAndArriveAsTheDatagramsTheyWere) {
  MetricsRegistry m;
  UdpIoCounters c(m);
  UdpIo io(bind_loopback(), c);
  auto r1 = bind_loopback();
  auto r2 = bind_loopback();
  const IpPort to1 = loopback(port_of(r1.get())), to2 = loopback(port_of(r2.get()));
  std::vector<Bytes> sent1, sent2;
  // 5 x 1300 + a shorter last one to r1 (one run), then 2 to r2 (a second run), then
  // one more to r1 (a third: the destination changed).
  for (std::uint8_t i = 0; i < 5; ++i) sent1.push_back(datagram(i, 1300));
  sent1.push_back(datagram(5, 700));
  sent2 = {datagram(20, 900), datagram(21, 900)};
  for (const auto& d : sent1) io.queue(to1, d);
  for (const auto& d : sent2) io.queue(to2, d);
  sent1.push_back(datagram(30, 1300));
  io.queue(to1, sent1.back());
  io.flush();
  EXPECT_EQ(receive_all(r1.get(), sent1.size()), sent1);
  EXPECT_EQ(receive_all(r2.get(), sent2.size()), sent2);
  EXPECT_EQ(c.tx_datagrams.value(), 9u);
  EXPECT_EQ(c.tx_errors.value(), 0u);
  if (io.gso()) {
    EXPECT_EQ(c.tx_gso_batches.value(), 2u);  // the third run is a single datagram
  } else {
    EXPECT_EQ(c.tx_gso_refused.value(), 1u);  // a kernel without UDP GSO: sent one by one
  }
}

TEST(UdpGso, OffSendsDatagramByDatagram) {
  MetricsRegistry m;
  UdpIoCounters c(m);
  UdpIo io(bind_loopback(), c);
  io.set_gso(false);
  auto r = bind_loopback();
  std::vector<Bytes> sent;
  for (std::uint8_t i = 0; i < 4; ++i) sent.push_back(datagram(i, 1000));
  for (const auto& d : sent) io.queue(loopback(port_of(r.get())), d);
  io.flush();
  EXPECT_EQ(receive_all(r.get(), sent.size()), sent);
  EXPECT_EQ(c.tx_gso_batches.value(), 0u);
  EXPECT_EQ(c.tx_datagrams.value(), 4u);
}

TEST(UdpGso, OversizedSegmentsAreNotBatched) {
  MetricsRegistry m;
  UdpIoCounters c(m);
  UdpIo io(bind_loopback(), c);
  auto r = bind_loopback();
  std::vector<Bytes> sent = {datagram(1, 3000), datagram(2, 3000)};
  for (const auto& d : sent) io.queue(loopback(port_of(r.get())), d);
  io.flush();
  EXPECT_EQ(receive_all(r.get(), sent.size()), sent);
  EXPECT_EQ(c.tx_gso_batches.value(), 0u);
  EXPECT_EQ(c.tx_errors.value(), 0u);
}

}  // namespace
}  // namespace tw::magicsock
