// A split virtqueue (virtio 1.2 section 2.7) seen from the device side: the descriptor
// table, the available ring (driver area) and the used ring (device area) live in guest
// RAM at guest-physical addresses the driver chose.
//
// The guest is hostile. Every address and length it gives is checked against guest RAM
// before use; a descriptor chain that loops, nests indirect tables, is longer than the
// queue, names an index out of range, puts device-readable after device-writable buffers,
// or points outside RAM makes pop() return kBroken, and the queue stays broken until the
// driver resets the device (the device then sets DEVICE_NEEDS_RESET). Each descriptor is
// read exactly once into host memory, so a guest that rewrites a descriptor while the
// device parses it changes nothing the device already checked.
//
// Threading: not locked. The transport configures it while the device is inactive; the
// device's own lock serialises pop/push/notification calls once it is active.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/state_io.h"
#include "mem/bus.h"

namespace nimbus::devices {

// Feature bits the transport and the ring care about (virtio 1.2 section 6).
constexpr uint64_t kVirtioFIndirectDesc = 1ull << 28;
constexpr uint64_t kVirtioFEventIdx = 1ull << 29;
constexpr uint64_t kVirtioFVersion1 = 1ull << 32;

// Descriptor flags (2.7.5) and ring flags (2.7.6, 2.7.8).
constexpr uint16_t kVirtqDescFNext = 1, kVirtqDescFWrite = 2, kVirtqDescFIndirect = 4;
constexpr uint16_t kVirtqAvailFNoInterrupt = 1;
constexpr uint16_t kVirtqUsedFNoNotify = 1;

// One guest buffer, already translated to host memory and checked to lie in RAM.
struct VirtqSegment {
  uint8_t* ptr;
  uint32_t len;
};

// A descriptor chain: device-readable segments first, then device-writable ones.
struct VirtqChain {
  uint16_t head = 0;
  std::vector<VirtqSegment> readable;
  std::vector<VirtqSegment> writable;
  uint64_t readable_len = 0;
  uint64_t writable_len = 0;

  void clear() {
    readable.clear();
    writable.clear();
    readable_len = writable_len = 0;
  }
};

// Scatter/gather copies over a segment list, treating it as one byte stream. They copy
// what fits and return the number of bytes copied.
size_t virtq_copy_from(const std::vector<VirtqSegment>& segs, uint64_t offset, void* dst,
                       size_t len);
size_t virtq_copy_to(const std::vector<VirtqSegment>& segs, uint64_t offset, const void* src,
                     size_t len);

class Virtqueue {
 public:
  enum class PopResult { kChain, kEmpty, kBroken };

  explicit Virtqueue(mem::Bus& bus, uint16_t max_size = 256);

  // --- Configuration (transport, while the device is inactive) ---
  uint16_t max_size() const { return max_size_; }
  uint16_t size() const { return size_; }
  void set_size(uint16_t n) { size_ = n; }
  uint64_t desc_addr = 0, driver_addr = 0, device_addr = 0;
  // Checks size (power of two, 1..max) and the three areas (alignment, inside RAM), and
  // caches host pointers to them. False leaves the queue not ready.
  bool enable(bool event_idx, bool indirect);
  void disable();
  bool ready() const { return ready_; }
  // Back to the state after device reset (addresses 0, size = max, not ready).
  void reset();

  // --- Processing (device, under its lock, only while ready) ---
  // Takes the next available chain. kEmpty also re-arms notifications (with EVENT_IDX it
  // publishes avail_event) and re-checks, so a buffer made available concurrently is not
  // missed. kBroken: the ring or chain is malformed; the queue refuses further work.
  PopResult pop(VirtqChain& chain);
  // Gives back the chain just popped (e.g. an RX frame did not fit); the next pop
  // returns the same head again.
  void unpop();
  // Puts (head, written bytes) in the used ring and publishes the new used idx. Marks the
  // chain's device-writable buffers and the used element in the dirty-page log
  // (mem/dirty_log.h), after writing, so call it after the device wrote the buffers.
  void push_used(uint16_t head, uint32_t len);
  // After a batch of push_used: whether the driver wants an interrupt now (EVENT_IDX's
  // used_event, or the NO_INTERRUPT flag without it). Also records what was signalled.
  bool needs_interrupt();
  bool broken() const { return broken_; }
  uint16_t last_avail_idx() const { return last_avail_; }
  uint16_t used_idx() const { return used_idx_; }

  // --- Snapshots (transport, while the device is paused or inactive) ---
  // Section "virtqueue": size, the three addresses, flags and ring indexes. Guest RAM is
  // not part of it.
  void save_state(StateWriter& w) const;
  // Restores the configuration and indexes. A ready queue's addresses go through the same
  // checks as enable() (against the bus's RAM, which must be mapped; its contents are
  // neither read nor written, so RAM may be restored before or after). Invalid values
  // fail `r` and leave the queue disabled.
  void load_state(StateReader& r);

 private:
  struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
  };
  // The size and area checks of enable(); on success sets the three host pointers.
  bool map_areas(uint64_t n, uint8_t*& d, uint8_t*& a, uint8_t*& u) const;
  bool add_segment(VirtqChain& chain, const Desc& d, bool& seen_writable);
  PopResult fail();
  uint16_t load_avail_idx();

  mem::Bus& bus_;
  uint16_t max_size_;
  uint16_t size_;
  bool ready_ = false;
  bool broken_ = false;
  bool event_idx_ = false;
  bool indirect_ = false;
  uint8_t* desc_ = nullptr;      // size_ * 16 bytes
  uint8_t* avail_ = nullptr;     // flags, idx, ring[size_], used_event
  uint8_t* used_ = nullptr;      // flags, idx, ring[size_] of {id, len}, avail_event
  uint16_t last_avail_ = 0;      // next avail ring entry to take
  uint16_t used_idx_ = 0;        // next used ring entry to fill
  uint16_t signalled_used_ = 0;  // used_idx_ at the last needs_interrupt()
  // The device-writable segments of each chain popped and not yet used, by head: push_used
  // marks them in the bus's dirty-page log (the device wrote them through host pointers).
  // Recorded whether or not logging is on, since it may start while a chain is in flight.
  std::vector<std::vector<VirtqSegment>> in_flight_;
};

}  // namespace nimbus::devices
