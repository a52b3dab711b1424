// libFuzzer target: arbitrary bytes opened as a qcow2 image (read-write, else read-only),
// then a few reads and writes. Must never crash, hang or allocate without bound; errors
// are fine.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "backends/block/qcow2.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = ::memfd_create("qcow2_fuzz", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (size > 0 && ::write(fd, data, size) != static_cast<ssize_t>(size)) {
    ::close(fd);
    return 0;
  }
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  auto image = nimbus::backends::Qcow2Image::open(path, false);
  if (!image.ok()) image = nimbus::backends::Qcow2Image::open(path, true);
  if (image.ok()) {
    auto& disk = **image;
    const uint64_t cluster = disk.cluster_size();
    std::vector<uint8_t> buf(cluster + 16);
    // The first clusters, an unaligned range across a boundary, and the last byte.
    for (uint64_t c = 0; c < 4; ++c) {
      if ((c + 1) * cluster <= disk.size()) (void)disk.read(c * cluster, buf.data(), cluster);
    }
    if (disk.size() > cluster + 16) (void)disk.read(cluster - 8, buf.data(), 16);
    if (disk.size() > 0) (void)disk.read(disk.size() - 1, buf.data(), 1);
    if (!disk.read_only() && disk.size() >= 2 * cluster) {
      std::fill(buf.begin(), buf.end(), 0xa5);
      (void)disk.write(100, buf.data(), 50);
      (void)disk.write(cluster, buf.data(), cluster);
      (void)disk.read(0, buf.data(), cluster);
      (void)disk.discard(0, 2 * cluster);
      (void)disk.flush();
    }
  }
  ::close(fd);
  return 0;
}
