// The "sifive,test" finisher (QEMU virt's test device at 0x100000, also what Linux's
// syscon-poweroff and syscon-reboot drive): a 32-bit write of 0x5555 means pass/power off,
// 0x3333 | code << 16 means fail with `code`, 0x7777 means reset.
#pragma once

#include <atomic>
#include <functional>

#include "common/state_io.h"
#include "mem/bus.h"

namespace nimbus::devices {

class Finisher : public mem::MmioDevice {
 public:
  enum class Event { kNone, kPass, kFail, kReset };
  static constexpr uint64_t kSize = 0x1000;

  // `on_event` runs on the writing hart's thread.
  explicit Finisher(std::function<void(Event, uint32_t code)> on_event)
      : on_event_(std::move(on_event)) {}

  bool read(uint64_t offset, unsigned size, uint64_t& value) override;
  bool write(uint64_t offset, unsigned size, uint64_t value) override;

  // Snapshots: an empty section "finisher" (the device has no state).
  void save_state(StateWriter& w) const;
  void load_state(StateReader& r);

 private:
  std::function<void(Event, uint32_t)> on_event_;
};

}  // namespace nimbus::devices
