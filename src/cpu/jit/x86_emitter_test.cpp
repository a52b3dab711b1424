// The assembler's encodings, checked against what GNU as produces for the same
// instructions (objdump -d of a file assembled with `as --64`). One difference by design:
// the emitter gives every memory operand a displacement byte, so [rax] and [rsp] come out
// as the equivalent [rax+0] and [rsp+0] forms (mod 01), one byte longer than as's.
#include "cpu/jit/x86_emitter.h"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

namespace nimbus::cpu::jit {
namespace {

std::vector<uint8_t> enc(const std::function<void(Emitter&)>& f) {
  Emitter e;
  f(e);
  return e.code();
}

using Bytes = std::vector<uint8_t>;

TEST(X86Emitter, MovesAndLoads) {
  EXPECT_EQ(enc([](Emitter& e) { e.mov(RAX, R12); }), (Bytes{0x4c, 0x89, 0xe0}));  // mov rax,r12
  EXPECT_EQ(enc([](Emitter& e) { e.mov(R9, RSI); }), (Bytes{0x49, 0x89, 0xf1}));   // mov r9,rsi
  EXPECT_EQ(enc([](Emitter& e) { e.mov_imm(RAX, 0); }), (Bytes{0x31, 0xc0}));      // xor eax,eax
  EXPECT_EQ(enc([](Emitter& e) { e.mov_imm(R8, 5); }), (Bytes{0x41, 0xb8, 5, 0, 0, 0}));
  // mov rcx,-2 (sign-extended imm32)
  EXPECT_EQ(enc([](Emitter& e) { e.mov_imm(RCX, ~1ull); }),
            (Bytes{0x48, 0xc7, 0xc1, 0xfe, 0xff, 0xff, 0xff}));
  // movabs rdx,0x123456789
  EXPECT_EQ(enc([](Emitter& e) { e.mov_imm(RDX, 0x123456789ull); }),
            (Bytes{0x48, 0xba, 0x89, 0x67, 0x45, 0x23, 0x01, 0, 0, 0}));
  // mov r13,[rbp+0x10]; mov [rsp],rsi; mov rax,[r12+0x200]
  EXPECT_EQ(enc([](Emitter& e) { e.load64(R13, mem(RBP, 0x10)); }),
            (Bytes{0x4c, 0x8b, 0x6d, 0x10}));
  EXPECT_EQ(enc([](Emitter& e) { e.store64(mem(RSP), RSI); }),
            (Bytes{0x48, 0x89, 0x74, 0x24, 0x00}));
  EXPECT_EQ(enc([](Emitter& e) { e.load64(RAX, mem(R12, 0x200)); }),
            (Bytes{0x49, 0x8b, 0x84, 0x24, 0x00, 0x02, 0x00, 0x00}));
  // mov qword [rsp+0x28],0x800; mov qword [rsp+0x98],-4096
  EXPECT_EQ(enc([](Emitter& e) { e.store64_imm(mem(RSP, 0x28), 0x800); }),
            (Bytes{0x48, 0xc7, 0x44, 0x24, 0x28, 0x00, 0x08, 0x00, 0x00}));
  EXPECT_EQ(enc([](Emitter& e) { e.store64_imm(mem(RSP, 0x98), -4096); }),
            (Bytes{0x48, 0xc7, 0x84, 0x24, 0x98, 0x00, 0x00, 0x00, 0x00, 0xf0, 0xff, 0xff}));
  // movsx rdx,byte [rax]; movzx edx,word [rax]; movsxd rsi,[rax]; mov r8d,[rax]
  EXPECT_EQ(enc([](Emitter& e) { e.load(RDX, mem(RAX), 1, true); }),
            (Bytes{0x48, 0x0f, 0xbe, 0x50, 0x00}));
  EXPECT_EQ(enc([](Emitter& e) { e.load(RDX, mem(RAX), 2, false); }),
            (Bytes{0x0f, 0xb7, 0x50, 0x00}));
  EXPECT_EQ(enc([](Emitter& e) { e.load(RSI, mem(RAX), 4, true); }),
            (Bytes{0x48, 0x63, 0x70, 0x00}));
  EXPECT_EQ(enc([](Emitter& e) { e.load(R8, mem(RAX), 4, false); }),
            (Bytes{0x44, 0x8b, 0x40, 0x00}));
  // mov [rax],sil (needs a REX prefix); mov [rax],dx; mov [rax],r9d
  EXPECT_EQ(enc([](Emitter& e) { e.store(mem(RAX), RSI, 1); }), (Bytes{0x40, 0x88, 0x70, 0x00}));
  EXPECT_EQ(enc([](Emitter& e) { e.store(mem(RAX), RDX, 2); }), (Bytes{0x66, 0x89, 0x50, 0x00}));
  EXPECT_EQ(enc([](Emitter& e) { e.store(mem(RAX), R9, 4); }), (Bytes{0x44, 0x89, 0x48, 0x00}));
  // xor rdx,[rbp+rcx*1+0x300]
  EXPECT_EQ(enc([](Emitter& e) { e.alu_mem(kXor, RDX, mem_idx(RBP, RCX, 0x300)); }),
            (Bytes{0x48, 0x33, 0x94, 0x0d, 0x00, 0x03, 0x00, 0x00}));
}

TEST(X86Emitter, Arithmetic) {
  EXPECT_EQ(enc([](Emitter& e) { e.alu(kAdd, RAX, R13); }),
            (Bytes{0x4c, 0x01, 0xe8}));  // add rax,r13
  EXPECT_EQ(enc([](Emitter& e) { e.alu(kCmp, R10, RCX); }),
            (Bytes{0x49, 0x39, 0xca}));                                              // cmp r10,rcx
  EXPECT_EQ(enc([](Emitter& e) { e.alu32(kSub, RAX, RCX); }), (Bytes{0x29, 0xc8}));  // sub eax,ecx
  EXPECT_EQ(enc([](Emitter& e) { e.alu_imm(kAnd, RAX, -2); }), (Bytes{0x48, 0x83, 0xe0, 0xfe}));
  EXPECT_EQ(enc([](Emitter& e) { e.alu_imm(kAdd, R14, 0x800); }),
            (Bytes{0x49, 0x81, 0xc6, 0x00, 0x08, 0x00, 0x00}));
  EXPECT_EQ(enc([](Emitter& e) { e.shift_imm(kSar, RDI, 63); }), (Bytes{0x48, 0xc1, 0xff, 0x3f}));
  EXPECT_EQ(enc([](Emitter& e) { e.shift32_cl(kShl, R8); }),
            (Bytes{0x41, 0xd3, 0xe0}));  // shl r8d,cl
  EXPECT_EQ(enc([](Emitter& e) { e.imul(RAX, R15); }),
            (Bytes{0x49, 0x0f, 0xaf, 0xc7}));                                      // imul rax,r15
  EXPECT_EQ(enc([](Emitter& e) { e.mul1(RCX); }), (Bytes{0x48, 0xf7, 0xe1}));      // mul rcx
  EXPECT_EQ(enc([](Emitter& e) { e.idiv1_32(R11); }), (Bytes{0x41, 0xf7, 0xfb}));  // idiv r11d
  EXPECT_EQ(enc([](Emitter& e) { e.movsxd(RAX, RAX); }),
            (Bytes{0x48, 0x63, 0xc0}));  // movsxd rax,eax
  EXPECT_EQ(enc([](Emitter& e) { e.setcc(kL, RSI); }),
            (Bytes{0x40, 0x0f, 0x9c, 0xc6}));  // setl sil
  EXPECT_EQ(enc([](Emitter& e) { e.movzx8(RDX, RDX); }),
            (Bytes{0x0f, 0xb6, 0xd2}));  // movzx edx,dl
  EXPECT_EQ(enc([](Emitter& e) { e.cmov(kB, RAX, R9); }),
            (Bytes{0x49, 0x0f, 0x42, 0xc1}));  // cmovb rax,r9
  // lea rax,[r13+r12*4]
  EXPECT_EQ(enc([](Emitter& e) { e.lea_scaled(RAX, R13, R12, 4); }),
            (Bytes{0x4b, 0x8d, 0x44, 0xa5, 0x00}));
  EXPECT_EQ(enc([](Emitter& e) { e.bswap(R12); }), (Bytes{0x49, 0x0f, 0xcc}));
  EXPECT_EQ(enc([](Emitter& e) { e.push(R15); }), (Bytes{0x41, 0x57}));
  EXPECT_EQ(enc([](Emitter& e) { e.pop(RBX); }), (Bytes{0x5b}));
}

// The fixed-size forms chained exits are patched through (their fields stay where the
// compiler's stub layout expects them whatever the values).
TEST(X86Emitter, FixedSizeFormsForPatchedCode) {
  // lea rax,[rbx+0x7fffffff]; lea rax,[rbx+0x9] with a 32-bit displacement all the same
  EXPECT_EQ(enc([](Emitter& e) { e.lea(RAX, mem_wide(RBX, 0x7fffffff)); }),
            (Bytes{0x48, 0x8d, 0x83, 0xff, 0xff, 0xff, 0x7f}));
  EXPECT_EQ(enc([](Emitter& e) { e.lea(RBX, mem_wide(RBX, 9)); }),
            (Bytes{0x48, 0x8d, 0x9b, 0x09, 0x00, 0x00, 0x00}));
  // cmp rax,[rbp+0x100]
  EXPECT_EQ(enc([](Emitter& e) { e.alu_mem(kCmp, RAX, mem_wide(RBP, 0x100)); }),
            (Bytes{0x48, 0x3b, 0x85, 0x00, 0x01, 0x00, 0x00}));
  // movabs rcx,0x123456789abcdef0; movabs rdx,0x1 (still 10 bytes)
  EXPECT_EQ(enc([](Emitter& e) { e.mov_imm64(RCX, 0x123456789abcdef0ull); }),
            (Bytes{0x48, 0xb9, 0xf0, 0xde, 0xbc, 0x9a, 0x78, 0x56, 0x34, 0x12}));
  EXPECT_EQ(enc([](Emitter& e) { e.mov_imm64(RDX, 1); }),
            (Bytes{0x48, 0xba, 0x01, 0, 0, 0, 0, 0, 0, 0}));
  // cmp dword [rcx+0],0x12345678; add qword [rsp+0],0x1a (imm32 even when it fits a byte)
  EXPECT_EQ(enc([](Emitter& e) { e.alu_mem_imm32(false, kCmp, mem(RCX), 0x12345678); }),
            (Bytes{0x81, 0x79, 0x00, 0x78, 0x56, 0x34, 0x12}));
  EXPECT_EQ(enc([](Emitter& e) { e.alu_mem_imm32(true, kAdd, mem(RSP), 0x1a); }),
            (Bytes{0x48, 0x81, 0x44, 0x24, 0x00, 0x1a, 0x00, 0x00, 0x00}));
  EXPECT_EQ(enc([](Emitter& e) { e.nop4(); }), (Bytes{0x0f, 0x1f, 0x40, 0x00}));  // nop [rax+0]
}

TEST(X86Emitter, LabelsResolveForwardAndBackward) {
  Emitter e;
  Label back, fwd;
  e.bind(back);
  e.jcc(kNE, fwd);  // 0F 85 rel32
  e.jmp(back);      // E9 rel32
  e.bind(fwd);
  const Bytes& c = e.code();
  ASSERT_EQ(c.size(), 11u);
  EXPECT_EQ(c[0], 0x0f);
  EXPECT_EQ(c[1], 0x85);
  EXPECT_EQ(c[2], 5);  // over the 5-byte jmp
  EXPECT_EQ(c[6], 0xe9);
  EXPECT_EQ((Bytes{c[7], c[8], c[9], c[10]}), (Bytes{0xf5, 0xff, 0xff, 0xff}));  // -11
}

TEST(X86Emitter, ScalarFloatingPoint) {
  const Reg X0 = RAX, X1 = RCX;  // xmm0, xmm1
  EXPECT_EQ(enc([&](Emitter& e) { e.movsd_load(X0, mem(RBP, 0x10)); }),
            (Bytes{0xf2, 0x0f, 0x10, 0x45, 0x10}));
  EXPECT_EQ(enc([&](Emitter& e) { e.movsd_store(mem(RBP, 0x18), X1); }),
            (Bytes{0xf2, 0x0f, 0x11, 0x4d, 0x18}));
  EXPECT_EQ(enc([&](Emitter& e) { e.movss_load(X0, mem(RBP, 0x10)); }),
            (Bytes{0xf3, 0x0f, 0x10, 0x45, 0x10}));
  EXPECT_EQ(enc([&](Emitter& e) { e.sse_arith(0x58, true, X0, mem(RBP, 0x20)); }),  // addsd
            (Bytes{0xf2, 0x0f, 0x58, 0x45, 0x20}));
  EXPECT_EQ(enc([&](Emitter& e) { e.sse_arith(0x51, false, X0, mem(RBP, 0x20)); }),  // sqrtss
            (Bytes{0xf3, 0x0f, 0x51, 0x45, 0x20}));
  EXPECT_EQ(enc([&](Emitter& e) { e.ucomis(true, X0, X0); }), (Bytes{0x66, 0x0f, 0x2e, 0xc0}));
  EXPECT_EQ(enc([&](Emitter& e) { e.ucomis(false, X1, X1); }), (Bytes{0x0f, 0x2e, 0xc9}));
  EXPECT_EQ(enc([&](Emitter& e) { e.comis_m(true, true, X0, mem(RBP, 0x28)); }),  // comisd
            (Bytes{0x66, 0x0f, 0x2f, 0x45, 0x28}));
  EXPECT_EQ(enc([&](Emitter& e) { e.cvtsi2f(true, true, X0, R12); }),  // cvtsi2sd xmm0, r12
            (Bytes{0xf2, 0x49, 0x0f, 0x2a, 0xc4}));
  EXPECT_EQ(enc([&](Emitter& e) { e.cvtsi2f(false, false, X0, RDX); }),  // cvtsi2ss xmm0, edx
            (Bytes{0xf3, 0x0f, 0x2a, 0xc2}));
  EXPECT_EQ(enc([&](Emitter& e) { e.cvtf2si(true, true, true, RAX, mem(RBP, 0x30)); }),
            (Bytes{0xf2, 0x48, 0x0f, 0x2c, 0x45, 0x30}));  // cvttsd2si rax, [rbp+0x30]
  EXPECT_EQ(enc([&](Emitter& e) { e.cvtf2si(false, false, false, RAX, mem(RBP, 0x30)); }),
            (Bytes{0xf3, 0x0f, 0x2d, 0x45, 0x30}));  // cvtss2si eax, [rbp+0x30]
  EXPECT_EQ(enc([&](Emitter& e) { e.cvtf2f(true, X0, mem(RBP, 0x30)); }),  // cvtss2sd
            (Bytes{0xf3, 0x0f, 0x5a, 0x45, 0x30}));
  EXPECT_EQ(enc([&](Emitter& e) { e.ldmxcsr(mem(RBP, 0x40)); }), (Bytes{0x0f, 0xae, 0x55, 0x40}));
  EXPECT_EQ(enc([&](Emitter& e) { e.stmxcsr(mem(RBP, 0x40)); }), (Bytes{0x0f, 0xae, 0x5d, 0x40}));
  // vfmadd231sd xmm1, xmm0, [rbp+0x48]; vfnmsub231ss xmm1, xmm0, [rbp+0x48]
  EXPECT_EQ(enc([&](Emitter& e) { e.vfma231(0xB9, true, X1, X0, mem(RBP, 0x48)); }),
            (Bytes{0xc4, 0xe2, 0xf9, 0xb9, 0x4d, 0x48}));
  EXPECT_EQ(enc([&](Emitter& e) { e.vfma231(0xBF, false, X1, X0, mem(RBP, 0x48)); }),
            (Bytes{0xc4, 0xe2, 0x79, 0xbf, 0x4d, 0x48}));
}

}  // namespace
}  // namespace nimbus::cpu::jit
