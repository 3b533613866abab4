// The allowlists of netproc and dataproc, OpenSSH sandbox-seccomp-filter.c style: one
// row per syscall the child needs after its filter is loaded, a comment where the
// need is not obvious. Everything else is killed (SECCOMP_RET_KILL_PROCESS).
//
// What runs under these filters: an Asio epoll loop (epoll, timerfd, eventfd
// interrupter), batched UDP I/O on the one underlay socket, TLS (OpenSSL, memory
// BIOs) over broker-dialled TCP fds, SOCK_SEQPACKET control channels carrying fds
// with SCM_RIGHTS, shared-memory rings on a memfd, eventfd doorbells, libsodium and
// OpenSSL randomness from getrandom, and std::thread. Start-up (opening, mapping,
// creating the loop's own fds) happens before the filter is loaded.

#include "policy/syscall_tables.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <utility>

// After <netinet/in.h>: the kernel header defers to glibc only in this order.
#include <linux/netfilter_ipv4.h>  // SO_ORIGINAL_DST

namespace tw::policy::detail {
namespace {

#define SYS(name) SCMP_SYS(name), #name

constexpr ArgCheck arg_masked(unsigned arg, std::uint64_t mask, std::uint64_t value) {
  return ArgCheck{.arg = arg, .op = SCMP_CMP_MASKED_EQ, .mask = mask, .value = value};
}
constexpr ArgCheck arg_is_own_pid(unsigned arg) {
  return ArgCheck{.arg = arg, .op = SCMP_CMP_EQ, .self_pid = true};
}

constexpr SyscallRule allow(int nr, const char* name) { return SyscallRule{.nr = nr, .name = name}; }
constexpr SyscallRule allow_if(int nr, const char* name, ArgCheck a) {
  return SyscallRule{.nr = nr, .name = name, .checks = {a}, .n_checks = 1};
}
constexpr SyscallRule allow_if(int nr, const char* name, ArgCheck a, ArgCheck b) {
  return SyscallRule{.nr = nr, .name = name, .checks = {a, b}, .n_checks = 2};
}
constexpr SyscallRule fail_with(int nr, const char* name, int err) {
  return SyscallRule{.nr = nr, .name = name, .verdict = Verdict::kErrno, .err = err};
}
constexpr SyscallRule fail_with_if(int nr, const char* name, int err, ArgCheck a) {
  return SyscallRule{.nr = nr, .name = name, .verdict = Verdict::kErrno, .err = err, .checks = {a}, .n_checks = 1};
}

// Arguments that are C ints are compared on their low 32 bits (the kernel reads them
// as int), which a 32-bit mask does.
constexpr std::uint64_t kLow32 = 0xffffffffULL;
// mmap/mprotect: never executable memory; nothing is loaded after start-up.
constexpr ArgCheck kProtNotExec = arg_masked(2, PROT_EXEC, 0);
// newfstatat only as fstat(fd) (AT_EMPTY_PATH), never as stat(path).
constexpr ArgCheck kFstatOfFd = arg_masked(3, AT_EMPTY_PATH, AT_EMPTY_PATH);
// clone only as glibc's pthread_create does it: the thread flags must all be set,
// CLONE_SETTLS/PARENT_SETTID/CHILD_CLEARTID may be, nothing else may (no fork, no
// vfork, no new namespaces, no exit signal).
constexpr std::uint64_t kCloneThreadRequired =
    CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
constexpr std::uint64_t kCloneThreadOptional = CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
constexpr ArgCheck kThreadCloneFlags = arg_masked(0, ~kCloneThreadOptional, kCloneThreadRequired);
// getsockopt on fds received at run time (DERP TCP fds, a renewed control socket or
// ring) to validate them (SO_TYPE, SO_DOMAIN, SO_ERROR): socket level only.
constexpr ArgCheck kSolSocket = arg_masked(1, kLow32, SOL_SOCKET);

// Two tables joined into one, in order (each role's table: the base, then its own rows).
template <std::size_t N, std::size_t M, std::size_t... I, std::size_t... J>
constexpr std::array<SyscallRule, N + M> join_rows(const SyscallRule (&a)[N],
                                                   const SyscallRule (&b)[M],
                                                   std::index_sequence<I...>,
                                                   std::index_sequence<J...>) {
  return {a[I]..., b[J]...};
}
template <std::size_t N, std::size_t M>
constexpr std::array<SyscallRule, N + M> join_rows(const SyscallRule (&a)[N],
                                                   const SyscallRule (&b)[M]) {
  return join_rows(a, b, std::make_index_sequence<N>{}, std::make_index_sequence<M>{});
}

// The rows every child needs, and all that dataproc needs: the allocator, threads,
// signals, time and randomness, the event loop, and I/O on fds that already exist or
// arrive with SCM_RIGHTS. Each role's table is these rows, in this order, followed by
// the role's own; the test ChildTablesDataprocIsStrictSubsetOfNetproc keeps
// dataproc's table inside netproc's. One row per line in every table.
// clang-format off
constexpr SyscallRule kChildBase[] = {
    // Memory: the allocator, thread stacks, rings mapped from received memfds.
    allow(SYS(brk)),
    allow_if(SYS(mmap), kProtNotExec),
    allow_if(SYS(mprotect), kProtNotExec),
    allow(SYS(munmap)),
    allow(SYS(mremap)),   // realloc of large blocks
    allow(SYS(madvise)),  // malloc trimming, freed thread stacks, MADV_DONTDUMP for keys
    allow(SYS(mlock)),    // libsodium keeps key pages out of swap
    allow(SYS(munlock)),
    // Threads and their synchronisation.
    allow_if(SYS(clone), kThreadCloneFlags),
    fail_with(SYS(clone3), ENOSYS),  // glibc falls back to clone, whose flags we can check
    allow(SYS(futex)),
    allow(SYS(set_robust_list)),  // every new glibc thread
    allow(SYS(rseq)),             // every new glibc (>= 2.35) thread
    allow(SYS(sched_yield)),      // libstdc++ atomic wait back-off, spin loops
    allow(SYS(exit)),
    allow(SYS(exit_group)),
    // Signals: handlers must be able to return; abort() may only signal itself.
    allow(SYS(rt_sigreturn)),
    allow(SYS(rt_sigprocmask)),
    allow(SYS(rt_sigaction)),
    allow(SYS(restart_syscall)),
    allow_if(SYS(tgkill), arg_is_own_pid(0), arg_masked(2, kLow32, SIGABRT)),
    allow(SYS(getpid)),  // abort(), OpenSSL fork detection, log lines
    allow(SYS(gettid)),  // log lines
    // Time (normally the vDSO; these are its fall-backs) and randomness.
    allow(SYS(clock_gettime)),
    allow(SYS(clock_getres)),
    allow(SYS(gettimeofday)),
    allow(SYS(clock_nanosleep)),
    allow(SYS(nanosleep)),
    allow(SYS(getrandom)),  // libsodium and OpenSSL; /dev/urandom is never opened
    // The event loop (its epoll fd, timerfd and eventfd exist before the filter).
    allow(SYS(epoll_wait)),
    allow(SYS(epoll_pwait)),
    allow(SYS(epoll_ctl)),
    allow(SYS(poll)),  // Asio's synchronous waits on non-blocking fds
    allow(SYS(ppoll)),
    allow(SYS(timerfd_settime)),
    allow(SYS(timerfd_gettime)),
    // I/O on fds that already exist or arrive with SCM_RIGHTS: eventfd doorbells, the
    // ring memfd, control sockets, DERP TCP, the underlay UDP socket, stderr.
    allow(SYS(read)),
    allow(SYS(write)),
    allow(SYS(readv)),
    allow(SYS(writev)),
    allow(SYS(close)),
    allow(SYS(fstat)),
    allow_if(SYS(newfstatat), kFstatOfFd),  // glibc's fstat()
    allow_if(SYS(fcntl), arg_masked(1, kLow32, F_GETFL)),
    allow_if(SYS(fcntl), arg_masked(1, kLow32, F_SETFL)),  // O_NONBLOCK on adopted fds
    allow_if(SYS(fcntl), arg_masked(1, kLow32, F_GETFD)),
    allow_if(SYS(fcntl), arg_masked(1, kLow32, F_SETFD)),
    allow_if(SYS(fcntl), arg_masked(1, kLow32, F_GET_SEALS)),  // checking a ring memfd
    allow_if(SYS(ioctl), arg_masked(1, kLow32, FIONBIO)),   // Asio's non-blocking switch
    allow_if(SYS(ioctl), arg_masked(1, kLow32, FIONREAD)),  // Asio's available()
    fail_with_if(SYS(ioctl), ENOTTY, arg_masked(1, kLow32, TCGETS)),  // stdio's isatty()
    allow(SYS(recvmsg)),  // control channels (SCM_RIGHTS) and Asio's socket reads
    allow(SYS(sendmsg)),
    allow_if(SYS(getsockopt), kSolSocket),
};

// netproc: disco, magicsock and DERP. The underlay UDP socket and DERP TCP streams.
constexpr SyscallRule kNetprocOnly[] = {
    allow(SYS(recvmmsg)),
    allow(SYS(sendmmsg)),
    allow(SYS(recvfrom)),  // recv() on x86-64
    allow(SYS(sendto)),    // send() on x86-64
    allow(SYS(getsockname)),  // the underlay's local port, for endpoint advertisement
    allow(SYS(getpeername)),
    allow(SYS(shutdown)),  // closing a DERP stream cleanly
};
constexpr auto kNetproc = join_rows(kChildBase, kNetprocOnly);

// dataproc: WireGuard and TUN. No network socket at all: its fds are the TUN device,
// the ring memfd, eventfds and SOCK_SEQPACKET control sockets. The base rows are all
// it needs: read/write for TUN packets and eventfds, recvmsg/sendmsg for the control
// channels only (SCM_RIGHTS), getrandom for handshake ephemerals and cookie secrets.
constexpr const auto& kDataproc = kChildBase;

// ctlproc: the control-plane client. Its only network fd is the one TCP connection
// to the control server that the broker dialled and passed with SCM_RIGHTS; it reads
// and writes it with read/write under poll, gets that fd over the broker link with
// recvmsg, and its Noise ephemerals from getrandom. The base rows plus shutdown.
constexpr SyscallRule kCtlprocOnly[] = {
    allow(SYS(shutdown)),  // ending a control connection cleanly
};
constexpr auto kCtlproc = join_rows(kChildBase, kCtlprocOnly);

// exitproc: the exit flows. Its network fds were all made by the broker in the exit
// namespace (a TCP listener, two UDP sockets) or dialled by it (proxy connections),
// and arrive over the broker link (recvmsg, SCM_RIGHTS); the base rows' getsockopt
// checks their SO_TYPE/SO_DOMAIN/SO_ACCEPTCONN. exitproc accepts on the listener,
// reads the redirect's original destination, resets clients with SO_LINGER 0, and
// reads and writes the rest. It creates, binds and connects nothing: socket, connect,
// bind and listen stay killed as in every child; accept4 is the one denial lifted, for
// this process only.
constexpr SyscallRule kExitprocOnly[] = {
    allow(SYS(accept4)),  // peers' flows on the broker's listener (not accept: no flags)
    allow_if(SYS(getsockopt), arg_masked(1, kLow32, SOL_IP), arg_masked(2, kLow32, SO_ORIGINAL_DST)),
    allow_if(SYS(setsockopt), arg_masked(1, kLow32, SOL_SOCKET), arg_masked(2, kLow32, SO_LINGER)),  // RST
    allow(SYS(recvfrom)),  // relay reads; DNS queries and other UDP on the passed sockets
    allow(SYS(sendto)),    // relay writes; DNS answers to the client (the NAT reverses them)
    allow(SYS(shutdown)),  // half-close in both directions
};
// clang-format on
constexpr auto kExitproc = join_rows(kChildBase, kExitprocOnly);

// What ASan/UBSan/LSan do at run time that our code does not: alternate signal stacks
// and an affinity look-up (pthread_getattr_np) for each new thread, a pipe through
// which the runtime probes whether memory is readable (pthread_create's interceptor),
// and, to print a report, read-only opens of /proc/self/maps and of the binary (for
// in-process symbolization). Without those a sanitizer report from a sandboxed child
// stops after its first line. Process-creating calls (an external symbolizer) stay
// killed. These are the only rows allowed to relax a denial, and only with argument
// conditions (see seccomp_policy.cc).
constexpr std::uint64_t kOpenForWriting = O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND | O_TMPFILE;
constexpr SyscallRule kSanitizerAllowance[] = {
    allow(SYS(sigaltstack)),
    allow(SYS(sched_getaffinity)),
    allow(SYS(pipe2)),
    allow(SYS(readlink)),    // /proc/self/exe, naming the binary in a report
    allow(SYS(newfstatat)),  // stat() of the shared objects it symbolizes
    allow_if(SYS(open), arg_masked(1, kOpenForWriting, O_RDONLY)),
    allow_if(SYS(openat), arg_masked(2, kOpenForWriting, O_RDONLY)),
};

// Killed in both children, on purpose; each class has a death test.
constexpr SyscallDenial kDeniedInBoth[] = {
    // Single egress: only the broker creates, binds or connects sockets.
    {SYS(socket)},
    {SYS(socketpair)},
    {SYS(connect)},
    {SYS(bind)},
    {SYS(listen)},
    {SYS(accept)},
    {SYS(accept4)},
    // No new programs, no other processes' memory.
    {SYS(execve)},
    {SYS(execveat)},
    {SYS(fork)},
    {SYS(vfork)},
    {SYS(ptrace)},
    {SYS(process_vm_readv)},
    {SYS(process_vm_writev)},
    // The empty network namespace must stay the child's world.
    {SYS(unshare)},
    {SYS(setns)},
    {SYS(mount)},
    {SYS(umount2)},
    {SYS(pivot_root)},
    // Kernel surface.
    {SYS(init_module)},
    {SYS(finit_module)},
    {SYS(delete_module)},
    {SYS(bpf)},
    {SYS(io_uring_setup)},  // io_uring operations bypass seccomp entirely
    // No file opens after start-up: what a child reads is handed to it as an fd.
    {SYS(open)},
    {SYS(openat)},
    {SYS(openat2)},
    {SYS(creat)},
    {SYS(open_by_handle_at)},
};

#undef SYS

}  // namespace

std::span<const SyscallRule> netproc_table() { return kNetproc; }
std::span<const SyscallRule> dataproc_table() { return kDataproc; }
std::span<const SyscallRule> ctlproc_table() { return kCtlproc; }
std::span<const SyscallRule> exitproc_table() { return kExitproc; }
std::span<const SyscallRule> sanitizer_allowance() { return kSanitizerAllowance; }
std::span<const SyscallDenial> denied_in_both() { return kDeniedInBoth; }

bool denial_lifted_for(ProcessRole role, int nr) {
  return role == ProcessRole::kExitproc && nr == SCMP_SYS(accept4);
}

std::vector<SyscallDenial> denials_of(ProcessRole role) {
  std::vector<SyscallDenial> out;
  for (const auto& d : kDeniedInBoth) {
    if (!denial_lifted_for(role, d.nr)) out.push_back(d);
  }
  return out;
}

}  // namespace tw::policy::detail
