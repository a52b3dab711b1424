// A disk whose writes can be tracked: live migration copies a running VM's disk while
// its guest writes to it, and sends again what was written meanwhile.
//
// Every call goes through one mutex, so the migration's thread may read the disk while
// the device's I/O thread writes it (the image below sees one caller at a time, as the
// BlockBackend contract wants). While tracking, each write and discard marks the chunks
// (kChunk bytes) it touches, after it completed; take_dirty() hands them over and clears
// them. Not tracking, a write costs one uncontended lock and a flag test.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "backends/block/block_backend.h"

namespace nimbus::backends {

class TrackedDisk final : public BlockBackend {
 public:
  static constexpr uint64_t kChunk = 64 * 1024;

  explicit TrackedDisk(std::unique_ptr<BlockBackend> inner);

  uint64_t size() const override { return inner_->size(); }
  bool read_only() const override { return inner_->read_only(); }
  Status read(uint64_t offset, uint8_t* buf, size_t len) override;
  Status write(uint64_t offset, const uint8_t* buf, size_t len) override;
  Status flush() override;
  Status discard(uint64_t offset, uint64_t len) override;
  Result<std::vector<std::pair<uint64_t, uint64_t>>> own_extents() override;

  // Starts marking (clears what was marked before); stops marking.
  void start_tracking();
  void stop_tracking();
  bool tracking();
  // The chunks written since start_tracking or the last call, ascending, and clears them.
  std::vector<uint64_t> take_dirty();

 private:
  std::unique_ptr<BlockBackend> inner_;
  std::mutex mu_;
  bool tracking_ = false;
  std::vector<uint64_t> dirty_;  // one bit per chunk
  void mark_locked(uint64_t offset, uint64_t len);
};

}  // namespace nimbus::backends
