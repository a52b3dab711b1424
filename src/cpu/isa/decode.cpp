#include "cpu/isa/decode.h"

#include <algorithm>
#include <array>
#include <bit>
#include <vector>

#include "common/bits.h"

namespace nimbus::cpu::isa {

namespace {

enum class Imm : uint8_t { N, I, S, B, U, J, SH, CSR };

enum class CFmt : uint8_t {
  CIW_ADDI4SPN,
  CL_W,
  CL_D,
  CS_W,
  CS_D,
  CI_ADDI,
  CI_ADDIW,
  CI_LI,
  CI_ADDI16SP,
  CI_LUI,
  CB_SHIFT,
  CB_ANDI,
  CA,
  CJ,
  CB_BRANCH,
  CI_SLLI,
  CI_FLDSP,
  CI_LWSP,
  CI_LDSP,
  CR_JR,
  CR_MV,
  CR_EBREAK,
  CR_JALR,
  CR_ADD,
  CSS_SD,
  CSS_SW,
};

struct RowFormat {
  bool compressed;
  Imm imm;
  CFmt cfmt;
};

constexpr RowFormat kFormats[] = {
#define INSN(name, mnemonic, mask, match, fmt, ops, ext, cls, jit) {false, Imm::fmt, CFmt::CA},
#define CINSN(name, mnemonic, mask, match, cfmt, ops, base) {true, Imm::N, CFmt::cfmt},
#include "cpu/isa/instructions.inc"
};

int64_t imm32(uint32_t r, Imm f) {
  switch (f) {
    case Imm::N:
      return 0;
    case Imm::I:
      return sext(bits(r, 31, 20), 12);
    case Imm::S:
      return sext((bits(r, 31, 25) << 5) | bits(r, 11, 7), 12);
    case Imm::B:
      return sext(
          (bit(r, 31) << 12) | (bit(r, 7) << 11) | (bits(r, 30, 25) << 5) | (bits(r, 11, 8) << 1),
          13);
    case Imm::U:
      return sext(r & 0xfffff000u, 32);
    case Imm::J:
      return sext((bit(r, 31) << 20) | (bits(r, 19, 12) << 12) | (bit(r, 20) << 11) |
                      (bits(r, 30, 21) << 1),
                  21);
    case Imm::SH:
      return static_cast<int64_t>(bits(r, 25, 20));
    case Imm::CSR:
      return static_cast<int64_t>(bits(r, 31, 20));
  }
  return 0;
}

// Fills rd/rs1/rs2/imm for a compressed row; false for a reserved encoding.
bool decode_compressed(uint32_t r, CFmt f, Decoded& d) {
  const uint8_t full_rd = bits(r, 11, 7);
  const uint8_t full_rs2 = bits(r, 6, 2);
  const uint8_t rdp = 8 + bits(r, 4, 2);   // rd'/rs2' in bits 4:2
  const uint8_t rs1p = 8 + bits(r, 9, 7);  // rs1'/rd' in bits 9:7
  const int64_t ci_imm = sext((bit(r, 12) << 5) | bits(r, 6, 2), 6);
  switch (f) {
    case CFmt::CIW_ADDI4SPN:
      d.rd = rdp;
      d.rs1 = 2;
      d.imm = (bits(r, 12, 11) << 4) | (bits(r, 10, 7) << 6) | (bit(r, 6) << 2) | (bit(r, 5) << 3);
      return d.imm != 0;
    case CFmt::CL_W:
      d.rd = rdp;
      d.rs1 = rs1p;
      d.imm = (bits(r, 12, 10) << 3) | (bit(r, 6) << 2) | (bit(r, 5) << 6);
      return true;
    case CFmt::CL_D:
      d.rd = rdp;
      d.rs1 = rs1p;
      d.imm = (bits(r, 12, 10) << 3) | (bits(r, 6, 5) << 6);
      return true;
    case CFmt::CS_W:
      d.rs2 = rdp;
      d.rs1 = rs1p;
      d.imm = (bits(r, 12, 10) << 3) | (bit(r, 6) << 2) | (bit(r, 5) << 6);
      return true;
    case CFmt::CS_D:
      d.rs2 = rdp;
      d.rs1 = rs1p;
      d.imm = (bits(r, 12, 10) << 3) | (bits(r, 6, 5) << 6);
      return true;
    case CFmt::CI_ADDI:  // rd=0 is c.nop (or a HINT): both execute as addi x0
      d.rd = d.rs1 = full_rd;
      d.imm = ci_imm;
      return true;
    case CFmt::CI_ADDIW:
      d.rd = d.rs1 = full_rd;
      d.imm = ci_imm;
      return full_rd != 0;
    case CFmt::CI_LI:
      d.rd = full_rd;
      d.rs1 = 0;
      d.imm = ci_imm;
      return true;
    case CFmt::CI_ADDI16SP:
      d.rd = d.rs1 = 2;
      d.imm = sext((bit(r, 12) << 9) | (bit(r, 6) << 4) | (bit(r, 5) << 6) | (bits(r, 4, 3) << 7) |
                       (bit(r, 2) << 5),
                   10);
      return d.imm != 0;
    case CFmt::CI_LUI:
      d.rd = full_rd;
      d.imm = sext((bit(r, 12) << 17) | (bits(r, 6, 2) << 12), 18);
      return d.imm != 0;
    case CFmt::CB_SHIFT:
      d.rd = d.rs1 = rs1p;
      d.imm = (bit(r, 12) << 5) | bits(r, 6, 2);
      return true;
    case CFmt::CB_ANDI:
      d.rd = d.rs1 = rs1p;
      d.imm = ci_imm;
      return true;
    case CFmt::CA:
      d.rd = d.rs1 = rs1p;
      d.rs2 = rdp;
      return true;
    case CFmt::CJ:
      d.rd = 0;
      d.imm =
          sext((bit(r, 12) << 11) | (bit(r, 11) << 4) | (bits(r, 10, 9) << 8) | (bit(r, 8) << 10) |
                   (bit(r, 7) << 6) | (bit(r, 6) << 7) | (bits(r, 5, 3) << 1) | (bit(r, 2) << 5),
               12);
      return true;
    case CFmt::CB_BRANCH:
      d.rs1 = rs1p;
      d.rs2 = 0;
      d.imm = sext((bit(r, 12) << 8) | (bits(r, 11, 10) << 3) | (bits(r, 6, 5) << 6) |
                       (bits(r, 4, 3) << 1) | (bit(r, 2) << 5),
                   9);
      return true;
    case CFmt::CI_SLLI:
      d.rd = d.rs1 = full_rd;
      d.imm = (bit(r, 12) << 5) | bits(r, 6, 2);
      return true;
    case CFmt::CI_FLDSP:
      d.rd = full_rd;
      d.rs1 = 2;
      d.imm = (bit(r, 12) << 5) | (bits(r, 6, 5) << 3) | (bits(r, 4, 2) << 6);
      return true;
    case CFmt::CI_LWSP:
      d.rd = full_rd;
      d.rs1 = 2;
      d.imm = (bit(r, 12) << 5) | (bits(r, 6, 4) << 2) | (bits(r, 3, 2) << 6);
      return full_rd != 0;
    case CFmt::CI_LDSP:
      d.rd = full_rd;
      d.rs1 = 2;
      d.imm = (bit(r, 12) << 5) | (bits(r, 6, 5) << 3) | (bits(r, 4, 2) << 6);
      return full_rd != 0;
    case CFmt::CR_JR:
      d.rd = 0;
      d.rs1 = full_rd;
      d.imm = 0;
      return full_rd != 0;
    case CFmt::CR_MV:
      d.rd = full_rd;
      d.rs1 = 0;
      d.rs2 = full_rs2;
      return true;
    case CFmt::CR_EBREAK:
      return true;
    case CFmt::CR_JALR:
      d.rd = 1;
      d.rs1 = full_rd;
      d.imm = 0;
      return true;  // rs1 = 0 is c.ebreak, matched first
    case CFmt::CR_ADD:
      d.rd = d.rs1 = full_rd;
      d.rs2 = full_rs2;
      return true;
    case CFmt::CSS_SD:
      d.rs2 = full_rs2;
      d.rs1 = 2;
      d.imm = (bits(r, 12, 10) << 3) | (bits(r, 9, 7) << 6);
      return true;
    case CFmt::CSS_SW:
      d.rs2 = full_rs2;
      d.rs1 = 2;
      d.imm = (bits(r, 12, 9) << 2) | (bits(r, 8, 7) << 6);
      return true;
  }
  return false;
}

// Rows bucketed by the bits every row's mask covers: for 32-bit rows the major opcode
// (bits 6:0) and funct3 (bits 14:12) -- a row whose mask leaves funct3 open (lui, jal,
// the fused multiply-adds...) sits in all eight of its opcode's buckets; for compressed
// rows the quadrant and funct3 (bits 1:0 and 15:13). Within a bucket, rows with more mask
// bits come first, so a special case wins over the general row it is carved from.
struct Buckets {
  std::array<std::vector<uint16_t>, 1024> wide;
  std::array<std::vector<uint16_t>, 32> narrow;
  Buckets() {
    for (uint16_t i = 0; i < kRowCount; i++) {
      const Row& row = kRows[i];
      if (row.compressed) {
        narrow[(row.match & 3) | (bits(row.match, 15, 13) << 2)].push_back(i);
        continue;
      }
      for (uint32_t f3 = 0; f3 < 8; f3++) {
        if ((row.mask & 0x7000) == 0x7000 && bits(row.match, 14, 12) != f3) continue;
        wide[(row.match & 0x7f) | (f3 << 7)].push_back(i);
      }
    }
    auto by_specificity = [](uint16_t a, uint16_t b) {
      return std::popcount(kRows[a].mask) > std::popcount(kRows[b].mask);
    };
    for (auto& v : wide) std::stable_sort(v.begin(), v.end(), by_specificity);
    for (auto& v : narrow) std::stable_sort(v.begin(), v.end(), by_specificity);
  }
};

}  // namespace

const Row kRows[] = {
#define INSN(name, mnemonic, mask, match, fmt, ops, ext, cls, jit) \
  {#name, mnemonic, mask, match, ops, #ext, Op::name, false},
#define CINSN(name, mnemonic, mask, match, cfmt, ops, base) \
  {#name, mnemonic, mask, match, ops, "C", Op::base, true},
#include "cpu/isa/instructions.inc"
};
const unsigned kRowCount = sizeof(kRows) / sizeof(kRows[0]);

namespace {
// Built once at start-up (after kRows, which is constant-initialised).
const Buckets g_buckets;
}  // namespace

Decoded decode(uint32_t raw) {
  Decoded d{};
  d.op = Op::illegal;
  d.row = kNoRow;
  if (is_compressed(raw)) {
    raw &= 0xffff;
    d.raw = raw;
    d.len = 2;
    for (uint16_t i : g_buckets.narrow[(raw & 3) | (bits(raw, 15, 13) << 2)]) {
      const Row& row = kRows[i];
      if ((raw & row.mask) != row.match) continue;
      Decoded c = d;
      if (!decode_compressed(raw, kFormats[i].cfmt, c)) return d;  // reserved
      c.op = row.op;
      c.row = i;
      return c;
    }
    return d;
  }
  d.raw = raw;
  d.len = 4;
  d.rd = bits(raw, 11, 7);
  d.rs1 = bits(raw, 19, 15);
  d.rs2 = bits(raw, 24, 20);
  d.rs3 = bits(raw, 31, 27);
  d.rm = bits(raw, 14, 12);
  for (uint16_t i : g_buckets.wide[(raw & 0x7f) | (bits(raw, 14, 12) << 7)]) {
    const Row& row = kRows[i];
    if ((raw & row.mask) != row.match) continue;
    d.op = row.op;
    d.row = i;
    d.imm = static_cast<int32_t>(imm32(raw, kFormats[i].imm));
    return d;
  }
  return d;
}

}  // namespace nimbus::cpu::isa
