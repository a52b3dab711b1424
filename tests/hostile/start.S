# The RISC-V Linux Image header (Documentation/riscv/boot-image-header.rst), so that the
# VMM boots this program as its kernel, then the entry and a trap handler that lets the
# attacks survive their own faults.
  .section .text.head, "ax"
  .globl _start
_start:
  j entry                    # code0
  .word 0                    # code1
  .dword 0x200000            # text_offset: loaded at RAM base + 2 MiB
  .dword image_end - image_start  # image_size, bss and stacks included
  .dword 0                   # flags
  .word 2                    # version 0.2
  .word 0                    # res1
  .dword 0                   # res2
  .ascii "RISCV\0\0\0"       # magic (deprecated)
  .ascii "RSC\x05"           # magic2
  .word 0                    # res3

  .text
entry:
  csrw sie, zero             # no interrupt ever reaches this program, not even WFI
  csrci sstatus, 2           # SIE off
  la sp, stack_top
  la t0, trap_stack_top
  csrw sscratch, t0
  la t0, trap_entry
  csrw stvec, t0
  la t0, bss_start           # the loader does not promise zeroed RAM past the file
  la t1, bss_end
1:
  bgeu t0, t1, 2f
  sd zero, 0(t0)
  addi t0, t0, 8
  j 1b
2:
  call main
3:
  wfi                        # idle forever: the test measures the VMM's CPU from here
  j 3b

# Every exception (a wild MMIO access faulting, a misaligned access) skips the faulting
# instruction: a load leaves its destination as it was (the accessors zero it first).
# Counted in trap_count, the last cause kept in trap_last_cause.
  .align 4
trap_entry:
  csrrw sp, sscratch, sp
  sd t0, -8(sp)
  sd t1, -16(sp)
  csrr t0, scause
  la t1, trap_last_cause
  sd t0, 0(t1)
  bltz t0, 5f                # an interrupt (cannot happen with SIE off): just return
  csrr t0, sepc
  lhu t1, 0(t0)
  andi t1, t1, 3
  addi t1, t1, -3            # zero for a 32-bit instruction
  addi t0, t0, 2
  bnez t1, 4f
  addi t0, t0, 2
4:
  csrw sepc, t0
  la t0, trap_count
  ld t1, 0(t0)
  addi t1, t1, 1
  sd t1, 0(t0)
5:
  ld t0, -8(sp)
  ld t1, -16(sp)
  csrrw sp, sscratch, sp
  sret
