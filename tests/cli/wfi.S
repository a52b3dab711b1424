# Waits for an interrupt that cannot come.
  .section .text.start
  .globl _start
_start:
  wfi
  j _start
