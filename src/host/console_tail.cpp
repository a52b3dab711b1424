#include "host/console_tail.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nimbus::host {

Result<ConsoleTail> read_console_tail(const std::string& path, size_t max_bytes) {
  ConsoleTail tail;
  // O_NOFOLLOW | O_NONBLOCK: the log lives in a directory the VM's uid owns; whatever it put
  // there must not make nimbusd follow a link or block on a FIFO.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return tail;
    return Status::internal(fmt::format("console log {}: {}", path, std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::internal(fmt::format("console log {} is not a regular file", path));
  }
  const off_t size = st.st_size;
  const off_t start =
      size > static_cast<off_t>(max_bytes) ? size - static_cast<off_t>(max_bytes) : 0;
  tail.truncated = start > 0;
  tail.output.resize(static_cast<size_t>(size - start));
  size_t got = 0;
  while (got < tail.output.size()) {
    const ssize_t n = ::pread(fd, tail.output.data() + got, tail.output.size() - got,
                              start + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the file shrank meanwhile: what was read is the answer
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  tail.output.resize(got);
  return tail;
}

}  // namespace nimbus::host
