// ControlLink: one end of a control channel inside a Boost.Asio event loop. It
// checks every received message against the catalogue for this link, this role
// and the current phase, decodes it, and hands it over with exactly the fds the
// catalogue promises. Anything else is a violation: logged, counted, and the link
// is closed (the broker then restarts the child; a child exits). Peer death shows
// up as end-of-file on the socket, so it is noticed as soon as the loop runs.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <deque>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"
#include "ipc/catalogue.h"
#include "ipc/control_socket.h"
#include "ipc/messages.h"
#include "ipc/unique_fd.h"

namespace tw::ipc {

struct ReceivedMessage {
  AnyMessage message;
  std::vector<UniqueFd> fds;  // exactly as many as the catalogue says for this type
};

class ControlLink {
 public:
  using MessageHandler = std::function<void(ReceivedMessage)>;
  // Called once, when the link closes for any reason (peer gone, violation, close()).
  using ClosedHandler = std::function<void(const std::string& reason)>;

  // `metrics` may be null; counters are named ipc_<self>_<peer>_{messages,violations}.
  ControlLink(boost::asio::io_context& io, UniqueFd socket, LinkKind link, Role self,
              MetricsRegistry* metrics = nullptr);
  ~ControlLink();
  ControlLink(const ControlLink&) = delete;
  ControlLink& operator=(const ControlLink&) = delete;

  void start(MessageHandler on_message, ClosedHandler on_closed);

  // Queues one message; fds are duplicated, the caller keeps its own. Fails if this
  // role may not send the type here, the fd count is wrong, or the link is closed.
  // A peer that stops reading while the queue is full is treated as dead.
  Status send(const AnyMessage& message, std::span<const int> fds = {});

  void close(const std::string& reason);
  bool is_open() const { return open_; }
  Phase phase() const { return phase_; }
  std::uint64_t violations() const { return violations_->value(); }

 private:
  struct Outgoing {
    Bytes datagram;
    std::vector<UniqueFd> fds;
    bool secret = false;  // carries a private key: wiped once sent or dropped
  };

  void arm_read();
  void on_readable();
  bool handle_datagram(ReceivedDatagram& d);
  void violation(const std::string& why);
  void flush();
  void arm_write();

  boost::asio::posix::stream_descriptor sock_;
  LinkKind link_;
  Role self_;
  Phase phase_;
  bool open_ = true;
  bool reading_ = false;
  bool writing_ = false;
  MessageHandler on_message_;
  ClosedHandler on_closed_;
  std::deque<Outgoing> queue_;
  ReceivedDatagram rx_;
  Counter own_messages_;
  Counter own_violations_;
  Counter* messages_;
  Counter* violations_;
  std::shared_ptr<bool> alive_;
};

}  // namespace tw::ipc
