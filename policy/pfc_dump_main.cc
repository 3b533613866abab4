// tw-policy-pfc ROLE: prints the compiled seccomp filter of ROLE
// (netproc|dataproc|ctlproc|exitproc) in the golden form. policy/update-golden writes its output to
// policy/golden/.
#include <cstdio>
#include <string>

#include "policy/seccomp_policy.h"

int main(int argc, char** argv) {
  using tw::policy::ProcessRole;
  const std::string role = argc == 2 ? argv[1] : "";
  if (role != "netproc" && role != "dataproc" && role != "ctlproc" && role != "exitproc") {
    (void)std::fprintf(stderr, "usage: tw-policy-pfc netproc|dataproc|ctlproc|exitproc\n");
    return 2;
  }
  if (tw::policy::sanitizer_allowance_compiled_in()) {
    std::fprintf(stderr, "tw-policy-pfc: this is a sanitizer build; golden files come from a plain build\n");
    return 1;
  }
  const auto text = tw::policy::export_pfc(role == "netproc"    ? ProcessRole::kNetproc
                                           : role == "dataproc" ? ProcessRole::kDataproc
                                           : role == "exitproc" ? ProcessRole::kExitproc
                                                                : ProcessRole::kCtlproc);
  if (text.empty()) {
    std::fprintf(stderr, "tw-policy-pfc: building the %s filter failed\n", role.c_str());
    return 1;
  }
  std::fputs(text.c_str(), stdout);
  return 0;
}
