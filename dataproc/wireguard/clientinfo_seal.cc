#include "dataproc/wireguard/clientinfo_seal.h"

#include <sodium.h>

#include <cstring>
#include <nlohmann/json.hpp>

namespace tw::wg {
namespace {

constexpr std::size_t kMaxAppName = 64;

bool is_hex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  return true;
}

bool is_printable_ascii(const std::string& s) {
  for (char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

}  // namespace

Result<std::string> canonical_client_info(ByteView json) {
  if (json.empty() || json.size() > kMaxClientInfoJson)
    return make_error("ClientInfo: JSON must be 1.." + std::to_string(kMaxClientInfoJson) +
                      " bytes");
  const auto j = nlohmann::json::parse(json.begin(), json.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error("ClientInfo: not a JSON object");

  // Go's encoding/json marshal order, so the sealed text looks like tailscaled's.
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  std::optional<std::string> mesh_key, app_name;
  std::optional<std::int64_t> version;
  std::optional<bool> can_ack_pings, is_prober;
  for (const auto& [key, value] : j.items()) {
    if (key == "version") {
      if (!value.is_number_integer() || value.get<std::int64_t>() < 0 ||
          value.get<std::int64_t>() > 255)
        return make_error("ClientInfo: version must be an integer 0..255");
      version = value.get<std::int64_t>();
    } else if (key == "CanAckPings" || key == "IsProber") {
      if (!value.is_boolean()) return make_error("ClientInfo: " + key + " must be a boolean");
      (key == "CanAckPings" ? can_ack_pings : is_prober) = value.get<bool>();
    } else if (key == "meshKey") {
      if (!value.is_string() || !is_hex64(value.get<std::string>()))
        return make_error("ClientInfo: meshKey must be 64 hex digits");
      mesh_key = value.get<std::string>();
    } else if (key == "AppName") {
      if (!value.is_string() || value.get<std::string>().size() > kMaxAppName ||
          !is_printable_ascii(value.get<std::string>()))
        return make_error("ClientInfo: AppName must be printable text of at most 64 bytes");
      app_name = value.get<std::string>();
    } else {
      return make_error("ClientInfo: unexpected field");
    }
  }
  if (mesh_key) out["meshKey"] = *mesh_key;
  if (version) out["version"] = *version;
  out["CanAckPings"] = can_ack_pings.value_or(false);
  if (is_prober) out["IsProber"] = *is_prober;
  if (app_name) out["AppName"] = *app_name;
  return out.dump();
}

Result<Bytes> seal_derp_client_info_with_nonce(const KeyBytes& node_private,
                                               const NodePublic& server, ByteView json,
                                               const std::uint8_t nonce[kClientInfoNonceLen]) {
  if (server.is_zero()) return make_error("ClientInfo: zero server key");
  auto text = canonical_client_info(json);
  if (!text) return make_error(text.error());
  const KeyBytes our_public = x25519_base(node_private);
  Bytes out(our_public.begin(), our_public.end());
  out.insert(out.end(), nonce, nonce + kClientInfoNonceLen);
  out.resize(kKeyLen + kClientInfoNonceLen + text->size() + crypto_box_MACBYTES);
  if (crypto_box_easy(out.data() + kKeyLen + kClientInfoNonceLen,
                      reinterpret_cast<const std::uint8_t*>(text->data()), text->size(), nonce,
                      server.data(), node_private.data()) != 0) {
    return make_error("ClientInfo: server key is not usable");
  }
  return out;
}

Result<Bytes> seal_derp_client_info(const KeyBytes& node_private, const NodePublic& server,
                                    ByteView json) {
  std::uint8_t nonce[kClientInfoNonceLen];
  randombytes_buf(nonce, sizeof nonce);
  return seal_derp_client_info_with_nonce(node_private, server, json, nonce);
}

}  // namespace tw::wg
