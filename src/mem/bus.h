// The physical address space: guest RAM plus memory-mapped devices.
// The CPU sees only this: read/write of physical addresses and a host pointer into RAM
// for its fast paths.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "mem/dirty_log.h"

namespace nimbus::mem {

// A memory-mapped device. Offsets are relative to the device's base. Accesses are 1, 2,
// 4 or 8 bytes and naturally aligned (the CPU splits or faults anything else).
class MmioDevice {
 public:
  virtual ~MmioDevice() = default;
  // Returns false for an access the device does not decode (becomes an access fault).
  virtual bool read(uint64_t offset, unsigned size, uint64_t& value) = 0;
  virtual bool write(uint64_t offset, unsigned size, uint64_t value) = 0;
};

class Bus {
 public:
  // Guest RAM of `size` bytes at physical address `base` (anonymous, zero-filled).
  Bus(uint64_t ram_base, uint64_t ram_size);
  ~Bus();
  Bus(const Bus&) = delete;
  Bus& operator=(const Bus&) = delete;

  uint64_t ram_base() const { return ram_base_; }
  uint64_t ram_size() const { return ram_size_; }
  uint8_t* ram() { return ram_; }

  // Host pointer to [paddr, paddr+len) if that whole range is RAM, else nullptr.
  uint8_t* ram_ptr(uint64_t paddr, uint64_t len) {
    uint64_t off = paddr - ram_base_;
    if (off < ram_size_ && len <= ram_size_ - off) return ram_ + off;
    return nullptr;
  }
  bool is_ram(uint64_t paddr) const { return paddr - ram_base_ < ram_size_; }

  // The dirty-page log of RAM (mem/dirty_log.h). Whoever writes RAM through a host
  // pointer (ram(), ram_ptr()) while a machine runs marks what it wrote, after writing;
  // write() below does.
  DirtyLog& dirty_log() { return dirty_; }
  // Marks [host, host+len), a range inside ram(), when logging is on.
  void mark_dirty(const void* host, uint64_t len) {
    dirty_.mark(static_cast<uint64_t>(static_cast<const uint8_t*>(host) - ram_), len);
  }

  // Faults in the RAM pages of [paddr, paddr+len) (clipped to RAM) in one go, as zero
  // pages, before the VMM fills them: much cheaper than taking the first-touch faults
  // one page at a time. Only a hint: does nothing where the host cannot.
  void populate(uint64_t paddr, uint64_t len);

  // Maps a device at [base, base+size). The bus does not own the device.
  void map(uint64_t base, uint64_t size, MmioDevice* device);

  // Reads or writes RAM or a device; false means nothing answers at that address
  // (the CPU raises an access fault).
  bool read(uint64_t paddr, unsigned size, uint64_t& value);
  bool write(uint64_t paddr, unsigned size, uint64_t value);

 private:
  struct Region {
    uint64_t base;
    uint64_t size;
    MmioDevice* device;
  };
  const Region* find(uint64_t paddr, unsigned size) const;

  uint64_t ram_base_;
  uint64_t ram_size_;
  uint8_t* ram_;
  std::vector<Region> regions_;
  DirtyLog dirty_;
};

}  // namespace nimbus::mem
