#include "broker/child_supervisor.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>

#include "broker/spawn.h"
#include "common/child_fds.h"
#include "ipc/control_socket.h"

namespace tw::broker {

namespace asio = boost::asio;

ChildSupervisor::ChildSupervisor(asio::io_context& io, ChildLaunch launch,
                                 SupervisorOptions options, ChildStatus& status,
                                 ExpectedFds& expected_fds, Counter& restarts, Hooks hooks)
    : io_(io),
      launch_(std::move(launch)),
      options_(std::move(options)),
      status_(status),
      expected_fds_(expected_fds),
      restarts_(restarts),
      hooks_(std::move(hooks)),
      restart_timer_(io),
      backoff_(options_.initial_backoff) {}

ChildSupervisor::~ChildSupervisor() {
  try {
    stop();
  } catch (...) {  // nothing may escape a destructor; stop() only closes and kills
  }
}

void ChildSupervisor::stop() {
  stopped_ = true;
  restart_timer_.cancel();
  if (link_) {
    boost::system::error_code ec;
    link_->close(ec);
    link_.reset();
  }
  if (status_.pid > 0) {
    ::kill(status_.pid, SIGKILL);
    ::waitpid(status_.pid, nullptr, 0);  // the daemon's SIGCHLD loop may have reaped it
    status_.pid = -1;
  }
}

void ChildSupervisor::spawn() {
  if (stopped_) return;
  auto pair = ipc::make_control_pair();
  if (!pair) return link_failed(options_.area + " socketpair: " + pair.error());
  ChildSpec spec;
  spec.path = launch_.binary;
  spec.args = launch_.args;
  spec.env = launch_.env;
  spec.fds = {{child_fd::kBrokerControl, pair->second.get()}};
  spec.new_netns = launch_.new_netns;
  expected_fds_ = ExpectedFds{};
  if (struct stat sb{}; ::fstat(pair->second.get(), &sb) == 0)
    expected_fds_.inodes.insert(sb.st_ino);
  auto pid = spawn_child(spec);
  if (!pid) return link_failed("spawning " + options_.child + ": " + pid.error());
  status_.pid = *pid;
  spawned_at_ = std::chrono::steady_clock::now();
  pair->second.reset();
  if (auto st = ipc::set_nonblocking(pair->first.get()); !st) return link_failed(st.error());
  link_ = std::make_unique<asio::posix::stream_descriptor>(io_, pair->first.release());
  ++generation_;
  hooks_.on_spawned(*pid);
  if (link_) wait_link();
}

void ChildSupervisor::wait_link() {
  if (!link_) return;
  link_->async_wait(asio::posix::stream_descriptor::wait_read,
                    [this](boost::system::error_code ec) {
                      if (ec == asio::error::operation_aborted || stopped_) return;
                      if (ec) return link_failed(ec.message());
                      hooks_.on_readable();
                    });
}

void ChildSupervisor::link_failed(const std::string& why) {
  if (stopped_) return;
  // A child that ran long enough starts its backoff over (before the log says the wait).
  if (options_.stable_after &&
      std::chrono::steady_clock::now() - spawned_at_ > *options_.stable_after)
    backoff_ = options_.initial_backoff;
  spdlog::warn("{}: {} link: {}; restarting it in {} ms", options_.area, options_.child, why,
               backoff_.count());
  if (link_) {
    boost::system::error_code ec;
    link_->close(ec);
    link_.reset();
  }
  ++generation_;
  if (status_.pid > 0) {
    ::kill(status_.pid, SIGKILL);
    status_.pid = -1;  // reaped by the daemon's SIGCHLD loop (or by stop())
  }
  status_.state = "restarting";
  status_.error = why;
  restarts_.inc();
  if (hooks_.on_closed) hooks_.on_closed();
  restart_timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(30000));
  restart_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && !stopped_) spawn();
  });
}

}  // namespace tw::broker
