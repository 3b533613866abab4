#include "ipc/control_socket.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "ipc/catalogue.h"

namespace tw::ipc {
namespace {

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Room for more fds than any message may carry, so that surplus ones are seen and
// closed; anything beyond this sets MSG_CTRUNC and the kernel discards it.
constexpr std::size_t kFdRoom = kMaxFdsPerMessage + 7;

// Takes ownership of every fd in the control messages, and says whether all of
// them were SCM_RIGHTS.
bool adopt_fds(msghdr& msg, std::vector<UniqueFd>& fds) {
  bool only_rights = true;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
      only_rights = false;
      continue;
    }
    std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* data = CMSG_DATA(c);
    for (std::size_t i = 0; i < n; ++i) {
      int fd;
      std::memcpy(&fd, data + i * sizeof(int), sizeof fd);
      fds.emplace_back(fd);
    }
  }
  return only_rights;
}

}  // namespace

Result<std::pair<UniqueFd, UniqueFd>> make_control_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return make_error(errno_text("socketpair"));
  }
  return std::pair<UniqueFd, UniqueFd>{UniqueFd(sv[0]), UniqueFd(sv[1])};
}

Status check_control_socket(int fd) {
  int type = 0, domain = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    return make_error(errno_text("control fd is not a socket"));
  }
  len = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) {
    return make_error(errno_text("SO_DOMAIN"));
  }
  if (type != SOCK_SEQPACKET || domain != AF_UNIX) {
    return make_error("control fd is not an AF_UNIX SOCK_SEQPACKET socket");
  }
  return ok_status();
}

Status set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return make_error(errno_text("fcntl(O_NONBLOCK)"));
  }
  return ok_status();
}

Result<SendOutcome> send_datagram(int fd, ByteView datagram, std::span<const int> fds) {
  if (fds.size() > kFdRoom) return make_error("too many fds for one message");
  iovec iov{const_cast<std::uint8_t*>(datagram.data()), datagram.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) unsigned char cbuf[CMSG_SPACE(sizeof(int) * kFdRoom)];
  if (!fds.empty()) {
    std::memset(cbuf, 0, sizeof cbuf);
    msg.msg_control = cbuf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    ssize_t n = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      if (static_cast<std::size_t>(n) != datagram.size()) return make_error("short send");
      return SendOutcome::kSent;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return SendOutcome::kWouldBlock;
    return make_error(errno_text("sendmsg"));
  }
}

Result<ReceiveOutcome> receive_datagram(int fd, std::size_t max_bytes, ReceivedDatagram& out) {
  out.fds.clear();
  out.bytes.resize(max_bytes + 1);  // one spare byte: a full buffer means too long
  iovec iov{out.bytes.data(), out.bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) unsigned char cbuf[CMSG_SPACE(sizeof(int) * kFdRoom)];
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  ssize_t n;
  do {
    n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return ReceiveOutcome::kWouldBlock;
    if (errno == ECONNRESET) return ReceiveOutcome::kPeerClosed;
    return make_error(errno_text("recvmsg"));
  }
  bool only_rights = adopt_fds(msg, out.fds);
  if (n == 0 && out.fds.empty()) return ReceiveOutcome::kPeerClosed;
  out.bytes.resize(static_cast<std::size_t>(n));
  if ((msg.msg_flags & MSG_TRUNC) || static_cast<std::size_t>(n) > max_bytes) {
    out.fds.clear();
    return make_error("datagram longer than the largest message");
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    out.fds.clear();
    return make_error("too many fds attached to one message");
  }
  if (!only_rights) {
    out.fds.clear();
    return make_error("unexpected ancillary data");
  }
  return ReceiveOutcome::kDatagram;
}

}  // namespace tw::ipc
