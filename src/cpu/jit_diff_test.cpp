// Differential test: the JIT engine (EngineKind::kJit) against the plain block interpreter
// (EngineKind::kInterpreter) on randomly generated RISC-V programs.
//
// Approach. For each seed a generator (std::mt19937_64, so a seed always gives the same
// program) assembles an M-mode program at 0x80000000: a jump to a hot outer loop (20-200
// iterations, counted in a reserved register) around a random body of 5-60 items, then a
// final self-loop (or WFI), then a few subroutines the body calls. The body mixes every
// RV64I/M integer instruction, Zba/Zbb/Zbs, compressed (RVC) instructions, loads and
// stores of every width at aligned, misaligned, page-straddling and out-of-RAM addresses,
// forward branches and jumps (jal, jalr, c.j, c.beqz/c.bnez, c.jr, c.jalr), bounded inner
// loops, calls and returns, CSR reads (cycle/instret must agree exactly), mscratch and
// minstret/mcycle writes, AMOs and LR/SC, fences and things that trap (ecall, ebreak,
// illegal encodings, FP instructions while mstatus.FS is off, access faults). A trap
// handler at mtvec folds mcause/mtval into a reserved register and resumes after the
// faulting instruction (it reads the instruction's low bits to step over 2 or 4 bytes).
//
// Floating point. Three seeds in four (chosen by a generator of their own, so the other
// programs are exactly the integer programs their seeds always gave) are FP programs:
// - Set-up: mstatus.FS Initial, Clean or Dirty (Off for one in ten: their FP instructions
//   trap until the body turns FS on), frm mostly a valid mode (0-4) and sometimes a
//   reserved one (5-7: every dynamic-rm instruction must trap), random fflags. The f
//   registers hold +-0, +-inf, quiet and signalling NaNs with payloads, the canonical NaN,
//   denormals, the extremes, 1.0, -1.5, ties, values around +-2^31, 2^32, +-2^63 and 2^64
//   (conversions) and around the single format's limits, random values, NaN-boxed singles
//   of the same kinds and singles whose upper half is not all ones. Registers with bit 2
//   clear are mostly used as doubles, the others as singles (used at random both ways,
//   nearly every result would be a NaN). Some integer registers and data words hold FP
//   bit patterns too.
// - Body: every F and D instruction (flw/fld/fsw/fsd at aligned, misaligned, straddling
//   and faulting addresses; c.fld/c.fsd/c.fldsp/c.fsdsp; fadd/fsub/fmul/fdiv/fsqrt, the
//   four FMAs, fsgnj/fsgnjn/fsgnjx, fmin/fmax, feq/flt/fle, fclass, every fcvt between
//   w/wu/l/lu and s/d and between s and d, fmv.x.w/w.x/x.d/d.x) with the rm field mostly
//   dynamic, sometimes each static mode and rarely a reserved one (5, 6: illegal). FP
//   values feed integer code and back (fmv both ways around integer ops, conversions
//   whose results later integer instructions read) and edge values are built inline (lui
//   [+ slli] + fmv). Rounding probes convert exact ties (x.5, 2^24 + 1, 2^53 + 1, ...),
//   where the rounding modes disagree. Every iteration of the outer loop starts with
//   fresh values (auipc + fld/flw from a constant pool, conversions of the loop counter),
//   sometimes with FS set back to Initial or Clean (the first FP write must dirty it) and
//   fflags read and cleared (the flags are sticky: a wrong one must show). csrr/csrrw/
//   csrrs/csrrc/csrrwi... of frm, fflags and fcsr, and rare writes of mstatus.FS (Off for a
//   few instructions and back, or to Initial/Clean/Dirty) change the modes compiled code
//   runs in.
// - Checked after every run() call besides the rest: f0..f31 (bit patterns: NaN payloads
//   and boxing count), fflags, frm and mstatus (FS and SD).
// Deliberate bugs put in a copy of the JIT's FP code (the FS or frm check dropped, RDN/RUP
// swapped, RMM run as RNE, SD or FS Dirty not set, a flag lost or swapped, feq made
// signalling, flt/fle swapped, fmsub as fnmsub, static RTZ ignored, NaN results not made
// canonical, singles not NaN-boxed or their boxing not checked, fmv.x.w not
// sign-extended, fcvt overflow not caught, fsd storing 4 bytes, ...) were each caught
// within the default seeds.
//
// Two harts, each with its own Bus and identical initial RAM and registers, run the
// program: one on the interpreter, one on the JIT with a hot threshold of 1 (every block is
// compiled on its first entry) or, for some seeds, the default threshold (compilation
// starts mid-run). Both get the same sequence of run(n) calls with random budgets (mostly
// 1..3000, some tiny, some large), because compiled loops must stop exactly when the budget
// runs out. After every call the return value, pc, x0..x31, f0..f31, fflags, frm, instret,
// cycle, the trap CSRs, privilege, mstatus, mscratch, the trap count, WFI state, the LR/SC
// reservation and the whole RAM must be identical. The first difference is reported with
// the seed, the call number, the budgets so far and a listing of the program (a watchdog
// turns a run() call that does not come back into such a report too).
//
// A second test runs self-modifying programs (an instruction that a hot loop rewrites
// through a store and FENCE.I on every outer iteration) the same way, and a third checks
// the encoders (every FP one included) against binutils and every F/D row of the ISA
// table against the generator's, so the generator itself can be trusted.
//
// Environment knobs for debugging: NIMBUS_JIT_DIFF_SEED=N runs only seed N (and prints its
// listing, its initial FP state and one line per run() call), NIMBUS_JIT_DIFF_SEEDS=N
// changes how many seeds run (default 2000: about 5 s on a 2-core build host; 500 under
// the sanitizers, whose unoptimised build is many times slower).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "cpu/hart.h"
#include "cpu/isa/decode.h"
#include "cpu/isa/disasm.h"
#include "mem/bus.h"

namespace nimbus::cpu {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
constexpr uint64_t kDefaultSeeds = 500;
#else
constexpr uint64_t kDefaultSeeds = 2000;
#endif

// ---- memory map of a test program ----
constexpr uint64_t kBase = 0x80000000;
constexpr uint64_t kRamSize = 256 * 1024;
constexpr uint64_t kRamEnd = kBase + kRamSize;
constexpr uint64_t kHandler = kBase + 0x10000;  // mtvec
constexpr uint64_t kData = kBase + 0x20000;     // 4 pages that s0-relative accesses hit
constexpr uint64_t kDataSize = 0x4000;
constexpr uint64_t kLastPage = kRamEnd - 0x1000;  // s1 points at its end (= the end of RAM)

// ---- registers with fixed roles (random instructions read them but never write them) ----
constexpr unsigned kRegData = 8;       // s0: a pointer into the data region
constexpr unsigned kRegEnd = 9;        // s1: the end of RAM (positive offsets fault)
constexpr unsigned kRegTrapHash = 27;  // s11: the handler folds mcause and mtval in here
constexpr unsigned kRegTrapTmp = 28;   // t3: handler scratch
constexpr unsigned kRegInner = 29;     // t4: inner loop counter
constexpr unsigned kRegOuter = 30;     // t5: outer loop counter
constexpr unsigned kRegTrapPc = 31;    // t6: handler scratch

// Registers random instructions may write.
constexpr unsigned kWritable[] = {1,  2,  3,  4,  5,  6,  7,  10, 11, 12, 13, 14,
                                  15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26};

// ======================================================================================
// Encoders. Each returns the instruction word; offsets and immediates are plain integers
// (the encoder scatters their bits).
// ======================================================================================
namespace enc {

constexpr uint32_t r(uint32_t f7, unsigned rs2, unsigned rs1, uint32_t f3, unsigned rd,
                     uint32_t op) {
  return f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}
constexpr uint32_t i(int32_t imm, unsigned rs1, uint32_t f3, unsigned rd, uint32_t op) {
  return (static_cast<uint32_t>(imm) & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}
constexpr uint32_t s(int32_t imm, unsigned rs2, unsigned rs1, uint32_t f3, uint32_t op) {
  const uint32_t u = static_cast<uint32_t>(imm);
  return ((u >> 5) & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (u & 0x1f) << 7 | op;
}
constexpr uint32_t b(int32_t off, unsigned rs2, unsigned rs1, uint32_t f3) {
  const uint32_t u = static_cast<uint32_t>(off);
  return ((u >> 12) & 1) << 31 | ((u >> 5) & 0x3f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 |
         ((u >> 1) & 0xf) << 8 | ((u >> 11) & 1) << 7 | 0x63;
}
constexpr uint32_t u(int32_t imm20, unsigned rd, uint32_t op) {
  return (static_cast<uint32_t>(imm20) & 0xfffff) << 12 | rd << 7 | op;
}
constexpr uint32_t j(int32_t off, unsigned rd) {
  const uint32_t v = static_cast<uint32_t>(off);
  return ((v >> 20) & 1) << 31 | ((v >> 1) & 0x3ff) << 21 | ((v >> 11) & 1) << 20 |
         ((v >> 12) & 0xff) << 12 | rd << 7 | 0x6f;
}

// Named forms used by the fixed code (handler, loop tails, SMC test).
constexpr uint32_t addi(unsigned rd, unsigned rs1, int32_t imm) { return i(imm, rs1, 0, rd, 0x13); }
constexpr uint32_t andi(unsigned rd, unsigned rs1, int32_t imm) { return i(imm, rs1, 7, rd, 0x13); }
constexpr uint32_t add(unsigned rd, unsigned rs1, unsigned rs2) {
  return r(0, rs2, rs1, 0, rd, 0x33);
}
constexpr uint32_t xor_(unsigned rd, unsigned rs1, unsigned rs2) {
  return r(0, rs2, rs1, 4, rd, 0x33);
}
constexpr uint32_t rori(unsigned rd, unsigned rs1, unsigned sh) {
  return i(0x600 | sh, rs1, 5, rd, 0x13);
}
constexpr uint32_t lhu(unsigned rd, unsigned rs1, int32_t off) { return i(off, rs1, 5, rd, 0x03); }
constexpr uint32_t lw(unsigned rd, unsigned rs1, int32_t off) { return i(off, rs1, 2, rd, 0x03); }
constexpr uint32_t sw(unsigned rs2, unsigned rs1, int32_t off) { return s(off, rs2, rs1, 2, 0x23); }
constexpr uint32_t bne(unsigned rs1, unsigned rs2, int32_t off) { return b(off, rs2, rs1, 1); }
constexpr uint32_t beq(unsigned rs1, unsigned rs2, int32_t off) { return b(off, rs2, rs1, 0); }
constexpr uint32_t jal(unsigned rd, int32_t off) { return j(off, rd); }
constexpr uint32_t jalr(unsigned rd, unsigned rs1, int32_t off) { return i(off, rs1, 0, rd, 0x67); }
constexpr uint32_t lui(unsigned rd, int32_t imm20) { return u(imm20, rd, 0x37); }
constexpr uint32_t auipc(unsigned rd, int32_t imm20) { return u(imm20, rd, 0x17); }
constexpr uint32_t csr(uint32_t f3, unsigned rd, unsigned csrno, unsigned rs1) {
  return i(static_cast<int32_t>(csrno), rs1, f3, rd, 0x73);
}
constexpr uint32_t csrr(unsigned rd, unsigned csrno) { return csr(2, rd, csrno, 0); }    // csrrs
constexpr uint32_t csrw(unsigned csrno, unsigned rs1) { return csr(1, 0, csrno, rs1); }  // csrrw
constexpr uint32_t amo(uint32_t f5, bool dword, unsigned rd, unsigned rs1, unsigned rs2,
                       bool aq = false, bool rl = false) {
  return f5 << 27 | uint32_t{aq} << 26 | uint32_t{rl} << 25 | rs2 << 20 | rs1 << 15 |
         (dword ? 3u : 2u) << 12 | rd << 7 | 0x2f;
}
constexpr uint32_t kEcall = 0x00000073;
constexpr uint32_t kEbreak = 0x00100073;
constexpr uint32_t kMret = 0x30200073;
constexpr uint32_t kWfi = 0x10500073;
constexpr uint32_t kFenceI = 0x0000100f;
constexpr uint32_t fence(unsigned pred, unsigned succ) {
  return (pred << 24) | (succ << 20) | 0x0f;
}

// ---- compressed ----
constexpr uint16_t bit(int32_t v, unsigned n) {
  return static_cast<uint16_t>((static_cast<uint32_t>(v) >> n) & 1);
}
constexpr uint16_t bits(int32_t v, unsigned hi, unsigned lo) {
  return static_cast<uint16_t>((static_cast<uint32_t>(v) >> lo) & ((1u << (hi - lo + 1)) - 1));
}
// CI: funct3 | imm[5] | rd | imm[4:0] | op
constexpr uint16_t ci(unsigned f3, unsigned rd, int32_t imm6, unsigned op) {
  return static_cast<uint16_t>(f3 << 13 | bit(imm6, 5) << 12 | rd << 7 | bits(imm6, 4, 0) << 2 |
                               op);
}
constexpr uint16_t c_addi(unsigned rd, int32_t imm) { return ci(0, rd, imm, 1); }
constexpr uint16_t c_addiw(unsigned rd, int32_t imm) { return ci(1, rd, imm, 1); }
constexpr uint16_t c_li(unsigned rd, int32_t imm) { return ci(2, rd, imm, 1); }
// imm6 = nzimm[17:12]
constexpr uint16_t c_lui(unsigned rd, int32_t imm6) { return ci(3, rd, imm6, 1); }
constexpr uint16_t c_slli(unsigned rd, unsigned sh) {
  return ci(0, rd, static_cast<int32_t>(sh), 2);
}
constexpr uint16_t c_nop() { return 0x0001; }
constexpr uint16_t c_addi16sp(int32_t imm) {
  return static_cast<uint16_t>(3 << 13 | bit(imm, 9) << 12 | 2 << 7 | bit(imm, 4) << 6 |
                               bit(imm, 6) << 5 | bits(imm, 8, 7) << 3 | bit(imm, 5) << 2 | 1);
}
constexpr uint16_t c_lwsp(unsigned rd, uint32_t off) {
  return static_cast<uint16_t>(2 << 13 | bit(off, 5) << 12 | rd << 7 | bits(off, 4, 2) << 4 |
                               bits(off, 7, 6) << 2 | 2);
}
constexpr uint16_t c_ldsp(unsigned rd, uint32_t off) {
  return static_cast<uint16_t>(3 << 13 | bit(off, 5) << 12 | rd << 7 | bits(off, 4, 3) << 5 |
                               bits(off, 8, 6) << 2 | 2);
}
// CB shifts and andi: 100 | imm[5] | kind | rd' | imm[4:0] | 01
constexpr uint16_t cb_alu(unsigned kind, unsigned rdp, int32_t imm) {
  return static_cast<uint16_t>(4 << 13 | bit(imm, 5) << 12 | kind << 10 | (rdp - 8) << 7 |
                               bits(imm, 4, 0) << 2 | 1);
}
constexpr uint16_t c_srli(unsigned rdp, unsigned sh) {
  return cb_alu(0, rdp, static_cast<int32_t>(sh));
}
constexpr uint16_t c_srai(unsigned rdp, unsigned sh) {
  return cb_alu(1, rdp, static_cast<int32_t>(sh));
}
constexpr uint16_t c_andi(unsigned rdp, int32_t imm) { return cb_alu(2, rdp, imm); }
// CA: 100 | w | 11 | rd' | funct2 | rs2' | 01
constexpr uint16_t ca(bool w, unsigned f2, unsigned rdp, unsigned rs2p) {
  return static_cast<uint16_t>(0x8c01 | uint32_t{w} << 12 | (rdp - 8) << 7 | f2 << 5 |
                               (rs2p - 8) << 2);
}
constexpr uint16_t c_sub(unsigned rdp, unsigned rs2p) { return ca(false, 0, rdp, rs2p); }
constexpr uint16_t c_xor(unsigned rdp, unsigned rs2p) { return ca(false, 1, rdp, rs2p); }
constexpr uint16_t c_or(unsigned rdp, unsigned rs2p) { return ca(false, 2, rdp, rs2p); }
constexpr uint16_t c_and(unsigned rdp, unsigned rs2p) { return ca(false, 3, rdp, rs2p); }
constexpr uint16_t c_subw(unsigned rdp, unsigned rs2p) { return ca(true, 0, rdp, rs2p); }
constexpr uint16_t c_addw(unsigned rdp, unsigned rs2p) { return ca(true, 1, rdp, rs2p); }
// CR: funct4 | rd/rs1 | rs2 | 10
constexpr uint16_t cr(unsigned f4, unsigned rd, unsigned rs2) {
  return static_cast<uint16_t>(f4 << 12 | rd << 7 | rs2 << 2 | 2);
}
constexpr uint16_t c_mv(unsigned rd, unsigned rs2) { return cr(8, rd, rs2); }
constexpr uint16_t c_add(unsigned rd, unsigned rs2) { return cr(9, rd, rs2); }
constexpr uint16_t c_jr(unsigned rs1) { return cr(8, rs1, 0); }
constexpr uint16_t c_jalr(unsigned rs1) { return cr(9, rs1, 0); }
constexpr uint16_t c_ebreak() { return cr(9, 0, 0); }
// CL/CS: funct3 | off[5:3] | rs1' | off[2|6] or off[7:6] | rd'/rs2' | 00
constexpr uint16_t cls_w(unsigned f3, unsigned rp, unsigned rs1p, uint32_t off) {
  return static_cast<uint16_t>(f3 << 13 | bits(off, 5, 3) << 10 | (rs1p - 8) << 7 |
                               bit(off, 2) << 6 | bit(off, 6) << 5 | (rp - 8) << 2);
}
constexpr uint16_t cls_d(unsigned f3, unsigned rp, unsigned rs1p, uint32_t off) {
  return static_cast<uint16_t>(f3 << 13 | bits(off, 5, 3) << 10 | (rs1p - 8) << 7 |
                               bits(off, 7, 6) << 5 | (rp - 8) << 2);
}
constexpr uint16_t c_lw(unsigned rdp, unsigned rs1p, uint32_t off) {
  return cls_w(2, rdp, rs1p, off);
}
constexpr uint16_t c_ld(unsigned rdp, unsigned rs1p, uint32_t off) {
  return cls_d(3, rdp, rs1p, off);
}
constexpr uint16_t c_sw(unsigned rs2p, unsigned rs1p, uint32_t off) {
  return cls_w(6, rs2p, rs1p, off);
}
constexpr uint16_t c_sd(unsigned rs2p, unsigned rs1p, uint32_t off) {
  return cls_d(7, rs2p, rs1p, off);
}
// CIW: 000 | nzuimm[5:4|9:6|2|3] | rd' | 00
constexpr uint16_t c_addi4spn(unsigned rdp, uint32_t imm) {
  return static_cast<uint16_t>(bits(imm, 5, 4) << 11 | bits(imm, 9, 6) << 7 | bit(imm, 2) << 6 |
                               bit(imm, 3) << 5 | (rdp - 8) << 2);
}
// CJ: 101 | off[11|4|9:8|10|6|7|3:1|5] | 01
constexpr uint16_t c_j(int32_t off) {
  return static_cast<uint16_t>(5 << 13 | bit(off, 11) << 12 | bit(off, 4) << 11 |
                               bits(off, 9, 8) << 9 | bit(off, 10) << 8 | bit(off, 6) << 7 |
                               bit(off, 7) << 6 | bits(off, 3, 1) << 3 | bit(off, 5) << 2 | 1);
}
// CB branches: 11x | off[8|4:3] | rs1' | off[7:6|2:1|5] | 01
constexpr uint16_t cb_branch(unsigned f3, unsigned rs1p, int32_t off) {
  return static_cast<uint16_t>(f3 << 13 | bit(off, 8) << 12 | bits(off, 4, 3) << 10 |
                               (rs1p - 8) << 7 | bits(off, 7, 6) << 5 | bits(off, 2, 1) << 3 |
                               bit(off, 5) << 2 | 1);
}
constexpr uint16_t c_beqz(unsigned rs1p, int32_t off) { return cb_branch(6, rs1p, off); }
constexpr uint16_t c_bnez(unsigned rs1p, int32_t off) { return cb_branch(7, rs1p, off); }

// ---- F and D ----
// OP-FP: funct7 (operation and format) | rs2 | rs1 | rm or funct3 | rd | 1010011
constexpr uint32_t fp(uint32_t f7, unsigned rs2, unsigned rs1, uint32_t rm, unsigned rd) {
  return r(f7, rs2, rs1, rm, rd, 0x53);
}
// R4 (fused multiply-add): rs3 | fmt | rs2 | rs1 | rm | rd | op
constexpr uint32_t fma(uint32_t op, bool dbl, unsigned rd, unsigned rs1, unsigned rs2, unsigned rs3,
                       uint32_t rm) {
  return rs3 << 27 | uint32_t{dbl} << 25 | rs2 << 20 | rs1 << 15 | rm << 12 | rd << 7 | op;
}
constexpr uint32_t flw(unsigned rd, unsigned rs1, int32_t off) { return i(off, rs1, 2, rd, 0x07); }
constexpr uint32_t fld(unsigned rd, unsigned rs1, int32_t off) { return i(off, rs1, 3, rd, 0x07); }
constexpr uint32_t fsw(unsigned rs2, unsigned rs1, int32_t off) {
  return s(off, rs2, rs1, 2, 0x27);
}
constexpr uint32_t fsd(unsigned rs2, unsigned rs1, int32_t off) {
  return s(off, rs2, rs1, 3, 0x27);
}
constexpr uint16_t c_fld(unsigned rdp, unsigned rs1p, uint32_t off) {
  return cls_d(1, rdp, rs1p, off);
}
constexpr uint16_t c_fsd(unsigned rs2p, unsigned rs1p, uint32_t off) {
  return cls_d(5, rs2p, rs1p, off);
}
// CI: 001 | off[5] | rd | off[4:3|8:6] | 10
constexpr uint16_t c_fldsp(unsigned rd, uint32_t off) {
  return static_cast<uint16_t>(1 << 13 | bit(off, 5) << 12 | rd << 7 | bits(off, 4, 3) << 5 |
                               bits(off, 8, 6) << 2 | 2);
}
// CSS: 101 | off[5:3|8:6] | rs2 | 10
constexpr uint16_t c_fsdsp(unsigned rs2, uint32_t off) {
  return static_cast<uint16_t>(5 << 13 | bits(off, 5, 3) << 10 | bits(off, 8, 6) << 7 | rs2 << 2 |
                               2);
}

}  // namespace enc

// ---- operation tables (names are the decoder's mnemonics; EncodersMatchBinutils checks) ----
struct ROp {
  const char* name;
  uint8_t f7, f3, op;
};
constexpr ROp kROps[] = {
    {"add", 0, 0, 0x33},          {"sub", 0x20, 0, 0x33},       {"sll", 0, 1, 0x33},
    {"slt", 0, 2, 0x33},          {"sltu", 0, 3, 0x33},         {"xor", 0, 4, 0x33},
    {"srl", 0, 5, 0x33},          {"sra", 0x20, 5, 0x33},       {"or", 0, 6, 0x33},
    {"and", 0, 7, 0x33},          {"addw", 0, 0, 0x3b},         {"subw", 0x20, 0, 0x3b},
    {"sllw", 0, 1, 0x3b},         {"srlw", 0, 5, 0x3b},         {"sraw", 0x20, 5, 0x3b},
    {"mul", 1, 0, 0x33},          {"mulh", 1, 1, 0x33},         {"mulhsu", 1, 2, 0x33},
    {"mulhu", 1, 3, 0x33},        {"div", 1, 4, 0x33},          {"divu", 1, 5, 0x33},
    {"rem", 1, 6, 0x33},          {"remu", 1, 7, 0x33},         {"mulw", 1, 0, 0x3b},
    {"divw", 1, 4, 0x3b},         {"divuw", 1, 5, 0x3b},        {"remw", 1, 6, 0x3b},
    {"remuw", 1, 7, 0x3b},        {"add.uw", 4, 0, 0x3b},       {"sh1add", 0x10, 2, 0x33},
    {"sh2add", 0x10, 4, 0x33},    {"sh3add", 0x10, 6, 0x33},    {"sh1add.uw", 0x10, 2, 0x3b},
    {"sh2add.uw", 0x10, 4, 0x3b}, {"sh3add.uw", 0x10, 6, 0x3b}, {"andn", 0x20, 7, 0x33},
    {"orn", 0x20, 6, 0x33},       {"xnor", 0x20, 4, 0x33},      {"max", 5, 6, 0x33},
    {"maxu", 5, 7, 0x33},         {"min", 5, 4, 0x33},          {"minu", 5, 5, 0x33},
    {"rol", 0x30, 1, 0x33},       {"ror", 0x30, 5, 0x33},       {"rolw", 0x30, 1, 0x3b},
    {"rorw", 0x30, 5, 0x3b},      {"bclr", 0x24, 1, 0x33},      {"bext", 0x24, 5, 0x33},
    {"binv", 0x34, 1, 0x33},      {"bset", 0x14, 1, 0x33},
};

struct IOp {
  const char* name;
  uint8_t f3, op;
};
constexpr IOp kIOps[] = {{"addi", 0, 0x13}, {"slti", 2, 0x13}, {"sltiu", 3, 0x13},
                         {"xori", 4, 0x13}, {"ori", 6, 0x13},  {"andi", 7, 0x13},
                         {"addiw", 0, 0x1b}};

// Shifts by an immediate: imm[11:6] = f6, imm[5:0] = shamt (< max_shamt + 1).
struct ShOp {
  const char* name;
  uint8_t f6, f3, op, max_shamt;
};
constexpr ShOp kShOps[] = {
    {"slli", 0, 1, 0x13, 63},     {"srli", 0, 5, 0x13, 63},     {"srai", 0x10, 5, 0x13, 63},
    {"rori", 0x18, 5, 0x13, 63},  {"bclri", 0x12, 1, 0x13, 63}, {"bexti", 0x12, 5, 0x13, 63},
    {"binvi", 0x1a, 1, 0x13, 63}, {"bseti", 0x0a, 1, 0x13, 63}, {"slli.uw", 0x02, 1, 0x1b, 63},
    {"slliw", 0, 1, 0x1b, 31},    {"srliw", 0, 5, 0x1b, 31},    {"sraiw", 0x10, 5, 0x1b, 31},
    {"roriw", 0x18, 5, 0x1b, 31},
};

// One-source instructions: the whole imm[11:0] field is fixed.
struct UnOp {
  const char* name;
  uint16_t imm12;
  uint8_t f3, op;
};
constexpr UnOp kUnOps[] = {
    {"clz", 0x600, 1, 0x13},    {"ctz", 0x601, 1, 0x13},    {"cpop", 0x602, 1, 0x13},
    {"sext.b", 0x604, 1, 0x13}, {"sext.h", 0x605, 1, 0x13}, {"clzw", 0x600, 1, 0x1b},
    {"ctzw", 0x601, 1, 0x1b},   {"cpopw", 0x602, 1, 0x1b},  {"orc.b", 0x287, 5, 0x13},
    {"rev8", 0x6b8, 5, 0x13},   {"zext.h", 0x080, 4, 0x3b},
};

constexpr const char* kLoadNames[] = {"lb", "lh", "lw", "ld", "lbu", "lhu", "lwu"};  // by funct3
constexpr const char* kStoreNames[] = {"sb", "sh", "sw", "sd"};

// AMO funct5 values (bits 31:27).
struct AmoOp {
  const char* name;  // without the .w/.d suffix
  uint8_t f5;
};
constexpr AmoOp kAmoOps[] = {{"amoadd", 0x00}, {"amoswap", 0x01}, {"amoxor", 0x04},
                             {"amoor", 0x08},  {"amoand", 0x0c},  {"amomin", 0x10},
                             {"amomax", 0x14}, {"amominu", 0x18}, {"amomaxu", 0x1c}};

// OP-FP rows. Operands: FFF fd, fs1, fs2; FF fd, fs1 (rs2 fixed); XFF rd, fs1, fs2; XF rd, fs1
// (rs2 fixed); FX fd, rs1 (rs2 fixed). f3 < 0: the field is a rounding mode.
enum class FKind : uint8_t { kFFF, kFF, kXFF, kXF, kFX };
struct FOp {
  const char* name;
  uint8_t f7, rs2;
  int8_t f3;
  FKind kind;
};
constexpr FOp kFOps[] = {
    {"fadd.s", 0x00, 0, -1, FKind::kFFF},  {"fsub.s", 0x04, 0, -1, FKind::kFFF},
    {"fmul.s", 0x08, 0, -1, FKind::kFFF},  {"fdiv.s", 0x0c, 0, -1, FKind::kFFF},
    {"fsqrt.s", 0x2c, 0, -1, FKind::kFF},  {"fsgnj.s", 0x10, 0, 0, FKind::kFFF},
    {"fsgnjn.s", 0x10, 0, 1, FKind::kFFF}, {"fsgnjx.s", 0x10, 0, 2, FKind::kFFF},
    {"fmin.s", 0x14, 0, 0, FKind::kFFF},   {"fmax.s", 0x14, 0, 1, FKind::kFFF},
    {"feq.s", 0x50, 0, 2, FKind::kXFF},    {"flt.s", 0x50, 0, 1, FKind::kXFF},
    {"fle.s", 0x50, 0, 0, FKind::kXFF},    {"fclass.s", 0x70, 0, 1, FKind::kXF},
    {"fcvt.w.s", 0x60, 0, -1, FKind::kXF}, {"fcvt.wu.s", 0x60, 1, -1, FKind::kXF},
    {"fcvt.l.s", 0x60, 2, -1, FKind::kXF}, {"fcvt.lu.s", 0x60, 3, -1, FKind::kXF},
    {"fcvt.s.w", 0x68, 0, -1, FKind::kFX}, {"fcvt.s.wu", 0x68, 1, -1, FKind::kFX},
    {"fcvt.s.l", 0x68, 2, -1, FKind::kFX}, {"fcvt.s.lu", 0x68, 3, -1, FKind::kFX},
    {"fmv.x.w", 0x70, 0, 0, FKind::kXF},   {"fmv.w.x", 0x78, 0, 0, FKind::kFX},
    {"fadd.d", 0x01, 0, -1, FKind::kFFF},  {"fsub.d", 0x05, 0, -1, FKind::kFFF},
    {"fmul.d", 0x09, 0, -1, FKind::kFFF},  {"fdiv.d", 0x0d, 0, -1, FKind::kFFF},
    {"fsqrt.d", 0x2d, 0, -1, FKind::kFF},  {"fsgnj.d", 0x11, 0, 0, FKind::kFFF},
    {"fsgnjn.d", 0x11, 0, 1, FKind::kFFF}, {"fsgnjx.d", 0x11, 0, 2, FKind::kFFF},
    {"fmin.d", 0x15, 0, 0, FKind::kFFF},   {"fmax.d", 0x15, 0, 1, FKind::kFFF},
    {"feq.d", 0x51, 0, 2, FKind::kXFF},    {"flt.d", 0x51, 0, 1, FKind::kXFF},
    {"fle.d", 0x51, 0, 0, FKind::kXFF},    {"fclass.d", 0x71, 0, 1, FKind::kXF},
    {"fcvt.w.d", 0x61, 0, -1, FKind::kXF}, {"fcvt.wu.d", 0x61, 1, -1, FKind::kXF},
    {"fcvt.l.d", 0x61, 2, -1, FKind::kXF}, {"fcvt.lu.d", 0x61, 3, -1, FKind::kXF},
    {"fcvt.d.w", 0x69, 0, -1, FKind::kFX}, {"fcvt.d.wu", 0x69, 1, -1, FKind::kFX},
    {"fcvt.d.l", 0x69, 2, -1, FKind::kFX}, {"fcvt.d.lu", 0x69, 3, -1, FKind::kFX},
    {"fmv.x.d", 0x71, 0, 0, FKind::kXF},   {"fmv.d.x", 0x79, 0, 0, FKind::kFX},
    {"fcvt.s.d", 0x20, 1, -1, FKind::kFF}, {"fcvt.d.s", 0x21, 0, -1, FKind::kFF},
};

// The instruction word of an OP-FP row (rs2 only where the row takes a second operand).
constexpr uint32_t fop_word(const FOp& op, unsigned rd, unsigned rs1, unsigned rs2, uint32_t rm) {
  const bool two = op.kind == FKind::kFFF || op.kind == FKind::kXFF;
  return enc::fp(op.f7, two ? rs2 : op.rs2, rs1, op.f3 < 0 ? rm : static_cast<uint32_t>(op.f3), rd);
}

// Fused multiply-add major opcodes (the name without .s/.d).
struct FmaOp {
  const char* name;
  uint8_t op;
};
constexpr FmaOp kFmaOps[] = {{"fmadd", 0x43}, {"fmsub", 0x47}, {"fnmsub", 0x4b}, {"fnmadd", 0x4f}};

// FP CSRs.
constexpr unsigned kFflags = 0x001, kFrm = 0x002, kFcsr = 0x003, kMstatus = 0x300;

// ======================================================================================
// A tiny assembler: instructions at addresses, labels, and fixups resolved at the end.
// ======================================================================================
enum class Fix : uint8_t {
  kNone,
  kB,     // conditional branch to the label
  kJ,     // jal to the label
  kCB,    // c.beqz / c.bnez
  kCJ,    // c.j
  kHi20,  // auipc: upper part of (label + addend - anchor)
  kLo12,  // I-type (jalr, addi) after that auipc: lower part of the same distance
};

struct Insn {
  uint64_t addr;
  uint32_t raw;
  uint8_t len;
  Fix fix = Fix::kNone;
  int label = -1;
  uint64_t anchor = 0;  // kHi20/kLo12: the auipc's address
  int32_t addend = 0;   // kHi20/kLo12: added to the label's address
};

class Asm {
 public:
  static constexpr uint64_t kUnbound = ~0ULL;

  uint64_t pc = kBase;
  std::vector<Insn> code;
  std::vector<uint64_t> labels;
  std::vector<std::string> label_names;

  int new_label(std::string name = "") {
    labels.push_back(kUnbound);
    label_names.push_back(name.empty() ? fmt::format("L{}", labels.size() - 1) : std::move(name));
    return static_cast<int>(labels.size() - 1);
  }
  void bind(int l) { labels[static_cast<size_t>(l)] = pc; }
  int here(std::string name = "") {
    const int l = new_label(std::move(name));
    bind(l);
    return l;
  }
  void org(uint64_t addr) { pc = addr; }

  void w(uint32_t raw, Fix fix = Fix::kNone, int label = -1, uint64_t anchor = 0,
         int32_t addend = 0) {
    code.push_back({pc, raw, 4, fix, label, anchor, addend});
    pc += 4;
  }
  void c(uint16_t raw, Fix fix = Fix::kNone, int label = -1) {
    code.push_back({pc, raw, 2, fix, label, 0, 0});
    pc += 2;
  }

  // Fills in every label-relative field (call once). Returns an error for an unbound label
  // or a distance that does not fit (a generator bug).
  std::string resolve() {
    for (Insn& in : code) {
      if (in.fix == Fix::kNone) continue;
      const uint64_t target = labels[static_cast<size_t>(in.label)];
      if (target == kUnbound)
        return fmt::format("label {} unbound", label_names[static_cast<size_t>(in.label)]);
      const int64_t off = static_cast<int64_t>(target - in.addr);
      auto fits = [&](int64_t lo, int64_t hi) { return off >= lo && off <= hi; };
      auto bad = [&] {
        return fmt::format("fixup {} at {:#x} to {}: offset {} out of range",
                           static_cast<int>(in.fix), in.addr,
                           label_names[static_cast<size_t>(in.label)], off);
      };
      switch (in.fix) {
        case Fix::kB:
          if (!fits(-4096, 4094)) return bad();
          in.raw |= enc::b(static_cast<int32_t>(off), 0, 0, 0) & ~0x7fu;
          break;
        case Fix::kJ:
          if (!fits(-(1 << 20), (1 << 20) - 2)) return bad();
          in.raw |= enc::j(static_cast<int32_t>(off), 0) & ~0x7fu;
          break;
        case Fix::kCB:
          if (!fits(-256, 254)) return bad();
          in.raw |= enc::cb_branch(0, 8, static_cast<int32_t>(off)) & ~0x3u;
          break;
        case Fix::kCJ:
          if (!fits(-2048, 2046)) return bad();
          in.raw |= enc::c_j(static_cast<int32_t>(off)) & ~0xe003u;
          break;
        case Fix::kHi20:
        case Fix::kLo12: {
          const int64_t dist = static_cast<int64_t>(target - in.anchor) + in.addend;
          const int64_t hi = (dist + 0x800) >> 12;
          const int64_t lo = dist - (hi << 12);
          if (in.fix == Fix::kHi20) {
            in.raw |= enc::u(static_cast<int32_t>(hi), 0, 0);
          } else {
            in.raw |= enc::i(static_cast<int32_t>(lo), 0, 0, 0, 0);
          }
          break;
        }
        case Fix::kNone:
          break;
      }
    }
    return "";
  }

  void store(mem::Bus& bus) const {
    for (const Insn& in : code) std::memcpy(bus.ram_ptr(in.addr, in.len), &in.raw, in.len);
  }

  // Address-ordered listing with labels; `marks` puts a note after the lines at those
  // addresses (e.g. where each hart stopped).
  std::string listing(const std::vector<std::pair<uint64_t, std::string>>& marks = {}) const {
    std::vector<const Insn*> sorted;
    for (const Insn& in : code) sorted.push_back(&in);
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const Insn* a, const Insn* b) { return a->addr < b->addr; });
    std::string out;
    uint64_t prev_end = 0;
    for (const Insn* in : sorted) {
      if (prev_end != 0 && in->addr != prev_end) out += "        ...\n";
      prev_end = in->addr + in->len;
      for (size_t l = 0; l < labels.size(); l++) {
        if (labels[l] == in->addr) out += fmt::format("{}:\n", label_names[l]);
      }
      const isa::Decoded d = isa::decode(in->raw);
      out += fmt::format(
          "  {:#010x}: {:>8}  {}", in->addr,
          in->len == 2 ? fmt::format("{:04x}", in->raw) : fmt::format("{:08x}", in->raw),
          isa::disassemble(d, in->addr));
      for (const auto& [addr, note] : marks) {
        if (addr == in->addr) out += "   <== " + note;
      }
      out += "\n";
    }
    return out;
  }
};

// The trap handler at mtvec: resume after the faulting instruction (2 or 4 bytes, from its
// low bits), folding mcause and mtval into s11 so every trap leaves a trace.
void emit_trap_handler(Asm& a) {
  a.org(kHandler);
  a.here("trap_handler");
  a.w(enc::csrr(kRegTrapPc, 0x341));          // t6 = mepc
  a.w(enc::lhu(kRegTrapTmp, kRegTrapPc, 0));  // t3 = low parcel of the instruction
  a.w(enc::andi(kRegTrapTmp, kRegTrapTmp, 3));
  a.w(enc::addi(kRegTrapPc, kRegTrapPc, 2));
  a.w(enc::addi(kRegTrapTmp, kRegTrapTmp, -3));  // zero if 32-bit
  a.w(enc::bne(kRegTrapTmp, 0, 8));
  a.w(enc::addi(kRegTrapPc, kRegTrapPc, 2));
  a.w(enc::csrw(0x341, kRegTrapPc));   // mepc = next instruction
  a.w(enc::csrr(kRegTrapTmp, 0x342));  // mcause
  a.w(enc::add(kRegTrapHash, kRegTrapHash, kRegTrapTmp));
  a.w(enc::rori(kRegTrapHash, kRegTrapHash, 13));
  a.w(enc::csrr(kRegTrapTmp, 0x343));  // mtval
  a.w(enc::xor_(kRegTrapHash, kRegTrapHash, kRegTrapTmp));
  a.w(enc::kMret);
}

// A program ready to load: code, initial registers and data.
struct Program {
  Asm a;
  uint64_t x[32] = {};
  uint64_t end_pc = 0;             // the final self-loop (or WFI)
  std::vector<uint8_t> data;       // kData .. kData + kDataSize
  std::vector<uint8_t> last_page;  // kLastPage .. kRamEnd
  unsigned hot_threshold = 1;
  // Floating point (all zero for integer programs: FS Off, as after reset).
  bool fp = false;  // the generator mixed F/D instructions in
  unsigned fs = 0;  // initial mstatus.FS: 0 Off, 1 Initial, 2 Clean, 3 Dirty
  uint64_t f[32] = {};
  uint32_t fflags = 0;
  uint32_t frm = 0;  // 5..7 are reserved: dynamic-rm instructions trap

  void load(Hart& h) const {
    a.store(h.bus);
    std::memcpy(h.bus.ram_ptr(kData, kDataSize), data.data(), kDataSize);
    std::memcpy(h.bus.ram_ptr(kLastPage, 0x1000), last_page.data(), 0x1000);
    std::memcpy(h.x, x, sizeof(x));
    h.mtvec = kHandler;
    std::memcpy(h.f, f, sizeof(f));
    h.fflags = fflags;
    h.frm = frm;
    if (fs != 0) {  // through the CSR path, so SD and the TLB context follow
      const bool ok =
          h.csr_write(kMstatus, (h.mstatus_ & ~mstatus::kFS) | uint64_t{fs} << mstatus::kFSShift);
      EXPECT_TRUE(ok);
    }
  }
};

// Interesting 64-bit values for registers and memory.
constexpr uint64_t kEdgeValues[] = {
    0,
    1,
    ~0ULL,
    1ULL << 63,
    (1ULL << 63) - 1,
    1ULL << 31,
    0x7fffffff,
    0xffffffff,
    0xffffffff80000000ULL,
    1ULL << 32,
    0x8000000000000001ULL,
    2,
    ~1ULL,
    31,
    32,
    63,
    64,
    0xff,
    0x80,
    0xffff,
    0x8000,
    0x00ff00ff00ff00ffULL,
    0x0123456789abcdefULL,
};

// NaNs: canonical, quiet and signalling, with payloads, negative.
constexpr uint64_t kFpDoubleNaNs[] = {
    0x7ff8000000000000ULL,  // canonical NaN
    0xfff8000000000000ULL,  // negative quiet NaN
    0x7ff8000000000001ULL,  // quiet NaN, payload
    0x7ffc0000deadbeefULL,  // quiet NaN, payload
    0x7ff0000000000001ULL,  // signalling NaN
    0x7ff4000000000000ULL,  // signalling NaN
    0xfff0000000000001ULL,  // negative signalling NaN
    0x7ff7ffffffffffffULL,  // signalling NaN, all payload bits
};
constexpr uint32_t kFpSingleNaNs[] = {
    0x7fc00000u,  // canonical NaN
    0xffc00000u,  // negative quiet NaN
    0x7fc00001u,  // quiet NaN, payload
    0x7fe5a5a5u,  // quiet NaN, payload
    0x7f800001u,  // signalling NaN
    0x7fa00000u,  // signalling NaN
    0xff800001u,  // negative signalling NaN
    0x7fbfffffu,  // signalling NaN, all payload bits
};

// Other interesting doubles: signed zeros and infinities, denormals, the extremes, small
// values with ties, and values around the integer conversions' limits (2^31, 2^32, 2^63,
// 2^64 and their negatives) and the single format's (fcvt.s.d overflow, underflow and
// rounding ties).
constexpr uint64_t kFpDoubles[] = {
    0x0000000000000000ULL,  // +0
    0x8000000000000000ULL,  // -0
    0x7ff0000000000000ULL,  // +inf
    0xfff0000000000000ULL,  // -inf
    0x0000000000000001ULL,  // smallest denormal
    0x000fffffffffffffULL,  // largest denormal
    0x8000000000000001ULL,  // negative denormal
    0x0008000000000000ULL,  // denormal
    0x0010000000000000ULL,  // DBL_MIN
    0x8010000000000000ULL,  // -DBL_MIN
    0x7fefffffffffffffULL,  // DBL_MAX
    0xffefffffffffffffULL,  // -DBL_MAX
    std::bit_cast<uint64_t>(1.0),
    std::bit_cast<uint64_t>(-1.0),
    std::bit_cast<uint64_t>(-1.5),
    std::bit_cast<uint64_t>(0.5),
    std::bit_cast<uint64_t>(-0.5),
    std::bit_cast<uint64_t>(1.5),
    std::bit_cast<uint64_t>(2.5),
    std::bit_cast<uint64_t>(-2.5),
    std::bit_cast<uint64_t>(3.0),
    std::bit_cast<uint64_t>(0.1),
    std::bit_cast<uint64_t>(-0.9),
    std::bit_cast<uint64_t>(2147483647.0),
    std::bit_cast<uint64_t>(2147483647.5),
    std::bit_cast<uint64_t>(2147483648.0),
    std::bit_cast<uint64_t>(2147483648.5),
    std::bit_cast<uint64_t>(-2147483648.0),
    std::bit_cast<uint64_t>(-2147483648.5),
    std::bit_cast<uint64_t>(-2147483649.0),
    std::bit_cast<uint64_t>(4294967295.0),
    std::bit_cast<uint64_t>(4294967295.5),
    std::bit_cast<uint64_t>(4294967296.0),
    0x43e0000000000000ULL,  // 2^63
    0x43dfffffffffffffULL,  // the largest double below 2^63
    0xc3e0000000000000ULL,  // -2^63
    0xc3e0000000000001ULL,  // just beyond -2^63
    0x43f0000000000000ULL,  // 2^64
    0x43efffffffffffffULL,  // the largest double below 2^64
    0x47efffffe0000000ULL,  // FLT_MAX
    0x47effffff0000000ULL,  // FLT_MAX + half an ulp (a tie that overflows to inf)
    0x47efffffe0000001ULL,  // just above FLT_MAX
    0x3810000000000000ULL,  // FLT_MIN
    0x36a0000000000000ULL,  // 2^-149, the smallest single denormal
    0x3690000000000000ULL,  // 2^-150 (a tie between 0 and the smallest denormal)
    0x3ff0000010000000ULL,  // 1 + 2^-24 (a tie for single rounding)
    0x3ff0000010000001ULL,  // just above it
    std::bit_cast<uint64_t>(1e39),
    std::bit_cast<uint64_t>(1e-40),
};

// The same for singles.
constexpr uint32_t kFpSingles[] = {
    0x00000000u,  // +0
    0x80000000u,  // -0
    0x7f800000u,  // +inf
    0xff800000u,  // -inf
    0x00000001u,  // smallest denormal
    0x007fffffu,  // largest denormal
    0x80000001u,  // negative denormal
    0x00800000u,  // FLT_MIN
    0x80800000u,  // -FLT_MIN
    0x7f7fffffu,  // FLT_MAX
    0xff7fffffu,  // -FLT_MAX
    std::bit_cast<uint32_t>(1.0f),
    std::bit_cast<uint32_t>(-1.0f),
    std::bit_cast<uint32_t>(-1.5f),
    std::bit_cast<uint32_t>(0.5f),
    std::bit_cast<uint32_t>(-0.5f),
    std::bit_cast<uint32_t>(1.5f),
    std::bit_cast<uint32_t>(2.5f),
    std::bit_cast<uint32_t>(-2.5f),
    std::bit_cast<uint32_t>(0.1f),
    std::bit_cast<uint32_t>(-0.9f),
    0x4f000000u,  // 2^31
    0x4effffffu,  // the largest single below 2^31
    0xcf000000u,  // -2^31
    0xcf000001u,  // just beyond -2^31
    0x4f800000u,  // 2^32
    0x4f7fffffu,  // the largest single below 2^32
    0x5f000000u,  // 2^63
    0x5effffffu,  // the largest single below 2^63
    0xdf000000u,  // -2^63
    0xdf000001u,  // just beyond -2^63
    0x5f800000u,  // 2^64
    0x5f7fffffu,  // the largest single below 2^64
    0x4b800000u,  // 2^24
    0x4b800001u,  // 2^24 + 2
};

// Upper halves of doubles (lui + slli 32 builds them; with addi +-1 their neighbours) and
// of singles (lui, with addiw +-1): 1, -1.5, 0.5, -0.5, 1.5, 2.5, +-inf, NaNs, +-0,
// 2^31, -2^31, 2^32, 2^63, -2^63, 2^64, the minimum normals, 2^128, 2^-149.
constexpr int32_t kFpDoubleHi20[] = {0x3ff00, 0xbff80, 0x3fe00, 0xbfe00, 0x3ff80, 0x40040,
                                     0x7ff00, 0xfff00, 0x7ff80, 0x7ff40, 0xfff80, 0x00000,
                                     0x80000, 0x41e00, 0xc1e00, 0x41f00, 0x43e00, 0xc3e00,
                                     0x43f00, 0x00100, 0x38100, 0x47f00, 0x36a00};
constexpr int32_t kFpSingleHi20[] = {0x3f800, 0xbfc00, 0x3f000, 0xbf000, 0x3fc00, 0x40200, 0x7f800,
                                     0xff800, 0x7fc00, 0x7fa00, 0xffc00, 0x00000, 0x80000, 0x4f000,
                                     0xcf000, 0x4f800, 0x5f000, 0xdf000, 0x5f800, 0x00800, 0x4b800};

// Upper halves of ties for conversions to integers: +-0.5, +-1.5, +-2.5, +-3.5, +-4.5,
// -0.75 (doubles, then singles).
constexpr int32_t kTieDoubleHi20[] = {0x3fe00, 0xbfe00, 0x3ff80, 0xbff80, 0x40040, 0xc0040,
                                      0x400c0, 0xc00c0, 0x40120, 0xc0120, 0xbfe80};
constexpr int32_t kTieSingleHi20[] = {0x3f000, 0xbf000, 0x3fc00, 0xbfc00, 0x40200, 0xc0200,
                                      0x40600, 0xc0600, 0x40900, 0xc0900, 0xbf400};

// ======================================================================================
// The random program generator.
// ======================================================================================
class Generator {
 public:
  // Which programs get floating point is decided by a generator of its own, so an
  // integer program (FS Off, no FP besides the illegal-instruction probes) is exactly the
  // program its seed gave before floating point was added.
  explicit Generator(uint64_t seed) : rng_(seed) {
    std::mt19937_64 mode(seed * 0xd1342543de82ef95ULL + 0x5851f42d4c957f2dULL);
    fp_ = mode() % 100 >= kIntegerPercent;
  }

  static constexpr unsigned kIntegerPercent = 25;

  Program generate() {
    Program p;
    Asm& a = p.a;
    a_ = &a;

    // Registers: edge values, random ones, small ones, pointers into the data.
    for (unsigned r : kWritable) {
      const uint64_t k = rnd(10);
      p.x[r] = k < 4   ? edge()
               : k < 7 ? rng_()
               : k < 9 ? static_cast<uint64_t>(range(-64, 64))
                       : kData + rnd(kDataSize);
    }
    const uint64_t data_ptr =
        chance(70) ? kData + 0x1000 * range(1, 3) : kData + 0x1000 + (rnd(0x2000) & ~7ULL);
    p.x[kRegData] = data_ptr;
    p.x[kRegEnd] = kRamEnd;
    const int iterations = range(20, 200);
    p.x[kRegOuter] = static_cast<uint64_t>(iterations);
    p.hot_threshold = chance(25) ? 16 : 1;

    // Data: random bytes with edge values at random aligned slots.
    auto fill = [&](std::vector<uint8_t>& v, size_t n) {
      v.resize(n);
      for (auto& byte : v) byte = static_cast<uint8_t>(rng_());
      for (size_t i = 0; i < n / 8; i++) {
        if (chance(30)) {
          const uint64_t e = edge();
          std::memcpy(&v[i * 8], &e, 8);
        }
      }
    };
    fill(p.data, kDataSize);
    fill(p.last_page, 0x1000);
    if (fp_) fp_setup(p);

    // Subroutines: each has its own link register, which its body never writes.
    const int nfuncs = static_cast<int>(rnd(4));
    for (int f = 0; f < nfuncs; f++) {
      funcs_.push_back({a.new_label(fmt::format("func{}", f)), chance(50) ? 1u : writable()});
    }

    // Entry: jump to the loop, placed so that it often straddles a page boundary (and then
    // sometimes has a 4-byte instruction across it).
    a.org(kBase);
    a.here("entry");
    const int loop_top = a.new_label("loop_top");
    a.w(enc::jal(0, 0), Fix::kJ, loop_top);
    if (chance(30)) {
      a.org(kBase + 0x1000 - 2 * static_cast<uint64_t>(range(1, 40)));
    } else {
      a.org(kBase + 0x100 + (rnd(0x1f00) & ~1ULL));
    }
    a.bind(loop_top);
    if (fp_) {
      // Some programs start every iteration with FS Initial or Clean (the first FP write
      // must make it Dirty again) or with fflags cleared (wrong flags show).
      if (p.fs != 0 && chance(30)) fs_set(chance(50) ? 1 : 2);
      if (chance(40)) flags_read_clear();
      // Fresh FP values for every iteration (NaNs and infinities spread).
      fp_pool_ = a.new_label("fp_pool");
      const int n = range(2, 6);
      for (int i = 0; i < n; i++) fp_refresh();
    }

    const int items = range(5, 60);
    for (int n = 0; n < items; n++) {
      item();
      tick_pending();
    }
    flush_pending();

    // Loop tail: count down the outer counter.
    if (chance(50)) {
      a.w(enc::addi(kRegOuter, kRegOuter, -1));
    } else {
      a.c(enc::c_addi(kRegOuter, -1));
    }
    const int64_t back = static_cast<int64_t>(a.labels[static_cast<size_t>(loop_top)] - a.pc);
    if (back >= -4000 && chance(70)) {
      if (chance(70)) {
        a.w(enc::bne(kRegOuter, 0, 0), Fix::kB, loop_top);
      } else {
        a.w(enc::b(0, kRegOuter, 0, 4), Fix::kB, loop_top);  // blt zero, t5 (bgtz)
      }
    } else {
      a.w(enc::beq(kRegOuter, 0, 8));
      a.w(enc::jal(0, 0), Fix::kJ, loop_top);
    }

    // The end: spin forever (or wait for an interrupt that never comes).
    const int end = a.here("end");
    p.end_pc = a.pc;
    switch (rnd(3)) {
      case 0:
        a.w(enc::jal(0, 0), Fix::kJ, end);
        break;
      case 1:
        a.c(enc::c_j(0), Fix::kCJ, end);
        break;
      default:
        a.w(enc::kWfi);
        a.w(enc::jal(0, 0), Fix::kJ, end);
        break;
    }

    // The subroutines.
    for (const Func& f : funcs_) {
      if (chance(50)) a.org((a.pc + 0x400) & ~1ULL);  // sometimes in another page
      a.bind(f.label);
      no_write_ = f.link;
      const int n = range(1, 10);
      for (int k = 0; k < n; k++) simple();
      no_write_ = 0;
      if (chance(50)) {
        a.w(enc::jalr(0, f.link, 0));
      } else {
        a.c(enc::c_jr(f.link));
      }
    }

    // The constant pool fp_refresh loads from: doubles, then pairs of singles.
    if (fp_) {
      a.org((a.pc + 7) & ~7ULL);
      a.bind(fp_pool_);
      for (unsigned k = 0; k < kPoolSlots; k++) {
        uint64_t v;
        if (k < kPoolSlots / 2) {
          v = fp_double();
        } else {
          const uint64_t lo = fp_single();
          v = lo | uint64_t{fp_single()} << 32;
        }
        a.w(static_cast<uint32_t>(v));
        a.w(static_cast<uint32_t>(v >> 32));
      }
    }

    emit_trap_handler(a);
    return p;
  }

 private:
  struct Func {
    int label;
    unsigned link;
  };

  // ---- random helpers ----
  uint64_t rnd(uint64_t n) { return rng_() % n; }
  int range(int lo, int hi) {
    return lo + static_cast<int>(rnd(static_cast<uint64_t>(hi - lo + 1)));
  }
  bool chance(int percent) { return rnd(100) < static_cast<uint64_t>(percent); }
  template <typename T, size_t N>
  const T& pick(const T (&arr)[N]) {
    return arr[rnd(N)];
  }
  template <typename T>
  T pick_of(std::initializer_list<T> l) {
    return *(l.begin() + rnd(l.size()));
  }
  uint64_t edge() { return pick(kEdgeValues); }

  unsigned writable() {
    for (;;) {
      const unsigned r = pick(kWritable);
      if (r != no_write_) return r;
    }
  }
  // Destination: a writable register, sometimes x0 (the result is discarded).
  unsigned dst() { return chance(5) ? 0 : writable(); }
  // Source: mostly writable registers, some x0 and reserved ones.
  unsigned src() {
    const uint64_t k = rnd(100);
    if (k < 6) return 0;
    if (k < 12) return pick_of<unsigned>({kRegData, kRegEnd, kRegOuter, kRegInner, kRegTrapHash});
    return pick(kWritable);
  }
  // Compressed 3-bit register fields: x8..x15 (only x10..x15 are writable).
  unsigned cdst() {
    for (;;) {
      const unsigned r = static_cast<unsigned>(range(10, 15));
      if (r != no_write_) return r;
    }
  }
  unsigned csrc() { return static_cast<unsigned>(range(8, 15)); }

  int32_t imm12() {
    switch (rnd(8)) {
      case 0:
      case 1:
        return range(-16, 16);
      case 2:
        return pick_of<int32_t>({-2048, 2047, -1, 0, 1, 0x555, -0x556});
      default:
        return range(-2048, 2047);
    }
  }

  // ---- pending forward labels: bound after a number of further top-level items ----
  // (+1: the item that jumps ticks the count too.)
  void forward_label(int label, int after_items) { pending_.push_back({label, after_items + 1}); }
  void tick_pending() {
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (--it->second <= 0) {
        a_->bind(it->first);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }
  void flush_pending() {
    for (auto& [label, n] : pending_) a_->bind(label);
    pending_.clear();
  }

  // ---- straight-line instructions (also used in inner loops and subroutines) ----
  // (Every random choice is its own statement, so a seed gives the same program whatever
  // order the compiler evaluates function arguments in.)
  // `plain`: no CSR reads and no one-source Zbb ops (inner loops made only of the most
  // common instructions, which a JIT is likely to compile whole into a native loop).
  // What the JIT's sign-extension facts (Compiler::Fact) act on: sext.w, negw, srliw,
  // andi/ori/xori, and/or/xor of sign-extended and small values, and the CRC-step shape
  // (andi 1, negw, and with a register the block only reads, xor, sext.w), whose entry
  // assumption fails when that register stops being a sign-extended value.
  void width_chain() {
    Asm& a = *a_;
    const unsigned rs = src();
    const unsigned rd = dst();
    constexpr uint32_t kOpW = 0x3b, kOpImmW = 0x1b, kOp = 0x33;
    switch (rnd(8)) {
      case 7: {  // an immediate op's fact carried through and/or/xor into sext.w or negw
        const unsigned t = dst();
        a.w(enc::i(chance(50) ? range(0, 7) : range(-8, -1), rs, pick_of<uint32_t>({4, 6, 7}), t,
                   0x13));
        a.w(enc::r(0, src(), t, pick_of<uint32_t>({4, 6, 7}), t, kOp));
        if (chance(50)) {
          a.w(enc::i(0, t, 0, rd, kOpImmW));  // sext.w
        } else {
          a.w(enc::r(0x20, t, 0, 0, rd, kOpW));  // negw
        }
        break;
      }
      case 0:  // sext.w
        a.w(enc::i(0, rs, 0, rd, kOpImmW));
        break;
      case 1:  // negw
        a.w(enc::r(0x20, rs, 0, 0, rd, kOpW));
        break;
      case 2:  // srliw by 1..31
        a.w(enc::i(range(1, 31), rs, 5, rd, kOpImmW));
        break;
      case 3:  // andi / ori / xori with a small or a negative immediate
        a.w(enc::i(chance(50) ? range(0, 7) : range(-8, -1), rs, pick_of<uint32_t>({4, 6, 7}), rd,
                   0x13));
        break;
      case 4: {  // and / or / xor, then sext.w
        const unsigned t = dst();
        a.w(enc::r(0, src(), rs, pick_of<uint32_t>({4, 6, 7}), t, kOp));
        a.w(enc::i(0, t, 0, rd, kOpImmW));
        break;
      }
      default: {  // the CRC step
        const unsigned t = dst();
        a.w(enc::andi(t, rs, 1));
        a.w(enc::r(0x20, t, 0, 0, t, kOpW));  // negw t, t
        a.w(enc::r(0, src(), t, 7, t, kOp));  // and t, t, rs2
        a.w(enc::r(0, src(), t, 4, t, kOp));  // xor t, t, rs3
        a.w(enc::i(0, t, 0, rd, kOpImmW));    // sext.w rd, t
        break;
      }
    }
  }

  // A register's sign-extension fact that holds on one path into an instruction only: the
  // JIT must forget it where the paths meet. Either a forward branch over the instruction
  // that made it (sext.w after the join must sign-extend when the branch was taken), or a
  // loop back into the middle of the block whose body breaks it (sext.w at the loop's top
  // must sign-extend from the second pass on).
  void facts_across_jumps() {
    Asm& a = *a_;
    constexpr uint32_t kOpImmW = 0x1b;
    const unsigned r = writable();
    const unsigned rd = dst();
    if (chance(50)) {
      a.w(enc::add(r, src(), src()));  // r: anything
      const int l = a.new_label();
      a.w(enc::b(0, src(), src(), pick_of<uint32_t>({0, 1, 4, 5, 6, 7})), Fix::kB, l);
      a.w(enc::i(range(-8, 8), src(), 0, r, kOpImmW));  // addiw r: sign-extended
      a.bind(l);
      if (chance(50)) {
        a.w(enc::i(0, r, 0, rd, kOpImmW));  // sext.w rd, r
      } else {
        a.w(enc::r(0x20, r, 0, 0, rd, 0x3b));  // negw rd, r
      }
    } else {
      a.w(enc::i(range(-8, 8), src(), 0, r, kOpImmW));  // addiw r: sign-extended
      a.w(enc::addi(kRegInner, 0, range(2, 5)));
      const int top = a.here();
      a.w(enc::i(0, r, 0, rd, kOpImmW));   // sext.w rd, r
      a.w(enc::rori(r, r, range(1, 40)));  // r: no longer sign-extended (mostly)
      a.w(enc::addi(kRegInner, kRegInner, -1));
      a.w(enc::bne(kRegInner, 0, 0), Fix::kB, top);
    }
  }

  void simple(bool plain = false) {
    Asm& a = *a_;
    if (fp_ && chance(45)) {
      fp_simple(plain);
      return;
    }
    if (chance(6)) {
      width_chain();
      return;
    }
    uint64_t k = rnd(plain ? 97 : 100);
    if (plain && k >= 46 && k < 51) k = 0;
    if (k < 26) {  // register-register
      const ROp& op = pick(kROps);
      const unsigned rs1 = src();
      const unsigned rs2 = chance(15) ? rs1 : src();
      const unsigned rd = dst();
      a.w(enc::r(op.f7, rs2, rs1, op.f3, rd, op.op));
    } else if (k < 37) {  // register-immediate
      const IOp& op = pick(kIOps);
      const int32_t imm = imm12();
      const unsigned rs1 = src();
      const unsigned rd = dst();
      a.w(enc::i(imm, rs1, op.f3, rd, op.op));
    } else if (k < 46) {  // shift/bit by immediate
      const ShOp& op = pick(kShOps);
      const int sh =
          chance(30) ? pick_of<int>({0, 1, 31, 32, 63}) & op.max_shamt : range(0, op.max_shamt);
      const unsigned rs1 = src();
      const unsigned rd = dst();
      a.w(enc::i(op.f6 << 6 | sh, rs1, op.f3, rd, op.op));
    } else if (k < 51) {  // one-source Zbb
      const UnOp& op = pick(kUnOps);
      const unsigned rs1 = src();
      const unsigned rd = dst();
      a.w(enc::i(op.imm12, rs1, op.f3, rd, op.op));
    } else if (k < 66) {
      compressed_alu();
    } else if (k < 76) {
      load();
    } else if (k < 83) {
      store();
    } else if (k < 88) {
      compressed_mem();
    } else if (k < 94) {
      load_constant();
    } else if (k < 97) {
      const unsigned rd = dst();
      if (chance(50)) {
        const int32_t imm = chance(30) ? pick_of<int32_t>({0x80000, 0x7ffff, 0xfffff, 0, 1})
                                       : static_cast<int32_t>(rnd(1 << 20));
        a.w(enc::lui(rd, imm));
      } else {
        a.w(enc::auipc(rd, range(-8, 8)));
      }
    } else {  // counter and CSR reads: the JIT must count exactly
      const unsigned csrno =
          k < 99 ? pick_of<unsigned>({0xC00, 0xC02, 0xB00, 0xB02})
                 : pick_of<unsigned>({0xC01, 0xF14, 0x340, 0x341, 0x342, 0x343, 0x300});
      a.w(enc::csrr(dst(), csrno));
    }
  }

  void compressed_alu() {
    Asm& a = *a_;
    switch (rnd(15)) {
      case 0: {
        const unsigned rd = writable();
        const int imm = range(-32, 31);
        a.c(enc::c_addi(rd, imm == 0 ? 1 : imm));  // imm 0 would be a hint
        break;
      }
      case 1: {
        const unsigned rd = writable();
        a.c(enc::c_addiw(rd, range(-32, 31)));
        break;
      }
      case 2: {
        const unsigned rd = writable();
        a.c(enc::c_li(rd, range(-32, 31)));
        break;
      }
      case 3: {
        unsigned rd = writable();
        if (rd == 2) rd = cdst();  // c.lui sp is c.addi16sp
        const int imm = range(-32, 31);
        a.c(enc::c_lui(rd, imm == 0 ? -32 : imm));  // nzimm
        break;
      }
      case 4: {
        const unsigned rd = writable();
        a.c(enc::c_slli(rd, static_cast<unsigned>(range(1, 63))));
        break;
      }
      case 5: {
        const unsigned rd = cdst();
        a.c(enc::c_srli(rd, static_cast<unsigned>(range(1, 63))));
        break;
      }
      case 6: {
        const unsigned rd = cdst();
        a.c(enc::c_srai(rd, static_cast<unsigned>(range(1, 63))));
        break;
      }
      case 7: {
        const unsigned rd = cdst();
        a.c(enc::c_andi(rd, range(-32, 31)));
        break;
      }
      case 8: {
        static constexpr uint16_t (*kCa[])(unsigned, unsigned) = {
            enc::c_sub, enc::c_xor, enc::c_or, enc::c_and, enc::c_subw, enc::c_addw};
        const auto op = pick(kCa);
        const unsigned rd = cdst();
        const unsigned rs2 = csrc();
        a.c(op(rd, rs2));
        break;
      }
      case 9:
      case 10:
      case 11:
      case 12: {  // c.mv / c.add
        const unsigned rd = writable();
        const unsigned rs2 = src();
        const bool mv = chance(50);
        if (rs2 == 0) {
          a.c(enc::c_nop());  // rs2 = x0 would be c.jr / c.jalr / c.ebreak
        } else {
          a.c(mv ? enc::c_mv(rd, rs2) : enc::c_add(rd, rs2));
        }
        break;
      }
      case 13: {
        const int imm = range(-32, 31) * 16;
        if (no_write_ == 2) {
          a.c(enc::c_nop());
        } else {
          a.c(enc::c_addi16sp(imm == 0 ? 16 : imm));
        }
        break;
      }
      default: {
        const unsigned rd = cdst();
        a.c(enc::c_addi4spn(rd, static_cast<uint32_t>(range(1, 255)) * 4));
        break;
      }
    }
  }

  // An offset from s0 for a `size`-byte access: straddling a page boundary, aligned, or any.
  int32_t data_offset(unsigned size) {
    switch (rnd(10)) {
      case 0:
      case 1:
      case 2:
        return range(-8, 8);
      case 3:
      case 4:
      case 5:
      case 6:
        return range(-2048, 2047) & ~static_cast<int32_t>(size - 1);
      default:
        return range(-2048, 2047);
    }
  }

  // Base and offset for a store: s0 (the data pages) or s1 (the end of RAM: negative offsets
  // hit the last page, small ones straddle the end and fault, positive ones fault).
  std::pair<unsigned, int32_t> store_address(unsigned size) {
    if (chance(80)) return {kRegData, data_offset(size)};
    return {kRegEnd, chance(50) ? range(-16, 8) : range(-2048, 2047)};
  }

  void load() {
    const unsigned f3 = static_cast<unsigned>(rnd(7));
    const unsigned size = 1u << (f3 & 3);
    unsigned base;
    int32_t off;
    if (chance(10)) {  // anywhere (loads have no side effect): mostly access faults
      base = src();
      off = imm12();
    } else {
      std::tie(base, off) = store_address(size);
    }
    const unsigned rd = dst();
    a_->w(enc::i(off, base, f3, rd, 0x03));
  }

  void store() {
    const unsigned f3 = static_cast<unsigned>(rnd(4));
    const auto [base, off] = store_address(1u << f3);
    const unsigned rs2 = src();
    a_->w(enc::s(off, rs2, base, f3, 0x23));
  }

  void compressed_mem() {
    Asm& a = *a_;
    const unsigned base = chance(85) ? kRegData : kRegEnd;
    const uint64_t kind = rnd(7);
    const unsigned reg = kind <= 1 ? cdst() : kind <= 5 ? csrc() : writable();
    const unsigned load_base = chance(10) ? csrc() : base;  // loads may use any x8..x15
    const uint32_t n32 = static_cast<uint32_t>(range(0, 31));
    const uint32_t n64 = static_cast<uint32_t>(range(0, 63));
    switch (kind) {
      case 0:
        a.c(enc::c_lw(reg, load_base, n32 * 4));
        break;
      case 1:
        a.c(enc::c_ld(reg, load_base, n32 * 8));
        break;
      case 2:
      case 3:
        a.c(enc::c_sw(reg, base, n32 * 4));
        break;
      case 4:
      case 5:
        a.c(enc::c_sd(reg, base, n32 * 8));
        break;
      default:  // from sp (a random value: mostly faults)
        a.c(chance(50) ? enc::c_lwsp(reg, n64 * 4) : enc::c_ldsp(reg, n64 * 8));
        break;
    }
  }

  // li rd, <edge value> in one to three instructions.
  void load_constant() {
    Asm& a = *a_;
    const unsigned rd = writable();
    switch (rnd(10)) {
      case 0:
        a.w(enc::addi(rd, 0, pick_of<int32_t>({0, -1, 1, 2047, -2048})));
        break;
      case 1:  // INT64_MIN
        a.w(enc::addi(rd, 0, 1));
        a.w(enc::i(63, rd, 1, rd, 0x13));  // slli
        break;
      case 2:  // INT64_MAX
        a.w(enc::addi(rd, 0, -1));
        a.w(enc::i(1, rd, 5, rd, 0x13));  // srli
        break;
      case 3:  // 1 << 31
        a.w(enc::addi(rd, 0, 1));
        a.w(enc::i(31, rd, 1, rd, 0x13));  // slli
        break;
      case 4:  // 0x7fffffff
        a.w(enc::lui(rd, 0x80000));
        a.w(enc::i(-1, rd, 0, rd, 0x1b));  // addiw
        break;
      case 5:  // INT32_MIN, sign-extended
        a.w(enc::lui(rd, 0x80000));
        break;
      case 6:  // 0xffffffff
        a.w(enc::addi(rd, 0, -1));
        a.w(enc::i(32, rd, 5, rd, 0x13));  // srli
        break;
      case 7:
        a.c(enc::c_li(rd, pick_of<int32_t>({0, -1, 1, 31, -32})));
        break;
      default: {  // a random 32-bit value: lui + addiw
        const int32_t v = static_cast<int32_t>(rng_());
        const int32_t lo = static_cast<int32_t>(static_cast<uint32_t>(v) << 20) >> 20;
        const int32_t hi = static_cast<int32_t>((static_cast<int64_t>(v) - lo) >> 12);
        a.w(enc::lui(rd, hi));
        a.w(enc::i(lo, rd, 0, rd, 0x1b));
        break;
      }
    }
  }

  // ---- top-level items of the loop body ----
  void item() {
    Asm& a = *a_;
    if (fp_ && chance(8)) {
      fp_csr();
      return;
    }
    const uint64_t k = rnd(100);
    if (k < 3) {
      facts_across_jumps();
    } else if (k < 70) {
      simple();
    } else if (k < 77) {  // forward conditional branch over a few items
      const int l = a.new_label();
      if (chance(25)) {  // c.beqz/c.bnez reach only 256 bytes: skip one or two items
        const unsigned rs = csrc();
        a.c(chance(50) ? enc::c_beqz(rs, 0) : enc::c_bnez(rs, 0), Fix::kCB, l);
        forward_label(l, fp_ ? 1 : range(1, 2));  // FP items are longer: one fits in 254 bytes
      } else {
        const uint32_t cond = pick_of<uint32_t>({0, 1, 4, 5, 6, 7});
        const unsigned rs1 = src();
        const unsigned rs2 = chance(10) ? rs1 : src();
        a.w(enc::b(0, rs2, rs1, cond), Fix::kB, l);
        forward_label(l, range(1, 4));
      }
    } else if (k < 79) {  // forward jal / c.j
      const int l = a.new_label();
      if (chance(40)) {
        a.c(enc::c_j(0), Fix::kCJ, l);
      } else {
        a.w(enc::jal(dst(), 0), Fix::kJ, l);
      }
      forward_label(l, range(1, 3));
    } else if (k < 81) {  // forward indirect jump: auipc + jalr (or auipc + addi + c.jr)
      const int l = a.new_label();
      const unsigned tmp = writable();
      const uint64_t anchor = a.pc;
      const int32_t addend = chance(30) ? 1 : 0;  // jalr clears bit 0 of the target
      a.w(enc::auipc(tmp, 0), Fix::kHi20, l, anchor, addend);
      if (chance(70)) {
        a.w(enc::jalr(dst(), tmp, 0), Fix::kLo12, l, anchor, addend);
      } else {
        a.w(enc::addi(tmp, tmp, 0), Fix::kLo12, l, anchor, addend);
        a.c(enc::c_jr(tmp));
      }
      forward_label(l, range(1, 3));
    } else if (k < 85 && !funcs_.empty()) {  // call a subroutine
      const Func& f = funcs_[rnd(funcs_.size())];
      const uint64_t anchor = a.pc;
      const uint64_t how = rnd(3);
      const unsigned tmp = writable();
      if (how == 0) {
        a.w(enc::jal(f.link, 0), Fix::kJ, f.label);
      } else if (how == 1) {
        a.w(enc::auipc(tmp, 0), Fix::kHi20, f.label, anchor, 0);
        a.w(enc::jalr(f.link, tmp, 0), Fix::kLo12, f.label, anchor, 0);
      } else {
        a.w(enc::auipc(tmp, 0), Fix::kHi20, f.label, anchor, 0);
        a.w(enc::addi(tmp, tmp, 0), Fix::kLo12, f.label, anchor, 0);
        if (f.link == 1) {
          a.c(enc::c_jalr(tmp));
        } else {
          a.w(enc::jalr(f.link, tmp, 0));
        }
      }
    } else if (k < 89 && chance(30)) {
      pointer_walk();
    } else if (k < 89) {  // a bounded inner loop on t4
      const int count = range(1, chance(20) ? 100 : 12);
      const bool plain = chance(50);
      a.w(enc::addi(kRegInner, 0, count));
      const int top = a.here();
      const int n = range(1, 8);
      for (int i = 0; i < n; i++) simple(plain);
      if (chance(50)) {
        a.w(enc::addi(kRegInner, kRegInner, -1));
      } else {
        a.c(enc::c_addi(kRegInner, -1));
      }
      const uint32_t cond =
          pick_of<uint32_t>({1, 4, 6});  // bne t4, zero / blt zero, t4 / bltu zero, t4
      if (cond == 1) {
        a.w(enc::bne(kRegInner, 0, 0), Fix::kB, top);
      } else {
        a.w(enc::b(0, kRegInner, 0, cond), Fix::kB, top);
      }
    } else if (k < 93) {
      csr_access();
    } else if (k < 97) {
      system();
    } else {
      atomic();
    }
  }

  // A bounded inner loop on t4 that walks a pointer through memory with loads and stores
  // off it (what a compiled loop keeps the last page of, per access): strides that cross
  // page boundaries, misaligned accesses, and walks off the end of RAM that fault midway.
  void pointer_walk() {
    Asm& a = *a_;
    unsigned p;
    do {
      p = writable();
    } while (p == kRegInner);
    auto other = [&] {
      for (;;) {
        const unsigned r = dst();
        if (r != p) return r;
      }
    };
    const int count = range(1, 100);
    int stride = pick_of<int>({1, 2, 4, 8, -1, -4, -8, 3, 6});
    if (chance(20)) stride = range(-300, 300);
    // Within the data region (s0 is 4 KiB-aligned or not, 4 KiB-12 KiB into it) ...
    while (count * std::abs(stride) > 2000) stride /= 2;
    if (chance(15)) {  // ... or from just below the end of RAM upwards: faults on the way
      a.w(enc::addi(p, kRegEnd, -range(1, 64)));
      stride = std::abs(stride) + 1;
    } else {
      a.w(enc::addi(p, kRegData, range(-2048, 2047)));
    }
    a.w(enc::addi(kRegInner, 0, count));
    const int top = a.here();
    const int n = range(1, 4);
    for (int i = 0; i < n; i++) {
      const uint64_t what = rnd(10);
      const int32_t off = chance(70) ? 0 : range(-8, 8);
      if (what < 4) {
        const unsigned f3 = static_cast<unsigned>(rnd(7));  // lb lh lw ld lbu lhu lwu
        a.w(enc::i(off, p, f3, other(), 0x03));
      } else if (what < 7) {
        a.w(enc::s(off, src(), p, static_cast<unsigned>(rnd(4)), 0x23));
      } else {
        const ROp& op = pick(kROps);
        a.w(enc::r(op.f7, src(), src(), op.f3, other(), op.op));
      }
    }
    a.w(enc::addi(p, p, stride));
    a.w(enc::addi(kRegInner, kRegInner, -1));
    a.w(enc::bne(kRegInner, 0, 0), Fix::kB, top);
  }

  void csr_access() {
    Asm& a = *a_;
    const uint64_t kind = rnd(8);
    const unsigned rd = dst();
    const unsigned rs1 = src();
    const unsigned zimm = static_cast<unsigned>(range(0, 31));
    switch (kind) {
      case 0:
      case 1: {  // mscratch through every CSR instruction form
        const uint32_t f3 = pick_of<uint32_t>({1, 2, 3, 5, 6, 7});
        a.w(enc::csr(f3, rd, 0x340, f3 >= 5 ? zimm : rs1));
        break;
      }
      case 2:  // trap CSRs (the handler overwrites them anyway)
        a.w(enc::csr(1, rd, pick_of<unsigned>({0x341, 0x342, 0x343}), rs1));
        break;
      case 3: {  // counter writes: what the next instruction reads must match
        const unsigned counter = chance(50) ? 0xB02 : 0xB00;
        a.w(chance(50) ? enc::csrw(counter, rs1) : enc::csr(5, rd, counter, zimm));
        break;
      }
      case 4:  // illegal: a read-only counter written, a CSR that does not exist
        a.w(chance(50) ? enc::csr(1, rd, 0xC00, rs1) : enc::csrr(rd, 0xB01));
        break;
      default:
        a.w(enc::csrr(rd, pick_of<unsigned>({0xC00, 0xC02, 0xB00, 0xB02})));
        break;
    }
  }

  void system() {
    Asm& a = *a_;
    switch (rnd(10)) {
      case 0: {
        const unsigned pred = static_cast<unsigned>(rnd(16));
        a.w(enc::fence(pred, static_cast<unsigned>(rnd(16))));
        break;
      }
      case 1:
      case 2:
        a.w(enc::kFenceI);
        break;
      case 3:
      case 4:
        a.w(enc::kEcall);
        break;
      case 5:
        a.w(enc::kEbreak);
        break;
      case 6:
        a.c(enc::c_ebreak());
        break;
      case 7:
        a.c(0x0000);
        break;  // illegal (16-bit)
      case 8:
        a.w(0x0000000b);
        break;  // custom-0: illegal (32-bit)
      default:  // FP while mstatus.FS is off: illegal
        if (chance(50)) {
          a.w(0x02c5f553);  // fadd.d fa0, fa1, fa2
        } else {
          a.c(0x2588);  // c.fld fa0, 8(a1)
        }
        break;
    }
  }

  void atomic() {
    Asm& a = *a_;
    const bool dword = chance(50);
    unsigned base = kRegData;
    if (chance(25)) {  // somewhere near s0 (often misaligned), or the end of RAM (faults)
      if (chance(50)) {
        base = writable();
        a.w(enc::addi(base, kRegData, range(-64, 64)));
      } else {
        base = kRegEnd;
      }
    }
    const uint64_t kind = rnd(4);
    const unsigned rd = dst();
    const unsigned rs2 = src();
    if (kind == 0) {  // lr ... sc (the instructions between may clobber the base: then the
                      // sc fails or faults, which must agree too)
      a.w(enc::amo(0x02, dword, rd, base, 0));
      const int n = range(0, 3);
      for (int i = 0; i < n; i++) simple();
      a.w(enc::amo(0x03, dword, dst(), base, rs2));
    } else if (kind == 1) {  // a lone sc
      a.w(enc::amo(0x03, dword, rd, base, rs2));
    } else {
      const AmoOp& op = pick(kAmoOps);
      const bool aq = chance(25);
      const bool rl = chance(25);
      a.w(enc::amo(op.f5, dword, rd, base, rs2, aq, rl));
    }
  }

  // ---- floating point ----

  // Initial FP state of a floating-point program: FS (mostly on), frm (mostly a valid
  // mode), fflags, the f registers, FP bit patterns in some integer registers and in the
  // data.
  void fp_setup(Program& p) {
    p.fp = true;
    const uint64_t k = rnd(100);
    p.fs = k < 10 ? 0 : k < 50 ? 1 : k < 75 ? 2 : 3;  // Off: FP traps until the body sets FS
    p.frm = chance(88) ? static_cast<uint32_t>(rnd(5)) : static_cast<uint32_t>(range(5, 7));
    p.fflags = static_cast<uint32_t>(rnd(32));
    for (unsigned r = 0; r < 32; r++) p.f[r] = fp_reg_value(double_home(r));
    for (unsigned r : kWritable) {
      if (chance(20)) p.x[r] = fp_reg_value(chance(50));
    }
    auto sprinkle = [&](std::vector<uint8_t>& v) {
      for (size_t i = 0; i + 8 <= v.size(); i += 8) {
        if (!chance(30)) continue;
        if (chance(50)) {
          const uint64_t d = fp_double();
          std::memcpy(&v[i], &d, 8);
        } else {
          const uint32_t lo = fp_single();
          const uint32_t hi = fp_single();
          std::memcpy(&v[i], &lo, 4);
          std::memcpy(&v[i + 4], &hi, 4);
        }
      }
    };
    sprinkle(p.data);
    sprinkle(p.last_page);
  }

  // Values are NaNs one time in eight: more, and NaNs spreading through the registers
  // would leave little else (every NaN result is canonical: the JIT may well hand those
  // to the interpreter, and its own arithmetic would go untested).
  uint64_t fp_double() {
    const uint64_t sign = chance(50) ? 1ULL << 63 : 0;
    switch (rnd(32)) {
      case 0:  // a quiet NaN with a random payload
        return sign | 0x7ff8000000000000ULL | (rng_() & 0x0007ffffffffffffULL);
      case 1: {  // a signalling NaN with a random (non-zero) payload
        const uint64_t payload = rng_() & 0x0007ffffffffffffULL;
        return sign | 0x7ff0000000000000ULL | (payload == 0 ? 1 : payload);
      }
      case 2:
        return pick(kFpDoubleNaNs);
      case 3:
      case 4:
      case 5:
      case 6:  // a denormal
        return sign | (rng_() & 0x000fffffffffffffULL);
      case 7:
      case 8:
      case 9:
      case 10:
      case 11:
      case 12:
      case 13:
      case 14:
      case 15:
      case 16:  // moderate magnitude: sums and products round
        return sign | static_cast<uint64_t>(1023 + range(-80, 80)) << 52 |
               (rng_() & 0x000fffffffffffffULL);
      case 17:
      case 18:
      case 19:
      case 20:  // a small multiple of 1/4 (ties in conversions)
        return std::bit_cast<uint64_t>(static_cast<double>(range(-4000, 4000)) / 4);
      case 21:  // any bits
        return rng_();
      default:
        return pick(kFpDoubles);
    }
  }

  uint32_t fp_single() {
    const uint32_t sign = chance(50) ? 0x80000000u : 0;
    switch (rnd(32)) {
      case 0:
        return sign | 0x7fc00000u | static_cast<uint32_t>(rnd(0x400000));
      case 1: {
        const uint32_t payload = static_cast<uint32_t>(rnd(0x400000));
        return sign | 0x7f800000u | (payload == 0 ? 1 : payload);
      }
      case 2:
        return pick(kFpSingleNaNs);
      case 3:
      case 4:
      case 5:
      case 6:
        return sign | static_cast<uint32_t>(rnd(0x800000));
      case 7:
      case 8:
      case 9:
      case 10:
      case 11:
      case 12:
      case 13:
      case 14:
      case 15:
      case 16:
        return sign | static_cast<uint32_t>(127 + range(-40, 40)) << 23 |
               static_cast<uint32_t>(rnd(0x800000));
      case 17:
      case 18:
      case 19:
      case 20:
        return std::bit_cast<uint32_t>(static_cast<float>(range(-4000, 4000)) / 4);
      case 21:
        return static_cast<uint32_t>(rng_());
      default:
        return pick(kFpSingles);
    }
  }

  // The f registers with bit 2 clear are mostly used as doubles, the others mostly as
  // singles: a double read as a single is not NaN-boxed (the canonical NaN) and a boxed
  // single read as a double is a NaN. Some of that is wanted; registers used both ways
  // at random would make nearly every result a NaN.
  static bool double_home(unsigned r) { return (r & 4) == 0; }
  unsigned freg(bool dbl) {
    const unsigned r = static_cast<unsigned>(rnd(32));
    if (chance(6)) return r;
    return dbl ? r & ~4u : r | 4u;
  }
  unsigned cfreg(bool dbl) {  // f8..f15
    const unsigned r = static_cast<unsigned>(range(8, 15));
    if (chance(6)) return r;
    return dbl ? r & ~4u : r | 4u;
  }

  // A value for an f register: mostly a double or a NaN-boxed single as the register is
  // used, sometimes the other, or a single whose upper half is not all ones
  // (single-precision instructions must read it as the canonical NaN), or any bits.
  uint64_t fp_reg_value(bool dbl) {
    const uint64_t k = rnd(100);
    if (k < (dbl ? 88 : 4)) return fp_double();
    const uint64_t single = fp_single();
    if (k < 93) return 0xffffffff00000000ULL | single;
    if (k < 97) {
      uint64_t hi = pick_of<uint64_t>({0, 0x7fffffff, 0xfffffffe, 0x7ff80000, 0xffff0000, rng_()});
      if (hi >> 32 != 0 || hi == 0xffffffff) hi &= 0x7fffffff;
      return hi << 32 | single;
    }
    return rng_();
  }

  // The rm field: mostly dynamic, sometimes each static mode, rarely a reserved one
  // (illegal).
  uint32_t rm() {
    const uint64_t k = rnd(100);
    if (k < 68) return 7;
    if (k < 98) return static_cast<uint32_t>(rnd(5));
    return static_cast<uint32_t>(range(5, 6));
  }

  // One FP instruction (or a short sequence around one). `plain` (inner loops): no memory
  // accesses.
  void fp_simple(bool plain) {
    Asm& a = *a_;
    const uint64_t k = rnd(plain ? 84 : 100);
    if (k < 12) {  // register-register FMA
      const FmaOp& op = pick(kFmaOps);
      const bool dbl = chance(50);
      const unsigned rd = freg(dbl);
      const unsigned rs1 = freg(dbl);
      const unsigned rs2 = chance(10) ? rs1 : freg(dbl);
      const unsigned rs3 = chance(10) ? rd : freg(dbl);
      const uint32_t mode = rm();
      a.w(enc::fma(op.op, dbl, rd, rs1, rs2, rs3, mode));
    } else if (k < 56) {  // any OP-FP row
      const FOp& op = pick(kFOps);
      const bool to_x = op.kind == FKind::kXF || op.kind == FKind::kXFF;
      // The format (funct7's low bits); fcvt.s.d and fcvt.d.s read the other one.
      const bool dbl = (op.f7 & 1) != 0;
      const bool src_dbl = op.f7 == 0x20 || op.f7 == 0x21 ? !dbl : dbl;
      const unsigned rd = to_x ? dst() : freg(dbl);
      const unsigned rs1 = op.kind == FKind::kFX ? src() : freg(src_dbl);
      const unsigned rs2 = chance(15) ? rs1 : freg(src_dbl);
      const uint32_t mode = rm();
      a.w(fop_word(op, rd, rs1, rs2, mode));
      if (to_x && rd != 0 && chance(40)) int_use(rd);  // the result feeds integer code
    } else if (k < 62) {                               // bits through an integer register and back
      const bool dbl = chance(50);
      const unsigned x = writable();
      const unsigned fs = freg(dbl);
      a.w(enc::fp(dbl ? 0x71 : 0x70, 0, fs, 0, x));  // fmv.x.d / fmv.x.w
      int_use(x, x);
      const unsigned fd = freg(dbl);
      a.w(enc::fp(dbl ? 0x79 : 0x78, 0, x, 0, fd));  // fmv.d.x / fmv.w.x
    } else if (k < 68) {
      fp_constant();
    } else if (k < 80) {
      fp_refresh();
    } else if (k < 84) {
      rounding_probe();
    } else if (k < 94) {
      fp_load_store();
    } else {
      fp_compressed_mem();
    }
  }

  // An integer instruction reading x[r] (into x[rd], by default another register).
  void int_use(unsigned r, unsigned rd = ~0u) {
    const ROp& op = pick(kROps);
    const unsigned other = src();
    if (rd == ~0u) rd = dst();
    a_->w(chance(50) ? enc::r(op.f7, other, r, op.f3, rd, op.op)
                     : enc::r(op.f7, r, other, op.f3, rd, op.op));
  }

  // An f register set afresh: loaded from the constant pool (auipc + fld/flw, as compilers
  // do it), or converted from the outer loop's counter (a new value every iteration) or
  // from any integer register.
  void fp_refresh() {
    Asm& a = *a_;
    const bool dbl = chance(50);
    const unsigned f = freg(dbl);
    const uint64_t k = rnd(10);
    if (k < 7) {
      const unsigned x = writable();
      const int32_t off =
          static_cast<int32_t>(dbl ? 8 * rnd(kPoolSlots / 2) : 4 * (kPoolSlots + rnd(kPoolSlots)));
      const uint64_t anchor = a.pc;
      a.w(enc::auipc(x, 0), Fix::kHi20, fp_pool_, anchor, off);
      a.w(dbl ? enc::fld(f, x, 0) : enc::flw(f, x, 0), Fix::kLo12, fp_pool_, anchor, off);
    } else {
      const unsigned from = k < 9 ? kRegOuter : src();
      const unsigned kind = static_cast<unsigned>(rnd(4));  // w, wu, l, lu
      const uint32_t mode = rm();
      a.w(enc::fp(dbl ? 0x69 : 0x68, kind, from, mode, f));  // fcvt.{s,d}.{w,wu,l,lu}
    }
  }

  // An FP register set to an edge value built in an integer register: a double from its
  // upper 20 bits (lui; slli 32; sometimes +-1 for its neighbours) or a single (lui,
  // sometimes addiw +-1). fmv.d.x of a lui result without the shift gives a single
  // that is NaN-boxed only if it is negative.
  void fp_constant() {
    Asm& a = *a_;
    const unsigned x = writable();
    const uint64_t r = rnd(100);
    const unsigned kind = r < 45 ? 0 : r < 85 ? 1 : 2;
    const unsigned fd = freg(kind == 0);
    const int32_t adj = pick_of<int32_t>({0, 0, 0, 1, -1});
    switch (kind) {
      case 0:
        a.w(enc::lui(x, pick(kFpDoubleHi20)));
        a.w(enc::i(32, x, 1, x, 0x13));  // slli x, x, 32
        if (adj != 0) a.w(enc::addi(x, x, adj));
        a.w(enc::fp(0x79, 0, x, 0, fd));  // fmv.d.x
        break;
      case 1:
        a.w(enc::lui(x, pick(kFpSingleHi20)));
        if (adj != 0) a.w(enc::i(adj, x, 0, x, 0x1b));  // addiw
        a.w(enc::fp(0x78, 0, x, 0, fd));                // fmv.w.x
        break;
      default:
        a.w(enc::lui(x, pick(kFpSingleHi20)));
        a.w(enc::fp(0x79, 0, x, 0, fd));  // fmv.d.x: boxed or not, by the sign
        break;
    }
  }

  // A value on a rounding tie converted right away in the rounding mode of the moment
  // (the modes disagree on ties, which random values rarely are): x.5 to an integer, or
  // +-(2^24 + 1), 2^25 + 2, +-(2^53 + 1), 2^54 + 2 to a single or a double.
  void rounding_probe() {
    Asm& a = *a_;
    const unsigned x = writable();
    const unsigned kind = static_cast<unsigned>(rnd(4));  // w, wu, l, lu
    const uint32_t mode = rm();
    if (chance(60)) {
      const bool dbl = chance(50);
      const unsigned f = freg(dbl);
      const int32_t hi = dbl ? pick(kTieDoubleHi20) : pick(kTieSingleHi20);
      const unsigned rd = dst();
      a.w(enc::lui(x, hi));
      if (dbl) a.w(enc::i(32, x, 1, x, 0x13));             // slli x, x, 32
      a.w(enc::fp(dbl ? 0x79 : 0x78, 0, x, 0, f));         // fmv.d.x / fmv.w.x
      a.w(enc::fp(dbl ? 0x61 : 0x60, kind, f, mode, rd));  // fcvt.{w,wu,l,lu}.{d,s}
      if (rd != 0 && chance(50)) int_use(rd);
    } else {
      const bool dbl = chance(40);
      const unsigned f = freg(dbl);
      const unsigned sh = static_cast<unsigned>(dbl ? range(53, 54) : range(24, 25));
      const bool neg = chance(30);
      a.w(enc::addi(x, 0, 1));
      a.w(enc::i(static_cast<int32_t>(sh), x, 1, x, 0x13));  // slli
      a.w(enc::addi(x, x, 1 << (sh - (dbl ? 53 : 24))));
      if (neg) a.w(enc::r(0x20, x, 0, 0, x, 0x33));  // sub x, zero, x
      // Doubles: only the 64-bit sources hold these.
      const unsigned from = dbl ? 2 + (kind & 1) : kind;
      a.w(enc::fp(dbl ? 0x69 : 0x68, from, x, mode, f));  // fcvt.{s,d}.{w,wu,l,lu}
    }
  }

  // flw/fld/fsw/fsd like the integer loads and stores: s0 (the data pages) and s1 (the
  // end of RAM) for stores, anywhere for some loads.
  void fp_load_store() {
    Asm& a = *a_;
    const bool dbl = chance(50);
    const unsigned size = dbl ? 8 : 4;
    const unsigned f = freg(dbl);
    if (chance(50)) {
      unsigned base;
      int32_t off;
      if (chance(10)) {
        base = src();
        off = imm12();
      } else {
        std::tie(base, off) = store_address(size);
      }
      a.w(dbl ? enc::fld(f, base, off) : enc::flw(f, base, off));
    } else {
      const auto [base, off] = store_address(size);
      a.w(dbl ? enc::fsd(f, base, off) : enc::fsw(f, base, off));
    }
  }

  // c.fld/c.fsd on s0/s1 (loads also on any x8..x15), c.fldsp on sp as it is (mostly
  // faults), c.fsdsp after pointing sp into the data (unless sp is a link register).
  void fp_compressed_mem() {
    Asm& a = *a_;
    const unsigned base = chance(85) ? kRegData : kRegEnd;
    const uint32_t n32 = static_cast<uint32_t>(range(0, 31));
    const uint32_t n64 = static_cast<uint32_t>(range(0, 63));
    const unsigned cf = cfreg(true);
    const unsigned f = freg(true);
    switch (rnd(5)) {
      case 0:
      case 1: {
        const unsigned load_base = chance(10) ? csrc() : base;
        a.c(enc::c_fld(cf, load_base, n32 * 8));
        break;
      }
      case 2:
        a.c(enc::c_fsd(cf, base, n32 * 8));
        break;
      case 3: {
        if (no_write_ != 2 && chance(50)) a.w(enc::addi(2, kRegData, data_offset(8)));
        a.c(enc::c_fldsp(f, n64 * 8));
        break;
      }
      default: {
        if (no_write_ == 2) {
          a.c(enc::c_fldsp(f, n64 * 8));
        } else {
          a.w(enc::addi(2, kRegData, data_offset(8)));
          a.c(enc::c_fsdsp(f, n64 * 8));
        }
        break;
      }
    }
  }

  // fflags, frm and fcsr through every CSR instruction form, and changes of mstatus.FS.
  void fp_csr() {
    Asm& a = *a_;
    const unsigned rd = dst();
    const unsigned rs1 = src();
    const unsigned zimm = static_cast<unsigned>(range(0, 31));
    switch (rnd(20)) {
      case 0:
      case 1:
      case 2: {  // frm = an immediate mode: mostly valid, sometimes reserved
        const unsigned mode =
            chance(85) ? static_cast<unsigned>(rnd(5)) : static_cast<unsigned>(range(5, 7));
        a.w(enc::csr(5, rd, kFrm, mode));  // csrrwi
        break;
      }
      case 3:  // frm = x[rs1] & 7
        a.w(enc::csr(1, rd, kFrm, rs1));
        break;
      case 4:
      case 5: {  // fflags: set, clear or write, register or immediate
        const uint32_t f3 = pick_of<uint32_t>({1, 2, 3, 5, 6, 7});
        a.w(enc::csr(f3, rd, kFflags, f3 >= 5 ? zimm : rs1));
        break;
      }
      case 15:
      case 16:  // fflags read and cleared (the flags are sticky: a wrong one shows after)
        flags_read_clear();
        break;
      case 6:
      case 7: {  // fcsr (an immediate write sets frm to 0)
        const uint32_t f3 = pick_of<uint32_t>({1, 2, 3, 5, 6, 7});
        a.w(enc::csr(f3, rd, kFcsr, f3 >= 5 ? zimm : rs1));
        break;
      }
      case 8:
      case 9:
      case 10:
      case 11:  // reads
        a.w(enc::csrr(rd, pick_of<unsigned>({kFflags, kFrm, kFcsr, kMstatus})));
        break;
      case 12:
      case 13: {  // FS Off for a few instructions (they trap), then Initial or Clean again
        fs_set(0);
        const int n = range(1, 3);
        for (int i = 0; i < n; i++) fp_simple(false);
        fs_set(chance(75) ? 1 : 2);
        break;
      }
      case 14:
      case 17: {  // FS set to a state (from Dirty back to Initial or Clean, or Off)
        const uint64_t k = rnd(10);
        fs_set(k < 5 ? 1 : k < 8 ? 2 : k < 9 ? 3 : 0);
        break;
      }
      default:
        fp_simple(false);
        break;
    }
  }

  // rd = fflags, fflags = 0 (csrrw rd, fflags, zero or csrrci rd, fflags, 31).
  void flags_read_clear() {
    const unsigned rd = dst();
    a_->w(chance(50) ? enc::csr(1, rd, kFflags, 0) : enc::csr(7, rd, kFflags, 31));
  }

  // mstatus.FS = fs: csrrc of both bits, then csrrs of the new value.
  void fs_set(unsigned fs) {
    Asm& a = *a_;
    const unsigned x = writable();
    a.w(enc::lui(x, 6));  // 0x6000 = FS
    a.w(enc::csr(3, 0, kMstatus, x));
    if (fs != 0) {
      a.w(enc::lui(x, static_cast<int32_t>(fs << 1)));  // fs << 13
      a.w(enc::csr(2, 0, kMstatus, x));
    }
  }

  std::mt19937_64 rng_;
  Asm* a_ = nullptr;
  bool fp_ = false;
  static constexpr unsigned kPoolSlots = 64;  // 8 bytes each
  int fp_pool_ = -1;                          // its label
  std::vector<Func> funcs_;
  std::vector<std::pair<int, int>> pending_;
  unsigned no_write_ = 0;  // a register the current code must not write (a link register)
};

// ======================================================================================
// Running two harts side by side.
// ======================================================================================

// A RAM and a hart on it.
struct Machine {
  mem::Bus bus{kBase, kRamSize};
  Hart hart{bus, 0};
};

// Sets the JIT hot threshold for engines made while it lives, then restores the old one.
class HotThreshold {
 public:
  explicit HotThreshold(unsigned n) : old_(jit_hot_threshold()) { set_jit_hot_threshold(n); }
  ~HotThreshold() { set_jit_hot_threshold(old_); }
  HotThreshold(const HotThreshold&) = delete;
  HotThreshold& operator=(const HotThreshold&) = delete;

 private:
  unsigned old_;
};

struct Pair {
  std::unique_ptr<Machine> interp = std::make_unique<Machine>();
  std::unique_ptr<Machine> jit = std::make_unique<Machine>();

  Pair(const Program& p, uint64_t entry) {
    interp->hart.reset(entry);
    interp->hart.set_engine(EngineKind::kInterpreter);
    {
      HotThreshold t(p.hot_threshold);
      jit->hart.reset(entry);
      jit->hart.set_engine(EngineKind::kJit);
    }
    p.load(interp->hart);
    p.load(jit->hart);
  }
};

// Everything observable after a run() call, as "name: interp vs jit" lines ("" if equal).
std::string compare(Machine& mi, Machine& mj, uint64_t ret_i, uint64_t ret_j) {
  const Hart& i = mi.hart;
  const Hart& j = mj.hart;
  std::string diff;
  auto cmp = [&](const std::string& name, uint64_t a, uint64_t b) {
    if (a != b) diff += fmt::format("  {}: interpreter {:#x}, jit {:#x}\n", name, a, b);
  };
  cmp("run() returned", ret_i, ret_j);
  cmp("pc", i.pc, j.pc);
  for (unsigned r = 0; r < 32; r++)
    cmp(fmt::format("x{} ({})", r, isa::xreg_name(r)), i.x[r], j.x[r]);
  for (unsigned r = 0; r < 32; r++)  // bit patterns: NaN payloads and boxing count
    cmp(fmt::format("f{} ({})", r, isa::freg_name(r)), i.f[r], j.f[r]);
  cmp("fflags", i.fflags, j.fflags);
  cmp("frm", i.frm, j.frm);
  cmp("instret", i.instret, j.instret);
  cmp("cycle", i.cycle, j.cycle);
  cmp("mcause", i.mcause, j.mcause);
  cmp("mepc", i.mepc, j.mepc);
  cmp("mtval", i.mtval, j.mtval);
  cmp("priv", i.priv, j.priv);
  cmp("mstatus", i.mstatus_, j.mstatus_);
  cmp("mscratch", i.mscratch, j.mscratch);
  cmp("trap_count", i.trap_count, j.trap_count);
  cmp("waiting", i.waiting, j.waiting);
  cmp("reservation_valid", i.reservation_valid, j.reservation_valid);
  if (i.reservation_valid && j.reservation_valid) {
    // Host addresses: compare them as offsets into each hart's own RAM.
    cmp("reservation (RAM offset)", i.reservation_addr - reinterpret_cast<uintptr_t>(mi.bus.ram()),
        j.reservation_addr - reinterpret_cast<uintptr_t>(mj.bus.ram()));
    cmp("reservation_value", i.reservation_value, j.reservation_value);
  }
  const uint8_t* ri = mi.bus.ram();
  const uint8_t* rj = mj.bus.ram();
  if (std::memcmp(ri, rj, kRamSize) != 0) {
    unsigned shown = 0;
    for (uint64_t off = 0; off < kRamSize && shown < 8; off++) {
      if (ri[off] != rj[off]) {
        diff += fmt::format("  RAM byte at {:#x}: interpreter {:#04x}, jit {:#04x}\n", kBase + off,
                            ri[off], rj[off]);
        shown++;
      }
    }
  }
  return diff;
}

// One run() budget: mostly moderate, sometimes tiny (one instruction, a few), sometimes
// large enough to finish the program.
uint64_t pick_budget(std::mt19937_64& rng) {
  const uint64_t k = rng() % 100;
  if (k < 5) return 1;
  if (k < 20) return 1 + rng() % 16;
  if (k < 90) return 1 + rng() % 3000;
  return 3000 + rng() % 30000;
}

// Stops a run() call that does not return (say a JIT loop that ignores its budget and
// wraps the count) by setting the hart's stop flag after kLimit, so the test reports the
// seed and the program instead of hanging. (Native code that never returns to the run loop
// cannot be stopped this way; CTest's timeout is the last resort then.)
class Watchdog {
 public:
  static constexpr std::chrono::seconds kLimit{20};

  Watchdog() : thread_([this] { loop(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(m_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // h.run(n), watched. `fired` tells whether the watchdog had to stop it.
  uint64_t run(Hart& h, uint64_t n, bool& fired) {
    {
      std::lock_guard<std::mutex> lock(m_);
      hart_ = &h;
      deadline_ = std::chrono::steady_clock::now() + kLimit;
      fired_ = false;
    }
    cv_.notify_all();
    const uint64_t r = h.run(n);
    std::lock_guard<std::mutex> lock(m_);
    hart_ = nullptr;
    fired = fired_;
    return r;
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(m_);
    while (!quit_) {
      if (hart_ == nullptr) {
        cv_.wait(lock);
      } else if (std::chrono::steady_clock::now() >= deadline_) {
        hart_->stop_requested = true;
        fired_ = true;
        hart_ = nullptr;
      } else {
        cv_.wait_until(lock, deadline_);
      }
    }
  }

  std::mutex m_;
  std::condition_variable cv_;
  Hart* hart_ = nullptr;
  std::chrono::steady_clock::time_point deadline_;
  bool fired_ = false;
  bool quit_ = false;
  std::thread thread_;  // last: starts after the fields it reads
};

// What one program did (for the verbose mode and for sanity checks of the generator).
struct RunStats {
  uint64_t retired = 0;
  uint64_t traps = 0;
  unsigned calls = 0;
  bool finished = false;   // reached the final loop (or WFI)
  bool f_changed = false;  // some f register or fflags differs from its initial value
};

// Runs the program on both harts with the same budgets; returns a report of the first
// difference ("" if none). `verbose` prints one line per run() call.
std::string run_both(const Program& p, uint64_t seed, uint64_t entry, unsigned max_calls,
                     RunStats* stats = nullptr, bool verbose = false) {
  Watchdog watchdog;
  Pair pair(p, entry);
  Hart& hi = pair.interp->hart;
  Hart& hj = pair.jit->hart;
  std::mt19937_64 budget_rng(seed * 0x9e3779b97f4a7c15ULL + 1);
  std::vector<uint64_t> budgets;
  RunStats local;
  RunStats& st = stats != nullptr ? *stats : local;
  unsigned settled = 0;
  for (unsigned call = 0; call < max_calls; call++) {
    const uint64_t n = pick_budget(budget_rng);
    budgets.push_back(n);
    bool hung_i = false, hung_j = false;
    const uint64_t ri = watchdog.run(hi, n, hung_i);
    const uint64_t rj = watchdog.run(hj, n, hung_j);
    st.calls = call + 1;
    st.retired += ri;
    st.traps = hi.trap_count;
    st.f_changed = std::memcmp(hi.f, p.f, sizeof(p.f)) != 0 || hi.fflags != p.fflags;
    if (verbose) {
      fmt::print(
          "call {}: budget {}, ran {} (jit {}), pc {:#x} (jit {:#x}), instret {}, traps {}, "
          "fflags {:#x}, frm {}, mstatus {:#x}\n",
          call, n, ri, rj, hi.pc, hj.pc, hi.instret, hi.trap_count, hi.fflags, hi.frm, hi.mstatus_);
    }
    std::string diff = compare(*pair.interp, *pair.jit, ri, rj);
    if (hung_i || hung_j) {
      diff += fmt::format("  {} run() did not return within {} s: stopped by the watchdog\n",
                          hung_i ? "the interpreter's" : "the JIT's", Watchdog::kLimit.count());
    }
    if (!diff.empty()) {
      std::string b;
      for (uint64_t v : budgets) b += fmt::format(" {}", v);
      const std::string fp =
          p.fp ? fmt::format(", floating point: initial FS {}, frm {}, fflags {:#x}", p.fs, p.frm,
                             p.fflags)
               : "";
      return fmt::format(
          "seed {} (hot threshold {}{}): interpreter and JIT differ after run() call {} "
          "(budgets:{}):\n{}\nprogram:\n{}",
          seed, p.hot_threshold, fp, call, b, diff,
          p.a.listing({{hi.pc, "interpreter pc"}, {hj.pc, "jit pc"}}));
    }
    // Done once the program sits in its final loop (or WFI) for a couple of calls.
    if (hi.pc == p.end_pc || hi.pc == p.end_pc + 4 || hi.waiting) {
      st.finished = true;
      if (++settled >= 3) break;
    }
  }
  return "";
}

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 0) : fallback;
}

// ======================================================================================
// Tests
// ======================================================================================

// The encoders against binutils (riscv64-linux-gnu-as -march=rv64gc_zba_zbb_zbs,
// objdump -M no-aliases), and every table row against the decoder's mnemonic.
TEST(JitDiff, EncodersMatchBinutils) {
  struct Known {
    uint32_t ours;
    uint32_t binutils;
    const char* text;
  };
  const Known known[] = {
      {enc::r(0x20, 12, 11, 0, 10, 0x33), 0x40c58533, "sub a0, a1, a2"},
      {enc::r(1, 12, 11, 4, 10, 0x3b), 0x02c5c53b, "divw a0, a1, a2"},
      {enc::addi(10, 11, -5), 0xffb58513, "addi a0, a1, -5"},
      {enc::i(0x10 << 6 | 63, 11, 5, 10, 0x13), 0x43f5d513, "srai a0, a1, 63"},
      {enc::lw(10, 11, 4), 0x0045a503, "lw a0, 4(a1)"},
      {enc::sw(10, 11, 4), 0x00a5a223, "sw a0, 4(a1)"},
      {enc::s(-2048, 31, 8, 3, 0x23), 0x81f43023, "sd t6, -2048(s0)"},
      {enc::b(-4096, 0, 30, 1), 0x800f1063, "bne t5, zero, .-4096"},
      {enc::b(4094, 29, 0, 4), 0x7fd04fe3, "blt zero, t4, .+4094"},
      {enc::jal(1, -(1 << 20)), 0x800000ef, "jal ra, .-1048576"},
      {enc::jal(0, 2046), 0x7fe0006f, "jal zero, .+2046"},
      {enc::lui(10, 0x80000), 0x80000537, "lui a0, 0x80000"},
      {enc::auipc(5, -1), 0xfffff297, "auipc t0, 0xfffff"},
      {enc::jalr(1, 5, -1), 0xfff280e7, "jalr ra, -1(t0)"},
      {enc::csrr(10, 0xC02), 0xc0202573, "csrrs a0, instret, zero"},
      {enc::csr(5, 11, 0xB00, 31), 0xb00fd5f3, "csrrwi a1, mcycle, 31"},
      {enc::amo(0x1c, true, 10, 8, 11, true, false), 0xe4b4352f, "amomaxu.d.aq a0, a1, (s0)"},
      {enc::amo(0x02, false, 10, 8, 0), 0x1004252f, "lr.w a0, (s0)"},
      {enc::fence(15, 15), 0x0ff0000f, "fence iorw, iorw"},
      {enc::c_addi(10, -32), 0x1501, "c.addi a0, -32"},
      {enc::c_addiw(10, 0), 0x2501, "c.addiw a0, 0"},
      {enc::c_li(15, 31), 0x47fd, "c.li a5, 31"},
      {enc::c_lui(10, -1), 0x757d, "c.lui a0, 0xfffff"},
      {enc::c_slli(10, 63), 0x157e, "c.slli a0, 63"},
      {enc::c_srli(15, 32), 0x9381, "c.srli a5, 32"},
      {enc::c_srai(10, 1), 0x8505, "c.srai a0, 1"},
      {enc::c_andi(10, -1), 0x997d, "c.andi a0, -1"},
      {enc::c_sub(10, 11), 0x8d0d, "c.sub a0, a1"},
      {enc::c_addw(15, 8), 0x9fa1, "c.addw a5, s0"},
      {enc::c_mv(10, 31), 0x857e, "c.mv a0, t6"},
      {enc::c_add(1, 2), 0x908a, "c.add ra, sp"},
      {enc::c_jr(1), 0x8082, "c.jr ra"},
      {enc::c_jalr(5), 0x9282, "c.jalr t0"},
      {enc::c_ebreak(), 0x9002, "c.ebreak"},
      {enc::c_lw(10, 8, 124), 0x5c68, "c.lw a0, 124(s0)"},
      {enc::c_ld(15, 9, 248), 0x7cfc, "c.ld a5, 248(s1)"},
      {enc::c_sw(8, 9, 68), 0xc0e0, "c.sw s0, 68(s1)"},
      {enc::c_sd(11, 8, 136), 0xe44c, "c.sd a1, 136(s0)"},
      {enc::c_lwsp(10, 252), 0x557e, "c.lwsp a0, 252(sp)"},
      {enc::c_ldsp(10, 504), 0x757e, "c.ldsp a0, 504(sp)"},
      {enc::c_addi16sp(-512), 0x7101, "c.addi16sp sp, -512"},
      {enc::c_addi16sp(496), 0x617d, "c.addi16sp sp, 496"},
      {enc::c_addi4spn(10, 1020), 0x1fe8, "c.addi4spn a0, sp, 1020"},
      {enc::c_j(-2048), 0xb001, "c.j .-2048"},
      {enc::c_j(2046), 0xaffd, "c.j .+2046"},
      {enc::c_beqz(8, -256), 0xd001, "c.beqz s0, .-256"},
      {enc::c_bnez(15, 254), 0xeffd, "c.bnez a5, .+254"},
  };
  // Floating point: every OP-FP and FMA row (through the generator's tables), the loads and
  // stores, the compressed ones and the FP CSR accesses, with varied registers and rounding
  // modes (binutils 2.40 writes fcvt.d.w, fcvt.d.wu and fcvt.d.s with rm = rne).
  auto fop_w = [](std::string_view name, unsigned rd, unsigned rs1, unsigned rs2, uint32_t rm) {
    for (const FOp& op : kFOps) {
      if (name == op.name) return fop_word(op, rd, rs1, rs2, rm);
    }
    ADD_FAILURE() << "no OP-FP row " << name;
    return 0u;
  };
  auto fma_w = [](std::string_view name, bool dbl, unsigned rd, unsigned rs1, unsigned rs2,
                  unsigned rs3, uint32_t rm) {
    for (const FmaOp& op : kFmaOps) {
      if (name == op.name) return enc::fma(op.op, dbl, rd, rs1, rs2, rs3, rm);
    }
    ADD_FAILURE() << "no FMA row " << name;
    return 0u;
  };
  const Known known_fp[] = {
      {fop_w("fadd.s", 3, 5, 1, 7), 0x0012f1d3, "fadd.s ft3, ft5, ft1, dyn"},
      {fop_w("fsub.s", 10, 16, 14, 0), 0x08e80553, "fsub.s fa0, fa6, fa4, rne"},
      {fop_w("fmul.s", 17, 27, 27, 1), 0x11bd98d3, "fmul.s fa7, fs11, fs11, rtz"},
      {fop_w("fdiv.s", 24, 6, 8, 2), 0x18832c53, "fdiv.s fs8, ft6, fs0, rdn"},
      {fop_w("fsqrt.s", 31, 17, 21, 3), 0x5808bfd3, "fsqrt.s ft11, fa7, rup"},
      {fop_w("fsgnj.s", 6, 28, 2, 0), 0x202e0353, "fsgnj.s ft6, ft8, ft2"},
      {fop_w("fsgnjn.s", 13, 7, 15, 0), 0x20f396d3, "fsgnjn.s fa3, ft7, fa5"},
      {fop_w("fsgnjx.s", 20, 18, 28, 0), 0x21c92a53, "fsgnjx.s fs4, fs2, ft8"},
      {fop_w("fmin.s", 27, 29, 9, 0), 0x289e8dd3, "fmin.s fs11, ft9, fs1"},
      {fop_w("fmax.s", 2, 8, 22, 0), 0x29641153, "fmax.s ft2, fs0, fs6"},
      {fop_w("feq.s", 9, 19, 3, 0), 0xa039a4d3, "feq.s s1, fs3, ft3"},
      {fop_w("flt.s", 16, 30, 16, 0), 0xa10f1853, "flt.s a6, ft10, fa6"},
      {fop_w("fle.s", 23, 9, 29, 0), 0xa1d48bd3, "fle.s s7, fs1, ft9"},
      {fop_w("fclass.s", 30, 20, 10, 0), 0xe00a1f53, "fclass.s t5, fs4"},
      {fop_w("fcvt.w.s", 5, 31, 23, 1), 0xc00f92d3, "fcvt.w.s t0, ft11, rtz"},
      {fop_w("fcvt.s.w", 12, 10, 4, 2), 0xd0052653, "fcvt.s.w fa2, a0, rdn"},
      {fop_w("fcvt.wu.s", 19, 21, 17, 3), 0xc01ab9d3, "fcvt.wu.s s3, fs5, rup"},
      {fop_w("fcvt.s.wu", 26, 0, 30, 4), 0xd0104d53, "fcvt.s.wu fs10, zero, rmm"},
      {fop_w("fcvt.l.s", 1, 11, 11, 7), 0xc025f0d3, "fcvt.l.s ra, fa1, dyn"},
      {fop_w("fcvt.s.l", 8, 22, 24, 0), 0xd02b0453, "fcvt.s.l fs0, s6, rne"},
      {fop_w("fcvt.lu.s", 15, 1, 5, 1), 0xc03097d3, "fcvt.lu.s a5, ft1, rtz"},
      {fop_w("fcvt.s.lu", 22, 12, 18, 2), 0xd0362b53, "fcvt.s.lu fs6, a2, rdn"},
      {fop_w("fadd.d", 29, 23, 31, 3), 0x03fbbed3, "fadd.d ft9, fs7, ft11, rup"},
      {fop_w("fsub.d", 4, 2, 12, 4), 0x0ac14253, "fsub.d ft4, ft2, fa2, rmm"},
      {fop_w("fmul.d", 11, 13, 25, 7), 0x1396f5d3, "fmul.d fa1, fa3, fs9, dyn"},
      {fop_w("fdiv.d", 18, 24, 6, 0), 0x1a6c0953, "fdiv.d fs2, fs8, ft6, rne"},
      {fop_w("fsqrt.d", 25, 3, 19, 1), 0x5a019cd3, "fsqrt.d fs9, ft3, rtz"},
      {fop_w("fsgnj.d", 0, 14, 0, 0), 0x22070053, "fsgnj.d ft0, fa4, ft0"},
      {fop_w("fsgnjn.d", 7, 25, 13, 0), 0x22dc93d3, "fsgnjn.d ft7, fs9, fa3"},
      {fop_w("fsgnjx.d", 14, 4, 26, 0), 0x23a22753, "fsgnjx.d fa4, ft4, fs10"},
      {fop_w("fmin.d", 21, 15, 7, 0), 0x2a778ad3, "fmin.d fs5, fa5, ft7"},
      {fop_w("fmax.d", 28, 26, 20, 0), 0x2b4d1e53, "fmax.d ft8, fs10, fs4"},
      {fop_w("feq.d", 3, 5, 1, 0), 0xa212a1d3, "feq.d gp, ft5, ft1"},
      {fop_w("flt.d", 10, 16, 14, 0), 0xa2e81553, "flt.d a0, fa6, fa4"},
      {fop_w("fle.d", 17, 27, 27, 0), 0xa3bd88d3, "fle.d a7, fs11, fs11"},
      {fop_w("fclass.d", 24, 6, 8, 0), 0xe2031c53, "fclass.d s8, ft6"},
      {fop_w("fcvt.w.d", 31, 17, 21, 7), 0xc208ffd3, "fcvt.w.d t6, fa7, dyn"},
      {fop_w("fcvt.d.w", 6, 28, 2, 0), 0xd20e0353, "fcvt.d.w ft6, t3"},
      {fop_w("fcvt.wu.d", 13, 7, 15, 1), 0xc21396d3, "fcvt.wu.d a3, ft7, rtz"},
      {fop_w("fcvt.d.wu", 20, 18, 28, 0), 0xd2190a53, "fcvt.d.wu fs4, s2"},
      {fop_w("fcvt.l.d", 27, 29, 9, 3), 0xc22ebdd3, "fcvt.l.d s11, ft9, rup"},
      {fop_w("fcvt.d.l", 2, 8, 22, 4), 0xd2244153, "fcvt.d.l ft2, s0, rmm"},
      {fop_w("fcvt.lu.d", 9, 19, 3, 7), 0xc239f4d3, "fcvt.lu.d s1, fs3, dyn"},
      {fop_w("fcvt.d.lu", 16, 30, 16, 0), 0xd23f0853, "fcvt.d.lu fa6, t5, rne"},
      {fop_w("fmv.x.w", 23, 9, 29, 0), 0xe0048bd3, "fmv.x.w s7, fs1"},
      {fop_w("fmv.w.x", 30, 20, 10, 0), 0xf00a0f53, "fmv.w.x ft10, s4"},
      {fop_w("fmv.x.d", 5, 31, 23, 0), 0xe20f82d3, "fmv.x.d t0, ft11"},
      {fop_w("fmv.d.x", 12, 10, 4, 0), 0xf2050653, "fmv.d.x fa2, a0"},
      {fop_w("fcvt.s.d", 19, 21, 17, 7), 0x401af9d3, "fcvt.s.d fs3, fs5, dyn"},
      {fop_w("fcvt.d.s", 26, 0, 30, 0), 0x42000d53, "fcvt.d.s fs10, ft0"},
      {fma_w("fmadd", false, 17, 30, 2, 4, 7), 0x202f78c3, "fmadd.s fa7, ft10, ft2, ft4, dyn"},
      {fma_w("fmadd", true, 9, 30, 2, 31, 0), 0xfa2f04c3, "fmadd.d fs1, ft10, ft2, ft11, rne"},
      {fma_w("fmsub", false, 22, 1, 9, 13, 1), 0x68909b47, "fmsub.s fs6, ft1, fs1, fa3, rtz"},
      {fma_w("fmsub", true, 14, 1, 9, 8, 2), 0x4290a747, "fmsub.d fa4, ft1, fs1, fs0, rdn"},
      {fma_w("fnmsub", false, 27, 4, 16, 22, 3), 0xb1023dcb, "fnmsub.s fs11, ft4, fa6, fs6, rup"},
      {fma_w("fnmsub", true, 19, 4, 16, 17, 4), 0x8b0249cb, "fnmsub.d fs3, ft4, fa6, fa7, rmm"},
      {fma_w("fnmadd", false, 0, 7, 23, 31, 7), 0xf973f04f, "fnmadd.s ft0, ft7, fs7, ft11, dyn"},
      {fma_w("fnmadd", true, 24, 7, 23, 26, 0), 0xd3738c4f, "fnmadd.d fs8, ft7, fs7, fs10, rne"},
      {enc::flw(10, 8, -2048), 0x80042507, "flw fa0, -2048(s0)"},
      {enc::fld(31, 9, 2047), 0x7ff4bf87, "fld ft11, 2047(s1)"},
      {enc::fsw(0, 8, -1), 0xfe042fa7, "fsw ft0, -1(s0)"},
      {enc::fsd(17, 2, 1234), 0x4d113927, "fsd fa7, 1234(sp)"},
      {enc::c_fld(10, 8, 248), 0x3c68, "c.fld fa0, 248(s0)"},
      {enc::c_fld(15, 15, 0), 0x239c, "c.fld fa5, 0(a5)"},
      {enc::c_fsd(8, 9, 136), 0xa4c0, "c.fsd fs0, 136(s1)"},
      {enc::c_fsd(13, 12, 64), 0xa234, "c.fsd fa3, 64(a2)"},
      {enc::c_fldsp(31, 504), 0x3ffe, "c.fldsp ft11, 504(sp)"},
      {enc::c_fldsp(0, 8), 0x2022, "c.fldsp ft0, 8(sp)"},
      {enc::c_fsdsp(31, 504), 0xbffe, "c.fsdsp ft11, 504(sp)"},
      {enc::c_fsdsp(10, 96), 0xb0aa, "c.fsdsp fa0, 96(sp)"},
      {enc::csr(5, 10, 0x002, 4), 0x00225573, "csrrwi a0, frm, 4"},
      {enc::csr(1, 0, 0x003, 11), 0x00359073, "csrrw zero, fcsr, a1"},
      {enc::csr(2, 12, 0x001, 0), 0x00102673, "csrrs a2, fflags, zero"},
      {enc::csr(3, 0, 0x300, 5), 0x3002b073, "csrrc zero, mstatus, t0"},
  };
  for (const Known& k : known) {
    EXPECT_EQ(k.ours, k.binutils) << k.text << std::hex << ": ours 0x" << k.ours << ", binutils 0x"
                                  << k.binutils;
  }
  for (const Known& k : known_fp) {
    EXPECT_EQ(k.ours, k.binutils) << k.text << std::hex << ": ours 0x" << k.ours << ", binutils 0x"
                                  << k.binutils;
  }

  // Every generator table row decodes to the instruction it is named after.
  auto mnemonic = [](uint32_t raw) {
    const isa::Decoded d = isa::decode(raw);
    return d.row == isa::kNoRow ? std::string("illegal") : std::string(isa::kRows[d.row].mnemonic);
  };
  for (const ROp& op : kROps) EXPECT_EQ(mnemonic(enc::r(op.f7, 12, 11, op.f3, 10, op.op)), op.name);
  for (const IOp& op : kIOps) EXPECT_EQ(mnemonic(enc::i(-3, 11, op.f3, 10, op.op)), op.name);
  for (const ShOp& op : kShOps) {
    EXPECT_EQ(mnemonic(enc::i(op.f6 << 6 | op.max_shamt, 11, op.f3, 10, op.op)), op.name);
  }
  for (const UnOp& op : kUnOps)
    EXPECT_EQ(mnemonic(enc::i(op.imm12, 11, op.f3, 10, op.op)), op.name);
  for (unsigned f3 = 0; f3 < 7; f3++)
    EXPECT_EQ(mnemonic(enc::i(-1, 11, f3, 10, 0x03)), kLoadNames[f3]);
  for (unsigned f3 = 0; f3 < 4; f3++)
    EXPECT_EQ(mnemonic(enc::s(-1, 10, 11, f3, 0x23)), kStoreNames[f3]);
  for (const AmoOp& op : kAmoOps) {
    EXPECT_EQ(mnemonic(enc::amo(op.f5, false, 10, 8, 11)), std::string(op.name) + ".w");
    EXPECT_EQ(mnemonic(enc::amo(op.f5, true, 10, 8, 11)), std::string(op.name) + ".d");
  }
  EXPECT_EQ(mnemonic(enc::amo(0x03, true, 10, 8, 11)), "sc.d");
  EXPECT_EQ(mnemonic(enc::c_addw(10, 11)), "c.addw");
  EXPECT_EQ(mnemonic(enc::c_subw(10, 11)), "c.subw");
  EXPECT_EQ(mnemonic(enc::c_xor(10, 11)), "c.xor");
  EXPECT_EQ(mnemonic(enc::c_or(10, 11)), "c.or");
  EXPECT_EQ(mnemonic(enc::c_and(10, 11)), "c.and");

  // Floating point: every row of the generator's tables decodes to its name, and every F
  // and D row of the ISA table (and every compressed FP row) is one the generator emits.
  std::vector<std::string> emitted;
  for (const FOp& op : kFOps) {
    for (uint32_t rm : {0u, 4u, 7u}) EXPECT_EQ(mnemonic(fop_word(op, 10, 11, 12, rm)), op.name);
    emitted.push_back(op.name);
  }
  for (const FmaOp& op : kFmaOps) {
    EXPECT_EQ(mnemonic(enc::fma(op.op, false, 10, 11, 12, 13, 7)), std::string(op.name) + ".s");
    EXPECT_EQ(mnemonic(enc::fma(op.op, true, 10, 11, 12, 13, 7)), std::string(op.name) + ".d");
    emitted.push_back(std::string(op.name) + ".s");
    emitted.push_back(std::string(op.name) + ".d");
  }
  const std::pair<uint32_t, const char*> fp_mem[] = {
      {enc::flw(10, 8, -1), "flw"},     {enc::fld(10, 8, -1), "fld"},
      {enc::fsw(10, 8, -1), "fsw"},     {enc::fsd(10, 8, -1), "fsd"},
      {enc::c_fld(10, 8, 8), "c.fld"},  {enc::c_fsd(10, 8, 8), "c.fsd"},
      {enc::c_fldsp(10, 8), "c.fldsp"}, {enc::c_fsdsp(10, 8), "c.fsdsp"},
  };
  for (const auto& [raw, name] : fp_mem) {
    EXPECT_EQ(mnemonic(raw), name);
    emitted.push_back(name);
  }
  for (unsigned r = 0; r < isa::kRowCount; r++) {
    const isa::Row& row = isa::kRows[r];
    const std::string_view ext = row.extension;
    const std::string_view mn = row.mnemonic;
    const bool fp_row = ext == "F" || ext == "D" || (row.compressed && mn.starts_with("c.f"));
    if (!fp_row) continue;
    EXPECT_NE(std::find(emitted.begin(), emitted.end(), mn), emitted.end())
        << "the generator never emits " << mn;
  }
  // The reserved rounding modes still decode (they trap when executed).
  EXPECT_EQ(mnemonic(fop_word(kFOps[0], 10, 11, 12, 5)), "fadd.s");
  EXPECT_EQ(mnemonic(enc::fma(0x43, true, 10, 11, 12, 13, 6)), "fmadd.d");
}

// Random programs: interpreter and JIT must agree after every run() call.
TEST(JitDiff, RandomPrograms) {
  const uint64_t only = env_u64("NIMBUS_JIT_DIFF_SEED", ~0ULL);
  const uint64_t seeds = only != ~0ULL ? 1 : env_u64("NIMBUS_JIT_DIFF_SEEDS", kDefaultSeeds);
  unsigned failures = 0;
  uint64_t finished = 0, retired = 0, traps = 0, fp_programs = 0, fp_changed = 0;
  for (uint64_t k = 0; k < seeds; k++) {
    const uint64_t seed = only != ~0ULL ? only : k;
    Generator gen(seed);
    Program p = gen.generate();
    const std::string err = p.a.resolve();
    ASSERT_EQ(err, "") << "generator bug, seed " << seed;
    if (only != ~0ULL) {
      fmt::print("seed {}:\n{}", seed, p.a.listing());
      if (p.fp) {
        fmt::print("floating point: FS {}, frm {}, fflags {:#x}\n", p.fs, p.frm, p.fflags);
        for (unsigned r = 0; r < 32; r++)
          fmt::print("  f{} ({}) = {:#018x}\n", r, isa::freg_name(r), p.f[r]);
      }
    }
    RunStats st;
    const std::string report = run_both(p, seed, kBase, 48, &st, only != ~0ULL);
    finished += st.finished;
    retired += st.retired;
    traps += st.traps;
    fp_programs += p.fp;
    fp_changed += p.fp && st.f_changed;
    if (!report.empty()) {
      ADD_FAILURE() << report;
      if (++failures >= 3) return;  // enough to debug; the listings are long
    }
  }
  // The generator itself stays useful: most programs run to their end, and they trap
  // (ecall, faults, illegal instructions) but mostly execute.
  if (only == ~0ULL && seeds >= 100) {
    EXPECT_GE(finished * 10, seeds * 8) << "too few programs reach their end";
    EXPECT_GT(traps, seeds * 10);
    EXPECT_LT(traps * 10, retired) << "programs mostly trap";
    // Most programs are floating-point ones, and their FP instructions mostly execute.
    EXPECT_GE(fp_programs * 10, seeds * 6);
    EXPECT_GE(fp_changed * 10, fp_programs * 8) << "FP programs that never changed FP state";
  }
}

// Self-modifying code: an instruction that a hot loop rewrites (store + FENCE.I) with a new
// one from a table on every outer iteration, so code compiled for the old instruction must
// be dropped. The rewritten instruction is either the head of a hot inner loop or right
// after the FENCE.I; a third of the table entries are pairs of compressed instructions.
TEST(JitDiff, SelfModifyingCode) {
  constexpr unsigned a0 = 10, a1 = 11, a2 = 12, a3 = 13, a4 = 14;
  for (uint64_t seed = 0; seed < 24; seed++) {
    std::mt19937_64 rng(seed + 1000);
    auto rnd = [&](uint64_t n) { return rng() % n; };
    const bool after_fence = seed % 2 == 1;
    const int outer = 8 + static_cast<int>(rnd(24));
    const int inner = after_fence ? 1 : 1 + static_cast<int>(rnd(40));

    // The replacement instructions, and a model of what each does to a1 (given a2).
    struct Variant {
      uint32_t word;
      std::function<uint64_t(uint64_t, uint64_t)> f;
    };
    std::vector<Variant> table;
    for (int k = 0; k <= outer; k++) {
      const int imm = static_cast<int>(rnd(31)) - 15;
      switch (rnd(6)) {
        case 0:
          table.push_back({enc::addi(a1, a1, imm),
                           [imm](uint64_t x, uint64_t) { return x + static_cast<uint64_t>(imm); }});
          break;
        case 1:
          table.push_back({enc::i(imm, a1, 4, a1, 0x13), [imm](uint64_t x, uint64_t) {  // xori
                             return x ^ static_cast<uint64_t>(static_cast<int64_t>(imm));
                           }});
          break;
        case 2:
          table.push_back({enc::add(a1, a1, a2), [](uint64_t x, uint64_t y) { return x + y; }});
          break;
        case 3:  // mul
          table.push_back(
              {enc::r(1, a2, a1, 0, a1, 0x33), [](uint64_t x, uint64_t y) { return x * y; }});
          break;
        case 4: {  // c.addi a1, imm ; c.nop
          const int ci = imm == 0 ? 3 : imm;
          table.push_back({uint32_t{enc::c_addi(a1, ci)} | uint32_t{enc::c_nop()} << 16,
                           [ci](uint64_t x, uint64_t) { return x + static_cast<uint64_t>(ci); }});
          break;
        }
        default: {  // c.slli a1, 1 ; c.addi a1, 1
          table.push_back({uint32_t{enc::c_slli(a1, 1)} | uint32_t{enc::c_addi(a1, 1)} << 16,
                           [](uint64_t x, uint64_t) { return (x << 1) + 1; }});
          break;
        }
      }
    }

    Program p;
    Asm& a = p.a;
    a.org(kBase);
    a.here("entry");
    const int patch = a.new_label("patch");
    const uint64_t anchor = a.pc;
    a.w(enc::auipc(a0, 0), Fix::kHi20, patch, anchor, 0);  // a0 = &patch
    a.w(enc::addi(a0, a0, 0), Fix::kLo12, patch, anchor, 0);
    const int outer_top = a.here("outer");
    auto rewrite = [&] {
      a.w(enc::lw(a4, kRegData, 4));  // a4 = the next instruction word
      a.w(enc::sw(a4, a0, 0));        // stored over `patch`
      a.w(enc::addi(kRegData, kRegData, 4));
      a.w(enc::kFenceI);
    };
    if (after_fence) rewrite();  // iteration k runs table[k + 1]
    a.w(enc::addi(kRegInner, 0, inner));
    const int inner_top = a.here("inner");
    a.bind(patch);
    a.w(table[0].word);
    a.w(enc::add(a3, a3, a1));  // a3 accumulates a1
    a.w(enc::addi(kRegInner, kRegInner, -1));
    a.w(enc::bne(kRegInner, 0, 0), Fix::kB, inner_top);
    if (!after_fence) rewrite();  // iteration k runs table[k]
    a.w(enc::addi(kRegOuter, kRegOuter, -1));
    a.w(enc::bne(kRegOuter, 0, 0), Fix::kB, outer_top);
    const int end = a.here("end");
    p.end_pc = a.pc;
    a.w(enc::jal(0, 0), Fix::kJ, end);
    emit_trap_handler(a);
    ASSERT_EQ(a.resolve(), "");

    p.data.assign(kDataSize, 0);
    p.last_page.assign(0x1000, 0);
    for (size_t k = 0; k < table.size(); k++) std::memcpy(&p.data[k * 4], &table[k].word, 4);
    p.x[kRegData] = kData;
    p.x[kRegEnd] = kRamEnd;
    p.x[kRegOuter] = static_cast<uint64_t>(outer);
    p.x[a1] = rng();
    p.x[a2] = rng() | 1;  // odd: the mul variant keeps a1 from collapsing to zero
    p.hot_threshold = seed % 4 < 2 ? 1 : 16;

    // The model: what a1 and a3 must end as.
    uint64_t m1 = p.x[a1], m3 = 0;
    for (int k = 0; k < outer; k++) {
      const Variant& v = table[static_cast<size_t>(after_fence ? k + 1 : k)];
      for (int n = 0; n < inner; n++) {
        m1 = v.f(m1, p.x[a2]);
        m3 += m1;
      }
    }

    const std::string report = run_both(p, seed, kBase, 64);
    ASSERT_EQ(report, "");

    // Both engines agree; the interpreter must also have seen every rewrite.
    Pair pair(p, kBase);
    pair.interp->hart.run(200000);
    pair.jit->hart.run(200000);
    EXPECT_EQ(pair.interp->hart.pc, p.end_pc) << "seed " << seed;
    EXPECT_EQ(pair.interp->hart.x[a1], m1) << "seed " << seed << "\n" << a.listing();
    EXPECT_EQ(pair.interp->hart.x[a3], m3) << "seed " << seed;
    EXPECT_EQ(pair.jit->hart.x[a1], m1) << "seed " << seed;
    EXPECT_EQ(pair.jit->hart.x[a3], m3) << "seed " << seed;
    EXPECT_EQ(pair.jit->hart.instret, pair.interp->hart.instret) << "seed " << seed;
  }
}

}  // namespace
}  // namespace nimbus::cpu
