// The decoder against encodings produced by binutils' assembler (riscv64-linux-gnu-as,
// objdump -M no-aliases): one of every instruction in the table.
#include "cpu/isa/decode.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "cpu/isa/disasm.h"

namespace nimbus::cpu::isa {
namespace {

struct Known {
  uint32_t raw;
  const char* mnemonic;
};

// One encoding per line, as binutils' objdump printed them.
// clang-format off
constexpr Known kBinutils[] = {
    {0x12345537, "lui"},
    {0x00000297, "auipc"},
    {0x000000ef, "jal"},
    {0x008580e7, "jalr"},
    {0x00b50063, "beq"},
    {0x00b51063, "bne"},
    {0x00b54063, "blt"},
    {0x00b55063, "bge"},
    {0x00b56063, "bltu"},
    {0x00b57063, "bgeu"},
    {0x00158503, "lb"},
    {0x00259503, "lh"},
    {0x0045a503, "lw"},
    {0x0085b503, "ld"},
    {0x0015c503, "lbu"},
    {0x0025d503, "lhu"},
    {0x0045e503, "lwu"},
    {0x00a580a3, "sb"},
    {0x00a59123, "sh"},
    {0x00a5a223, "sw"},
    {0x00a5b423, "sd"},
    {0xffb58513, "addi"},
    {0x0035a513, "slti"},
    {0x0035b513, "sltiu"},
    {0x0035c513, "xori"},
    {0x0035e513, "ori"},
    {0x0035f513, "andi"},
    {0x03f59513, "slli"},
    {0x0215d513, "srli"},
    {0x43f5d513, "srai"},
    {0x00c58533, "add"},
    {0x40c58533, "sub"},
    {0x00c59533, "sll"},
    {0x00c5a533, "slt"},
    {0x00c5b533, "sltu"},
    {0x00c5c533, "xor"},
    {0x00c5d533, "srl"},
    {0x40c5d533, "sra"},
    {0x00c5e533, "or"},
    {0x00c5f533, "and"},
    {0x0075851b, "addiw"},
    {0x01f5951b, "slliw"},
    {0x01f5d51b, "srliw"},
    {0x41f5d51b, "sraiw"},
    {0x00c5853b, "addw"},
    {0x40c5853b, "subw"},
    {0x00c5953b, "sllw"},
    {0x00c5d53b, "srlw"},
    {0x40c5d53b, "sraw"},
    {0x0ff0000f, "fence"},
    {0x0000100f, "fence.i"},
    {0x00000073, "ecall"},
    {0x00100073, "ebreak"},
    {0x30059573, "csrrw"},
    {0x3005a573, "csrrs"},
    {0x3005b573, "csrrc"},
    {0x3002d573, "csrrwi"},
    {0x3002e573, "csrrsi"},
    {0x3002f573, "csrrci"},
    {0x10200073, "sret"},
    {0x30200073, "mret"},
    {0x10500073, "wfi"},
    {0x12b50073, "sfence.vma"},
    {0x02c58533, "mul"},
    {0x02c59533, "mulh"},
    {0x02c5a533, "mulhsu"},
    {0x02c5b533, "mulhu"},
    {0x02c5c533, "div"},
    {0x02c5d533, "divu"},
    {0x02c5e533, "rem"},
    {0x02c5f533, "remu"},
    {0x02c5853b, "mulw"},
    {0x02c5c53b, "divw"},
    {0x02c5d53b, "divuw"},
    {0x02c5e53b, "remw"},
    {0x02c5f53b, "remuw"},
    {0x1005a52f, "lr.w"},
    {0x18c5a52f, "sc.w"},
    {0x08c5a52f, "amoswap.w"},
    {0x00c5a52f, "amoadd.w"},
    {0x20c5a52f, "amoxor.w"},
    {0x60c5a52f, "amoand.w"},
    {0x40c5a52f, "amoor.w"},
    {0x80c5a52f, "amomin.w"},
    {0xa0c5a52f, "amomax.w"},
    {0xc0c5a52f, "amominu.w"},
    {0xe0c5a52f, "amomaxu.w"},
    {0x1005b52f, "lr.d"},
    {0x18c5b52f, "sc.d"},
    {0x0ec5b52f, "amoswap.d"},
    {0x00c5b52f, "amoadd.d"},
    {0x20c5b52f, "amoxor.d"},
    {0x60c5b52f, "amoand.d"},
    {0x40c5b52f, "amoor.d"},
    {0x80c5b52f, "amomin.d"},
    {0xa0c5b52f, "amomax.d"},
    {0xc0c5b52f, "amominu.d"},
    {0xe0c5b52f, "amomaxu.d"},
    {0x0045a507, "flw"},
    {0x00a5a227, "fsw"},
    {0x68c5f543, "fmadd.s"},
    {0x68c5f547, "fmsub.s"},
    {0x68c5f54b, "fnmsub.s"},
    {0x68c5f54f, "fnmadd.s"},
    {0x00c5f553, "fadd.s"},
    {0x08c5f553, "fsub.s"},
    {0x10c5f553, "fmul.s"},
    {0x18c5f553, "fdiv.s"},
    {0x5805f553, "fsqrt.s"},
    {0x20c58553, "fsgnj.s"},
    {0x20c59553, "fsgnjn.s"},
    {0x20c5a553, "fsgnjx.s"},
    {0x28c58553, "fmin.s"},
    {0x28c59553, "fmax.s"},
    {0xc005f553, "fcvt.w.s"},
    {0xc015f553, "fcvt.wu.s"},
    {0xc025f553, "fcvt.l.s"},
    {0xc035f553, "fcvt.lu.s"},
    {0xe0058553, "fmv.x.w"},
    {0xe0059553, "fclass.s"},
    {0xa0c5a553, "feq.s"},
    {0xa0c59553, "flt.s"},
    {0xa0c58553, "fle.s"},
    {0xd005f553, "fcvt.s.w"},
    {0xd015f553, "fcvt.s.wu"},
    {0xd025f553, "fcvt.s.l"},
    {0xd035f553, "fcvt.s.lu"},
    {0xf0058553, "fmv.w.x"},
    {0x0085b507, "fld"},
    {0x00a5b427, "fsd"},
    {0x6ac5f543, "fmadd.d"},
    {0x6ac5f547, "fmsub.d"},
    {0x6ac5f54b, "fnmsub.d"},
    {0x6ac5f54f, "fnmadd.d"},
    {0x02c5f553, "fadd.d"},
    {0x0ac5f553, "fsub.d"},
    {0x12c5f553, "fmul.d"},
    {0x1ac5f553, "fdiv.d"},
    {0x5a05f553, "fsqrt.d"},
    {0x22c58553, "fsgnj.d"},
    {0x22c59553, "fsgnjn.d"},
    {0x22c5a553, "fsgnjx.d"},
    {0x2ac58553, "fmin.d"},
    {0x2ac59553, "fmax.d"},
    {0x4015f553, "fcvt.s.d"},
    {0x42058553, "fcvt.d.s"},
    {0xa2c5a553, "feq.d"},
    {0xa2c59553, "flt.d"},
    {0xa2c58553, "fle.d"},
    {0xe2059553, "fclass.d"},
    {0xc205f553, "fcvt.w.d"},
    {0xc215f553, "fcvt.wu.d"},
    {0xc225f553, "fcvt.l.d"},
    {0xc235f553, "fcvt.lu.d"},
    {0xd2058553, "fcvt.d.w"},
    {0xd2158553, "fcvt.d.wu"},
    {0xd225f553, "fcvt.d.l"},
    {0xd235f553, "fcvt.d.lu"},
    {0xe2058553, "fmv.x.d"},
    {0xf2058553, "fmv.d.x"},
    {0x08c5853b, "add.uw"},
    {0x20c5a533, "sh1add"},
    {0x20c5c533, "sh2add"},
    {0x20c5e533, "sh3add"},
    {0x20c5a53b, "sh1add.uw"},
    {0x20c5c53b, "sh2add.uw"},
    {0x20c5e53b, "sh3add.uw"},
    {0x0a85951b, "slli.uw"},
    {0x40c5f533, "andn"},
    {0x40c5e533, "orn"},
    {0x40c5c533, "xnor"},
    {0x60059513, "clz"},
    {0x60159513, "ctz"},
    {0x60259513, "cpop"},
    {0x6005951b, "clzw"},
    {0x6015951b, "ctzw"},
    {0x6025951b, "cpopw"},
    {0x0ac5e533, "max"},
    {0x0ac5f533, "maxu"},
    {0x0ac5c533, "min"},
    {0x0ac5d533, "minu"},
    {0x60459513, "sext.b"},
    {0x60559513, "sext.h"},
    {0x0805c53b, "zext.h"},
    {0x60c59533, "rol"},
    {0x60c5d533, "ror"},
    {0x60c5953b, "rolw"},
    {0x60c5d53b, "rorw"},
    {0x6285d513, "rori"},
    {0x6145d51b, "roriw"},
    {0x2875d513, "orc.b"},
    {0x6b85d513, "rev8"},
    {0x48c59533, "bclr"},
    {0x4a859513, "bclri"},
    {0x48c5d533, "bext"},
    {0x4a85d513, "bexti"},
    {0x68c59533, "binv"},
    {0x6a859513, "binvi"},
    {0x28c59533, "bset"},
    {0x2a859513, "bseti"},
    {0x0808, "c.addi4spn"},
    {0x2588, "c.fld"},
    {0x41c8, "c.lw"},
    {0x6588, "c.ld"},
    {0xa588, "c.fsd"},
    {0xc1c8, "c.sw"},
    {0xe588, "c.sd"},
    {0x0001, "c.addi"},
    {0x1575, "c.addi"},
    {0x2515, "c.addiw"},
    {0x5565, "c.li"},
    {0x7139, "c.addi16sp"},
    {0x657d, "c.lui"},
    {0x9121, "c.srli"},
    {0x850d, "c.srai"},
    {0x9979, "c.andi"},
    {0x8d0d, "c.sub"},
    {0x8d2d, "c.xor"},
    {0x8d4d, "c.or"},
    {0x8d6d, "c.and"},
    {0x9d0d, "c.subw"},
    {0x9d2d, "c.addw"},
    {0xa001, "c.j"},
    {0xc101, "c.beqz"},
    {0xe101, "c.bnez"},
    {0x1506, "c.slli"},
    {0x2522, "c.fldsp"},
    {0x4512, "c.lwsp"},
    {0x6522, "c.ldsp"},
    {0x8502, "c.jr"},
    {0x852e, "c.mv"},
    {0x9002, "c.ebreak"},
    {0x9502, "c.jalr"},
    {0x952e, "c.add"},
    {0xa42a, "c.fsdsp"},
    {0xc22a, "c.swsp"},
    {0xe42a, "c.sdsp"}
};
// clang-format on

TEST(Decode, MatchesBinutilsEncodings) {
  for (const Known& k : kBinutils) {
    Decoded d = decode(k.raw);
    ASSERT_NE(d.row, kNoRow) << std::hex << k.raw;
    EXPECT_STREQ(kRows[d.row].mnemonic, k.mnemonic) << std::hex << k.raw;
    EXPECT_EQ(d.len, is_compressed(k.raw) ? 2 : 4);
  }
}

// Every row is reachable: some encoding decodes to it (no row is shadowed by another),
// and it disassembles to its own mnemonic.
TEST(Decode, EveryRowDecodesAndDisassembles) {
  std::mt19937 rng(1234);
  for (unsigned i = 0; i < kRowCount; i++) {
    const Row& row = kRows[i];
    const uint32_t width_mask = row.compressed ? 0xffffu : 0xffffffffu;
    bool found = false;
    for (int attempt = 0; attempt < 5000 && !found; attempt++) {
      uint32_t raw = (row.match | (rng() & ~row.mask)) & width_mask;
      Decoded d = decode(raw);
      if (d.row == i) {
        found = true;
        std::string text = disassemble(d, 0x80000000);
        EXPECT_EQ(text.rfind(row.mnemonic, 0), 0u) << text;
      }
    }
    EXPECT_TRUE(found) << row.name;
  }
}

TEST(Decode, CompressedFieldsExpandToBase) {
  // c.addi16sp sp, -64 is addi sp, sp, -64
  Decoded d = decode(0x7139);
  EXPECT_EQ(d.op, Op::addi);
  EXPECT_EQ(d.rd, 2);
  EXPECT_EQ(d.rs1, 2);
  EXPECT_EQ(d.imm, -64);
  // c.lui a0, 0x1f is lui a0, 0x1f000
  d = decode(0x657d);
  EXPECT_EQ(d.op, Op::lui);
  EXPECT_EQ(d.rd, 10);
  EXPECT_EQ(d.imm, 0x1f000);
  // c.jalr a0 links ra
  d = decode(0x9502);
  EXPECT_EQ(d.op, Op::jalr);
  EXPECT_EQ(d.rd, 1);
  EXPECT_EQ(d.rs1, 10);
  // c.mv a0, a1 is add a0, x0, a1
  d = decode(0x852e);
  EXPECT_EQ(d.op, Op::add);
  EXPECT_EQ(d.rs1, 0);
  EXPECT_EQ(d.rs2, 11);
}

TEST(Decode, ReservedCompressedEncodingsAreIllegal) {
  for (uint32_t raw : {0x0000u,  // all zeros (c.addi4spn with imm 0)
                       0x0010u,  // c.addi4spn nzuimm = 0
                       0x6001u,  // c.lui x0... with imm 0
                       0x6501u,  // c.lui a0, 0 (nzimm = 0)
                       0x6101u,  // c.addi16sp with imm 0
                       0x2001u,  // c.addiw x0
                       0x4002u,  // c.lwsp x0
                       0x6002u,  // c.ldsp x0
                       0x8002u,  // c.jr x0
                       0x8000u,  // quadrant 0 funct3 100
                       0x9c41u,  // reserved CA ops
                       0x9c61u}) {
    Decoded d = decode(raw);
    EXPECT_EQ(d.op, Op::illegal) << std::hex << raw;
    EXPECT_EQ(d.len, 2);
    EXPECT_EQ(d.raw, raw);
  }
}

TEST(Decode, UnknownWideEncodingsAreIllegal) {
  EXPECT_EQ(decode(0xffffffffu).op, Op::illegal);
  EXPECT_EQ(decode(0x0000000bu).op, Op::illegal);  // custom-0
  EXPECT_EQ(decode(0x8000101bu).op, Op::illegal);  // slliw with funct7 bits set
  EXPECT_EQ(decode(0x1010202fu).op, Op::illegal);  // lr.w with rs2 != 0
  EXPECT_EQ(decode(0x30200173u).op, Op::illegal);  // mret with rs1 bits set
}

}  // namespace
}  // namespace nimbus::cpu::isa
