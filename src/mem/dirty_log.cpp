#include "mem/dirty_log.h"

#include <algorithm>

namespace nimbus::mem {

DirtyLog::DirtyLog(uint64_t ram_size)
    : ram_size_(ram_size),
      pages_((ram_size + kPageSize - 1) >> kPageShift),
      words_(static_cast<size_t>((pages_ + 63) / 64)),
      bits_(new std::atomic<uint64_t>[words_ == 0 ? 1 : words_]) {
  for (size_t i = 0; i < words_; i++) bits_[i].store(0, std::memory_order_relaxed);
}

void DirtyLog::mark_slow(uint64_t ram_offset, uint64_t len) {
  if (len == 0 || ram_offset >= ram_size_) return;
  const uint64_t end = ram_offset + std::min(len, ram_size_ - ram_offset);  // exclusive
  uint64_t page = ram_offset >> kPageShift;
  const uint64_t last = (end - 1) >> kPageShift;
  while (page <= last) {
    const size_t w = static_cast<size_t>(page / 64);
    const unsigned first_bit = page % 64;
    const uint64_t in_word = std::min<uint64_t>(64 - first_bit, last - page + 1);
    const uint64_t mask = (in_word == 64 ? ~uint64_t{0} : ((uint64_t{1} << in_word) - 1))
                          << first_bit;
    // Always the read-modify-write, never "load, and skip if set": a writer that marks
    // after writing (a device) must not let its data write pass the mark (a plain load
    // may run before the store buffer drains; a take could then clear the bit and copy
    // the page without the data). The release orders the writer's data before the bit.
    bits_[w].fetch_or(mask, std::memory_order_release);
    page += in_word;
  }
}

void DirtyLog::take(std::vector<uint64_t>& bitmap) {
  bitmap.resize(words_);
  for (size_t i = 0; i < words_; i++) bitmap[i] = bits_[i].exchange(0, std::memory_order_acq_rel);
}

void DirtyLog::clear() {
  for (size_t i = 0; i < words_; i++) bits_[i].store(0, std::memory_order_relaxed);
}

bool DirtyLog::test(uint64_t ram_offset) const {
  if (ram_offset >= ram_size_) return false;
  const uint64_t page = ram_offset >> kPageShift;
  return (bits_[page / 64].load(std::memory_order_relaxed) >> (page % 64)) & 1;
}

}  // namespace nimbus::mem
