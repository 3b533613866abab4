#include "exitproc/dns_forward.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace tw::exitproc {

Bytes frame_dns_query(ByteView query) {
  Bytes out(2 + query.size());
  store_be16(out.data(), static_cast<std::uint16_t>(query.size()));
  std::copy(query.begin(), query.end(), out.begin() + 2);
  return out;
}

std::size_t framed_dns_answer_size(ByteView have) {
  if (have.size() < 2) return 2;
  return 2 + std::size_t{load_be16(have.data())};
}

DnsForwarder::~DnsForwarder() {
  if (fd_ >= 0) ::close(fd_);
}

void DnsForwarder::attach(int fd, std::uint32_t max_in_flight) {
  fd_ = fd;
  max_in_flight_ = max_in_flight;
}

void DnsForwarder::read_queries(int max_datagrams, const std::function<bool(DnsQuery&&)>& start) {
  std::uint8_t buf[kMaxDnsUdpQuery + 1];
  for (int i = 0; i < max_datagrams; ++i) {
    sockaddr_in from{};
    socklen_t flen = sizeof from;
    const ssize_t n = ::recvfrom(fd_, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC,
                                 reinterpret_cast<sockaddr*>(&from), &flen);
    if (n < 0) return;
    ++stats_.dns_queries;
    const std::size_t len = static_cast<std::size_t>(n);
    if (len > kMaxDnsUdpQuery || flen != sizeof from || from.sin_family != AF_INET) {
      ++stats_.dns_invalid;
      continue;
    }
    ByteView q(buf, len);
    auto info = check_dns_query(q);
    if (!info) {
      ++stats_.dns_invalid;
      continue;
    }
    if (in_flight_ >= max_in_flight_) {
      ++stats_.dns_dropped;
      continue;
    }
    ++in_flight_;
    if (!start(DnsQuery{from, Bytes(q.begin(), q.end()), *info})) {
      --in_flight_;
      ++stats_.dns_invalid;
    }
  }
}

void DnsForwarder::finish(const DnsQuery& q, std::optional<ByteView> framed_answer) {
  ByteView query(q.query);
  Bytes reply;
  if (framed_answer && framed_answer->size() >= 2) {
    ByteView answer = framed_answer->subspan(2);
    if (check_dns_answer(query, q.info, answer)) {
      reply = answer.size() <= kMaxDnsUdpAnswer ? Bytes(answer.begin(), answer.end())
                                                : make_truncated(query, q.info, answer);
    }
  }
  if (reply.empty()) {
    ++stats_.dns_failed;
    reply = make_servfail(query, q.info);
  } else {
    ++stats_.dns_ok;
  }
  (void)::sendto(fd_, reply.data(), reply.size(), MSG_DONTWAIT,
                 reinterpret_cast<const sockaddr*>(&q.client), sizeof q.client);
  --in_flight_;
}

}  // namespace tw::exitproc
