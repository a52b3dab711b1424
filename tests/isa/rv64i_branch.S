# RV64I control transfer: every conditional branch taken and not taken (signed vs
# unsigned, equal operands, x0), backward branches, JAL/JALR link values, JALR
# clearing bit 0 of the target, rd == rs1 for JALR, x0 as link register.
#include "test.h"

/* BR_TAKEN op, a, b : branch must be taken. BR_NOT op, a, b : must not be taken. */
        .macro BR_TAKEN op, ra_, rb_
        NEXT_CHECK
        \op \ra_, \rb_, 91f
        j fail
91:
        .endm
        .macro BR_NOT op, ra_, rb_
        NEXT_CHECK
        \op \ra_, \rb_, fail
        .endm

        TEST_BEGIN
        li a0, -1
        li a1, 1
        li a2, 0x8000000000000000
        li a3, 0x7fffffffffffffff
        li a4, 1

        BR_TAKEN beq, a1, a4
        BR_NOT   beq, a0, a1
        BR_TAKEN beq, zero, zero
        BR_NOT   bne, a1, a4
        BR_TAKEN bne, a0, a1
        BR_NOT   bne, zero, zero

        BR_TAKEN blt, a0, a1
        BR_NOT   blt, a1, a0
        BR_NOT   blt, a1, a4            # equal
        BR_TAKEN blt, a2, a3
        BR_TAKEN blt, a0, zero
        BR_TAKEN bge, a1, a0
        BR_NOT   bge, a0, a1
        BR_TAKEN bge, a1, a4            # equal
        BR_TAKEN bge, a3, a2
        BR_TAKEN bge, zero, a0

        BR_NOT   bltu, a0, a1           # 0xfff.. > 1 unsigned
        BR_TAKEN bltu, a1, a0
        BR_NOT   bltu, a1, a4
        BR_NOT   bltu, a2, a3
        BR_TAKEN bltu, a3, a2
        BR_NOT   bltu, a1, zero
        BR_TAKEN bgeu, a0, a1
        BR_NOT   bgeu, a1, a0
        BR_TAKEN bgeu, a1, a4
        BR_TAKEN bgeu, a2, a3
        BR_TAKEN bgeu, a1, zero
        BR_NOT   bgeu, zero, a1

        # Backward branch loop: count down 10 times.
        li a5, 10
        li a6, 0
1:      addi a6, a6, 1
        addi a5, a5, -1
        bnez a5, 1b
        CHECK a6, 10

        # Same-register compare
        BR_TAKEN bge, a0, a0
        BR_NOT   blt, a0, a0
        BR_TAKEN bgeu, a2, a2

        # ---- JAL: link = pc + 4, forward and backward
        jal ra, 2f
3:      j fail
2:      la t0, 3b
        CHECKR ra, t0
        j 5f
4:      jal t1, 6f                      # backward target reached from 5
        j fail
5:      jal zero, 4b                    # j: no link
        j fail
6:      la t0, 4b + 4
        CHECKR t1, t0

        # ---- JALR
        la t0, 7f
        jalr ra, 0(t0)
8:      j fail
7:      la t1, 8b
        CHECKR ra, t1
        # positive and negative offsets
        la t0, 9f + 16
        jalr ra, -16(t0)
        j fail
9:      la t0, 10f - 12
        jalr zero, 12(t0)
        j fail
        # bit 0 of the target address is cleared
10:     la t0, 11f
        addi t0, t0, 1
        jalr ra, 0(t0)
        j fail
11:     la t0, 12f
        addi t0, t0, -1
        jalr t0, 2(t0)                  # rd == rs1: target (12f+1) & ~1 = 12f from the OLD t0
13:     j fail
12:     la t1, 13b
        CHECKR t0, t1
        # link register written even when rd is a different register than ra
        la t0, 14f
        jalr a7, t0
15:     j fail
14:     la t1, 15b
        CHECKR a7, t1
        PASS
        TEST_END
