// The interpreter run on small hand-assembled programs (encodings from binutils).
#include <gtest/gtest.h>

#include <cstring>
#include <initializer_list>

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

  mem::Bus bus_;
  Hart hart_;
};

TEST_F(InterpTest, ArithmeticLoadsStores) {
  hart_.x[2] = kBase + 0x1000;  // sp
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
  hart_.mstatus_ |= 1ull << 13;  // FS = Initial
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
  EXPECT_EQ(hart_.x[14], 5u);      // five instructions retired since minstret was 0
  EXPECT_EQ(hart_.instret, 2u);    // the write replaced the increment
}

TEST_F(InterpTest, WritesToX0AreDiscarded) {
  program(kBase, {0x00500013});  // addi x0, x0, 5
  hart_.run(1);
  EXPECT_EQ(hart_.x[0], 0u);
}

}  // namespace
}  // namespace nimbus::cpu
