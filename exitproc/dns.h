// The little DNS the exit needs: checking a client's UDP query before it is
// forwarded as DNS over TCP (RFC 1035 4.2.2, 2-byte length prefix), checking the
// resolver's answer against it, and building the SERVFAIL (or truncated) reply the
// client gets when forwarding fails. No name resolution happens here.
#pragma once

#include <cstdint>
#include <optional>

#include "common/bytes.h"
#include "common/result.h"

namespace tw::exitproc {

constexpr std::size_t kDnsHeaderBytes = 12;
constexpr std::size_t kMaxDnsUdpQuery = 512;
// Answers up to this size go back over UDP as they are; larger ones become a
// truncated reply (TC=1) so the client retries over TCP (which the exit relays).
constexpr std::size_t kMaxDnsUdpAnswer = 1232;

struct DnsQueryInfo {
  std::uint16_t id = 0;
  std::size_t question_end = 0;  // header + the one question
};

// A standard query: 12..512 bytes, QR=0, OPCODE 0 (QUERY), exactly one question
// whose name is well formed (labels of 1..63 bytes, at most 255 in all, no
// compression pointer) and fits with its type and class. Extra records (EDNS OPT)
// may follow; they are forwarded unchanged.
Result<DnsQueryInfo> check_dns_query(ByteView q);

// The resolver's TCP answer for `query`: at least a header, QR=1, the same ID.
Status check_dns_answer(ByteView query, const DnsQueryInfo& info, ByteView answer);

// Header + question of `query` with QR=1, RD copied, RCODE 2 (SERVFAIL).
Bytes make_servfail(ByteView query, const DnsQueryInfo& info);
// Header + question of the answer's query with QR=1 and TC=1, RCODE copied: for
// answers too large for UDP.
Bytes make_truncated(ByteView query, const DnsQueryInfo& info, ByteView answer);

}  // namespace tw::exitproc
