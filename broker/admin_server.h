// The admin socket: a Unix stream socket (mode 0660, group = the configured admin
// group), one JSON object per line each way. Only root and members of the admin group
// may talk to it; anyone else is refused, logged and counted.
#pragma once

#include <sys/types.h>

#include <utility>  // before Asio (Boost with g++ 12 in C++20 mode)

#include <boost/asio.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "broker/admin_request.h"
#include "common/metrics.h"
#include "common/result.h"

namespace tw::broker {

// Lets a handler answer now, later, or several times (streams such as ping replies
// or `endpoints --watch`). The connection closes when the last Responder copy is
// dropped after `finish()`.
class AdminResponder {
 public:
  virtual ~AdminResponder() = default;
  virtual void send(const nlohmann::json& line) = 0;
  virtual void finish() = 0;
  virtual bool closed() const = 0;
};

using AdminHandler = std::function<void(const AdminRequest&, std::shared_ptr<AdminResponder>)>;

struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// Root, the admin group as primary group, or the admin group among the peer's
// supplementary groups (read from /proc/<pid>/status).
bool admin_peer_allowed(const PeerCred& cred, std::optional<gid_t> admin_group);

class AdminServer {
 public:
  AdminServer(boost::asio::io_context& io, std::string path, std::optional<gid_t> admin_group,
              AdminHandler handler, MetricsRegistry& metrics);
  ~AdminServer();
  // Creates the socket file (replacing a stale one), mode 0660, group admin_group.
  Status start();
  const std::string& path() const { return path_; }

 private:
  void accept_next();

  std::string path_;
  std::optional<gid_t> group_;
  AdminHandler handler_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  Counter& refused_;
  Counter& bad_requests_;
};

}  // namespace tw::broker
