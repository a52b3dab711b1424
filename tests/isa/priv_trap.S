# Privileged traps: ecall from M/S/U (causes 11/9/8), ebreak (cause 3, mtval = pc),
# illegal instruction mtval, mepc values, mret/sret privilege and interrupt-enable stacks
# (MPP/MPIE/MIE, SPP/SPIE/SIE), medeleg delegation of U-ecall to S (scause/sepc/stval,
# sstatus.SPP), no delegation of traps taken in M-mode, vectored mtvec for interrupts
# (exceptions still go to base), software-set SSIP/STIP interrupts, global enables per
# privilege, mideleg to S with stvec, and interrupt priority (SSI before STI).
#include "test.h"
        TEST_BEGIN
        # ---- ecall from M
        la a0, 2f
        EXPECT_TRAP 1f
2:      ecall
        j fail
1:      CHECK_TRAP CAUSE_ECALL_M
        CHECKR s9, a0
        CHECK s11, 0
        srli a1, s8, 11                  # MPP = M
        andi a1, a1, 3
        CHECK a1, 3
        # ---- ecall from S and U
        ENTER_MODE PRV_S, 3f
3:      la a0, 2f
        EXPECT_TRAP 1f
2:      ecall
        j fail
1:      CHECK_TRAP CAUSE_ECALL_S
        CHECKR s9, a0
        srli a1, s8, 11
        andi a1, a1, 3
        CHECK a1, PRV_S
        ENTER_MODE PRV_U, 3f
3:      la a0, 2f
        EXPECT_TRAP 1f
2:      ecall
        j fail
1:      CHECK_TRAP CAUSE_ECALL_U
        CHECKR s9, a0
        srli a1, s8, 11
        andi a1, a1, 3
        CHECK a1, PRV_U
        # ---- ebreak (32-bit), mtval = pc of the ebreak
        la a0, 2f
        EXPECT_TRAP 1f
        .option push
        .option norvc
2:      ebreak
        .option pop
        j fail
1:      CHECK_TRAP CAUSE_BREAKPOINT
        CHECKR s9, a0
#ifndef QEMU_DIFF /* QEMU 7.2 leaves mtval = 0 for ebreak */
        CHECKR s11, a0
#endif
        # ---- illegal instruction: mtval = instruction bits
        la a0, 2f
        EXPECT_TRAP 1f
2:      .word 0x0000000b                 # custom-0: not implemented
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        CHECKR s9, a0
        CHECK_TVAL_INSN 2b
        la a0, 2f
        EXPECT_TRAP 1f
2:      .word 0xfe000033 | (1 << 25) - (1 << 25)   # OP with funct7 = 0x7f: reserved
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        CHECK_TVAL_INSN 2b
        # mret / sret from U are illegal; sret from U too
        ENTER_MODE PRV_U, 3f
3:      EXPECT_TRAP 1f
2:      mret
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        CHECK_TVAL_INSN 2b
        ENTER_MODE PRV_U, 3f
3:      EXPECT_TRAP 1f
        sret
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        ENTER_MODE PRV_S, 3f
3:      EXPECT_TRAP 1f
        mret                             # mret from S: illegal
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL

        # ---- mret stack: MIE <- MPIE, MPIE <- 1, MPP <- U
        li t0, MSTATUS_MIE
        csrc mstatus, t0
        li t0, MSTATUS_MPIE | MSTATUS_MPP
        csrs mstatus, t0                 # MPP = M, MPIE = 1
        la t0, 3f
        csrw mepc, t0
        mret
3:      csrr a0, mstatus
        andi a1, a0, MSTATUS_MIE
        CHECK a1, MSTATUS_MIE
        andi a1, a0, MSTATUS_MPIE
        CHECK a1, MSTATUS_MPIE
        li t0, MSTATUS_MPP
        and a1, a0, t0
        CHECK a1, 0                      # MPP = U (least privileged)
        li t0, MSTATUS_MIE | MSTATUS_MPIE
        csrc mstatus, t0                 # MIE = 0, MPIE = 0
        li t0, MSTATUS_MPP
        csrs mstatus, t0
        la t0, 3f
        csrw mepc, t0
        mret
3:      csrr a0, mstatus
        andi a1, a0, MSTATUS_MIE | MSTATUS_MPIE
        CHECK a1, MSTATUS_MPIE
        # ---- sret stack: from S with SPP = U, SPIE = 1, SIE = 0 -> U, SIE = 1, SPIE = 1
        ENTER_MODE PRV_S, 3f
3:      li t0, MSTATUS_SPP | MSTATUS_SIE
        csrc sstatus, t0
        li t0, MSTATUS_SPIE
        csrs sstatus, t0
        la t0, 4f
        csrw sepc, t0
        sret
4:      EXPECT_TRAP 1f                   # now in U: ecall gives cause 8
        ecall
        j fail
1:      CHECK_TRAP CAUSE_ECALL_U
        andi a1, s8, MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP
        CHECK a1, MSTATUS_SIE | MSTATUS_SPIE
        li t0, MSTATUS_SIE
        csrc mstatus, t0
        # sret from S with SPP = S stays in S, SPIE = 0 -> SIE = 0
        ENTER_MODE PRV_S, 3f
3:      li t0, MSTATUS_SPP
        csrs sstatus, t0
        li t0, MSTATUS_SPIE
        csrc sstatus, t0
        la t0, 4f
        csrw sepc, t0
        sret
4:      EXPECT_TRAP 1f
        ecall
        j fail
1:      CHECK_TRAP CAUSE_ECALL_S
        andi a1, s8, MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP
        CHECK a1, MSTATUS_SPIE           # SPP <- U after sret, SPIE <- 1

        # ---- medeleg: ecall from U delegated to S
        la t0, s_handler
        csrw stvec, t0
        li t0, 1 << CAUSE_ECALL_U
        csrw medeleg, t0
        li a1, 0
        EXPECT_TRAP 1f                   # the S handler ends with an ecall to M
        ENTER_MODE PRV_U, 3f
3:      la a0, 2f
2:      ecall
        j fail
1:      CHECK_TRAP CAUSE_ECALL_S
        CHECK a1, CAUSE_ECALL_U          # scause
        CHECKR a2, a0                    # sepc
        CHECK a3, 0                      # stval
        andi a4, a4, MSTATUS_SPP
        CHECK a4, 0                      # sstatus.SPP = U
        # delegated exception from S stays... ecall from S is not delegated (bit 9 clear)
        # illegal delegated to S, but raised in M-mode: handled by M
        li t0, (1 << CAUSE_ECALL_U) | (1 << CAUSE_ILLEGAL)
        csrw medeleg, t0
        EXPECT_TRAP 1f
        .word 0x0000000b
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        # illegal in S with delegation: goes to S handler (scause 2, stval = insn)
        li a1, 0
        EXPECT_TRAP 1f
        ENTER_MODE PRV_S, 3f
3:      la a0, 2f
2:      .word 0x0000000b
        j fail
1:      CHECK_TRAP CAUSE_ECALL_S
        CHECK a1, CAUSE_ILLEGAL
        CHECKR a2, a0
        CHECK a3, 0x0000000b             # stval = instruction
        andi a4, a4, MSTATUS_SPP
        CHECK a4, MSTATUS_SPP            # came from S
        csrw medeleg, zero

        # ---- interrupts, vectored mtvec
        la t0, vec_table
        ori t0, t0, 1
        csrw mtvec, t0
        csrr a0, mtvec
        CHECKR a0, t0                    # vectored mode supported
        # exceptions go to the base in vectored mode
        EXPECT_TRAP 1f
        ecall
        j fail
1:      CHECK_TRAP CAUSE_ECALL_M
        # pending + enabled in mie, but mstatus.MIE = 0 in M-mode: not taken
        li t0, MIP_SSIP | MIP_STIP
        csrw mie, t0
        csrs mip, t0
        csrr a0, mip
        andi a0, a0, MIP_SSIP | MIP_STIP
        CHECK a0, MIP_SSIP | MIP_STIP
        nop
        # enable: SSI (priority above STI) first, then STI
        li a5, 0
        la a0, 2f
        EXPECT_TRAP 1f
        csrsi mstatus, MSTATUS_MIE
2:      j fail
1:      CHECK s10, INTR | 1
        CHECK a5, 1                      # came through vector entry 1
        CHECKR s9, a0                    # mepc = next instruction
        csrr a0, mip
        andi a0, a0, MIP_SSIP | MIP_STIP
        CHECK a0, MIP_STIP
        EXPECT_TRAP 1f
        csrsi mstatus, MSTATUS_MIE
        j fail
1:      CHECK s10, INTR | 5
        CHECK a5, 5
        # M-level handling of an S interrupt while in U-mode: taken even with MIE = 0
        li t0, MSTATUS_MIE
        csrc mstatus, t0
        li t0, MIP_SSIP
        csrs mip, t0
        EXPECT_TRAP 1f
        ENTER_MODE PRV_U, 3f
3:      j fail
1:      CHECK s10, INTR | 1
        srli a1, s8, 11
        andi a1, a1, 3
        CHECK a1, PRV_U
        # not enabled in mie: not taken
        csrw mie, zero
        li t0, MIP_SSIP
        csrs mip, t0
        csrsi mstatus, MSTATUS_MIE
        nop
        csrci mstatus, MSTATUS_MIE
        csrc mip, t0
        # ---- mideleg: SSI delegated to S; taken in U even with sstatus.SIE = 0
        la t0, s_handler
        csrw stvec, t0
        li t0, MIP_SSIP
        csrw mideleg, t0
        csrw mie, t0
        csrs mip, t0                     # pending, but M-mode never takes S interrupts
        csrsi mstatus, MSTATUS_MIE
        nop
        nop
        csrci mstatus, MSTATUS_MIE
        li a1, 0
        EXPECT_TRAP 1f
        ENTER_MODE PRV_U, 3f
3:      j fail
1:      CHECK_TRAP CAUSE_ECALL_S         # s_handler's ecall
        CHECK a1, INTR | 1
        csrr a0, sip
        andi a0, a0, MIP_SSIP
        CHECK a0, 0                      # s_handler cleared it through sip
        # delegated interrupt in S-mode with SIE = 0: not taken; with SIE = 1: taken
        li t0, MIP_SSIP
        csrs mip, t0
        li a1, 0
        EXPECT_TRAP 1f
        ENTER_MODE PRV_S, 3f
3:      nop
        nop
        CHECK a1, 0
        csrsi sstatus, MSTATUS_SIE
        j fail
1:      CHECK_TRAP CAUSE_ECALL_S
        CHECK a1, INTR | 1
        andi a4, a4, MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE
        CHECK a4, MSTATUS_SPP | MSTATUS_SPIE
        csrw mideleg, zero
        csrw mie, zero
        PASS

        # S-mode handler: copies scause/sepc/stval/sstatus to a1-a4, clears sip.SSIP,
        # returns to M through ecall.
        .align 2
s_handler:
        csrr a1, scause
        csrr a2, sepc
        csrr a3, stval
        csrr a4, sstatus
        li t6, MIP_SSIP
        csrc sip, t6
        ecall
        j fail

        .align 8
vec_table:
        .option push
        .option norvc
        j trap_handler                   # 0: exceptions
        j vec_ssi                        # 1: SSI
        j vec_bad
        j vec_bad                        # 3: MSI
        j vec_bad
        j vec_sti                        # 5: STI
        j vec_bad
        j vec_bad                        # 7: MTI
        j vec_bad
        j vec_bad                        # 9: SEI
        j vec_bad
        j vec_bad                        # 11: MEI
        .option pop
vec_ssi:
        li a5, 1
        li t6, MIP_SSIP
        csrc mip, t6
        j vec_common
vec_sti:
        li a5, 5
        li t6, MIP_STIP
        csrc mip, t6
vec_common:
        li t6, MSTATUS_MPIE              # resume with interrupts disabled
        csrc mstatus, t6
        j trap_handler
vec_bad:
        li a5, 99
        j trap_handler
        TEST_END
