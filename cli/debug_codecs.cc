// `tailwarden debug …`: offline codec tools. Each prints exactly one line
// and exits 0, or prints a one-line error on stderr and exits 1. Nothing here
// touches the network.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "common/bytes.h"
#include "common/keys.h"
#include "netproc/disco/box.h"
#include "netproc/disco/datagram_kind.h"
#include "netproc/disco/message.h"
#include "netproc/disco/message_json.h"
#include "netproc/stun/stun.h"

namespace tw::cli {
namespace {

[[noreturn]] void fail(const std::string& what) {
  std::cerr << "error: " << what << "\n";
  throw CLI::RuntimeError(1);
}

template <typename T>
T or_fail(Result<T> r) {
  if (!r) fail(r.error());
  return std::move(r).value();
}

Bytes hex_arg(const std::string& hex, const char* what) {
  auto b = from_hex(hex);
  if (!b) fail(std::string(what) + " is not valid hex");
  return *b;
}

// A key given as 64 hex, or in its prefixed text form.
KeyBytes key_arg(const std::string& text, std::string_view prefix, const char* what) {
  std::string_view hex = text;
  if (hex.starts_with(prefix)) hex.remove_prefix(prefix.size());
  auto k = from_hex_fixed<kKeyLen>(hex);
  if (!k) fail(std::string(what) + " must be 64 hex digits");
  return *k;
}

disco::Message json_message_arg(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("JSON argument does not parse");
  return or_fail(disco::message_from_json(j));
}

void disco_parse(const std::string& hex) {
  const Bytes pt = hex_arg(hex, "HEX");
  std::cout << disco::message_to_json(or_fail(disco::parse_message(pt))).dump() << "\n";
}

void disco_marshal(const std::string& json) {
  std::cout << to_hex(disco::encode(json_message_arg(json))) << "\n";
}

void disco_open(const std::string& key_text, const std::string& packet_hex) {
  const DiscoPrivate ours(key_arg(key_text, DiscoKeyTag::kPrivatePrefix, "--key"));
  const Bytes packet = hex_arg(packet_hex, "PACKET_HEX");
  auto header = disco::parse_header(packet);
  if (!header) fail("not a disco packet (needs 62+ bytes starting with the disco magic)");
  auto key = or_fail(disco::DiscoSharedKey::derive(ours, header->sender));
  Bytes pt(packet.size() > disco::kOverhead ? packet.size() - disco::kOverhead : 0);
  auto opened = disco::open(key, packet, pt);
  if (opened.status == disco::OpenStatus::kNotDisco) fail("packet shorter than 78 bytes");
  if (!opened.ok()) fail("box does not open (wrong key or tampered packet)");
  nlohmann::ordered_json out;
  out["sender"] = header->sender.to_string();
  out["nonce"] = to_hex(header->nonce);
  out["message"] = disco::message_to_json(or_fail(disco::parse_message(opened.plaintext)));
  std::cout << out.dump() << "\n";
}

void disco_seal(const std::string& key_text, const std::string& to_text,
                const std::string& nonce_hex, const std::string& json) {
  const DiscoPrivate sender(key_arg(key_text, DiscoKeyTag::kPrivatePrefix, "--key"));
  const DiscoPublic to(key_arg(to_text, DiscoKeyTag::kPublicPrefix, "--to"));
  auto nonce = from_hex_fixed<disco::kNonceLen>(nonce_hex);
  if (!nonce) fail("--nonce must be 48 hex digits");
  const disco::Message m = json_message_arg(json);
  auto key = or_fail(disco::DiscoSharedKey::derive(sender, to));
  Bytes out(disco::sealed_len(disco::encoded_len(m)));
  const std::size_t n = disco::seal_message_with_nonce(key, sender.public_key(), *nonce, m, out);
  out.resize(n);
  std::cout << to_hex(out) << "\n";
}

void stun_request(const std::string& txid_hex) {
  auto txid = from_hex_fixed<stun::kTxIdLen>(txid_hex);
  if (!txid) fail("--txid must be 24 hex digits");
  std::cout << to_hex(stun::binding_request(*txid)) << "\n";
}

void stun_parse(const std::string& hex) {
  const Bytes packet = hex_arg(hex, "HEX");
  auto r = or_fail(stun::parse_binding_response(packet));
  nlohmann::ordered_json out;
  out["txid"] = to_hex(r.txid);
  out["addr"] = r.mapped.to_string();
  std::cout << out.dump() << "\n";
}

void classify(const std::string& hex) {
  const Bytes packet = hex_arg(hex, "HEX");
  std::cout << disco::to_string(disco::classify_datagram(packet)) << "\n";
}

// CLI11 keeps pointers to the bound strings, so they live as long as the app.
struct DebugArgs {
  std::string a, b, key, to, nonce, txid;
};

}  // namespace

void add_debug_commands(CLI::App& app) {
  auto args = std::make_shared<DebugArgs>();
  auto* debug = app.add_subcommand("debug", "offline protocol tools (disco, STUN, classifier)");
  debug->require_subcommand(1);

  auto* c = debug->add_subcommand("disco-parse", "decode a disco plaintext (type byte first)");
  c->add_option("HEX", args->a, "plaintext hex")->required();
  c->callback([args] { disco_parse(args->a); });

  c = debug->add_subcommand("disco-marshal", "encode a disco message given as JSON");
  c->add_option("JSON", args->a, "message JSON")->required();
  c->callback([args] { disco_marshal(args->a); });

  c = debug->add_subcommand("disco-open", "open a sealed disco datagram");
  c->add_option("--key", args->key, "our disco private key, 64 hex")->required();
  c->add_option("PACKET_HEX", args->a, "datagram hex")->required();
  c->callback([args] { disco_open(args->key, args->a); });

  c = debug->add_subcommand("disco-seal", "seal a disco message into a datagram");
  c->add_option("--key", args->key, "sender disco private key, 64 hex")->required();
  c->add_option("--to", args->to, "receiver disco public key, 64 hex")->required();
  c->add_option("--nonce", args->nonce, "nonce, 48 hex")->required();
  c->add_option("JSON", args->a, "message JSON")->required();
  c->callback([args] { disco_seal(args->key, args->to, args->nonce, args->a); });

  c = debug->add_subcommand("stun-request", "print the 40-byte STUN binding request");
  c->add_option("--txid", args->txid, "transaction id, 24 hex")->required();
  c->callback([args] { stun_request(args->txid); });

  c = debug->add_subcommand("stun-parse", "decode a STUN binding response");
  c->add_option("HEX", args->a, "response hex")->required();
  c->callback([args] { stun_parse(args->a); });

  c = debug->add_subcommand("classify", "classify an underlay datagram");
  c->add_option("HEX", args->a, "datagram hex")->required();
  c->callback([args] { classify(args->a); });
}

}  // namespace tw::cli
