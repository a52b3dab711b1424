#include "cpu/isa/disasm.h"

#include <fmt/format.h>

#include <string_view>

namespace nimbus::cpu::isa {

namespace {
constexpr const char* kXNames[32] = {"zero", "ra", "sp",  "gp",  "tp", "t0", "t1", "t2",
                                     "s0",   "s1", "a0",  "a1",  "a2", "a3", "a4", "a5",
                                     "a6",   "a7", "s2",  "s3",  "s4", "s5", "s6", "s7",
                                     "s8",   "s9", "s10", "s11", "t3", "t4", "t5", "t6"};
constexpr const char* kFNames[32] = {"ft0", "ft1", "ft2",  "ft3",  "ft4", "ft5", "ft6",  "ft7",
                                     "fs0", "fs1", "fa0",  "fa1",  "fa2", "fa3", "fa4",  "fa5",
                                     "fa6", "fa7", "fs2",  "fs3",  "fs4", "fs5", "fs6",  "fs7",
                                     "fs8", "fs9", "fs10", "fs11", "ft8", "ft9", "ft10", "ft11"};
constexpr const char* kRmNames[8] = {"rne", "rtz", "rdn", "rup", "rmm", "rm5", "rm6", "dyn"};

std::string operand(std::string_view tok, const Decoded& d, uint64_t pc) {
  if (tok == "rd") return kXNames[d.rd];
  if (tok == "rs1") return kXNames[d.rs1];
  if (tok == "rs2") return kXNames[d.rs2];
  if (tok == "fd") return kFNames[d.rd];
  if (tok == "fs1") return kFNames[d.rs1];
  if (tok == "fs2") return kFNames[d.rs2];
  if (tok == "fs3") return kFNames[d.rs3];
  if (tok == "imm") return fmt::format("{}", d.imm);
  if (tok == "off(rs1)") return fmt::format("{}({})", d.imm, kXNames[d.rs1]);
  if (tok == "(rs1)") return fmt::format("({})", kXNames[d.rs1]);
  if (tok == "target") return fmt::format("{:#x}", pc + static_cast<uint64_t>(d.imm));
  if (tok == "hi20") return fmt::format("{:#x}", (static_cast<uint64_t>(d.imm) >> 12) & 0xfffff);
  if (tok == "csr") return fmt::format("{:#x}", d.imm);
  if (tok == "zimm") return fmt::format("{}", d.rs1);
  if (tok == "rm") return kRmNames[d.rm];
  return std::string(tok);
}
}  // namespace

const char* xreg_name(unsigned r) { return kXNames[r & 31]; }
const char* freg_name(unsigned r) { return kFNames[r & 31]; }

std::string disassemble(const Decoded& d, uint64_t pc) {
  if (d.row == kNoRow) {
    return d.len == 2 ? fmt::format("unknown {:#06x}", d.raw)
                      : fmt::format("unknown {:#010x}", d.raw);
  }
  const Row& row = kRows[d.row];
  std::string out = row.mnemonic;
  std::string_view ops = row.operands;
  bool first = true;
  while (!ops.empty()) {
    size_t comma = ops.find(',');
    std::string_view tok = ops.substr(0, comma);
    ops = comma == std::string_view::npos ? std::string_view() : ops.substr(comma + 1);
    if (tok == "rm" && d.rm == 7) continue;  // the dynamic mode is the default: not shown
    out += first ? " " : ", ";
    out += operand(tok, d, pc);
    first = false;
  }
  return out;
}

}  // namespace nimbus::cpu::isa
