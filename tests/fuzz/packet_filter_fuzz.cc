// Fuzz target: a control server's PacketFilter JSON (the part before the first NUL
// byte) never crashes the parser, whatever it parses to survives its canonical JSON,
// and the packets after the NUL get a verdict (and feed the flow table) without a
// crash. Each packet is a 1-byte length and that many bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "common/packet_filter.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto* nul = static_cast<const std::uint8_t*>(std::memchr(data, 0, size));
  const std::size_t text_len = nul != nullptr ? static_cast<std::size_t>(nul - data) : size;
  auto j = nlohmann::json::parse(data, data + text_len, nullptr, false);
  tw::PacketFilter f;
  if (!j.is_discarded()) {
    auto parsed = tw::parse_filter_rules(j, "fuzz");
    if (parsed) {
      auto again = tw::parse_filter_rules(tw::filter_rules_json(*parsed), "again");
      if (!again || !(*again == *parsed)) std::abort();
      f = std::move(*parsed);
    }
  }
  tw::FlowTable flows(16);
  const auto now = tw::FlowTable::Clock::now();
  std::size_t i = text_len + (nul != nullptr ? 1 : 0);
  bool outbound = false;
  while (i < size) {
    const std::size_t n = std::min<std::size_t>(data[i], size - i - 1);
    tw::ByteView p(data + i + 1, n);
    if (outbound) {
      flows.note_outbound(p, now);
    } else {
      (void)tw::filter_inbound(f, p, &flows, now);
    }
    outbound = !outbound;
    i += 1 + n;
  }
  return 0;
}
