# Sv39 / Sv48 address translation, exercised from S- and U-mode with page tables built
# by the test: 4 KiB pages, 2 MiB and 1 GiB superpages, load/store/fetch page faults
# (mcause 13/15/12, mtval = faulting virtual address), invalid PTEs, W-without-R,
# non-leaf at level 0, misaligned superpages, non-canonical addresses, R/W/X permission
# checks, execute-only pages and MXR, the U bit with SUM (and S never executing U pages),
# hardware A/D updates (PTE read back), sfence.vma after a PTE change, unsupported satp
# modes being ignored, Sv48 (4-level walk, 47-bit canonical check).
#include "test.h"

#define PTE_V 0x01
#define PTE_R 0x02
#define PTE_W 0x04
#define PTE_X 0x08
#define PTE_U 0x10
#define PTE_A 0x40
#define PTE_D 0x80
#define RWX_AD (PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D)
#define SATP_SV39 (8 << 60)
#define SATP_SV48 (9 << 60)
#define UALIAS 0x40000000                 /* VA of the user alias of RAM (VPN2 = 1) */

/* PTE table, index, pa_reg, flags : table[index] = pte(pa, flags). Uses t0-t2. */
        .macro PTE table, index, pa, flags
        srli t0, \pa, 12
        slli t0, t0, 10
        li t1, \flags
        or t0, t0, t1
        la t1, \table
        li t2, (\index) * 8
        add t1, t1, t2
        sd t0, 0(t1)
        .endm
/* From S-mode (entered at label 3 by the caller): expect a trap with cause/tval. */
        .macro S_FAULT_BEGIN
        EXPECT_TRAP 1f
        ENTER_MODE PRV_S, 3f
3:
        .endm
/* Already running in S-mode: just arm the expected trap. */
        .macro S_FAULT_HERE
        EXPECT_TRAP 1f
        .endm
        .macro FAULT_END cause, tvalreg
        j fail
1:      CHECK_TRAP \cause
        CHECKR s11, \tvalreg
        .endm

        TEST_BEGIN
        # ---------------- build the Sv39 tables
        li s0, 0x80000000
        PTE root, 2, s0, RWX_AD                      # 0x80000000: identity 1 GiB, S only
        la a0, l1
        PTE root, 0, a0, PTE_V                       # 0x0: -> L1
        PTE root, 1, s0, RWX_AD | PTE_U              # 0x40000000: user alias of RAM
        li a0, 0x80001000
        PTE root, 3, a0, RWX_AD                      # 0xC0000000: misaligned gigapage
        PTE root, 4, s0, PTE_V | PTE_R | PTE_A | PTE_D          # 0x100000000: read-only
        PTE root, 5, s0, PTE_V | PTE_X | PTE_A                  # 0x140000000: execute-only
        PTE root, 6, s0, RWX_AD & ~PTE_V                        # 0x180000000: invalid
        PTE root, 7, s0, PTE_V | PTE_W | PTE_A | PTE_D          # 0x1C0000000: W without R
        PTE root, 8, s0, PTE_V | PTE_R | PTE_W                  # 0x200000000: A = D = 0
        la a0, l0
        PTE l1, 0, a0, PTE_V                         # 0x0 - 0x1fffff: -> L0
        li a0, 0x80200000
        PTE l1, 1, a0, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D    # 0x200000: 2 MiB page
        li a0, 0x80201000
        PTE l1, 2, a0, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D    # 0x400000: misaligned
        la s1, page_a
        la s2, page_b
        PTE l0, 1, s1, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D    # 0x1000 -> page_a RW
        PTE l0, 2, s2, PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D  # 0x2000 -> page_b, U
        PTE l0, 3, s1, PTE_V | PTE_R | PTE_A                    # 0x3000 -> page_a RO
        PTE l0, 4, s1, PTE_V | PTE_R | PTE_W                    # 0x4000 -> page_a, A=D=0
        PTE l0, 5, s1, PTE_V                                    # 0x5000: non-leaf at L0
        # Sv48 root: entries 0 and 1 both point at the Sv39 root used as level 2
        la a0, root
        PTE root48, 0, a0, PTE_V
        PTE root48, 1, a0, PTE_V

        # page contents
        li a0, 0x1111111111111111
        sd a0, 0(s1)
        li a0, 0x2222222222222222
        sd a0, 0(s2)
        li a0, 0x80200000
        li a1, 0x3333333333333333
        sd a1, 8(a0)

        # ---------------- satp
        la a0, root
        srli a0, a0, 12
        li t0, SATP_SV39
        or s3, a0, t0
        csrw satp, s3
        csrr a1, satp
        CHECKR a1, s3
        li t0, (5 << 60) | 0x1234                   # reserved mode: write ignored
        csrw satp, t0
        csrr a1, satp
        CHECKR a1, s3
        sfence.vma

        # ---------------- S-mode: successful translations
        ENTER_MODE PRV_S, 3f
3:      li a0, 0x1000
        ld a1, 0(a0)
        CHECK a1, 0x1111111111111111
        li a0, 0x200008                              # megapage
        ld a1, 0(a0)
        CHECK a1, 0x3333333333333333
        li a0, 0x1008
        li a1, 0x5a5a
        sd a1, 0(a0)
        ld a2, 8(s1)                                 # same data through the identity map
        CHECK a2, 0x5a5a
        li a0, 0x3000
        ld a1, 0(a0)                                 # read-only page: load OK
        CHECK a1, 0x1111111111111111
        li a0, 0x100000000                           # read-only gigapage
        add a0, a0, s1
        li t0, 0x80000000
        sub a0, a0, t0
        ld a1, 0(a0)
        CHECK a1, 0x1111111111111111
        # execute from the execute-only gigapage: alias of xo_code ends with ecall
        la a0, xo_code
        li t0, 0x140000000 - 0x80000000
        add a0, a0, t0
        EXPECT_TRAP 1f
        jr a0
1:      CHECK_TRAP CAUSE_ECALL_S
        addi a0, a0, 0                               # mepc = alias of the ecall
        CHECKR s9, a0

        # ---------------- faults (all from S-mode)
        li a0, 0x3000                                # store to read-only page
        S_FAULT_BEGIN
        sd zero, 0(a0)
        FAULT_END CAUSE_STORE_PAGE, a0
        li a0, 0x3010
        S_FAULT_BEGIN
        amoadd.d zero, zero, (a0)                    # AMO to read-only: store fault
        FAULT_END CAUSE_STORE_PAGE, a0
        li a0, 0x180000010                           # invalid PTE
        S_FAULT_BEGIN
        ld a1, 0(a0)
        FAULT_END CAUSE_LOAD_PAGE, a0
        S_FAULT_BEGIN
        sw a1, 0(a0)
        FAULT_END CAUSE_STORE_PAGE, a0
        li a0, 0x1c0000000                           # W without R: reserved
        S_FAULT_BEGIN
        ld a1, 0(a0)
        FAULT_END CAUSE_LOAD_PAGE, a0
        S_FAULT_BEGIN
        sd a1, 0(a0)
        FAULT_END CAUSE_STORE_PAGE, a0
        li a0, 0xc0000000                            # misaligned gigapage
        S_FAULT_BEGIN
        ld a1, 0(a0)
        FAULT_END CAUSE_LOAD_PAGE, a0
        li a0, 0x400100                              # misaligned megapage
        S_FAULT_BEGIN
        lw a1, 0(a0)
        FAULT_END CAUSE_LOAD_PAGE, a0
        li a0, 0x5008                                # non-leaf PTE at level 0
        S_FAULT_BEGIN
        ld a1, 0(a0)
        FAULT_END CAUSE_LOAD_PAGE, a0
        li a0, 0x6000                                # zero PTE
        S_FAULT_BEGIN
        lb a1, 0(a0)
        FAULT_END CAUSE_LOAD_PAGE, a0
        li a0, 0x0000008000000000                    # non-canonical for Sv39
        S_FAULT_BEGIN
        ld a1, 0(a0)
        FAULT_END CAUSE_LOAD_PAGE, a0
        li a0, 0xffffffc000001000                    # canonical but unmapped (VPN2 = 256)
        S_FAULT_BEGIN
        sd a1, 0(a0)
        FAULT_END CAUSE_STORE_PAGE, a0
        li a0, 0x7fffffff00001000                    # non-canonical
        S_FAULT_BEGIN
        jr a0
        FAULT_END CAUSE_FETCH_PAGE, a0
        # fetch from the read-only gigapage
        la a0, xo_code
        li t0, 0x100000000 - 0x80000000
        add a0, a0, t0
        S_FAULT_BEGIN
        jr a0
        FAULT_END CAUSE_FETCH_PAGE, a0
        CHECKR s9, a0                                # mepc = faulting target
        # load from execute-only page faults unless MXR
        li a0, 0x140000000
        S_FAULT_BEGIN
        ld a1, 0(a0)
        FAULT_END CAUSE_LOAD_PAGE, a0
        li t0, MSTATUS_MXR
        csrs mstatus, t0
        ENTER_MODE PRV_S, 3f
3:      li a0, 0x140000000
        add a0, a0, s1
        li t0, 0x80000000
        sub a0, a0, t0
        ld a1, 0(a0)                                 # MXR: X pages readable
        CHECK a1, 0x1111111111111111
        li a0, 0x140000000
        S_FAULT_HERE
        sd a1, 0(a0)                                 # MXR does not grant write
        FAULT_END CAUSE_STORE_PAGE, a0
        li t0, MSTATUS_MXR
        csrc mstatus, t0

        # ---------------- U bit and SUM
        li a0, 0x2000                                # U page from S with SUM = 0
        S_FAULT_BEGIN
        ld a1, 0(a0)
        FAULT_END CAUSE_LOAD_PAGE, a0
        S_FAULT_BEGIN
        sd a1, 0(a0)
        FAULT_END CAUSE_STORE_PAGE, a0
        li t0, MSTATUS_SUM
        csrs mstatus, t0
        ENTER_MODE PRV_S, 3f
3:      li a0, 0x2000
        ld a1, 0(a0)
        CHECK a1, 0x2222222222222222
        sd a1, 8(a0)
        # S never executes U pages, even with SUM = 1
        la a0, xo_code
        li t0, UALIAS - 0x80000000
        add a0, a0, t0
        S_FAULT_HERE
        jr a0
        FAULT_END CAUSE_FETCH_PAGE, a0
        li t0, MSTATUS_SUM
        csrc mstatus, t0
        # U-mode runs from the user alias
        EXPECT_TRAP 1f
        la t0, 3f
        li t1, 0x80000000 - UALIAS
        sub t0, t0, t1
        csrw mepc, t0
        li t0, MSTATUS_MPP
        csrc mstatus, t0
        mret
3:      li a0, 0x2000
        ld a1, 8(a0)                                 # U page from U: OK
        CHECK a1, 0x2222222222222222
        li a0, 0x1000                                # non-U page from U: fault
        ld a1, 0(a0)
        j fail
1:      CHECK_TRAP CAUSE_LOAD_PAGE
        CHECK s11, 0x1000
        srli a1, s8, 11
        andi a1, a1, 3
        CHECK a1, PRV_U
        # U fetch from a non-U page
        EXPECT_TRAP 1f
        la t0, 3f
        csrw mepc, t0                                # identity VA: S-only page
        li t0, MSTATUS_MPP
        csrc mstatus, t0
        mret
3:      j fail
1:      CHECK_TRAP CAUSE_FETCH_PAGE
        la a0, 3b
        CHECKR s11, a0

        # ---------------- hardware A/D update
        ENTER_MODE PRV_S, 3f
3:      li a0, 0x4000
        ld a1, 0(a0)
        CHECK a1, 0x1111111111111111
        la t1, l0
        ld a2, 32(t1)
        andi a3, a2, PTE_A | PTE_D
        CHECK a3, PTE_A
        sd a1, 16(a0)
        sfence.vma
        ld a2, 32(t1)
        andi a3, a2, PTE_A | PTE_D
        CHECK a3, PTE_A | PTE_D
        li a0, 0x200000000                           # gigapage with A = D = 0: store
        add a0, a0, s2
        li t0, 0x80000000
        sub a0, a0, t0
        sd a1, 24(a0)
        la t1, root
        ld a2, 64(t1)
        andi a3, a2, PTE_A | PTE_D
        CHECK a3, PTE_A | PTE_D

        # ---------------- PTE change + sfence.vma
        la t1, l0                                    # 0x3000 becomes writable
        ld a2, 24(t1)
        ori a2, a2, PTE_W | PTE_D
        sd a2, 24(t1)
        sfence.vma
        li a0, 0x3000
        li a1, 0x7777
        sd a1, 0(a0)
        ld a2, 0(s1)
        CHECK a2, 0x7777
        li a0, 0x1000                                # 0x1000 becomes invalid
        ld a2, 8(t1)
        andi a2, a2, ~PTE_V
        sd a2, 8(t1)
        sfence.vma a0, zero
        S_FAULT_HERE
        ld a1, 0(a0)
        FAULT_END CAUSE_LOAD_PAGE, a0
        la t1, l0
        ld a2, 8(t1)
        ori a2, a2, PTE_V
        sd a2, 8(t1)
        sfence.vma

        # ---------------- Sv48
        la a0, root48
        srli a0, a0, 12
        li t0, SATP_SV48
        or a0, a0, t0
        csrw satp, a0
        csrr a1, satp
        CHECKR a1, a0
        sfence.vma
        ENTER_MODE PRV_S, 3f
3:      li a0, 0x1000
        ld a1, 0(a0)
        CHECK a1, 0x7777
        li a0, 0x0000008000001000                    # canonical in Sv48: L3 entry 1
        ld a1, 0(a0)
        CHECK a1, 0x7777
        li a0, 0x0000010000000000                    # L3 entry 2: invalid
        S_FAULT_HERE
        ld a1, 0(a0)
        FAULT_END CAUSE_LOAD_PAGE, a0
        li a0, 0x0000800000000000                    # bit 47 set, not sign-extended
        S_FAULT_BEGIN
        ld a1, 0(a0)
        FAULT_END CAUSE_LOAD_PAGE, a0
        csrw satp, zero
        sfence.vma
        PASS

        # Position-independent code executed through aliases: just ecall.
        .align 2
xo_code:
        ecall
        j fail

        TEST_END
        .data
        .align 12
root:   .zero 4096
l1:     .zero 4096
l0:     .zero 4096
root48: .zero 4096
page_a: .zero 4096
page_b: .zero 4096
