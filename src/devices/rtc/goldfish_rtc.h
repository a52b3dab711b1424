// The Google Goldfish RTC ("google,goldfish-rtc"), as on QEMU virt at 0x101000, size
// 0x1000. Guest time is nanoseconds since the Unix epoch: now_ns() (the host's realtime
// clock) plus an offset the guest changes by writing TIME_LOW / TIME_HIGH.
//   0x00 TIME_LOW        read: low 32 bits of the time, latches the high half
//   0x04 TIME_HIGH       read: the latched high half; writes set that half of the time
//   0x08 ALARM_LOW       write: arms the alarm at ALARM_HIGH:value
//   0x0c ALARM_HIGH      high half of the next alarm
//   0x10 IRQ_ENABLED     bit 0
//   0x14 CLEAR_ALARM     write: disarms the alarm
//   0x18 ALARM_STATUS    read: 1 while an alarm is armed
//   0x1c CLEAR_INTERRUPT write: acknowledges the alarm interrupt
// Registers are 32-bit; an 8-byte access is two 32-bit accesses, low word first (so a
// 64-bit read of TIME_LOW returns the whole time); 1- and 2-byte accesses are not decoded.
//
// The alarm is minimal: the device has no timer of its own. An alarm that is already due
// fires when armed; otherwise the machine must call poll() (e.g. from its I/O thread, at
// next_alarm_host_ns() or periodically), which fires a due alarm. A fired alarm sets the
// interrupt status; the line is high while that status is set and IRQ_ENABLED is 1.
//
// Threading: every entry point may be called from any thread; one mutex guards the state.
// `irq` (and now_ns) run WHILE THE DEVICE LOCK IS HELD, only on a level change; they must
// never call back into this device (that deadlocks).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>

#include "common/state_io.h"
#include "mem/bus.h"

namespace nimbus::devices {

class GoldfishRtc : public mem::MmioDevice {
 public:
  static constexpr uint64_t kSize = 0x1000;
  static constexpr uint64_t kTimeLow = 0x00, kTimeHigh = 0x04, kAlarmLow = 0x08, kAlarmHigh = 0x0c,
                            kIrqEnabled = 0x10, kClearAlarm = 0x14, kAlarmStatus = 0x18,
                            kClearInterrupt = 0x1c;

  GoldfishRtc(std::function<uint64_t()> now_ns, std::function<void(bool level)> irq);

  bool read(uint64_t offset, unsigned size, uint64_t& value) override;
  bool write(uint64_t offset, unsigned size, uint64_t value) override;

  // Fires the alarm if it is armed and due.
  void poll();
  // When the armed alarm is due, in now_ns() units; UINT64_MAX when none is armed.
  uint64_t next_alarm_host_ns();
  // Guest time in ns since the epoch.
  uint64_t time_ns();

  // Snapshots: section "goldfish-rtc" with the alarm and interrupt registers and the
  // guest's offset from now_ns() (0 unless the guest set the clock), so guest time stays
  // host realtime (plus the guest's own adjustment). load_state re-evaluates the line; an
  // alarm that fell due meanwhile fires at the next poll().
  void save_state(StateWriter& w) const;
  void load_state(StateReader& r);

 private:
  uint64_t time_locked() const { return now_ns_() + offset_; }
  uint32_t read32(uint64_t offset);
  void write32(uint64_t offset, uint32_t value);
  void poll_locked();
  void update_irq_locked();

  std::function<uint64_t()> now_ns_;
  std::function<void(bool)> irq_;

  mutable std::mutex mu_;
  uint64_t offset_ = 0;  // guest time = now_ns() + offset (mod 2^64)
  uint32_t time_high_latch_ = 0;
  uint64_t alarm_ = 0;
  bool alarm_armed_ = false;
  bool irq_enabled_ = false;
  bool irq_status_ = false;
  bool irq_level_ = false;
};

}  // namespace nimbus::devices
