// The broker's side of the privacy-proxy exit node (docs/design.md#exit-node): owns the
// exit namespace (tw-exit and the three listeners, created once and kept for the
// broker's lifetime), spawns tailwarden-exitproc (fd 3 only, its own empty network
// namespace, the child sandbox), hands it the listeners and the proxy settings in
// ExitSetup, and answers each DialProxy by dialling the one configured proxy address
// (the egress rule for exit flows: that address and nothing else, rate-limited,
// non-blocking connect) and passing the connected fd. Every exitproc message is
// treated as hostile: a malformed one closes the link (counted) and exitproc is
// restarted with backoff; the namespace and the listeners stay.
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
#include "broker/config.h"
#include "broker/exit_namespace.h"
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
  double dial_rate = 200;     // proxy dials per second
  double dial_burst = 400;
  std::size_t max_dials_in_flight = 1024;
  std::chrono::milliseconds dial_timeout{5000};
};

struct ExitStatusView {
  std::string state = "starting";  // starting | running | restarting
  std::string error;               // why the link last closed
  pid_t pid = -1;
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
  void spawn();
  void wait_link();
  void on_link_readable();
  void on_link_closed(const std::string& why, bool violation);
  void on_dial(std::uint64_t flow);
  void dial_failed(std::uint64_t flow, const std::string& why);
  bool send(const exitproc::ToExitproc& m, std::span<const int> fds = {});
  void finish_refreshes();

  boost::asio::io_context& io_;
  ExitNodeConfig config_;
  std::optional<ExitNamespace> ns_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> link_;
  boost::asio::steady_timer restart_timer_;
  boost::asio::steady_timer refresh_timer_;
  std::chrono::milliseconds restart_backoff_{500};
  std::uint64_t link_generation_ = 0;  // dials of an earlier link are not delivered
  ExitStatusView status_;
  ExpectedFds expected_fds_;
  std::vector<std::function<void()>> refresh_waiters_;
  TokenBucket dial_bucket_;
  std::size_t dials_in_flight_ = 0;
  bool stopped_ = false;
  Counter& dials_;
  Counter& dial_failures_;
  Counter& dials_refused_;
  Counter& violations_;
  Counter& restarts_;
};

}  // namespace tw::broker
