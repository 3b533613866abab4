// The broker's side of the control plane (docs/control.md): spawns tailwarden-ctlproc
// (fd 3 only, an empty network namespace, the child sandbox), hands it the machine key
// and the public keys, dials the one configured control address when it asks (the
// egress policy for control: that address and nothing else), passes the connected fd,
// reassembles the netmaps it sends and hands their text to the daemon, which applies
// them through the same parser as `netmap apply`. Restarts ctlproc with backoff when
// its link closes (broker/child_supervisor.h). Never parses network input itself.
#pragma once

#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>  // before Asio
#include <vector>

#include "broker/audit.h"
#include "broker/child_supervisor.h"
#include "common/ipaddr.h"
#include "common/keys.h"
#include "common/metrics.h"
#include "ctlproc/link.h"
#include "ipc/unique_fd.h"

namespace tw::broker {

struct ControlClientConfig {
  std::string binary;                   // tailwarden-ctlproc
  std::vector<std::string> child_args;  // --uid ... --sandbox ... --log-level ...
  std::vector<std::string> child_env;
  bool new_netns = true;
  IpPort address;         // the only destination ever dialled for control
  std::string authority;  // HTTP Host
  std::string url;        // for status
  KeyBytes machine_private{};
  KeyBytes control_key{};  // zero: ctlproc fetches it
  NodePublic node_public;
  DiscoPublic disco_public;
  std::string auth_key;
  std::string hostname;
  std::vector<IpPrefix> routable_ips;  // offered to control (exit node: 0.0.0.0/0, ::/0)
};

// state, error and pid: ChildStatus (kept by the supervisor; state is otherwise
// what ctlproc reports).
struct ControlStatus : ChildStatus {
  std::string url;
  std::string auth_url;
  std::string user;
  std::uint64_t maps = 0;
  std::uint64_t reconnects = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::string key_expiry;
  bool key_expired = false;
  std::uint64_t expired_peers = 0;
};

class ControlClient {
 public:
  using NetmapHandler = std::function<void(const std::string& netmap_json)>;
  ControlClient(boost::asio::io_context& io, ControlClientConfig config, MetricsRegistry& metrics,
                NetmapHandler on_netmap);
  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  void start();
  void stop();
  // New endpoints (with types), home region or disco key from netproc.
  void update_endpoints(std::vector<ctl::Endpoint> endpoints, std::uint32_t home_derp);
  std::uint32_t home_derp() const { return home_derp_; }
  const ControlStatus& status() const { return status_; }
  // What `audit` accepts in ctlproc's fd table: its link end and the control TCP fds.
  const ExpectedFds& expected_fds() const { return expected_fds_; }

 private:
  void on_spawned(pid_t pid);
  void on_link_readable();
  void dial(ctl::ConnPurpose purpose);
  bool send(const ctl::ToCtlproc& m, int fd = -1);

  boost::asio::io_context& io_;
  ControlClientConfig config_;
  NetmapHandler on_netmap_;
  ctl::NetmapAssembler assembler_;
  ControlStatus status_;
  std::vector<ctl::Endpoint> endpoints_;
  ExpectedFds expected_fds_;
  std::uint32_t home_derp_ = 0;
  Counter& map_updates_;
  Counter& dials_;
  Counter& dial_failures_;
  ChildSupervisor child_;  // last: it refers to the members above
};

}  // namespace tw::broker
