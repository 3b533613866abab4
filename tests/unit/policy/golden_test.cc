// The compiled filters must match the reviewed golden dumps in policy/golden/, so a
// policy change is always seen as a diff (Chromium-style golden filter test).
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "policy/seccomp_policy.h"
#include "tests/unit/policy/sandbox_child.h"

namespace tw::policy {
namespace {

std::string read_golden(ProcessRole role) {
  std::ifstream in(std::string(TW_POLICY_GOLDEN_DIR) + "/" + std::string(role_name(role)) + ".pfc");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The first line where two texts differ, numbered, for the failure message.
std::string first_difference(const std::string& want, const std::string& got) {
  std::istringstream a(want);
  std::istringstream b(got);
  std::string la;
  std::string lb;
  for (int line = 1;; ++line) {
    const bool more_a = static_cast<bool>(std::getline(a, la));
    const bool more_b = static_cast<bool>(std::getline(b, lb));
    if (!more_a && !more_b) return "texts differ only in line endings";
    if (!more_a || !more_b || la != lb) {
      return "line " + std::to_string(line) + ":\n  golden:   " + (more_a ? la : "<end>") +
             "\n  compiled: " + (more_b ? lb : "<end>");
    }
  }
}

class GoldenFilter : public ::testing::TestWithParam<ProcessRole> {};

TEST_P(GoldenFilter, CompiledFilterMatchesReviewedGoldenDump) {
  if (sanitizer_allowance_compiled_in()) {
    GTEST_SKIP() << "sanitizer builds add the sanitizer allowance; golden files are for plain builds";
  }
  const std::string golden = read_golden(GetParam());
  ASSERT_FALSE(golden.empty()) << "missing " << TW_POLICY_GOLDEN_DIR << "/" << role_name(GetParam()) << ".pfc";
  const std::string compiled = export_pfc(GetParam());
  ASSERT_FALSE(compiled.empty());
  EXPECT_TRUE(compiled == golden) << "the " << role_name(GetParam())
                                  << " filter differs from its golden dump at "
                                  << first_difference(golden, compiled)
                                  << "\nIf the change is intended, run policy/update-golden and review "
                                     "the diff of policy/golden/ with the table change.";
}

TEST_P(GoldenFilter, ExportIsTheSameInEveryProcess) {
  EXPECT_EQ(export_pfc(GetParam()), export_pfc(GetParam()));
  EXPECT_EQ(export_pfc(GetParam()), export_pfc(GetParam(), kGoldenSelfPid));
}

INSTANTIATE_TEST_SUITE_P(Roles, GoldenFilter,
                         ::testing::Values(ProcessRole::kNetproc, ProcessRole::kDataproc,
                                           ProcessRole::kCtlproc, ProcessRole::kExitproc),
                         testing::role_param_name);

}  // namespace
}  // namespace tw::policy
