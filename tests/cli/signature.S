# Writes a known pattern into the signature region, then passes.
  .section .text.start
  .globl _start
_start:
  la t0, begin_signature
  li t1, 0x1122334455667788
  sd t1, 0(t0)
  li t1, -1
  sw t1, 8(t0)
  li a0, 1
  la t0, tohost
  sd a0, 0(t0)
1: j 1b
  .data
  .align 4
  .globl begin_signature
begin_signature:
  .fill 4, 4, 0xdeadbeef
  .globl end_signature
end_signature:
