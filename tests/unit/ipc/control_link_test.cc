#include "ipc/control_link.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "ipc/control_socket.h"
#include "tests/unit/ipc/fd_count.h"

namespace tw::ipc {
namespace {

using testing::open_fd_count;

// A netproc-side link under test, and the raw broker end of its socket.
struct NetprocLinkFixture : ::testing::Test {
  boost::asio::io_context io;
  MetricsRegistry metrics;
  UniqueFd broker_end;
  std::unique_ptr<ControlLink> link;
  std::vector<ReceivedMessage> received;
  std::optional<std::string> closed;
  std::chrono::steady_clock::time_point closed_at;

  void SetUp() override {
    auto pair = make_control_pair();
    ASSERT_TRUE(pair.ok());
    broker_end = std::move(pair->first);
    link = std::make_unique<ControlLink>(io, std::move(pair->second), LinkKind::kBrokerNetproc,
                                         Role::kNetproc, &metrics);
    link->start([this](ReceivedMessage m) { received.push_back(std::move(m)); },
                [this](const std::string& why) {
                  closed = why;
                  closed_at = std::chrono::steady_clock::now();
                });
  }

  void send_raw(const AnyMessage& m, std::vector<int> fds = {}) {
    auto wire = encode_message(m);
    ASSERT_TRUE(wire.ok());
    auto r = send_datagram(broker_end.get(), *wire, fds);
    ASSERT_TRUE(r.ok() && *r == SendOutcome::kSent);
  }

  void run() {
    io.restart();
    io.run_for(std::chrono::milliseconds(50));
  }

  NetprocSetup setup() {
    NetprocSetup s;
    s.generation = 1;
    s.listen_port = 41641;
    return s;
  }
};

TEST_F(NetprocLinkFixture, SetupThenSocketArrivesWithAUsableFd) {
  send_raw(setup());
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  send_raw(UdpSocket{3}, {fds[1]});
  ::close(fds[1]);
  run();
  ASSERT_FALSE(closed) << *closed;
  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(link->phase(), Phase::kRunning);
  ASSERT_EQ(received[1].fds.size(), 1u);
  EXPECT_EQ(std::get<UdpSocket>(received[1].message).rebind_generation, 3u);
  ASSERT_EQ(::write(received[1].fds[0].get(), "x", 1), 1);
  char c = 0;
  EXPECT_EQ(::read(fds[0], &c, 1), 1);
  EXPECT_EQ(c, 'x');
  ::close(fds[0]);
  EXPECT_EQ(metrics.value("ipc_netproc_broker_messages_total"), 2u);
}

TEST_F(NetprocLinkFixture, UnexpectedFdIsClosedAndTheLinkDropped) {
  send_raw(setup());
  run();
  int before = open_fd_count();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  send_raw(StatusRequest{1, "status"}, {fds[0], fds[1]});
  ::close(fds[0]);
  ::close(fds[1]);
  run();
  ASSERT_TRUE(closed);
  EXPECT_NE(closed->find("fds"), std::string::npos) << *closed;
  EXPECT_EQ(received.size(), 1u);
  EXPECT_EQ(metrics.value("ipc_netproc_broker_violations_total"), 1u);
  // Our end of the control socket is closed too, so one fewer than before.
  EXPECT_EQ(open_fd_count(), before - 1);
}

TEST_F(NetprocLinkFixture, FdCarryingMessageWithoutItsFdIsAViolation) {
  send_raw(setup());
  send_raw(UdpSocket{3});
  run();
  ASSERT_TRUE(closed);
  EXPECT_EQ(received.size(), 1u);
}

TEST_F(NetprocLinkFixture, NetmapBeforeSetupDropsTheLink) {
  send_raw(NetprocNetmap{});
  run();
  ASSERT_TRUE(closed);
  EXPECT_NE(closed->find("phase"), std::string::npos) << *closed;
  EXPECT_TRUE(received.empty());
}

TEST_F(NetprocLinkFixture, MessageMeantForDataprocDropsTheLink) {
  send_raw(setup());
  send_raw(TunFd{1280});
  run();
  ASSERT_TRUE(closed);
  EXPECT_EQ(received.size(), 1u);
}

TEST_F(NetprocLinkFixture, GarbageAndOversizedDatagramsDropTheLink) {
  const std::uint8_t junk[5] = {1, 2, 3, 4, 5};
  ASSERT_EQ(::send(broker_end.get(), junk, sizeof junk, 0), 5);
  run();
  ASSERT_TRUE(closed);
  EXPECT_EQ(link->violations(), 1u);
}

TEST_F(NetprocLinkFixture, PeerClosingIsNoticedAtOnce) {
  broker_end.reset();
  auto start = std::chrono::steady_clock::now();
  io.run_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(closed);
  EXPECT_LT(closed_at - start, std::chrono::milliseconds(100));
  EXPECT_EQ(link->violations(), 0u);
}

TEST_F(NetprocLinkFixture, SendingRefusesTypesThisRoleNeverSends) {
  EXPECT_FALSE(link->send(UdpSocket{1}).ok());
  EXPECT_FALSE(link->send(DataprocSetup{}).ok());
  EXPECT_TRUE(link->send(Ready{}).ok());
  std::uint8_t buf[64];
  ssize_t n = ::recv(broker_end.get(), buf, sizeof buf, MSG_DONTWAIT);
  ASSERT_EQ(n, static_cast<ssize_t>(kHeaderBytes));
  auto m = decode_message(ByteView(buf, static_cast<std::size_t>(n)));
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(std::holds_alternative<Ready>(*m));
}

TEST(ControlLink, BrokerSendsFdsThatTheChildReceivesAndTheSenderKeeps) {
  boost::asio::io_context io;
  auto pair = make_control_pair();
  ASSERT_TRUE(pair.ok());
  ControlLink broker(io, std::move(pair->first), LinkKind::kBrokerDataproc, Role::kBroker);
  ControlLink child(io, std::move(pair->second), LinkKind::kBrokerDataproc, Role::kDataproc);
  std::vector<ReceivedMessage> at_child;
  broker.start([](ReceivedMessage) {}, [](const std::string&) {});
  child.start([&](ReceivedMessage m) { at_child.push_back(std::move(m)); },
              [](const std::string& why) { FAIL() << why; });
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  DataprocSetup s;
  ASSERT_TRUE(broker.send(s).ok());
  ASSERT_TRUE(broker.send(TunFd{1280}, std::vector<int>{fds[0]}).ok());
  EXPECT_FALSE(broker.send(TunFd{1280}).ok());  // a TunFd needs its fd
  io.run_for(std::chrono::milliseconds(50));
  ASSERT_EQ(at_child.size(), 2u);
  ASSERT_EQ(at_child[1].fds.size(), 1u);
  EXPECT_NE(at_child[1].fds[0].get(), fds[0]);
  ASSERT_EQ(::write(fds[1], "y", 1), 1);
  char c = 0;
  EXPECT_EQ(::read(at_child[1].fds[0].get(), &c, 1), 1);
  EXPECT_EQ(c, 'y');
  EXPECT_EQ(::fcntl(at_child[1].fds[0].get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
}  // namespace tw::ipc
