// Dirty-page log of guest RAM for live migration (pre-copy): one bit per 4 KiB page,
// set by whoever writes RAM while logging is on, taken (and cleared) by the migration.
//
// Writers: Bus::write, the CPU when it fills a store TLB entry (the TLB fast paths do not
// mark: see VirtMachine::take_dirty_pages for why that is enough), page-table A/D bit
// updates, and devices when they give a buffer they wrote back to the guest (virtqueue).
// When logging is off mark() is one relaxed load.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace nimbus::mem {

class DirtyLog {
 public:
  static constexpr unsigned kPageShift = 12;
  static constexpr uint64_t kPageSize = uint64_t{1} << kPageShift;

  // A log for `ram_size` bytes of RAM: ceil(ram_size / 4096) pages. Off, empty.
  explicit DirtyLog(uint64_t ram_size);
  DirtyLog(const DirtyLog&) = delete;
  DirtyLog& operator=(const DirtyLog&) = delete;

  uint64_t pages() const { return pages_; }
  // Words of a bitmap: 64 pages each (bit i of word w = page w*64+i).
  size_t words() const { return words_; }

  // Logging on or off. Enabling does not clear the bits (clear() does).
  void set_enabled(bool on) { enabled_.store(on, std::memory_order_seq_cst); }
  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }

  // Marks the pages of [ram_offset, ram_offset + len) (clipped to RAM) when logging is on.
  void mark(uint64_t ram_offset, uint64_t len) {
    if (!enabled_.load(std::memory_order_relaxed)) [[likely]]
      return;
    mark_slow(ram_offset, len);
  }
  // Marks unconditionally (tests, and callers that checked enabled()).
  void mark_slow(uint64_t ram_offset, uint64_t len);

  // Moves the bits set so far into `bitmap` (resized to words()) and clears them, word by
  // word with an atomic exchange: a bit set concurrently lands either in this bitmap or
  // in the next one, never in neither.
  void take(std::vector<uint64_t>& bitmap);
  // Clears every bit.
  void clear();
  // True if the page holding `ram_offset` is marked (tests).
  bool test(uint64_t ram_offset) const;

 private:
  const uint64_t ram_size_;
  const uint64_t pages_;
  const size_t words_;
  std::unique_ptr<std::atomic<uint64_t>[]> bits_;
  std::atomic<bool> enabled_{false};
};

}  // namespace nimbus::mem
