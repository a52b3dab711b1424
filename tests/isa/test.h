/* test.h - assembler framework for the Nimbus ISA tests.
 *
 * Conventions
 *   - Every test starts with TEST_BEGIN and ends with TEST_END (after PASS).
 *   - gp (x3) holds the number of the current check. CHECK* macros number their checks
 *     automatically 1, 2, 3, ... (skipping multiples of 256 so the low byte of the exit
 *     status is never 0). A failing check ends the run through tohost with exit
 *     status = check number.
 *   - An unexpected trap ends the run with status 0x10000 + gp (the low 8 bits are the
 *     number of the last check started); mcause/mepc/mtval are left in s10/s9/s11.
 *   - Reserved registers: gp, t6 (macro scratch), s8..s11 (trap results). Tests must not
 *     keep live values in them across CHECKs or traps.
 *   - Expected traps: EXPECT_TRAP label arms the M-mode handler; the next trap (from any
 *     privilege mode) records s10 = mcause, s11 = mtval, s9 = mepc, s8 = mstatus, and
 *     resumes in M-mode at label with mstatus.MIE = 0 (MPRV untouched).
 *     If no trap happens, execution falls through the instruction after the trapping one:
 *     put `j fail` (or NO_TRAP) there.
 */
#ifndef NIMBUS_TEST_H
#define NIMBUS_TEST_H

#define MSTATUS_SIE   (1 << 1)
#define MSTATUS_MIE   (1 << 3)
#define MSTATUS_SPIE  (1 << 5)
#define MSTATUS_MPIE  (1 << 7)
#define MSTATUS_SPP   (1 << 8)
#define MSTATUS_MPP   (3 << 11)
#define MSTATUS_FS    (3 << 13)
#define MSTATUS_MPRV  (1 << 17)
#define MSTATUS_SUM   (1 << 18)
#define MSTATUS_MXR   (1 << 19)
#define MSTATUS_TVM   (1 << 20)
#define MSTATUS_TW    (1 << 21)
#define MSTATUS_TSR   (1 << 22)

#define MIP_SSIP (1 << 1)
#define MIP_MSIP (1 << 3)
#define MIP_STIP (1 << 5)
#define MIP_MTIP (1 << 7)
#define MIP_SEIP (1 << 9)
#define MIP_MEIP (1 << 11)

#define CAUSE_MISALIGNED_FETCH 0
#define CAUSE_FETCH_ACCESS     1
#define CAUSE_ILLEGAL          2
#define CAUSE_BREAKPOINT       3
#define CAUSE_MISALIGNED_LOAD  4
#define CAUSE_LOAD_ACCESS      5
#define CAUSE_MISALIGNED_STORE 6
#define CAUSE_STORE_ACCESS     7
#define CAUSE_ECALL_U          8
#define CAUSE_ECALL_S          9
#define CAUSE_ECALL_M          11
#define CAUSE_FETCH_PAGE       12
#define CAUSE_LOAD_PAGE        13
#define CAUSE_STORE_PAGE       15
#define INTR (1 << 63)

#define PRV_U 0
#define PRV_S 1
#define PRV_M 3

/* ------------------------------------------------------------------ */
        .set __checknum, 0

        .macro NEXT_CHECK
        .set __checknum, __checknum + 1
        .if (__checknum % 256) == 0
        .set __checknum, __checknum + 1
        .endif
        li gp, __checknum
        .endm

/* CHECK reg, value : fail unless reg == value (64-bit). */
        .macro CHECK reg, val
        NEXT_CHECK
        li t6, \val
        bne \reg, t6, fail
        .endm

/* CHECKR reg1, reg2 : fail unless the two registers are equal. */
        .macro CHECKR r1, r2
        NEXT_CHECK
        bne \r1, \r2, fail
        .endm

/* CHECKF freg, bits : compare the raw 64-bit content of an FP register. */
        .macro CHECKF freg, val
        NEXT_CHECK
        fmv.x.d t6, \freg
        addi sp, sp, -8
        sd t5, 0(sp)
        li t5, \val
        bne t5, t6, 88f
        ld t5, 0(sp)
        addi sp, sp, 8
        j 89f
88:     j fail
89:
        .endm

/* CHECKFS freg, bits : compare a single-precision register, including its NaN box. */
        .macro CHECKFS freg, val
        CHECKF \freg, (0xffffffff00000000 | (\val))
        .endm

/* CHECK_FLAGS value : fflags must equal value; fflags is cleared afterwards. */
        .macro CHECK_FLAGS val
        NEXT_CHECK
        csrrw t6, fflags, zero
        addi t6, t6, -(\val)
        bnez t6, fail
        .endm

/* CHECK_TRAP cause : the last expected trap had mcause == cause. */
        .macro CHECK_TRAP cause
        CHECK s10, \cause
        .endm

/* CHECK_TRAP_TVAL cause, tval */
        .macro CHECK_TRAP_TVAL cause, tval
        CHECK s10, \cause
        CHECK s11, \tval
        .endm

/* CHECK_TVAL_INSN label[, scratch] : mtval of the last trap == the 32-bit instruction at
 * label (illegal-instruction mtval). CHECK_TVAL_INSN16 : same for a 16-bit instruction. */
        .macro CHECK_TVAL_INSN label, scratch=a0
        lwu \scratch, \label
        CHECKR s11, \scratch
        .endm
        .macro CHECK_TVAL_INSN16 label, scratch=a0
        lhu \scratch, \label
        CHECKR s11, \scratch
        .endm

        .macro EXPECT_TRAP label
        la t6, \label
        sd t6, trap_resume, s8
        li s10, -1
        .endm

/* Enter privilege mode `mode` (PRV_U / PRV_S / PRV_M) at label via mret. */
        .macro ENTER_MODE mode, label
        li t6, MSTATUS_MPP
        csrc mstatus, t6
        li t6, (\mode) << 11
        csrs mstatus, t6
        la t6, \label
        csrw mepc, t6
        mret
        .endm

/* From S or U mode: return to M-mode at label through an expected ecall. */
        .macro BACK_TO_M label
        EXPECT_TRAP \label
        ecall
        j fail
        .endm

        .macro PASS
        li t6, 1
        j write_tohost
        .endm

        .macro FAIL code
        li gp, \code
        j fail
        .endm

        .macro TEST_BEGIN
        .section .text.init, "ax", @progbits
        .globl _start
        .option push
        .option norvc
_start:
        j reset
        .align 2
        /* Default M-mode trap handler (direct mode). */
trap_handler:
        csrr s10, mcause
        csrr s11, mtval
        csrr s9, mepc
        csrr s8, mstatus
        ld t6, trap_resume
        beqz t6, unexpected_trap
        csrw mepc, t6
        sd zero, trap_resume, t6
        li t6, MSTATUS_MPP
        csrs mstatus, t6
        li t6, MSTATUS_MPIE
        csrc mstatus, t6
        mret
unexpected_trap:
        li t6, 0x10000
        add gp, gp, t6
fail:
        slli t6, gp, 1
        ori t6, t6, 1
write_tohost:
        la s8, tohost
1:      sd t6, 0(s8)
        j 1b
reset:
        li gp, 0
        la t0, trap_handler
        csrw mtvec, t0
        la sp, __stack_top
        csrwi mie, 0
        csrwi mip, 0
        csrw medeleg, zero
        csrw mideleg, zero
        csrw satp, zero
        /* PMP: allow everything for S/U (entry 0 NAPOT over the whole address space). */
        li t0, -1
        csrw pmpaddr0, t0
        li t0, 0x1f
        csrw pmpcfg0, t0
        /* FPU on (FS = Initial), clear fcsr. */
        li t0, MSTATUS_FS
        csrc mstatus, t0
        li t0, (1 << 13)
        csrs mstatus, t0
        csrw fcsr, zero
        sd zero, trap_resume, t0
        .option pop
        j test_main
        .section .text, "ax", @progbits
test_main:
        .endm

        .macro TEST_END
        .section .tohost, "aw", @progbits
        .align 6
        .globl tohost
tohost: .dword 0
        .size tohost, 8
        .align 6
        .globl fromhost
fromhost: .dword 0
        .size fromhost, 8
        .section .data
        .align 3
        .globl trap_resume
trap_resume: .dword 0
        .text
        .endm

#endif
