// The interpreter run on small hand-assembled programs (encodings from binutils).
#include <gtest/gtest.h>

#include <cstring>
#include <initializer_list>
#include <string>

#include "cpu/hart.h"
#include "mem/bus.h"

namespace nimbus::cpu {
namespace {

constexpr uint64_t kBase = 0x80000000;

class InterpTest : public ::testing::Test {
 protected:
  InterpTest() : bus_(kBase, 1 << 20), hart_(bus_, 0) { hart_.reset(kBase); }

  // Writes 32-bit instruction words at `addr`.
  void program(uint64_t addr, std::initializer_list<uint32_t> words) {
    for (uint32_t w : words) {
      std::memcpy(bus_.ram_ptr(addr, 4), &w, 4);
      addr += 4;
    }
  }
  void parcel(uint64_t addr, uint16_t half) { std::memcpy(bus_.ram_ptr(addr, 2), &half, 2); }
  uint64_t ram64(uint64_t addr) {
    uint64_t v;
    std::memcpy(&v, bus_.ram_ptr(addr, 8), 8);
    return v;
  }

  // For the checkers' tests: 0x1111 at kData, 0x2222 at kOther, a1 = kData.
  static constexpr uint64_t kData = kBase + 0x3000, kOther = kBase + 0x5000;
  void stale_pages() {
    const uint64_t good = 0x1111, bad = 0x2222;
    std::memcpy(bus_.ram_ptr(kData, 8), &good, 8);
    std::memcpy(bus_.ram_ptr(kOther, 8), &bad, 8);
    hart_.x[11] = kData;
  }
  // A wrong fast path: a load-TLB entry that maps kData's page to kOther's.
  void plant_stale_entry() {
    TlbEntry& e = hart_.tlb_load[hart_.tlb_slot(kData)];
    e.tag = (kData >> 12) | hart_.data_ctx;
    e.addend = reinterpret_cast<uintptr_t>(bus_.ram_ptr(kOther, 8)) - kData;
  }

  mem::Bus bus_;
  Hart hart_;
};

TEST_F(InterpTest, ArithmeticLoadsStores) {
  hart_.x[2] = kBase + 0x1000;   // sp
  program(kBase, {0x00500513,    // li a0, 5
                  0x00700593,    // li a1, 7
                  0x00b50633,    // add a2, a0, a1
                  0x00c13023,    // sd a2, 0(sp)
                  0x00013683,    // ld a3, 0(sp)
                  0x00313703});  // ld a4, 3(sp)  (misaligned: done in hardware)
  EXPECT_EQ(hart_.run(6), 6u);
  EXPECT_EQ(hart_.x[12], 12u);
  EXPECT_EQ(ram64(kBase + 0x1000), 12u);
  EXPECT_EQ(hart_.x[13], 12u);
  EXPECT_EQ(hart_.x[14], 0u);  // bytes 3..10: all zero above the stored 12
  EXPECT_EQ(hart_.pc, kBase + 24);
  EXPECT_EQ(hart_.instret, 6u);
}

TEST_F(InterpTest, MisalignedLoadAcrossPageBoundary) {
  const uint64_t page_end = kBase + 0x2000;
  const uint64_t value = 0x1122334455667788ull;
  std::memcpy(bus_.ram_ptr(page_end - 3, 8), &value, 8);
  hart_.x[2] = page_end;
  program(kBase, {0xffd13703});  // ld a4, -3(sp)
  hart_.run(1);
  EXPECT_EQ(hart_.x[14], value);
}

// A misaligned store that runs off the end of RAM faults without writing its first bytes.
TEST_F(InterpTest, MisalignedStoreOffTheEndOfRamWritesNothing) {
  const uint64_t ram_end = kBase + (1 << 20);
  std::memset(bus_.ram_ptr(ram_end - 4, 4), 0xAA, 4);
  hart_.x[2] = ram_end;
  hart_.x[14] = 0x1122334455667788ull;
  hart_.mtvec = kBase + 0x100;
  program(kBase, {0xfee13e23});  // sd a4, -4(sp)
  hart_.run(1);
  EXPECT_EQ(hart_.trap_count, 1u);
  EXPECT_EQ(hart_.mcause, 7u);      // store access fault
  EXPECT_EQ(hart_.mtval, ram_end);  // the part of the access that faulted
  EXPECT_EQ(hart_.pc, kBase + 0x100);
  uint32_t kept;
  std::memcpy(&kept, bus_.ram_ptr(ram_end - 4, 4), 4);
  EXPECT_EQ(kept, 0xAAAAAAAAu);
}

TEST_F(InterpTest, LrScAndAmo) {
  hart_.x[2] = kBase + 0x1000;
  hart_.x[10] = 5;
  hart_.x[11] = 7;
  std::memset(bus_.ram_ptr(kBase + 0x1000, 8), 0, 8);
  program(kBase, {0x100137af,    // lr.d a5, (sp)
                  0x18a1382f,    // sc.d a6, a0, (sp)   succeeds: a6 = 0
                  0x18b138af,    // sc.d a7, a1, (sp)   no reservation: a7 = 1
                  0x00b122af});  // amoadd.w t0, a1, (sp)
  hart_.run(4);
  EXPECT_EQ(hart_.x[16], 0u);
  EXPECT_EQ(hart_.x[17], 1u);
  EXPECT_EQ(hart_.x[5], 5u);  // old value
  EXPECT_EQ(ram64(kBase + 0x1000), 12u);
}

TEST_F(InterpTest, MisalignedAmoRaisesStoreMisaligned) {
  hart_.x[2] = kBase + 0x1001;
  hart_.mtvec = kBase + 0x100;
  program(kBase, {0x00b122af});  // amoadd.w t0, a1, (sp)
  hart_.run(1);
  EXPECT_EQ(hart_.mcause, static_cast<uint64_t>(kStoreMisaligned));
  EXPECT_EQ(hart_.mtval, kBase + 0x1001);
  EXPECT_EQ(hart_.mepc, kBase);
  EXPECT_EQ(hart_.pc, kBase + 0x100);
}

TEST_F(InterpTest, IllegalInstructionSetsTvalToBits) {
  hart_.mtvec = kBase + 0x100;
  program(kBase, {0x00000000});
  hart_.run(1);
  EXPECT_EQ(hart_.mcause, static_cast<uint64_t>(kIllegalInsn));
  EXPECT_EQ(hart_.mtval, 0u);
  EXPECT_EQ(hart_.mepc, kBase);
  program(kBase, {0xffffffff});
  hart_.reset(kBase);
  hart_.mtvec = kBase + 0x100;
  hart_.run(1);
  EXPECT_EQ(hart_.mtval, 0xffffffffu);
}

TEST_F(InterpTest, EcallFromMachineMode) {
  hart_.mtvec = kBase + 0x100;
  program(kBase, {0x00000073});
  hart_.run(1);
  EXPECT_EQ(hart_.mcause, static_cast<uint64_t>(kEcallFromM));
  EXPECT_EQ(hart_.pc, kBase + 0x100);
}

TEST_F(InterpTest, CompressedInstructionAdvancesPcByTwo) {
  hart_.x[10] = 41;
  parcel(kBase, 0x0505);  // c.addi a0, 1
  hart_.run(1);
  EXPECT_EQ(hart_.x[10], 42u);
  EXPECT_EQ(hart_.pc, kBase + 2);
}

TEST_F(InterpTest, CompressedInstructionAtLastParcelOfRam) {
  // A 16-bit instruction in the last two bytes of RAM must not fault on the bytes past it.
  const uint64_t last = kBase + (1 << 20) - 2;
  parcel(last, 0x0505);  // c.addi a0, 1
  hart_.mtvec = kBase + 0x100;
  hart_.reset(last);
  hart_.mtvec = kBase + 0x100;
  hart_.run(1);
  EXPECT_EQ(hart_.x[10], 1u);
  EXPECT_EQ(hart_.trap_count, 0u);
}

TEST_F(InterpTest, FetchOutsideMemoryIsAccessFault) {
  hart_.mtvec = kBase + 0x100;
  hart_.reset(0x1000);  // nothing is mapped there
  hart_.mtvec = kBase + 0x100;
  hart_.run(1);
  EXPECT_EQ(hart_.mcause, static_cast<uint64_t>(kInsnAccessFault));
  EXPECT_EQ(hart_.mtval, 0x1000u);
}

TEST_F(InterpTest, SelfModifyingCodeRunsTheNewInstruction) {
  hart_.x[10] = 0;
  program(kBase, {0x00150513,    // addi a0, a0, 1
                  0x0000100f});  // fence.i
  hart_.run(2);
  EXPECT_EQ(hart_.x[10], 1u);
  program(kBase, {0x00a50513});  // addi a0, a0, 10
  hart_.pc = kBase;
  hart_.run(1);
  EXPECT_EQ(hart_.x[10], 11u);
}

TEST_F(InterpTest, FpInstructionsAreIllegalWhenFsIsOff) {
  hart_.mtvec = kBase + 0x100;
  program(kBase, {0x02b57553});  // fadd.d fa0, fa0, fa1
  hart_.run(1);
  EXPECT_EQ(hart_.mcause, static_cast<uint64_t>(kIllegalInsn));
  hart_.reset(kBase);
  hart_.mstatus_ |= 1ull << 13;         // FS = Initial
  hart_.f[10] = 0x3ff0000000000000ull;  // 1.0
  hart_.f[11] = 0x4000000000000000ull;  // 2.0
  hart_.run(1);
  EXPECT_EQ(hart_.f[10], 0x4008000000000000ull);  // 3.0
  EXPECT_EQ((hart_.mstatus_ >> 13) & 3, 3u);      // FS = Dirty
}

TEST_F(InterpTest, WfiWithNothingPendingStops) {
  program(kBase, {0x10500073});  // wfi
  EXPECT_EQ(hart_.run(100), 1u);
  EXPECT_TRUE(hart_.waiting);
  EXPECT_EQ(hart_.pc, kBase + 4);
}

// A CSR instruction reads a counter's value from before its own execution, and a write
// to minstret/mcycle is done instead of that instruction's increment (riscv-tests
// rv64mi-p-instret_overflow).
TEST_F(InterpTest, CounterCsrReadsValueBeforeTheInstruction) {
  program(kBase, {0xb0205073,    // csrwi minstret, 0
                  0xb0202573,    // csrr a0, minstret
                  0xc02025f3,    // csrr a1, instret
                  0xb0005073,    // csrwi mcycle, 0
                  0xb0002673,    // csrr a2, mcycle
                  0xc00026f3,    // csrr a3, cycle
                  0xb0215773});  // csrrwi a4, minstret, 2
  EXPECT_EQ(hart_.run(7), 7u);
  EXPECT_EQ(hart_.x[10], 0u);
  EXPECT_EQ(hart_.x[11], 1u);
  EXPECT_EQ(hart_.x[12], 0u);
  EXPECT_EQ(hart_.x[13], 1u);
  EXPECT_EQ(hart_.x[14], 5u);    // five instructions retired since minstret was 0
  EXPECT_EQ(hart_.instret, 2u);  // the write replaced the increment
}

TEST_F(InterpTest, WritesToX0AreDiscarded) {
  program(kBase, {0x00500013});  // addi x0, x0, 5
  hart_.run(1);
  EXPECT_EQ(hart_.x[0], 0u);
}

// ---- the block engine ----

// Blocks are checked against memory on entry: code rewritten behind the hart's back (a
// device's DMA, another hart) is seen without FENCE.I or any invalidation call.
TEST_F(InterpTest, BlockSeesCodeRewrittenBehindItsBack) {
  program(kBase, {0x00150513,    // addi a0, a0, 1
                  0x00250513,    // addi a0, a0, 2
                  0x0000006f});  // j .
  EXPECT_EQ(hart_.run(3), 3u);
  EXPECT_EQ(hart_.x[10], 3u);
  program(kBase + 4, {0x00550513});  // addi a0, a0, 5
  hart_.pc = kBase;
  EXPECT_EQ(hart_.run(3), 3u);
  EXPECT_EQ(hart_.x[10], 9u);
}

// A block reached through a chained link (a jump within the page) is still checked
// against memory: block A rewrites the first instruction of block B, then jumps to it
// along the link it made the previous time round.
TEST_F(InterpTest, ChainedBlockSeesItsCodeRewritten) {
  program(kBase, {0x0062a423,    // A: sw t1, 8(t0)
                  0x0040006f,    //    j B
                  0x00150513,    // B: addi a0, a0, 1   (rewritten by A)
                  0x00734333,    //    xor t1, t1, t2
                  0xff1ff06f});  //    j A
  hart_.x[5] = kBase;
  hart_.x[6] = 0x06450513;               // addi a0, a0, 100
  hart_.x[7] = 0x00150513 ^ 0x06450513;  // toggles t1 between the two
  EXPECT_EQ(hart_.run(15), 15u);
  EXPECT_EQ(hart_.x[10], 100u + 1u + 100u);
}

// Counters advance once per block but read exactly in the middle of one, and a block left
// early by a trap counts only what ran (the trapping instruction included, as before).
TEST_F(InterpTest, CountersExactInsideBlocksAndAfterTraps) {
  hart_.mtvec = kBase + 0x100;
  program(kBase + 0x100, {0x0000006f});  // j .
  program(kBase, {0x00150513,            // addi a0, a0, 1
                  0x00250513,            // addi a0, a0, 2
                  0xb02025f3,            // csrr a1, minstret
                  0xb0002673,            // csrr a2, mcycle
                  0x00150513,            // addi a0, a0, 1
                  0x00073683,            // ld a3, 0(a4)   (a4 = 0: access fault)
                  0x00150513});          // addi a0, a0, 1 (not reached)
  EXPECT_EQ(hart_.run(6), 6u);
  EXPECT_EQ(hart_.x[11], 2u);
  EXPECT_EQ(hart_.x[12], 3u);
  EXPECT_EQ(hart_.instret, 6u);
  EXPECT_EQ(hart_.cycle, 6u);
  EXPECT_EQ(hart_.mcause, static_cast<uint64_t>(kLoadAccessFault));
  EXPECT_EQ(hart_.mepc, kBase + 20);
  EXPECT_EQ(hart_.pc, kBase + 0x100);
  EXPECT_EQ(hart_.x[10], 4u);
}

// run(n) never runs more than n instructions, even when a block is longer.
TEST_F(InterpTest, BudgetIsExactInsideBlocks) {
  program(kBase, {0x00150513, 0x00150513, 0x00150513, 0x00150513, 0x0000006f});
  EXPECT_EQ(hart_.run(5), 5u);  // decodes the block
  hart_.pc = kBase;
  EXPECT_EQ(hart_.run(2), 2u);
  EXPECT_EQ(hart_.pc, kBase + 8);
  EXPECT_EQ(hart_.x[10], 6u);
}

// Conditional branches do not end blocks: a not-taken one goes on inside the block, a
// taken one leaves it in the middle and only what ran is counted (a CSR read after the
// exit sees the exact count), also when the budget ends inside the next block.
TEST_F(InterpTest, TakenBranchLeavesTheBlockInTheMiddle) {
  program(kBase, {0x00150513,    // addi a0, a0, 1
                  0x00001463,    // bne x0, x0, 8      (not taken: stays in the block)
                  0x00000663,    // beq x0, x0, 12     (taken: a side exit)
                  0x00250513,    // addi a0, a0, 2     (skipped)
                  0x00450513,    // addi a0, a0, 4     (skipped)
                  0x00850513,    // addi a0, a0, 8
                  0xb02025f3,    // csrr a1, minstret
                  0x0000006f});  // j .
  EXPECT_EQ(hart_.run(4), 4u);
  EXPECT_EQ(hart_.x[10], 9u);
  EXPECT_EQ(hart_.instret, 4u);
  EXPECT_EQ(hart_.pc, kBase + 24);
  EXPECT_EQ(hart_.run(2), 2u);
  EXPECT_EQ(hart_.x[11], 4u);  // minstret before the csrr itself
  EXPECT_EQ(hart_.instret, 6u);
  EXPECT_EQ(hart_.cycle, 6u);
  EXPECT_EQ(hart_.pc, kBase + 28);
}

// A loop whose backward branch is a side exit of its own block, run to a budget that ends
// in the middle of an iteration.
TEST_F(InterpTest, LoopThroughASideExitStopsExactlyAtTheBudget) {
  program(kBase, {0x00500513,    // li a0, 5
                  0xfff50513,    // 1: addi a0, a0, -1
                  0xfe051ee3,    //    bnez a0, 1b
                  0x00158593,    //    addi a1, a1, 1
                  0x0000006f});  //    j .
  EXPECT_EQ(hart_.run(8), 8u);   // li, then 3.5 iterations
  EXPECT_EQ(hart_.x[10], 1u);
  EXPECT_EQ(hart_.pc, kBase + 8);
  EXPECT_EQ(hart_.run(100), 100u);
  EXPECT_EQ(hart_.x[10], 0u);
  EXPECT_EQ(hart_.x[11], 1u);
  EXPECT_EQ(hart_.instret, 108u);
  EXPECT_EQ(hart_.pc, kBase + 16);
}

// A block chained to a successor in another page (through the fetch TLB) follows a change
// of that page's translation: the link is only taken while the TLB gives the same host
// address as when it was made.
TEST_F(InterpTest, CrossPageChainFollowsTranslationChange) {
  const uint64_t root = kBase + 0x30000, l1 = kBase + 0x31000, l0 = kBase + 0x32000;
  const uint64_t page_a = kBase + 0x10000, page_b = kBase + 0x20000, page_c = kBase + 0x40000;
  auto pte = [](uint64_t pa, uint64_t flags) { return ((pa >> 12) << 10) | flags; };
  auto wr64 = [&](uint64_t pa, uint64_t v) { std::memcpy(bus_.ram_ptr(pa, 8), &v, 8); };
  constexpr uint64_t kV = 1, kR = 2, kX = 8, kA = 64, kD = 128;
  wr64(root, pte(l1, kV));
  wr64(l1, pte(l0, kV));
  wr64(l0 + 8 * 1, pte(page_a, kV | kR | kX | kA | kD));  // va 0x1000
  wr64(l0 + 8 * 2, pte(page_b, kV | kR | kX | kA | kD));  // va 0x2000
  program(page_a, {0x00150513,                            // 0x1000: addi a0, a0, 1
                   0x7fd0006f});                          //         j 0x2000
  program(page_b, {0x00a50513,                            // 0x2000: addi a0, a0, 10
                   0xffdfe06f});                          //         j 0x1000
  program(page_c, {0x06450513,                            // addi a0, a0, 100
                   0xffdfe06f});                          // j 0x1000
  hart_.pmpaddr[15] = (1ULL << 54) - 1;                   // everything, for S-mode
  hart_.pmpcfg[15] = (3 << 3) | 7;
  hart_.satp = (8ULL << 60) | (root >> 12);
  hart_.priv = kPrivS;
  hart_.pc = 0x1000;
  EXPECT_EQ(hart_.run(8), 8u);
  EXPECT_EQ(hart_.x[10], 22u);
  EXPECT_EQ(hart_.pc, 0x1000u);
  wr64(l0 + 8 * 2, pte(page_c, kV | kR | kX | kA | kD));
  hart_.sfence_vma(false, 0);
  EXPECT_EQ(hart_.run(12), 12u);  // refills the TLB, then chains again
  EXPECT_EQ(hart_.x[10], 22u + 3 * 101u);
  EXPECT_EQ(hart_.trap_count, 0u);
}

// Code in another page, rewritten behind the hart's back, is seen through a cross-page link.
TEST_F(InterpTest, CrossPageChainedBlockSeesItsCodeRewritten) {
  program(kBase, {0x00150513,             // addi a0, a0, 1
                  0x7fd0006f});           // j kBase + 0x1000
  program(kBase + 0x1000, {0x00a50513,    // addi a0, a0, 10
                           0xffdfe06f});  // j kBase
  EXPECT_EQ(hart_.run(8), 8u);
  EXPECT_EQ(hart_.x[10], 22u);
  program(kBase + 0x1000, {0x06450513});  // addi a0, a0, 100
  EXPECT_EQ(hart_.run(4), 4u);
  EXPECT_EQ(hart_.x[10], 22u + 101u);
}

TEST_F(InterpTest, SfenceVmaWithAddressDropsOnlyThatPage) {
  auto tag = [&](uint64_t va) { return (va >> 12) | hart_.data_ctx; };
  const uint64_t alias = 0x5000 + uint64_t{kTlbSize} * 4096;  // shares 0x5000's slot
  const unsigned s5 = hart_.tlb_slot(0x5000), s6 = hart_.tlb_slot(0x6000);
  ASSERT_EQ(hart_.tlb_slot(alias), s5);
  hart_.tlb_load[s5].tag = hart_.tlb_store[s5].tag = tag(0x5000);
  hart_.tlb_load[s6].tag = tag(0x6000);
  hart_.sfence_vma(true, 0x5000);
  EXPECT_EQ(hart_.tlb_load[s5].tag, kTlbInvalid);
  EXPECT_EQ(hart_.tlb_store[s5].tag, kTlbInvalid);
  EXPECT_EQ(hart_.tlb_load[s6].tag, tag(0x6000));
  hart_.tlb_load[s5].tag = tag(alias);  // another page in that slot stays
  hart_.sfence_vma(true, 0x5000);
  EXPECT_EQ(hart_.tlb_load[s5].tag, tag(alias));
  hart_.note_superpage(0x5000, 21);  // a cached megapage slice: everything goes
  hart_.sfence_vma(true, 0x5000);
  EXPECT_EQ(hart_.tlb_load[s6].tag, kTlbInvalid);
  EXPECT_EQ(hart_.tlb_load[s5].tag, kTlbInvalid);
  hart_.tlb_load[s6].tag = tag(0x6000);
  hart_.sfence_vma(false, 0);
  EXPECT_EQ(hart_.tlb_load[s6].tag, kTlbInvalid);
}

TEST_F(InterpTest, FlushAllCachesDropsTlbEntries) {
  program(kBase, {0x00150513, 0x0000006f});
  hart_.run(2);
  hart_.tlb_store[3].tag = 3;
  hart_.flush_all_caches();
  for (unsigned i = 0; i < kTlbSize; i++) {
    EXPECT_EQ(hart_.tlb_fetch[i].tag, kTlbInvalid);
    EXPECT_EQ(hart_.tlb_store[i].tag, kTlbInvalid);
  }
  hart_.pc = kBase;
  EXPECT_EQ(hart_.run(2), 2u);
  EXPECT_EQ(hart_.x[10], 2u);
}

// ---- the reference checker ----

TEST_F(InterpTest, CheckReferenceAgreesOnACleanProgram) {
  hart_.set_engine(EngineKind::kCheckReference);
  std::string report;
  hart_.on_divergence = [&](const std::string& r) { report = r; };
  hart_.x[2] = kBase + 0x1000;
  program(kBase, {0x00500513, 0x00700593, 0x00b50633, 0x00c13023, 0x00013683, 0x00313703,
                  0xb02025f3, 0x0000006f});
  EXPECT_EQ(hart_.run(20), 20u);
  EXPECT_EQ(report, "");
  EXPECT_FALSE(hart_.diverged);
  EXPECT_EQ(hart_.x[13], 12u);
}

// The checker follows side exits and chained blocks instruction by instruction.
TEST_F(InterpTest, CheckReferenceAgreesAcrossSideExits) {
  hart_.set_engine(EngineKind::kCheckReference);
  std::string report;
  hart_.on_divergence = [&](const std::string& r) { report = r; };
  program(kBase, {0x00500513,    // li a0, 5
                  0xfff50513,    // 1: addi a0, a0, -1
                  0xfe051ee3,    //    bnez a0, 1b
                  0x00158593,    //    addi a1, a1, 1
                  0x0000006f});  //    j .
  EXPECT_EQ(hart_.run(30), 30u);
  EXPECT_EQ(report, "");
  EXPECT_EQ(hart_.x[11], 1u);
  EXPECT_EQ(hart_.instret, 30u);
}

// A deliberately wrong fast path: a stale load-TLB entry that maps the data page to
// another page. The reference path translates every access, so the checker stops at the
// load and names the register that differs.
TEST_F(InterpTest, CheckReferenceCatchesAnInjectedDivergence) {
  hart_.set_engine(EngineKind::kCheckReference);
  std::string report;
  hart_.on_divergence = [&](const std::string& r) { report = r; };
  stale_pages();
  program(kBase, {0x00700513,    // li a0, 7
                  0x0005b503,    // ld a0, 0(a1)
                  0x00150513,    // addi a0, a0, 1
                  0x0000006f});  // j .
  plant_stale_entry();
  EXPECT_LT(hart_.run(100), 100u);
  EXPECT_TRUE(hart_.diverged);
  EXPECT_NE(report.find("pc 0x0000000080000004"), std::string::npos) << report;
  EXPECT_NE(report.find("ld a0"), std::string::npos) << report;
  EXPECT_NE(report.find("x10: fast path 0x2222, reference 0x1111"), std::string::npos) << report;
  EXPECT_EQ(hart_.run(100), 0u);  // stays stopped
}

// ---- the JIT checker ----

// Compiles every block at its first entry for the length of a test.
class HotAtOnce {
 public:
  HotAtOnce() : saved_(jit_hot_threshold()) { set_jit_hot_threshold(1); }
  ~HotAtOnce() { set_jit_hot_threshold(saved_); }
  HotAtOnce(const HotAtOnce&) = delete;
  HotAtOnce& operator=(const HotAtOnce&) = delete;

 private:
  unsigned saved_;
};

// A loop with stores, loads, a forward branch inside the block and a call: compiled, each
// run of it checked against the reference path, which agrees.
TEST_F(InterpTest, CheckJitAgreesOnACompiledLoop) {
  const HotAtOnce hot;
  hart_.set_engine(EngineKind::kCheckJit);
  std::string report;
  hart_.on_divergence = [&](const std::string& r) { report = r; };
  hart_.x[2] = kBase + 0x1000;
  program(kBase, {0x00000513,    // li a0, 0
                  0x00150513,    // 1: addi a0, a0, 1
                  0x00a13023,    //    sd a0, 0(sp)
                  0x00013583,    //    ld a1, 0(sp)
                  0x0015f613,    //    andi a2, a1, 1
                  0x00060463,    //    beqz a2, 2f
                  0x00b686b3,    //    add a3, a3, a1
                  0x0080006f,    // 2: j 3f
                  0x00000013,    //    nop (skipped)
                  0xfe1ff0ef,    // 3: jal ra, 1b
                  0x0000006f});  //    j . (never reached)
  EXPECT_EQ(hart_.run(5000), 5000u);
  EXPECT_EQ(report, "");
  EXPECT_FALSE(hart_.diverged);
  EXPECT_GT(hart_.engine->compiled_blocks(), 0u);
  // The program's model, to the same instruction.
  uint64_t a0 = 0, a1 = 0, a3 = 0;
  int left = 5000 - 1;
  auto step = [&] { return --left > 0; };
  while (true) {
    ++a0;                           // addi
    if (!step() || !step()) break;  // sd
    a1 = a0;
    if (!step() || !step() || !step()) break;  // ld, andi, beqz
    if ((a1 & 1) != 0) {
      a3 += a1;
      if (!step()) break;  // add
    }
    if (!step() || !step()) break;  // j, jal
  }
  EXPECT_EQ(hart_.x[10], a0);
  EXPECT_EQ(hart_.x[11], a1);
  EXPECT_EQ(hart_.x[13], a3);
}

// The same stale load-TLB entry as above, read by compiled code: the checker reports the
// run of compiled code it was in.
TEST_F(InterpTest, CheckJitCatchesADivergenceInCompiledCode) {
  const HotAtOnce hot;
  hart_.set_engine(EngineKind::kCheckJit);
  std::string report;
  hart_.on_divergence = [&](const std::string& r) { report = r; };
  stale_pages();
  program(kBase, {0x0005b503,    // 1: ld a0, 0(a1)
                  0x00150613,    //    addi a2, a0, 1
                  0xff9ff06f});  //    j 1b
  // Compiled and run cleanly (a run shorter than a block is single-stepped), then the
  // stale entry.
  EXPECT_EQ(hart_.run(300), 300u);
  EXPECT_EQ(report, "");
  EXPECT_EQ(hart_.x[12], 0x1112u);
  EXPECT_GT(hart_.engine->compiled_blocks(), 0u);
  plant_stale_entry();
  EXPECT_LT(hart_.run(3000), 3000u);
  EXPECT_TRUE(hart_.diverged);
  EXPECT_NE(report.find("in compiled code entered at pc 0x0000000080000000"), std::string::npos)
      << report;
  EXPECT_NE(report.find("x10: fast path 0x2222, reference 0x1111"), std::string::npos) << report;
  EXPECT_NE(report.find("x12: fast path 0x2223, reference 0x1112"), std::string::npos) << report;
}

// Compiled stores are logged, undone and run again by the reference path: the memory and
// the registers come out as the program says.
TEST_F(InterpTest, CheckJitReplaysCompiledStores) {
  const HotAtOnce hot;
  hart_.set_engine(EngineKind::kCheckJit);
  std::string report;
  hart_.on_divergence = [&](const std::string& r) { report = r; };
  const uint64_t data = kBase + 0x3000;
  hart_.x[11] = data;
  program(kBase, {0x00150513,    // 1: addi a0, a0, 1
                  0x00a5b023,    //    sd a0, 0(a1)
                  0xff9ff06f});  //    j 1b
  EXPECT_EQ(hart_.run(300), 300u);
  EXPECT_EQ(report, "");
  EXPECT_GT(hart_.engine->compiled_blocks(), 0u);
  uint64_t stored = 0;
  std::memcpy(&stored, bus_.ram_ptr(data, 8), 8);
  EXPECT_EQ(stored, 100u);
  EXPECT_EQ(hart_.x[10], 100u);
}

}  // namespace
}  // namespace nimbus::cpu
