#include "ipc/control_link.h"

#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <unistd.h>

namespace tw::ipc {
namespace {

// A broker that queues this much for a child that does not read has a dead child.
constexpr std::size_t kMaxQueuedMessages = 256;
// Datagrams handled per wakeup before yielding to the rest of the loop.
constexpr int kMaxPerWakeup = 64;

std::string counter_prefix(LinkKind link, Role self) {
  return "ipc_" + std::string(role_name(self)) + "_" + std::string(role_name(peer_role(link, self)));
}

}  // namespace

ControlLink::ControlLink(boost::asio::io_context& io, UniqueFd socket, LinkKind link, Role self,
                         MetricsRegistry* metrics)
    : sock_(io), link_(link), self_(self), phase_(initial_phase(link)),
      messages_(&own_messages_), violations_(&own_violations_),
      alive_(std::make_shared<bool>(true)) {
  if (metrics) {
    auto prefix = counter_prefix(link, self);
    messages_ = &metrics->counter(prefix + "_messages_total", "control messages accepted");
    violations_ = &metrics->counter(prefix + "_violations_total",
                                    "control messages refused; each one closes the link");
  }
  if (auto s = set_nonblocking(socket.get()); !s) {
    spdlog::error("ipc: {}", s.error());
    open_ = false;
  }
  sock_.assign(socket.release());
}

ControlLink::~ControlLink() {
  *alive_ = false;
  boost::system::error_code ignored;
  sock_.close(ignored);
}

void ControlLink::start(MessageHandler on_message, ClosedHandler on_closed) {
  on_message_ = std::move(on_message);
  on_closed_ = std::move(on_closed);
  arm_read();
}

void ControlLink::arm_read() {
  if (!open_ || reading_) return;
  reading_ = true;
  std::weak_ptr<bool> alive = alive_;
  sock_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                   [this, alive](const boost::system::error_code& ec) {
                     if (alive.expired()) return;
                     reading_ = false;
                     if (ec) {
                       if (ec != boost::asio::error::operation_aborted) close(ec.message());
                       return;
                     }
                     on_readable();
                   });
}

namespace {
bool carries_secret(MessageType t) {
  return t == MessageType::kNetprocSetup || t == MessageType::kDataprocSetup;
}
}  // namespace

void ControlLink::on_readable() {
  for (int i = 0; i < kMaxPerWakeup && open_; ++i) {
    auto r = receive_datagram(sock_.native_handle(), kMaxDatagramBytes, rx_);
    if (!r) {
      violation(r.error());
      return;
    }
    if (*r == ReceiveOutcome::kWouldBlock) break;
    if (*r == ReceiveOutcome::kPeerClosed) {
      close(std::string(role_name(peer_role(link_, self_))) + " closed the control channel");
      return;
    }
    if (!handle_datagram(rx_)) return;
  }
  arm_read();
}

bool ControlLink::handle_datagram(ReceivedDatagram& d) {
  auto header = decode_header(d.bytes);
  if (!header) {
    violation(header.error());
    return false;
  }
  if (auto why = check_admissible(link_, self_, phase_, header->type, d.fds.size())) {
    violation(*why);
    return false;
  }
  auto message = decode_body(header->type, ByteView(d.bytes).subspan(kHeaderBytes));
  if (!message) {
    violation(message.error());
    return false;
  }
  // The setup messages carry private keys: the raw bytes do not outlive the decode.
  if (carries_secret(static_cast<MessageType>(header->type)))
    secure_wipe(d.bytes.data(), d.bytes.size());
  if (find_entry(header->type)->ends_setup) phase_ = Phase::kRunning;
  messages_->inc();
  ReceivedMessage received{std::move(*message), std::move(d.fds)};
  d.fds.clear();
  if (!on_message_) return open_;
  std::weak_ptr<bool> alive = alive_;
  on_message_(std::move(received));
  return !alive.expired() && open_;  // the handler may have closed or destroyed us
}

void ControlLink::violation(const std::string& why) {
  violations_->inc();
  spdlog::warn("ipc: protocol violation from {}: {}; dropping the link",
               role_name(peer_role(link_, self_)), why);
  rx_.fds.clear();
  close("protocol violation: " + why);
}

Status ControlLink::send(const AnyMessage& message, std::span<const int> fds) {
  if (!open_) return make_error("control link is closed");
  MessageType type = type_of(message);
  if (!may_send(link_, self_, type)) {
    return make_error(std::string(message_name(type)) + " may not be sent by " +
                      std::string(role_name(self_)) + " on this link");
  }
  if (fds.size() != find_entry(static_cast<std::uint16_t>(type))->fds) {
    return make_error(std::string(message_name(type)) + " needs a different number of fds");
  }
  auto bytes = encode_message(message);
  if (!bytes) return make_error(bytes.error());
  Outgoing out{std::move(*bytes), {}, carries_secret(type)};
  for (int fd : fds) {
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return make_error("cannot duplicate fd for sending");
    out.fds.emplace_back(copy);
  }
  if (queue_.size() >= kMaxQueuedMessages) {
    close(std::string(role_name(peer_role(link_, self_))) + " stopped reading its control channel");
    return make_error("control link send queue full");
  }
  queue_.push_back(std::move(out));
  flush();
  return ok_status();
}

void ControlLink::flush() {
  while (open_ && !writing_ && !queue_.empty()) {
    Outgoing& out = queue_.front();
    std::vector<int> raw;
    for (const auto& fd : out.fds) raw.push_back(fd.get());
    auto r = send_datagram(sock_.native_handle(), out.datagram, raw);
    if (!r) {
      close(r.error());
      return;
    }
    if (*r == SendOutcome::kWouldBlock) {
      arm_write();
      return;
    }
    if (out.secret) secure_wipe(out.datagram.data(), out.datagram.size());
    queue_.pop_front();
  }
}

void ControlLink::arm_write() {
  writing_ = true;
  std::weak_ptr<bool> alive = alive_;
  sock_.async_wait(boost::asio::posix::stream_descriptor::wait_write,
                   [this, alive](const boost::system::error_code& ec) {
                     if (alive.expired()) return;
                     writing_ = false;
                     if (ec) {
                       if (ec != boost::asio::error::operation_aborted) close(ec.message());
                       return;
                     }
                     flush();
                   });
}

void ControlLink::close(const std::string& reason) {
  if (!open_) return;
  open_ = false;
  for (auto& out : queue_) {
    if (out.secret) secure_wipe(out.datagram.data(), out.datagram.size());
  }
  queue_.clear();
  boost::system::error_code ignored;
  sock_.close(ignored);
  if (on_closed_) {
    auto handler = std::move(on_closed_);
    on_closed_ = nullptr;
    handler(reason);
  }
}

}  // namespace tw::ipc
