// Counters for every decision and drop (docs/direct-underlay.md#observability). Counters are
// registered once at start-up; the hot path holds a reference and only increments.
// Output is Prometheus text; names carry the "tailwarden_" prefix.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>

namespace tw {

class Counter {
 public:
  void inc(std::uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

class MetricsRegistry {
 public:
  // Returns the counter with this name (without the "tailwarden_" prefix), creating
  // it on first use. The reference stays valid for the registry's lifetime.
  Counter& counter(const std::string& name, const std::string& help);
  std::uint64_t value(const std::string& name) const;  // 0 if absent
  // Prometheus exposition text, names sorted.
  std::string prometheus_text() const;
  std::map<std::string, std::uint64_t> snapshot() const;

 private:
  struct Entry {
    Counter* counter;
    std::string help;
  };
  mutable std::mutex mu_;
  std::deque<Counter> storage_;  // stable addresses
  std::map<std::string, Entry> by_name_;
};

}  // namespace tw
