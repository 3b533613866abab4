// Datagram I/O on a SOCK_SEQPACKET control socket, with SCM_RIGHTS fds. No policy
// here: the catalogue decides which fds a message may carry; this layer only makes
// sure that every fd received is owned by a UniqueFd (so none can leak) and that a
// truncated datagram or truncated fd list is reported, never half-used.
#pragma once

#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "ipc/unique_fd.h"

namespace tw::ipc {

// A connected AF_UNIX SOCK_SEQPACKET pair, both ends close-on-exec.
Result<std::pair<UniqueFd, UniqueFd>> make_control_pair();

// For a child checking the fd it was given at a fixed number.
Status check_control_socket(int fd);

Status set_nonblocking(int fd);

enum class SendOutcome { kSent, kWouldBlock };
// Sends one datagram without blocking (MSG_DONTWAIT, no SIGPIPE).
Result<SendOutcome> send_datagram(int fd, ByteView datagram, std::span<const int> fds);

struct ReceivedDatagram {
  Bytes bytes;
  std::vector<UniqueFd> fds;
};

enum class ReceiveOutcome { kDatagram, kWouldBlock, kPeerClosed };

// Receives one datagram without blocking. Errors: truncated datagram, truncated
// fd list, or ancillary data other than SCM_RIGHTS (all fds received are closed).
// Datagrams larger than max_bytes count as truncated.
Result<ReceiveOutcome> receive_datagram(int fd, std::size_t max_bytes, ReceivedDatagram& out);

}  // namespace tw::ipc
