#include "netproc/derp/http_upgrade.h"

#include <algorithm>
#include <cctype>
#include <string_view>

namespace tw::derp {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Status parse_header_line(std::string_view line, HttpHeaders& out) {
  auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return make_error("http: header without name");
  std::string_view name = line.substr(0, colon);
  if (name.find_first_of(" \t") != std::string_view::npos) return make_error("http: space in header name");
  out[lower(name)] = std::string(trim(line.substr(colon + 1)));
  return ok_status();
}

}  // namespace

Result<std::optional<HttpHead>> parse_http_head(ByteView buffered) {
  std::string_view text(reinterpret_cast<const char*>(buffered.data()),
                        std::min(buffered.size(), kMaxHttpHeaderBytes));
  auto end = text.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (buffered.size() >= kMaxHttpHeaderBytes) return make_error("http: header block too large");
    return std::optional<HttpHead>{};
  }
  HttpHead head;
  head.length = end + 4;
  std::string_view block = text.substr(0, end);
  // CR LF pairs are the only control bytes allowed (besides tab).
  for (std::size_t i = 0; i < block.size(); ++i) {
    auto u = static_cast<unsigned char>(block[i]);
    if (u == '\r' && i + 1 < block.size() && block[i + 1] == '\n') {
      ++i;
      continue;
    }
    if (u != '\t' && (u < 0x20 || u == 0x7f)) return make_error("http: control byte in header");
  }
  std::size_t pos = 0;
  bool first = true;
  while (pos <= block.size()) {
    auto eol = block.find("\r\n", pos);
    std::string_view line = block.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    if (first) {
      if (line.empty()) return make_error("http: empty first line");
      head.first_line = std::string(line);
      first = false;
    } else if (auto st = parse_header_line(line, head.headers); !st) {
      return make_error(st.error());
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 2;
  }
  return std::optional<HttpHead>(std::move(head));
}

std::string upgrade_request(const std::string& host) {
  return "GET /derp HTTP/1.1\r\nHost: " + host +
         "\r\nUpgrade: DERP\r\nConnection: Upgrade\r\nUser-Agent: tailwarden\r\n\r\n";
}

Result<std::optional<UpgradeResponse>> parse_upgrade_response(ByteView buffered) {
  auto head = parse_http_head(buffered);
  if (!head) return make_error(head.error());
  if (!*head) return std::optional<UpgradeResponse>{};
  const std::string& line = (*head)->first_line;
  // "HTTP/1.1 101 Switching Protocols": version, a 3-digit code, optional reason.
  if (line.size() < 12 || line.compare(0, 7, "HTTP/1.") != 0 || line[8] != ' ' ||
      !std::isdigit(static_cast<unsigned char>(line[9])) ||
      !std::isdigit(static_cast<unsigned char>(line[10])) ||
      !std::isdigit(static_cast<unsigned char>(line[11])) || (line.size() > 12 && line[12] != ' '))
    return make_error("http: malformed status line");
  UpgradeResponse r;
  r.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (r.status != 101) return make_error("derp: server answered HTTP " + std::to_string(r.status) + ", not 101");
  r.headers = std::move((*head)->headers);
  r.length = (*head)->length;
  return std::optional<UpgradeResponse>(std::move(r));
}

bool UpgradeRequest::wants_derp() const {
  auto it = headers.find("upgrade");
  return it != headers.end() && lower(it->second) == "derp";
}

bool UpgradeRequest::fast_start() const {
  auto it = headers.find("derp-fast-start");
  return it != headers.end() && it->second == "1";
}

Result<std::optional<UpgradeRequest>> parse_upgrade_request(ByteView buffered) {
  auto head = parse_http_head(buffered);
  if (!head) return make_error(head.error());
  if (!*head) return std::optional<UpgradeRequest>{};
  std::string_view line = (*head)->first_line;
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.substr(sp2 + 1).substr(0, 7) != "HTTP/1.")
    return make_error("http: malformed request line");
  UpgradeRequest r;
  r.method = std::string(line.substr(0, sp1));
  r.path = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  r.headers = std::move((*head)->headers);
  r.length = (*head)->length;
  return std::optional<UpgradeRequest>(std::move(r));
}

std::string switching_protocols_response(const std::string& server_key_hex) {
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n"
         "Derp-Version: 2\r\nDerp-Public-Key: " + server_key_hex + "\r\n\r\n";
}

std::string simple_response(int status, const std::string& reason, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

}  // namespace tw::derp
