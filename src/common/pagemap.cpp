#include "common/pagemap.h"

#include <fcntl.h>
#include <unistd.h>

namespace nimbus {

std::optional<std::vector<bool>> touched_pages(const void* base, size_t len) {
  constexpr uint64_t kPage = 4096;
  constexpr uint64_t kPresent = 1ull << 63, kSwapped = 1ull << 62;
  const auto addr = reinterpret_cast<uintptr_t>(base);
  if (addr % kPage != 0) return std::nullopt;
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  const size_t pages = (len + kPage - 1) / kPage;
  std::vector<bool> out(pages, false);
  std::vector<uint64_t> buf(4096);
  for (size_t first = 0; first < pages;) {
    const size_t n = std::min(buf.size(), pages - first);
    const off_t at = static_cast<off_t>((addr / kPage + first) * sizeof(uint64_t));
    const ssize_t got = ::pread(fd, buf.data(), n * sizeof(uint64_t), at);
    if (got != static_cast<ssize_t>(n * sizeof(uint64_t))) {
      ::close(fd);
      return std::nullopt;
    }
    for (size_t i = 0; i < n; i++) out[first + i] = (buf[i] & (kPresent | kSwapped)) != 0;
    first += n;
  }
  ::close(fd);
  return out;
}

}  // namespace nimbus
