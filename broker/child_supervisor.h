// Supervision of a broker child that talks to the broker over one link at fd 3 only
// (ctlproc: broker/control_client.h, exitproc: broker/exit_node.h): spawning it with
// that link (broker/spawn.h), waiting for the link to become readable, and on any
// link failure killing the child and spawning it again after a backoff that doubles
// up to 30 s. What travels on the link, and what a role sends first, is the role's.
#pragma once

#include <sys/types.h>

#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>  // before Asio
#include <vector>

#include "broker/audit.h"
#include "common/metrics.h"

namespace tw::broker {

// The part of a role's status the supervisor keeps.
struct ChildStatus {
  std::string state = "starting";  // the role's own states, and "restarting"
  std::string error;               // why the link last closed
  pid_t pid = -1;
};

// How the child is started: the role's config fields.
struct ChildLaunch {
  std::string binary;
  std::vector<std::string> args;
  std::vector<std::string> env;
  bool new_netns = true;
};

struct SupervisorOptions {
  std::string area;   // log and error prefix: "control", "exit"
  std::string child;  // "ctlproc", "exitproc"
  std::chrono::milliseconds initial_backoff{1000};
  // A child that ran at least this long before its link failed restarts after the
  // initial backoff again; unset: only reset_backoff() does that.
  std::optional<std::chrono::seconds> stable_after;
};

class ChildSupervisor {
 public:
  struct Hooks {
    // The child runs and the link is up: send what the role sends first. Failing
    // that, call link_failed(); the supervisor waits for the link only if it is
    // still up afterwards.
    std::function<void(pid_t pid)> on_spawned;
    // The link is readable: read until it would block, then call wait_link() (or
    // post a continuation).
    std::function<void()> on_readable;
    // The link closed, the child was killed and the status says "restarting"; the
    // restart is not scheduled yet. Drops what the role kept for this link.
    std::function<void()> on_closed;
  };

  // `status` and `expected_fds` belong to the role (its status() and audit views);
  // they must outlive the supervisor.
  ChildSupervisor(boost::asio::io_context& io, ChildLaunch launch, SupervisorOptions options,
                  ChildStatus& status, ExpectedFds& expected_fds, Counter& restarts, Hooks hooks);
  ~ChildSupervisor();
  ChildSupervisor(const ChildSupervisor&) = delete;
  ChildSupervisor& operator=(const ChildSupervisor&) = delete;

  void start() { spawn(); }
  // Closes the link and kills and reaps the child; nothing restarts it.
  void stop();
  bool stopped() const { return stopped_; }

  // The link to the current child, or null between a failure and the restart.
  boost::asio::posix::stream_descriptor* link() { return link_.get(); }
  int link_fd() const { return link_ ? link_->native_handle() : -1; }
  // Changes with every spawn and every link failure: callbacks armed for one link
  // compare it to stay away from the next.
  std::uint64_t generation() const { return generation_; }

  void wait_link();
  // The link failed (closed, unreadable, a violation): kill the child, restart it later.
  void link_failed(const std::string& why);
  // The child works (e.g. its first dial succeeded): the next failure restarts fast.
  void reset_backoff() { backoff_ = options_.initial_backoff; }
  std::chrono::milliseconds backoff() const { return backoff_; }

 private:
  void spawn();

  boost::asio::io_context& io_;
  ChildLaunch launch_;
  SupervisorOptions options_;
  ChildStatus& status_;
  ExpectedFds& expected_fds_;
  Counter& restarts_;
  Hooks hooks_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> link_;
  boost::asio::steady_timer restart_timer_;
  std::chrono::milliseconds backoff_;
  std::chrono::steady_clock::time_point spawned_at_{};
  std::uint64_t generation_ = 0;
  bool stopped_ = false;
};

}  // namespace tw::broker
