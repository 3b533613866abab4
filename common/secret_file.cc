#include "common/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <system_error>

namespace tw {

Result<std::string> read_owner_only_file(const std::string& path, std::size_t max_bytes,
                                         std::string_view exposure, std::string_view too_large) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return make_error(path + ": cannot open: " + std::generic_category().message(errno));
  auto fail = [fd](std::string what) {
    ::close(fd);
    return make_error(std::move(what));
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return fail(path + ": not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    (void)std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return fail(path + ": mode " + mode + " lets group or others " + std::string(exposure) +
                "; chmod 600 it");
  }
  if (st.st_uid != ::geteuid()) {
    return fail(path + ": owned by uid " + std::to_string(st.st_uid) +
                ", not by the user loading it (uid " + std::to_string(::geteuid()) + ")");
  }
  if (st.st_size < 0 || static_cast<std::size_t>(st.st_size) > max_bytes) {
    return fail(path + ": " + std::string(too_large));
  }
  std::string text(static_cast<std::size_t>(st.st_size), '\0');
  const ssize_t got = ::read(fd, text.data(), text.size());
  ::close(fd);
  if (got != static_cast<ssize_t>(text.size())) return make_error(path + ": short read");
  return text;
}

}  // namespace tw
