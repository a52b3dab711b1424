// The SiFive CLINT (= RISC-V ACLINT MSWI + MTIMER at their legacy offsets), as on QEMU virt
// at 0x2000000: msip[h] at 0x0000 + 4*h (bit 0 only), mtimecmp[h] at 0x4000 + 8*h, mtime at
// 0xbff8. mtime counts at 10 MHz and follows `now()` plus an offset the guest may set by
// writing mtime.
//
// Threading: every entry point may be called from any thread; one mutex guards the state.
// The set_msip / set_mtip callbacks (and `now`) run on the calling thread WHILE THE DEVICE
// LOCK IS HELD, so they must never call back into this Clint (doing so deadlocks). The
// callbacks may be called with an unchanged level (they must be idempotent).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "common/state_io.h"
#include "mem/bus.h"

namespace nimbus::devices {

class Clint : public mem::MmioDevice {
 public:
  static constexpr uint64_t kSize = 0x10000;
  static constexpr uint64_t kMsipBase = 0x0000;
  static constexpr uint64_t kMtimecmpBase = 0x4000;
  static constexpr uint64_t kMtime = 0xbff8;
  static constexpr uint64_t kTicksPerSecond = 10'000'000;
  // Layout limit: 0x4000 / 8 mtimecmp slots before mtime (4095 harts).
  static constexpr unsigned kMaxHarts = 4095;

  // `now` returns a monotonic count of 10 MHz ticks. Harts beyond kMaxHarts are ignored.
  Clint(unsigned num_harts, std::function<uint64_t()> now,
        std::function<void(unsigned hart, bool level)> set_msip,
        std::function<void(unsigned hart, bool level)> set_mtip);

  bool read(uint64_t offset, unsigned size, uint64_t& value) override;
  bool write(uint64_t offset, unsigned size, uint64_t value) override;

  // Re-evaluates mtime >= mtimecmp[hart] and drives set_mtip(hart, ...).
  void update_timer(unsigned hart);
  // mtimecmp[hart] in mtime units (UINT64_MAX when no timer is armed or hart is invalid):
  // a WFI may sleep (deadline - mtime()) ticks at most.
  uint64_t timer_deadline(unsigned hart);
  uint64_t mtime();
  // For the built-in SBI firmware's sbi_set_timer: sets mtimecmp[hart] and update_timer().
  void set_timecmp(unsigned hart, uint64_t value);

  unsigned num_harts() const { return num_harts_; }

  // Snapshots: section "clint" with msip and mtimecmp of every hart and the offset the
  // guest gave mtime by writing it (0 unless it did). mtime itself is not saved: the
  // machine owns the time base, and the new `now()` must continue from the old one's
  // value. load_state checks the hart count and drives set_msip for every hart; the
  // caller then calls update_timer(h) for each hart (once `now()` is right).
  void save_state(StateWriter& w) const;
  void load_state(StateReader& r);

 private:
  uint64_t mtime_locked() const { return now_() + mtime_offset_; }
  void update_timer_locked(unsigned hart);

  const unsigned num_harts_;
  std::function<uint64_t()> now_;
  std::function<void(unsigned, bool)> set_msip_;
  std::function<void(unsigned, bool)> set_mtip_;

  mutable std::mutex mu_;
  uint64_t mtime_offset_ = 0;  // mtime = now() + offset (mod 2^64)
  std::vector<uint64_t> mtimecmp_;
  std::vector<uint8_t> msip_;
};

}  // namespace nimbus::devices
