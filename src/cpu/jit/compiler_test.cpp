// Which instructions the JIT takes comes from the table's jit column alone (that each of
// them has an emitter is checked when compiler.cpp compiles): a block starting with a row
// that says yes is compiled, one starting with a row that says no is left to the
// interpreter.
#include "cpu/jit/compiler.h"

#include <gtest/gtest.h>

#include <vector>

#include "cpu/hart.h"
#include "cpu/isa/insn_class.h"
#include "cpu/jit/code_arena.h"
#include "mem/bus.h"

namespace nimbus::cpu::jit {
namespace {

using isa::Op;

LoadResult no_load(Hart*, uint64_t, uint64_t, uint64_t) { return {0, 0}; }
uint64_t no_store(Hart*, uint64_t, uint64_t, uint64_t, uint64_t) { return 0; }

// An encoding of the row: its match bits, with x5, x6, x7 in whichever of the rd, rs1
// and rs2 fields its mask leaves open (immediates zero).
// An F/D row's open rounding-mode field says dynamic (7), the mode compilers emit.
uint32_t encoding_of(const isa::Row& row) {
  uint32_t fields = (5u << 7) | (6u << 15) | (7u << 20);
  if (isa::class_of(row.op) == isa::Class::FP) fields |= 7u << 12;
  return row.match | (fields & ~row.mask);
}

// The fused multiply-adds are compiled only on a host with FMA3.
bool needs_fma(Op op) {
  return op == Op::fmadd_s || op == Op::fmsub_s || op == Op::fnmsub_s || op == Op::fnmadd_s ||
         op == Op::fmadd_d || op == Op::fmsub_d || op == Op::fnmsub_d || op == Op::fnmadd_d;
}

TEST(JitCompiler, CompilesExactlyTheRowsWhoseJitColumnSaysYes) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "the JIT emits x86-64";
#endif
  mem::Bus bus(0x80000000, 1 << 20);
  Hart hart(bus, 0);
  const Layout layout = layout_of(hart);
  const SlowPaths slow{no_load, no_store};
  CodeArena arena(1 << 20);
  const isa::Decoded addi = isa::decode(0x00128293);  // addi x5, x5, 1
  unsigned compiled = 0;
  for (unsigned i = 0; i < isa::kRowCount; i++) {
    const isa::Row& row = isa::kRows[i];
    if (row.compressed) continue;
    SCOPED_TRACE(row.name);
    const isa::Decoded d = isa::decode(encoding_of(row));
    ASSERT_EQ(d.op, row.op);
    // The block the interpreter would build: the instruction, then (unless it ends the
    // block) enough others for the JIT to find it worth compiling.
    std::vector<Insn> insns{{d, 0}};
    if (!isa::ends_block(d.op)) {
      for (uint16_t k = 1; k <= 3; k++) insns.push_back({addi, static_cast<uint16_t>(k * 4)});
    }
    bool full = false;
    Compiled out;
    compile_block(insns.data(), static_cast<unsigned>(insns.size()), &insns, 0,
                  static_cast<uint32_t>(insns.size() * 4), layout, slow, arena, full, out);
    ASSERT_FALSE(full);
    EXPECT_EQ(out.code != nullptr,
              isa::jit_compiled(row.op) && (!needs_fma(row.op) || host_has_fma()));
    compiled += out.code != nullptr;
  }
  EXPECT_GT(compiled, 0u);
}

}  // namespace
}  // namespace nimbus::cpu::jit
