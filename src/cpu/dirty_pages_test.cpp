// Dirty-page tracking at the CPU (mem/dirty_log.h): every store path marks the page it
// writes once logging is on, in the interpreter and in JIT-compiled code, with a store
// TLB warmed before logging started. The machine's take (VirtMachine::take_dirty_pages)
// is DirtyLog::take followed by Hart::drop_store_translations on every hart; these tests
// do the same by hand. Encodings per the RISC-V unprivileged spec (S-type, AMO).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "cpu/hart.h"
#include "mem/bus.h"

namespace nimbus::cpu {
namespace {

constexpr uint64_t kBase = 0x80000000;
constexpr uint32_t kJumpSelf = 0x0000006f;  // j .
constexpr unsigned kA0 = 10, kA1 = 11, kA2 = 12, kA3 = 13;

constexpr uint32_t s_type(unsigned f3, unsigned op, unsigned rs1, unsigned rs2, int imm = 0) {
  const uint32_t i = static_cast<uint32_t>(imm) & 0xfff;
  return ((i >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((i & 31) << 7) | op;
}
constexpr uint32_t amo(unsigned f5, unsigned f3, unsigned rd, unsigned rs1, unsigned rs2) {
  return (f5 << 27) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x2f;
}
constexpr uint32_t kSd = s_type(3, 0x23, kA0, kA1);
constexpr uint32_t kSw = s_type(2, 0x23, kA0, kA1);
constexpr uint32_t kSh = s_type(1, 0x23, kA0, kA1);
constexpr uint32_t kSb = s_type(0, 0x23, kA0, kA1);
constexpr uint32_t kFsd = s_type(3, 0x27, kA0, 1);  // fsd f1, 0(a0)
constexpr uint32_t kFsw = s_type(2, 0x27, kA0, 1);  // fsw f1, 0(a0)
constexpr uint32_t kAmoaddD = amo(0, 3, kA2, kA0, kA1);
constexpr uint32_t kAmoswapW = amo(1, 2, kA2, kA0, kA1);
constexpr uint32_t kLrD = amo(2, 3, kA2, kA0, 0);
constexpr uint32_t kScD = amo(3, 3, kA3, kA0, kA1);

struct ThresholdOne {
  ThresholdOne() : saved(jit_hot_threshold()) { set_jit_hot_threshold(1); }
  ~ThresholdOne() { set_jit_hot_threshold(saved); }
  unsigned saved;
};

std::set<uint64_t> pages_of(const std::vector<uint64_t>& b) {
  std::set<uint64_t> s;
  for (size_t w = 0; w < b.size(); w++) {
    for (unsigned i = 0; i < 64; i++) {
      if ((b[w] >> i) & 1) s.insert(w * 64 + i);
    }
  }
  return s;
}

// One hart on `kind` running `code` (then `j .`) from kBase, again and again.
struct Rig {
  ThresholdOne threshold;
  mem::Bus bus{kBase, 1 << 20};
  Hart hart{bus, 0};
  uint64_t insns;
  mem::DirtyLog& log() { return bus.dirty_log(); }

  Rig(EngineKind kind, std::vector<uint32_t> code) : insns(code.size() + 1) {
    hart.reset(kBase);
    hart.set_engine(kind);
    hart.mstatus_ |= mstatus::kFS;
    code.push_back(kJumpSelf);
    std::memcpy(bus.ram_ptr(kBase, code.size() * 4), code.data(), code.size() * 4);
  }
  // Runs the program once; a1 and f1 change every time, so each run changes memory.
  void step() {
    hart.x[kA1] += 0x0101010101010101ull;
    hart.f[1] = hart.x[kA1];
    hart.pc = kBase;
    ASSERT_EQ(hart.run(insns), insns);
    ASSERT_EQ(hart.pc, kBase + 4 * (insns - 1));
  }
  // What VirtMachine::start_dirty_log and take_dirty_pages do for this hart.
  void start() {
    log().clear();
    log().set_enabled(true);
    hart.drop_store_translations();
  }
  std::set<uint64_t> take() {
    std::vector<uint64_t> b;
    log().take(b);
    hart.drop_store_translations();
    return pages_of(b);
  }
  uint64_t mem64(uint64_t pa) {
    uint64_t v = 0;
    bus.read(pa, 8, v);
    return v;
  }
};

struct Case {
  std::string name;
  std::vector<uint32_t> code;
  // The JIT compiles the integer stores; FP stores, AMOs, LR and SC run in the
  // interpreter on the kJit engine too (cpu/isa/instructions.inc, its jit column).
  bool jit_compiles = false;
};

class DirtyPages : public ::testing::TestWithParam<EngineKind> {};

// The key case for each kind of store: the store TLB holds the page from before logging
// started; after start and after every take the next store must show up.
void check_store_kind(EngineKind kind, const Case& c) {
  SCOPED_TRACE(c.name);
  Rig r(kind, c.code);
  const uint64_t data = kBase + 0x10000 + 8;  // page 16
  const std::set<uint64_t> page16 = {16};
  r.hart.x[kA0] = data;
  // Logging off: the store fills the store TLB (warm from here on), nothing is marked.
  r.step();
  EXPECT_TRUE(r.take().empty());
  r.step();  // through the warm entry
  r.start();
  uint64_t before = r.mem64(data);
  r.step();
  EXPECT_NE(r.mem64(data), before);
  EXPECT_EQ(r.take(), page16) << "first store after start";
  for (int round = 0; round < 3; round++) {
    before = r.mem64(data);
    r.step();
    EXPECT_NE(r.mem64(data), before);
    EXPECT_EQ(r.take(), page16) << "round " << round;
    EXPECT_TRUE(r.take().empty()) << "a take clears";
  }
#if defined(__x86_64__)
  if (kind == EngineKind::kJit && c.jit_compiles) {
    EXPECT_GE(r.hart.engine->compiled_blocks(), 1u);
  }
#endif
  // The fast path itself does not mark (so the rounds above went through it and relied
  // on the take's flush): without a drop a second store through the entry is unseen.
  r.step();
  std::vector<uint64_t> b;
  r.log().take(b);  // no flush: the entry stays
  EXPECT_EQ(pages_of(b), page16);
  r.step();
  r.log().take(b);
  EXPECT_TRUE(pages_of(b).empty()) << "the store went through the fast path";
  // Logging off: nothing.
  r.hart.drop_store_translations();
  r.log().set_enabled(false);
  r.step();
  EXPECT_TRUE(r.take().empty());
}

TEST_P(DirtyPages, EveryStoreKindMarksWithAWarmTlb) {
  const std::vector<Case> cases = {
      {"sd", {kSd}, true},
      {"sw", {kSw}, true},
      {"sh", {kSh}, true},
      {"sb", {kSb}, true},
      {"fsd", {kFsd}},
      {"fsw", {kFsw}},
      {"amoadd.d", {kAmoaddD}},
      {"amoswap.w", {kAmoswapW}},
      {"lr.d/sc.d", {kLrD, kScD}},
  };
  for (const Case& c : cases) check_store_kind(GetParam(), c);
}

TEST_P(DirtyPages, OnlyThePagesWrittenAreMarked) {
  // Three stores to pages 16, 17 and 40 (the last misaligned across 40/41: two pages),
  // loads from page 50.
  constexpr uint32_t kLd = (0 << 20) | (kA0 << 15) | (3 << 12) | (kA3 << 7) | 0x03;  // ld a3,0(a0)
  Rig r(GetParam(), {kSd, s_type(3, 0x23, kA0, kA1, 0x400), s_type(3, 0x23, kA2, kA1)});
  Rig& rr = r;
  rr.hart.x[kA0] = kBase + 0x10ff8;  // page 16; +0x400 lands on page 17
  rr.hart.x[kA2] = kBase + 0x28ffc;  // page 40, 4 bytes into page 41
  rr.step();
  rr.start();
  rr.step();
  EXPECT_EQ(rr.take(), (std::set<uint64_t>{16, 17, 40, 41}));
  rr.step();
  EXPECT_EQ(rr.take(), (std::set<uint64_t>{16, 17, 40, 41}));
  Rig loads(GetParam(), {kLd});
  loads.hart.x[kA0] = kBase + 0x32000;
  loads.start();
  loads.step();
  EXPECT_TRUE(loads.take().empty());
}

TEST_P(DirtyPages, AStoreInALoopAfterALoadOfItsPageIsMarked) {
  // A loop that loads from a page and then stores to it: compiled, each access keeps the
  // page it last hit for the next pass, the load's from the load TLB. The store must not
  // go through that: its page's store entry was dropped when logging started.
  constexpr uint32_t kLd = (0 << 20) | (kA0 << 15) | (3 << 12) | (kA3 << 7) | 0x03;  // ld a3,0(a0)
  constexpr uint32_t kAddi = (0xfffu << 20) | (kA2 << 15) | (kA2 << 7) | 0x13;  // addi a2,a2,-1
  constexpr uint32_t kBnezBack12 = 0xfe061ae3;                                  // bnez a2,.-12
  Rig r(GetParam(), {kLd, s_type(3, 0x23, kA0, kA1, 8), kAddi, kBnezBack12});
  r.hart.x[kA0] = kBase + 0x10000;  // page 16
  auto loop = [&](uint64_t passes) {
    r.hart.x[kA1]++;
    r.hart.x[kA2] = passes;
    r.hart.pc = kBase;
    const uint64_t insns = 4 * passes + 1;
    ASSERT_EQ(r.hart.run(insns), insns);
    ASSERT_EQ(r.hart.pc, kBase + 16);
  };
  loop(50);  // compiled, and both TLBs hold page 16
  r.start();
  loop(50);
  EXPECT_EQ(r.mem64(kBase + 0x10008), r.hart.x[kA1]);
  EXPECT_EQ(r.take(), (std::set<uint64_t>{16}));
  loop(50);
  EXPECT_EQ(r.take(), (std::set<uint64_t>{16}));
#if defined(__x86_64__)
  if (GetParam() == EngineKind::kJit) {
    EXPECT_GE(r.hart.engine->compiled_blocks(), 1u);
  }
#endif
}

TEST_P(DirtyPages, AStoreOffSpAfterALoadOfItsPageIsMarked) {
  // The same off sp, outside any loop: compiled, accesses off sp keep the stack's page for
  // the ones after them (also in other blocks), loads and stores apart.
  constexpr uint32_t kLdSp = (0 << 20) | (2 << 15) | (3 << 12) | (kA3 << 7) | 0x03;  // ld a3,0(sp)
  Rig r(GetParam(), {kLdSp, s_type(3, 0x23, 2, kA1, 8)});                            // sd a1,8(sp)
  r.hart.x[2] = kBase + 0x11000;                                                     // page 17
  r.step();  // compiled, and both TLBs hold page 17
  r.start();
  for (int round = 0; round < 3; round++) {
    r.step();
    EXPECT_EQ(r.mem64(kBase + 0x11008), r.hart.x[kA1]);
    EXPECT_EQ(r.take(), (std::set<uint64_t>{17})) << "round " << round;
  }
}

TEST_P(DirtyPages, ASecondHartsStoresAreMarked) {
  ThresholdOne t;
  mem::Bus bus(kBase, 1 << 20);
  Hart h0(bus, 0), h1(bus, 1);
  const uint32_t code[] = {kSd, kJumpSelf};
  std::memcpy(bus.ram_ptr(kBase, sizeof(code)), code, sizeof(code));
  for (Hart* h : {&h0, &h1}) {
    h->reset(kBase);
    h->set_engine(GetParam());
  }
  h0.x[kA0] = kBase + 0x20000;  // page 32
  h1.x[kA0] = kBase + 0x21000;  // page 33
  auto step = [](Hart& h) {
    h.x[kA1]++;
    h.pc = kBase;
    ASSERT_EQ(h.run(2), 2u);
  };
  step(h0);
  step(h1);  // both warm
  bus.dirty_log().set_enabled(true);
  h0.drop_store_translations();
  h1.drop_store_translations();
  std::vector<uint64_t> b;
  for (int round = 0; round < 3; round++) {
    step(h1);
    bus.dirty_log().take(b);
    h0.drop_store_translations();
    h1.drop_store_translations();
    EXPECT_EQ(pages_of(b), (std::set<uint64_t>{33}));
    step(h0);
    step(h1);
    bus.dirty_log().take(b);
    h0.drop_store_translations();
    h1.drop_store_translations();
    EXPECT_EQ(pages_of(b), (std::set<uint64_t>{32, 33}));
  }
}

TEST_P(DirtyPages, PageTableAccessedAndDirtyUpdatesAreMarked) {
  // Sv39 in S-mode: the code under an identity gigapage (A and D set), the data page at
  // VA 0x40000000 through a leaf without A and D. The store sets them: the leaf table's
  // page is written by the walk and must be marked, besides the data page.
  constexpr uint64_t V = 1, R = 2, W = 4, X = 8, A = 64, D = 128;
  Rig r(GetParam(), {kSd});
  auto pte = [](uint64_t pa, uint64_t flags) { return ((pa >> 12) << 10) | flags; };
  const uint64_t root = kBase + 0x80000, l1 = kBase + 0x81000, l0 = kBase + 0x82000;
  const uint64_t data_pa = kBase + 0x20000;  // page 32
  auto put = [&](uint64_t pa, uint64_t v) { std::memcpy(r.bus.ram_ptr(pa, 8), &v, 8); };
  put(root + 2 * 8, pte(kBase, V | R | W | X | A | D));  // VA 0x80000000 -> itself
  put(root + 1 * 8, pte(l1, V));                         // VA 0x40000000 -> l1
  put(l1 + 0, pte(l0, V));
  const uint64_t leaf = l0 + 0;
  put(leaf, pte(data_pa, V | R | W));
  r.hart.pmpaddr[0] = ~0ull >> 10;
  r.hart.pmpcfg[0] = 0x1f;
  r.hart.satp = (8ull << 60) | (root >> 12);
  r.hart.select_address_space();
  r.hart.priv = kPrivS;
  r.hart.x[kA0] = 0x40000000;
  r.start();
  r.step();
  uint64_t leaf_now = 0;
  std::memcpy(&leaf_now, r.bus.ram_ptr(leaf, 8), 8);
  EXPECT_EQ(leaf_now & (A | D), A | D);
  EXPECT_EQ(r.take(), (std::set<uint64_t>{0x20, 0x82}));
  // A and D set now: no more walk writes, the data page only.
  r.hart.tlb_flush();
  r.step();
  EXPECT_EQ(r.take(), (std::set<uint64_t>{0x20}));
}

INSTANTIATE_TEST_SUITE_P(Engines, DirtyPages,
                         ::testing::Values(EngineKind::kInterpreter, EngineKind::kJit),
                         [](const auto& info) {
                           return std::string(info.param == EngineKind::kJit ? "Jit"
                                                                             : "Interpreter");
                         });

}  // namespace
}  // namespace nimbus::cpu
