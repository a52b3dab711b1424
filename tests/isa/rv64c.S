# RV64C: every RV64C instruction encoding (explicit c.* mnemonics under .option rvc),
# link values of c.jalr (pc + 2), c.ebreak, and reserved encodings raising illegal
# instruction with mtval = the 16-bit instruction: 0x0000, c.addi4spn nzuimm=0,
# c.lui nzimm=0, c.addi16sp nzimm=0, c.addiw rd=0, c.lwsp/c.ldsp rd=0, c.jr rs1=0.
#include "test.h"

        .macro ILLEGAL16 enc
        EXPECT_TRAP 81f
80:     .half \enc
        j fail
81:     CHECK_TRAP CAUSE_ILLEGAL
        CHECK_TVAL_INSN16 80b, a1
        CHECKR s9, a0                    # mepc = the instruction (a0 loaded with 80b)
        .endm

        TEST_BEGIN
        .option push
        .option rvc
        la s0, cbuf
        addi sp, sp, -256

        # c.addi4spn
        c.addi4spn a0, sp, 8
        addi a1, sp, 8
        CHECKR a0, a1
        c.addi4spn a1, sp, 1020
        addi a2, sp, 1020
        CHECKR a1, a2
        # c.li / c.addi / c.addiw / c.lui / c.nop
        c.li a0, -32
        CHECK a0, -32
        c.li a0, 31
        CHECK a0, 31
        c.addi a0, -1
        CHECK a0, 30
        c.addi a0, 31
        CHECK a0, 61
        c.nop
        li a0, 0x7fffffff
        c.addiw a0, 1
        CHECK a0, 0xffffffff80000000
        li a0, 0x100000005
        c.addiw a0, 0                    # sext.w
        CHECK a0, 5
        c.lui a0, 1
        CHECK a0, 0x1000
        c.lui a0, 0xfffe0                # nzimm = -32 << 12
        CHECK a0, 0xfffffffffffe0000
        c.lui a0, 0x1f
        CHECK a0, 0x1f000
        # c.addi16sp
        mv s1, sp
        c.addi16sp sp, -512
        addi a1, s1, -512
        CHECKR sp, a1
        c.addi16sp sp, 496
        addi a1, s1, -16
        CHECKR sp, a1
        c.addi16sp sp, 16
        CHECKR sp, s1
        # c.lw / c.ld / c.sw / c.sd
        li a0, 0x8765432112345678
        c.sd a0, 0(s0)
        c.ld a1, 0(s0)
        CHECKR a0, a1
        c.lw a1, 4(s0)
        CHECK a1, 0xffffffff87654321
        c.sw a0, 124(s0)
        lwu a2, 124(s0)
        CHECK a2, 0x12345678
        c.sd a0, 248(s0)
        ld a2, 248(s0)
        CHECKR a2, a0
        # c.fld / c.fsd
        li a0, 0x400921fb54442d18
        sd a0, 16(s0)
        c.fld fa0, 16(s0)
        CHECKF fa0, 0x400921fb54442d18
        c.fsd fa0, 24(s0)
        ld a1, 24(s0)
        CHECKR a1, a0
        # sp-relative: c.lwsp / c.ldsp / c.swsp / c.sdsp / c.fldsp / c.fsdsp
        li a0, 0xdeadbeefcafef00d
        c.sdsp a0, 8(sp)
        c.ldsp a1, 8(sp)
        CHECKR a0, a1
        ld a1, 8(sp)
        CHECKR a0, a1
        c.lwsp a2, 12(sp)
        CHECK a2, 0xffffffffdeadbeef
        c.swsp a0, 252(sp)
        lwu a2, 252(sp)
        CHECK a2, 0xcafef00d
        c.sdsp a0, 248(sp)
        c.fldsp fa1, 248(sp)
        CHECKF fa1, 0xdeadbeefcafef00d
        c.fsdsp fa1, 16(sp)
        ld a2, 16(sp)
        CHECKR a2, a0
        # c.srli / c.srai / c.andi / c.slli
        li a0, 0x8000000000000010
        c.srli a0, 4
        CHECK a0, 0x0800000000000001
        li a0, 0x8000000000000010
        c.srai a0, 63
        CHECK a0, -1
        li a0, 0x8000000000000010
        c.srai a0, 32
        CHECK a0, 0xffffffff80000000
        li a0, 0xff
        c.andi a0, -16
        CHECK a0, 0xf0
        li a0, 0xff
        c.andi a0, 5
        CHECK a0, 5
        li a0, 3
        c.slli a0, 62
        CHECK a0, 0xc000000000000000
        # c.sub / c.xor / c.or / c.and / c.subw / c.addw
        li a0, 10
        li a1, 13
        c.sub a0, a1
        CHECK a0, -3
        li a0, 0xf0f0
        c.xor a0, a1
        CHECK a0, 0xf0fd
        c.or a0, a1
        CHECK a0, 0xf0fd
        c.and a0, a1
        CHECK a0, 13
        li a0, 0x80000000
        li a1, 1
        c.subw a0, a1
        CHECK a0, 0x7fffffff
        c.addw a0, a1
        CHECK a0, 0xffffffff80000000
        # c.mv / c.add
        li a2, 0x1234
        c.mv a3, a2
        CHECK a3, 0x1234
        c.add a3, a2
        CHECK a3, 0x2468
        c.mv t0, a3
        CHECKR t0, a3
        # c.j / c.beqz / c.bnez
        c.j 1f
        j fail
1:      li a0, 0
        c.beqz a0, 1f
        j fail
1:      c.bnez a0, fail_c
        li a0, -5
        c.bnez a0, 1f
        j fail
1:      c.beqz a0, fail_c
        # backward c.bnez loop
        li a0, 5
        li a1, 0
2:      c.addi a1, 2
        c.addi a0, -1
        c.bnez a0, 2b
        CHECK a1, 10
        # c.jr / c.jalr (link = pc + 2)
        la t0, 1f
        c.jr t0
        j fail
1:      la t1, 1f
        c.jalr t1
3:      j fail
1:      la t2, 3b
        CHECKR ra, t2
        # c.jalr with rs1 == ra: target uses the old value
        la ra, 1f
        c.jalr ra
4:      j fail
1:      la t2, 4b
        CHECKR ra, t2
        # c.ebreak: breakpoint, mepc = address of c.ebreak, mtval = pc (Nimbus)
        la a0, 5f
        EXPECT_TRAP 1f
5:      c.ebreak
        j fail
1:      CHECK_TRAP CAUSE_BREAKPOINT
        CHECKR s9, a0
#ifndef QEMU_DIFF /* QEMU 7.2 leaves mtval = 0 for ebreak */
        CHECKR s11, a0
#endif
        addi sp, sp, 256

        # ---- reserved / illegal encodings
        la a0, 80f
        ILLEGAL16 0x0000                 # defined illegal instruction
        la a0, 80f
        ILLEGAL16 0x0004                 # c.addi4spn x9, sp, 0 (nzuimm = 0)
        la a0, 80f
        ILLEGAL16 0x6501                 # c.lui a0, 0
        la a0, 80f
        ILLEGAL16 0x6101                 # c.addi16sp sp, 0
        la a0, 80f
        ILLEGAL16 0x2005                 # c.addiw x0, 1
        la a0, 80f
        ILLEGAL16 0x4002                 # c.lwsp x0, 0(sp)
        la a0, 80f
        ILLEGAL16 0x6002                 # c.ldsp x0, 0(sp)
        la a0, 80f
        ILLEGAL16 0x8002                 # c.jr x0
        .option pop
        PASS
fail_c: j fail
        TEST_END
        .data
        .align 3
cbuf:   .zero 256
