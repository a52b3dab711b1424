// Test-only helpers: a fake virtio driver that programs a VirtioMmio exactly as Linux's
// virtio_mmio driver does, and a driver-side split ring built in a mem::Bus's RAM.
// Included only by *_test.cpp files.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "devices/virtio/virtio_mmio.h"
#include "devices/virtio/virtqueue.h"

namespace nimbus::devices::testing {

constexpr uint64_t kRamBase = 0x80000000;
constexpr uint64_t kRamSize = 16 << 20;

inline void poke(mem::Bus& bus, uint64_t pa, const void* p, size_t n) {
  uint8_t* h = bus.ram_ptr(pa, n);
  ASSERT_NE(h, nullptr);
  std::memcpy(h, p, n);
}
inline void peek(mem::Bus& bus, uint64_t pa, void* p, size_t n) {
  uint8_t* h = bus.ram_ptr(pa, n);
  ASSERT_NE(h, nullptr);
  std::memcpy(p, h, n);
}
template <typename T>
void put(mem::Bus& bus, uint64_t pa, T v) {
  poke(bus, pa, &v, sizeof(v));
}
template <typename T>
T get(mem::Bus& bus, uint64_t pa) {
  T v{};
  peek(bus, pa, &v, sizeof(v));
  return v;
}

struct Buf {
  uint64_t addr;
  uint32_t len;
  bool write;
};

// The driver's side of one split queue: desc table, avail ring, used ring at fixed RAM
// addresses. Descriptors are allocated linearly (wrapping).
struct GuestRing {
  mem::Bus& bus;
  uint16_t size;
  uint64_t desc, avail, used;
  uint16_t next_desc = 0, avail_idx = 0, last_used = 0;

  GuestRing(mem::Bus& b, uint64_t base, uint16_t n)
      : bus(b),
        size(n),
        desc(base),
        avail(base + 16ull * n),
        used((base + 16ull * n + 6 + 2ull * n + 4095) & ~4095ull) {
    std::vector<uint8_t> zero(used + 6 + 8ull * n - base);
    poke(bus, base, zero.data(), zero.size());
  }

  void write_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    uint8_t d[16];
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
    poke(bus, desc + 16ull * i, d, 16);
  }
  // Writes a chain of direct descriptors; returns the head index (not yet available).
  uint16_t build(const std::vector<Buf>& bufs) {
    const uint16_t head = next_desc;
    for (size_t k = 0; k < bufs.size(); k++) {
      const uint16_t i = static_cast<uint16_t>((head + k) % size);
      const bool last = k + 1 == bufs.size();
      write_desc(i, bufs[k].addr, bufs[k].len,
                 static_cast<uint16_t>((bufs[k].write ? kVirtqDescFWrite : 0) |
                                       (last ? 0 : kVirtqDescFNext)),
                 static_cast<uint16_t>((i + 1) % size));
    }
    next_desc = static_cast<uint16_t>((head + bufs.size()) % size);
    return head;
  }
  // Writes an indirect table at `table` and one descriptor pointing at it.
  uint16_t build_indirect(uint64_t table, const std::vector<Buf>& bufs) {
    for (size_t k = 0; k < bufs.size(); k++) {
      uint8_t d[16];
      const uint64_t a = bufs[k].addr;
      const uint32_t l = bufs[k].len;
      const uint16_t f = static_cast<uint16_t>((bufs[k].write ? kVirtqDescFWrite : 0) |
                                               (k + 1 < bufs.size() ? kVirtqDescFNext : 0));
      const uint16_t nx = static_cast<uint16_t>(k + 1);
      std::memcpy(d, &a, 8);
      std::memcpy(d + 8, &l, 4);
      std::memcpy(d + 12, &f, 2);
      std::memcpy(d + 14, &nx, 2);
      poke(bus, table + 16 * k, d, 16);
    }
    const uint16_t head = next_desc;
    write_desc(head, table, static_cast<uint32_t>(16 * bufs.size()), kVirtqDescFIndirect, 0);
    next_desc = static_cast<uint16_t>((head + 1) % size);
    return head;
  }
  void publish(uint16_t head) {
    put<uint16_t>(bus, avail + 4 + 2ull * (avail_idx % size), head);
    ++avail_idx;
    // As the Linux driver: the ring entry before the index that publishes it.
    std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(bus.ram_ptr(avail + 2, 2)))
        .store(avail_idx, std::memory_order_seq_cst);
  }
  uint16_t add(const std::vector<Buf>& bufs) {
    const uint16_t h = build(bufs);
    publish(h);
    return h;
  }
  uint16_t used_idx() {
    return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(bus.ram_ptr(used + 2, 2)))
        .load(std::memory_order_acquire);
  }
  // Waits until `n` more used entries than consumed so far exist.
  bool wait_used(uint16_t n, int timeout_ms = 5000) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (static_cast<uint16_t>(used_idx() - last_used) < n) {
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return true;
  }
  // Takes the next used element: {id, len}.
  std::pair<uint32_t, uint32_t> take_used() {
    const uint64_t e = used + 4 + 8ull * (last_used % size);
    ++last_used;
    return {get<uint32_t>(bus, e), get<uint32_t>(bus, e + 4)};
  }
  void set_used_event(uint16_t v) { put<uint16_t>(bus, avail + 4 + 2ull * size, v); }
  uint16_t avail_event() { return get<uint16_t>(bus, used + 4 + 8ull * size); }
  void set_avail_flags(uint16_t f) { put<uint16_t>(bus, avail, f); }
};

// Programs a VirtioMmio like Linux's virtio_mmio + virtio core.
struct FakeDriver {
  VirtioMmio& dev;

  uint32_t rd(uint64_t off) {
    uint64_t v = 0;
    EXPECT_TRUE(dev.read(off, 4, v));
    return static_cast<uint32_t>(v);
  }
  void wr(uint64_t off, uint32_t v) { EXPECT_TRUE(dev.write(off, 4, v)); }
  uint64_t device_features() {
    wr(VirtioMmio::kDeviceFeaturesSel, 1);
    uint64_t f = uint64_t{rd(VirtioMmio::kDeviceFeatures)} << 32;
    wr(VirtioMmio::kDeviceFeaturesSel, 0);
    return f | rd(VirtioMmio::kDeviceFeatures);
  }
  // Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK. Returns whether FEATURES_OK stuck.
  bool negotiate(uint64_t wanted) {
    wr(VirtioMmio::kStatus, 0);
    EXPECT_EQ(rd(VirtioMmio::kMagicValue), VirtioMmio::kMagic);
    EXPECT_EQ(rd(VirtioMmio::kVersion), 2u);
    wr(VirtioMmio::kStatus, VirtioMmio::kStatusAcknowledge);
    wr(VirtioMmio::kStatus, VirtioMmio::kStatusAcknowledge | VirtioMmio::kStatusDriver);
    const uint64_t f = device_features() & wanted;
    wr(VirtioMmio::kDriverFeaturesSel, 1);
    wr(VirtioMmio::kDriverFeatures, static_cast<uint32_t>(f >> 32));
    wr(VirtioMmio::kDriverFeaturesSel, 0);
    wr(VirtioMmio::kDriverFeatures, static_cast<uint32_t>(f));
    wr(VirtioMmio::kStatus,
       VirtioMmio::kStatusAcknowledge | VirtioMmio::kStatusDriver | VirtioMmio::kStatusFeaturesOk);
    return rd(VirtioMmio::kStatus) & VirtioMmio::kStatusFeaturesOk;
  }
  void setup_queue(unsigned q, const GuestRing& r) {
    wr(VirtioMmio::kQueueSel, q);
    EXPECT_EQ(rd(VirtioMmio::kQueueReady), 0u);
    EXPECT_GE(rd(VirtioMmio::kQueueNumMax), r.size);
    wr(VirtioMmio::kQueueNum, r.size);
    wr(VirtioMmio::kQueueDescLow, static_cast<uint32_t>(r.desc));
    wr(VirtioMmio::kQueueDescHigh, static_cast<uint32_t>(r.desc >> 32));
    wr(VirtioMmio::kQueueDriverLow, static_cast<uint32_t>(r.avail));
    wr(VirtioMmio::kQueueDriverHigh, static_cast<uint32_t>(r.avail >> 32));
    wr(VirtioMmio::kQueueDeviceLow, static_cast<uint32_t>(r.used));
    wr(VirtioMmio::kQueueDeviceHigh, static_cast<uint32_t>(r.used >> 32));
    wr(VirtioMmio::kQueueReady, 1);
  }
  void driver_ok() {
    wr(VirtioMmio::kStatus, VirtioMmio::kStatusAcknowledge | VirtioMmio::kStatusDriver |
                                VirtioMmio::kStatusFeaturesOk | VirtioMmio::kStatusDriverOk);
  }
  void notify(unsigned q) { wr(VirtioMmio::kQueueNotify, q); }
  // The interrupt handler: read and acknowledge InterruptStatus.
  uint32_t ack() {
    const uint32_t s = rd(VirtioMmio::kInterruptStatus);
    wr(VirtioMmio::kInterruptAck, s);
    return s;
  }
  bool needs_reset() { return rd(VirtioMmio::kStatus) & VirtioMmio::kStatusNeedsReset; }
  uint64_t config(uint64_t off, unsigned size) {
    uint64_t v = 0;
    EXPECT_TRUE(dev.read(VirtioMmio::kConfig + off, size, v));
    return v;
  }
};

// A snapshot's RAM restore: copies all of `from`'s RAM into `to` (same layout).
inline void copy_ram(mem::Bus& from, mem::Bus& to) {
  std::memcpy(to.ram_ptr(kRamBase, kRamSize), from.ram_ptr(kRamBase, kRamSize), kRamSize);
}

// The same driver-side ring on another bus (after copy_ram), with the same indexes.
inline GuestRing clone_ring(mem::Bus& to, const GuestRing& r) {
  std::vector<uint8_t> keep(r.used + 6 + 8ull * r.size - r.desc);
  std::memcpy(keep.data(), to.ram_ptr(r.desc, keep.size()), keep.size());
  GuestRing g(to, r.desc, r.size);  // zeroes the ring area: put the contents back
  std::memcpy(to.ram_ptr(r.desc, keep.size()), keep.data(), keep.size());
  g.next_desc = r.next_desc;
  g.avail_idx = r.avail_idx;
  g.last_used = r.last_used;
  return g;
}

// Polls `pred` until true or timeout.
template <typename F>
bool wait_for(F pred, int timeout_ms = 5000) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

// A 16-entry queue over guest rings in a fresh bus, enabled-ready: the fixture of the
// virtqueue tests (behaviour and state).
struct QueueFixture : ::testing::Test {
  mem::Bus bus{kRamBase, kRamSize};
  GuestRing ring{bus, kRamBase + 0x10000, 16};
  Virtqueue vq{bus, 256};
  VirtqChain chain;

  void SetUp() override {
    vq.set_size(16);
    vq.desc_addr = ring.desc;
    vq.driver_addr = ring.avail;
    vq.device_addr = ring.used;
  }
};

}  // namespace nimbus::devices::testing
