#include "exitproc/dns.h"

#include <algorithm>

namespace tw::exitproc {
namespace {

constexpr std::uint8_t kFlagQr = 0x80;      // in byte 2
constexpr std::uint8_t kOpcodeMask = 0x78;  // byte 2
constexpr std::uint8_t kFlagTc = 0x02;      // byte 2
constexpr std::uint8_t kFlagRd = 0x01;      // byte 2
constexpr std::uint8_t kRcodeMask = 0x0f;   // byte 3
constexpr std::uint8_t kRcodeServfail = 2;

Bytes header_and_question(ByteView query, const DnsQueryInfo& info) {
  Bytes out(query.begin(), query.begin() + static_cast<std::ptrdiff_t>(info.question_end));
  // QDCOUNT 1, AN/NS/AR 0.
  store_be16(&out[4], 1);
  store_be16(&out[6], 0);
  store_be16(&out[8], 0);
  store_be16(&out[10], 0);
  return out;
}

}  // namespace

Result<DnsQueryInfo> check_dns_query(ByteView q) {
  if (q.size() < kDnsHeaderBytes || q.size() > kMaxDnsUdpQuery)
    return make_error("dns: query size outside 12..512 bytes");
  if ((q[2] & kFlagQr) != 0) return make_error("dns: QR set: not a query");
  if ((q[2] & kOpcodeMask) != 0) return make_error("dns: opcode is not QUERY");
  if (load_be16(&q[4]) != 1) return make_error("dns: QDCOUNT is not 1");
  std::size_t pos = kDnsHeaderBytes;
  std::size_t name_len = 0;
  for (;;) {
    if (pos >= q.size()) return make_error("dns: question name runs past the query");
    const std::uint8_t len = q[pos];
    if ((len & 0xc0) != 0)
      return make_error("dns: compression or reserved label type in the question");
    pos += 1;
    if (len == 0) break;
    name_len += std::size_t{len} + 1;
    if (name_len > 255) return make_error("dns: question name longer than 255 bytes");
    pos += len;
  }
  if (pos + 4 > q.size()) return make_error("dns: question type and class missing");
  return DnsQueryInfo{load_be16(&q[0]), pos + 4};
}

Status check_dns_answer(ByteView query, const DnsQueryInfo& info, ByteView answer) {
  (void)query;
  if (answer.size() < kDnsHeaderBytes) return make_error("dns: answer shorter than a header");
  if (load_be16(&answer[0]) != info.id)
    return make_error("dns: answer ID does not match the query");
  if ((answer[2] & kFlagQr) == 0) return make_error("dns: answer without QR");
  return ok_status();
}

Bytes make_servfail(ByteView query, const DnsQueryInfo& info) {
  Bytes out = header_and_question(query, info);
  out[2] = static_cast<std::uint8_t>(kFlagQr | (query[2] & kFlagRd));
  out[3] = kRcodeServfail;
  return out;
}

Bytes make_truncated(ByteView query, const DnsQueryInfo& info, ByteView answer) {
  Bytes out = header_and_question(query, info);
  out[2] = static_cast<std::uint8_t>(kFlagQr | kFlagTc | (query[2] & kFlagRd));
  out[3] = static_cast<std::uint8_t>((answer[3] & 0x80) | (answer[3] & kRcodeMask));  // RA, RCODE
  return out;
}

}  // namespace tw::exitproc
