#include "devices/rtc/goldfish_rtc.h"

namespace nimbus::devices {

namespace {
bool decodes(uint64_t offset, unsigned size) {
  return (size == 4 || size == 8) && offset < GoldfishRtc::kSize &&
         size <= GoldfishRtc::kSize - offset && (offset & (size - 1)) == 0;
}
}  // namespace

GoldfishRtc::GoldfishRtc(std::function<uint64_t()> now_ns, std::function<void(bool)> irq)
    : now_ns_(std::move(now_ns)), irq_(std::move(irq)) {}

bool GoldfishRtc::read(uint64_t offset, unsigned size, uint64_t& value) {
  value = 0;
  if (!decodes(offset, size)) return false;
  std::lock_guard<std::mutex> lock(mu_);
  value = read32(offset);
  if (size == 8) value |= static_cast<uint64_t>(read32(offset + 4)) << 32;
  return true;
}

bool GoldfishRtc::write(uint64_t offset, unsigned size, uint64_t value) {
  if (!decodes(offset, size)) return false;
  std::lock_guard<std::mutex> lock(mu_);
  write32(offset, static_cast<uint32_t>(value));
  if (size == 8) write32(offset + 4, static_cast<uint32_t>(value >> 32));
  update_irq_locked();
  return true;
}

uint32_t GoldfishRtc::read32(uint64_t offset) {
  switch (offset) {
    case kTimeLow: {
      const uint64_t t = time_locked();
      time_high_latch_ = static_cast<uint32_t>(t >> 32);
      return static_cast<uint32_t>(t);
    }
    case kTimeHigh:
      return time_high_latch_;
    case kAlarmLow:
      return static_cast<uint32_t>(alarm_);
    case kAlarmHigh:
      return static_cast<uint32_t>(alarm_ >> 32);
    case kIrqEnabled:
      return irq_enabled_ ? 1 : 0;
    case kAlarmStatus:
      return alarm_armed_ ? 1 : 0;
    default:
      return 0;
  }
}

void GoldfishRtc::write32(uint64_t offset, uint32_t value) {
  switch (offset) {
    case kTimeLow:
    case kTimeHigh: {
      // Replace one half of the current time; the clock keeps running from there.
      const uint64_t now = now_ns_();
      const uint64_t t = now + offset_;
      const uint64_t updated = offset == kTimeLow
                                   ? (t & 0xffffffff00000000ull) | value
                                   : (t & 0xffffffffull) | (static_cast<uint64_t>(value) << 32);
      offset_ = updated - now;
      break;
    }
    case kAlarmLow:
      alarm_ = (alarm_ & 0xffffffff00000000ull) | value;
      alarm_armed_ = true;
      poll_locked();  // an alarm in the past fires at once
      break;
    case kAlarmHigh:
      alarm_ = (alarm_ & 0xffffffffull) | (static_cast<uint64_t>(value) << 32);
      break;
    case kIrqEnabled:
      irq_enabled_ = value & 1;
      break;
    case kClearAlarm:
      alarm_armed_ = false;
      break;
    case kClearInterrupt:
      irq_status_ = false;
      break;
    default:
      break;
  }
}

void GoldfishRtc::poll_locked() {
  if (alarm_armed_ && time_locked() >= alarm_) {
    alarm_armed_ = false;
    irq_status_ = true;
  }
}

void GoldfishRtc::update_irq_locked() {
  const bool level = irq_status_ && irq_enabled_;
  if (level != irq_level_) {
    irq_level_ = level;
    irq_(level);
  }
}

void GoldfishRtc::poll() {
  std::lock_guard<std::mutex> lock(mu_);
  poll_locked();
  update_irq_locked();
}

uint64_t GoldfishRtc::next_alarm_host_ns() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!alarm_armed_) return UINT64_MAX;
  const uint64_t now = now_ns_();
  const uint64_t t = now + offset_;
  return t >= alarm_ ? now : now + (alarm_ - t);  // no wrap-around for a due alarm
}

uint64_t GoldfishRtc::time_ns() {
  std::lock_guard<std::mutex> lock(mu_);
  return time_locked();
}

void GoldfishRtc::save_state(StateWriter& w) const {
  std::lock_guard<std::mutex> lock(mu_);
  w.begin("goldfish-rtc");
  w.u64(offset_);
  w.u32(time_high_latch_);
  w.u64(alarm_);
  w.b(alarm_armed_);
  w.b(irq_enabled_);
  w.b(irq_status_);
  w.end();
}

void GoldfishRtc::load_state(StateReader& r) {
  std::lock_guard<std::mutex> lock(mu_);
  r.begin("goldfish-rtc");
  const uint64_t offset = r.u64();
  const uint32_t latch = r.u32();
  const uint64_t alarm = r.u64();
  const bool armed = r.b(), irq_enabled = r.b(), irq_status = r.b();
  r.end();
  if (!r.ok()) return;
  offset_ = offset;
  time_high_latch_ = latch;
  alarm_ = alarm;
  alarm_armed_ = armed;
  irq_enabled_ = irq_enabled;
  irq_status_ = irq_status;
  update_irq_locked();
}

}  // namespace nimbus::devices
