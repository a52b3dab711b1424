#include "cpu/hart_state.h"

#include <gtest/gtest.h>

#include <cstring>

namespace nimbus::cpu {
namespace {

constexpr uint64_t kBase = 0x80000000;

TEST(HartState, RoundTripsRegistersAndCsrs) {
  mem::Bus bus(kBase, 1 << 20);
  Hart a(bus, 0);
  for (unsigned i = 1; i < 32; i++) a.x[i] = 0x1000 + i;
  for (unsigned i = 0; i < 32; i++) a.f[i] = 0xffffffff00000000ull | i;
  a.pc = kBase + 0x40;
  a.priv = kPrivS;
  a.satp = (8ull << 60) | 0x80123;
  a.mepc = 0x1234;
  a.scause = 5;
  a.mip = 1u << kIrqSTimer;
  a.frm = 3;
  a.fflags = 0x11;
  a.instret = 999;
  a.pmpaddr[3] = 0xabc;
  a.pmpcfg[3] = 0x1f;
  a.reservation_valid = true;
  a.reservation_addr = reinterpret_cast<uintptr_t>(bus.ram()) + 0x100;
  a.reservation_value = 77;
  a.waiting = true;

  StateWriter w;
  save_hart_state(a, w);

  mem::Bus bus2(kBase, 1 << 20);
  Hart b(bus2, 0);
  StateReader r(w.data());
  load_hart_state(b, r);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r.at_end());
  for (unsigned i = 0; i < 32; i++) EXPECT_EQ(b.x[i], a.x[i]);
  for (unsigned i = 0; i < 32; i++) EXPECT_EQ(b.f[i], a.f[i]);
  EXPECT_EQ(b.pc, a.pc);
  EXPECT_EQ(b.priv, kPrivS);
  EXPECT_EQ(b.satp, a.satp);
  EXPECT_EQ(b.mepc, 0x1234u);
  EXPECT_EQ(b.scause, 5u);
  EXPECT_EQ(b.mip.load(), 1u << kIrqSTimer);
  EXPECT_EQ(b.frm, 3u);
  EXPECT_EQ(b.fflags, 0x11u);
  EXPECT_EQ(b.instret, 999u);
  EXPECT_EQ(b.pmpaddr[3], 0xabcu);
  EXPECT_EQ(b.pmpcfg[3], 0x1f);
  // The reservation moves to the same offset in the new RAM.
  EXPECT_TRUE(b.reservation_valid);
  EXPECT_EQ(b.reservation_addr, reinterpret_cast<uintptr_t>(bus2.ram()) + 0x100);
  EXPECT_EQ(b.reservation_value, 77u);
  EXPECT_TRUE(b.waiting);
}

TEST(HartState, RestoredHartContinuesExecution) {
  mem::Bus bus(kBase, 1 << 20);
  Hart a(bus, 0);
  a.reset(kBase);
  // addi x5, x5, 1 ; jal x0, -4
  const uint32_t prog[] = {0x00128293, 0xffdff06f};
  std::memcpy(bus.ram(), prog, sizeof(prog));
  a.run(101);  // 51 addis
  StateWriter w;
  save_hart_state(a, w);

  mem::Bus bus2(kBase, 1 << 20);
  std::memcpy(bus2.ram(), bus.ram(), 1 << 20);
  Hart b(bus2, 0);
  StateReader r(w.data());
  load_hart_state(b, r);
  ASSERT_TRUE(r.ok());
  a.run(100);
  b.run(100);
  EXPECT_EQ(a.x[5], b.x[5]);
  EXPECT_EQ(a.pc, b.pc);
  EXPECT_EQ(a.instret, b.instret);
}

TEST(HartState, RefusesOtherHartAndBadPrivilege) {
  mem::Bus bus(kBase, 1 << 20);
  Hart a(bus, 1);
  StateWriter w;
  save_hart_state(a, w);
  Hart b(bus, 2);
  StateReader r(w.data());
  load_hart_state(b, r);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("hart id 1"), std::string::npos);

  std::vector<uint8_t> bytes = w.data();
  // priv sits after the section header, version, hartid, x[32], f[32] and pc.
  const size_t name = 8 + 4, header = name + 8;
  bytes[header + 4 + 8 + 64 * 8 + 8] = 2;
  Hart c(bus, 1);
  StateReader r2(bytes);
  load_hart_state(c, r2);
  EXPECT_FALSE(r2.ok());
  EXPECT_NE(r2.status().message().find("invalid privilege"), std::string::npos);
}

}  // namespace
}  // namespace nimbus::cpu
