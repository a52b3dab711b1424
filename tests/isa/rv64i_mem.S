# RV64I loads and stores: every size, sign/zero extension, offsets (+/-2048 boundary),
# byte order (little endian), x0 destination, and misaligned accesses (supported in
# hardware by Nimbus: they must complete without trapping).
#include "test.h"
        TEST_BEGIN
        la s0, buf
        li a0, 0x8877665544332211
        sd a0, 0(s0)
        li a0, 0xf0e0d0c0b0a09080
        sd a0, 8(s0)

        ld a1, 0(s0)
        CHECK a1, 0x8877665544332211
        lw a1, 0(s0)
        CHECK a1, 0x44332211
        lw a1, 4(s0)
        CHECK a1, 0xffffffff88776655
        lwu a1, 4(s0)
        CHECK a1, 0x88776655
        lh a1, 6(s0)
        CHECK a1, 0xffffffffffff8877
        lhu a1, 6(s0)
        CHECK a1, 0x8877
        lh a1, 2(s0)
        CHECK a1, 0x4433
        lb a1, 7(s0)
        CHECK a1, 0xffffffffffffff88
        lbu a1, 7(s0)
        CHECK a1, 0x88
        lb a1, 0(s0)
        CHECK a1, 0x11
        lb a1, 8(s0)
        CHECK a1, 0xffffffffffffff80
        lbu a1, 15(s0)
        CHECK a1, 0xf0

        # stores only write their size
        li a0, 0xaabbccdd11223344
        sb a0, 1(s0)
        ld a1, 0(s0)
        CHECK a1, 0x8877665544334411
        sh a0, 2(s0)
        ld a1, 0(s0)
        CHECK a1, 0x8877665533444411
        sw a0, 4(s0)
        ld a1, 0(s0)
        CHECK a1, 0x1122334433444411
        sd a0, 8(s0)
        ld a1, 8(s0)
        CHECK a1, 0xaabbccdd11223344

        # negative offsets and the +/-2048 immediates
        addi s1, s0, 2047
        addi s1, s1, 1
        li a0, 0x0123456789abcdef
        sd a0, -2048(s1)                # == buf+0
        ld a1, 0(s0)
        CHECK a1, 0x0123456789abcdef
        sd a0, 2040(s0)
        ld a1, -8(s1)
        CHECK a1, 0x0123456789abcdef
        addi s2, s0, 16
        lw a1, -16(s2)
        CHECK a1, 0xffffffff89abcdef

        # load to x0 is performed but discards the value
        ld zero, 0(s0)
        CHECK zero, 0

        # load with rd == rs1
        mv a2, s0
        ld a2, 0(a2)
        CHECK a2, 0x0123456789abcdef

        # ---- misaligned accesses (Nimbus: handled in hardware, no trap)
        li a0, 0x1122334455667788
        sd a0, 0(s0)
        li a0, 0x99aabbccddeeff00
        sd a0, 8(s0)
        ld a1, 1(s0)
        CHECK a1, 0x0011223344556677
        ld a1, 7(s0)
        CHECK a1, 0xaabbccddeeff0011
        lw a1, 3(s0)
        CHECK a1, 0x22334455
        lw a1, 6(s0)
        CHECK a1, 0xffffffffff001122
        lwu a1, 6(s0)
        CHECK a1, 0xff001122
        lh a1, 7(s0)
        CHECK a1, 0x0011
        lh a1, 1(s0)
        CHECK a1, 0x6677
        lhu a1, 15(s0)                  # buf[15]=0x99, buf[16]=?
        li a0, 0x5a
        sb a0, 16(s0)
        lhu a1, 15(s0)
        CHECK a1, 0x5a99
        lh a1, 15(s0)
        CHECK a1, 0x5a99
        li a0, 0xff
        sb a0, 16(s0)
        lh a1, 15(s0)
        CHECK a1, 0xffffffffffffff99

        li a0, 0x0807060504030201
        sd a0, 3(s0)
        ld a1, 3(s0)
        CHECK a1, 0x0807060504030201
        ld a1, 0(s0)
        CHECK a1, 0x0504030201667788
        ld a1, 8(s0)
        CHECK a1, 0x99aabbccdd080706
        li a0, 0xdeadbeef
        sw a0, 13(s0)
        lwu a1, 13(s0)
        CHECK a1, 0xdeadbeef
        li a0, 0xcafe
        sh a0, 21(s0)
        lhu a1, 21(s0)
        CHECK a1, 0xcafe
        # misaligned access crossing a page boundary
        la s3, pagebuf + 4096 - 3
        li a0, 0x1111222233334444
        sd a0, 0(s3)
        ld a1, 0(s3)
        CHECK a1, 0x1111222233334444
        lw a1, 1(s3)
        CHECK a1, 0x22333344

        PASS
        TEST_END

        .data
        .align 3
buf:    .zero 4096
        .align 12
pagebuf: .zero 8192
