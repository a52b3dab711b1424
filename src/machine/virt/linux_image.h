// The header of a RISC-V Linux Image (arch/riscv/boot/Image; the kernel's
// Documentation/arch/riscv/boot-image-header.rst): 64 bytes at the start of the file,
//
//   0  code0, code1      "MZ..." when the kernel carries an EFI stub
//   8  text_offset       u64 LE: where the Image goes, from the start of RAM
//   16 image_size        u64 LE: bytes it occupies in RAM (the file plus its bss)
//   24 flags, version, res1, res2, magic "RISCV\0\0\0" (deprecated)
//   56 magic2            "RSC\x05"
//   60 res3              u32 LE: offset of the PE/COFF header (EFI stub kernels)
//
// and, in an EFI stub kernel, a PE/COFF section table whose raw data extents say how long
// the file must be: that is how a truncated Image is told from a whole one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace nimbus::machine::virt {

constexpr size_t kLinuxImageHeaderBytes = 64;
// How much of the start of the file parse_linux_image wants (the header and, in practice,
// the PE/COFF header and section table right after it).
constexpr size_t kLinuxImageHeadBytes = 4096;

struct LinuxImageHeader {
  uint64_t text_offset = 0;
  uint64_t image_size = 0;  // 0 in an Image whose header does not give it
  uint64_t file_size = 0;
  // What the kernel occupies in RAM from text_offset: its header's image_size, or the file
  // when that is larger.
  uint64_t footprint() const { return image_size > file_size ? image_size : file_size; }
};

// `head` is the first min(file_size, kLinuxImageHeadBytes) bytes of the file at `path`.
// Refuses, with a message naming the file: an ELF file (vmlinux, not Image), a file with
// no Image header, and a file shorter than its header says it is.
Result<LinuxImageHeader> parse_linux_image(const std::vector<uint8_t>& head, uint64_t file_size,
                                           const std::string& path);

}  // namespace nimbus::machine::virt
