# Passes through the finisher, then waits: the verdict is the finisher's.
  .section .text.start
  .globl _start
_start:
  li t0, 0x100000
  li t1, 0x5555
  sw t1, 0(t0)
  wfi
1: j 1b
