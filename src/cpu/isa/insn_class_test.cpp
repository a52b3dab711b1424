// The class column of the instruction table agrees with the rest of each row: a row put
// in the wrong class would get the wrong block rules (a no-op when rd = x0, a block that
// does not end after it) without any other check noticing. (That each body in
// interp_ops.inc has the kind its class calls for is checked when interp.cpp compiles.)
#include "cpu/isa/insn_class.h"

#include <gtest/gtest.h>

#include <string>

namespace nimbus::cpu::isa {
namespace {

// The disassembly operands every row of a class has (nullptr: no single shape).
const char* operands_of(Class c) {
  switch (c) {
    case Class::RR:
      return "rd,rs1,rs2";
    case Class::RI:
      return "rd,rs1,imm";
    case Class::R1:
      return "rd,rs1";
    case Class::UP:
      return "rd,hi20";
    case Class::LD:
      return "rd,off(rs1)";
    case Class::ST:
      return "rs2,off(rs1)";
    case Class::BR:
      return "rs1,rs2,target";
    case Class::JAL:
      return "rd,target";
    case Class::JALR:
      return "rd,off(rs1)";
    case Class::FENCE:
    case Class::FENCEI:
      return "";
    default:
      return nullptr;
  }
}

TEST(InsnClass, EveryRowsClassFitsItsOperandsAndExtension) {
  unsigned rows = 0;
  for (unsigned i = 0; i < kRowCount; i++) {
    const Row& row = kRows[i];
    if (row.compressed) continue;  // runs its base instruction's body
    rows++;
    const Class c = class_of(row.op);
    const std::string ext = row.extension;
    SCOPED_TRACE(row.name);
    if (const char* ops = operands_of(c)) {
      EXPECT_STREQ(row.operands, ops);
    }
    // F and D instructions (their loads and stores too) need the FS check of FP bodies.
    EXPECT_EQ(c == Class::FP, ext == "F" || ext == "D");
    EXPECT_EQ(c == Class::AMO, ext == "A");
    EXPECT_EQ(c == Class::CSR, std::string(row.operands).rfind("rd,csr,", 0) == 0);
    if (c == Class::SYS) {
      EXPECT_TRUE(ext == "I" || ext == "Priv");
    }
    // The JIT's dispatch is generated from the same rows: only its classes may say yes.
    if (jit_compiled(row.op)) {
      EXPECT_TRUE(jit_class(c));
    }
  }
  EXPECT_EQ(rows, static_cast<unsigned>(Op::illegal));  // one 32-bit row per Op
}

TEST(InsnClass, BlockRulesFollowTheClass) {
  for (unsigned i = 0; i < kRowCount; i++) {
    const Row& row = kRows[i];
    if (row.compressed) continue;  // same op, same rules as its base row
    const Class c = class_of(row.op);
    SCOPED_TRACE(row.name);
    // Anything that traps, jumps or may change privilege, translation or interrupts ends
    // a block; a conditional branch does not (its taken path is a side exit).
    if (c == Class::CSR || c == Class::SYS || c == Class::JAL || c == Class::JALR) {
      EXPECT_TRUE(ends_block(row.op));
    }
    if (c == Class::BR || c == Class::LD || c == Class::ST) {
      EXPECT_FALSE(ends_block(row.op));
    }
    // Only instructions that cannot trap and only write x[rd] become no-ops with rd = x0.
    if (writes_only_rd(row.op)) {
      EXPECT_EQ(body_of(c), Body::kOp);
      EXPECT_FALSE(ends_block(row.op));
      EXPECT_EQ(std::string(row.operands).rfind("rd,", 0), 0u);
    }
  }
  EXPECT_TRUE(ends_block(Op::illegal));
}

}  // namespace
}  // namespace nimbus::cpu::isa
