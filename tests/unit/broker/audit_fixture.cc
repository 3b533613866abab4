// A stand-in child for the audit tests: applies the same sandbox steps as a real
// child (or deliberately skips some, per argv) and then waits on fd 3 until the test
// closes it. argv[1] is a comma-separated list of faults:
//   keep-root, no-seccomp, extra-udp, wx-mapping
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "common/privdrop.h"

int main(int argc, char** argv) {
  std::string faults = argc > 1 ? argv[1] : "";
  auto has = [&](const char* f) { return faults.find(f) != std::string::npos; };
  if (has("extra-udp")) {
    // Created before the drop, like a leak from a careless start-up path would be.
    if (socket(AF_INET, SOCK_DGRAM, 0) < 0) return 10;
  }
  if (has("wx-mapping")) {
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 11;
  }
  if (!has("keep-root")) {
    auto st = tw::drop_privileges({65534, 65534}, getppid(), false);
    if (!st) {
      std::fprintf(stderr, "fixture: %s\n", st.error().c_str());
      return 12;
    }
  } else if (!tw::harden_process(0)) {
    return 13;
  }
  if (!has("no-seccomp")) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == nullptr || seccomp_load(ctx) != 0) return 14;
    seccomp_release(ctx);
  }
  (void)!write(3, "ready\n", 6);
  char c;
  while (read(3, &c, 1) > 0) {
  }
  return 0;
}
