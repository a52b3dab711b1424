// Test tool: reads, writes or discards a byte range of a disk image through Nimbus's
// block backends, so scripts can check our writes with qemu-io and qemu's with us.
//   disk_io FILE write PATTERN OFFSET LEN   fill with the byte PATTERN, then flush
//   disk_io FILE read PATTERN OFFSET LEN    exit 1 unless every byte is PATTERN
//   disk_io FILE discard OFFSET LEN
//   disk_io FILE hold rw|ro                 open (and lock) it, say "held", wait to be killed
// Numbers take C syntax (0x...) and an optional K or M suffix.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backends/block/block_backend.h"

namespace {
uint64_t number(const char* text) {
  char* end = nullptr;
  uint64_t v = std::strtoull(text, &end, 0);
  if (*end == 'K' || *end == 'k') v <<= 10;
  if (*end == 'M' || *end == 'm') v <<= 20;
  return v;
}
int fail(const std::string& m) {
  std::fprintf(stderr, "disk_io: %s\n", m.c_str());
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || (argc < 5 && std::string(argv[2]) != "hold")) {
    return fail(
        "usage: disk_io FILE write|read PATTERN OFFSET LEN | discard OFFSET LEN | hold rw|ro");
  }
  std::string op = argv[2];
  nimbus::backends::DiskOptions options;
  options.path = argv[1];
  options.read_only = op == "read" || (op == "hold" && std::string(argv[3]) == "ro");
  auto disk = nimbus::backends::open_disk(options);
  if (!disk.ok()) return fail(disk.message());
  auto& d = **disk;
  if (op == "hold") {
    std::printf("held\n");
    std::fflush(stdout);
    for (;;) ::pause();
  }
  if (op == "discard") {
    nimbus::Status s = d.discard(number(argv[3]), number(argv[4]));
    if (s.ok()) s = d.flush();
    return s.ok() ? 0 : fail(s.message());
  }
  if (argc < 6) return fail("missing LEN");
  uint8_t pattern = static_cast<uint8_t>(number(argv[3]));
  uint64_t offset = number(argv[4]), len = number(argv[5]);
  constexpr uint64_t kChunk = 1 << 20;
  std::vector<uint8_t> buf(kChunk);
  for (uint64_t done = 0; done < len; done += kChunk) {
    size_t n = static_cast<size_t>(std::min(kChunk, len - done));
    if (op == "write") {
      std::fill(buf.begin(), buf.begin() + n, pattern);
      if (auto s = d.write(offset + done, buf.data(), n); !s.ok()) return fail(s.message());
    } else if (op == "read") {
      if (auto s = d.read(offset + done, buf.data(), n); !s.ok()) return fail(s.message());
      for (size_t i = 0; i < n; ++i) {
        if (buf[i] != pattern) {
          return fail("pattern mismatch at offset " + std::to_string(offset + done + i) + ": " +
                      std::to_string(buf[i]) + " != " + std::to_string(pattern));
        }
      }
    } else {
      return fail("unknown operation " + op);
    }
  }
  if (op == "write") {
    if (auto s = d.flush(); !s.ok()) return fail(s.message());
  }
  return 0;
}
