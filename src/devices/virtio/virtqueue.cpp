#include "devices/virtio/virtqueue.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

namespace nimbus::devices {

namespace {

// Guest RAM is shared with the vCPU threads; ring indexes are accessed atomically with
// the orderings 2.7.13 asks for. The areas are 2-byte aligned (checked in enable()).
uint16_t load16_acquire(uint8_t* p) {
  return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).load(std::memory_order_acquire);
}
uint16_t load16_relaxed(uint8_t* p) {
  return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).load(std::memory_order_relaxed);
}
void store16_release(uint8_t* p, uint16_t v) {
  std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).store(v, std::memory_order_release);
}
void store16_relaxed(uint8_t* p, uint16_t v) {
  std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).store(v, std::memory_order_relaxed);
}

constexpr size_t kDescSize = 16;
// An indirect table may hold at most this many descriptors whatever the queue size
// (2.7.5.3.1 bounds a chain by the queue size; this keeps the bound finite on a
// misconfigured queue too).
constexpr uint32_t kMaxIndirect = 1024;

}  // namespace

size_t virtq_copy_from(const std::vector<VirtqSegment>& segs, uint64_t offset, void* dst,
                       size_t len) {
  auto* out = static_cast<uint8_t*>(dst);
  size_t done = 0;
  for (const VirtqSegment& s : segs) {
    if (done == len) break;
    if (offset >= s.len) {
      offset -= s.len;
      continue;
    }
    size_t n = std::min<uint64_t>(s.len - offset, len - done);
    std::memcpy(out + done, s.ptr + offset, n);
    done += n;
    offset = 0;
  }
  return done;
}

size_t virtq_copy_to(const std::vector<VirtqSegment>& segs, uint64_t offset, const void* src,
                     size_t len) {
  const auto* in = static_cast<const uint8_t*>(src);
  size_t done = 0;
  for (const VirtqSegment& s : segs) {
    if (done == len) break;
    if (offset >= s.len) {
      offset -= s.len;
      continue;
    }
    size_t n = std::min<uint64_t>(s.len - offset, len - done);
    std::memcpy(s.ptr + offset, in + done, n);
    done += n;
    offset = 0;
  }
  return done;
}

Virtqueue::Virtqueue(mem::Bus& bus, uint16_t max_size)
    : bus_(bus), max_size_(max_size), size_(max_size) {}

void Virtqueue::reset() {
  disable();
  desc_addr = driver_addr = device_addr = 0;
  size_ = max_size_;
}

void Virtqueue::disable() {
  ready_ = false;
  broken_ = false;
  desc_ = avail_ = used_ = nullptr;
  in_flight_.clear();
  last_avail_ = used_idx_ = signalled_used_ = 0;
}

bool Virtqueue::map_areas(uint64_t n, uint8_t*& d, uint8_t*& a, uint8_t*& u) const {
  if (n == 0 || n > max_size_ || (n & (n - 1)) != 0) return false;
  // 2.7.2: alignment 16 for the descriptor table, 2 for the driver area, 4 for the
  // device area.
  if ((desc_addr & 15) || (driver_addr & 1) || (device_addr & 3)) return false;
  d = bus_.ram_ptr(desc_addr, kDescSize * n);
  a = bus_.ram_ptr(driver_addr, 6 + 2 * n);
  u = bus_.ram_ptr(device_addr, 6 + 8 * n);
  return d && a && u;
}

bool Virtqueue::enable(bool event_idx, bool indirect) {
  disable();
  uint8_t *d = nullptr, *a = nullptr, *u = nullptr;
  if (!map_areas(size_, d, a, u)) return false;
  desc_ = d;
  avail_ = a;
  used_ = u;
  event_idx_ = event_idx;
  indirect_ = indirect;
  // A fresh queue starts at the driver's current indexes, which are 0 after reset.
  last_avail_ = used_idx_ = signalled_used_ = 0;
  store16_relaxed(used_, 0);
  store16_release(used_ + 2, 0);
  bus_.mark_dirty(used_, 4);
  in_flight_.assign(size_, {});
  ready_ = true;
  return true;
}

Virtqueue::PopResult Virtqueue::fail() {
  broken_ = true;
  return PopResult::kBroken;
}

uint16_t Virtqueue::load_avail_idx() { return load16_acquire(avail_ + 2); }

bool Virtqueue::add_segment(VirtqChain& chain, const Desc& d, bool& seen_writable) {
  const bool writable = d.flags & kVirtqDescFWrite;
  if (!writable && seen_writable) return false;  // 2.7.4.2: readable before writable
  seen_writable |= writable;
  if (d.len == 0) return true;
  uint8_t* p = bus_.ram_ptr(d.addr, d.len);
  if (!p) return false;
  if (writable) {
    chain.writable.push_back({p, d.len});
    chain.writable_len += d.len;
  } else {
    chain.readable.push_back({p, d.len});
    chain.readable_len += d.len;
  }
  return true;
}

Virtqueue::PopResult Virtqueue::pop(VirtqChain& chain) {
  chain.clear();
  if (!ready_ || broken_) return broken_ ? PopResult::kBroken : PopResult::kEmpty;
  uint16_t avail_idx = load_avail_idx();
  if (avail_idx == last_avail_) {
    // Re-arm and look again: the driver may have added a buffer after our load but
    // before it read avail_event / used->flags.
    if (event_idx_) {
      store16_relaxed(used_ + 4 + 8 * size_, last_avail_);
      bus_.mark_dirty(used_ + 4 + 8 * size_, 2);
    }
    std::atomic_thread_fence(std::memory_order_seq_cst);
    avail_idx = load_avail_idx();
    if (avail_idx == last_avail_) return PopResult::kEmpty;
  }
  // The driver can be at most a whole ring ahead of us.
  if (static_cast<uint16_t>(avail_idx - last_avail_) > size_) return fail();

  uint16_t head;
  std::memcpy(&head, avail_ + 4 + 2 * (last_avail_ % size_), 2);
  if (head >= size_) return fail();
  chain.head = head;

  bool seen_writable = false;
  uint32_t count = 0;  // descriptors visited, bounded by the queue size (loop guard)
  uint16_t idx = head;
  for (;;) {
    if (++count > size_) return fail();
    Desc d;
    std::memcpy(&d, desc_ + kDescSize * idx, kDescSize);
    if (d.flags & kVirtqDescFIndirect) {
      // 2.7.5.3.1: only with the feature, never with NEXT, one level deep.
      if (!indirect_ || (d.flags & kVirtqDescFNext)) return fail();
      if (d.len == 0 || d.len % kDescSize != 0) return fail();
      const uint32_t n = d.len / kDescSize;
      if (n > kMaxIndirect) return fail();
      uint8_t* table = bus_.ram_ptr(d.addr, d.len);
      if (!table) return fail();
      uint32_t i = 0, visited = 0;
      for (;;) {
        if (++visited > n) return fail();  // revisits an entry: a loop
        Desc e;
        std::memcpy(&e, table + kDescSize * i, kDescSize);
        if (e.flags & kVirtqDescFIndirect) return fail();
        if (!add_segment(chain, e, seen_writable)) return fail();
        if (!(e.flags & kVirtqDescFNext)) break;
        if (e.next >= n) return fail();
        i = e.next;
      }
      break;
    }
    if (!add_segment(chain, d, seen_writable)) return fail();
    if (!(d.flags & kVirtqDescFNext)) break;
    if (d.next >= size_) return fail();
    idx = d.next;
  }
  ++last_avail_;
  // With EVENT_IDX: ask to be notified when the driver makes the next one available.
  if (event_idx_) {
    store16_relaxed(used_ + 4 + 8 * size_, last_avail_);
    bus_.mark_dirty(used_ + 4 + 8 * size_, 2);
  }
  if (head < in_flight_.size()) in_flight_[head] = chain.writable;  // reuses its capacity
  return PopResult::kChain;
}

void Virtqueue::unpop() { --last_avail_; }

void Virtqueue::push_used(uint16_t head, uint32_t len) {
  if (!ready_) return;
  uint8_t* elem = used_ + 4 + 8 * (used_idx_ % size_);
  const uint32_t id = head;
  std::memcpy(elem, &id, 4);
  std::memcpy(elem + 4, &len, 4);
  ++used_idx_;
  // 2.7.8.2: the element must be visible before the index that publishes it.
  store16_release(used_ + 2, used_idx_);
  // The dirty-page log, after the writes: a take between a write and its mark still
  // finds the bit in the next one. Every writable buffer of the chain, not just `len`
  // bytes of it (a device's count is not always exact, e.g. virtio-blk's status byte).
  if (head < in_flight_.size()) {
    for (const VirtqSegment& seg : in_flight_[head]) bus_.mark_dirty(seg.ptr, seg.len);
    in_flight_[head].clear();
  }
  bus_.mark_dirty(used_ + 2, 2);
  bus_.mark_dirty(elem, 8);
}

bool Virtqueue::needs_interrupt() {
  if (!ready_) return false;
  // Orders our used idx store before the load of used_event / avail flags (the driver
  // does the mirror image), so one side always sees the other's update.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint16_t old_idx = signalled_used_;
  const uint16_t new_idx = used_idx_;
  signalled_used_ = new_idx;
  if (old_idx == new_idx) return false;
  if (event_idx_) {
    const uint16_t used_event = load16_relaxed(avail_ + 4 + 2 * size_);
    // 2.7.10: interrupt if used_event lies in (old_idx, new_idx].
    return static_cast<uint16_t>(new_idx - used_event - 1) <
           static_cast<uint16_t>(new_idx - old_idx);
  }
  return !(load16_relaxed(avail_) & kVirtqAvailFNoInterrupt);
}

void Virtqueue::save_state(StateWriter& w) const {
  w.begin("virtqueue");
  w.u16(size_);
  w.u64(desc_addr);
  w.u64(driver_addr);
  w.u64(device_addr);
  w.b(ready_);
  w.b(broken_);
  w.b(event_idx_);
  w.b(indirect_);
  w.u16(last_avail_);
  w.u16(used_idx_);
  w.u16(signalled_used_);
  w.end();
}

void Virtqueue::load_state(StateReader& r) {
  disable();
  r.begin("virtqueue");
  const uint16_t size = r.u16();
  const uint64_t desc = r.u64(), driver = r.u64(), device = r.u64();
  const bool ready = r.b(), broken = r.b(), event_idx = r.b(), indirect = r.b();
  const uint16_t last_avail = r.u16(), used_idx = r.u16(), signalled = r.u16();
  if (!r.ok()) return;
  // Not ready: only the configuration registers matter (the guest may have written any
  // size; enable() checks it later). disable() keeps the indexes at 0.
  size_ = size;
  desc_addr = desc;
  driver_addr = driver;
  device_addr = device;
  if (!ready) {
    if (broken || last_avail || used_idx || signalled) r.fail("an idle queue has ring state");
    r.end();
    return;
  }
  uint8_t *d = nullptr, *a = nullptr, *u = nullptr;
  if (!map_areas(size, d, a, u)) {
    r.fail("queue size " + std::to_string(size) + " or ring addresses are not valid");
  } else if (static_cast<uint16_t>(last_avail - used_idx) > size) {
    r.fail("more buffers in flight than the queue holds");
  }
  r.end();
  if (!r.ok()) return;
  desc_ = d;
  avail_ = a;
  used_ = u;
  event_idx_ = event_idx;
  indirect_ = indirect;
  last_avail_ = last_avail;
  used_idx_ = used_idx;
  signalled_used_ = signalled;
  // No chain is in flight in a snapshot (devices save paused, their requests done), so
  // there are no writable buffers to remember for push_used.
  in_flight_.assign(size, {});
  broken_ = broken;
  ready_ = true;
}

}  // namespace nimbus::devices
