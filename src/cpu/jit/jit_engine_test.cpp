// The JIT engine on its own: it compiles a hot loop (so the differential test in
// src/cpu/jit_diff_test.cpp compares compiled code, not the interpreter with itself) and
// the loop's result and counts are right. Encodings from binutils.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "cpu/hart.h"
#include "cpu/jit/compiler.h"
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

// A loop block that only reads a0 and, to leave out a sign extension, relies on it holding
// a sign-extended 32-bit value is compiled assuming so (its entry checks it). When a0
// stops being one, the check fails, the interpreter runs the block that time and it is
// compiled again without the assumption, once: the sums stay right throughout.
TEST(JitEngine, AFailedEntryAssumptionCompilesTheBlockAgain) {
#if defined(__x86_64__)
  ThresholdOne t;
  mem::Bus bus(kBase, 1 << 20);
  Hart hart(bus, 0);
  hart.set_engine(EngineKind::kJit);
  const uint32_t code[] = {
      0x0005861b,  // 1: sext.w a2, a1
      0x00a67633,  //    and a2, a2, a0
      0x0006069b,  //    sext.w a3, a2 (left out while a0 is sign-extended)
      0x00d70733,  //    add a4, a4, a3
      0x00158593,  //    addi a1, a1, 1
      0xfef596e3,  //    bne a1, a5, 1b
      0x0000006f,  //    j .
  };
  std::memcpy(bus.ram_ptr(kBase, sizeof(code)), code, sizeof(code));
  hart.reset(kBase);  // (once: a reset empties the block cache)
  auto pass = [&](uint64_t a0) {
    hart.pc = kBase;
    hart.x[14] = 0;
    hart.x[10] = a0;
    hart.x[11] = static_cast<uint64_t>(-50);
    hart.x[15] = 50;
    EXPECT_EQ(hart.run(100 * 6), 100u * 6);
    EXPECT_EQ(hart.pc, kBase + 0x18);
    uint64_t sum = 0;
    for (int64_t i = -50; i < 50; i++) {
      const uint64_t v = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(i))) & a0;
      sum += static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(v)));
    }
    EXPECT_EQ(hart.x[14], sum) << std::hex << a0;
  };
  pass(0xffffffff80001234);  // sign-extended: compiled with the assumption
  const uint64_t compiled = hart.engine->compiled_blocks();
  EXPECT_GE(compiled, 1u);
  pass(0x0000000180001234);  // not: the check fails, compiled again once
  EXPECT_EQ(hart.engine->compiled_blocks(), compiled + 1);
  pass(0x0000000180005678);  // and it stays so (no assumption to fail)
  pass(0xffffffff80001234);
  EXPECT_EQ(hart.engine->compiled_blocks(), compiled + 1);
#endif
}

// ---- chained blocks ----
// Compiled blocks jump straight to each other (a taken branch, JAL, JALR, the
// fall-through, in the same page or through the fetch TLB in another); these programs
// run with every block compiled on first entry and must match the interpreter.

// A machine with one hart on `kind` and `code` at kBase + offset for each (offset, code).
struct Machine {
  mem::Bus bus{kBase, 1 << 20};
  Hart hart{bus, 0};
  Machine(EngineKind kind, std::initializer_list<std::pair<uint64_t, std::vector<uint32_t>>> code) {
    hart.reset(kBase);
    hart.set_engine(kind);
    for (const auto& [off, words] : code) put(off, words);
  }
  void put(uint64_t off, const std::vector<uint32_t>& words) {
    std::memcpy(bus.ram_ptr(kBase + off, 4 * words.size()), words.data(), 4 * words.size());
  }
};

// Stops the harts after `seconds` (a run() that retired more than its budget could
// otherwise run on for ever): the test then fails instead of hanging.
class Watchdog {
 public:
  Watchdog(std::initializer_list<Hart*> harts, int seconds)
      : harts_(harts), thread_([this, seconds] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (!cv_.wait_for(lock, std::chrono::seconds(seconds), [this] { return done_; })) {
            for (Hart* h : harts_) h->stop_requested = true;
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::vector<Hart*> harts_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: starts after the fields it reads
};

void expect_same(const Hart& jit, const Hart& ref, const char* what, int call) {
  SCOPED_TRACE(testing::Message() << what << ", run() call " << call);
  EXPECT_EQ(jit.pc, ref.pc);
  EXPECT_EQ(jit.instret, ref.instret);
  EXPECT_EQ(jit.cycle, ref.cycle);
  for (unsigned r = 0; r < 32; r++) EXPECT_EQ(jit.x[r], ref.x[r]) << "x" << r;
}

using Code = std::initializer_list<std::pair<uint64_t, std::vector<uint32_t>>>;

// Runs `code` on the JIT and on the interpreter side by side until the interpreter reaches
// `end`, in run() calls of budgets around `step` (so that every phase of a loop gets cut),
// comparing the state after each; `check` looks at the JIT's hart at the end.
void run_side_by_side(const Code& code, uint64_t step, uint64_t end,
                      const std::function<void(const Hart&)>& check) {
  Machine jit(EngineKind::kJit, code), ref(EngineKind::kInterpreter, code);
  Watchdog watchdog({&jit.hart, &ref.hart}, 60);
  int call = 0;
  while (ref.hart.pc != end && call < 20000) {
    const uint64_t n = step + static_cast<uint64_t>(call % 3);
    ASSERT_EQ(jit.hart.run(n), ref.hart.run(n));
    expect_same(jit.hart, ref.hart, "budget", call);
    if (testing::Test::HasFailure()) return;
    call++;
  }
  check(jit.hart);
}

// A loop whose blocks leave through a side exit, a JAL to another page, a JALR back and a
// taken branch, cut by budgets of every size: the counts and the pc where each run()
// stops are the interpreter's.
TEST(JitEngine, ChainedBlocksStopAndCountExactly) {
  ThresholdOne t;
  const Code code = {
      {0,
       {
           0x00000513,  // li a0, 0
           0x12c00593,  // li a1, 300
           0x00150513,  // loop: addi a0, a0, 1
           0x00357293,  //       andi t0, a0, 3
           0x00028463,  //       beqz t0, skip
           0x00560613,  //       addi a2, a2, 5
           0x7e9000ef,  // skip: jal ra, func   (the next page)
           0xfeb516e3,  //       bne a0, a1, loop
           0x0000006f,  //       j .
       }},
      {0x1000,
       {
           0x00768693,  // func: addi a3, a3, 7
           0x00008067,  //       ret
       }},
  };
  for (uint64_t step : {1, 2, 3, 5, 7, 13, 31, 64, 100, 1000, 5000}) {
    run_side_by_side(code, step, kBase + 0x20, [](const Hart& jit) {
      EXPECT_EQ(jit.x[10], 300u);
      EXPECT_EQ(jit.x[13], 300u * 7);
#if defined(__x86_64__)
      EXPECT_GE(jit.engine->compiled_blocks(), 4u);
#endif
    });
    if (testing::Test::HasFailure()) return;
  }
}

// A jump table: one JALR whose target changes every pass (the linked successor is wrong
// three times in four, so the exit probes the block table and jumps from there), and
// returns that go back to one place. Cut by budgets of every size, as above.
TEST(JitEngine, AJalrWithManyTargetsStopsAndCountsExactly) {
  ThresholdOne t;
  const Code code = {
      {0,
       {
           0x00000513,  // li a0, 0
           0x12c00593,  // li a1, 300
           0x00000317,  // auipc t1, 0
           0x00150513,  // loop: addi a0, a0, 1
           0x00357293,  //       andi t0, a0, 3
           0x00329293,  //       slli t0, t0, 3
           0x006282b3,  //       add t0, t0, t1
           0x100280e7,  //       jalr ra, 0x100(t0)   (handler a0 & 3)
           0xfeb516e3,  //       bne a0, a1, loop
           0x0000006f,  //       j .
       }},
      {0x108,
       {
           0x00160613, 0x00008067,  // addi a2, a2, 1; ret
           0x00260613, 0x00008067,  // addi a2, a2, 2; ret
           0x00360613, 0x00008067,  // addi a2, a2, 3; ret
           0x00460613, 0x00008067,  // addi a2, a2, 4; ret
       }},
  };
  for (uint64_t step : {1, 3, 7, 13, 64, 1000, 5000}) {
    run_side_by_side(code, step, kBase + 0x24, [](const Hart& jit) {
      EXPECT_EQ(jit.x[12], 75u * (2 + 3 + 4 + 1));
#if defined(__x86_64__)
      EXPECT_GE(jit.engine->compiled_blocks(), 5u);
#endif
    });
    if (testing::Test::HasFailure()) return;
  }
}

// Code rewritten by a store and made visible by FENCE.I is seen at once even where the
// hart reaches it through a chained exit: the loop below rewrites the instruction its
// next block starts with halfway through, and every block is chained to the next.
TEST(JitEngine, FenceIReachesChainedBlocks) {
  ThresholdOne t;
  const std::vector<uint32_t> prog = {
      0x00000513,  //       li a0, 0
      0x03200393,  //       li t2, 50
      0x06400293,  //       li t0, 100
      0x00000e17,  //       auipc t3, 0
      0x024e0e13,  //       addi t3, t3, 36    (t3 = target)
      0x06450337,  //       lui t1, 0x6450
      0x5133031b,  //       addiw t1, t1, 1299 (t1 = addi a0, a0, 100)
      0xfff28293,  // loop: addi t0, t0, -1
      0x00729663,  //       bne t0, t2, skip
      0x006e2023,  //       sw t1, 0(t3)
      0x0000100f,  //       fence.i
      0x0040006f,  // skip: j target
      0x00150513,  // target: addi a0, a0, 1   (rewritten when t0 = 50)
      0xfe0294e3,  //       bnez t0, loop
      0x0000006f,  //       j .
  };
  for (EngineKind kind : {EngineKind::kJit, EngineKind::kInterpreter}) {
    Machine m(kind, {{0, prog}});
    m.hart.run(100000);
    EXPECT_EQ(m.hart.pc, kBase + 0x38);
    // 49 iterations before the rewrite (t0 = 99..51), 51 from it on (t0 = 50..0).
    EXPECT_EQ(m.hart.x[10], 49u * 1 + 51u * 100);
  }
}

// The SBI's remote FENCE.I (cpu::fence_i_all_harts, what the machine calls) reaches
// chained code too: code rewritten by someone else (here the host) between two runs,
// then fenced, is seen by the next run even in blocks only ever entered through chained
// exits.
TEST(JitEngine, RemoteFenceIReachesChainedBlocks) {
  ThresholdOne t;
  const std::vector<uint32_t> prog = {
      0x00128293,  // loop: addi t0, t0, 1
      0x0040006f,  //       j b
      0x00150513,  // b:    addi a0, a0, 1   (rewritten: addi a0, a0, 100)
      0xff5ff06f,  //       j loop
  };
  Machine jit(EngineKind::kJit, {{0, prog}}), ref(EngineKind::kInterpreter, {{0, prog}});
  int call = 0;
  for (uint64_t n : {1000, 1001, 3, 5000}) {
    ASSERT_EQ(jit.hart.run(n), ref.hart.run(n));
    expect_same(jit.hart, ref.hart, "before the rewrite", call++);
  }
  for (Machine* m : {&jit, &ref}) m->put(8, {0x06450513});
  fence_i_all_harts();
  for (uint64_t n : {1000, 7, 3000}) {
    ASSERT_EQ(jit.hart.run(n), ref.hart.run(n));
    expect_same(jit.hart, ref.hart, "after the rewrite", call++);
  }
}

// An interrupt raised by another thread while the hart runs a loop of chained blocks
// (which never goes back to the block loop on its own) is taken at the next chunk end,
// and the stop flag ends the run there too.
TEST(JitEngine, InterruptsReachChainedCode) {
  ThresholdOne t;
  Machine m(EngineKind::kJit, {{0,
                                {
                                    0x00150513,  // loop: addi a0, a0, 1
                                    0x0040006f,  //       j b
                                    0x00158593,  // b:    addi a1, a1, 1
                                    0xfe051ae3,  //       bnez a0, loop
                                    0x0000006f,  //       j .
                                }},
                               {0x100,
                                {
                                    0x00100793,  // handler: li a5, 1
                                    0x0000006f,  //          j .
                                }}});
  Hart& h = m.hart;
  h.mtvec = kBase + 0x100;
  ASSERT_TRUE(h.csr_write(0x304, 1u << kIrqMTimer));  // mie.MTIE
  ASSERT_TRUE(h.csr_write(0x300, mstatus::kMIE));     // mstatus.MIE
  std::atomic<uint64_t> done{0};
  std::thread runner([&] { done = h.run(uint64_t{1} << 40); });
  // Let it loop (and chain) for a while, then raise the timer interrupt.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (__atomic_load_n(&h.x[11], __ATOMIC_RELAXED) < 100000 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  h.set_interrupt_pending(kIrqMTimer, true);
  while (__atomic_load_n(&h.x[15], __ATOMIC_RELAXED) != 1 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  h.stop_requested = true;
  runner.join();
  EXPECT_EQ(h.x[15], 1u);  // the handler ran
  EXPECT_EQ(h.mcause, (uint64_t{1} << 63) | kIrqMTimer);
  EXPECT_GE(h.mepc, kBase);
  EXPECT_LE(h.mepc, kBase + 0xc);
  EXPECT_EQ(h.pc, kBase + 0x104);
  // Every instruction retired is counted: a0 and a1 count the loop's two halves (two
  // instructions each), then the handler's li and its spinning.
  EXPECT_EQ(h.instret, done.load());
  EXPECT_GE(h.instret, h.x[10] * 2 + h.x[11] * 2 + 1);
  EXPECT_LE(h.x[10] - h.x[11], 1u);
}

}  // namespace
}  // namespace nimbus::cpu
