// tailwarden-ctlproc's run loop: one broker link (fd 3), at most one control TCP fd
// at a time (dialled by the broker on request), a poll loop, reconnect with
// exponential backoff, a 120 s map watchdog. Everything protocol-level is in
// session.h; this file only moves bytes, keeps time and talks to the broker.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "ctlproc/link.h"
#include "ctlproc/session.h"

namespace tw::ctl {

class App {
 public:
  explicit App(int link_fd) : link_fd_(link_fd) {}
  // Returns the process exit code: 0 when the broker closed the link.
  int run();

 private:
  using Clock = std::chrono::steady_clock;

  bool send(const ToBroker& m);
  bool handle_link();
  void handle_conn();
  void on_setup(CtlSetup s);
  void on_conn(CtlConn c, int fd);
  void request_dial(ConnPurpose p);
  void drop_conn(const std::string& why);
  void schedule_redial();
  void pump_session();
  void send_netmap(const Netmap& nm);
  void check_key_expiry();
  void send_status();
  bool flush_out();

  int link_fd_;
  std::optional<CtlSetup> setup_;
  int conn_fd_ = -1;
  ConnPurpose conn_purpose_ = ConnPurpose::kSession;
  bool dial_pending_ = false;
  std::unique_ptr<Session> session_;
  Bytes key_buf_;
  Bytes out_;
  std::optional<Clock::time_point> redial_at_;
  std::chrono::milliseconds backoff_{1000};
  Clock::time_point last_message_{};
  std::uint64_t last_messages_ = 0;
  std::uint64_t netmap_seq_ = 0;
  std::uint64_t reconnects_ = 0;
  std::uint64_t maps_ = 0;
  std::string last_error_;
  std::string last_status_;
  // When a peer's key expires: the netmap is made again then, without that peer.
  std::optional<SystemTime> expiry_at_;
  std::uint64_t expired_peers_ = 0;
  bool ever_connected_ = false;
  bool key_pinned_ = false;  // from config; else fetched, and fetched again after a failed session
};

}  // namespace tw::ctl
