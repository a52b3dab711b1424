# WFI where no interrupt can come: it completes at once, so this loops until the limit.
  .section .text.start
  .globl _start
_start:
  wfi
  j _start
