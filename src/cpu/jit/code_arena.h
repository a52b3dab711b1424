// Memory for generated code, never writable and executable through the same address: one
// memfd mapped twice, read-write for the compiler and read-execute for running (W^X).
#pragma once

#include <cstddef>
#include <cstdint>

namespace nimbus::cpu::jit {

class CodeArena {
 public:
  explicit CodeArena(size_t bytes);
  ~CodeArena();
  CodeArena(const CodeArena&) = delete;
  CodeArena& operator=(const CodeArena&) = delete;

  // False when the host refused the mappings (the JIT then stays off).
  bool ok() const { return exec_ != nullptr; }
  // Offset of executable address `p` in the arena (its offset in the memfd, as perf shows).
  size_t offset_of(const void* p) const { return static_cast<const uint8_t*>(p) - exec_; }

  // Copies `n` bytes of code in; returns their executable address, or nullptr when the
  // arena is full (then reset() it with everything that points into it).
  const void* add(const uint8_t* code, size_t n);
  // The executable address the next add() puts its code at (code may jump to addresses
  // outside itself, relative to where it will run).
  uintptr_t next() const {
    return reinterpret_cast<uintptr_t>(exec_) + ((used_ + 15) & ~size_t{15});
  }
  void reset() { used_ = 0; }
  // reset(), and gives the memory back to the host (it is faulted in again when reused).
  void release();
  size_t used() const { return used_; }
  // The writable alias of executable address `p` in this arena (to patch code in place).
  uint8_t* writable(const void* p) const {
    return write_ + (static_cast<const uint8_t*>(p) - exec_);
  }

 private:
  int fd_ = -1;
  size_t size_ = 0;
  size_t used_ = 0;
  uint8_t* write_ = nullptr;
  uint8_t* exec_ = nullptr;
};

}  // namespace nimbus::cpu::jit
