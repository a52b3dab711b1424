// Reading ELF64 RISC-V executables: loadable segments by physical address, and symbols.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "mem/bus.h"

namespace nimbus::machine {

struct ElfSegment {
  uint64_t paddr;
  uint64_t offset;  // in the file
  uint64_t filesz;
  uint64_t memsz;
};

struct ElfImage {
  uint64_t entry = 0;
  std::vector<ElfSegment> segments;
  std::map<std::string, uint64_t> symbols;  // from .symtab, if present
  std::vector<uint8_t> bytes;               // the whole file
};

// Reads and validates an ELF64 little-endian RISC-V executable. Every error message
// names the file and says what is wrong with it.
Result<ElfImage> read_elf(const std::string& path);
// The same checks on a file already read (`path` names it in messages).
Result<ElfImage> parse_elf(std::vector<uint8_t> bytes, const std::string& path);

// Copies the segments into guest RAM (and zero-fills their bss). Fails, touching nothing,
// if a segment lies outside RAM.
Status load_elf(const ElfImage& image, mem::Bus& bus, const std::string& path);

}  // namespace nimbus::machine
