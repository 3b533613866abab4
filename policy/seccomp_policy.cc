#include "policy/seccomp_policy.h"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

#include "policy/syscall_tables.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TW_SANITIZER_RUNTIME 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TW_SANITIZER_RUNTIME 1
#endif
#endif
#if defined(TW_SANITIZER_RUNTIME)
#include <sanitizer/common_interface_defs.h>
#endif

namespace tw::policy {
namespace {

using detail::SyscallRule;
using detail::Verdict;

struct FilterRelease {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Filter = std::unique_ptr<void, FilterRelease>;

std::string libseccomp_error(const std::string& what, int rc) {
  return "seccomp: " + what + ": " + std::strerror(-rc);
}

struct TableRow {
  SyscallRule rule;
  bool from_sanitizer_allowance;
};

std::vector<TableRow> rows_of(ProcessRole role) {
  std::vector<TableRow> rows;
  const auto table = role == ProcessRole::kNetproc    ? detail::netproc_table()
                     : role == ProcessRole::kDataproc ? detail::dataproc_table()
                     : role == ProcessRole::kExitproc ? detail::exitproc_table()
                                                      : detail::ctlproc_table();
  for (const auto& r : table) {
    rows.push_back({r, false});
  }
  if (sanitizer_allowance_compiled_in()) {
    for (const auto& r : detail::sanitizer_allowance()) rows.push_back({r, true});
  }
  return rows;
}

// A table row naming a syscall that is denied on purpose is a policy bug, not a
// configuration: refuse to build such a filter at all. The one exception is the
// sanitizer allowance narrowing a denial with argument conditions.
Status check_not_denied(ProcessRole role, const TableRow& row) {
  if (row.from_sanitizer_allowance && row.rule.n_checks > 0) return ok_status();
  for (const auto& d : detail::denials_of(role)) {
    if (d.nr == row.rule.nr) {
      return make_error(std::string("policy bug: ") + row.rule.name + " is allowed but must be denied");
    }
  }
  return ok_status();
}

Status add_rule(scmp_filter_ctx ctx, const SyscallRule& rule, pid_t self_pid) {
  if (rule.nr < 0) return make_error(std::string("seccomp: no syscall ") + rule.name + " on this architecture");
  scmp_arg_cmp cmps[2] = {};
  for (unsigned i = 0; i < rule.n_checks; ++i) {
    const auto& c = rule.checks[i];
    const std::uint64_t value = c.self_pid ? static_cast<std::uint64_t>(self_pid) : c.value;
    cmps[i] = c.op == SCMP_CMP_MASKED_EQ ? scmp_arg_cmp{c.arg, c.op, c.mask, value}
                                          : scmp_arg_cmp{c.arg, c.op, value, 0};
  }
  const std::uint32_t action =
      rule.verdict == Verdict::kAllow ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(static_cast<std::uint32_t>(rule.err));
  int rc = seccomp_rule_add_exact_array(ctx, action, rule.nr, rule.n_checks, rule.n_checks ? cmps : nullptr);
  if (rc < 0) return make_error(libseccomp_error(std::string("rule for ") + rule.name, rc));
  return ok_status();
}

Result<Filter> build_filter(ProcessRole role, pid_t self_pid) {
  Filter ctx(seccomp_init(SCMP_ACT_KILL_PROCESS));
  if (!ctx) return make_error("seccomp: seccomp_init failed");
  struct Attr {
    scmp_filter_attr attr;
    std::uint32_t value;
    const char* what;
  };
  const Attr attrs[] = {
      {SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS, "kill foreign architectures"},
      {SCMP_FLTATR_CTL_NNP, 1, "NoNewPrivs"},
      {SCMP_FLTATR_CTL_TSYNC, 1, "TSYNC"},
  };
  for (const auto& a : attrs) {
    if (int rc = seccomp_attr_set(ctx.get(), a.attr, a.value); rc < 0) return make_error(libseccomp_error(a.what, rc));
  }
  for (const auto& row : rows_of(role)) {
    if (auto st = check_not_denied(role, row); !st) return make_error(st.error());
    if (auto st = add_rule(ctx.get(), row.rule, self_pid); !st) return make_error(st.error());
  }
  return ctx;
}

Result<std::string> pfc_of(scmp_filter_ctx ctx) {
  int fd = memfd_create("tw-policy-pfc", MFD_CLOEXEC);
  if (fd < 0) return make_error(std::string("memfd_create: ") + std::strerror(errno));
  std::string text;
  int rc = seccomp_export_pfc(ctx, fd);
  if (rc == 0 && ::lseek(fd, 0, SEEK_SET) == 0) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (rc < 0) return make_error(libseccomp_error("export", rc));
  return text;
}

std::string pfc_header(ProcessRole role) {
  std::string h = "# tailwarden seccomp filter: " + std::string(role_name(role)) + "\n";
  h += "# generated from policy/syscall_tables.cc; regenerate with policy/update-golden\n";
  h += "# tgkill's first argument is the child's own pid (written as " + std::to_string(kGoldenSelfPid) +
       " here)\n";
  h += "# denied on purpose (KILL_PROCESS, like everything not allowed below):\n#  ";
  std::size_t col = 2;
  for (const auto& d : detail::denials_of(role)) {
    std::string item = std::string(" ") + d.name;
    if (col + item.size() > 88) {
      h += "\n#  ";
      col = 2;
    }
    h += item;
    col += item.size();
  }
  return h + "\n";
}

}  // namespace

void warm_up_before_sandbox() {
  ::tzset();  // localtime_r (log time stamps) reads /etc/localtime once
#if defined(TW_SANITIZER_RUNTIME)
  // Lets the sanitizer cache /proc/self/maps for its reports.
  __sanitizer_sandbox_arguments args{};
  __sanitizer_sandbox_on_notify(&args);
#endif
}

std::string_view role_name(ProcessRole role) {
  switch (role) {
    case ProcessRole::kNetproc: return "netproc";
    case ProcessRole::kDataproc: return "dataproc";
    case ProcessRole::kCtlproc: return "ctlproc";
    case ProcessRole::kExitproc:
      return "exitproc";
  }
  return "?";
}

bool sanitizer_allowance_compiled_in() {
#if defined(TW_SANITIZER_BUILD)
  return true;
#else
  return false;
#endif
}

Status install(ProcessRole role) {
  warm_up_before_sandbox();
  if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1 && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return make_error(std::string("prctl(PR_SET_NO_NEW_PRIVS): ") + std::strerror(errno));
  }
  auto filter = build_filter(role, ::getpid());
  if (!filter) return make_error(filter.error());
  if (int rc = seccomp_load(filter->get()); rc != 0) {
    return make_error(libseccomp_error(std::string("loading the ") + std::string(role_name(role)) + " filter", rc));
  }
  return ok_status();
}

std::string export_pfc(ProcessRole role, pid_t self_pid) {
  auto filter = build_filter(role, self_pid);
  if (!filter) return {};
  auto text = pfc_of(filter->get());
  if (!text) return {};
  return pfc_header(role) + *text;
}

std::string export_pfc(ProcessRole role) { return export_pfc(role, kGoldenSelfPid); }

}  // namespace tw::policy
