#include "devices/clint/clint.h"

#include <algorithm>
#include <string>

namespace nimbus::devices {
namespace {

uint64_t size_mask(unsigned size) { return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1; }

// Bytes [byte, byte+size) of a register value.
uint64_t extract(uint64_t reg, unsigned byte, unsigned size) {
  return (reg >> (8 * byte)) & size_mask(size);
}

// `reg` with bytes [byte, byte+size) replaced by the low bytes of `value`.
uint64_t deposit(uint64_t reg, unsigned byte, unsigned size, uint64_t value) {
  const uint64_t mask = size_mask(size) << (8 * byte);
  return (reg & ~mask) | ((value << (8 * byte)) & mask);
}

bool valid_access(uint64_t offset, unsigned size) {
  if (size != 1 && size != 2 && size != 4 && size != 8) return false;
  if (offset >= Clint::kSize || size > Clint::kSize - offset) return false;
  return (offset & (size - 1)) == 0;
}

}  // namespace

Clint::Clint(unsigned num_harts, std::function<uint64_t()> now,
             std::function<void(unsigned, bool)> set_msip,
             std::function<void(unsigned, bool)> set_mtip)
    : num_harts_(std::min(num_harts, kMaxHarts)),
      now_(std::move(now)),
      set_msip_(std::move(set_msip)),
      set_mtip_(std::move(set_mtip)),
      mtimecmp_(num_harts_, UINT64_MAX),
      msip_(num_harts_, 0) {}

bool Clint::read(uint64_t offset, unsigned size, uint64_t& value) {
  value = 0;
  if (!valid_access(offset, size)) return false;
  std::lock_guard<std::mutex> lock(mu_);
  if (offset < kMtimecmpBase) {
    // 32-bit msip registers; an 8-byte access covers two harts.
    for (unsigned i = 0; i < size; i += 4) {
      const uint64_t hart = (offset + i) / 4;
      const uint64_t reg = hart < num_harts_ ? msip_[hart] : 0;
      const unsigned width = std::min(size, 4u);
      value |= extract(reg, (offset + i) % 4, width) << (8 * i);
    }
    return true;
  }
  const uint64_t base = offset & ~7ull;
  const unsigned byte = offset & 7;
  uint64_t reg = 0;
  if (base == kMtime) {
    reg = mtime_locked();
  } else if (base < kMtime) {
    const uint64_t hart = (base - kMtimecmpBase) / 8;
    if (hart < num_harts_) reg = mtimecmp_[hart];
  }
  value = extract(reg, byte, size);
  return true;
}

bool Clint::write(uint64_t offset, unsigned size, uint64_t value) {
  if (!valid_access(offset, size)) return false;
  std::lock_guard<std::mutex> lock(mu_);
  if (offset < kMtimecmpBase) {
    for (unsigned i = 0; i < size; i += 4) {
      const uint64_t hart = (offset + i) / 4;
      if (hart >= num_harts_) continue;
      const unsigned width = std::min(size, 4u);
      const uint64_t reg = deposit(msip_[hart], (offset + i) % 4, width, value >> (8 * i));
      msip_[hart] = reg & 1;  // ACLINT spec: only bit 0 is writable
      set_msip_(static_cast<unsigned>(hart), msip_[hart] != 0);
    }
    return true;
  }
  const uint64_t base = offset & ~7ull;
  const unsigned byte = offset & 7;
  if (base == kMtime) {
    // The guest sets the counter; keep counting from the new value.
    const uint64_t now = now_();
    const uint64_t new_mtime = deposit(now + mtime_offset_, byte, size, value);
    mtime_offset_ = new_mtime - now;
    for (unsigned h = 0; h < num_harts_; ++h) update_timer_locked(h);
  } else if (base < kMtime) {
    const uint64_t hart = (base - kMtimecmpBase) / 8;
    if (hart < num_harts_) {
      mtimecmp_[hart] = deposit(mtimecmp_[hart], byte, size, value);
      update_timer_locked(static_cast<unsigned>(hart));
    }
  }
  return true;
}

void Clint::update_timer_locked(unsigned hart) {
  set_mtip_(hart, mtime_locked() >= mtimecmp_[hart]);
}

void Clint::update_timer(unsigned hart) {
  if (hart >= num_harts_) return;
  std::lock_guard<std::mutex> lock(mu_);
  update_timer_locked(hart);
}

uint64_t Clint::timer_deadline(unsigned hart) {
  if (hart >= num_harts_) return UINT64_MAX;
  std::lock_guard<std::mutex> lock(mu_);
  return mtimecmp_[hart];
}

uint64_t Clint::mtime() {
  std::lock_guard<std::mutex> lock(mu_);
  return mtime_locked();
}

void Clint::set_timecmp(unsigned hart, uint64_t value) {
  if (hart >= num_harts_) return;
  std::lock_guard<std::mutex> lock(mu_);
  mtimecmp_[hart] = value;
  update_timer_locked(hart);
}

void Clint::save_state(StateWriter& w) const {
  std::lock_guard<std::mutex> lock(mu_);
  w.begin("clint");
  w.u32(num_harts_);
  w.u64(mtime_offset_);
  for (unsigned h = 0; h < num_harts_; ++h) {
    w.u8(msip_[h]);
    w.u64(mtimecmp_[h]);
  }
  w.end();
}

void Clint::load_state(StateReader& r) {
  std::lock_guard<std::mutex> lock(mu_);
  r.begin("clint");
  const uint32_t harts = r.u32();
  const uint64_t mtime_offset = r.u64();
  if (r.ok() && harts != num_harts_) {
    r.fail("snapshot has " + std::to_string(harts) + " harts, the machine " +
           std::to_string(num_harts_));
  }
  std::vector<uint8_t> msip(num_harts_);
  std::vector<uint64_t> mtimecmp(num_harts_);
  for (unsigned h = 0; h < num_harts_ && r.ok(); ++h) {
    msip[h] = r.u8();
    mtimecmp[h] = r.u64();
    if (msip[h] > 1) r.fail("msip of hart " + std::to_string(h) + " is not 0 or 1");
  }
  r.end();
  if (!r.ok()) return;
  msip_ = std::move(msip);
  mtimecmp_ = std::move(mtimecmp);
  mtime_offset_ = mtime_offset;
  for (unsigned h = 0; h < num_harts_; ++h) set_msip_(h, msip_[h] != 0);
}

}  // namespace nimbus::devices
