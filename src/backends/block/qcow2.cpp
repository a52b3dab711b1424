#include "backends/block/qcow2.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "backends/block/disk_lock.h"
#include "backends/block/raw_file.h"

namespace nimbus::backends {

namespace {

// qcow2.txt, "Header".
constexpr uint32_t kMagic = 0x514649fb;  // "QFI\xfb"
constexpr size_t kHeaderV2Size = 72;
constexpr size_t kHeaderV3Size = 104;
constexpr uint32_t kMinClusterBits = 9;
constexpr uint32_t kMaxClusterBits = 21;
// Incompatible feature bits.
constexpr uint64_t kIncompatDirty = 1ull << 0;
constexpr uint64_t kIncompatCorrupt = 1ull << 1;
constexpr uint64_t kIncompatDataFile = 1ull << 2;
constexpr uint64_t kIncompatCompression = 1ull << 3;
constexpr uint64_t kIncompatExtendedL2 = 1ull << 4;
// Header extension types.
constexpr uint32_t kExtEnd = 0;
constexpr uint32_t kExtBackingFormat = 0xE2792ACA;
// Table entries ("Cluster mapping").
constexpr uint64_t kOffsetMask = 0x00fffffffffffe00ull;  // bits 9-55 of L1 and L2 entries
constexpr uint64_t kCopied = 1ull << 63;                 // refcount is exactly one
constexpr uint64_t kCompressed = 1ull << 62;
constexpr uint64_t kZero = 1ull << 0;  // version 3: the cluster reads as zeros
constexpr uint64_t kReftableMask = ~0x1ffull;
// Limits against hostile images (the same as QEMU's): memory for tables stays bounded.
constexpr uint64_t kMaxL1Bytes = 32ull << 20;
constexpr uint64_t kMaxReftableBytes = 8ull << 20;
constexpr uint64_t kMaxBackingNameSize = 1023;
constexpr uint64_t kCacheBytes = 32ull << 20;
constexpr uint64_t kMaxAllocationScan = 1ull << 20;

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint64_t be64(const uint8_t* p) { return (uint64_t{be32(p)} << 32) | be32(p + 4); }
void put_be32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
void put_be64(uint8_t* p, uint64_t v) {
  put_be32(p, static_cast<uint32_t>(v >> 32));
  put_be32(p + 4, static_cast<uint32_t>(v));
}
uint64_t div_round_up(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

// Refcount entries of 8, 16, 32 or 64 bits, big-endian.
uint64_t get_refcount_entry(const uint8_t* block, uint64_t index, uint32_t bits) {
  const uint8_t* p = block + index * (bits / 8);
  uint64_t v = 0;
  for (uint32_t i = 0; i < bits / 8; ++i) v = (v << 8) | p[i];
  return v;
}
void put_refcount_entry(uint8_t* block, uint64_t index, uint32_t bits, uint64_t value) {
  uint8_t* p = block + index * (bits / 8);
  for (uint32_t i = 0; i < bits / 8; ++i) p[i] = static_cast<uint8_t>(value >> (bits - 8 - 8 * i));
}

Result<DiskFormat> parse_format_name(const std::string& name) {
  if (name.empty()) return DiskFormat::kAuto;
  if (name == "raw") return DiskFormat::kRaw;
  if (name == "qcow2") return DiskFormat::kQcow2;
  return Status::error(fmt::format("backing file format '{}' is not supported (raw, qcow2)", name));
}

}  // namespace

std::string resolve_backing_path(const std::string& image_path, const std::string& backing) {
  std::filesystem::path b(backing);
  if (b.is_absolute()) return backing;
  std::filesystem::path dir = std::filesystem::path(image_path).parent_path();
  return dir.empty() ? backing : (dir / b).string();
}

Result<std::unique_ptr<Qcow2Image>> Qcow2Image::open(const std::string& path, bool read_only,
                                                     const BackingChain* chain) {
  std::unique_ptr<Qcow2Image> image(new Qcow2Image());
  image->path_ = path;
  image->read_only_ = read_only;
  // O_NONBLOCK: a FIFO must not hang the open (see RawFile::open).
  image->fd_ = ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
  if (image->fd_ < 0) {
    return Status::error(
        fmt::format("cannot open disk image '{}': {}", path, std::strerror(errno)));
  }
  ::fcntl(image->fd_, F_SETFL, ::fcntl(image->fd_, F_GETFL) & ~O_NONBLOCK);
  // Before anything is read: a writer elsewhere could change what we are about to parse.
  if (Status s = lock_disk_image(image->fd_, path, !read_only); !s.ok()) return s;
  if (Status s = image->load(chain != nullptr ? *chain : BackingChain{}); !s.ok()) return s;
  return image;
}

Qcow2Image::~Qcow2Image() {
  if (fd_ >= 0) ::close(fd_);
}

Status Qcow2Image::fail(const std::string& what) const {
  return Status::error(fmt::format("qcow2 image '{}': {}", path_, what));
}

Status Qcow2Image::load(const BackingChain& chain) {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return fail(fmt::format("cannot stat: {}", std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) return fail("not a regular file");
  file_size_ = static_cast<uint64_t>(st.st_size);
  if (file_size_ < kHeaderV2Size) return fail("truncated header");
  uint8_t h[kHeaderV3Size + 8] = {};
  if (Status s = pread_full(fd_, path_, 0, h, sizeof(h)); !s.ok()) return s;
  if (be32(h) != kMagic) return fail("bad magic (not a qcow2 image)");
  version_ = be32(h + 4);
  if (version_ != 2 && version_ != 3) {
    return fail(fmt::format("unsupported version {} (2 and 3 are supported)", version_));
  }
  uint64_t backing_offset = be64(h + 8);
  uint32_t backing_size = be32(h + 16);
  cluster_bits_ = be32(h + 20);
  if (cluster_bits_ < kMinClusterBits || cluster_bits_ > kMaxClusterBits) {
    return fail(fmt::format("cluster_bits {} out of range ({}..{})", cluster_bits_, kMinClusterBits,
                            kMaxClusterBits));
  }
  cluster_size_ = 1ull << cluster_bits_;
  l2_entries_ = cluster_size_ / 8;
  size_ = be64(h + 24);
  if (be32(h + 32) != 0) return fail("encrypted images are not supported");
  uint32_t l1_size = be32(h + 36);
  l1_offset_ = be64(h + 40);
  reftable_offset_ = be64(h + 48);
  uint32_t reftable_clusters = be32(h + 56);
  nb_snapshots_ = be32(h + 60);

  uint32_t header_length = kHeaderV2Size;
  uint32_t refcount_order = 4;
  if (version_ == 3) {
    if (file_size_ < kHeaderV3Size) return fail("truncated header");
    uint64_t incompatible = be64(h + 72);
    uint64_t autoclear = be64(h + 88);
    refcount_order = be32(h + 96);
    header_length = be32(h + 100);
    if (header_length < kHeaderV3Size || header_length > cluster_size_) {
      return fail(fmt::format("bad header length {}", header_length));
    }
    if (incompatible & kIncompatCorrupt) {
      return fail("marked corrupt; repair it with 'qemu-img check -r all'");
    }
    if (incompatible & kIncompatDataFile) return fail("external data files are not supported");
    if (incompatible & kIncompatExtendedL2) return fail("extended L2 entries are not supported");
    uint64_t known = kIncompatDirty | kIncompatCompression;
    if (incompatible & ~(known | kIncompatCorrupt | kIncompatDataFile | kIncompatExtendedL2)) {
      return fail(fmt::format("unknown incompatible features 0x{:x}", incompatible & ~known));
    }
    if ((incompatible & kIncompatDirty) && !read_only_) {
      return fail(
          "was not closed cleanly (dirty bit set); repair it with "
          "'qemu-img check -r all' or open it read-only");
    }
    if (incompatible & kIncompatCompression) {
      if (header_length <= kHeaderV3Size) return fail("compression type missing from header");
      compression_type_ = h[104];
    }
    // Autoclear features (e.g. persistent bitmaps) become stale once we write: a writer
    // that does not maintain them clears the bits (qcow2.txt, "autoclear_features").
    if (autoclear != 0 && !read_only_) {
      uint8_t zero[8] = {};
      if (Status s = pwrite_full(fd_, path_, 88, zero, 8); !s.ok()) return s;
    }
  }
  if (refcount_order < 3 || refcount_order > 6) {
    return fail(
        fmt::format("refcount_order {} is not supported (the refcount width must be 8 to "
                    "64 bits: orders 3 to 6)",
                    refcount_order));
  }
  refcount_bits_ = 1u << refcount_order;
  refblock_entries_ = cluster_size_ * 8 / refcount_bits_;
  if (nb_snapshots_ != 0 && !read_only_) {
    return fail(fmt::format("has {} internal snapshot(s); such images are opened read-only only",
                            nb_snapshots_));
  }

  // L1 table: must cover the virtual size and lie inside the file.
  if (size_ > (1ull << 62)) return fail(fmt::format("virtual size {} is too large", size_));
  uint64_t l2_span = cluster_size_ * l2_entries_;
  uint64_t l1_needed = div_round_up(size_, l2_span);
  if (uint64_t{l1_size} * 8 > kMaxL1Bytes)
    return fail(fmt::format("L1 table too large ({} entries)", l1_size));
  if (l1_size < l1_needed) {
    return fail(fmt::format("L1 table ({} entries) too small for the virtual size", l1_size));
  }
  if (l1_size > 0 && (l1_offset_ == 0 || l1_offset_ % cluster_size_ != 0 ||
                      l1_offset_ > file_size_ || uint64_t{l1_size} * 8 > file_size_ - l1_offset_)) {
    return fail(fmt::format("L1 table at offset {} is outside the file or misaligned", l1_offset_));
  }
  std::vector<uint8_t> raw(uint64_t{l1_size} * 8);
  if (Status s = pread_full(fd_, path_, l1_offset_, raw.data(), raw.size()); !s.ok()) return s;
  l1_.resize(l1_size);
  for (uint32_t i = 0; i < l1_size; ++i) l1_[i] = be64(raw.data() + i * 8);

  // Refcount table.
  uint64_t reftable_bytes = uint64_t{reftable_clusters} * cluster_size_;
  if (reftable_clusters == 0 || reftable_bytes > kMaxReftableBytes) {
    return fail(fmt::format("bad refcount table size ({} clusters)", reftable_clusters));
  }
  if (reftable_offset_ == 0 || reftable_offset_ % cluster_size_ != 0 ||
      reftable_offset_ > file_size_ || reftable_bytes > file_size_ - reftable_offset_) {
    return fail(fmt::format("refcount table at offset {} is outside the file or misaligned",
                            reftable_offset_));
  }
  raw.assign(reftable_bytes, 0);
  if (Status s = pread_full(fd_, path_, reftable_offset_, raw.data(), raw.size()); !s.ok())
    return s;
  reftable_.resize(reftable_bytes / 8);
  for (size_t i = 0; i < reftable_.size(); ++i) reftable_[i] = be64(raw.data() + i * 8);

  // The rest of the header cluster: extensions and the backing file name.
  std::vector<uint8_t> first(cluster_size_);
  if (Status s = pread_full(fd_, path_, 0, first.data(), first.size()); !s.ok()) return s;
  if (version_ == 3) {
    uint64_t off = header_length;
    while (off + 8 <= cluster_size_) {
      uint32_t type = be32(first.data() + off);
      uint32_t len = be32(first.data() + off + 4);
      if (type == kExtEnd) break;
      if (len > cluster_size_ - off - 8)
        return fail("header extension overflows the header cluster");
      if (type == kExtBackingFormat) {
        backing_format_.assign(reinterpret_cast<const char*>(first.data() + off + 8), len);
      }
      off += 8 + div_round_up(len, 8) * 8;
    }
  }
  if (backing_offset != 0 && backing_size != 0) {
    if (backing_size > kMaxBackingNameSize || backing_offset > cluster_size_ ||
        backing_size > cluster_size_ - backing_offset ||
        backing_offset + backing_size > file_size_) {
      return fail("backing file name is outside the header cluster");
    }
    backing_file_.assign(reinterpret_cast<const char*>(first.data() + backing_offset),
                         backing_size);
  }
  next_free_cluster_ = div_round_up(file_size_, cluster_size_);
  if (!read_only_) {
    if (Status s = map_metadata(); !s.ok()) return s;
  }
  if (backing_file_.empty()) return Status();
  return open_backing(chain, static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino));
}

Status Qcow2Image::open_backing(const BackingChain& chain, uint64_t dev, uint64_t ino) {
  BackingChain below = chain;
  below.above.emplace_back(dev, ino);
  if (below.above.size() >= kMaxBackingChain) {
    return fail(fmt::format("backing chain longer than {} images", kMaxBackingChain));
  }
  auto format = parse_format_name(backing_format_);
  if (!format.ok()) return fail(format.message());
  DiskOptions options;
  options.path = resolve_backing_path(path_, backing_file_);
  options.format = *format;
  options.read_only = true;
  // A loop is found before the open: opening an image of the chain again would also
  // conflict with its own lock and be reported as "in use".
  struct stat st {};
  if (::stat(options.path.c_str(), &st) == 0) {
    for (const auto& [d, i] : below.above) {
      if (d == static_cast<uint64_t>(st.st_dev) && i == static_cast<uint64_t>(st.st_ino)) {
        return fail(fmt::format("backing file '{}' is already in the backing chain (a loop)",
                                backing_file_));
      }
    }
  }
  auto backing = open_disk(options, below);
  if (!backing.ok()) {
    // Said once, by the top image: a message nested per level would repeat the chain.
    if (!chain.above.empty()) return backing.status();
    return fail(fmt::format("backing file: {}", backing.message()));
  }
  backing_ = std::move(*backing);
  return Status();
}

// --- Metadata map ----------------------------------------------------------------------

Status Qcow2Image::add_metadata(uint64_t offset, uint64_t bytes, const std::string& what) {
  if (offset % cluster_size_ != 0 || offset >= file_size_ || bytes == 0) {
    return fail(
        fmt::format("corrupt image: the {} at host offset {} is outside the file or "
                    "misaligned; it can be opened read-only only",
                    what, offset));
  }
  if (const std::string* other = metadata_at(offset, bytes)) {
    return fail(
        fmt::format("corrupt image: the {} at host offset {} overlaps the {}; it can be "
                    "opened read-only only",
                    what, offset, *other));
  }
  uint64_t first = offset >> cluster_bits_;
  metadata_[first] = {first + div_round_up(bytes, cluster_size_), what};
  return Status();
}

const std::string* Qcow2Image::metadata_at(uint64_t offset, uint64_t bytes) const {
  if (bytes == 0) return nullptr;
  uint64_t first = offset >> cluster_bits_;
  uint64_t last = (offset + bytes - 1) >> cluster_bits_;
  auto it = metadata_.upper_bound(last);  // the first range starting after `last`
  if (it == metadata_.begin()) return nullptr;
  --it;  // the last range starting at or before `last`
  return it->second.first > first ? &it->second.second : nullptr;
}

// The host bytes an L2 entry's data occupies (compressed data may span two clusters).
std::pair<uint64_t, uint64_t> Qcow2Image::data_range(uint64_t entry) const {
  if (entry & kCompressed) {
    uint32_t x = 62 - (cluster_bits_ - 8);
    uint64_t host = entry & ((1ull << x) - 1);
    return {host, (((entry & ((1ull << 62) - 1)) >> x) + 1) * 512 - (host & 511)};
  }
  uint64_t host = entry & kOffsetMask;
  return {host, host == 0 ? 0 : cluster_size_};
}

Status Qcow2Image::check_data_cluster(uint64_t entry, const char* doing) const {
  auto [host, bytes] = data_range(entry);
  if (const std::string* what = metadata_at(host, bytes)) {
    return fail(
        fmt::format("I/O error: {} refused: the data cluster at host offset {} overlaps "
                    "the {} (corrupt image)",
                    doing, host, *what));
  }
  return Status();
}

// Every metadata cluster of a writable image, each inside the file and in no other
// structure; then (within the scan budget) no data cluster may point into one.
Status Qcow2Image::map_metadata() {
  metadata_.clear();
  if (Status s = add_metadata(0, cluster_size_, "header"); !s.ok()) return s;
  if (!l1_.empty()) {
    if (Status s = add_metadata(l1_offset_, l1_.size() * 8, "L1 table"); !s.ok()) return s;
  }
  if (Status s = add_metadata(reftable_offset_, reftable_.size() * 8, "refcount table"); !s.ok())
    return s;
  for (size_t i = 0; i < reftable_.size(); ++i) {
    uint64_t offset = reftable_[i] & kReftableMask;
    if (offset == 0) continue;
    if (Status s = add_metadata(offset, cluster_size_, fmt::format("refcount block {}", i));
        !s.ok())
      return s;
  }
  std::vector<std::pair<uint64_t, uint64_t>> l2_tables;  // (host offset, L1 index)
  for (size_t i = 0; i < l1_.size(); ++i) {
    uint64_t offset = l1_[i] & kOffsetMask;
    if (offset == 0) continue;
    if (Status s = add_metadata(
            offset, cluster_size_,
            fmt::format("L2 table of guest offset {}", i * l2_entries_ * cluster_size_));
        !s.ok()) {
      return s;
    }
    l2_tables.emplace_back(offset, i);
  }
  uint64_t budget = l2_scan_budget_.load();
  std::vector<uint8_t> raw(cluster_size_);
  for (auto [offset, l1_index] : l2_tables) {
    if (budget < cluster_size_) break;
    budget -= cluster_size_;
    if (Status s = pread_full(fd_, path_, offset, raw.data(), raw.size()); !s.ok()) return s;
    for (uint64_t i = 0; i < l2_entries_; ++i) {
      auto [host, bytes] = data_range(be64(raw.data() + i * 8));
      if (const std::string* what = metadata_at(host, bytes)) {
        return fail(
            fmt::format("corrupt image: guest offset {} is mapped to host offset {}, inside the "
                        "{}; it can be opened read-only only",
                        (l1_index * l2_entries_ + i) << cluster_bits_, host, *what));
      }
    }
  }
  return Status();
}

// --- Reading --------------------------------------------------------------------------

Result<std::vector<uint64_t>*> Qcow2Image::load_l2(uint64_t offset) {
  auto it = l2_cache_.find(offset);
  if (it != l2_cache_.end()) return &it->second;
  if (offset % cluster_size_ != 0 || offset >= file_size_) {
    return fail(
        fmt::format("I/O error: L2 table offset {} is outside the file or misaligned", offset));
  }
  std::vector<uint8_t> raw(cluster_size_);
  if (Status s = pread_full(fd_, path_, offset, raw.data(), raw.size()); !s.ok()) return s;
  if ((l2_cache_.size() + 1) * cluster_size_ > kCacheBytes) l2_cache_.clear();
  std::vector<uint64_t>& table = l2_cache_[offset];
  table.resize(l2_entries_);
  for (uint64_t i = 0; i < l2_entries_; ++i) table[i] = be64(raw.data() + i * 8);
  return &table;
}

Result<uint64_t> Qcow2Image::l2_entry(uint64_t vcluster) {
  uint64_t l1_index = vcluster / l2_entries_;
  if (l1_index >= l1_.size()) return uint64_t{0};
  uint64_t l2_offset = l1_[l1_index] & kOffsetMask;
  if (l2_offset == 0) return uint64_t{0};
  auto table = load_l2(l2_offset);
  if (!table.ok()) return table.status();
  return (**table)[vcluster % l2_entries_];
}

Status Qcow2Image::read_unallocated(uint64_t guest_offset, uint8_t* buf, size_t len) {
  size_t from_backing = 0;
  if (backing_ && guest_offset < backing_->size()) {
    from_backing = static_cast<size_t>(std::min<uint64_t>(len, backing_->size() - guest_offset));
    if (Status s = backing_->read(guest_offset, buf, from_backing); !s.ok()) return s;
  }
  std::memset(buf + from_backing, 0, len - from_backing);
  return Status();
}

// qcow2.txt, "Compressed Clusters Descriptor": the host offset in the low x bits, the
// number of additional 512-byte sectors above, x = 62 - (cluster_bits - 8).
Status Qcow2Image::read_compressed(uint64_t entry, uint8_t* cluster) {
  if (compression_type_ != 0) {
    return fail(fmt::format("I/O error: compression type {} is not supported", compression_type_));
  }
  uint32_t x = 62 - (cluster_bits_ - 8);
  uint64_t host = entry & ((1ull << x) - 1);
  uint64_t sectors = (entry & ((1ull << 62) - 1)) >> x;
  uint64_t csize = (sectors + 1) * 512 - (host & 511);
  if (host >= file_size_) {
    return fail(fmt::format("I/O error: compressed cluster at {} is outside the file", host));
  }
  csize = std::min(csize, file_size_ - host);
  std::vector<uint8_t> in(csize);
  if (Status s = pread_full(fd_, path_, host, in.data(), in.size()); !s.ok()) return s;
  z_stream z{};
  if (inflateInit2(&z, -12) != Z_OK) return fail("I/O error: zlib initialisation failed");
  z.next_in = in.data();
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = cluster;
  z.avail_out = static_cast<uInt>(cluster_size_);
  int ret = inflate(&z, Z_FINISH);
  bool complete = z.avail_out == 0 && (ret == Z_STREAM_END || ret == Z_BUF_ERROR || ret == Z_OK);
  inflateEnd(&z);
  if (!complete) return fail("I/O error: a compressed cluster does not decompress");
  return Status();
}

Status Qcow2Image::read_in_cluster(uint64_t vcluster, uint64_t in, uint8_t* buf, size_t len) {
  auto e = l2_entry(vcluster);
  if (!e.ok()) return e.status();
  uint64_t entry = *e;
  if (entry & kCompressed) {
    std::vector<uint8_t> cluster(cluster_size_);
    if (Status s = read_compressed(entry, cluster.data()); !s.ok()) return s;
    std::memcpy(buf, cluster.data() + in, len);
    return Status();
  }
  if (version_ >= 3 && (entry & kZero)) {
    std::memset(buf, 0, len);
    return Status();
  }
  uint64_t host = entry & kOffsetMask;
  if (host == 0) return read_unallocated((vcluster << cluster_bits_) + in, buf, len);
  if (host % cluster_size_ != 0 || host >= file_size_) {
    return fail(
        fmt::format("I/O error: data cluster at {} is outside the file or misaligned", host));
  }
  return pread_full(fd_, path_, host + in, buf, len);
}

Status Qcow2Image::read(uint64_t offset, uint8_t* buf, size_t len) {
  if (offset > size_ || len > size_ - offset) {
    return fail(fmt::format("read at offset {} length {} is past the end", offset, len));
  }
  while (len > 0) {
    uint64_t in = offset & (cluster_size_ - 1);
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, cluster_size_ - in));
    if (Status s = read_in_cluster(offset >> cluster_bits_, in, buf, n); !s.ok()) return s;
    offset += n;
    buf += n;
    len -= n;
  }
  return Status();
}

// --- Refcounts and allocation -----------------------------------------------------------

Status Qcow2Image::pwrite_meta(uint64_t offset, const uint8_t* buf, size_t len) {
  if (Status s = pwrite_full(fd_, path_, offset, buf, len); !s.ok()) return s;
  file_size_ = std::max(file_size_, offset + len);
  return Status();
}

Result<std::vector<uint8_t>*> Qcow2Image::load_refblock(uint64_t offset) {
  auto it = refblock_cache_.find(offset);
  if (it != refblock_cache_.end()) return &it->second;
  if (offset % cluster_size_ != 0 || offset >= file_size_) {
    return fail(
        fmt::format("I/O error: refcount block at {} is outside the file or misaligned", offset));
  }
  if ((refblock_cache_.size() + 1) * cluster_size_ > kCacheBytes) refblock_cache_.clear();
  std::vector<uint8_t>& block = refblock_cache_[offset];
  block.resize(cluster_size_);
  if (Status s = pread_full(fd_, path_, offset, block.data(), block.size()); !s.ok()) {
    refblock_cache_.erase(offset);
    return s;
  }
  return &block;
}

Result<uint64_t> Qcow2Image::refcount(uint64_t host_cluster) {
  uint64_t index = host_cluster / refblock_entries_;
  if (index >= reftable_.size()) return uint64_t{0};
  uint64_t block_offset = reftable_[index] & kReftableMask;
  if (block_offset == 0) return uint64_t{0};
  auto block = load_refblock(block_offset);
  if (!block.ok()) return block.status();
  return get_refcount_entry((*block)->data(), host_cluster % refblock_entries_, refcount_bits_);
}

Status Qcow2Image::set_refcount(uint64_t host_cluster, uint64_t value) {
  uint64_t index = host_cluster / refblock_entries_;
  uint64_t block_offset = index < reftable_.size() ? reftable_[index] & kReftableMask : 0;
  if (block_offset == 0) return fail("I/O error: no refcount block for a cluster in use");
  auto block = load_refblock(block_offset);
  if (!block.ok()) return block.status();
  uint64_t i = host_cluster % refblock_entries_;
  put_refcount_entry((*block)->data(), i, refcount_bits_, value);
  size_t width = refcount_bits_ / 8;
  return pwrite_meta(block_offset + i * width, (*block)->data() + i * width, width);
}

// Allocates one cluster at the end of the file. A missing refcount block is placed in the
// first free cluster it covers, and counts itself.
Result<uint64_t> Qcow2Image::alloc_cluster() {
  uint64_t skipped = 0;
  for (;;) {
    uint64_t cluster = next_free_cluster_;
    uint64_t index = cluster / refblock_entries_;
    if (index >= reftable_.size()) return fail("image full: refcount table");
    if (metadata_at(cluster << cluster_bits_, cluster_size_) != nullptr) {
      ++next_free_cluster_;  // never handed out, whatever its refcount says
      continue;
    }
    if ((reftable_[index] & kReftableMask) == 0) {
      uint64_t block_offset = cluster << cluster_bits_;
      std::vector<uint8_t> block(cluster_size_, 0);
      put_refcount_entry(block.data(), cluster % refblock_entries_, refcount_bits_, 1);
      if (Status s = pwrite_meta(block_offset, block.data(), block.size()); !s.ok()) return s;
      if ((refblock_cache_.size() + 1) * cluster_size_ > kCacheBytes) refblock_cache_.clear();
      refblock_cache_[block_offset] = std::move(block);
      uint8_t entry[8];
      put_be64(entry, block_offset);
      if (Status s = pwrite_meta(reftable_offset_ + index * 8, entry, 8); !s.ok()) return s;
      reftable_[index] = block_offset;
      metadata_[cluster] = {cluster + 1, fmt::format("refcount block {}", index)};
      ++next_free_cluster_;
      continue;
    }
    auto rc = refcount(cluster);
    if (!rc.ok()) return rc.status();
    ++next_free_cluster_;
    if (*rc != 0) {
      // Past the end of the file, a nonzero refcount is a cluster leaked by an allocation
      // whose write failed: skip it, but bound the scan in a damaged image.
      if (++skipped > kMaxAllocationScan) {
        return fail("I/O error: no free cluster found (damaged refcounts?)");
      }
      continue;
    }
    if (Status s = set_refcount(cluster, 1); !s.ok()) return s;
    return cluster << cluster_bits_;
  }
}

// Drops this image's reference to the host cluster(s) of an L2 entry that is being
// replaced.
Status Qcow2Image::release_entry(uint64_t entry) {
  uint64_t first, last;
  if (entry & kCompressed) {
    uint32_t x = 62 - (cluster_bits_ - 8);
    uint64_t host = entry & ((1ull << x) - 1);
    uint64_t sectors = (entry & ((1ull << 62) - 1)) >> x;
    uint64_t csize = (sectors + 1) * 512 - (host & 511);
    first = host >> cluster_bits_;
    last = (host + csize - 1) >> cluster_bits_;
  } else {
    uint64_t host = entry & kOffsetMask;
    if (host == 0) return Status();
    first = last = host >> cluster_bits_;
  }
  for (uint64_t c = first; c <= last; ++c) {
    auto rc = refcount(c);
    if (!rc.ok()) return rc.status();
    if (*rc == 0) continue;  // already inconsistent: do not underflow
    if (Status s = set_refcount(c, *rc - 1); !s.ok()) return s;
  }
  return Status();
}

// --- Writing ----------------------------------------------------------------------------

Status Qcow2Image::set_l2_entry(uint64_t vcluster, uint64_t entry) {
  uint64_t l1_index = vcluster / l2_entries_;
  if (l1_index >= l1_.size()) return fail("I/O error: write beyond the L1 table");
  uint64_t l2_offset = l1_[l1_index] & kOffsetMask;
  if (l2_offset == 0) {
    auto allocated = alloc_cluster();
    if (!allocated.ok()) return allocated.status();
    l2_offset = *allocated;
    metadata_[l2_offset >> cluster_bits_] = {
        (l2_offset >> cluster_bits_) + 1,
        fmt::format("L2 table of guest offset {}", l1_index * l2_entries_ * cluster_size_)};
    std::vector<uint8_t> zeros(cluster_size_, 0);
    if (Status s = pwrite_meta(l2_offset, zeros.data(), zeros.size()); !s.ok()) return s;
    if ((l2_cache_.size() + 1) * cluster_size_ > kCacheBytes) l2_cache_.clear();
    l2_cache_[l2_offset].assign(l2_entries_, 0);
    uint8_t raw[8];
    put_be64(raw, l2_offset | kCopied);
    if (Status s = pwrite_meta(l1_offset_ + l1_index * 8, raw, 8); !s.ok()) return s;
    l1_[l1_index] = l2_offset | kCopied;
  }
  auto table = load_l2(l2_offset);
  if (!table.ok()) return table.status();
  uint64_t i = vcluster % l2_entries_;
  uint8_t raw[8];
  put_be64(raw, entry);
  if (Status s = pwrite_meta(l2_offset + i * 8, raw, 8); !s.ok()) return s;
  (**table)[i] = entry;
  return Status();
}

Status Qcow2Image::write_in_cluster(uint64_t vcluster, uint64_t in, const uint8_t* buf,
                                    size_t len) {
  auto e = l2_entry(vcluster);
  if (!e.ok()) return e.status();
  uint64_t entry = *e;
  // Neither written in place nor released: either would damage the metadata it points at.
  if (Status s = check_data_cluster(entry, "write"); !s.ok()) return s;
  uint64_t host = entry & kOffsetMask;
  bool compressed = entry & kCompressed;
  bool zero = version_ >= 3 && (entry & kZero);
  if (!compressed && !zero && host != 0 && (entry & kCopied)) {
    if (host % cluster_size_ != 0 || host >= file_size_) {
      return fail(
          fmt::format("I/O error: data cluster at {} is outside the file or misaligned", host));
    }
    if (Status s = pwrite_full(fd_, path_, host + in, buf, len); !s.ok()) return s;
    file_size_ = std::max(file_size_, host + in + len);
    return Status();
  }
  // Copy-on-write: the whole new cluster is the old contents (backing file, zeros or the
  // decompressed cluster) with the new bytes on top.
  std::vector<uint8_t> cluster(cluster_size_);
  if (len < cluster_size_) {
    if (Status s = read_in_cluster(vcluster, 0, cluster.data(), cluster.size()); !s.ok()) return s;
  }
  std::memcpy(cluster.data() + in, buf, len);
  // A version-3 zero cluster may keep its (preallocated) host cluster.
  bool reuse = zero && !compressed && host != 0 && (entry & kCopied) && host % cluster_size_ == 0;
  uint64_t target = host;
  if (!reuse) {
    auto allocated = alloc_cluster();
    if (!allocated.ok()) return allocated.status();
    target = *allocated;
  }
  Status s = pwrite_meta(target, cluster.data(), cluster.size());
  if (s.ok()) s = set_l2_entry(vcluster, target | kCopied);
  if (!s.ok()) {
    // Best effort: give the new cluster back rather than leak it (e.g. a full host disk).
    if (!reuse) (void)set_refcount(target >> cluster_bits_, 0);
    return s;
  }
  if (!reuse) return release_entry(entry);
  return Status();
}

Status Qcow2Image::write(uint64_t offset, const uint8_t* buf, size_t len) {
  if (read_only_) return fail("the disk is read-only");
  if (offset > size_ || len > size_ - offset) {
    return fail(fmt::format("write at offset {} length {} is past the end", offset, len));
  }
  while (len > 0) {
    uint64_t in = offset & (cluster_size_ - 1);
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, cluster_size_ - in));
    if (Status s = write_in_cluster(offset >> cluster_bits_, in, buf, n); !s.ok()) return s;
    offset += n;
    buf += n;
    len -= n;
  }
  return Status();
}

Status Qcow2Image::flush() {
  if (read_only_) return Status();
  if (::fdatasync(fd_) != 0 && ::fsync(fd_) != 0) {
    return fail(fmt::format("flush failed: {}", std::strerror(errno)));
  }
  return Status();
}

Status Qcow2Image::discard(uint64_t offset, uint64_t len) {
  if (read_only_) return fail("the disk is read-only");
  if (offset > size_ || len > size_ - offset) {
    return fail(fmt::format("discard at offset {} length {} is past the end", offset, len));
  }
  // Over a backing file an unallocated cluster would show the old backing data, which is
  // allowed but surprising; version 3 can say "zeros" instead. Version 2 keeps the data.
  if (backing_ && version_ < 3) return Status();
  uint64_t first = div_round_up(offset, cluster_size_);
  uint64_t end = (offset + len) >> cluster_bits_;
  for (uint64_t vc = first; vc < end; ++vc) {
    auto e = l2_entry(vc);
    if (!e.ok()) return e.status();
    uint64_t entry = *e;
    if (Status s = check_data_cluster(entry, "discard"); !s.ok()) return s;
    bool compressed = entry & kCompressed;
    if (!compressed && (entry & kOffsetMask) == 0) continue;  // nothing allocated here
    if (!compressed && !(entry & kCopied)) continue;          // shared: leave it
    if (Status s = set_l2_entry(vc, backing_ ? kZero : 0); !s.ok()) return s;
    if (Status s = release_entry(entry); !s.ok()) return s;
    if (!compressed) {
      uint64_t host = entry & kOffsetMask;
      auto rc = refcount(host >> cluster_bits_);
      if (rc.ok() && *rc == 0) {
        // Give the space back to the host; failure only costs space.
        (void)::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(host),
                          static_cast<off_t>(cluster_size_));
      }
    }
  }
  return Status();
}

Status Qcow2Image::resize(uint64_t new_size) {
  if (read_only_) return fail("the disk is read-only");
  if (new_size < size_) return fail("shrinking is not supported");
  if (new_size > (1ull << 62)) return fail("the new size is too large");
  uint64_t needed = div_round_up(new_size, cluster_size_ * l2_entries_);
  uint64_t capacity = div_round_up(l1_.size() * 8, cluster_size_) * cluster_size_ / 8;
  if (needed > capacity) {
    return fail(
        fmt::format("cannot grow to {} bytes: the L1 table would have to move "
                    "(not supported; use 'qemu-img resize')",
                    new_size));
  }
  if (needed > l1_.size()) {
    std::vector<uint8_t> zeros((needed - l1_.size()) * 8, 0);
    if (Status s = pwrite_meta(l1_offset_ + l1_.size() * 8, zeros.data(), zeros.size()); !s.ok()) {
      return s;
    }
    l1_.resize(needed, 0);
  }
  uint8_t raw[12];
  put_be64(raw, new_size);
  put_be32(raw + 8, static_cast<uint32_t>(l1_.size()));
  if (Status s = pwrite_meta(24, raw, 8); !s.ok()) return s;
  if (Status s = pwrite_meta(36, raw + 8, 4); !s.ok()) return s;
  size_ = new_size;
  return flush();
}

// --- Creation ---------------------------------------------------------------------------

Status create_qcow2(const std::string& path, uint64_t size, uint64_t cluster_size,
                    const std::string& backing_file, const std::string& backing_format) {
  auto fail = [&](const std::string& what) {
    return Status::error(fmt::format("cannot create '{}': {}", path, what));
  };
  if (cluster_size < 512 || cluster_size > (2u << 20) || (cluster_size & (cluster_size - 1)) != 0) {
    return fail(fmt::format("cluster size {} is not a power of two from 512 to 2M", cluster_size));
  }
  std::string format_name = backing_format;
  if (!backing_file.empty()) {
    if (backing_file.size() > kMaxBackingNameSize) return fail("backing file name too long");
    auto format = parse_format_name(backing_format);
    if (!format.ok()) return fail(format.message());
    DiskOptions options;
    options.path = resolve_backing_path(path, backing_file);
    options.format = *format;
    options.read_only = true;
    if (format_name.empty()) {
      auto probed = probe_disk_format(options.path);
      if (!probed.ok()) return fail(probed.message());
      format_name = *probed == DiskFormat::kQcow2 ? "qcow2" : "raw";
    }
    auto backing = open_disk(options);
    if (!backing.ok()) return fail(fmt::format("backing file: {}", backing.message()));
    if (size == 0) size = (*backing)->size();
  } else if (!backing_format.empty()) {
    return fail("a backing format needs a backing file");
  }
  if (size > (1ull << 62)) return fail("size too large");

  const uint32_t cluster_bits = static_cast<uint32_t>(__builtin_ctzll(cluster_size));
  const uint64_t l2_span = cluster_size * (cluster_size / 8);
  const uint64_t l1_size = div_round_up(size, l2_span);
  if (l1_size * 8 > kMaxL1Bytes) return fail("size too large for this cluster size");
  const uint64_t l1_clusters = std::max<uint64_t>(1, div_round_up(l1_size * 8, cluster_size));
  const uint64_t refblock_entries = cluster_size * 8 / 16;
  // Layout: header, refcount table, refcount blocks, L1 table. The table and blocks must
  // count themselves: iterate to a fixed point.
  uint64_t table_clusters = 1, blocks = 1;
  for (;;) {
    uint64_t total = 1 + table_clusters + blocks + l1_clusters;
    uint64_t b = div_round_up(total, refblock_entries);
    uint64_t t = div_round_up(b * 8, cluster_size);
    if (b == blocks && t == table_clusters) break;
    blocks = b;
    table_clusters = t;
  }
  if (table_clusters * cluster_size > kMaxReftableBytes) return fail("size too large");
  const uint64_t total = 1 + table_clusters + blocks + l1_clusters;
  const uint64_t reftable_offset = cluster_size;
  const uint64_t blocks_offset = reftable_offset + table_clusters * cluster_size;
  const uint64_t l1_offset = blocks_offset + blocks * cluster_size;

  std::vector<uint8_t> image(total * cluster_size, 0);
  uint8_t* h = image.data();
  put_be32(h, kMagic);
  put_be32(h + 4, 3);
  put_be32(h + 20, cluster_bits);
  put_be64(h + 24, size);
  put_be32(h + 36, static_cast<uint32_t>(l1_size));
  put_be64(h + 40, l1_offset);
  put_be64(h + 48, reftable_offset);
  put_be32(h + 56, static_cast<uint32_t>(table_clusters));
  put_be32(h + 96, 4);     // refcount_order: 16-bit refcounts
  put_be32(h + 100, 112);  // header_length (with the compression type byte, padded)
  uint64_t off = 112;
  if (!backing_file.empty()) {
    put_be32(h + off, kExtBackingFormat);
    put_be32(h + off + 4, static_cast<uint32_t>(format_name.size()));
    std::memcpy(h + off + 8, format_name.data(), format_name.size());
    off += 8 + div_round_up(format_name.size(), 8) * 8;
  }
  off += 8;  // end-of-extensions marker (zeros)
  if (!backing_file.empty()) {
    if (off + backing_file.size() > cluster_size) return fail("backing file name too long");
    put_be64(h + 8, off);
    put_be32(h + 16, static_cast<uint32_t>(backing_file.size()));
    std::memcpy(h + off, backing_file.data(), backing_file.size());
  }
  for (uint64_t b = 0; b < blocks; ++b) {
    put_be64(image.data() + reftable_offset + b * 8, blocks_offset + b * cluster_size);
  }
  for (uint64_t c = 0; c < total; ++c) {
    uint8_t* block = image.data() + blocks_offset + (c / refblock_entries) * cluster_size;
    put_refcount_entry(block, c % refblock_entries, 16, 1);
  }

  // Truncated only once we hold the writer's lock: an existing image may be in use.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return fail(std::strerror(errno));
  if (Status s = lock_disk_image(fd, path, true); !s.ok()) {
    ::close(fd);
    return fail(s.message());
  }
  Status s;
  if (::ftruncate(fd, 0) != 0) s = fail(std::strerror(errno));
  if (s.ok()) s = pwrite_full(fd, path, 0, image.data(), image.size());
  if (s.ok() && ::fsync(fd) != 0) s = fail(std::strerror(errno));
  ::close(fd);
  if (!s.ok()) ::unlink(path.c_str());
  return s;
}

}  // namespace nimbus::backends

namespace nimbus::backends {

Result<std::vector<std::pair<uint64_t, uint64_t>>> Qcow2Image::own_extents() {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  auto add = [&](uint64_t offset, uint64_t len) {
    if (offset >= size_) return;
    len = std::min(len, size_ - offset);
    if (!out.empty() && out.back().first + out.back().second == offset) {
      out.back().second += len;
    } else {
      out.emplace_back(offset, len);
    }
  };
  for (uint64_t l1_index = 0; l1_index < l1_.size(); ++l1_index) {
    const uint64_t l2_offset = l1_[l1_index] & kOffsetMask;
    if (l2_offset == 0) continue;
    auto table = load_l2(l2_offset);
    if (!table.ok()) return table.status();
    // load_l2 may empty the cache when it loads another table: copy what we walk.
    const std::vector<uint64_t> entries = **table;
    for (uint64_t i = 0; i < entries.size(); ++i) {
      const uint64_t e = entries[i];
      if ((e & (kCompressed | kZero)) == 0 && (e & kOffsetMask) == 0) continue;  // unallocated
      add((l1_index * l2_entries_ + i) * cluster_size_, cluster_size_);
    }
  }
  return out;
}

}  // namespace nimbus::backends
