#include "backends/block/tracked_disk.h"

namespace nimbus::backends {

TrackedDisk::TrackedDisk(std::unique_ptr<BlockBackend> inner) : inner_(std::move(inner)) {}

Status TrackedDisk::read(uint64_t offset, uint8_t* buf, size_t len) {
  std::lock_guard<std::mutex> lock(mu_);
  return inner_->read(offset, buf, len);
}

Status TrackedDisk::write(uint64_t offset, const uint8_t* buf, size_t len) {
  std::lock_guard<std::mutex> lock(mu_);
  Status s = inner_->write(offset, buf, len);
  // A failed write may have written part of the range: marked all the same.
  if (tracking_) mark_locked(offset, len);
  return s;
}

Status TrackedDisk::flush() {
  std::lock_guard<std::mutex> lock(mu_);
  return inner_->flush();
}

Status TrackedDisk::discard(uint64_t offset, uint64_t len) {
  std::lock_guard<std::mutex> lock(mu_);
  Status s = inner_->discard(offset, len);
  if (tracking_) mark_locked(offset, len);
  return s;
}

Result<std::vector<std::pair<uint64_t, uint64_t>>> TrackedDisk::own_extents() {
  std::lock_guard<std::mutex> lock(mu_);
  return inner_->own_extents();
}

void TrackedDisk::start_tracking() {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t chunks = (inner_->size() + kChunk - 1) / kChunk;
  dirty_.assign((chunks + 63) / 64, 0);
  tracking_ = true;
}

void TrackedDisk::stop_tracking() {
  std::lock_guard<std::mutex> lock(mu_);
  tracking_ = false;
  dirty_.clear();
}

bool TrackedDisk::tracking() {
  std::lock_guard<std::mutex> lock(mu_);
  return tracking_;
}

std::vector<uint64_t> TrackedDisk::take_dirty() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> out;
  for (size_t w = 0; w < dirty_.size(); ++w) {
    uint64_t bits = dirty_[w];
    dirty_[w] = 0;
    while (bits != 0) {
      out.push_back(w * 64 + static_cast<uint64_t>(__builtin_ctzll(bits)));
      bits &= bits - 1;
    }
  }
  return out;
}

void TrackedDisk::mark_locked(uint64_t offset, uint64_t len) {
  if (len == 0) return;
  const uint64_t size = inner_->size();
  if (offset >= size) return;
  const uint64_t end = std::min(size, offset + std::min(len, size - offset));
  for (uint64_t c = offset / kChunk; c * kChunk < end; ++c) {
    if (c / 64 < dirty_.size()) dirty_[c / 64] |= 1ull << (c % 64);
  }
}

}  // namespace nimbus::backends
