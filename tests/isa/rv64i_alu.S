# RV64I integer computational instructions: register-immediate, register-register,
# LUI/AUIPC and the *W forms, with overflow, sign-extension and x0 corner cases.
#include "test.h"
        TEST_BEGIN

        # ---- ADDI / ADD / SUB
        li a0, 5
        addi a1, a0, -6
        CHECK a1, -1
        addi a1, a0, 2047
        CHECK a1, 2052
        addi a1, a0, -2048
        CHECK a1, -2043
        li a0, 0x7fffffffffffffff
        addi a1, a0, 1                  # wraps, no trap
        CHECK a1, 0x8000000000000000
        li a2, 1
        add a1, a0, a2
        CHECK a1, 0x8000000000000000
        li a0, 0x8000000000000000
        sub a1, a0, a2
        CHECK a1, 0x7fffffffffffffff
        sub a1, zero, a2
        CHECK a1, -1
        add zero, a0, a2               # x0 stays zero
        CHECK zero, 0
        addi zero, zero, 55
        CHECK zero, 0
        li a0, 123
        add a0, a0, a0                  # rd == rs1 == rs2
        CHECK a0, 246

        # ---- logic
        li a0, 0xff00ff00ff00ff00
        li a1, 0x0ff00ff00ff00ff0
        and a2, a0, a1
        CHECK a2, 0x0f000f000f000f00
        or a2, a0, a1
        CHECK a2, 0xfff0fff0fff0fff0
        xor a2, a0, a1
        CHECK a2, 0xf0f0f0f0f0f0f0f0
        andi a2, a0, -1                 # sign-extended immediate
        CHECK a2, 0xff00ff00ff00ff00
        andi a2, a0, 0x7f0
        CHECK a2, 0x700
        ori a2, a0, -2048
        CHECK a2, 0xffffffffffffff00
        xori a2, a0, -1                 # NOT
        CHECK a2, 0x00ff00ff00ff00ff
        xori a2, a0, 0x0ff
        CHECK a2, 0xff00ff00ff00ffff

        # ---- SLT / SLTU / SLTI / SLTIU
        li a0, -1
        li a1, 1
        slt a2, a0, a1
        CHECK a2, 1
        sltu a2, a0, a1
        CHECK a2, 0
        slt a2, a1, a0
        CHECK a2, 0
        sltu a2, a1, a0
        CHECK a2, 1
        slt a2, a0, a0
        CHECK a2, 0
        slti a2, a0, 0
        CHECK a2, 1
        slti a2, a1, -2048
        CHECK a2, 0
        sltiu a2, a1, -1                # imm sign-extended then unsigned: 1 < 2^64-1
        CHECK a2, 1
        sltiu a2, zero, 1               # seqz
        CHECK a2, 1
        sltiu a2, a1, 1
        CHECK a2, 0
        sltu a2, zero, a1               # snez
        CHECK a2, 1
        li a0, 0x8000000000000000
        li a1, 0x7fffffffffffffff
        slt a2, a0, a1
        CHECK a2, 1
        sltu a2, a0, a1
        CHECK a2, 0

        # ---- shifts (64-bit: shamt from low 6 bits of rs2)
        li a0, 0x8000000000000001
        slli a1, a0, 1
        CHECK a1, 2
        slli a1, a0, 63
        CHECK a1, 0x8000000000000000
        srli a1, a0, 63
        CHECK a1, 1
        srai a1, a0, 63
        CHECK a1, -1
        srai a1, a0, 1
        CHECK a1, 0xc000000000000000
        srli a1, a0, 0
        CHECK a1, 0x8000000000000001
        li a2, 65                       # only low 6 bits used -> 1
        sll a1, a0, a2
        CHECK a1, 2
        srl a1, a0, a2
        CHECK a1, 0x4000000000000000
        sra a1, a0, a2
        CHECK a1, 0xc000000000000000
        li a2, -1                       # shamt 63
        sra a1, a0, a2
        CHECK a1, -1
        srl a1, a0, a2
        CHECK a1, 1
        sll a1, a0, a2
        CHECK a1, 0x8000000000000000

        # ---- LUI / AUIPC
        lui a0, 0x12345
        CHECK a0, 0x12345000
        lui a0, 0x80000                 # sign-extended to 64 bits
        CHECK a0, 0xffffffff80000000
        lui a0, 0xfffff
        CHECK a0, 0xfffffffffffff000
        lui zero, 1
        CHECK zero, 0
1:      auipc a0, 0
        la a1, 1b
        CHECKR a0, a1
2:      auipc a0, 1
        la a1, 2b
        sub a0, a0, a1
        CHECK a0, 0x1000
3:      auipc a0, 0xfffff               # -4096
        la a1, 3b
        sub a0, a0, a1
        CHECK a0, -4096

        # ---- ADDIW / ADDW / SUBW: 32-bit result sign-extended, upper input bits ignored
        li a0, 0x7fffffff
        addiw a1, a0, 1
        CHECK a1, 0xffffffff80000000
        li a0, 0xffffffff00000001       # upper bits ignored
        addiw a1, a0, 0                 # sext.w
        CHECK a1, 1
        li a0, 0x00000000ffffffff
        addiw a1, a0, 0
        CHECK a1, -1
        addiw a1, a0, 1
        CHECK a1, 0
        li a0, 0x123456789
        li a2, 0x100000000
        addw a1, a0, a2
        CHECK a1, 0x23456789
        li a0, 0x80000000
        li a2, 1
        subw a1, a0, a2
        CHECK a1, 0x7fffffff
        subw a1, zero, a0
        CHECK a1, 0xffffffff80000000
        addiw zero, a0, 1
        CHECK zero, 0

        # ---- SLLIW / SRLIW / SRAIW / SLLW / SRLW / SRAW
        li a0, 0xfffffffe80000001
        slliw a1, a0, 1
        CHECK a1, 2
        slliw a1, a0, 31
        CHECK a1, 0xffffffff80000000
        srliw a1, a0, 31
        CHECK a1, 1
        srliw a1, a0, 0                 # sign-extends bit 31
        CHECK a1, 0xffffffff80000001
        sraiw a1, a0, 31
        CHECK a1, -1
        sraiw a1, a0, 4
        CHECK a1, 0xfffffffff8000000
        srliw a1, a0, 4
        CHECK a1, 0x08000000
        li a2, 33                       # only low 5 bits -> 1
        sllw a1, a0, a2
        CHECK a1, 2
        srlw a1, a0, a2
        CHECK a1, 0x40000000
        sraw a1, a0, a2
        CHECK a1, 0xffffffffc0000000
        li a2, 31
        srlw a1, a0, a2
        CHECK a1, 1
        li a0, 0x0000000140000000
        sllw a1, a0, zero
        CHECK a1, 0x40000000
        li a2, 1
        sllw a1, a0, a2
        CHECK a1, 0xffffffff80000000

        # ---- NOP / HINT forms write nothing
        nop
        addi zero, a0, 1
        slli zero, a0, 3
        CHECK zero, 0

        PASS
        TEST_END
