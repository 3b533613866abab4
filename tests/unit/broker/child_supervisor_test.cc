// The broker's child supervisor with real processes: a child whose link closes is
// killed and spawned again after a backoff that doubles (or starts over for a child
// that ran long enough), a child that cannot be spawned is retried the same way, and
// stop() ends it all.
#include "broker/child_supervisor.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "ipc/control_socket.h"

namespace tw::broker {
namespace {

using namespace std::chrono_literals;

struct Harness {
  boost::asio::io_context io;
  MetricsRegistry metrics;
  ChildStatus status;
  ExpectedFds expected;
  std::vector<pid_t> spawned;
  std::vector<std::uint64_t> generations;
  int closed = 0;
  std::unique_ptr<ChildSupervisor> sup;

  Harness(ChildLaunch launch, std::optional<std::chrono::seconds> stable_after) {
    Counter& restarts = metrics.counter("test_restarts_total", "restarts");
    sup = std::make_unique<ChildSupervisor>(
        io, std::move(launch), SupervisorOptions{"test", "child", 20ms, stable_after}, status,
        expected, restarts,
        ChildSupervisor::Hooks{[this](pid_t pid) {
                                 spawned.push_back(pid);
                                 generations.push_back(sup->generation());
                               },
                               [this] { on_readable(); }, [this] { ++closed; }});
  }
  ~Harness() {
    sup->stop();
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }
  void on_readable() {
    for (;;) {
      ipc::ReceivedDatagram d;
      auto r = ipc::receive_datagram(sup->link_fd(), 4096, d);
      if (!r) return sup->link_failed(r.error());
      if (*r == ipc::ReceiveOutcome::kPeerClosed) return sup->link_failed("child closed its link");
      if (*r == ipc::ReceiveOutcome::kWouldBlock) return sup->wait_link();
    }
  }
  std::uint64_t restarts() { return metrics.counter("test_restarts_total", "restarts").value(); }
  bool run_until(const std::function<bool()>& done) {
    for (int i = 0; i < 500 && !done(); ++i) io.run_for(10ms);
    return done();
  }
};

ChildLaunch exiting_child() { return ChildLaunch{"/bin/sh", {"-c", "exit 0"}, {}, false}; }

TEST(ChildSupervisorTest, AChildWhoseLinkClosesIsRestartedWithADoublingBackoff) {
  Harness h(exiting_child(), std::nullopt);
  h.sup->start();
  ASSERT_TRUE(h.run_until([&] { return h.spawned.size() >= 4; }));
  EXPECT_GE(h.restarts(), 3u);
  EXPECT_GE(h.closed, 3);
  EXPECT_EQ(h.status.state, "restarting");
  EXPECT_EQ(h.status.error, "child closed its link");
  // 20 ms, then 40, 80, 160 ...: at least three failures have doubled it.
  EXPECT_GE(h.sup->backoff(), 160ms);
  // Every spawn and every failure moves the generation on.
  for (std::size_t i = 1; i < h.generations.size(); ++i)
    EXPECT_EQ(h.generations[i], h.generations[i - 1] + 2);
  // The link's own inode is expected in the child's fd table.
  EXPECT_EQ(h.expected.inodes.size(), 1u);
  h.sup->reset_backoff();
  EXPECT_EQ(h.sup->backoff(), 20ms);

  h.sup->stop();
  EXPECT_TRUE(h.sup->stopped());
  EXPECT_EQ(h.status.pid, -1);
  EXPECT_EQ(h.sup->link(), nullptr);
  const std::size_t spawns = h.spawned.size();
  h.io.run_for(300ms);
  EXPECT_EQ(h.spawned.size(), spawns) << "spawned again after stop()";
}

TEST(ChildSupervisorTest, AChildThatRanLongEnoughRestartsAfterTheInitialBackoff) {
  Harness h(exiting_child(), std::chrono::seconds(0));
  h.sup->start();
  ASSERT_TRUE(h.run_until([&] { return h.spawned.size() >= 4; }));
  // Each failure starts over at 20 ms, so the next one would wait 40 ms.
  EXPECT_EQ(h.sup->backoff(), 40ms);
}

TEST(ChildSupervisorTest, AChildThatCannotBeSpawnedIsRetried) {
  Harness h(ChildLaunch{"/nonexistent/tailwarden-child", {}, {}, false}, std::nullopt);
  h.sup->start();
  ASSERT_TRUE(h.run_until([&] { return h.restarts() >= 3; }));
  EXPECT_TRUE(h.spawned.empty());
  EXPECT_EQ(h.status.state, "restarting");
  EXPECT_NE(h.status.error.find("spawning child: "), std::string::npos) << h.status.error;
  EXPECT_EQ(h.status.pid, -1);
}

}  // namespace
}  // namespace tw::broker
