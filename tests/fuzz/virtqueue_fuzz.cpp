// libFuzzer target: a hostile virtio driver. The input becomes guest RAM plus the queue's
// size, ring addresses, features and avail idx; the device side then parses every chain
// it can pop and runs each as a virtio-blk request over an in-memory disk. Must never
// crash, hang, or touch memory outside guest RAM and the disk.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "devices/virtio/blk/virtio_blk.h"
#include "devices/virtio/virtqueue.h"
#include "mem/bus.h"

namespace {

using nimbus::Status;
using nimbus::devices::VirtioBlk;
using nimbus::devices::VirtqChain;
using nimbus::devices::VirtqSegment;
using nimbus::devices::Virtqueue;

constexpr uint64_t kRamBase = 0x80000000;
constexpr uint64_t kRamSize = 64 * 1024;
constexpr size_t kHeader = 16;

class MemDisk : public nimbus::backends::BlockBackend {
 public:
  MemDisk(size_t size, bool ro) : data_(size), ro_(ro) {}
  uint64_t size() const override { return data_.size(); }
  bool read_only() const override { return ro_; }
  Status read(uint64_t off, uint8_t* buf, size_t len) override {
    if (off > data_.size() || len > data_.size() - off) std::abort();  // device must check
    std::memcpy(buf, data_.data() + off, len);
    return {};
  }
  Status write(uint64_t off, const uint8_t* buf, size_t len) override {
    if (ro_ || off > data_.size() || len > data_.size() - off) std::abort();
    std::memcpy(data_.data() + off, buf, len);
    return {};
  }
  Status flush() override { return {}; }
  Status discard(uint64_t off, uint64_t len) override {
    if (off > data_.size() || len > data_.size() - off) std::abort();
    return {};
  }

 private:
  std::vector<uint8_t> data_;
  bool ro_;
};

void check_inside(nimbus::mem::Bus& bus, const std::vector<VirtqSegment>& segs) {
  for (const VirtqSegment& s : segs) {
    if (s.ptr < bus.ram() || s.ptr + s.len > bus.ram() + bus.ram_size() || s.len == 0) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kHeader) return 0;
  static nimbus::mem::Bus bus(kRamBase, kRamSize);
  std::memset(bus.ram(), 0, kRamSize);
  std::memcpy(bus.ram(), data + kHeader, std::min<size_t>(size - kHeader, kRamSize));

  uint16_t h[8];
  std::memcpy(h, data, kHeader);
  // h[0]: queue size; h[1..3]: ring offsets into RAM (in bytes, may be misaligned or
  // point past RAM's end); h[4]: avail idx; h[5]: flags; h[6]: used idx start bias.
  Virtqueue vq(bus, 256);
  vq.set_size(h[0] & 0x1ff);
  const uint64_t span = 2 * kRamSize;  // half the choices lie outside RAM
  vq.desc_addr = kRamBase + (uint64_t{h[1]} * 16) % span;
  vq.driver_addr = kRamBase + (uint64_t{h[2]} * 2) % span;
  vq.device_addr = kRamBase + (uint64_t{h[3]} * 4) % span;
  if (h[5] & 0x100) vq.desc_addr = h[1];  // an arbitrary low address: not RAM
  const bool event_idx = h[5] & 1, indirect = h[5] & 2;
  if (!vq.enable(event_idx, indirect)) return 0;
  // The driver's avail idx (the rest of the ring comes from the input).
  uint8_t* avail = bus.ram_ptr(vq.driver_addr, 4);
  std::memcpy(avail + 2, &h[4], 2);

  static MemDisk disk(8 * 1024, false);
  static MemDisk ro_disk(4 * 1024, true);
  MemDisk& d = (h[5] & 4) ? ro_disk : disk;
  VirtioBlk::Stats stats;
  VirtqChain chain;
  // At most one ring's worth plus one: more would mean the queue produced chains the
  // driver never made available.
  for (unsigned n = 0; n <= 257; n++) {
    const Virtqueue::PopResult r = vq.pop(chain);
    if (r != Virtqueue::PopResult::kChain) break;
    if (n == 257) std::abort();
    check_inside(bus, chain.readable);
    check_inside(bus, chain.writable);
    if (chain.readable.size() + chain.writable.size() > 1024 + 256) std::abort();
    const uint32_t used = VirtioBlk::execute(d, "fuzz", chain, stats);
    if (used > chain.writable_len) std::abort();
    vq.push_used(chain.head, used);
    if (h[5] & 8) {
      vq.unpop();
      vq.pop(chain);
    }
    (void)vq.needs_interrupt();
  }
  return 0;
}
