# Zicsr / Zicntr: csrrw/csrrs/csrrc and immediate forms (old value returned, set/clear
# semantics, uimm zero-extended), rs1 = x0 / uimm = 0 forms not writing (legal on
# read-only CSRs), writes to read-only CSRs and accesses to non-existent CSRs raising
# illegal instruction (mtval = instruction), misa, mhartid = 0, cycle/instret counting,
# user counter access controlled by mcounteren, M-mode CSR access from U/S illegal.
#include "test.h"
        TEST_BEGIN
        # ---- basic read/write on mscratch
        li a0, 0x0123456789abcdef
        csrw mscratch, a0
        csrr a1, mscratch
        CHECKR a0, a1
        li a2, 0xff
        csrrw a1, mscratch, a2
        CHECKR a1, a0
        csrr a1, mscratch
        CHECK a1, 0xff
        li a2, 0xf00
        csrrs a1, mscratch, a2
        CHECK a1, 0xff
        csrr a1, mscratch
        CHECK a1, 0xfff
        li a2, 0x0f0
        csrrc a1, mscratch, a2
        CHECK a1, 0xfff
        csrr a1, mscratch
        CHECK a1, 0xf0f
        csrrwi a1, mscratch, 31
        CHECK a1, 0xf0f
        csrrsi a1, mscratch, 0x10 | 0
        CHECK a1, 31
        csrrci a1, mscratch, 0x3
        CHECK a1, 31
        csrr a1, mscratch
        CHECK a1, 28
        csrrsi a1, mscratch, 0           # no write, still reads
        CHECK a1, 28
        csrrci a1, mscratch, 0
        CHECK a1, 28
        li a0, -1
        csrw mscratch, a0
        csrrwi a1, mscratch, 0x1f        # zero-extended uimm, not sign-extended
        csrr a1, mscratch
        CHECK a1, 0x1f
        # rd == rs1: old value to rd, new value from old rs1
        li a0, 0x55
        csrrw a0, mscratch, a0
        CHECK a0, 0x1f
        csrr a1, mscratch
        CHECK a1, 0x55
        # rd = x0 write
        csrrw zero, mscratch, zero
        csrr a1, mscratch
        CHECK a1, 0

        # ---- identification
        csrr a0, mhartid
        CHECK a0, 0
        csrr a0, misa
        srli a1, a0, 62
        CHECK a1, 2                      # MXL = 64
        li t0, (1<<0)|(1<<2)|(1<<3)|(1<<5)|(1<<8)|(1<<12)|(1<<18)|(1<<20)   # ACDFIMSU
        and a1, a0, t0
        CHECKR a1, t0
        csrr a0, mvendorid
        csrr a0, marchid
        csrr a0, mimpid
        csrr a0, mstatus
        srli a1, a0, 32
        andi a1, a1, 0xf
        CHECK a1, 0xa                    # UXL = SXL = 64

        # ---- read-only CSRs: reading with rs1=x0 / uimm=0 is legal
        csrrs a0, mhartid, zero
        csrrc a0, mhartid, zero
        csrrsi a0, mhartid, 0
        csrrci a0, mhartid, 0
        csrr a0, cycle
        csrr a0, instret
        CHECK zero, 0
        # writes to read-only CSRs are illegal (even if the written value is unchanged)
        EXPECT_TRAP 1f
2:      csrw mhartid, zero
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        CHECK_TVAL_INSN 2b
#ifndef QEMU_DIFF /* QEMU 7.2 treats a zero write mask as a pure read */
        li a2, 0
        EXPECT_TRAP 1f
        csrrs a1, mhartid, a2            # rs1 != x0 holding 0: still a write attempt
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
#endif
        li a2, 0
        EXPECT_TRAP 1f
        csrrwi zero, mvendorid, 0
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        EXPECT_TRAP 1f
        csrrsi a1, cycle, 1
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
#ifndef QEMU_DIFF
        EXPECT_TRAP 1f
2:      csrrc a1, instret, a2
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        CHECK_TVAL_INSN 2b
#endif
        # non-existent CSRs: pmpcfg1 does not exist on RV64
        EXPECT_TRAP 1f
2:      csrr a1, pmpcfg1
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        CHECK_TVAL_INSN 2b

        # ---- counters
        csrr a0, mcycle
        csrr a2, minstret
        nop
        nop
        nop
        nop
        nop
        nop
        nop
        nop
        nop
        nop
        csrr a3, minstret
        csrr a1, mcycle
        NEXT_CHECK
        bgeu a0, a1, fail                # cycle advanced
        NEXT_CHECK
        bgeu a2, a3, fail                # instret advanced
#ifndef QEMU_DIFF /* exact count: QEMU only with -icount, and it may count differently */
        sub a3, a3, a2                   # 10 nops + the first csrr (+/- 1)
        li t0, 10
        NEXT_CHECK
        bltu a3, t0, fail
        li t0, 12
        NEXT_CHECK
        bltu t0, a3, fail
#endif
        # minstret is writable
        li a0, 1000000
        csrw minstret, a0
        csrr a1, minstret
        NEXT_CHECK
        bltu a1, a0, fail
        li t0, 1000100
        NEXT_CHECK
        bgeu a1, t0, fail
        # user-mode aliases read the same counters
        csrr a0, minstret
        csrr a1, instret
        NEXT_CHECK
        bltu a1, a0, fail
        csrr a0, mcycle
        csrr a1, cycle
        NEXT_CHECK
        bltu a1, a0, fail

        # ---- mcounteren gates U/S access to cycle/instret
        csrw mcounteren, zero
        csrw scounteren, zero
        ENTER_MODE PRV_U, 3f
3:      EXPECT_TRAP 1f
        csrr a0, cycle
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        li a0, 5                         # CY | IR
        csrw mcounteren, a0
        ENTER_MODE PRV_S, 3f
3:      csrr a0, cycle                   # S-mode: allowed by mcounteren
        csrr a0, instret
        EXPECT_TRAP 1f
        csrr a0, mscratch                # M-mode CSR from S: illegal
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        ENTER_MODE PRV_U, 3f
3:      EXPECT_TRAP 1f                   # U: scounteren = 0 still blocks
        csrr a0, instret
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        li a0, 5
        csrw scounteren, a0
        ENTER_MODE PRV_U, 3f
3:      csrr a0, instret
        csrr a0, cycle
        EXPECT_TRAP 1f
        csrr a0, sscratch                # S-mode CSR from U: illegal
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        ENTER_MODE PRV_U, 3f
3:      EXPECT_TRAP 1f
        csrr a0, mstatus
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        PASS
        TEST_END
