// The JIT engine on its own: it compiles a hot loop (so the differential test in
// src/cpu/jit_diff_test.cpp compares compiled code, not the interpreter with itself) and
// the loop's result and counts are right. Encodings from binutils.
#include <gtest/gtest.h>

#include <cstring>

#include "cpu/hart.h"
#include "mem/bus.h"

namespace nimbus::cpu {
namespace {

constexpr uint64_t kBase = 0x80000000;

struct ThresholdOne {
  ThresholdOne() : saved(jit_hot_threshold()) { set_jit_hot_threshold(1); }
  ~ThresholdOne() { set_jit_hot_threshold(saved); }
  unsigned saved;
};

uint64_t run_count_loop(EngineKind kind, uint64_t& compiled) {
  ThresholdOne t;
  mem::Bus bus(kBase, 1 << 20);
  Hart hart(bus, 0);
  hart.reset(kBase);
  hart.set_engine(kind);
  const uint32_t code[] = {
      0x00000513,  // li a0, 0
      0x3e800593,  // li a1, 1000
      0x00150513,  // 1: addi a0, a0, 1
      0xfeb51ee3,  //    bne a0, a1, 1b
      0x0000006f,  // j . (stays here)
  };
  std::memcpy(bus.ram_ptr(kBase, sizeof(code)), code, sizeof(code));
  // 2 + 2 * 1000 instructions reach the final jump; stop exactly there.
  EXPECT_EQ(hart.run(2002), 2002u);
  EXPECT_EQ(hart.pc, kBase + 16);
  EXPECT_EQ(hart.instret, 2002u);
  compiled = hart.engine->compiled_blocks();
  return hart.x[10];
}

TEST(JitEngine, CompilesAHotLoopAndCountsExactly) {
  uint64_t compiled = 0;
  EXPECT_EQ(run_count_loop(EngineKind::kJit, compiled), 1000u);
#if defined(__x86_64__)
  EXPECT_GE(compiled, 1u);  // the loop block at least
#endif
}

TEST(JitEngine, TheInterpreterCompilesNothing) {
  uint64_t compiled = 1;
  EXPECT_EQ(run_count_loop(EngineKind::kInterpreter, compiled), 1000u);
  EXPECT_EQ(compiled, 0u);
}

}  // namespace
}  // namespace nimbus::cpu
