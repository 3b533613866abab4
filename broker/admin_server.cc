#include "broker/admin_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace tw::broker {
namespace {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;

class Session : public AdminResponder, public std::enable_shared_from_this<Session> {
 public:
  Session(local::socket sock, AdminHandler& handler, Counter& bad)
      : sock_(std::move(sock)), handler_(handler), bad_(bad) {}

  void start() { read_line(); }

  void send(const nlohmann::json& line) override {
    if (closed_) return;
    // Child-supplied strings may hold invalid UTF-8: replaced, never a throw.
    auto text = std::make_shared<std::string>(
        line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    queue_.push_back(text);
    if (queue_.size() == 1) write_next();
  }
  void finish() override {
    finishing_ = true;
    if (queue_.empty()) close();
  }
  bool closed() const override { return closed_; }

 private:
  void read_line() {
    auto self = shared_from_this();
    asio::async_read_until(sock_, asio::dynamic_buffer(buf_, kMaxAdminLine + 1), '\n',
                           [self](boost::system::error_code ec, std::size_t n) {
                             if (ec) {
                               if (ec == asio::error::not_found) {
                                 self->bad_.inc();
                                 self->send({{"ok", false}, {"error", "request longer than 64 KiB"}});
                                 self->finish();
                               } else {
                                 self->close();
                               }
                               return;
                             }
                             std::string line = self->buf_.substr(0, n - 1);
                             self->buf_.erase(0, n);
                             self->dispatch(line);
                           });
  }

  void dispatch(const std::string& line) {
    auto req = parse_admin_request(line);
    if (!req) {
      bad_.inc();
      send({{"ok", false}, {"error", req.error()}});
      finish();
      return;
    }
    try {
      handler_(*req, shared_from_this());
    } catch (const std::exception& e) {
      spdlog::error("admin: {} failed: {}", line.substr(0, 64), e.what());
      send({{"ok", false}, {"error", "internal error"}});
      finish();
    }
  }

  void write_next() {
    auto self = shared_from_this();
    auto text = queue_.front();
    asio::async_write(sock_, asio::buffer(*text), [self, text](boost::system::error_code ec, std::size_t) {
      if (ec) {
        self->close();
        return;
      }
      self->queue_.pop_front();
      if (!self->queue_.empty()) {
        self->write_next();
      } else if (self->finishing_) {
        self->close();
      }
    });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    sock_.shutdown(local::socket::shutdown_both, ec);
    sock_.close(ec);
  }

  local::socket sock_;
  AdminHandler& handler_;
  Counter& bad_;
  std::string buf_;
  std::deque<std::shared_ptr<std::string>> queue_;
  bool finishing_ = false;
  bool closed_ = false;
};

bool in_supplementary_groups(pid_t pid, gid_t group) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Groups:", 0) != 0) continue;
    std::istringstream g(line.substr(7));
    long id;
    while (g >> id) {
      if (static_cast<gid_t>(id) == group) return true;
    }
  }
  return false;
}

}  // namespace

bool admin_peer_allowed(const PeerCred& cred, std::optional<gid_t> admin_group) {
  if (cred.uid == 0) return true;
  if (!admin_group) return false;
  return cred.gid == *admin_group || in_supplementary_groups(cred.pid, *admin_group);
}

AdminServer::AdminServer(asio::io_context& io, std::string path, std::optional<gid_t> admin_group,
                         AdminHandler handler, MetricsRegistry& metrics)
    : path_(std::move(path)),
      group_(admin_group),
      handler_(std::move(handler)),
      acceptor_(io),
      refused_(metrics.counter("admin_refused_total", "Admin connections refused by credential check")),
      bad_requests_(metrics.counter("admin_bad_requests_total", "Malformed admin requests")) {}

AdminServer::~AdminServer() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  ::unlink(path_.c_str());
}

Status AdminServer::start() {
  ::unlink(path_.c_str());
  boost::system::error_code ec;
  acceptor_.open(local(), ec);
  if (!ec) acceptor_.bind(local::endpoint(path_), ec);
  if (!ec) acceptor_.listen(16, ec);
  if (ec) return make_error("admin socket " + path_ + ": " + ec.message());
  if (::chmod(path_.c_str(), 0660) != 0 ||
      (group_ && ::chown(path_.c_str(), 0, *group_) != 0 && geteuid() == 0)) {
    return make_error("admin socket " + path_ + ": cannot set mode/group");
  }
  accept_next();
  return ok_status();
}

void AdminServer::accept_next() {
  acceptor_.async_accept([this](boost::system::error_code ec, local::socket sock) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      ucred cred{};
      socklen_t len = sizeof cred;
      if (::getsockopt(sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
          !admin_peer_allowed(PeerCred{cred.pid, cred.uid, cred.gid}, group_)) {
        refused_.inc();
        spdlog::warn("admin: refused connection from uid {} gid {} pid {}", cred.uid, cred.gid, cred.pid);
        boost::system::error_code ignored;
        asio::write(sock, asio::buffer(std::string("{\"ok\":false,\"error\":\"permission denied\"}\n")), ignored);
        sock.close(ignored);
      } else {
        std::make_shared<Session>(std::move(sock), handler_, bad_requests_)->start();
      }
    }
    accept_next();
  });
}

}  // namespace tw::broker
