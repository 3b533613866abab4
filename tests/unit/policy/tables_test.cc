// Properties of the tables themselves, independent of the kernel.
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "policy/seccomp_policy.h"
#include "policy/syscall_tables.h"

namespace tw::policy {
namespace {

std::set<std::string> names(std::span<const detail::SyscallRule> table) {
  std::set<std::string> out;
  for (const auto& r : table) out.insert(r.name);
  return out;
}

TEST(ChildTables, DataprocIsStrictSubsetOfNetproc) {
  const auto net = names(detail::netproc_table());
  const auto data = names(detail::dataproc_table());
  for (const auto& n : data) EXPECT_TRUE(net.count(n)) << n << " is allowed in dataproc but not in netproc";
  EXPECT_LT(data.size(), net.size());
}

TEST(ChildTables, DataprocHasNoNetworkSocketCalls) {
  const auto data = names(detail::dataproc_table());
  for (const char* n : {"sendmmsg", "recvmmsg", "sendto", "recvfrom", "getsockname", "getpeername", "shutdown"}) {
    EXPECT_FALSE(data.count(n)) << n;
  }
}

TEST(ChildTables, NoChildTableAllowsADeniedSyscall) {
  for (auto table : {detail::netproc_table(), detail::dataproc_table()}) {
    for (const auto& r : table) {
      for (const auto& d : detail::denied_in_both()) EXPECT_NE(r.nr, d.nr) << r.name;
    }
  }
}

// The sanitizer allowance may narrow a denial (read-only opens), never lift it whole.
// exitproc lifts exactly one denial, accept4, and nothing that creates or aims a
// socket: it can only take connections from the listener the broker made.
TEST(ChildTables, ExitprocLiftsOnlyAccept4) {
  for (const auto& r : detail::exitproc_table()) {
    for (const auto& d : detail::denied_in_both()) {
      if (r.nr == d.nr) {
        EXPECT_EQ(std::string(r.name), "accept4");
      }
    }
  }
  const auto exit = names(detail::exitproc_table());
  for (const char* n :
       {"socket", "socketpair", "connect", "bind", "listen", "accept", "sendmmsg", "recvmmsg"}) {
    EXPECT_FALSE(exit.count(n)) << n;
  }
  EXPECT_TRUE(exit.count("accept4"));
  EXPECT_EQ(detail::denials_of(ProcessRole::kExitproc).size() + 1, detail::denied_in_both().size());
  EXPECT_EQ(detail::denials_of(ProcessRole::kCtlproc).size(), detail::denied_in_both().size());
}

TEST(ChildTables, SanitizerAllowanceRelaxesDenialsOnlyWithConditions) {
  for (const auto& r : detail::sanitizer_allowance()) {
    for (const auto& d : detail::denied_in_both()) {
      if (r.nr == d.nr) {
        EXPECT_GT(r.n_checks, 0u) << r.name;
      }
    }
  }
}

TEST(ChildTables, EveryRowNamesASyscallOfThisArchitecture) {
  for (auto table : {detail::netproc_table(), detail::dataproc_table(), detail::sanitizer_allowance()}) {
    for (const auto& r : table) EXPECT_EQ(seccomp_syscall_resolve_name(r.name), r.nr) << r.name;
  }
  for (const auto& d : detail::denied_in_both()) EXPECT_EQ(seccomp_syscall_resolve_name(d.name), d.nr) << d.name;
}

TEST(ChildTables, ExportNamesEveryDeniedSyscallInItsHeader) {
  for (auto role : {ProcessRole::kNetproc, ProcessRole::kDataproc, ProcessRole::kCtlproc,
                    ProcessRole::kExitproc}) {
    const std::string text = export_pfc(role);
    ASSERT_FALSE(text.empty());
    const std::string header = text.substr(0, text.find("# pseudo filter code start"));
    for (const auto& d : detail::denials_of(role)) {
      EXPECT_NE(header.find(std::string(" ") + d.name), std::string::npos) << d.name;
    }
    // The default action and the foreign-architecture action both kill.
    EXPECT_NE(text.find("# default action\n  action KILL_PROCESS;"), std::string::npos);
    EXPECT_NE(text.find("# invalid architecture action\naction KILL_PROCESS;"), std::string::npos);
  }
}

}  // namespace
}  // namespace tw::policy
