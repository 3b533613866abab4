// Cross-process IPC tests: the other side is ipc_peer_helper, fork/exec'd with
// its fds at fixed numbers the way the broker starts its children.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "ipc/control_link.h"
#include "ipc/doorbell.h"
#include "ipc/ring.h"
#include "ipc/ring_memory.h"
#include "tests/integration/ipc/ring_traffic.h"

namespace tw::ipc {
namespace {

using namespace tw::ipc::testing;
using Clock = std::chrono::steady_clock;

// Starts the helper with fds[i] at 3 + i and nothing else open.
pid_t spawn_helper(std::vector<std::string> args, std::vector<int> fds) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  std::vector<int> high;
  for (int fd : fds) high.push_back(::fcntl(fd, F_DUPFD, 100));
  for (std::size_t i = 0; i < high.size(); ++i) ::dup2(high[i], 3 + static_cast<int>(i));
  ::close_range(3 + static_cast<unsigned>(fds.size()), ~0u, 0);
  std::vector<char*> argv;
  std::string path = TW_IPC_HELPER_PATH;
  argv.push_back(path.data());
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(path.c_str(), argv.data());
  ::_exit(127);
}

int wait_exit(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Kills and reaps a helper that a failed assertion left running.
struct HelperGuard {
  pid_t& pid;
  ~HelperGuard() {
    if (pid > 0 && ::waitpid(pid, nullptr, WNOHANG) == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

double per_second(std::uint64_t n, Clock::time_point start) {
  return n / std::chrono::duration<double>(Clock::now() - start).count();
}

TEST(IpcProcess, NetToDataRingCarriesEveryMessageInOrderAcrossProcesses) {
  const std::uint64_t count = ring_message_count();
  auto mem = RingMemory::create(RingGeometry{});
  ASSERT_TRUE(mem.ok()) << mem.error();
  auto bell = make_doorbell();
  ASSERT_TRUE(bell.ok());
  RingConsumer rx(mem->ring(Direction::kNetToData));
  auto start = Clock::now();
  pid_t pid = spawn_helper({"produce", std::to_string(count)}, {mem->fd(), bell->get()});
  HelperGuard guard{pid};
  PacketBatch batch;
  std::uint64_t expect = 0;
  int empty = 0;
  while (expect < count) {
    std::size_t n = rx.pop(batch);
    if (n == 0) {
      if (++empty < kSpinsBeforeSleep) {
        std::this_thread::yield();
        continue;
      }
      empty = 0;
      if (rx.prepare_to_sleep()) {
        pollfd pfd{bell->get(), POLLIN, 0};
        ASSERT_EQ(::poll(&pfd, 1, 10'000), 1) << "stalled at " << expect;
        drain_doorbell(bell->get());
      }
      rx.woke();
      continue;
    }
    for (std::size_t i = 0; i < n; ++i, ++expect) {
      auto why = check_traffic(expect, batch.peer_id(i), batch.data(i));
      ASSERT_TRUE(why.empty()) << why;
    }
  }
  EXPECT_EQ(wait_exit(pid), 0);
  EXPECT_EQ(rx.pop(batch), 0u) << "duplicates after the last message";
  EXPECT_EQ(rx.stats().dropped_oversize + rx.stats().bad_index, 0u);
  std::printf("net->data: %llu messages, %.1f M msg/s, %llu sleeps\n",
              static_cast<unsigned long long>(count), per_second(count, start) / 1e6,
              static_cast<unsigned long long>(rx.stats().doorbells));
}

TEST(IpcProcess, DataToNetRingCarriesEveryMessageInOrderAcrossProcesses) {
  const std::uint64_t count = ring_message_count();
  auto mem = RingMemory::create(RingGeometry{});
  ASSERT_TRUE(mem.ok()) << mem.error();
  auto bell = make_doorbell();
  ASSERT_TRUE(bell.ok());
  RingProducer tx(mem->ring(Direction::kDataToNet), bell->get());
  auto start = Clock::now();
  pid_t pid = spawn_helper({"consume", std::to_string(count)}, {mem->fd(), bell->get()});
  HelperGuard guard{pid};
  std::vector<std::uint8_t> storage(32 * 65536);
  OutPacket out[32];
  for (std::uint64_t seq = 0; seq < count;) {
    std::size_t n = std::min<std::uint64_t>(32, count - seq);
    for (std::size_t k = 0; k < n; ++k) {
      std::uint8_t* buf = storage.data() + k * 65536;
      out[k] = OutPacket{traffic_peer(seq + k), ByteView(buf, fill_traffic(seq + k, buf))};
    }
    for (std::size_t done = 0; done < n;) {
      std::size_t pushed = tx.push(std::span(out + done, n - done));
      if (pushed == 0) std::this_thread::yield();
      done += pushed;
    }
    seq += n;
  }
  EXPECT_EQ(wait_exit(pid), 0) << "the consumer found loss, duplication or reordering";
  std::printf("data->net: %llu messages, %.1f M msg/s, %llu doorbells\n",
              static_cast<unsigned long long>(count), per_second(count, start) / 1e6,
              static_cast<unsigned long long>(tx.stats().doorbells));
}

TEST(IpcProcess, HostileProducerCanOnlyCauseDropsAndTheRingRecoversAfterReset) {
  auto mem = RingMemory::create(RingGeometry{64, 65536});
  ASSERT_TRUE(mem.ok());
  RingConsumer rx(mem->ring(Direction::kNetToData));
  pid_t pid = spawn_helper({"garbage", "500"}, {mem->fd()});
  HelperGuard guard{pid};
  PacketBatch batch(65536);
  std::uint64_t delivered = 0;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    std::size_t n = rx.pop(batch);
    for (std::size_t i = 0; i < n; ++i) ASSERT_LE(batch.data(i).size(), 65536u);
    delivered += n;
  }
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_GT(rx.stats().bad_index + rx.stats().dropped_oversize, 0u);
  std::printf("hostile producer: %llu delivered, %llu bad indices, %llu oversize\n",
              static_cast<unsigned long long>(delivered),
              static_cast<unsigned long long>(rx.stats().bad_index),
              static_cast<unsigned long long>(rx.stats().dropped_oversize));

  // The broker restarts the producer: reset, the survivor resyncs, traffic flows.
  mem->reset();
  rx.resync();
  auto bell = make_doorbell();
  ASSERT_TRUE(bell.ok());
  pid = spawn_helper({"produce", "5000"}, {mem->fd(), bell->get()});
  for (std::uint64_t expect = 0; expect < 5000;) {
    std::size_t n = rx.pop(batch);
    for (std::size_t i = 0; i < n; ++i, ++expect) {
      auto why = check_traffic(expect, batch.peer_id(i), batch.data(i));
      ASSERT_TRUE(why.empty()) << why;
    }
  }
  EXPECT_EQ(wait_exit(pid), 0);
}

// The broker's side of a control link to a helper playing netproc.
struct BrokerSide {
  boost::asio::io_context io;
  std::unique_ptr<ControlLink> link;
  std::vector<ReceivedMessage> received;
  std::optional<std::string> closed;
  Clock::time_point closed_at;
  UniqueFd raw;  // a second handle on the socket, to send what ControlLink refuses to
  pid_t pid = -1;
  std::unique_ptr<HelperGuard> guard;

  void start() {
    auto pair = make_control_pair();
    ASSERT_TRUE(pair.ok());
    pid = spawn_helper({"netproc"}, {pair->second.get()});
    guard = std::make_unique<HelperGuard>(pid);
    pair->second.reset();  // else the child's death would not close the channel
    raw.reset(::dup(pair->first.get()));
    link = std::make_unique<ControlLink>(io, std::move(pair->first), LinkKind::kBrokerNetproc,
                                         Role::kBroker);
    link->start([this](ReceivedMessage m) { received.push_back(std::move(m)); },
                [this](const std::string& why) {
                  closed = why;
                  closed_at = Clock::now();
                });
  }
  // Runs the loop until `n` messages arrived or the link closed.
  void run_until(std::size_t n) {
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (received.size() < n && !closed && Clock::now() < deadline) {
      io.restart();
      io.run_one_for(std::chrono::milliseconds(100));
    }
  }
};

TEST(IpcProcess, FdsSurviveTheTripAndUnexpectedFdsAreClosedByTheReceiver) {
  BrokerSide broker;
  broker.start();
  ASSERT_TRUE(broker.link->send(NetprocSetup{}).ok());
  broker.run_until(1);
  ASSERT_EQ(broker.received.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<Ready>(broker.received[0].message));
  EXPECT_EQ(broker.link->phase(), Phase::kRunning);

  UniqueFd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(udp);
  ASSERT_TRUE(broker.link->send(UdpSocket{1}, std::vector<int>{udp.get()}).ok());
  ASSERT_TRUE(broker.link->send(StatusRequest{2, "fds"}).ok());
  broker.run_until(3);
  ASSERT_EQ(broker.received.size(), 3u);
  EXPECT_EQ(std::get<StatusReply>(broker.received[1].message).body, "udp");
  // The helper dropped the socket after looking at it: no fd held beyond setup.
  EXPECT_EQ(std::get<StatusReply>(broker.received[2].message).body, "0");

  // A StatusRequest with two fds attached: the helper must drop the link, close
  // both fds, and exit 0 only if its fd count is back to the baseline.
  int pipefds[2];
  ASSERT_EQ(::pipe(pipefds), 0);
  auto wire = encode_message(StatusRequest{3, "fds"});
  ASSERT_TRUE(wire.ok());
  auto sent = send_datagram(broker.raw.get(), *wire, std::vector<int>{pipefds[0], pipefds[1]});
  ASSERT_TRUE(sent.ok() && *sent == SendOutcome::kSent);
  ::close(pipefds[0]);
  ::close(pipefds[1]);
  EXPECT_EQ(wait_exit(broker.pid), 0) << "helper did not treat the stray fds as a violation, or leaked them";
}

TEST(IpcProcess, ChildDeathIsNoticedWithin100Milliseconds) {
  BrokerSide broker;
  broker.start();
  ASSERT_TRUE(broker.link->send(NetprocSetup{}).ok());
  broker.run_until(1);
  ASSERT_EQ(broker.received.size(), 1u);
  broker.raw.reset();
  auto killed_at = Clock::now();
  ASSERT_EQ(::kill(broker.pid, SIGKILL), 0);
  broker.run_until(2);
  ASSERT_TRUE(broker.closed);
  auto latency = std::chrono::duration_cast<std::chrono::milliseconds>(broker.closed_at - killed_at);
  EXPECT_LT(latency.count(), 100) << *broker.closed;
  EXPECT_EQ(wait_exit(broker.pid), 128 + SIGKILL);
}

}  // namespace
}  // namespace tw::ipc
