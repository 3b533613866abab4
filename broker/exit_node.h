// The broker's side of the privacy-proxy exit node (docs/design.md#9-exit-node): owns the
// exit namespace (tw-exit and the three listeners, created once and kept for the
// broker's lifetime), spawns tailwarden-exitproc (fd 3 only, its own empty network
// namespace, the child sandbox), hands it the listeners and the proxy settings in
// ExitSetup, and answers each DialProxy by dialling the one configured proxy address
// (the egress rule for exit flows: that address and nothing else, rate-limited,
// non-blocking connect) and passing the connected fd. Every exitproc message is
// treated as hostile: a malformed one closes the link (counted) and exitproc is
// restarted with backoff (broker/child_supervisor.h); the namespace and the listeners
// stay.
#pragma once

#include <boost/asio.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>  // before Asio
#include <vector>

#include "broker/audit.h"
#include "broker/child_supervisor.h"
#include "broker/config.h"
#include "broker/exit_namespace.h"
#include "common/bytes.h"
#include "common/metrics.h"
#include "common/throttle.h"
#include "exitproc/link.h"
#include "ipc/unique_fd.h"

namespace tw::broker {

struct ExitNodeConfig {
  std::string binary;                   // tailwarden-exitproc
  std::vector<std::string> child_args;  // --uid ... --sandbox ... --log-level ...
  std::vector<std::string> child_env;
  bool new_netns = true;
  ExitConfig exit;
  std::optional<ProxyCredentials> credentials;
  unsigned mtu = 1280;
  double dial_rate = 200;  // proxy dials per second
  double dial_burst = 400;
  std::size_t max_dials_in_flight = 1024;
  std::chrono::milliseconds dial_timeout{5000};
};

// state (starting | running | restarting), error and pid: ChildStatus.
struct ExitStatusView : ChildStatus {
  std::optional<exitproc::ExitStats> stats;  // the latest ExitStats
};

class ExitNode {
 public:
  ExitNode(boost::asio::io_context& io, ExitNodeConfig config, MetricsRegistry& metrics);
  ~ExitNode();
  ExitNode(const ExitNode&) = delete;
  ExitNode& operator=(const ExitNode&) = delete;

  // Creates the exit namespace; call before dataproc gets the exit TUN.
  Status create_namespace();
  // tw-exit, for dataproc (the broker keeps its copy).
  int tun_fd() const { return ns_ ? ns_->tun.get() : -1; }
  void start();
  void stop();

  // Asks exitproc for fresh counters; `done` runs when they arrive or after 1 s.
  void refresh(std::function<void()> done);
  const ExitStatusView& status() const { return status_; }
  const ExitConfig& config() const { return config_.exit; }
  const ExpectedFds& expected_fds() const { return expected_fds_; }
  // audit and metrics: the namespace's isolation and kernel counters.
  ExitIsolation inspect() const;
  Result<ExitKernelCounters> kernel_counters() const;

 private:
  void on_spawned(pid_t pid);
  void on_link_readable();
  void on_link_closed(const std::string& why, bool violation);
  void drop_link_state();
  void on_dial(std::uint64_t flow);
  void dial_failed(std::uint64_t flow, const std::string& why);
  // Sends, or queues while the link is full (the fd duplicated); reading from exitproc
  // pauses until the queue is flushed, so a busy exitproc slows itself down. A queue
  // that grows past kMaxOutbox means exitproc stopped reading: the link is closed.
  bool send(const exitproc::ToExitproc& m, std::span<const int> fds = {});
  void flush_outbox();
  void wait_writable();
  struct Outgoing {
    Bytes datagram;
    std::vector<ipc::UniqueFd> fds;
  };
  static constexpr std::size_t kMaxOutbox = 8192;
  std::deque<Outgoing> outbox_;
  bool write_wait_armed_ = false;
  bool read_paused_ = false;
  void finish_refreshes();

  boost::asio::io_context& io_;
  ExitNodeConfig config_;
  std::optional<ExitNamespace> ns_;
  boost::asio::steady_timer refresh_timer_;
  ExitStatusView status_;
  ExpectedFds expected_fds_;
  std::vector<std::function<void()>> refresh_waiters_;
  TokenBucket dial_bucket_;
  std::size_t dials_in_flight_ = 0;
  Counter& dials_;
  Counter& dial_failures_;
  Counter& dials_refused_;
  Counter& violations_;
  // Last: it refers to the members above. Its generation() keeps the dials and
  // waits of an earlier link from reaching a later one.
  ChildSupervisor child_;
};

}  // namespace tw::broker
