// The pieces of the config parser that broker/config.cc and broker/exit_config.cc
// share: where a value sits (for messages), the typed getters, and the table walker
// with its per-key setters. Internal to tw_broker_core; the interface is config.h.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "broker/config.h"
#include "common/result.h"

namespace tw::broker::config_detail {

// Where a value sits and what it is called, for messages.
struct FieldRef {
  const std::string& origin;
  std::string field;  // "tun.mtu"
  const toml::node& node;

  Error error(const std::string& what) const {
    return make_error(origin + ":" + std::to_string(node.source().begin.line) + ": " + field +
                      ": " + what);
  }
};

// The first 40 bytes, non-printable ones as '?', in quotes.
std::string quoted_excerpt(std::string_view s);
// "70000", "the string \"x\"": what was written instead of what we wanted.
std::string describe(const toml::node& n);
Result<bool> get_bool(const FieldRef& f);
Result<std::int64_t> get_int_in(const FieldRef& f, std::int64_t lo, std::int64_t hi);
// A non-empty string of printable characters.
Result<std::string> get_text(const FieldRef& f, std::string_view expected = "a non-empty string");
Result<std::string> get_abs_path(const FieldRef& f, std::size_t max_len = 4095);
Result<std::string> get_choice(const FieldRef& f, const std::vector<std::string_view>& choices);

// One setter per key: validates the value and stores it.
using Setter = Status (*)(const FieldRef&, BrokerConfig&);

template <typename T>
Status store(Result<T> r, T& dst) {
  if (!r) return make_error(r.error());
  dst = std::move(*r);
  return ok_status();
}

struct FieldSpec {
  std::string_view key;
  Setter set;
  bool required;
};

// Applies `specs` to the keys of `table` ("<prefix><key>" in messages): unknown keys
// and missing required ones are errors.
Status apply_table(const toml::table& table, const std::string& origin, std::string_view prefix,
                   std::span<const FieldSpec> specs, BrokerConfig& c);

// [exit] (broker/exit_config.cc): the table, and at load time its credentials file.
Status set_exit(const FieldRef& f, BrokerConfig& c);
Status check_exit_credentials(const BrokerConfig& c);

}  // namespace tw::broker::config_detail
