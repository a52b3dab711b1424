#include "backends/block/disk_convert.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "backends/block/block_backend.h"
#include "backends/block/qcow2.h"

namespace nimbus::backends {

namespace {

bool all_zero(const uint8_t* p, size_t n) {
  // Word at a time: flattening reads the whole virtual disk, most of it often zeros.
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w != 0) return false;
  }
  for (; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

}  // namespace

Result<FlattenStats> flatten_to_qcow2(const std::string& source, const std::string& dest,
                                      uint64_t cluster_size) {
  DiskOptions o;
  o.path = source;
  o.read_only = true;
  auto src = open_disk(o);
  if (!src.ok()) return src.status();
  FlattenStats stats;
  stats.virtual_size = (*src)->size();
  // Claimed with O_EXCL first: create_qcow2 would truncate whatever is there.
  const int fd = ::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return Status::error(fmt::format("cannot create '{}': {}", dest, std::strerror(errno)));
  ::close(fd);
  auto fail = [&](const Status& s) {
    ::unlink(dest.c_str());
    return s;
  };
  if (Status s = create_qcow2(dest, stats.virtual_size, cluster_size); !s.ok()) return fail(s);
  auto out = Qcow2Image::open(dest, false);
  if (!out.ok()) return fail(out.status());
  // A megabyte per read, examined a cluster at a time.
  const uint64_t chunk = std::max<uint64_t>(cluster_size, 1 << 20);
  std::vector<uint8_t> buf(chunk);
  for (uint64_t off = 0; off < stats.virtual_size; off += chunk) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk, stats.virtual_size - off));
    if (Status s = (*src)->read(off, buf.data(), n); !s.ok()) return fail(s);
    for (size_t in = 0; in < n; in += cluster_size) {
      const size_t len = static_cast<size_t>(std::min<uint64_t>(cluster_size, n - in));
      if (all_zero(buf.data() + in, len)) continue;
      if (Status s = (*out)->write(off + in, buf.data() + in, len); !s.ok()) return fail(s);
      stats.clusters_written++;
    }
  }
  if (Status s = (*out)->flush(); !s.ok()) return fail(s);
  out->reset();
  struct stat st {};
  if (::stat(dest.c_str(), &st) == 0) stats.file_size = static_cast<uint64_t>(st.st_size);
  return stats;
}

}  // namespace nimbus::backends
