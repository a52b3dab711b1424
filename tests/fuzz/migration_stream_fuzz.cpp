// Fuzzes what a migration source controls of the target VMM: the whole stream
// (migration_wire.h) as run_target reads it from a socket, into a VM of 64 pages and one
// disk of 256 KiB. Nothing may crash, hang or write outside them; a stream that does not
// end with a state, kEnd and kCommit must never start the VM.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "vmm/migration.h"

namespace {

using namespace nimbus;
using namespace nimbus::vmm::migration;

class MemDisk : public backends::BlockBackend {
 public:
  std::vector<uint8_t> bytes = std::vector<uint8_t>(256 * 1024);
  uint64_t size() const override { return bytes.size(); }
  bool read_only() const override { return false; }
  Status read(uint64_t offset, uint8_t* buf, size_t len) override {
    if (offset > bytes.size() || len > bytes.size() - offset) abort();
    std::memcpy(buf, bytes.data() + offset, len);
    return Status();
  }
  Status write(uint64_t offset, const uint8_t* buf, size_t len) override {
    if (offset > bytes.size() || len > bytes.size() - offset) abort();  // the parser let it by
    std::memcpy(bytes.data() + offset, buf, len);
    return Status();
  }
  Status flush() override { return Status(); }
  Status discard(uint64_t, uint64_t) override { return Status(); }
};

class Target : public TargetVm {
 public:
  Status prepare(const nlohmann::json&, uint64_t ram_size,
                 const std::vector<uint64_t>& disk_sizes) override {
    if (ram_size != memory.size() || disk_sizes != std::vector<uint64_t>{disk.size()})
      return Status::invalid_argument("shape");
    return Status();
  }
  uint8_t* ram() override { return memory.data(); }
  std::vector<backends::BlockBackend*> disks() override { return {&disk}; }
  Status load_state(const std::vector<uint8_t>&) override { return Status(); }
  Status start() override { return Status(); }
  void discard() override {}
  std::vector<uint8_t> memory = std::vector<uint8_t>(64 * kPageSize);
  MemDisk disk;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  // The magic first, so that most inputs reach the records.
  std::thread writer([&] {
    Channel out(sv[0]);
    (void)out.write_all(kMagic, sizeof kMagic, 1000);
    (void)out.write_all(data, size, 1000);
    ::shutdown(sv[0], SHUT_WR);
    // Drain what the target answers so that it never blocks on a full buffer.
    char sink[4096];
    while (out.read_exact(sink, 1, 1000).ok()) {
    }
  });
  {
    Channel in(sv[1]);
    Target target;
    ProgressBoard progress;
    (void)run_target(target, in, progress);
    in.shutdown();
  }
  writer.join();
  return 0;
}
