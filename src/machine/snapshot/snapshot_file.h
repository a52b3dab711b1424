// The snapshot file: everything needed to continue a paused VM in another process.
//
// Layout (little-endian):
//   0   magic "NIMBSNAP"
//   8   u32 format version (kSnapshotVersion; other versions are refused)
//   12  u32 header size (48)
//   16  u64 payload size
//   24  u32 CRC-32 (zlib) of bytes 32-47 and of the payload
//   28  u32 reserved (0)
//   32  u64 guest RAM size
//   40  u64 number of non-zero 4 KiB pages
//   48  payload:
//         u64 length + the VM configuration (JSON text, as the VMM wrote it)
//         u64 length + the machine state (StateWriter stream: harts, devices, clock)
//         u64 length + a bitmap, one bit per RAM page, set for pages stored
//         u64 length + one zstd frame: the stored pages in address order
// Pages of zeros are skipped. The file is written to PATH.tmp and renamed into place,
// so a failed or interrupted write never leaves a half snapshot under PATH.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace nimbus::machine {

constexpr uint32_t kSnapshotVersion = 1;
constexpr uint64_t kSnapshotPageSize = 4096;

struct SnapshotWriteStats {
  uint64_t file_bytes = 0;
  uint64_t pages_stored = 0;  // non-zero pages
  uint64_t pages_total = 0;
};

Result<SnapshotWriteStats> write_snapshot(const std::string& path, const std::string& config_json,
                                          const std::vector<uint8_t>& state, const uint8_t* ram,
                                          uint64_t ram_size);

// A snapshot file opened and verified (magic, version, sizes, checksum) in full before
// anything is used.
class SnapshotFile {
 public:
  static Result<std::unique_ptr<SnapshotFile>> open(const std::string& path);
  ~SnapshotFile();

  const std::string& config_json() const { return config_json_; }
  const std::vector<uint8_t>& state() const { return state_; }
  uint64_t ram_size() const { return ram_size_; }
  // Writes the stored pages into `ram` (ram_size() bytes, zero-filled by the caller).
  Status read_ram(uint8_t* ram) const;

 private:
  SnapshotFile() = default;
  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t map_len_ = 0;
  std::string config_json_;
  std::vector<uint8_t> state_;
  uint64_t ram_size_ = 0;
  uint64_t pages_stored_ = 0;
  const uint8_t* bitmap_ = nullptr;
  uint64_t bitmap_len_ = 0;
  const uint8_t* pages_ = nullptr;
  uint64_t pages_len_ = 0;
};

}  // namespace nimbus::machine
