// Text renderings of the broker's JSON replies, in the feel of `tailscale status`,
// `tailscale ping` and `tailscale netcheck`. Pure functions: tested on fixtures.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace tw::cli {

// Header (our endpoints, home DERP, inert mode) and one line per peer: name, tailnet
// address, path, latency, last handshake, rx/tx bytes.
std::string format_status(const nlohmann::json& status, long long now_unix);
// "pong from b (100.64.0.2) via 198.18.1.2:41641 in 0.4ms" or "... via DERP(lab) in 3ms",
// or "timeout waiting for pong from b".
std::string format_pong(const nlohmann::json& reply);
std::string format_netcheck(const nlohmann::json& report);
std::string human_bytes(unsigned long long n);
std::string human_ago(long long seconds);

}  // namespace tw::cli
