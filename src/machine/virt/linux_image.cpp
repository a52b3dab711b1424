#include "machine/virt/linux_image.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace nimbus::machine::virt {

namespace {

uint64_t le(const uint8_t* p, size_t bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes; i++) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

constexpr size_t kPeSignatureAndCoff = 24;  // "PE\0\0" and the 20-byte COFF file header
constexpr size_t kPeSectionHeader = 40;

// The bytes an EFI stub kernel's PE/COFF header says the file holds: the end of the last
// section's raw data (at least the headers themselves). 0 when the Image has no PE/COFF
// header, or when it lies beyond `head` in a file long enough to hold it (not checked).
uint64_t pe_file_bytes(const std::vector<uint8_t>& head, uint64_t file_size) {
  if (head[0] != 'M' || head[1] != 'Z') return 0;
  const uint64_t pe = le(head.data() + 60, 4);
  if (pe + kPeSignatureAndCoff > file_size) return pe + kPeSignatureAndCoff;
  if (pe + kPeSignatureAndCoff > head.size()) return 0;
  const uint8_t* coff = head.data() + pe;
  if (std::memcmp(coff, "PE\0\0", 4) != 0) return 0;
  const uint64_t sections = le(coff + 6, 2);
  const uint64_t table = pe + kPeSignatureAndCoff + le(coff + 20, 2);
  const uint64_t table_end = table + sections * kPeSectionHeader;
  if (table_end > file_size) return table_end;
  if (table_end > head.size()) return 0;
  uint64_t end = table_end;
  for (uint64_t i = 0; i < sections; i++) {
    const uint8_t* s = head.data() + table + i * kPeSectionHeader;
    const uint64_t raw_size = le(s + 16, 4), raw_offset = le(s + 20, 4);
    if (raw_size != 0) end = std::max(end, raw_offset + raw_size);
  }
  return end;
}

}  // namespace

Result<LinuxImageHeader> parse_linux_image(const std::vector<uint8_t>& head, uint64_t file_size,
                                           const std::string& path) {
  if (head.size() >= 4 && std::memcmp(head.data(),
                                      "\x7f"
                                      "ELF",
                                      4) == 0) {
    return Status::error(fmt::format(
        "kernel '{}' is an ELF file; pass the raw Image (arch/riscv/boot/Image)", path));
  }
  if (head.size() < kLinuxImageHeaderBytes) {
    return Status::error(fmt::format(
        "kernel '{}' is not a RISC-V Linux Image ({} bytes, shorter than the {}-byte header)", path,
        file_size, kLinuxImageHeaderBytes));
  }
  if (std::memcmp(head.data() + 56, "RSC\x05", 4) != 0) {
    return Status::error(
        fmt::format("kernel '{}' is not a RISC-V Linux Image (no RSC\\x05 magic)", path));
  }
  LinuxImageHeader h;
  h.text_offset = le(head.data() + 8, 8);
  h.image_size = le(head.data() + 16, 8);
  h.file_size = file_size;
  // A file cut short would otherwise boot into zeros (or nothing) and sit silent.
  if (const uint64_t need = pe_file_bytes(head, file_size); need > file_size) {
    return Status::error(fmt::format(
        "kernel '{}' is truncated: its header describes at least {} bytes, the file has {}", path,
        need, file_size));
  }
  return h;
}

}  // namespace nimbus::machine::virt
