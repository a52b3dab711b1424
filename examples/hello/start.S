# Entry: a stack, the FPU on, then main(); its return value is the exit status via HTIF.
  .section .text.start
  .globl _start
_start:
  la sp, stack_top
  li t0, 1 << 13          # mstatus.FS = Initial
  csrs mstatus, t0
  call main
  slli a0, a0, 1
  ori a0, a0, 1
  la t0, tohost
  sd a0, 0(t0)
1:
  j 1b
