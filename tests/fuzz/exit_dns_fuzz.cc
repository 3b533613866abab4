// Fuzz target: any UDP datagram a peer sends to the exit's DNS port, and any answer
// the resolver sends back through the proxy: checked or refused, never a crash; the
// SERVFAIL and truncated replies never exceed the question they copy.
#include <cstdint>
#include <cstdlib>

#include "exitproc/dns.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tw::exitproc;
  if (size < 2) return 0;
  const std::size_t split = std::min<std::size_t>(data[0] + (std::size_t{data[1]} << 8), size - 2);
  tw::ByteView q(data + 2, split);
  tw::ByteView a(data + 2 + split, size - 2 - split);
  auto info = check_dns_query(q);
  if (!info.ok()) return 0;
  if (info->question_end > q.size() || info->question_end < kDnsHeaderBytes) std::abort();
  if (make_servfail(q, *info).size() != info->question_end) std::abort();
  if (check_dns_answer(q, *info, a).ok()) {
    if (make_truncated(q, *info, a).size() != info->question_end) std::abort();
  }
  return 0;
}
