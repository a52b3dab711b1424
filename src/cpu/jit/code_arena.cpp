#include "cpu/jit/code_arena.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace nimbus::cpu::jit {

CodeArena::CodeArena(size_t bytes) : size_(bytes) {
  const int fd = memfd_create("nimbus-jit", MFD_CLOEXEC);
  if (fd < 0) return;
  fd_ = fd;
  if (ftruncate(fd, static_cast<off_t>(bytes)) == 0) {
    void* w = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    void* x = mmap(nullptr, bytes, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
    if (w != MAP_FAILED && x != MAP_FAILED) {
      write_ = static_cast<uint8_t*>(w);
      exec_ = static_cast<uint8_t*>(x);
    } else {
      if (w != MAP_FAILED) munmap(w, bytes);
      if (x != MAP_FAILED) munmap(x, bytes);
    }
  }
  if (exec_ == nullptr) {
    close(fd_);
    fd_ = -1;
  }
}

CodeArena::~CodeArena() {
  if (exec_ != nullptr) {
    munmap(write_, size_);
    munmap(exec_, size_);
    close(fd_);
  }
}

void CodeArena::release() {
  reset();
  if (fd_ >= 0)
    fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(size_));
}

const void* CodeArena::add(const uint8_t* code, size_t n) {
  const size_t start = (used_ + 15) & ~size_t{15};
  if (exec_ == nullptr || start + n > size_) return nullptr;
  std::memcpy(write_ + start, code, n);
  used_ = start + n;
  return exec_ + start;
}

}  // namespace nimbus::cpu::jit
