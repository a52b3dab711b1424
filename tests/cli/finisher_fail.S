# Fails through the sifive,test finisher with code 7 (no tohost symbol in this program).
  .section .text.start
  .globl _start
_start:
  li t0, 0x100000
  li t1, (7 << 16) | 0x3333
  sw t1, 0(t0)
1: j 1b
