# Miscellaneous privileged behaviour: WFI (illegal in U-mode; mstatus.TW makes it
# illegal in S-mode; returns when a locally enabled interrupt is pending even with
# global enables off, in M- and S-mode), mstatus.TSR (sret in S illegal), mstatus.TVM
# (satp access and sfence.vma in S illegal, allowed in M), mstatus.MPRV (M-mode loads
# and stores translated and checked with MPP's privilege; fetches not; mret to a lower
# mode clears MPRV).
#include "test.h"
#define PTE_V 0x01
#define PTE_R 0x02
#define PTE_W 0x04
#define PTE_X 0x08
#define PTE_U 0x10
#define PTE_A 0x40
#define PTE_D 0x80
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

        TEST_BEGIN
        # ---- WFI in M-mode with an enabled pending interrupt (MIE = 0): must not hang
        li t0, MIP_SSIP
        csrw mie, t0
        csrs mip, t0
        wfi
        csrc mip, t0
        csrw mie, zero
        # ---- WFI in U-mode: illegal
        ENTER_MODE PRV_U, 3f
3:      EXPECT_TRAP 1f
2:      wfi
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        CHECK_TVAL_INSN 2b
        # ---- WFI in S-mode with TW = 0: completes (an S interrupt is pending and enabled
        # in mie but delegated and masked by sstatus.SIE = 0, so it is not taken)
        li t0, MIP_SSIP
        csrw mideleg, t0
        csrw mie, t0
        csrs mip, t0
        ENTER_MODE PRV_S, 3f
3:      csrci sstatus, MSTATUS_SIE
        wfi
        BACK_TO_M 3f
3:      csrw mideleg, zero
        csrw mie, zero
        li t0, MIP_SSIP
        csrc mip, t0
        # ---- TW = 1: WFI in S-mode illegal
        li t0, MSTATUS_TW
        csrs mstatus, t0
        ENTER_MODE PRV_S, 3f
3:      EXPECT_TRAP 1f
        wfi
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL

        li t0, MSTATUS_TW
        csrc mstatus, t0

        # ---- TSR
        li t0, MSTATUS_TSR
        csrs mstatus, t0
        ENTER_MODE PRV_S, 3f
3:      la t0, 4f
        csrw sepc, t0
        EXPECT_TRAP 1f
2:      sret
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        CHECK_TVAL_INSN 2b
        li t0, MSTATUS_TSR
        csrc mstatus, t0
        ENTER_MODE PRV_S, 3f
3:      li t0, MSTATUS_SPP
        csrs sstatus, t0
        la t0, 4f
        csrw sepc, t0
        sret                             # TSR = 0: allowed
4:      BACK_TO_M 3f
3:      CHECK_TRAP CAUSE_ECALL_S

        # ---- TVM
        li t0, MSTATUS_TVM
        csrs mstatus, t0
        csrr a0, satp                    # M-mode: fine
        csrw satp, zero
        sfence.vma
        ENTER_MODE PRV_S, 3f
3:      EXPECT_TRAP 1f
        csrr a0, satp
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        ENTER_MODE PRV_S, 3f
3:      EXPECT_TRAP 1f
        csrw satp, zero
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        ENTER_MODE PRV_S, 3f
3:      EXPECT_TRAP 1f
        sfence.vma
        j fail
1:      CHECK_TRAP CAUSE_ILLEGAL
        li t0, MSTATUS_TVM
        csrc mstatus, t0
        ENTER_MODE PRV_S, 3f
3:      csrr a0, satp                    # TVM = 0: allowed in S
        sfence.vma
        BACK_TO_M 3f
3:
        # ---- MPRV
        li s0, 0x80000000
        PTE root, 2, s0, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D   # identity, S only
        la a0, l1
        PTE root, 0, a0, PTE_V
        la a0, l0
        PTE l1, 0, a0, PTE_V
        la s1, page_a
        la s2, page_u
        PTE l0, 1, s1, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D             # 0x1000 S page
        PTE l0, 2, s2, PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D     # 0x2000 U page
        li a0, 0xaaaa
        sd a0, 0(s1)
        li a0, 0xbbbb
        sd a0, 0(s2)
        la a0, root
        srli a0, a0, 12
        li t0, 8 << 60
        or a0, a0, t0
        csrw satp, a0
        sfence.vma
        # MPP = S, MPRV = 1: loads/stores use Sv39 with S privilege
        li t0, MSTATUS_MPP
        csrc mstatus, t0
        li t0, (PRV_S << 11)
        csrs mstatus, t0
        li t0, MSTATUS_MPRV
        csrs mstatus, t0
        li a0, 0x1000
        ld a1, 0(a0)                     # translated: page_a
        li a2, 0xcccc
        sd a2, 8(a0)
        li t0, MSTATUS_MPRV
        csrc mstatus, t0
        CHECK a1, 0xaaaa
        ld a3, 8(s1)
        CHECK a3, 0xcccc
        # MPP = S, MPRV = 1, access to a U page with SUM = 0: load page fault
        la t0, 1f
        sd t0, trap_resume, s8
        li s10, -1
        li t0, MSTATUS_MPRV
        csrs mstatus, t0
        li a0, 0x2000
        ld a1, 0(a0)
        j fail
1:      li t0, MSTATUS_MPRV
        csrc mstatus, t0
        CHECK_TRAP CAUSE_LOAD_PAGE
        CHECK s11, 0x2000
        # MPP = U, MPRV = 1: the U page is accessible, the S page is not
        li t0, MSTATUS_MPP
        csrc mstatus, t0                 # MPP = U
        li t0, MSTATUS_MPRV
        csrs mstatus, t0
        li a0, 0x2000
        ld a1, 0(a0)
        li t0, MSTATUS_MPRV
        csrc mstatus, t0
        CHECK a1, 0xbbbb
        la t0, 1f
        sd t0, trap_resume, s8
        li s10, -1
        li t0, MSTATUS_MPRV
        csrs mstatus, t0
        li a0, 0x1000
        sd a1, 0(a0)
        j fail
1:      li t0, MSTATUS_MPRV
        csrc mstatus, t0
        CHECK_TRAP CAUSE_STORE_PAGE
        CHECK s11, 0x1000
        # MPP = M, MPRV = 1: no translation
        li t0, MSTATUS_MPP | MSTATUS_MPRV
        csrs mstatus, t0
        ld a1, 0(s1)
        li t0, MSTATUS_MPRV
        csrc mstatus, t0
        CHECK a1, 0xaaaa
        # mret to S clears MPRV
        li t0, MSTATUS_MPRV
        csrs mstatus, t0
        ENTER_MODE PRV_S, 3f
3:      BACK_TO_M 3f
3:
#ifndef QEMU_DIFF /* QEMU 7.2 does not clear MPRV on mret to a lower mode (priv 1.12) */
        li t0, MSTATUS_MPRV
        and a0, s8, t0
        CHECK a0, 0
        csrr a0, mstatus
        and a0, a0, t0
        CHECK a0, 0
#endif
        li t0, MSTATUS_MPRV
        csrc mstatus, t0
        csrw satp, zero
        sfence.vma
        PASS
        TEST_END
        .data
        .align 12
root:   .zero 4096
l1:     .zero 4096
l0:     .zero 4096
page_a: .zero 4096
page_u: .zero 4096
