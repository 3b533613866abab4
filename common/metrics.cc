#include "common/metrics.h"

namespace tw {

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help) {
  std::lock_guard lock(mu_);
  auto it = by_name_.find(name);
  if (it != by_name_.end()) return *it->second.counter;
  Counter& c = storage_.emplace_back();
  by_name_.emplace(name, Entry{&c, help});
  return c;
}

std::uint64_t MetricsRegistry::value(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = by_name_.find(name);
  return it == by_name_.end() ? 0 : it->second.counter->value();
}

std::map<std::string, std::uint64_t> MetricsRegistry::snapshot() const {
  std::lock_guard lock(mu_);
  std::map<std::string, std::uint64_t> out;
  for (const auto& [name, e] : by_name_) out[name] = e.counter->value();
  return out;
}

std::string MetricsRegistry::prometheus_text() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, e] : by_name_) {
    const std::string full = "tailwarden_" + name;
    out += "# HELP " + full + " " + e.help + "\n";
    out += "# TYPE " + full + " counter\n";
    out += full + " " + std::to_string(e.counter->value()) + "\n";
  }
  return out;
}

}  // namespace tw
