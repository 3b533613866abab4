#include "ctlproc/http1.h"

#include <sodium.h>

#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>

#include "netproc/derp/http_upgrade.h"

namespace tw::ctl {
namespace {

Result<int> status_code(const std::string& line) {
  if (line.size() < 12 || line.compare(0, 7, "HTTP/1.") != 0 || line[8] != ' ' ||
      !std::isdigit(static_cast<unsigned char>(line[9])) ||
      !std::isdigit(static_cast<unsigned char>(line[10])) ||
      !std::isdigit(static_cast<unsigned char>(line[11])) ||
      (line.size() > 12 && line[12] != ' ')) {
    return make_error("http: malformed status line");
  }
  return (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
}

}  // namespace

std::string key_request(const std::string& host, int capver) {
  return "GET /key?v=" + std::to_string(capver) + " HTTP/1.1\r\nHost: " + host +
         "\r\nUser-Agent: tailwarden\r\nAccept: application/json\r\nConnection: close\r\n\r\n";
}

Result<std::optional<MachinePublic>> parse_key_response(ByteView buffered, bool eof) {
  auto head = derp::parse_http_head(buffered);
  if (!head) return make_error(head.error());
  if (!*head) {
    if (eof) return make_error("control key: connection closed before the HTTP header ended");
    return std::optional<MachinePublic>{};
  }
  auto code = status_code((*head)->first_line);
  if (!code) return make_error(code.error());
  if (*code != 200) return make_error("control key: server answered HTTP " + std::to_string(*code));
  const auto& h = (*head)->headers;
  if (auto te = h.find("transfer-encoding"); te != h.end()) {
    return make_error("control key: Transfer-Encoding \"" + te->second + "\" is not supported");
  }
  ByteView body = buffered.subspan((*head)->length);
  if (auto cl = h.find("content-length"); cl != h.end()) {
    std::size_t n = 0;
    const auto& s = cl->second;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || p != s.data() + s.size())
      return make_error("control key: bad Content-Length");
    if (n > kMaxKeyResponseBytes) return make_error("control key: body larger than 64 KiB");
    if (body.size() < n) {
      if (eof) return make_error("control key: connection closed inside the body");
      return std::optional<MachinePublic>{};
    }
    body = body.first(n);
  } else {
    if (body.size() > kMaxKeyResponseBytes)
      return make_error("control key: body larger than 64 KiB");
    if (!eof) return std::optional<MachinePublic>{};
  }
  auto j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return make_error("control key: body is not JSON (a server too old for ts2021?)");
  }
  auto it = j.find("publicKey");
  if (it == j.end() || !it->is_string())
    return make_error("control key: no \"publicKey\" in the response");
  auto k = MachinePublic::parse(it->get<std::string>());
  if (!k) return make_error("control key: publicKey: " + k.error());
  if (k->is_zero())
    return make_error("control key: publicKey is zero (control server too old; no Noise key)");
  return std::optional<MachinePublic>(*k);
}

std::string upgrade_request(const std::string& host,
                            const std::array<std::uint8_t, kInitiationLen>& initiation) {
  char b64[sodium_base64_ENCODED_LEN(kInitiationLen, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(b64, sizeof b64, initiation.data(), initiation.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  return "POST /ts2021 HTTP/1.1\r\nHost: " + host +
         "\r\nUser-Agent: tailwarden\r\nUpgrade: tailscale-control-protocol\r\nConnection: "
         "upgrade\r\n"
         "X-Tailscale-Handshake: " +
         std::string(b64) + "\r\nContent-Length: 0\r\n\r\n";
}

Result<std::optional<UpgradeReply>> parse_upgrade_reply(ByteView buffered) {
  auto head = derp::parse_http_head(buffered);
  if (!head) return make_error(head.error());
  if (!*head) return std::optional<UpgradeReply>{};
  auto code = status_code((*head)->first_line);
  if (!code) return make_error(code.error());
  if (*code != 101) {
    return make_error("ts2021: upgrade refused: server answered HTTP " + std::to_string(*code));
  }
  const auto& h = (*head)->headers;
  auto up = h.find("upgrade");
  if (up == h.end() || up->second != "tailscale-control-protocol") {
    return make_error("ts2021: 101 without \"Upgrade: tailscale-control-protocol\"");
  }
  return std::optional<UpgradeReply>(UpgradeReply{(*head)->length});
}

}  // namespace tw::ctl
