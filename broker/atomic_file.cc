#include "broker/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

namespace tw::broker {
namespace {

Status fail(const std::string& what, const std::string& path) {
  return make_error(what + " " + path + ": " + std::strerror(errno));
}

Status write_all(int fd, std::string_view content, const std::string& path) {
  while (!content.empty()) {
    const ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("writing", path);
    content.remove_prefix(static_cast<std::size_t>(n));
  }
  return ok_status();
}

}  // namespace

Status replace_file_atomically(const std::string& path, std::string_view content, mode_t mode) {
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, std::max<std::size_t>(slash, 1));
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  // Hidden, and in the same directory: rename(2) is atomic only within a filesystem.
  std::string tmp = dir + (dir == "/" ? "" : "/") + "." + base + ".XXXXXX";
  std::vector<char> name(tmp.begin(), tmp.end());
  name.push_back('\0');
  const int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) return fail("creating a temporary file for", path);
  tmp = name.data();
  Status st = write_all(fd, content, tmp);
  // mkostemp creates 0600; the umask must not decide what readers get either.
  if (st && ::fchmod(fd, mode) != 0) st = fail("chmod", tmp);
  if (st && ::fsync(fd) != 0) st = fail("fsync", tmp);
  if (::close(fd) != 0 && st) st = fail("closing", tmp);
  if (st && ::rename(tmp.c_str(), path.c_str()) != 0) st = fail("renaming over", path);
  if (!st) {
    ::unlink(tmp.c_str());
    return st;
  }
  // The rename itself is durable once the directory is synced.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return ok_status();
}

Result<std::string> read_regular_file_bounded(const std::string& path, std::size_t max_bytes) {
  const int raw = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (raw < 0) return make_error(path + ": cannot open: " + std::generic_category().message(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{raw};
  struct stat sb {};
  if (::fstat(raw, &sb) != 0)
    return make_error(path + ": cannot stat: " + std::generic_category().message(errno));
  if (!S_ISREG(sb.st_mode)) return make_error(path + ": not a regular file");
  if (static_cast<std::uint64_t>(sb.st_size) > max_bytes) {
    return make_error(path + ": " + std::to_string(sb.st_size) + " bytes, more than the limit of " +
                      std::to_string(max_bytes));
  }
  std::string text(static_cast<std::size_t>(sb.st_size), '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(raw, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error(path + ": read: " + std::generic_category().message(errno));
    if (n == 0) break;  // shrank meanwhile: what is there is all there is
    got += static_cast<std::size_t>(n);
  }
  text.resize(got);
  return text;
}

}  // namespace tw::broker
