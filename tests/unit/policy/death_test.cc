// Chromium-style sandbox death tests: a forked child loads the real filter of a role
// and attempts one forbidden thing; the kernel must kill it with SIGSYS.
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <net/if.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "policy/syscall_tables.h"
#include "tests/unit/policy/sandbox_child.h"

namespace tw::policy {
namespace {

using testing::enter_sandbox;

// Commas inside the attempt are protected by the parentheses around the lambda.
#define EXPECT_KILLED_IN_SANDBOX(role, ...)                                                     \
  EXPECT_EXIT((testing::run_sandboxed(role, [&] { (void)(__VA_ARGS__); })), \
              ::testing::KilledBySignal(SIGSYS), "")

class ForbiddenInBoth : public ::testing::TestWithParam<ProcessRole> {};

TEST_P(ForbiddenInBoth, CreatingAnySocketIsKilled) {
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::socket(AF_INET, SOCK_DGRAM, 0));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::socket(AF_UNIX, SOCK_SEQPACKET, 0));
}

TEST_P(ForbiddenInBoth, SocketpairIsKilled) {
  int sv[2];
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv));
}

// A socket made before the sandbox (as the broker's underlay socket is) still cannot
// be pointed somewhere else or turned into a server.
TEST_P(ForbiddenInBoth, ConnectBindListenAcceptOnInheritedSocketAreKilled) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(9);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  auto* addr = reinterpret_cast<sockaddr*>(&sa);
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::connect(fd, addr, sizeof sa));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::bind(fd, addr, sizeof sa));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::listen(fd, 1));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::accept(fd, nullptr, nullptr));
  if (GetParam() != ProcessRole::kExitproc) {  // exitproc's one lifted denial
    EXPECT_KILLED_IN_SANDBOX(GetParam(), ::accept4(fd, nullptr, nullptr, 0));
  }
  ::close(fd);
}

TEST_P(ForbiddenInBoth, ExecIsKilled) {
  char* const argv[] = {const_cast<char*>("true"), nullptr};
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::execve("/bin/true", argv, environ));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::syscall(SYS_execveat, AT_FDCWD, "/bin/true", argv, environ, 0));
}

// fork() is clone() without the thread flags.
TEST_P(ForbiddenInBoth, ForkingAProcessIsKilled) {
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::fork());
}

TEST_P(ForbiddenInBoth, TouchingOtherProcessesIsKilled) {
  const pid_t parent = ::getpid();  // the test runner, outside the sandbox
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::ptrace(PTRACE_ATTACH, parent, nullptr, nullptr));
  char buf[8];
  iovec local{buf, sizeof buf};
  iovec remote{buf, sizeof buf};
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::process_vm_readv(parent, &local, 1, &remote, 1, 0));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::process_vm_writev(parent, &local, 1, &remote, 1, 0));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::kill(parent, 0));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::syscall(SYS_tgkill, parent, parent, SIGABRT));
}

TEST_P(ForbiddenInBoth, LeavingTheNamespacesIsKilled) {
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::unshare(CLONE_NEWNET));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::setns(0, CLONE_NEWNET));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::mount("none", "/nonexistent-tw-policy", "tmpfs", 0, nullptr));
}

TEST_P(ForbiddenInBoth, KernelModulesAndBpfAreKilled) {
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::syscall(SYS_init_module, nullptr, 0, ""));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::syscall(SYS_finit_module, -1, "", 0));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::syscall(SYS_delete_module, "tun", 0));
  bpf_attr attr{};
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr));
}

TEST_P(ForbiddenInBoth, OpeningAFileForWritingIsKilled) {
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::open("/tmp/tw-policy-open", O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::openat(AT_FDCWD, "/tmp/tw-policy-open", O_RDWR | O_CLOEXEC));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::syscall(SYS_openat2, AT_FDCWD, "/etc/hostname", nullptr, 0));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::creat("/tmp/tw-policy-creat", 0600));
}

// Sanitizer builds let the runtime open files read-only to print its reports; plain
// (production) builds kill any open.
TEST_P(ForbiddenInBoth, OpeningAFileForReadingIsKilled) {
  if (sanitizer_allowance_compiled_in()) GTEST_SKIP() << "the sanitizer allowance permits read-only opens";
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::open("/etc/hostname", O_RDONLY | O_CLOEXEC));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::openat(AT_FDCWD, "/dev/urandom", O_RDONLY | O_CLOEXEC));
}

TEST_P(ForbiddenInBoth, StatOfAPathIsKilled) {
  if (sanitizer_allowance_compiled_in()) GTEST_SKIP() << "the sanitizer allowance permits stat()";
  struct stat st {};
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::stat("/etc/passwd", &st));
}

TEST_P(ForbiddenInBoth, ExecutableMemoryIsKilled) {
  EXPECT_KILLED_IN_SANDBOX(GetParam(),
                           ::mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(page, MAP_FAILED);
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::mprotect(page, 4096, PROT_READ | PROT_EXEC));
  ::munmap(page, 4096);
}

// Interface ioctls (the TUN set-up is the broker's) and anything else unlisted.
TEST_P(ForbiddenInBoth, UnlistedIoctlIsKilled) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  ifreq ifr{};
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::ioctl(fd, SIOCGIFCONF, &ifr));
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::ioctl(fd, SIOCSIFMTU, &ifr));
  ::close(fd);
}

TEST_P(ForbiddenInBoth, IoUringIsKilled) {
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::syscall(SYS_io_uring_setup, 1, nullptr));
}

// x32 syscall numbers come with the x86-64 audit arch; libseccomp must refuse them.
TEST_P(ForbiddenInBoth, ForeignSyscallAbiIsKilled) {
  EXPECT_KILLED_IN_SANDBOX(GetParam(), ::syscall(0x40000000 | SYS_getpid));
}

// Every row of the deny table, called raw: none of them may return. Every argument
// is O_WRONLY|O_CREAT, which keeps the opens forbidden in sanitizer builds too and is
// a harmless bad pointer, fd or flag set for the others should one not be killed.
TEST_P(ForbiddenInBoth, EveryDeniedSyscallIsKilled) {
  constexpr long kArg = O_WRONLY | O_CREAT;
  for (const auto& d : detail::denials_of(GetParam())) {
    SCOPED_TRACE(d.name);
    if (d.nr == SYS_vfork) continue;  // a surviving vfork child would run on our stack
    EXPECT_KILLED_IN_SANDBOX(GetParam(), ::syscall(d.nr, kArg, kArg, kArg, kArg, kArg, kArg));
  }
}

INSTANTIATE_TEST_SUITE_P(Roles, ForbiddenInBoth,
                         ::testing::Values(ProcessRole::kNetproc, ProcessRole::kDataproc,
                                           ProcessRole::kCtlproc, ProcessRole::kExitproc),
                         testing::role_param_name);

// dataproc has no network socket, so the batched and addressed socket calls that
// netproc uses on the underlay are not in its table.
TEST(DataprocSandbox, BatchedAndAddressedSocketIoIsKilled) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  char byte = 0;
  mmsghdr msg{};
  iovec iov{&byte, 1};
  msg.msg_hdr.msg_iov = &iov;
  msg.msg_hdr.msg_iovlen = 1;
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kDataproc, ::sendmmsg(sv[0], &msg, 1, 0));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kDataproc, ::recvmmsg(sv[1], &msg, 1, MSG_DONTWAIT, nullptr));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kDataproc, ::sendto(sv[0], &byte, 1, 0, nullptr, 0));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kDataproc, ::recvfrom(sv[1], &byte, 1, MSG_DONTWAIT, nullptr, nullptr));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kDataproc, ::shutdown(sv[0], SHUT_RDWR));
  ::close(sv[0]);
  ::close(sv[1]);
}

// ctlproc reads and writes its one broker-dialled TCP stream; it never dials (socket,
// connect: the parameterised tests above) and has no datagram socket to batch on.
TEST(CtlprocSandbox, DialsAndDatagramIoAreKilled) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  char byte = 0;
  mmsghdr msg{};
  iovec iov{&byte, 1};
  msg.msg_hdr.msg_iov = &iov;
  msg.msg_hdr.msg_iovlen = 1;
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kCtlproc, ::socket(AF_INET, SOCK_STREAM, 0));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kCtlproc, ::connect(sv[0], nullptr, 0));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kCtlproc, ::sendmmsg(sv[0], &msg, 1, 0));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kCtlproc, ::recvmmsg(sv[1], &msg, 1, MSG_DONTWAIT, nullptr));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kCtlproc, ::sendto(sv[0], &byte, 1, 0, nullptr, 0));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kCtlproc, ::recvfrom(sv[1], &byte, 1, MSG_DONTWAIT, nullptr, nullptr));
  ::close(sv[0]);
  ::close(sv[1]);
}

// exitproc accepts on the broker's listener and reads SO_ORIGINAL_DST, but it never
// makes, aims or binds a socket, and its only setsockopt is SO_LINGER (the reset);
// anything that would let it reach the internet on its own is killed.
TEST(ExitprocSandbox, DialsAndOtherSocketOptionsAreKilled) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(9);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int one = 1;
  char byte = 0;
  mmsghdr msg{};
  iovec iov{&byte, 1};
  msg.msg_hdr.msg_iov = &iov;
  msg.msg_hdr.msg_iovlen = 1;
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kExitproc, ::socket(AF_INET, SOCK_STREAM, 0));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kExitproc, ::socket(AF_INET, SOCK_DGRAM, 0));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kExitproc,
                           ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kExitproc,
                           ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kExitproc, ::listen(fd, 1));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kExitproc, ::accept(fd, nullptr, nullptr));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kExitproc,
                           ::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kExitproc,
                           ::setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kExitproc,
                           ::setsockopt(fd, SOL_SOCKET, SO_MARK, &one, sizeof one));
  socklen_t l = sizeof one;
  int v = 0;
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kExitproc, ::getsockopt(fd, SOL_IP, IP_OPTIONS, &v, &l));
  EXPECT_KILLED_IN_SANDBOX(ProcessRole::kExitproc, ::sendmmsg(fd, &msg, 1, 0));
  ::close(fd);
}

}  // namespace
}  // namespace tw::policy
