// The JIT: compiles a predecoded block's instructions to x86-64 code (the block
// interpreter in interp.cpp decides when, and runs what the JIT does not take).
//
// Compiled code keeps the guest registers it uses most in host registers for the length
// of the block, loads and stores through the same software TLB as the interpreter (with
// the interpreter's slow paths for misses, misaligned accesses and devices), and runs a
// block that branches back to its own start as a native loop until the budget it is given
// runs out. It returns to the interpreter at every other exit.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu/isa/decode.h"

namespace nimbus::cpu {
class Hart;
}

namespace nimbus::cpu::jit {

class CodeArena;

// One instruction of the block: decoded, and its byte offset from the block's start.
struct Insn {
  isa::Decoded d;
  uint16_t off;
};

// What compiled code returns: (kind << 16) | slot, slot being the index of the instruction
// the exit is about (for kExitContinue, the first one not run: the interpreter goes on
// there, and slot == ninsns means the block is done with next_pc set).
enum ExitKind : uint32_t {
  kExitContinue = 0,
  kExitTaken = 1,  // the conditional branch at slot was taken (next_pc set)
  kExitBreak = 2,  // the instruction at slot trapped (take_trap ran)
};

// Compiled code: called with the hart and the guest address of the block's first
// instruction (the same host code serves every virtual address it is mapped at).
using NativeBlock = uint32_t (*)(Hart* h, uint64_t bpc);

// The slow paths compiled code calls (interp.cpp): they set h.pc to `pc` first, and on
// failure have taken the trap.
struct LoadResult {
  uint64_t value;
  uint64_t ok;
};
struct SlowPaths {
  // kind = size | (sign-extend ? 0x100 : 0)
  LoadResult (*load)(Hart* h, uint64_t va, uint64_t pc, uint64_t kind);
  uint64_t (*store)(Hart* h, uint64_t va, uint64_t value, uint64_t pc, uint64_t size);
};

// Where compiled code finds the hart's fields (byte offsets from the Hart).
struct Layout {
  int32_t x, next_pc, data_ctx, tlb_load, tlb_store, loop_limit, loop_done, tlb_salt;
};
Layout layout_of(const Hart& h);

// Compiles the longest supported prefix of the block's `n` instructions into `arena`.
// nullptr when that prefix is too short to pay or the arena is full (`full` set then).
NativeBlock compile_block(const Insn* insns, unsigned n, const Layout& layout,
                          const SlowPaths& slow, CodeArena& arena, bool& full);

}  // namespace nimbus::cpu::jit
