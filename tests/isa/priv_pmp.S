# Physical memory protection: NAPOT, NA4 and TOR entries restricting S/U-mode loads,
# stores and fetches (access faults 5/7/1 with mtval = address), lowest-numbered
# matching entry wins, partial matches fail, S/U accesses matching no entry fail while
# M-mode ones succeed, unlocked entries do not apply to M-mode, locked entries do
# (and ignore further writes to their cfg/addr).
#include "test.h"
#define PMP_R 0x01
#define PMP_W 0x02
#define PMP_X 0x04
#define PMP_TOR 0x08
#define PMP_NA4 0x10
#define PMP_NAPOT 0x18
#define PMP_L 0x80

/* NAPOT pmpaddr for a naturally aligned region (base reg, log2 size >= 3) -> reg */
        .macro NAPOT_ADDR out, base, lg
        srli \out, \base, 2
        li t1, (1 << ((\lg) - 3)) - 1
        or \out, \out, t1
        .endm
        .macro S_FAULT_BEGIN
        EXPECT_TRAP 1f
        ENTER_MODE PRV_S, 3f
3:
        .endm
        .macro FAULT_END cause, tvalreg
        j fail
1:      CHECK_TRAP \cause
        CHECKR s11, \tvalreg
        .endm
/* set pmpcfg0 to the 64-bit value (entries 0..7) */
        .macro SETCFG val
        li t0, \val
        csrw pmpcfg0, t0
        .endm

        TEST_BEGIN
        la s0, page_x
        la s1, pmp_code
        li t0, -1
        csrw pmpaddr7, t0                  # entry 7: everything (NAPOT, RWX)
        # ---- entry 0: NAPOT 4 KiB page_x, read-only
        NAPOT_ADDR a0, s0, 12
        csrw pmpaddr0, a0
        csrr a1, pmpaddr0
        CHECKR a0, a1
        SETCFG ((PMP_NAPOT|PMP_R|PMP_W|PMP_X) << 56) | (PMP_NAPOT|PMP_R)
        csrr a1, pmpcfg0
        CHECK a1, ((PMP_NAPOT|PMP_R|PMP_W|PMP_X) << 56) | (PMP_NAPOT|PMP_R)
        li a0, 0x1234
        sd a0, 0(s0)                       # M-mode: unlocked entries do not apply
        ENTER_MODE PRV_S, 3f
3:      ld a1, 0(s0)                       # S load allowed
        CHECK a1, 0x1234
        addi a0, s0, 16
        EXPECT_TRAP 1f
        sd a1, 0(a0)                       # S store: access fault
        FAULT_END CAUSE_STORE_ACCESS, a0
        addi a0, s0, 24
        S_FAULT_BEGIN
        amoswap.d a1, a1, (a0)
        FAULT_END CAUSE_STORE_ACCESS, a0
        # U-mode same rules
        addi a0, s0, 8
        EXPECT_TRAP 1f
        ENTER_MODE PRV_U, 3f
3:      ld a1, -8(a0)
        CHECK a1, 0x1234
        sw a1, 0(a0)
        FAULT_END CAUSE_STORE_ACCESS, a0
        # ---- no read permission: load fault; lowest entry wins over entry 7
        SETCFG ((PMP_NAPOT|PMP_R|PMP_W|PMP_X) << 56) | (PMP_NAPOT|PMP_W|PMP_R) << 8 | (PMP_NAPOT | PMP_X)
        NAPOT_ADDR a0, s0, 12
        csrw pmpaddr1, a0                  # entry 1 (RW) also matches, but entry 0 wins
        addi a0, s0, 32
        S_FAULT_BEGIN
        ld a1, 0(a0)
        FAULT_END CAUSE_LOAD_ACCESS, a0
        # ---- fetch: pmp_code page without X
        NAPOT_ADDR a0, s1, 12
        csrw pmpaddr0, a0
        SETCFG ((PMP_NAPOT|PMP_R|PMP_W|PMP_X) << 56) | (PMP_NAPOT|PMP_R|PMP_W)
        S_FAULT_BEGIN
        jr s1
        FAULT_END CAUSE_FETCH_ACCESS, s1
        SETCFG ((PMP_NAPOT|PMP_R|PMP_W|PMP_X) << 56) | (PMP_NAPOT|PMP_X)
        EXPECT_TRAP 1f
        ENTER_MODE PRV_S, 3f
3:      jr s1                              # X allowed: pmp_code does ecall
        j fail
1:      CHECK_TRAP CAUSE_ECALL_S
        CHECKR s9, s1
        # ---- TOR: entry 0 OFF gives the base, entry 1 TOR [page_x, page_x + 4 KiB)
        csrw pmpaddr0, zero
        srli a0, s0, 2
        csrw pmpaddr0, a0
        addi a1, s0, 2047
        addi a1, a1, 2047
        addi a1, a1, 2
        srli a1, a1, 2
        csrw pmpaddr1, a1
        SETCFG ((PMP_NAPOT|PMP_R|PMP_W|PMP_X) << 56) | ((PMP_TOR|PMP_R) << 8)
        li a0, 4088                        # last doubleword inside: read-only
        add a0, a0, s0
        S_FAULT_BEGIN
        ld a1, 0(a0)
        sd a1, 0(a0)
        FAULT_END CAUSE_STORE_ACCESS, a0
        addi a0, s0, -8                    # just below: entry 7 applies
        ENTER_MODE PRV_S, 3f
3:      sd a1, 0(a0)
        la a0, page_after                  # just above: entry 7 applies
        sd a1, 0(a0)
        BACK_TO_M 3f
3:      # ---- NA4: entry 0 covers 4 bytes at page_x + 8, read-only
        addi a0, s0, 8
        srli a0, a0, 2
        csrw pmpaddr0, a0
        SETCFG ((PMP_NAPOT|PMP_R|PMP_W|PMP_X) << 56) | (PMP_NA4|PMP_R)
        addi a0, s0, 8
        S_FAULT_BEGIN
        lw a1, 0(a0)
        sw a1, 0(a0)
        FAULT_END CAUSE_STORE_ACCESS, a0
        ENTER_MODE PRV_S, 3f
3:      sw a1, 12(s0)                      # next word: entry 7
        sw a1, 4(s0)
        BACK_TO_M 3f
3:      # partial match: an 8-byte access overlapping the 4-byte entry fails
        addi a0, s0, 8
        SETCFG ((PMP_NAPOT|PMP_R|PMP_W|PMP_X) << 56) | (PMP_NA4|PMP_R|PMP_W|PMP_X)
        S_FAULT_BEGIN
        ld a1, 0(a0)
        FAULT_END CAUSE_LOAD_ACCESS, a0
        # ---- S/U access matching no entry fails, M succeeds
        li a0, 0x80000000
        NAPOT_ADDR a0, a0, 20              # 1 MiB over the test image
        csrw pmpaddr0, a0
        SETCFG (PMP_NAPOT|PMP_R|PMP_W|PMP_X)
        li a0, 0x80200000
        sd a0, 0(a0)                       # M-mode: no match -> allowed
        S_FAULT_BEGIN
        ld a1, 0(a0)
        FAULT_END CAUSE_LOAD_ACCESS, a0
        ENTER_MODE PRV_S, 3f
3:      ld a1, 0(s0)                       # inside entry 0: fine
        BACK_TO_M 3f
3:      # ---- locked entry applies to M-mode too
        li t0, -1
        csrw pmpaddr7, t0
        NAPOT_ADDR a0, s0, 12
        csrw pmpaddr0, a0
        SETCFG ((PMP_NAPOT|PMP_R|PMP_W|PMP_X) << 56) | (PMP_L|PMP_NAPOT|PMP_R)
        ld a1, 0(s0)                       # M load OK
        addi a0, s0, 40
        EXPECT_TRAP 1f
        sd a1, 0(a0)                       # M store: access fault
        FAULT_END CAUSE_STORE_ACCESS, a0
        # locked: cfg and addr writes ignored
        SETCFG ((PMP_NAPOT|PMP_R|PMP_W|PMP_X) << 56) | (PMP_NAPOT|PMP_R|PMP_W|PMP_X)
        csrr a1, pmpcfg0
        andi a1, a1, 0xff
        CHECK a1, PMP_L|PMP_NAPOT|PMP_R
        csrr a2, pmpaddr0
        csrw pmpaddr0, zero
        csrr a1, pmpaddr0
        CHECKR a1, a2
        PASS
        TEST_END

        .section .text
        .align 12
pmp_code:
        ecall
        j fail
        .align 12

        .data
        .align 12
        .zero 4096
page_x: .zero 4096
page_after: .zero 4096
