// qcow2 images, versions 2 and 3 (QEMU's docs/interop/qcow2.txt): sparse allocation, zero
// clusters, zlib-compressed clusters (read), and backing files (copy-on-write overlays).
//
// Metadata is written through (no dirty cache): a newly allocated cluster gets its
// refcount first, then its data, then the L2 entry (and L1 entry) that points at it, so a
// crash leaves at worst a leaked cluster, never a reference to unwritten data.
//
// Refused at open: encryption, external data files, extended L2 entries, the corrupt
// bit, refcount widths below 8 bits, unknown incompatible features; the dirty bit and
// internal snapshots are accepted read-only only.
//
// Guest data never overwrites metadata (as QEMU's overlap checks): a read-write open maps
// the metadata clusters (header, L1 table, refcount table and blocks, L2 tables) and
// refuses an image whose tables point into each other or whose data clusters point into
// metadata (such an image opens read-only only); every data cluster write, allocation and
// discard is then checked against that map and fails with an I/O error rather than touch
// metadata. (Snapshot tables need no entry: images with snapshots are read-only here.)
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/block/block_backend.h"

namespace nimbus::backends {

class Qcow2Image final : public BlockBackend {
 public:
  // `chain`: the images above this one when it is a backing file (null for the top).
  static Result<std::unique_ptr<Qcow2Image>> open(const std::string& path, bool read_only,
                                                  const BackingChain* chain = nullptr);
  ~Qcow2Image() override;
  Qcow2Image(const Qcow2Image&) = delete;
  Qcow2Image& operator=(const Qcow2Image&) = delete;

  uint64_t size() const override { return size_; }
  bool read_only() const override { return read_only_; }
  Status read(uint64_t offset, uint8_t* buf, size_t len) override;
  Status write(uint64_t offset, const uint8_t* buf, size_t len) override;
  Status flush() override;
  // Whole clusters become unallocated (or zero clusters over a backing file, version 3)
  // and their host space is freed; partial clusters are left as they are.
  Status discard(uint64_t offset, uint64_t len) override;
  // Every cluster with an L2 entry of this image (data, compressed or a zero cluster that
  // hides the backing file's data), merged into ranges and clipped to size().
  Result<std::vector<std::pair<uint64_t, uint64_t>>> own_extents() override;

  uint32_t version() const { return version_; }
  uint64_t cluster_size() const { return cluster_size_; }
  // As written in the image (may be relative to the image's directory); empty if none.
  const std::string& backing_file() const { return backing_file_; }
  const std::string& backing_format() const { return backing_format_; }
  // Grows the virtual size. Refused when the L1 table would have to move.
  Status resize(uint64_t new_size);

  // How many bytes of L2 tables a read-write open reads to look for data clusters that
  // point into metadata (default 64 MiB, i.e. the tables of a 256 GiB disk with 64K
  // clusters); past it, the checks at write time alone protect the metadata. Tests lower
  // it to reach those checks.
  static void set_l2_scan_budget(uint64_t bytes) { l2_scan_budget_ = bytes; }

 private:
  Qcow2Image() = default;
  Status load(const BackingChain& chain);
  Status open_backing(const BackingChain& chain, uint64_t dev, uint64_t ino);
  Status map_metadata();
  Status add_metadata(uint64_t offset, uint64_t bytes, const std::string& what);
  // The metadata structure that [offset, offset + bytes) overlaps, or null.
  const std::string* metadata_at(uint64_t offset, uint64_t bytes) const;
  std::pair<uint64_t, uint64_t> data_range(uint64_t entry) const;  // host offset, bytes
  // An I/O error when the data of an L2 entry lies in metadata.
  Status check_data_cluster(uint64_t entry, const char* doing) const;
  Status fail(const std::string& what) const;
  Result<uint64_t> l2_entry(uint64_t vcluster);
  Result<std::vector<uint64_t>*> load_l2(uint64_t offset);
  Status set_l2_entry(uint64_t vcluster, uint64_t entry);
  Status read_in_cluster(uint64_t vcluster, uint64_t in, uint8_t* buf, size_t len);
  Status read_unallocated(uint64_t guest_offset, uint8_t* buf, size_t len);
  Status read_compressed(uint64_t entry, uint8_t* cluster);
  Status write_in_cluster(uint64_t vcluster, uint64_t in, const uint8_t* buf, size_t len);
  Result<std::vector<uint8_t>*> load_refblock(uint64_t offset);
  Result<uint64_t> refcount(uint64_t host_cluster);
  Status set_refcount(uint64_t host_cluster, uint64_t value);
  Status release_entry(uint64_t entry);
  Result<uint64_t> alloc_cluster();
  Status pwrite_meta(uint64_t offset, const uint8_t* buf, size_t len);

  int fd_ = -1;
  std::string path_;
  bool read_only_ = true;
  uint32_t version_ = 0;
  uint32_t cluster_bits_ = 0;
  uint64_t cluster_size_ = 0;
  uint64_t size_ = 0;
  uint64_t file_size_ = 0;
  uint64_t l2_entries_ = 0;  // entries per L2 table
  uint32_t refcount_bits_ = 16;
  uint64_t refblock_entries_ = 0;  // refcounts per refcount block
  uint64_t l1_offset_ = 0;
  std::vector<uint64_t> l1_;
  uint64_t reftable_offset_ = 0;
  std::vector<uint64_t> reftable_;
  uint32_t nb_snapshots_ = 0;
  uint8_t compression_type_ = 0;
  uint64_t next_free_cluster_ = 0;
  std::string backing_file_, backing_format_;
  std::unique_ptr<BlockBackend> backing_;
  // Read caches of L2 tables and refcount blocks, keyed by host offset; writes go to both
  // the cache and the file.
  std::unordered_map<uint64_t, std::vector<uint64_t>> l2_cache_;
  std::unordered_map<uint64_t, std::vector<uint8_t>> refblock_cache_;
  // Writable images: metadata clusters as [first, end) ranges of host cluster numbers,
  // keyed by first, with what they hold (for the error message).
  std::map<uint64_t, std::pair<uint64_t, std::string>> metadata_;
  static inline std::atomic<uint64_t> l2_scan_budget_{64ull << 20};
};

// Writes a new, empty version-3 image. With a backing file, a `size` of 0 means the
// backing file's size; `backing_file` is stored as given and resolved against the new
// image's directory when relative. An empty `backing_format` is probed.
Status create_qcow2(const std::string& path, uint64_t size, uint64_t cluster_size = 65536,
                    const std::string& backing_file = "", const std::string& backing_format = "");

// Where a relative backing file name points, seen from the image at `image_path`.
std::string resolve_backing_path(const std::string& image_path, const std::string& backing);

}  // namespace nimbus::backends
