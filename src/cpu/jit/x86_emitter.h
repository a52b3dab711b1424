// A small x86-64 assembler: the instructions the JIT's templates need, encoded into a
// byte vector (Intel SDM vol. 2 for the encodings). Labels are resolved when bound; all
// jumps are rel32, so the code is position independent and may be copied as a whole.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace nimbus::cpu::jit {

enum Reg : uint8_t {
  RAX = 0,
  RCX,
  RDX,
  RBX,
  RSP,
  RBP,
  RSI,
  RDI,
  R8,
  R9,
  R10,
  R11,
  R12,
  R13,
  R14,
  R15,
};

// Condition codes (the low nibble of Jcc/SETcc/CMOVcc).
enum Cond : uint8_t {
  kO = 0,
  kNO,
  kB,
  kAE,
  kE,
  kNE,
  kBE,
  kA,
  kS,
  kNS,
  kP,
  kNP,
  kL,
  kGE,
  kLE,
  kG,
};

// Group-1 ALU operations: the /digit of 81/83 and (digit << 3) | 1 is the "r/m, r" opcode.
enum Alu : uint8_t { kAdd = 0, kOr = 1, kAnd = 4, kSub = 5, kXor = 6, kCmp = 7 };
// Group-2 shifts and rotates (the /digit of C1 and D3).
enum Shift : uint8_t { kRol = 0, kRor = 1, kShl = 4, kShr = 5, kSar = 7 };

// A memory operand [base + index + disp] (index optional, scale 1).
struct Mem {
  Reg base;
  int32_t disp = 0;
  bool has_index = false;
  Reg index = RAX;
  bool wide = false;  // always a 32-bit displacement (fixed-size code, patched later)
};
inline Mem mem(Reg base, int32_t disp = 0) { return Mem{base, disp}; }
inline Mem mem_wide(Reg base, int32_t disp) { return Mem{base, disp, false, RAX, true}; }
inline Mem mem_idx(Reg base, Reg index, int32_t disp = 0) { return Mem{base, disp, true, index}; }

struct Label {
  int pos = -1;
  std::vector<int> fixups;  // offsets of rel32 fields that jump here
};

class Emitter {
 public:
  std::vector<uint8_t>& code() { return buf_; }
  size_t size() const { return buf_.size(); }

  void bind(Label& l) {
    l.pos = static_cast<int>(buf_.size());
    for (int f : l.fixups) patch32(f, l.pos - (f + 4));
    l.fixups.clear();
  }

  // ---- moves ----
  void mov(Reg dst, Reg src) {  // 64-bit
    if (dst != src) rr(true, 0x89, src, dst);
  }
  void mov32(Reg dst, Reg src) { rr(false, 0x89, src, dst); }  // zero-extends
  void mov_imm(Reg dst, uint64_t v) {
    if (v == 0) {
      rr(false, 0x31, dst, dst);  // xor r32, r32
    } else if (v <= 0xffffffffull) {
      rex(false, 0, 0, dst);
      byte(0xB8 | (dst & 7));
      imm32(static_cast<uint32_t>(v));
    } else if (static_cast<int64_t>(v) == static_cast<int32_t>(v)) {
      rex(true, 0, 0, dst);
      byte(0xC7);
      byte(0xC0 | (dst & 7));
      imm32(static_cast<uint32_t>(v));
    } else {
      rex(true, 0, 0, dst);
      byte(0xB8 | (dst & 7));
      for (int i = 0; i < 8; i++) byte(static_cast<uint8_t>(v >> (8 * i)));
    }
  }
  // mov dst, imm64 in its 10-byte form whatever the value (patched later).
  void mov_imm64(Reg dst, uint64_t v) {
    rex(true, 0, 0, dst);
    byte(0xB8 | (dst & 7));
    for (int i = 0; i < 8; i++) byte(static_cast<uint8_t>(v >> (8 * i)));
  }
  void load64(Reg dst, Mem m) { rm(true, {0x8B}, dst, m); }
  void store64(Mem m, Reg src) { rm(true, {0x89}, src, m); }
  void store64_imm(Mem m, int32_t v) {  // mov qword [m], v (sign-extended)
    rm(true, {0xC7}, static_cast<Reg>(0), m);
    imm32(static_cast<uint32_t>(v));
  }
  // Loads of 1, 2, 4 or 8 bytes, sign- or zero-extended to 64 bits.
  void load(Reg dst, Mem m, unsigned size, bool sign) {
    switch (size) {
      case 1:
        rm(sign, {0x0F, static_cast<uint8_t>(sign ? 0xBE : 0xB6)}, dst, m);
        break;
      case 2:
        rm(sign, {0x0F, static_cast<uint8_t>(sign ? 0xBF : 0xB7)}, dst, m);
        break;
      case 4:
        if (sign)
          rm(true, {0x63}, dst, m);  // movsxd
        else
          rm(false, {0x8B}, dst, m);  // mov r32 zero-extends
        break;
      default:
        load64(dst, m);
        break;
    }
  }
  // Stores the low `size` bytes of src.
  void store(Mem m, Reg src, unsigned size) {
    switch (size) {
      case 1:
        rm(false, {0x88}, src, m, /*byte_reg=*/true);
        break;
      case 2:
        byte(0x66);
        rm(false, {0x89}, src, m);
        break;
      case 4:
        rm(false, {0x89}, src, m);
        break;
      default:
        store64(m, src);
        break;
    }
  }
  void movsxd(Reg dst, Reg src) { rr(true, 0x63, dst, src); }  // sign-extend low 32
  void movsx8(Reg dst, Reg src) { rr2(true, 0xBE, dst, src, true); }
  void movsx16(Reg dst, Reg src) { rr2(true, 0xBF, dst, src); }
  void movzx8(Reg dst, Reg src) { rr2(false, 0xB6, dst, src, true); }
  void movzx16(Reg dst, Reg src) { rr2(false, 0xB7, dst, src); }
  void lea(Reg dst, Mem m) { rm(true, {0x8D}, dst, m); }
  // lea dst, [base + index * scale] (scale 1, 2, 4, 8).
  void lea_scaled(Reg dst, Reg base, Reg index, unsigned scale) {
    const uint8_t ss = scale == 8 ? 3 : scale == 4 ? 2 : scale == 2 ? 1 : 0;
    rex(true, dst, index, base);
    byte(0x8D);
    if ((base & 7) == RBP) {
      byte(0x44 | ((dst & 7) << 3));  // mod 01, SIB, disp8 = 0
      byte(static_cast<uint8_t>((ss << 6) | ((index & 7) << 3) | (base & 7)));
      byte(0);
    } else {
      byte(0x04 | ((dst & 7) << 3));
      byte(static_cast<uint8_t>((ss << 6) | ((index & 7) << 3) | (base & 7)));
    }
  }

  // ---- arithmetic ----
  void alu(Alu op, Reg dst, Reg src) { rr(true, static_cast<uint8_t>((op << 3) | 1), src, dst); }
  void alu32(Alu op, Reg dst, Reg src) { rr(false, static_cast<uint8_t>((op << 3) | 1), src, dst); }
  void alu_mem(Alu op, Reg dst, Mem m) {  // dst op= [m]
    rm(true, {static_cast<uint8_t>((op << 3) | 3)}, dst, m);
  }
  void alu32_mem(Alu op, Reg dst, Mem m) {  // dst op= [m], 32-bit
    rm(false, {static_cast<uint8_t>((op << 3) | 3)}, dst, m);
  }
  // [m] op= imm32 (64-bit, or 32-bit when !w), always with a 4-byte immediate.
  void alu_mem_imm32(bool w, Alu op, Mem m, int32_t v) {
    rm(w, {0x81}, static_cast<Reg>(op), m);
    imm32(static_cast<uint32_t>(v));
  }
  void alu_imm(Alu op, Reg dst, int32_t v) { alu_imm_w(true, op, dst, v); }
  void alu32_imm(Alu op, Reg dst, int32_t v) { alu_imm_w(false, op, dst, v); }
  void test(Reg a, Reg b) { rr(true, 0x85, b, a); }
  void test32_imm(Reg a, uint32_t v) {
    rex(false, 0, 0, a);
    if (a == RAX) {
      byte(0xA9);
    } else {
      byte(0xF7);
      byte(0xC0 | (a & 7));
    }
    imm32(v);
  }
  void test_mem8_imm(Mem m, uint8_t v) {
    rm(false, {0xF6}, static_cast<Reg>(0), m);
    byte(v);
  }
  void shift_imm(Shift op, Reg r, unsigned n) { shift_imm_w(true, op, r, n); }
  void shift32_imm(Shift op, Reg r, unsigned n) { shift_imm_w(false, op, r, n); }
  void shift_cl(Shift op, Reg r) { grp(true, 0xD3, op, r); }
  void shift32_cl(Shift op, Reg r) { grp(false, 0xD3, op, r); }
  void imul(Reg dst, Reg src) { rr2(true, 0xAF, dst, src); }
  void imul32(Reg dst, Reg src) { rr2(false, 0xAF, dst, src); }
  void imul_mem(Reg dst, Mem m) { rm(true, {0x0F, 0xAF}, dst, m); }
  void imul32_mem(Reg dst, Mem m) { rm(false, {0x0F, 0xAF}, dst, m); }
  void neg32(Reg r) { grp(false, 0xF7, 3, r); }
  void mul1(Reg src) { grp(true, 0xF7, 4, src); }   // rdx:rax = rax * src (unsigned)
  void imul1(Reg src) { grp(true, 0xF7, 5, src); }  // rdx:rax = rax * src (signed)
  void div1(Reg src) { grp(true, 0xF7, 6, src); }
  void idiv1(Reg src) { grp(true, 0xF7, 7, src); }
  void div1_32(Reg src) { grp(false, 0xF7, 6, src); }
  void idiv1_32(Reg src) { grp(false, 0xF7, 7, src); }
  void cqo() {
    byte(0x48);
    byte(0x99);
  }
  void cdq() { byte(0x99); }
  void not_(Reg r) { grp(true, 0xF7, 2, r); }
  void neg(Reg r) { grp(true, 0xF7, 3, r); }
  void setcc(Cond c, Reg r) {  // low byte of r
    rex(false, 0, 0, r, true);
    byte(0x0F);
    byte(0x90 | c);
    byte(0xC0 | (r & 7));
  }
  void cmov(Cond c, Reg dst, Reg src) { rr2(true, static_cast<uint8_t>(0x40 | c), dst, src); }
  void bswap(Reg r) {
    rex(true, 0, 0, r);
    byte(0x0F);
    byte(0xC8 | (r & 7));
  }

  // ---- SSE and FMA (scalar) ----
  // XMM registers are numbered like the general ones (xmm0 = 0), passed as Reg.
  // `prefix` is the mandatory prefix (0x66, 0xF2, 0xF3, or 0 for none), emitted before REX.
  void sse_rm(uint8_t prefix, bool w, uint8_t opcode, Reg reg, Mem m) {
    if (prefix != 0) byte(prefix);
    rm(w, {0x0F, opcode}, reg, m);
  }
  void sse_rr(uint8_t prefix, bool w, uint8_t opcode, Reg reg, Reg rm_reg) {
    if (prefix != 0) byte(prefix);
    rr2(w, opcode, reg, rm_reg);
  }
  void movsd_load(Reg x, Mem m) { sse_rm(0xF2, false, 0x10, x, m); }
  void movsd_store(Mem m, Reg x) { sse_rm(0xF2, false, 0x11, x, m); }
  void movss_load(Reg x, Mem m) { sse_rm(0xF3, false, 0x10, x, m); }
  void movss_store(Mem m, Reg x) { sse_rm(0xF3, false, 0x11, x, m); }
  // Scalar arithmetic x op= [m]: opcode 0x58 add, 0x59 mul, 0x5C sub, 0x5E div, 0x51 sqrt
  // (x = sqrt [m]); `dbl` selects sd (F2) or ss (F3).
  void sse_arith(uint8_t opcode, bool dbl, Reg x, Mem m) {
    sse_rm(dbl ? 0xF2 : 0xF3, false, opcode, x, m);
  }
  void sse_arith_rr(uint8_t opcode, bool dbl, Reg x, Reg y) {
    sse_rr(dbl ? 0xF2 : 0xF3, false, opcode, x, y);
  }
  // ucomis[sd] x, y / comis[sd] x, [m] (quiet / signalling compares, EFLAGS).
  void ucomis(bool dbl, Reg x, Reg y) { sse_rr(dbl ? 0x66 : 0, false, 0x2E, x, y); }
  void comis_m(bool signalling, bool dbl, Reg x, Mem m) {
    sse_rm(dbl ? 0x66 : 0, false, signalling ? 0x2F : 0x2E, x, m);
  }
  // cvtsi2s[sd] x, r (64-bit source when w).
  void cvtsi2f(bool dbl, bool w, Reg x, Reg r) { sse_rr(dbl ? 0xF2 : 0xF3, w, 0x2A, x, r); }
  // cvt[t]s[sd]2si r, [m] (64-bit result when w; truncating when `trunc`).
  void cvtf2si(bool dbl, bool w, bool trunc, Reg r, Mem m) {
    sse_rm(dbl ? 0xF2 : 0xF3, w, trunc ? 0x2C : 0x2D, r, m);
  }
  // cvtss2sd x, [m] (to_double) or cvtsd2ss x, [m].
  void cvtf2f(bool to_double, Reg x, Mem m) { sse_rm(to_double ? 0xF3 : 0xF2, false, 0x5A, x, m); }
  void ldmxcsr(Mem m) { rm(false, {0x0F, 0xAE}, static_cast<Reg>(2), m); }
  void stmxcsr(Mem m) { rm(false, {0x0F, 0xAE}, static_cast<Reg>(3), m); }
  // VEX-encoded FMA3, 231 form: x = ±(y * [m]) ± x. `op` is the opcode byte: 0xB9 vfmadd,
  // 0xBB vfmsub, 0xBD vfnmadd, 0xBF vfnmsub (the 231 sd/ss forms); x, y < 8.
  void vfma231(uint8_t op, bool dbl, Reg x, Reg y, Mem m) {
    const unsigned index = m.has_index ? m.index : 0;
    byte(0xC4);
    byte(static_cast<uint8_t>(((x & 8) ? 0 : 0x80) | ((index & 8) ? 0 : 0x40) |
                              ((m.base & 8) ? 0 : 0x20) | 0x02));            // map 0F38
    byte(static_cast<uint8_t>((dbl ? 0x80 : 0) | ((~y & 15) << 3) | 0x01));  // W, vvvv, L0, pp=66
    byte(op);
    modrm_mem(x, m);
  }

  // ---- control ----
  void jcc(Cond c, Label& l) {
    byte(0x0F);
    byte(0x80 | c);
    rel32(l);
  }
  void jmp(Label& l) {
    byte(0xE9);
    rel32(l);
  }
  // jmp to an absolute address, the code being run from `base` (its first byte's address).
  void jmp_abs(uintptr_t target, uintptr_t base) {
    byte(0xE9);
    imm32(static_cast<uint32_t>(target - (base + buf_.size() + 4)));
  }
  // call to an absolute address, the code being run from `base` (as jmp_abs).
  void call_abs(uintptr_t target, uintptr_t base) {
    byte(0xE8);
    imm32(static_cast<uint32_t>(target - (base + buf_.size() + 4)));
  }
  void call(const void* fn) {  // via rax
    mov_imm(RAX, reinterpret_cast<uint64_t>(fn));
    byte(0xFF);
    byte(0xD0);
  }
  void ret() { byte(0xC3); }
  void jmp_reg(Reg r) {  // jmp r64
    rex(false, 0, 0, r);
    byte(0xFF);
    byte(static_cast<uint8_t>(0xE0 | (r & 7)));
  }
  void nop4() {  // nop dword [rax+0]
    byte(0x0F);
    byte(0x1F);
    byte(0x40);
    byte(0x00);
  }
  void push(Reg r) {
    rex(false, 0, 0, r);
    byte(0x50 | (r & 7));
  }
  void pop(Reg r) {
    rex(false, 0, 0, r);
    byte(0x58 | (r & 7));
  }

 private:
  void byte(uint8_t b) { buf_.push_back(b); }
  void imm32(uint32_t v) {
    for (int i = 0; i < 4; i++) byte(static_cast<uint8_t>(v >> (8 * i)));
  }
  void patch32(int at, int32_t v) { std::memcpy(buf_.data() + at, &v, 4); }
  void rel32(Label& l) {
    const int at = static_cast<int>(buf_.size());
    imm32(0);
    if (l.pos >= 0) {
      patch32(at, l.pos - (at + 4));
    } else {
      l.fixups.push_back(at);
    }
  }
  // REX prefix when needed (W, or an extended register, or a byte register sil/dil/spl/bpl).
  void rex(bool w, unsigned reg, unsigned index, unsigned base, bool byte_reg = false) {
    uint8_t r = static_cast<uint8_t>(0x40 | (w ? 8 : 0) | ((reg & 8) ? 4 : 0) |
                                     ((index & 8) ? 2 : 0) | ((base & 8) ? 1 : 0));
    const bool needs =
        r != 0x40 || (byte_reg && ((reg >= 4 && reg < 8) || (base >= 4 && base < 8)));
    if (needs) byte(r);
  }
  // op r/m(=rm_reg), reg
  void rr(bool w, uint8_t opcode, Reg reg, Reg rm_reg) {
    rex(w, reg, 0, rm_reg);
    byte(opcode);
    byte(0xC0 | ((reg & 7) << 3) | (rm_reg & 7));
  }
  // 0F-prefixed: op reg, r/m
  void rr2(bool w, uint8_t opcode, Reg reg, Reg rm_reg, bool byte_src = false) {
    rex(w, reg, 0, rm_reg, byte_src);
    byte(0x0F);
    byte(opcode);
    byte(0xC0 | ((reg & 7) << 3) | (rm_reg & 7));
  }
  void grp(bool w, uint8_t opcode, unsigned digit, Reg r) {
    rex(w, 0, 0, r);
    byte(opcode);
    byte(static_cast<uint8_t>(0xC0 | (digit << 3) | (r & 7)));
  }
  void alu_imm_w(bool w, Alu op, Reg dst, int32_t v) {
    rex(w, 0, 0, dst);
    if (v >= -128 && v <= 127) {
      byte(0x83);
      byte(static_cast<uint8_t>(0xC0 | (op << 3) | (dst & 7)));
      byte(static_cast<uint8_t>(v));
    } else {
      byte(0x81);
      byte(static_cast<uint8_t>(0xC0 | (op << 3) | (dst & 7)));
      imm32(static_cast<uint32_t>(v));
    }
  }
  void shift_imm_w(bool w, Shift op, Reg r, unsigned n) {
    rex(w, 0, 0, r);
    byte(0xC1);
    byte(static_cast<uint8_t>(0xC0 | (op << 3) | (r & 7)));
    byte(static_cast<uint8_t>(n));
  }
  // An instruction with a memory operand: [prefix bytes] REX opcode modrm [sib] disp.
  void rm(bool w, std::initializer_list<uint8_t> opcode, Reg reg, Mem m, bool byte_reg = false) {
    const unsigned index = m.has_index ? m.index : 0;
    rex(w, reg, index, m.base, false);
    if (byte_reg && reg >= 4 && reg < 8 && !(w || (reg & 8) || (index & 8) || (m.base & 8))) {
      byte(0x40);  // spl/bpl/sil/dil need a REX prefix
    }
    for (uint8_t b : opcode) byte(b);
    modrm_mem(reg, m);
  }
  // The ModRM (and SIB and displacement) of a memory operand.
  void modrm_mem(Reg reg, Mem m) {
    const unsigned index = m.has_index ? m.index : 0;
    const bool d8 = !m.wide && m.disp >= -128 && m.disp <= 127;
    const uint8_t mod = d8 ? 0x40 : 0x80;
    if (m.has_index) {
      byte(static_cast<uint8_t>(mod | ((reg & 7) << 3) | 4));
      byte(static_cast<uint8_t>(((index & 7) << 3) | (m.base & 7)));
    } else if ((m.base & 7) == RSP) {
      byte(static_cast<uint8_t>(mod | ((reg & 7) << 3) | 4));
      byte(0x24);
    } else {
      byte(static_cast<uint8_t>(mod | ((reg & 7) << 3) | (m.base & 7)));
    }
    if (d8) {
      byte(static_cast<uint8_t>(m.disp));
    } else {
      imm32(static_cast<uint32_t>(m.disp));
    }
  }

  std::vector<uint8_t> buf_;
};

}  // namespace nimbus::cpu::jit
