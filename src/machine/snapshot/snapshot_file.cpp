#include "machine/snapshot/snapshot_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>

#include "common/pagemap.h"

namespace nimbus::machine {

namespace {

constexpr char kMagic[8] = {'N', 'I', 'M', 'B', 'S', 'N', 'A', 'P'};
constexpr uint32_t kHeaderSize = 48;
// Sanity limits on what a file may claim.
constexpr uint64_t kMaxRam = 64ull << 30;
constexpr uint64_t kMaxConfig = 1 << 20;
constexpr uint64_t kMaxState = 64 << 20;

bool page_is_zero(const uint8_t* p) {
  uint64_t acc = 0;
  const auto* q = reinterpret_cast<const uint64_t*>(p);
  for (size_t i = 0; i < kSnapshotPageSize / 8; i++) acc |= q[i];
  return acc == 0;
}

// Writes the file and updates a running CRC over everything after the header.
class Out {
 public:
  explicit Out(int fd) : fd_(fd) {}
  Status put(const void* data, size_t len, bool in_payload = true) {
    const auto* p = static_cast<const uint8_t*>(data);
    if (len == 0) return {};  // crc32 of a null buffer would restart the checksum
    if (in_payload) {
      crc_ = crc32_z(crc_, p, len);
      payload_ += len;
    }
    while (len > 0) {
      const ssize_t n = ::write(fd_, p, len);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::error(std::strerror(errno));
      }
      p += n;
      len -= static_cast<size_t>(n);
    }
    return {};
  }
  Status u64(uint64_t v) { return put(&v, 8); }
  void seed(const void* data, size_t len) {
    crc_ = crc32_z(crc_, static_cast<const uint8_t*>(data), len);
  }
  uLong crc() const { return crc_; }
  uint64_t payload() const { return payload_; }

 private:
  int fd_;
  uLong crc_ = crc32_z(0, nullptr, 0);
  uint64_t payload_ = 0;
};

Status write_all(const std::string& tmp, int fd, const std::string& config_json,
                 const std::vector<uint8_t>& state, const uint8_t* ram, uint64_t ram_size,
                 SnapshotWriteStats& stats) {
  const uint64_t pages = ram_size / kSnapshotPageSize;
  std::vector<uint8_t> bitmap((pages + 7) / 8, 0);
  // Pages the guest never touched are zero: skip them without reading (a read could make
  // the host allocate them).
  const auto touched = kSnapshotPageSize == 4096 ? touched_pages(ram, ram_size) : std::nullopt;
  for (uint64_t i = 0; i < pages; i++) {
    if (touched && !(*touched)[i]) continue;
    if (!page_is_zero(ram + i * kSnapshotPageSize)) {
      bitmap[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
      stats.pages_stored++;
    }
  }
  stats.pages_total = pages;

  // The header is rewritten with the sizes and checksum at the end.
  uint8_t header[kHeaderSize] = {};
  Out out(fd);
  // The checksum also covers the header's RAM size and page count.
  const uint64_t covered[2] = {ram_size, stats.pages_stored};
  out.seed(covered, sizeof(covered));
  if (Status s = out.put(header, sizeof(header), false); !s.ok()) return s;
  Status s = out.u64(config_json.size());
  if (s.ok()) s = out.put(config_json.data(), config_json.size());
  if (s.ok()) s = out.u64(state.size());
  if (s.ok()) s = out.put(state.data(), state.size());
  if (s.ok()) s = out.u64(bitmap.size());
  if (s.ok()) s = out.put(bitmap.data(), bitmap.size());
  if (!s.ok()) return s;

  // The pages, compressed as one zstd frame; its length goes before it, so remember where.
  const off_t len_at = lseek(fd, 0, SEEK_CUR);
  uint64_t compressed = 0;
  if (s = out.put(&compressed, 8, false); !s.ok()) return s;
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  if (cctx == nullptr) return Status::error("zstd: out of memory");
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, 2);  // ignored by a single-threaded libzstd
  std::vector<uint8_t> buf(ZSTD_CStreamOutSize());
  uLong pages_crc = crc32_z(0, nullptr, 0);
  auto drain = [&](ZSTD_inBuffer& in, ZSTD_EndDirective mode) -> Status {
    for (;;) {
      ZSTD_outBuffer o{buf.data(), buf.size(), 0};
      const size_t left = ZSTD_compressStream2(cctx, &o, &in, mode);
      if (ZSTD_isError(left)) return Status::error(std::string("zstd: ") + ZSTD_getErrorName(left));
      if (o.pos > 0) {
        pages_crc = crc32_z(pages_crc, buf.data(), o.pos);
        compressed += o.pos;
        if (Status w = out.put(buf.data(), o.pos, false); !w.ok()) return w;
      }
      const bool done = mode == ZSTD_e_end ? left == 0 : in.pos == in.size;
      if (done) return {};
    }
  };
  for (uint64_t i = 0; i < pages && s.ok(); i++) {
    if (!(bitmap[i / 8] >> (i % 8) & 1)) continue;
    ZSTD_inBuffer in{ram + i * kSnapshotPageSize, kSnapshotPageSize, 0};
    s = drain(in, ZSTD_e_continue);
  }
  if (s.ok()) {
    ZSTD_inBuffer in{nullptr, 0, 0};
    s = drain(in, ZSTD_e_end);
  }
  ZSTD_freeCCtx(cctx);
  if (!s.ok()) return s;

  // Patch the frame length, then fold length and frame into the payload CRC in order.
  if (pwrite(fd, &compressed, 8, len_at) != 8) return Status::error(std::strerror(errno));
  uLong crc = crc32_z(out.crc(), reinterpret_cast<const Bytef*>(&compressed), 8);
  crc = crc32_combine(crc, pages_crc, static_cast<z_off_t>(compressed));
  const uint64_t payload = out.payload() + 8 + compressed;

  std::memcpy(header, kMagic, 8);
  const uint32_t version = kSnapshotVersion, hsize = kHeaderSize,
                 crc32v = static_cast<uint32_t>(crc);
  std::memcpy(header + 8, &version, 4);
  std::memcpy(header + 12, &hsize, 4);
  std::memcpy(header + 16, &payload, 8);
  std::memcpy(header + 24, &crc32v, 4);
  std::memcpy(header + 32, &ram_size, 8);
  std::memcpy(header + 40, &stats.pages_stored, 8);
  if (pwrite(fd, header, sizeof(header), 0) != static_cast<ssize_t>(sizeof(header))) {
    return Status::error(std::strerror(errno));
  }
  if (fsync(fd) != 0) return Status::error(std::strerror(errno));
  stats.file_bytes = kHeaderSize + payload;
  (void)tmp;
  return {};
}

}  // namespace

Result<SnapshotWriteStats> write_snapshot(const std::string& path, const std::string& config_json,
                                          const std::vector<uint8_t>& state, const uint8_t* ram,
                                          uint64_t ram_size) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return Status::error(fmt::format("cannot write snapshot '{}': {}", tmp, std::strerror(errno)));
  SnapshotWriteStats stats;
  Status s = write_all(tmp, fd, config_json, state, ram, ram_size, stats);
  if (::close(fd) != 0 && s.ok()) s = Status::error(std::strerror(errno));
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = Status::error(std::strerror(errno));
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return Status::error(fmt::format("cannot write snapshot '{}': {}", path, s.message()));
  }
  return stats;
}

SnapshotFile::~SnapshotFile() {
  if (map_ != nullptr) munmap(const_cast<uint8_t*>(map_), map_len_);
}

Result<std::unique_ptr<SnapshotFile>> SnapshotFile::open(const std::string& path) {
  auto bad = [&path](const std::string& why) {
    return Status::error(fmt::format("snapshot '{}' {}", path, why));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return bad(fmt::format("cannot be read: {}", std::strerror(errno)));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return bad("is not a regular file");
  }
  std::unique_ptr<SnapshotFile> f(new SnapshotFile());
  f->path_ = path;
  f->map_len_ = static_cast<size_t>(st.st_size);
  if (f->map_len_ < kHeaderSize) {
    ::close(fd);
    return bad("is not a Nimbus snapshot (too short)");
  }
  void* m = mmap(nullptr, f->map_len_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return bad(fmt::format("cannot be mapped: {}", std::strerror(errno)));
  f->map_ = static_cast<const uint8_t*>(m);
  const uint8_t* h = f->map_;
  if (std::memcmp(h, kMagic, 8) != 0) return bad("is not a Nimbus snapshot (bad magic)");
  uint32_t version, hsize, crc;
  uint64_t payload;
  std::memcpy(&version, h + 8, 4);
  std::memcpy(&hsize, h + 12, 4);
  std::memcpy(&payload, h + 16, 8);
  std::memcpy(&crc, h + 24, 4);
  std::memcpy(&f->ram_size_, h + 32, 8);
  std::memcpy(&f->pages_stored_, h + 40, 8);
  if (version != kSnapshotVersion) {
    return bad(fmt::format("has format version {}; this Nimbus reads version {}", version,
                           kSnapshotVersion));
  }
  if (hsize != kHeaderSize) return bad("has a bad header");
  if (payload != f->map_len_ - kHeaderSize) {
    return bad(fmt::format("is truncated or has trailing data ({} payload bytes, header says {})",
                           f->map_len_ - kHeaderSize, payload));
  }
  const uint8_t* p = h + kHeaderSize;
  if (static_cast<uint32_t>(crc32_z(crc32_z(crc32_z(0, nullptr, 0), h + 32, 16), p, payload)) !=
      crc) {
    return bad("is corrupt (checksum mismatch)");
  }
  if (f->ram_size_ == 0 || f->ram_size_ > kMaxRam || f->ram_size_ % kSnapshotPageSize != 0) {
    return bad("has an invalid RAM size");
  }
  // The four length-prefixed parts.
  const uint8_t* end = p + payload;
  auto part = [&](uint64_t max, const uint8_t*& data, uint64_t& len) {
    if (end - p < 8) return false;
    std::memcpy(&len, p, 8);
    p += 8;
    if (len > max || len > static_cast<uint64_t>(end - p)) return false;
    data = p;
    p += len;
    return true;
  };
  const uint8_t* config;
  const uint8_t* state;
  uint64_t config_len, state_len;
  const uint64_t pages = f->ram_size_ / kSnapshotPageSize;
  if (!part(kMaxConfig, config, config_len) || !part(kMaxState, state, state_len) ||
      !part((pages + 7) / 8, f->bitmap_, f->bitmap_len_) ||
      !part(payload, f->pages_, f->pages_len_) || p != end || f->bitmap_len_ != (pages + 7) / 8) {
    return bad("is malformed (bad section lengths)");
  }
  uint64_t set = 0;
  for (uint64_t i = 0; i < pages; i++) set += (f->bitmap_[i / 8] >> (i % 8)) & 1;
  if (set != f->pages_stored_) return bad("is malformed (page count does not match its bitmap)");
  f->config_json_.assign(reinterpret_cast<const char*>(config), config_len);
  f->state_.assign(state, state + state_len);
  return f;
}

Status SnapshotFile::read_ram(uint8_t* ram) const {
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  if (dctx == nullptr) return Status::error("zstd: out of memory");
  ZSTD_inBuffer in{pages_, pages_len_, 0};
  const uint64_t pages = ram_size_ / kSnapshotPageSize;
  Status s;
  size_t last = 1;
  for (uint64_t i = 0; i < pages && s.ok(); i++) {
    if (!((bitmap_[i / 8] >> (i % 8)) & 1)) continue;
    ZSTD_outBuffer out{ram + i * kSnapshotPageSize, kSnapshotPageSize, 0};
    while (out.pos < out.size) {
      const size_t before_in = in.pos, before_out = out.pos;
      last = ZSTD_decompressStream(dctx, &out, &in);
      if (ZSTD_isError(last)) {
        s = Status::error(
            fmt::format("snapshot '{}': RAM data is corrupt: {}", path_, ZSTD_getErrorName(last)));
        break;
      }
      if (in.pos == before_in && out.pos == before_out) {
        s = Status::error(fmt::format("snapshot '{}': RAM data ends early", path_));
        break;
      }
    }
  }
  // The frame's epilogue (last block header, checksum) produces no output.
  while (s.ok() && in.pos < in.size) {
    ZSTD_outBuffer none{nullptr, 0, 0};
    const size_t before = in.pos;
    last = ZSTD_decompressStream(dctx, &none, &in);
    if (ZSTD_isError(last) || in.pos == before) break;
  }
  if (s.ok() && (in.pos != in.size))
    s = Status::error(fmt::format("snapshot '{}': RAM data has trailing bytes", path_));
  ZSTD_freeDCtx(dctx);
  return s;
}

}  // namespace nimbus::machine
