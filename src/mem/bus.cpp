#include "mem/bus.h"

#include <sys/mman.h>

#include <cstring>
#include <new>

namespace nimbus::mem {

Bus::Bus(uint64_t ram_base, uint64_t ram_size) : ram_base_(ram_base), ram_size_(ram_size) {
  // MAP_NORESERVE: untouched guest pages cost the host nothing.
  void* p = mmap(nullptr, ram_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  ram_ = static_cast<uint8_t*>(p);
}

Bus::~Bus() { munmap(ram_, ram_size_); }

void Bus::map(uint64_t base, uint64_t size, MmioDevice* device) {
  regions_.push_back({base, size, device});
}

const Bus::Region* Bus::find(uint64_t paddr, unsigned size) const {
  for (const Region& r : regions_) {
    if (paddr - r.base < r.size && size <= r.size - (paddr - r.base)) return &r;
  }
  return nullptr;
}

bool Bus::read(uint64_t paddr, unsigned size, uint64_t& value) {
  if (uint8_t* p = ram_ptr(paddr, size)) {
    value = 0;
    std::memcpy(&value, p, size);  // little-endian host
    return true;
  }
  const Region* r = find(paddr, size);
  if (!r) return false;
  return r->device->read(paddr - r->base, size, value);
}

bool Bus::write(uint64_t paddr, unsigned size, uint64_t value) {
  if (uint8_t* p = ram_ptr(paddr, size)) {
    std::memcpy(p, &value, size);
    return true;
  }
  const Region* r = find(paddr, size);
  if (!r) return false;
  return r->device->write(paddr - r->base, size, value);
}

}  // namespace nimbus::mem
