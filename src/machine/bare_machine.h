// The bare-metal machine behind `nimbus run --bare`: RAM at 0x80000000, one hart in
// M-mode at the ELF's entry point, a sifive,test finisher at 0x100000 and the HTIF
// tohost/fromhost convention of Spike and the ISA test suites.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "common/status.h"

namespace nimbus::machine {

struct BareOptions {
  std::string elf_path;
  uint64_t ram_size = 256ull << 20;
  uint64_t max_insns = 0;      // 0: no limit
  std::FILE* trace = nullptr;  // one line per retired instruction
  std::string signature_path;  // begin_signature..end_signature dump, Spike's format
  unsigned signature_granularity = 4;
};

struct BareResult {
  enum class End { kPass, kFail, kInsnLimit };
  End end = End::kPass;
  uint64_t code = 0;  // the program's failure code (HTIF v>>1 or the finisher's code)
  uint64_t instructions = 0;
  double seconds = 0;
};

// Loads and runs the program to its verdict. Errors (bad ELF, segments outside RAM, an
// unwritable signature file) come back as a Status.
Result<BareResult> run_bare(const BareOptions& options);

}  // namespace nimbus::machine
