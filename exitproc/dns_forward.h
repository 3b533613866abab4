// DNS forwarding for the exit: a peer's UDP query to port 53 (the broker's DNS socket
// in the exit namespace) is checked (exitproc/dns.h), carried to the configured
// resolver as DNS over TCP through a proxy flow of its own, and the resolver's
// answer, checked against the query, goes back to the client over UDP: as it is, as
// a truncated reply (TC=1) when too large for UDP, or SERVFAIL when forwarding failed.
// This file holds the UDP side and the TCP framing; the proxy flow that carries the
// exchange (dial, handshake, deadline) is the event loop's (exitproc/app.h).
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>

#include "common/bytes.h"
#include "exitproc/dns.h"
#include "exitproc/link.h"

namespace tw::exitproc {

// One checked client query on its way to the resolver.
struct DnsQuery {
  sockaddr_in client{};
  Bytes query;
  DnsQueryInfo info;
};

// The query as DNS over TCP sends it: a 2-byte big-endian length, then the message.
Bytes frame_dns_query(ByteView query);

// The size of the whole framed answer whose first bytes are `have`: 2 while the
// length prefix is incomplete, then 2 + that length.
std::size_t framed_dns_answer_size(ByteView have);

// The exit's DNS socket and the queries in flight on it. Counts into the exit's
// stats: dns_queries, dns_invalid, dns_dropped, dns_ok, dns_failed.
class DnsForwarder {
 public:
  explicit DnsForwarder(ExitStats& stats) : stats_(stats) {}
  ~DnsForwarder();
  DnsForwarder(const DnsForwarder&) = delete;
  DnsForwarder& operator=(const DnsForwarder&) = delete;

  // Takes the DNS socket (UDP, AF_INET, non-blocking) and the bound on queries in flight.
  void attach(int fd, std::uint32_t max_in_flight);
  int fd() const { return fd_; }
  std::size_t in_flight() const { return in_flight_; }

  // Reads at most max_datagrams datagrams. Each valid query, while fewer than the
  // bound are in flight, goes to `start`, which opens its proxy flow and returns false
  // when it cannot (counted as invalid); the query is then in flight until finish().
  // Malformed, oversized and over-the-bound queries are counted and dropped.
  void read_queries(int max_datagrams, const std::function<bool(DnsQuery&&)>& start);

  // Ends a query in flight: `framed_answer` is the resolver's complete framed TCP
  // answer, or nullopt when the exchange failed. The client gets the answer when it
  // checks out against the query, else SERVFAIL.
  void finish(const DnsQuery& q, std::optional<ByteView> framed_answer);

 private:
  ExitStats& stats_;
  int fd_ = -1;
  std::uint32_t max_in_flight_ = 0;
  std::size_t in_flight_ = 0;
};

}  // namespace tw::exitproc
