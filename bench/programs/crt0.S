# Minimal M-mode start-up for the bench programs: stack, zeroed .bss, call main,
# then report through the SiFive test finisher (main's return value as exit code).
# The FPU is switched on (mstatus.FS = Initial) for the programs that use doubles;
# QEMU's virt machine with -bios none starts with FS = Off.
        .section .text.init, "ax", @progbits
        .globl _start
_start:
        .option push
        .option norelax
        la gp, __global_pointer$
        .option pop
        la sp, __stack_top
        li t0, 0x2000                   # mstatus.FS = 01 (Initial)
        csrs mstatus, t0
        la t0, trap
        csrw mtvec, t0
        la t0, __bss_start
        la t1, __bss_end
1:      bgeu t0, t1, 2f
        sd zero, 0(t0)
        addi t0, t0, 8
        j 1b
2:      call main
        li t0, 0x100000
        beqz a0, 3f
        slli a0, a0, 16
        li t1, 0x3333
        or a0, a0, t1
        sw a0, 0(t0)
        j 4f
3:      li t1, 0x5555
        sw t1, 0(t0)
4:      j 4b                            # spin (not wfi) until the finisher stops us
        .align 2
trap:                                   # any trap: fail with exit code 2
        li t0, 0x100000
        li t1, 0x3333 | (2 << 16)
        sw t1, 0(t0)
        j 4b
