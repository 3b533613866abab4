// The HTTP/1.1 exchange that turns a TCP/TLS stream into a DERP stream. Only the status line (or
// request line) and a header block are split: no bodies, no chunking, no continuation lines. Header
// blocks are bounded.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>

#include "common/bytes.h"
#include "common/result.h"

namespace tw::derp {

constexpr std::size_t kMaxHttpHeaderBytes = 8 * 1024;

// Header names lowercased; a repeated header keeps its last value.
using HttpHeaders = std::map<std::string, std::string>;

struct HttpHead {
  std::string first_line;
  HttpHeaders headers;
  std::size_t length = 0;  // bytes through the blank line; what follows is DERP frames
};

// nullopt: the blank line has not arrived yet. Error: malformed or over the bound.
Result<std::optional<HttpHead>> parse_http_head(ByteView buffered);

// Client side.
std::string upgrade_request(const std::string& host);
struct UpgradeResponse {
  int status = 0;
  HttpHeaders headers;
  std::size_t length = 0;
};
// Error unless the status line is `HTTP/1.x 101 ...`.
Result<std::optional<UpgradeResponse>> parse_upgrade_response(ByteView buffered);

// Server side.
struct UpgradeRequest {
  std::string method;
  std::string path;
  HttpHeaders headers;
  std::size_t length = 0;
  bool wants_derp() const;   // Upgrade: derp (any case)
  bool fast_start() const;   // Derp-Fast-Start: 1
};
Result<std::optional<UpgradeRequest>> parse_upgrade_request(ByteView buffered);
std::string switching_protocols_response(const std::string& server_key_hex);
std::string simple_response(int status, const std::string& reason, const std::string& body);

}  // namespace tw::derp
